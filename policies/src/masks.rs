//! The catalog of mask functions: their parameters and the ranges those may take, which masks each
//! column kind accepts by default, and how a policy's approved masks (optionally with a bound, e.g.
//! `keep_first_n_last_m(3, 4)`) decide a mask call found in a query.
//!
//! The engine implements the functions; this module is the single place that says which calls are
//! safe. Both the plan check and the function itself validate parameters against it, so a call the
//! check approved cannot behave differently at run time.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::ColumnKind;

/// A constant argument of a mask call after the masked value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MaskArg {
    /// An integer (a count of characters, a width).
    Int(i64),
    /// A word or a single character.
    Text(String),
}

impl fmt::Display for MaskArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaskArg::Int(i) => write!(f, "{i}"),
            MaskArg::Text(s) => write!(f, "'{}'", s.replace('\'', "''")),
        }
    }
}

/// Which way a parameter may move away from the policy's bound and stay at least as safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Safer {
    /// A smaller value reveals less (characters kept).
    Smaller,
    /// A larger value reveals less (characters masked, band widths, coarser levels).
    Larger,
    /// Only the bound itself is approved (a delimiter character).
    Exact,
}

/// What a parameter may be.
#[derive(Clone, Copy, Debug)]
enum ParamKind {
    /// An integer in `min..=max`.
    Int { min: i64, max: i64 },
    /// One character.
    Char,
    /// One of the words, ordered from the most to the least revealing.
    Choice(&'static [&'static str]),
}

#[derive(Clone, Copy, Debug)]
struct Param {
    name: &'static str,
    kind: ParamKind,
    default: Option<Default>,
    safer: Safer,
}

#[derive(Clone, Copy, Debug)]
enum Default {
    Int(i64),
    Text(&'static str),
}

/// One mask function.
#[derive(Clone, Copy, Debug)]
pub struct MaskSpec {
    /// SQL name.
    pub name: &'static str,
    /// One line for `--help` and refusals.
    pub summary: &'static str,
    params: &'static [Param],
    /// Whether a policy must state a bound to approve it (generic masks whose parameters could
    /// otherwise keep the whole value).
    pub needs_bound: bool,
}

const fn int(name: &'static str, min: i64, max: i64, default: Option<i64>, safer: Safer) -> Param {
    Param {
        name,
        kind: ParamKind::Int { min, max },
        default: match default {
            Some(d) => Some(Default::Int(d)),
            None => None,
        },
        safer,
    }
}

/// A mask without parameters.
const fn simple(name: &'static str, summary: &'static str) -> MaskSpec {
    MaskSpec {
        name,
        summary,
        params: &[],
        needs_bound: false,
    }
}

const MAX_CHARS: i64 = 1024;

/// Every mask function erhai knows.
pub const MASKS: &[MaskSpec] = &[
    MaskSpec {
        name: "mask_id_card",
        summary: "resident ID number: keep the first 1–6 and last 2–4 characters (default 6 and 4)",
        params: &[
            int("keep_first", 1, 6, Some(6), Safer::Smaller),
            int("keep_last", 2, 4, Some(4), Safer::Smaller),
        ],
        needs_bound: false,
    },
    simple(
        "id_card_valid",
        "whether a resident ID number passes the ISO 7064 MOD 11-2 check",
    ),
    simple(
        "id_card_birth_year",
        "the year of birth in a resident ID number",
    ),
    MaskSpec {
        name: "id_card_region",
        summary: "the region code of a resident ID number, generalized to prefecture or province",
        params: &[Param {
            name: "level",
            kind: ParamKind::Choice(&["prefecture", "province"]),
            default: Some(Default::Text("prefecture")),
            safer: Safer::Larger,
        }],
        needs_bound: false,
    },
    simple(
        "id_card_gender",
        "the gender (男/女) encoded in a resident ID number",
    ),
    simple(
        "mask_phone",
        "mobile 3+4 (138****5678); landline keeps the area code and the last 2 digits",
    ),
    simple(
        "mask_name",
        "keeps the surname (two characters for compound surnames); Latin names keep initials",
    ),
    simple(
        "mask_bank_card",
        "bank card number: keeps the first 4 and last 4 digits",
    ),
    simple(
        "mask_email",
        "keeps the first character of the mailbox and the domain",
    ),
    simple(
        "mask_address",
        "keeps the address down to district / county level",
    ),
    simple(
        "mask_plate",
        "licence plate (7 or 8 characters): keeps the first 2 and the last character",
    ),
    simple(
        "mask_ip",
        "IPv4 keeps the first two octets, IPv6 the first two groups",
    ),
    simple(
        "pseudonym",
        "keyed HMAC-SHA-256 token: stable within one scope, unlinkable across scopes",
    ),
    MaskSpec {
        name: "keep_first_n_last_m",
        summary: "keeps the first n and last m characters, masks the rest",
        params: &[
            int("n", 0, MAX_CHARS, None, Safer::Smaller),
            int("m", 0, MAX_CHARS, None, Safer::Smaller),
        ],
        needs_bound: true,
    },
    MaskSpec {
        name: "keep_from_x_to_y",
        summary: "keeps characters x to y (1-based, inclusive), masks the rest",
        params: &[
            int("x", 1, MAX_CHARS, None, Safer::Larger),
            int("y", 1, MAX_CHARS, None, Safer::Smaller),
        ],
        needs_bound: true,
    },
    MaskSpec {
        name: "mask_first_n_last_m",
        summary: "masks the first n and last m characters, keeps the rest",
        params: &[
            int("n", 0, MAX_CHARS, None, Safer::Larger),
            int("m", 0, MAX_CHARS, None, Safer::Larger),
        ],
        needs_bound: true,
    },
    MaskSpec {
        name: "mask_from_x_to_y",
        summary: "masks characters x to y (1-based, inclusive), keeps the rest",
        params: &[
            int("x", 1, MAX_CHARS, None, Safer::Smaller),
            int("y", 1, MAX_CHARS, None, Safer::Larger),
        ],
        needs_bound: true,
    },
    MaskSpec {
        name: "mask_before_char",
        summary: "masks everything before the first occurrence of a character",
        params: &[Param {
            name: "char",
            kind: ParamKind::Char,
            default: None,
            safer: Safer::Exact,
        }],
        needs_bound: true,
    },
    MaskSpec {
        name: "mask_after_char",
        summary: "masks everything after the first occurrence of a character",
        params: &[Param {
            name: "char",
            kind: ParamKind::Char,
            default: None,
            safer: Safer::Exact,
        }],
        needs_bound: true,
    },
    MaskSpec {
        name: "age_band",
        summary: "age today from a birth date, as a band `30-39` of the given width (at least 5)",
        params: &[int("width", 5, 100, Some(10), Safer::Larger)],
        needs_bound: false,
    },
    MaskSpec {
        name: "date_trunc_to",
        summary: "a date truncated to the first day of its month, quarter or year",
        params: &[Param {
            name: "unit",
            kind: ParamKind::Choice(&["month", "quarter", "year"]),
            default: None,
            safer: Safer::Larger,
        }],
        needs_bound: false,
    },
    MaskSpec {
        name: "bucket",
        summary: "a number rounded down to a multiple of the width",
        params: &[int("width", 1, i64::MAX, None, Safer::Larger)],
        needs_bound: true,
    },
];

/// Why a mask call or a policy's spelling of a mask is not acceptable; each message names the
/// mask and the parameter so that an analyst or a provider can correct it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    /// Too few or too many constant parameters.
    #[error(
        "{mask}() takes the value and {expected} constant parameter(s) ({parameters}), found {found}"
    )]
    Arity {
        /// The mask.
        mask: &'static str,
        /// How many it takes ("2" or "1 to 2").
        expected: String,
        /// Their names.
        parameters: String,
        /// How many the call has.
        found: usize,
    },
    /// A parameter without a default is missing.
    #[error("{mask}() needs its parameter {parameter}")]
    MissingParameter {
        /// The mask.
        mask: &'static str,
        /// The parameter.
        parameter: &'static str,
    },
    /// A parameter outside its range.
    #[error("{mask}() parameter {parameter} must be {must}, found {found}")]
    OutOfRange {
        /// The mask.
        mask: &'static str,
        /// The parameter.
        parameter: &'static str,
        /// What it must be.
        must: String,
        /// What the call has.
        found: MaskArg,
    },
    /// A parameter less safe than the bound a policy approved.
    #[error(
        "{mask}() parameter {parameter} is {found}, but the policy approves {relation} {bound}"
    )]
    LessSafe {
        /// The mask.
        mask: &'static str,
        /// The parameter.
        parameter: &'static str,
        /// What the call has.
        found: MaskArg,
        /// "at most", "at least" or "exactly".
        relation: &'static str,
        /// The policy's bound.
        bound: MaskArg,
    },
    /// No mask of that name.
    #[error("unknown mask `{name}`; known masks: {known}")]
    Unknown {
        /// The name as written.
        name: String,
        /// Every mask there is.
        known: String,
    },
    /// A policy's `name(…` without its closing parenthesis.
    #[error("mask `{0}` is missing its closing parenthesis")]
    Unclosed(String),
    /// A policy's parameter that is neither an integer nor a quoted word.
    #[error("mask parameter `{0}` is neither an integer nor a quoted word")]
    BadParameter(String),
    /// A mask that could keep the whole value, approved without a bound.
    #[error(
        "mask {mask}() could keep the whole value, so a policy must state the least safe \
         parameters it approves, e.g. {mask}({parameters})"
    )]
    NeedsBound {
        /// The mask.
        mask: &'static str,
        /// Its parameters' names.
        parameters: String,
    },
}

impl MaskError {
    fn unknown(name: &str) -> MaskError {
        MaskError::Unknown {
            name: name.to_string(),
            known: MASKS.iter().map(|m| m.name).collect::<Vec<_>>().join(", "),
        }
    }
}

/// The mask function called `name`, if it is one.
pub fn lookup(name: &str) -> Option<&'static MaskSpec> {
    MASKS.iter().find(|m| m.name == name)
}

impl MaskSpec {
    /// Number of parameters after the masked value, as (required, all).
    pub fn arity(&self) -> (usize, usize) {
        let required = self.params.iter().filter(|p| p.default.is_none()).count();
        (required, self.params.len())
    }

    /// Checks the number of parameters after the masked value.
    pub fn check_arity(&self, n: usize) -> Result<(), MaskError> {
        let (required, all) = self.arity();
        if (required..=all).contains(&n) {
            return Ok(());
        }
        let expected = if required == all {
            format!("{all}")
        } else {
            format!("{required} to {all}")
        };
        Err(MaskError::Arity {
            mask: self.name,
            expected,
            parameters: self.param_names(),
            found: n,
        })
    }

    /// The call's parameters with defaults filled in, each checked against its range. The
    /// function's own run-time check and the plan check both use this.
    pub fn resolve(&self, args: &[MaskArg]) -> Result<Vec<MaskArg>, MaskError> {
        self.check_arity(args.len())?;
        let all = self.params.len();
        let mut out = Vec::with_capacity(all);
        for (i, p) in self.params.iter().enumerate() {
            let arg = match (args.get(i), p.default) {
                (Some(a), _) => a.clone(),
                (None, Some(Default::Int(d))) => MaskArg::Int(d),
                (None, Some(Default::Text(t))) => MaskArg::Text(t.to_string()),
                (None, None) => unreachable_param(self, p)?,
            };
            p.check(self.name, &arg)?;
            out.push(arg);
        }
        Ok(out)
    }

    fn param_names(&self) -> String {
        if self.params.is_empty() {
            return "none".to_string();
        }
        self.params
            .iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether a call with resolved `args` is at least as safe as the `bound` a policy approved.
    fn within(&self, args: &[MaskArg], bound: &[MaskArg]) -> Result<(), MaskError> {
        for ((p, a), b) in self.params.iter().zip(args).zip(bound) {
            let ok = match (p.safer, a, b) {
                (Safer::Exact, a, b) => a == b,
                (Safer::Smaller, MaskArg::Int(a), MaskArg::Int(b)) => a <= b,
                (Safer::Larger, MaskArg::Int(a), MaskArg::Int(b)) => a >= b,
                (Safer::Larger, MaskArg::Text(a), MaskArg::Text(b)) => {
                    p.rank(a) >= p.rank(b) && p.rank(a).is_some()
                }
                _ => false,
            };
            if !ok {
                let rel = match p.safer {
                    Safer::Smaller => "at most",
                    Safer::Larger => "at least",
                    Safer::Exact => "exactly",
                };
                return Err(MaskError::LessSafe {
                    mask: self.name,
                    parameter: p.name,
                    found: a.clone(),
                    relation: rel,
                    bound: b.clone(),
                });
            }
        }
        Ok(())
    }
}

fn unreachable_param(spec: &MaskSpec, p: &Param) -> Result<MaskArg, MaskError> {
    Err(MaskError::MissingParameter {
        mask: spec.name,
        parameter: p.name,
    })
}

impl Param {
    fn check(&self, mask: &'static str, arg: &MaskArg) -> Result<(), MaskError> {
        let must = match (self.kind, arg) {
            (ParamKind::Int { min, max }, MaskArg::Int(v)) if (min..=max).contains(v) => {
                return Ok(());
            }
            (ParamKind::Int { min, max }, _) => format!("an integer from {min} to {max}"),
            (ParamKind::Char, MaskArg::Text(s)) if s.chars().count() == 1 => return Ok(()),
            (ParamKind::Char, _) => "one character".to_string(),
            (ParamKind::Choice(words), MaskArg::Text(s)) if words.contains(&s.as_str()) => {
                return Ok(());
            }
            (ParamKind::Choice(words), _) => format!("one of {}", words.join(", ")),
        };
        Err(MaskError::OutOfRange {
            mask,
            parameter: self.name,
            must,
            found: arg.clone(),
        })
    }

    fn rank(&self, word: &str) -> Option<usize> {
        match self.kind {
            ParamKind::Choice(words) => words.iter().position(|w| *w == word),
            _ => None,
        }
    }
}

/// The masks a column of `kind` accepts for `output_masked` when its policy lists none, the first
/// being the kind's default (the one the development sample applies).
pub fn default_masks(kind: ColumnKind) -> &'static [&'static str] {
    match kind {
        ColumnKind::IdCard => &[
            "mask_id_card",
            "id_card_birth_year",
            "id_card_region",
            "id_card_gender",
            "id_card_valid",
            "pseudonym",
        ],
        ColumnKind::Phone => &["mask_phone", "pseudonym"],
        ColumnKind::Name => &["mask_name"],
        ColumnKind::BankCard => &["mask_bank_card", "pseudonym"],
        ColumnKind::Address => &["mask_address"],
        ColumnKind::Email => &["mask_email", "pseudonym"],
        ColumnKind::Plate => &["mask_plate", "pseudonym"],
        ColumnKind::IpAddress => &["mask_ip"],
        ColumnKind::BirthDate => &["age_band", "date_trunc_to"],
        ColumnKind::QuasiIdentifier => &["age_band", "date_trunc_to"],
        ColumnKind::Dimension | ColumnKind::Measure | ColumnKind::Other => &[],
    }
}

/// A mask a column's policy approves, optionally with a bound on its parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovedMask {
    /// The mask function.
    pub name: String,
    /// The least safe parameters approved; `None`: any parameters in the function's range.
    pub bound: Option<Vec<MaskArg>>,
}

impl fmt::Display for ApprovedMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.bound {
            None => write!(f, "{}", self.name),
            Some(b) => {
                let args: Vec<String> = b.iter().map(|a| a.to_string()).collect();
                write!(f, "{}({})", self.name, args.join(", "))
            }
        }
    }
}

impl ApprovedMask {
    /// Parses a policy's spelling: `mask_phone` or `keep_first_n_last_m(3, 4)`.
    pub fn parse(text: &str) -> Result<ApprovedMask, MaskError> {
        let text = text.trim();
        let (name, args) = match text.split_once('(') {
            None => (text, None),
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix(')')
                    .ok_or_else(|| MaskError::Unclosed(text.to_string()))?;
                let args = inner
                    .split(',')
                    .map(|a| parse_arg(a.trim()))
                    .collect::<Result<Vec<_>, _>>()?;
                (name.trim(), Some(args))
            }
        };
        let spec = lookup(name).ok_or_else(|| MaskError::unknown(name))?;
        let bound = match args {
            None if spec.needs_bound => {
                return Err(MaskError::NeedsBound {
                    mask: spec.name,
                    parameters: spec.param_names(),
                });
            }
            None => None,
            Some(a) => Some(spec.resolve(&a)?),
        };
        Ok(ApprovedMask {
            name: name.to_string(),
            bound,
        })
    }

    /// Decides a call of this mask with `args` (as written in the query).
    pub fn admits(&self, args: &[MaskArg]) -> Result<(), MaskError> {
        let spec = lookup(&self.name).ok_or_else(|| MaskError::unknown(&self.name))?;
        let resolved = spec.resolve(args)?;
        match &self.bound {
            None => Ok(()),
            Some(bound) => spec.within(&resolved, bound),
        }
    }
}

fn parse_arg(s: &str) -> Result<MaskArg, MaskError> {
    if let Some(inner) = s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return Ok(MaskArg::Text(inner.replace("''", "'")));
    }
    s.parse::<i64>()
        .map(MaskArg::Int)
        .map_err(|_| MaskError::BadParameter(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approve(policy: &str, args: &[MaskArg]) -> Result<(), MaskError> {
        ApprovedMask::parse(policy)?.admits(args)
    }

    #[test]
    fn parameters_are_checked_against_ranges() {
        let id = lookup("mask_id_card").expect("mask");
        assert_eq!(
            id.resolve(&[]).expect("defaults"),
            vec![MaskArg::Int(6), MaskArg::Int(4)]
        );
        assert!(id.resolve(&[MaskArg::Int(7)]).is_err());
        assert!(id.resolve(&[MaskArg::Int(3), MaskArg::Int(1)]).is_err());
        assert!(
            id.resolve(&[MaskArg::Int(3), MaskArg::Int(2), MaskArg::Int(1)])
                .is_err()
        );
        assert!(lookup("date_trunc_to").expect("mask").resolve(&[]).is_err());
        let err = lookup("age_band")
            .expect("mask")
            .resolve(&[MaskArg::Int(1)])
            .expect_err("too narrow");
        assert!(
            matches!(
                err,
                MaskError::OutOfRange {
                    parameter: "width",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("from 5 to 100"), "{err}");
    }

    #[test]
    fn bounds_decide_generic_masks() {
        let i = MaskArg::Int;
        assert!(approve("keep_first_n_last_m(3, 4)", &[i(3), i(4)]).is_ok());
        assert!(approve("keep_first_n_last_m(3, 4)", &[i(1), i(0)]).is_ok());
        let err = approve("keep_first_n_last_m(3, 4)", &[i(18), i(0)]).expect_err("keeps all");
        assert!(matches!(err, MaskError::LessSafe { .. }), "{err}");
        assert!(err.to_string().contains("at most 3"), "{err}");
        assert!(approve("mask_first_n_last_m(2, 2)", &[i(1), i(5)]).is_err());
        assert!(approve("mask_from_x_to_y(4, 15)", &[i(2), i(16)]).is_ok());
        assert!(approve("mask_from_x_to_y(4, 15)", &[i(5), i(16)]).is_err());
        assert!(approve("keep_from_x_to_y(1, 6)", &[i(2), i(6)]).is_ok());
        assert!(approve("keep_from_x_to_y(1, 6)", &[i(1), i(7)]).is_err());
        let t = |s: &str| MaskArg::Text(s.into());
        assert!(approve("mask_before_char('@')", &[t("@")]).is_ok());
        assert!(approve("mask_before_char('@')", &[t(".")]).is_err());
        assert!(approve("date_trunc_to('quarter')", &[t("year")]).is_ok());
        assert!(approve("date_trunc_to('quarter')", &[t("month")]).is_err());
        assert!(approve("id_card_region", &[t("province")]).is_ok());
        assert!(approve("id_card_region('province')", &[]).is_err());
    }

    #[test]
    fn generic_masks_need_a_bound() {
        let err = ApprovedMask::parse("keep_first_n_last_m").expect_err("unbounded");
        assert!(
            err.to_string().contains("keep_first_n_last_m(n, m)"),
            "{err}"
        );
        assert!(ApprovedMask::parse("bucket(10)").is_ok());
        assert!(ApprovedMask::parse("nope").is_err());
        assert!(ApprovedMask::parse("mask_id_card(7, 4)").is_err());
        assert_eq!(
            ApprovedMask::parse("mask_after_char( '@' )")
                .expect("parse")
                .to_string(),
            "mask_after_char('@')"
        );
    }

    #[test]
    fn every_default_mask_exists_and_needs_no_bound() {
        for (_, kind) in ColumnKind::ALL {
            for m in default_masks(kind) {
                let spec = lookup(m).expect("known mask");
                assert!(!spec.needs_bound, "{m}");
            }
        }
    }
}
