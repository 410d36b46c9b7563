//! What changes between two versions of a dataset: the columns a file has against the version
//! whose policy it carries over, and the columns whose policy a new version replaced. Pure, so
//! a provider and a regulator read the same statement the server makes.

use std::collections::BTreeSet;

use crate::model::{ColumnPolicy, DatasetPolicy};

/// How a new version's columns (name, Arrow type as displayed) differ from the current
/// version's: each missing column, each new column, each column whose type changed — empty
/// when they match (order aside). A carried-over policy classifies exactly the current columns,
/// so any difference needs a policy of its own.
pub fn schema_differences(current: &[(String, String)], new: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    let missing: Vec<&str> = current
        .iter()
        .filter(|(n, _)| !new.iter().any(|(m, _)| m == n))
        .map(|(n, _)| n.as_str())
        .collect();
    if !missing.is_empty() {
        out.push(format!("missing column(s) {}", missing.join(", ")));
    }
    let added: Vec<&str> = new
        .iter()
        .filter(|(n, _)| !current.iter().any(|(m, _)| m == n))
        .map(|(n, _)| n.as_str())
        .collect();
    if !added.is_empty() {
        out.push(format!(
            "new column(s) {} that the current policy does not classify",
            added.join(", ")
        ));
    }
    for (name, was) in current {
        if let Some((_, now)) = new.iter().find(|(n, _)| n == name)
            && now != was
        {
            out.push(format!("column {name} is {now}, was {was}"));
        }
    }
    out
}

fn names<T: ToString>(items: impl IntoIterator<Item = T>) -> BTreeSet<String> {
    items.into_iter().map(|x| x.to_string()).collect()
}

/// `+a −b` between two sets of names ("" when equal).
fn set_change(was: &BTreeSet<String>, now: &BTreeSet<String>) -> String {
    let added: Vec<String> = now.difference(was).map(|x| format!("+{x}")).collect();
    let removed: Vec<String> = was.difference(now).map(|x| format!("−{x}")).collect();
    added
        .into_iter()
        .chain(removed)
        .collect::<Vec<_>>()
        .join(" ")
}

fn describe(c: &ColumnPolicy) -> String {
    format!(
        "grade {}, uses {}",
        c.grade.name(),
        c.uses
            .iter()
            .map(|u| u.name())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// One line per column whose policy differs between `old` and `new`: added, removed, or what
/// changed (kind, grade, personal flags, uses, aggregate functions, masks, bounds, sample).
pub fn policy_changes(old: &DatasetPolicy, new: &DatasetPolicy) -> Vec<String> {
    let mut out = Vec::new();
    for (name, c) in &new.columns {
        let Some(was) = old.columns.get(name) else {
            out.push(format!("{name}: added ({})", describe(c)));
            continue;
        };
        let mut parts = Vec::new();
        if was.kind != c.kind {
            parts.push(format!("kind {} → {}", was.kind.name(), c.kind.name()));
        }
        if was.grade != c.grade {
            parts.push(format!("grade {} → {}", was.grade.name(), c.grade.name()));
        }
        if was.personal != c.personal || was.sensitive_personal != c.sensitive_personal {
            parts.push(format!(
                "personal {}/{} → {}/{} (personal/sensitive)",
                was.personal, was.sensitive_personal, c.personal, c.sensitive_personal
            ));
        }
        let uses = set_change(
            &names(was.uses.iter().map(|u| u.name())),
            &names(c.uses.iter().map(|u| u.name())),
        );
        if !uses.is_empty() {
            parts.push(format!("uses {uses}"));
        }
        let functions = set_change(
            &names(&was.aggregate_functions),
            &names(&c.aggregate_functions),
        );
        if !functions.is_empty() {
            parts.push(format!("aggregate functions {functions}"));
        }
        let masks = set_change(&names(&was.masks), &names(&c.masks));
        if !masks.is_empty() {
            parts.push(format!("masks {masks}"));
        }
        if was.bounds != c.bounds {
            parts.push("bounds changed".into());
        }
        if was.sample != c.sample {
            parts.push("development-sample treatment changed".into());
        }
        if !parts.is_empty() {
            out.push(format!("{name}: {}", parts.join("; ")));
        }
    }
    for name in old.columns.keys() {
        if !new.columns.contains_key(name) {
            out.push(format!("{name}: removed"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy_file::parse_policy;

    const OLD: &str = r#"
privacy_unit = "person"

[columns.person]
kind = "other"
grade = "general"
uses = "identifier"

[columns.district]
kind = "dimension"
grade = "general"
uses = "dimension"

[columns.spend]
kind = "measure"
grade = "general"
uses = "measure"
"#;

    fn cols(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn schemas_differ_by_missing_new_and_retyped_columns_and_not_by_order() {
        let current = cols(&[
            ("person", "Utf8"),
            ("district", "Utf8"),
            ("spend", "Float64"),
        ]);
        assert!(
            schema_differences(
                &current,
                &cols(&[
                    ("spend", "Float64"),
                    ("person", "Utf8"),
                    ("district", "Utf8")
                ])
            )
            .is_empty()
        );
        let d = schema_differences(
            &current,
            &cols(&[("person", "Utf8"), ("spend", "Int64"), ("hotel", "Utf8")]),
        );
        assert_eq!(
            d,
            vec![
                "missing column(s) district".to_string(),
                "new column(s) hotel that the current policy does not classify".to_string(),
                "column spend is Int64, was Float64".to_string(),
            ]
        );
    }

    #[test]
    fn changes_name_each_column_and_what_changed() {
        let old = parse_policy(OLD).expect("old");
        assert!(policy_changes(&old, &old).is_empty());
        let new_text =
            OLD.replace(
                "[columns.district]\nkind = \"dimension\"\ngrade = \"general\"",
                "[columns.district]\nkind = \"dimension\"\ngrade = \"important\"",
            )
            .replace(
                "[columns.spend]\nkind = \"measure\"\ngrade = \"general\"\nuses = \"measure\"\n",
                "",
            ) + "\n[columns.nights]\nkind = \"measure\"\ngrade = \"general\"\nuses = \"measure\"\n";
        let new = parse_policy(&new_text).expect("new");
        let changes = policy_changes(&old, &new);
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert!(changes[0].starts_with("district: grade general → important"));
        assert!(changes[1].starts_with("nights: added (grade general"));
        assert_eq!(changes[2], "spend: removed");
    }
}
