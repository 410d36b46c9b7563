//! What the development sample keeps of each column. Development runs on sampled, desensitized
//! data: identifiers become pseudonyms (so joins still work), personal columns go through their
//! default mask, quasi-identifiers are generalized, secret columns are left out, and everything
//! else is sampled as is. The resulting columns may be used freely in development queries.

use std::collections::BTreeMap;

use crate::masks::{ApprovedMask, default_masks};
use crate::model::{ColumnKind, ColumnPolicy, DatasetPolicy, Use, preset};

/// How one column appears in the development sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Treatment {
    /// Not in the sample (no allowed use at all).
    Drop,
    /// Replaced by its keyed pseudonym (identifiers and the privacy unit).
    Pseudonym,
    /// Replaced by the column's default mask.
    Mask(ApprovedMask),
    /// Generalized: dates to their year.
    Generalize,
    /// Sampled as stored.
    Keep,
}

/// The treatment of column `name` under `policy`.
pub fn treatment(name: &str, policy: &DatasetPolicy) -> Treatment {
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
    let default_mask = || {
        col.masks.first().cloned().or_else(|| {
            default_masks(col.kind).first().map(|m| ApprovedMask {
                name: m.to_string(),
                bound: None,
            })
        })
    };
    if col.kind.is_personal_identifier() {
        // Masked by kind even where the policy would allow raw output.
        return default_mask().map_or(Treatment::Pseudonym, Treatment::Mask);
    }
    if matches!(
        col.kind,
        ColumnKind::BirthDate | ColumnKind::QuasiIdentifier
    ) {
        return Treatment::Generalize;
    }
    match col.masks.first() {
        Some(m) if !outputs && col.allows(Use::OutputMasked) => Treatment::Mask(m.clone()),
        _ => Treatment::Keep,
    }
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
    fn identifying_columns_never_kept() {
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
        assert_eq!(treatment("id", &p), Treatment::Pseudonym);
        assert_eq!(treatment("code", &p), Treatment::Pseudonym);
        assert!(matches!(treatment("phone", &p), Treatment::Mask(m) if m.name == "mask_phone"));
        assert_eq!(treatment("born", &p), Treatment::Generalize);
        assert_eq!(treatment("district", &p), Treatment::Keep);
        assert_eq!(treatment("spend", &p), Treatment::Keep);
        assert_eq!(treatment("note", &p), Treatment::Drop);
        let sp = sample_policy(&p, &["id".to_string(), "spend".to_string()]);
        assert_eq!(sp.columns.len(), 2);
        assert!(sp.columns["id"].allows(Use::Output));
    }
}
