//! Reading a dataset policy file (TOML).
//!
//! ```toml
//! privacy_unit = "id_number"
//!
//! [columns.id_number]
//! kind = "id_card"
//! grade = "important"
//! personal = true
//! uses = "identifier"              # a preset, or a list: ["group_by", "filter"]
//!
//! [columns.spend_yuan]
//! kind = "measure"
//! grade = "general"
//! uses = "measure"
//! aggregate_functions = ["sum", "avg", "count"]   # optional: overrides the default list
//! type = "decimal128(12, 2)"                      # optional: used to parse CSV, checked on upload
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::PolicyError;
use crate::model::{ColumnPolicy, ColumnSpec, DatasetPolicy};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    privacy_unit: String,
    columns: BTreeMap<String, ColumnSpec>,
}

/// Policy files larger than this are refused before parsing.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;

/// Parses and validates a policy file's text. The result still has to be checked against the
/// data with [`DatasetPolicy::validate_against`].
pub fn parse_policy(text: &str) -> Result<DatasetPolicy, PolicyError> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(PolicyError::Invalid(format!(
            "policy file is {} bytes; the limit is {MAX_POLICY_BYTES}",
            text.len()
        )));
    }
    let repr: FileRepr = toml::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;
    if repr.columns.is_empty() {
        return Err(PolicyError::Invalid(
            "policy file classifies no columns".to_string(),
        ));
    }
    let mut columns = BTreeMap::new();
    for (name, c) in repr.columns {
        let policy = ColumnPolicy::build(&name, c)?;
        columns.insert(name, policy);
    }
    if !columns.contains_key(&repr.privacy_unit) {
        return Err(PolicyError::BadPrivacyUnit(repr.privacy_unit));
    }
    Ok(DatasetPolicy {
        privacy_unit: repr.privacy_unit,
        columns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Use;

    const GOOD: &str = r#"
privacy_unit = "id"
[columns.id]
kind = "id_card"
grade = "important"
personal = true
uses = "identifier"
[columns.district]
kind = "dimension"
grade = "general"
uses = ["group_by", "filter"]
"#;

    #[test]
    fn parses_presets_and_lists() {
        let p = parse_policy(GOOD).expect("valid policy");
        let id = p.column("id").expect("id column");
        assert!(id.allows(Use::Join));
        assert!(id.allows_aggregate("count_distinct"));
        assert!(!id.allows(Use::Output));
        assert!(
            id.sensitive_personal,
            "id cards are sensitive personal information"
        );
        let d = p.column("district").expect("district");
        assert!(d.allows(Use::GroupBy) && !d.allows(Use::Output));
    }

    #[test]
    fn refuses_bad_input_precisely() {
        let check = |text: &str, expected: &str| {
            let err = parse_policy(text).expect_err("must be refused").to_string();
            assert!(err.contains(expected), "{err} should contain {expected}");
        };
        check(
            &GOOD.replace("\"identifier\"", "\"secrett\""),
            "unknown preset `secrett`",
        );
        check(&GOOD.replace("\"important\"", "\"core\""), "core data");
        check(
            &GOOD.replace("privacy_unit = \"id\"", "privacy_unit = \"nope\""),
            "privacy_unit `nope`",
        );
        check(
            &GOOD.replace("\"filter\"]", "\"filtre\"]"),
            "unknown use `filtre`",
        );
        check(&format!("{GOOD}\nextra = 1"), "not valid TOML");
        check("privacy_unit = ", "not valid TOML");
    }

    #[test]
    fn validates_against_schema() {
        let p = parse_policy(GOOD).expect("valid policy");
        let s = |cols: &[&str]| {
            cols.iter()
                .map(|c| (c.to_string(), "Utf8".to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(p.validate_against(&s(&["id", "district"])), Ok(()));
        assert_eq!(
            p.validate_against(&s(&["id", "district", "phone"])),
            Err(PolicyError::MissingColumn("phone".into()))
        );
        assert_eq!(
            p.validate_against(&s(&["id"])),
            Err(PolicyError::UnknownColumn("district".into()))
        );
    }
}
