//! Compiles the erhai.v1 contract with protox, so no system `protoc` is needed, and derives
//! `serde::Serialize` on every message: the JSON the CLI prints is the message itself (see
//! `src/json.rs` for the few fields that read differently).

/// Times (ms since the epoch) that read as UTC text under their name without `_ms`.
const TIMES: &[(&str, &str)] = &[
    ("User.expires_at_ms", "expires_at"),
    ("Dataset.created_at_ms", "created_at"),
    ("Retirement.at_ms", "at"),
    ("DatasetVersion.created_at_ms", "created_at"),
    ("Report.generated_at_ms", "generated_at"),
    ("QualityRequest.filed_at_ms", "filed_at"),
    ("QualityRequest.closed_at_ms", "closed_at"),
    ("Tenant.created_at_ms", "created_at"),
    ("TenantEvent.at_ms", "at"),
    ("Scenario.created_at_ms", "created_at"),
    ("ScenarioReview.at_ms", "at"),
    ("Job.submitted_at_ms", "submitted_at"),
    ("Job.finished_at_ms", "finished_at"),
    ("Job.reviewed_at_ms", "reviewed_at"),
    ("AuditEvent.time_ms", "time"),
    ("Download.time_ms", "time"),
    ("SocialDataset.uploaded_at_ms", "uploaded_at"),
    ("SocialDataset.approved_at_ms", "approved_at"),
];

/// Arrow payloads: the client decodes them into rows, which it prints itself.
const PAYLOADS: &[&str] = &[
    "DevQueryResult.arrow_ipc",
    "ReviewDetail.preview_ipc",
    "ReleaseChunk.data",
    "RegisterChunk.part.ipc",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=erhai/v1/erhai.proto");
    let fds = protox::compile(["erhai/v1/erhai.proto"], ["."])?;
    let mut config = tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .type_attribute(".erhai.v1", "#[derive(serde::Serialize)]")
        // A scenario application file's `[dp]` section is read straight into the message, so
        // the settings have one reader on the client side (the server validates them).
        .type_attribute(
            ".erhai.v1.DpSettings",
            "#[derive(serde::Deserialize)] #[serde(deny_unknown_fields)]",
        )
        .field_attribute(
            ".erhai.v1.ColumnInfo.data_type",
            r#"#[serde(rename = "type")]"#,
        )
        .field_attribute(
            ".erhai.v1.RowCheck.released_row",
            r#"#[serde(serialize_with = "crate::json::position")]"#,
        )
        .field_attribute(
            ".erhai.v1.PlatformKeyResponse.public_key",
            r#"#[serde(serialize_with = "crate::json::hex")]"#,
        );
    for (field, name) in TIMES {
        config = config.field_attribute(
            format!(".erhai.v1.{field}"),
            format!(r#"#[serde(rename = "{name}", serialize_with = "crate::json::time")]"#),
        );
    }
    for field in PAYLOADS {
        config = config.field_attribute(format!(".erhai.v1.{field}"), "#[serde(skip)]");
    }
    config.compile_fds(fds)?;
    Ok(())
}
