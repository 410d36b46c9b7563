//! Column classification: what a column is (kind, grade) and how a query may use it (uses).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;
use crate::masks::{ApprovedMask, default_masks};

/// What a column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// Resident identity card number.
    IdCard,
    /// Mobile or landline number.
    Phone,
    /// A person's name.
    Name,
    /// Bank card number.
    BankCard,
    /// Postal address.
    Address,
    /// E-mail address.
    Email,
    /// Vehicle licence plate.
    Plate,
    /// IPv4 or IPv6 address.
    IpAddress,
    /// Date of birth.
    BirthDate,
    /// An attribute that identifies in combination (age, occupation, ...).
    QuasiIdentifier,
    /// A category to group by.
    Dimension,
    /// A quantity to aggregate.
    Measure,
    /// Anything else.
    Other,
}

impl ColumnKind {
    /// All kinds with their policy-file names.
    pub const ALL: [(&'static str, ColumnKind); 13] = [
        ("id_card", ColumnKind::IdCard),
        ("phone", ColumnKind::Phone),
        ("name", ColumnKind::Name),
        ("bank_card", ColumnKind::BankCard),
        ("address", ColumnKind::Address),
        ("email", ColumnKind::Email),
        ("plate", ColumnKind::Plate),
        ("ip_address", ColumnKind::IpAddress),
        ("birth_date", ColumnKind::BirthDate),
        ("quasi_identifier", ColumnKind::QuasiIdentifier),
        ("dimension", ColumnKind::Dimension),
        ("measure", ColumnKind::Measure),
        ("other", ColumnKind::Other),
    ];

    /// Kinds that single out a person by themselves (an ID, a phone, a name, ...).
    pub fn is_personal_identifier(self) -> bool {
        matches!(
            self,
            ColumnKind::IdCard
                | ColumnKind::Phone
                | ColumnKind::Name
                | ColumnKind::BankCard
                | ColumnKind::Address
                | ColumnKind::Email
                | ColumnKind::Plate
                | ColumnKind::IpAddress
        )
    }

    /// The policy-file name of this kind.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .unwrap_or("other")
    }

    fn parse(column: &str, s: &str) -> Result<Self, PolicyError> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, k)| *k)
            .ok_or_else(|| PolicyError::UnknownName {
                what: "kind",
                column: column.to_string(),
                value: s.to_string(),
                expected: names(Self::ALL.iter().map(|(n, _)| *n)),
            })
    }
}

/// Data grade under GB/T 43697-2024.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grade {
    /// General data.
    General,
    /// Important data.
    Important,
    /// Core data: refused at registration.
    Core,
}

impl Grade {
    /// The policy-file name of this grade.
    pub fn name(self) -> &'static str {
        match self {
            Grade::General => "general",
            Grade::Important => "important",
            Grade::Core => "core",
        }
    }

    fn parse(column: &str, s: &str) -> Result<Self, PolicyError> {
        match s {
            "general" => Ok(Grade::General),
            "important" => Ok(Grade::Important),
            "core" => Ok(Grade::Core),
            _ => Err(PolicyError::UnknownName {
                what: "grade",
                column: column.to_string(),
                value: s.to_string(),
                expected: "general, important".to_string(),
            }),
        }
    }
}

/// One way a query may use a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Use {
    /// Appear in the result as stored.
    Output,
    /// Appear in the result only through an approved mask function.
    OutputMasked,
    /// Be a GROUP BY key (its values then appear as group labels).
    GroupBy,
    /// Be the argument of an allowed aggregate function.
    Aggregate,
    /// Be compared in WHERE / HAVING.
    Filter,
    /// Be an equi-join key.
    Join,
}

impl Use {
    /// All uses with their policy-file names.
    pub const ALL: [(&'static str, Use); 6] = [
        ("output", Use::Output),
        ("output_masked", Use::OutputMasked),
        ("group_by", Use::GroupBy),
        ("aggregate", Use::Aggregate),
        ("filter", Use::Filter),
        ("join", Use::Join),
    ];

    /// The policy-file name of this use.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, u)| *u == self)
            .map(|(n, _)| *n)
            .unwrap_or("output")
    }

    fn parse(column: &str, s: &str) -> Result<Self, PolicyError> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, u)| *u)
            .ok_or_else(|| PolicyError::UnknownName {
                what: "use",
                column: column.to_string(),
                value: s.to_string(),
                expected: names(Self::ALL.iter().map(|(n, _)| *n)),
            })
    }
}

impl fmt::Display for Use {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Aggregate functions allowed by default on a column with the `aggregate` use. Functions that
/// reveal a single value (min, max, median, first/last) are deliberately absent.
pub const DEFAULT_AGGREGATES: [&str; 9] = [
    "count",
    "count_distinct",
    "sum",
    "avg",
    "stddev",
    "stddev_pop",
    "var",
    "var_pop",
    "mean",
];

/// Aggregate functions a policy may list. Anything else is unknown.
pub const KNOWN_AGGREGATES: [&str; 16] = [
    "count",
    "count_distinct",
    "sum",
    "avg",
    "mean",
    "stddev",
    "stddev_pop",
    "var",
    "var_pop",
    "min",
    "max",
    "median",
    "approx_distinct",
    "approx_median",
    "first_value",
    "last_value",
];

/// Aggregate functions allowed on identifiers: "unique visitors" must stay possible.
pub const IDENTIFIER_AGGREGATES: [&str; 2] = ["count", "count_distinct"];

/// Named sets of uses (DESIGN.md "the policy model").
pub const PRESETS: [&str; 6] = [
    "plain",
    "masked",
    "dimension",
    "measure",
    "identifier",
    "secret",
];

/// The uses and aggregate functions of a preset.
pub fn preset(name: &str) -> Option<(BTreeSet<Use>, BTreeSet<String>)> {
    let defaults = || DEFAULT_AGGREGATES.iter().map(|s| s.to_string()).collect();
    let set = |u: &[Use]| u.iter().copied().collect::<BTreeSet<_>>();
    Some(match name {
        "plain" => (
            set(&[
                Use::Output,
                Use::GroupBy,
                Use::Aggregate,
                Use::Filter,
                Use::Join,
            ]),
            defaults(),
        ),
        "masked" => (set(&[Use::OutputMasked]), BTreeSet::new()),
        // Counting a category's distinct values ("how many hotels") discloses no row.
        "dimension" => (
            set(&[Use::Output, Use::GroupBy, Use::Filter, Use::Aggregate]),
            IDENTIFIER_AGGREGATES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
        "measure" => (set(&[Use::Aggregate, Use::Filter]), defaults()),
        "identifier" => (
            set(&[Use::Join, Use::Aggregate]),
            IDENTIFIER_AGGREGATES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
        "secret" => (BTreeSet::new(), BTreeSet::new()),
        _ => return None,
    })
}

/// The policy of one column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnPolicy {
    /// What the column holds.
    pub kind: ColumnKind,
    /// Its grade.
    pub grade: Grade,
    /// Personal information (PIPL).
    pub personal: bool,
    /// Sensitive personal information (PIPL).
    pub sensitive_personal: bool,
    /// How queries may use it.
    pub uses: BTreeSet<Use>,
    /// Aggregate functions allowed when `uses` holds [`Use::Aggregate`].
    pub aggregate_functions: BTreeSet<String>,
    /// Masks approved for [`Use::OutputMasked`], the first being the column's default mask.
    pub masks: Vec<ApprovedMask>,
    /// The preset the uses came from, if any (for explanations).
    pub preset: Option<String>,
    /// A declared Arrow type (e.g. `date32`, `decimal128(12,2)`), used to parse CSV and checked
    /// against the data.
    pub data_type: Option<String>,
    /// Declared bounds of a measure's values: differential privacy clamps to them (they are
    /// never taken from the data).
    #[serde(default)]
    pub bounds: Option<Bounds>,
    /// How the development sample coarsens the column (the policy's `sample` key; none: the
    /// default of its kind, see [`crate::dev_sample`]).
    #[serde(default)]
    pub sample: Option<crate::dev_sample::Generalization>,
}

/// The declared range of a measure's values.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

// Bounds are validated finite, so equality is total.
impl Eq for Bounds {}

impl ColumnPolicy {
    /// Whether `use_` is allowed.
    pub fn allows(&self, use_: Use) -> bool {
        self.uses.contains(&use_)
    }

    /// Whether aggregate function `func` is allowed.
    pub fn allows_aggregate(&self, func: &str) -> bool {
        self.allows(Use::Aggregate) && self.aggregate_functions.contains(func)
    }

    /// A short description of what is allowed, for refusal messages.
    pub fn describe_uses(&self) -> String {
        if self.uses.is_empty() {
            return "none".to_string();
        }
        self.uses
            .iter()
            .map(|u| {
                if *u == Use::Aggregate {
                    let f: Vec<&str> = self
                        .aggregate_functions
                        .iter()
                        .map(|s| s.as_str())
                        .collect();
                    format!("aggregate[{}]", f.join(", "))
                } else {
                    u.name().to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `kind, preset P` — how the column is classified, for refusal messages.
    pub fn describe_class(&self) -> String {
        match &self.preset {
            Some(p) => format!("{}, preset {}", self.kind.name(), p),
            None => self.kind.name().to_string(),
        }
    }

    pub(crate) fn build(column: &str, spec: ColumnSpec) -> Result<Self, PolicyError> {
        let ColumnSpec {
            kind,
            grade,
            personal,
            sensitive_personal,
            uses,
            aggregate_functions: functions,
            masks,
            data_type,
            bounds,
            sample,
        } = spec;
        let kind = ColumnKind::parse(column, &kind)?;
        let sample = sample
            .map(|s| crate::dev_sample::Generalization::parse(column, &s))
            .transpose()?;
        let grade = Grade::parse(column, &grade)?;
        if grade == Grade::Core {
            return Err(PolicyError::CoreData(column.to_string()));
        }
        let (uses, mut aggregate_functions, preset_name) = match uses {
            UsesSpec::Preset(p) => {
                let (u, f) = preset(&p).ok_or_else(|| PolicyError::UnknownName {
                    what: "preset",
                    column: column.to_string(),
                    value: p.clone(),
                    expected: names(PRESETS.iter().copied()),
                })?;
                (u, f, Some(p))
            }
            UsesSpec::List(list) => {
                let mut u = BTreeSet::new();
                for s in &list {
                    u.insert(Use::parse(column, s)?);
                }
                let f = if u.contains(&Use::Aggregate) {
                    DEFAULT_AGGREGATES.iter().map(|s| s.to_string()).collect()
                } else {
                    BTreeSet::new()
                };
                (u, f, None)
            }
        };
        if let Some(list) = functions {
            aggregate_functions = BTreeSet::new();
            for f in list {
                let f = f.to_ascii_lowercase();
                if !KNOWN_AGGREGATES.contains(&f.as_str()) {
                    return Err(PolicyError::UnknownFunction {
                        column: column.to_string(),
                        function: f,
                    });
                }
                aggregate_functions.insert(f);
            }
        }
        let masks = approved_masks(column, kind, &uses, masks)?;
        let bounds = match bounds {
            None => None,
            Some([lo, hi]) if lo.is_finite() && hi.is_finite() && lo < hi => {
                if !uses.contains(&Use::Aggregate) {
                    return Err(PolicyError::Invalid(format!(
                        "column {column} declares bounds but may not be aggregated"
                    )));
                }
                Some(Bounds { lo, hi })
            }
            Some([lo, hi]) => {
                return Err(PolicyError::Invalid(format!(
                    "column {column}: bounds [{lo}, {hi}] must be finite with lower < upper"
                )));
            }
        };
        Ok(ColumnPolicy {
            kind,
            grade,
            personal,
            sensitive_personal: sensitive_personal || kind == ColumnKind::IdCard,
            uses,
            aggregate_functions,
            masks,
            preset: preset_name,
            data_type,
            bounds,
            sample,
        })
    }
}

/// One column's entry in a policy file, before validation.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Kind name.
    pub kind: String,
    /// Grade name.
    pub grade: String,
    /// Personal information.
    #[serde(default)]
    pub personal: bool,
    /// Sensitive personal information.
    #[serde(default)]
    pub sensitive_personal: bool,
    /// A preset or a list of uses.
    pub uses: UsesSpec,
    /// Overrides the default aggregate list.
    #[serde(default)]
    pub aggregate_functions: Option<Vec<String>>,
    /// Masks approved for `output_masked` (default: the kind's masks), e.g.
    /// `["mask_phone", "keep_first_n_last_m(3, 4)"]`.
    #[serde(default)]
    pub masks: Option<Vec<String>>,
    /// Declared Arrow type.
    #[serde(default, rename = "type")]
    pub data_type: Option<String>,
    /// How the development sample coarsens the column: `band(N)`, `month`, `year`,
    /// `from(column)`, `perturb`, `drop`, `keep`.
    #[serde(default)]
    pub sample: Option<String>,
    /// Declared value range of a measure, `[lower, upper]`, for differential privacy.
    #[serde(default)]
    pub bounds: Option<[f64; 2]>,
}

/// The masks a column approves: those its policy lists, or its kind's defaults when it allows
/// `output_masked` and lists none.
fn approved_masks(
    column: &str,
    kind: ColumnKind,
    uses: &BTreeSet<Use>,
    listed: Option<Vec<String>>,
) -> Result<Vec<ApprovedMask>, PolicyError> {
    let bad = |reason: String| PolicyError::BadMask {
        column: column.to_string(),
        reason,
    };
    let masked = uses.contains(&Use::OutputMasked);
    match listed {
        Some(list) => {
            if !masked && !uses.contains(&Use::Output) {
                return Err(bad(
                    "the column lists masks but does not allow output_masked".to_string(),
                ));
            }
            if list.is_empty() && masked {
                return Err(bad("output_masked needs at least one mask".to_string()));
            }
            list.iter()
                .map(|m| {
                    ApprovedMask::parse(m).map_err(|source| PolicyError::Mask {
                        column: column.to_string(),
                        source,
                    })
                })
                .collect()
        }
        None if masked => {
            let defaults = default_masks(kind);
            if defaults.is_empty() {
                return Err(bad(format!(
                    "kind {} has no default mask; list the approved masks with `masks = [...]`",
                    kind.name()
                )));
            }
            Ok(defaults
                .iter()
                .map(|m| ApprovedMask {
                    name: m.to_string(),
                    bound: None,
                })
                .collect())
        }
        None => Ok(Vec::new()),
    }
}

/// How a policy file spells a column's uses: a preset name or a list of uses.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum UsesSpec {
    /// A preset name, e.g. `"measure"`.
    Preset(String),
    /// Explicit uses, e.g. `["group_by", "filter"]`.
    List(Vec<String>),
}

/// The policy of one dataset: every column's policy and the privacy-unit column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetPolicy {
    /// The column naming the person or firm the thresholds count.
    pub privacy_unit: String,
    /// Column name → policy. Every column of the data has exactly one entry.
    pub columns: BTreeMap<String, ColumnPolicy>,
}

impl DatasetPolicy {
    /// The policy of `column`, if it exists.
    pub fn column(&self, column: &str) -> Option<&ColumnPolicy> {
        self.columns.get(column)
    }

    /// Checks the policy against the data's columns (name, Arrow type as displayed): every
    /// column classified, no extra entries, a real privacy unit, declared types matching.
    pub fn validate_against(&self, schema: &[(String, String)]) -> Result<(), PolicyError> {
        for (name, actual) in schema {
            let col = self
                .columns
                .get(name)
                .ok_or_else(|| PolicyError::MissingColumn(name.clone()))?;
            if let Some(declared) = &col.data_type
                && !same_type(declared, actual)
            {
                return Err(PolicyError::TypeMismatch {
                    column: name.clone(),
                    declared: declared.clone(),
                    actual: actual.clone(),
                });
            }
        }
        for name in self.columns.keys() {
            if !schema.iter().any(|(n, _)| n == name) {
                return Err(PolicyError::UnknownColumn(name.clone()));
            }
        }
        if !schema.iter().any(|(n, _)| *n == self.privacy_unit) {
            return Err(PolicyError::BadPrivacyUnit(self.privacy_unit.clone()));
        }
        for (name, col) in &self.columns {
            if let Some(crate::dev_sample::Generalization::From(other)) = &col.sample {
                let ok = other != name
                    && self.columns.get(other).is_some_and(|o| {
                        !o.kind.is_personal_identifier() && o.kind != ColumnKind::IdCard
                    });
                if !ok {
                    return Err(PolicyError::Invalid(format!(
                        "column {name}: sample = \"from({other})\" must name another column of \
                         the dataset that is not an identifier"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Compares a declared type with Arrow's display of the actual one, ignoring case and spaces.
fn same_type(declared: &str, actual: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase()
    };
    let (d, a) = (norm(declared), norm(actual));
    d == a
        || matches!(
            (d.as_str(), a.as_str()),
            ("utf8", "utf8view") | ("utf8", "largeutf8") | ("string", "utf8") | ("date", "date32")
        )
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.collect::<Vec<_>>().join(", ")
}
