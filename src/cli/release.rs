//! `erhai release …`: fetch a released file with its receipt, verify it offline.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::json;

use super::{Context, Result};
use crate::failure::CliError;

/// `erhai release …`
#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Download an approved result (.csv, .parquet or .arrow by extension) and its signed
    /// receipt (written beside it as `<out>.receipt.json`).
    Fetch {
        /// Job id.
        job: String,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// CSV for Excel / WPS: a UTF-8 byte-order mark in front, so Chinese text opens
        /// ungarbled. The receipt covers the released bytes; `release verify` accepts both forms.
        #[arg(long)]
        excel: bool,
    },
    /// Check a released file and its receipt offline, against the platform's public key.
    Verify {
        /// The receipt (`<file>.receipt.json`).
        #[arg(long)]
        receipt: PathBuf,
        /// The released file.
        #[arg(long)]
        file: PathBuf,
        /// The platform's public key: hex, or a file holding it (`erhai admin public-key`).
        #[arg(long)]
        public_key: String,
    },
}

/// Runs `erhai release …`.
pub(super) async fn run(ctx: &Context, cmd: ReleaseCommand) -> Result {
    match cmd {
        ReleaseCommand::Fetch { job, out, excel } => {
            let format = erhai_client::files::FileFormat::of(&out)?;
            if excel && format.name() != "csv" {
                return Err(CliError::usage(format!(
                    "--excel writes CSV; name the output *.csv (not {})",
                    out.display()
                ))
                .into());
            }
            let (file, receipt) = ctx.client().await?.fetch_file(&job, format.name()).await?;
            let file = if excel {
                erhai_client::receipt::excel_form(&file)
            } else {
                file
            };
            let receipt_path = erhai_client::files::receipt_path(&out);
            std::fs::write(&out, &file).map_err(|e| format!("{}: {e}", out.display()))?;
            std::fs::write(&receipt_path, &receipt)
                .map_err(|e| format!("{}: {e}", receipt_path.display()))?;
            ctx.print(
                || {
                    format!(
                        "wrote {} ({} bytes) and its signed receipt {}",
                        out.display(),
                        file.len(),
                        receipt_path.display()
                    )
                },
                || json!({"job": job, "file": out, "bytes": file.len(), "receipt": receipt_path}),
            );
            Ok(())
        }
        ReleaseCommand::Verify {
            receipt,
            file,
            public_key,
        } => {
            let read = |p: &Path| {
                std::fs::read(p).map_err(|e| CliError::usage(format!("{}: {e}", p.display())))
            };
            let key_text = if Path::new(&public_key).is_file() {
                String::from_utf8_lossy(&read(Path::new(&public_key))?).into_owned()
            } else {
                public_key.clone()
            };
            let key = hex::decode(key_text.trim()).map_err(|e| {
                CliError::usage(format!("--public-key is neither a key file nor hex: {e}"))
            })?;
            let envelope = String::from_utf8(read(&receipt)?)
                .map_err(|_| CliError::usage(format!("{}: not a text file", receipt.display())))?;
            let (r, form) = erhai_client::receipt::verify_either(&envelope, &read(&file)?, &key)
                .map_err(|e| format!("{} does not verify: {e}", file.display()))?;
            let excel = form == erhai_client::receipt::Form::Excel;
            ctx.print(|| {
                    format!(
                        "verified: {}{} is release {} of job {} ({} rows, approved by {} at {}), \
                         fetched by {} at {}",
                        file.display(),
                        if excel { " (Excel form: the released CSV behind a UTF-8 BOM)" } else { "" },
                        r.release,
                        r.job,
                        r.rows,
                        r.reviewers.join(", "),
                        r.approved_at,
                        r.fetched_by,
                        r.fetched_at
                    )
                },
                || json!({"verified": true, "excel": excel, "receipt": serde_json::to_value(&r).unwrap_or_default()}),
            );
            Ok(())
        }
    }
}
