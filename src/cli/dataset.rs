//! `erhai dataset …`: register (or add a version), approve an import, list, show, retire,
//! delete.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::{Context, Result};
use crate::output::Render;

/// `erhai dataset …`
#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Approve the import of a tenant's social data (authority).
    ApproveImport {
        /// Dataset name.
        name: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Upload a CSV, Parquet or Arrow file with its column policy (providers: public data;
    /// analysts: their tenant's social data, usable after the authority approves its import).
    /// With --new-version, the next version of an existing dataset of your unit: queries read
    /// it from then on; earlier versions stay, unqueried, so releases stay traceable.
    Register {
        /// Dataset name (the table name in queries).
        #[arg(long)]
        name: String,
        /// Data file.
        #[arg(long)]
        file: PathBuf,
        /// Column policy (TOML). Optional with --new-version: the current policy is carried
        /// over (the file must then have the current columns and types).
        #[arg(long, required_unless_present = "new_version")]
        policy: Option<PathBuf>,
        /// Add a version to the existing dataset NAME instead of registering a new one.
        #[arg(long)]
        new_version: bool,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
        /// Fraction of rows in the development sample (default: the server's, 1%).
        #[arg(long)]
        sample_rate: Option<f64>,
        /// Seed of the development sample.
        #[arg(long, default_value_t = 0)]
        sample_seed: u64,
    },
    /// Datasets you can see.
    List,
    /// A dataset's schema and policy (never rows).
    Show {
        /// Id or name.
        dataset: String,
    },
    /// Retire a dataset (its unit's provider, or the authority): no new queries, scenarios or
    /// versions; pending jobs are still reviewed, releases fetched and traced.
    Retire {
        /// Id or name.
        dataset: String,
        /// Why (audited).
        #[arg(long)]
        reason: String,
    },
    /// Delete a registration made by mistake (its unit's provider): only while no job read it
    /// and no scenario names it. Its files and keys are destroyed; nothing is recoverable.
    Delete {
        /// Id or name.
        dataset: String,
        /// Why (audited).
        #[arg(long)]
        reason: String,
    },
}

/// Runs `erhai dataset …`.
pub(super) async fn run(ctx: &Context, cmd: DatasetCommand) -> Result {
    let c = ctx.client().await?;
    match cmd {
        DatasetCommand::ApproveImport { name, reason } => {
            let d = c.approve_import(&name, &reason).await?;
            ctx.print(
                || format!("import of {} approved ({})", d.name, d.import_status),
                || json!({"dataset": d.name, "import_status": d.import_status}),
            );
        }
        DatasetCommand::Register {
            name,
            file,
            policy,
            new_version,
            description,
            sample_rate,
            sample_seed,
        } => {
            let (policy_text, (schema, batches)) = match &policy {
                Some(policy) => {
                    let text = std::fs::read_to_string(policy).map_err(|e| {
                        crate::failure::CliError::usage(format!("{}: {e}", policy.display()))
                    })?;
                    let data = erhai_client::files::read_data(&file, Some(&text))?;
                    (text, data)
                }
                None => {
                    // A carried-over policy: a CSV's columns take the current version's types.
                    let current = c.get_dataset(&name).await?;
                    let types = current
                        .columns
                        .iter()
                        .map(|col| (col.name.clone(), col.data_type.clone()))
                        .collect();
                    let data = erhai_client::files::read_data_typed(&file, &types)?;
                    (String::new(), data)
                }
            };
            let header = erhai_proto::v1::RegisterHeader {
                name,
                description,
                policy_toml: policy_text,
                dev_sample_rate: sample_rate.unwrap_or(0.0),
                dev_sample_seed: sample_seed,
                new_version,
            };
            let bar = crate::progress::upload(&header.name);
            let shown = bar.clone();
            let total_rows = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            let sent_rows = std::sync::atomic::AtomicU64::new(0);
            let total = total_rows.clone();
            let sizes = |rows: u64, bytes: u64| {
                total_rows.store(rows, std::sync::atomic::Ordering::Relaxed);
                crate::progress::show_upload(&bar, rows, bytes);
            };
            let sent = move |rows: u64, bytes: u64| {
                use std::sync::atomic::Ordering::Relaxed;
                let done = sent_rows.fetch_add(rows, Relaxed) + rows;
                shown.inc(bytes);
                crate::progress::uploaded(&shown, done, total.load(Relaxed));
            };
            let registered = c
                .register_watched(header, schema, batches, sizes, sent)
                .await;
            bar.finish_and_clear();
            let d = registered?;
            ctx.print(
                || registered_text(&d, new_version, policy.is_none()),
                || d.json(),
            );
        }
        DatasetCommand::Retire { dataset, reason } => {
            let d = c.retire_dataset(&dataset, &reason).await?;
            ctx.print(
                || {
                    format!(
                        "retired {} (version {}): no new queries, scenarios or versions; its \
                         jobs and releases stay traceable",
                        d.name, d.version
                    )
                },
                || d.json(),
            );
        }
        DatasetCommand::Delete { dataset, reason } => {
            let d = c.delete_dataset(&dataset, &reason).await?;
            ctx.show(&d);
        }
        DatasetCommand::List => {
            let ds = c.list_datasets().await?;
            ctx.show(ds.as_slice());
        }
        DatasetCommand::Show { dataset } => {
            let d = c.get_dataset(&dataset).await?;
            ctx.show(&d);
        }
    }
    Ok(())
}

/// What `dataset register` says it did: a new dataset, or a new version and what became of
/// the policy.
fn registered_text(d: &erhai_proto::v1::Dataset, new_version: bool, carried: bool) -> String {
    if !new_version {
        return format!(
            "registered {} as {} ({} rows, encrypted at rest)",
            d.name, d.id, d.rows
        );
    }
    let policy = if carried {
        "policy carried over".to_string()
    } else if d.policy_changes.is_empty() {
        "policy replaced, no column's policy changed".to_string()
    } else {
        format!(
            "policy replaced; changed columns:\n  {}",
            d.policy_changes.join("\n  ")
        )
    };
    format!(
        "registered version {} of {} ({} rows, encrypted at rest; queries read it from now on; \
         development sample redrawn: {} rows); {policy}",
        d.version, d.name, d.rows, d.dev_sample_rows
    )
}
