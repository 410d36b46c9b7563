//! `erhai dataset …`: register, approve an import, list, show.

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
    Register {
        /// Dataset name (the table name in queries).
        #[arg(long)]
        name: String,
        /// Data file.
        #[arg(long)]
        file: PathBuf,
        /// Column policy (TOML).
        #[arg(long)]
        policy: PathBuf,
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
            description,
            sample_rate,
            sample_seed,
        } => {
            let policy_text = std::fs::read_to_string(&policy).map_err(|e| {
                crate::failure::CliError::usage(format!("{}: {e}", policy.display()))
            })?;
            let (schema, batches) = erhai_client::files::read_data(&file, Some(&policy_text))?;
            let header = erhai_proto::v1::RegisterHeader {
                name,
                description,
                policy_toml: policy_text,
                dev_sample_rate: sample_rate.unwrap_or(0.0),
                dev_sample_seed: sample_seed,
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
                || {
                    format!(
                        "registered {} as {} ({} rows, encrypted at rest)",
                        d.name, d.id, d.rows
                    )
                },
                || d.json(),
            );
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
