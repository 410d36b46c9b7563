//! Scenario application files (TOML): what an analyst applies for, read into the request the
//! server decides on. `docs/application.toml` is the documented example.

use std::path::Path;

use erhai_proto::v1 as pb;
use serde::Deserialize;

use crate::ClientError;

/// A scenario application file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplicationFile {
    name: String,
    title: String,
    purpose: String,
    domain: String,
    outputs: String,
    valid_from: String,
    valid_to: String,
    #[serde(default)]
    k: u64,
    #[serde(default)]
    second_reviewer: bool,
    /// Every field required, as the server requires them; the server checks the values.
    #[serde(default)]
    dp: Option<pb::DpSettings>,
    columns: Vec<ApplicationColumn>,
}

/// One requested column of an application.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplicationColumn {
    dataset: String,
    column: String,
    justification: String,
}

/// Reads an application file; errors name the file.
pub fn read_application(path: &Path) -> Result<pb::Scenario, ClientError> {
    let data = |e: &dyn std::fmt::Display| ClientError::Data(format!("{}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| data(&e))?;
    parse_application(&text).map_err(|e| data(&e))
}

fn parse_application(text: &str) -> Result<pb::Scenario, toml::de::Error> {
    let f: ApplicationFile = toml::from_str(text)?;
    Ok(pb::Scenario {
        name: f.name,
        title: f.title,
        purpose: f.purpose,
        domain: f.domain,
        outputs: f.outputs,
        valid_from: f.valid_from,
        valid_to: f.valid_to,
        k: f.k,
        second_reviewer: f.second_reviewer,
        dp: f.dp,
        columns: f
            .columns
            .into_iter()
            .map(|c| pb::ScenarioColumn {
                dataset: c.dataset,
                column: c.column,
                justification: c.justification,
                approved: true,
            })
            .collect(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_application_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/application.toml");
        let s = read_application(&path).expect("docs/application.toml");
        assert_eq!(s.name, "tourism-dp");
        assert_eq!(s.columns.len(), 2);
        assert!(s.columns.iter().all(|c| c.approved));
        assert!(s.second_reviewer);
        let dp = s.dp.expect("dp");
        assert_eq!((dp.epsilon_total, dp.max_rows_per_unit), (3.0, 5));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/application.toml");
        let text = std::fs::read_to_string(path).expect("read");
        let e =
            parse_application(&text.replace("epsilon_total", "epsilon_totl")).expect_err("typo");
        assert!(e.to_string().contains("epsilon_totl"), "{e}");
    }
}
