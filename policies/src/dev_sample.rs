//! What the development sample keeps of each column. Development runs on a sample of at most
//! [`MAX_SHARE`] of a dataset (a dataset of fewer than [`MIN_ROWS`] rows gets none), desensitized
//! column by column:
//!
//! | column | in the sample |
//! | --- | --- |
//! | the privacy unit, `id_card`, join-only identifiers | a keyed pseudonym (joins still work) |
//! | `name`, `phone`, `bank_card`, `email`, `address`, `plate` | a keyed pseudonym (a mask keeps enough — the last four digits of a phone — to find a known person's rows) |
//! | `quasi_identifier`, `birth_date` | generalized: numbers to 10-year bands, dates to their year, text left out — or as the policy's `sample` key says |
//! | `measure` | perturbed: ±10% noise (±1 at least for integers), then rounded to two significant digits |
//! | dates that are not quasi-identifiers | as the policy's `sample` key says (`month`, `year`), else kept |
//! | `secret` (no use at all) | left out |
//! | everything else | kept |
//!
//! Then rare combinations are suppressed: a sample row whose values of the quasi-identifiers
//! (kind `quasi_identifier` or `birth_date`, and columns flagged `personal`, as the sample holds
//! them) are shared by fewer than [`SAMPLE_K`] rows of the sample loses those values (they become
//! NULL); if fewer than [`SAMPLE_K`] rows lose them, those rows are left out (k-anonymity). The
//! resulting columns may be used freely in development queries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;
use crate::masks::ApprovedMask;
use crate::model::{ColumnKind, ColumnPolicy, DatasetPolicy, Use, preset};

/// The version of these rules: samples built under an older one are rebuilt at startup.
pub const RULES_VERSION: u32 = 2;

/// The largest share of a dataset a development sample may hold.
pub const MAX_SHARE: f64 = 0.10;
/// Datasets smaller than this get no development sample at all (a share of a few rows would
/// be a few persons).
pub const MIN_ROWS: u64 = 100;
/// Every combination of quasi-identifier values in a sample is shared by at least this many
/// rows; rarer rows are left out.
pub const SAMPLE_K: usize = 5;

/// How a column's values are coarsened in the sample: the policy's `sample` key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Generalization {
    /// Numbers to the lower bound of bands of this width (`band(10)`: 1961 → 1960).
    Band(u32),
    /// Dates to the first day of their month (`month`).
    Month,
    /// Dates to the first day of their year (`year`).
    Year,
    /// Replaced by another column's value (`from(home_province)`: a city by its province).
    From(String),
    /// Perturbed and rounded (`perturb`): measures.
    Perturb,
    /// Left out (`drop`).
    Drop,
    /// Kept as stored (`keep`).
    Keep,
}

impl Generalization {
    /// Parses the policy's `sample` value for `column`.
    pub fn parse(column: &str, text: &str) -> Result<Generalization, PolicyError> {
        let t = text.trim();
        let bad = || {
            PolicyError::Invalid(format!(
                "column {column}: sample = \"{t}\" is not one of band(N), month, year, \
                 from(column), perturb, drop, keep"
            ))
        };
        Ok(match t {
            "month" => Generalization::Month,
            "year" => Generalization::Year,
            "perturb" => Generalization::Perturb,
            "drop" => Generalization::Drop,
            "keep" => Generalization::Keep,
            _ => {
                let (head, rest) = t.split_once('(').ok_or_else(bad)?;
                let arg = rest.strip_suffix(')').ok_or_else(bad)?.trim();
                match head.trim() {
                    "band" => {
                        let w: u32 = arg.parse().map_err(|_| bad())?;
                        if !(2..=1000).contains(&w) {
                            return Err(PolicyError::Invalid(format!(
                                "column {column}: band width {w} must be between 2 and 1000"
                            )));
                        }
                        Generalization::Band(w)
                    }
                    "from" if !arg.is_empty() => Generalization::From(arg.to_string()),
                    _ => return Err(bad()),
                }
            }
        })
    }

    /// What the sample holds, in words.
    pub fn describe(&self) -> String {
        match self {
            Generalization::Band(w) => format!("generalized to {w}-wide bands"),
            Generalization::Month => "generalized to the month".into(),
            Generalization::Year => "generalized to the year".into(),
            Generalization::From(c) => format!("replaced by the coarser {c}"),
            Generalization::Perturb => {
                "perturbed (±10%, ±1 at least for integers) and rounded to two significant digits"
                    .into()
            }
            Generalization::Drop => "left out".into(),
            Generalization::Keep => "kept".into(),
        }
    }
}

/// How one column appears in the development sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Treatment {
    /// Not in the sample.
    Drop,
    /// Replaced by its keyed pseudonym (identifiers and the privacy unit).
    Pseudonym,
    /// Replaced by the column's default mask.
    Mask(ApprovedMask),
    /// Coarsened, perturbed or kept as the generalization says.
    Generalize(Generalization),
    /// Sampled as stored.
    Keep,
}

impl Treatment {
    /// What the sample holds of the column, in words (`dataset show` states it).
    pub fn describe(&self) -> String {
        match self {
            Treatment::Drop => "left out".into(),
            Treatment::Pseudonym => "pseudonymized (keyed, joins across samples)".into(),
            Treatment::Mask(m) => format!("masked with {m}"),
            Treatment::Generalize(g) => g.describe(),
            Treatment::Keep => "kept".into(),
        }
    }
}

/// Whether an Arrow type (as its display name) is a date or time.
fn is_date(data_type: &str) -> bool {
    let t = data_type.to_ascii_lowercase();
    t.starts_with("date") || t.starts_with("timestamp")
}

/// Whether an Arrow type (as its display name) is a number.
fn is_number(data_type: &str) -> bool {
    let t = data_type.to_ascii_lowercase();
    t.starts_with("int")
        || t.starts_with("uint")
        || t.starts_with("float")
        || t.starts_with("decimal")
}

/// The treatment of column `name` (of Arrow type `data_type`) under `policy`.
pub fn treatment(name: &str, data_type: &str, policy: &DatasetPolicy) -> Treatment {
    let Some(col) = policy.column(name) else {
        return Treatment::Drop;
    };
    if col.uses.is_empty() {
        return Treatment::Drop;
    }
    let outputs = col.allows(Use::Output) || col.allows(Use::GroupBy);
    if name == policy.privacy_unit
        || col.kind == ColumnKind::IdCard
        || (!outputs && col.allows(Use::Join))
    {
        return Treatment::Pseudonym;
    }
    if col.kind.is_personal_identifier() {
        // Even a masked phone or name (first three and last four digits, the surname) narrows
        // a sample to the one person an analyst knows; a pseudonym narrows nothing.
        return Treatment::Pseudonym;
    }
    if let Some(g) = &col.sample {
        return match g {
            Generalization::Drop => Treatment::Drop,
            Generalization::Keep => Treatment::Keep,
            g => Treatment::Generalize(g.clone()),
        };
    }
    match col.kind {
        ColumnKind::BirthDate | ColumnKind::QuasiIdentifier if is_date(data_type) => {
            Treatment::Generalize(Generalization::Year)
        }
        ColumnKind::QuasiIdentifier if is_number(data_type) => {
            Treatment::Generalize(Generalization::Band(10))
        }
        // A quasi-identifying text with no coarser form declared is left out.
        ColumnKind::BirthDate | ColumnKind::QuasiIdentifier => Treatment::Drop,
        ColumnKind::Measure if is_number(data_type) => {
            Treatment::Generalize(Generalization::Perturb)
        }
        _ => match col.masks.first() {
            Some(m) if !outputs && col.allows(Use::OutputMasked) => Treatment::Mask(m.clone()),
            _ => Treatment::Keep,
        },
    }
}

/// The columns whose combination the sample's k-anonymity is judged on: the quasi-identifiers
/// (kind `quasi_identifier` or `birth_date`) and the columns flagged personal, as the sample
/// holds them (coarsened or kept; perturbed measures and masked or pseudonymized columns are
/// not among them).
pub fn quasi_identifiers(columns: &[(String, Treatment)], policy: &DatasetPolicy) -> Vec<String> {
    columns
        .iter()
        .filter(|(name, t)| {
            matches!(
                t,
                Treatment::Keep
                    | Treatment::Generalize(
                        Generalization::Band(_)
                            | Generalization::Month
                            | Generalization::Year
                            | Generalization::From(_)
                    )
            ) && policy.column(name).is_some_and(|c| {
                c.personal || matches!(c.kind, ColumnKind::QuasiIdentifier | ColumnKind::BirthDate)
            })
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// The policy of the sample: every kept column may be used freely (its values are desensitized).
pub fn sample_policy(policy: &DatasetPolicy, kept: &[String]) -> DatasetPolicy {
    let (uses, functions) = preset("plain").unwrap_or_default();
    let columns: BTreeMap<String, ColumnPolicy> = kept
        .iter()
        .filter_map(|name| {
            let col = policy.column(name)?;
            Some((
                name.clone(),
                ColumnPolicy {
                    uses: uses.clone(),
                    aggregate_functions: functions.clone(),
                    masks: Vec::new(),
                    preset: Some("plain".to_string()),
                    data_type: None,
                    ..col.clone()
                },
            ))
        })
        .collect();
    DatasetPolicy {
        privacy_unit: policy.privacy_unit.clone(),
        columns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy_file::parse_policy;

    #[test]
    fn identifying_columns_never_kept_and_quasi_identifiers_are_coarsened() {
        let p = parse_policy(
            r#"
privacy_unit = "id"
[columns.id]
kind = "id_card"
grade = "important"
uses = "identifier"
[columns.phone]
kind = "phone"
grade = "important"
uses = "masked"
[columns.code]
kind = "other"
grade = "general"
uses = "identifier"
[columns.born]
kind = "birth_date"
grade = "general"
uses = "dimension"
[columns.birth_year]
kind = "quasi_identifier"
grade = "general"
personal = true
uses = "dimension"
[columns.city]
kind = "quasi_identifier"
grade = "general"
uses = "dimension"
sample = "from(province)"
[columns.province]
kind = "quasi_identifier"
grade = "general"
uses = "dimension"
sample = "keep"
[columns.day]
kind = "dimension"
grade = "general"
uses = "dimension"
sample = "month"
[columns.district]
kind = "dimension"
grade = "general"
uses = "dimension"
[columns.spend]
kind = "measure"
grade = "general"
uses = "measure"
[columns.note]
kind = "other"
grade = "general"
uses = "secret"
"#,
        )
        .expect("policy");
        let t = |name: &str, ty: &str| treatment(name, ty, &p);
        assert_eq!(t("id", "Utf8"), Treatment::Pseudonym);
        assert_eq!(t("code", "Utf8"), Treatment::Pseudonym);
        assert_eq!(t("phone", "Utf8"), Treatment::Pseudonym);
        assert_eq!(
            t("born", "Date32"),
            Treatment::Generalize(Generalization::Year)
        );
        assert_eq!(
            t("birth_year", "Int32"),
            Treatment::Generalize(Generalization::Band(10))
        );
        assert_eq!(
            t("city", "Utf8"),
            Treatment::Generalize(Generalization::From("province".into()))
        );
        assert_eq!(t("province", "Utf8"), Treatment::Keep);
        assert_eq!(
            t("day", "Date32"),
            Treatment::Generalize(Generalization::Month)
        );
        assert_eq!(t("district", "Utf8"), Treatment::Keep);
        assert_eq!(
            t("spend", "Decimal128(12, 2)"),
            Treatment::Generalize(Generalization::Perturb)
        );
        assert_eq!(t("note", "Utf8"), Treatment::Drop);
        let columns: Vec<(String, Treatment)> =
            ["birth_year", "city", "province", "day", "spend", "district"]
                .iter()
                .map(|n| {
                    let ty = match *n {
                        "day" => "Date32",
                        "birth_year" => "Int32",
                        "spend" => "Float64",
                        _ => "Utf8",
                    };
                    (n.to_string(), t(n, ty))
                })
                .collect();
        let mut q = quasi_identifiers(&columns, &p);
        q.sort();
        assert_eq!(q, vec!["birth_year", "city", "province"]);
        let sp = sample_policy(&p, &["id".to_string(), "spend".to_string()]);
        assert_eq!(sp.columns.len(), 2);
        assert!(sp.columns["id"].allows(Use::Output));
    }

    #[test]
    fn sample_rules_parse_and_bad_ones_are_refused() {
        assert_eq!(
            Generalization::parse("c", "band(5)"),
            Ok(Generalization::Band(5))
        );
        assert_eq!(
            Generalization::parse("c", "from(x)"),
            Ok(Generalization::From("x".into()))
        );
        for bad in ["band(1)", "band(x)", "bands(5)", "from()", "week", "band(5"] {
            assert!(Generalization::parse("c", bad).is_err(), "{bad}");
        }
    }
}
