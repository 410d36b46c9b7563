//! `erhai policy …`: drafting a column policy for a provider's own data file.
//!
//! A group of its own rather than under `dataset`: drafting runs offline on the provider's
//! machine, with no identity and no server, before anything is registered.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::{Context, Result};
use crate::policy_draft;

/// `erhai policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Draft a starting column policy (TOML) from a CSV, Parquet or Arrow file's header and first
    /// rows; review it before `dataset register`. Warnings go to stderr and into the draft.
    Draft {
        /// Data file.
        #[arg(long)]
        file: PathBuf,
        /// Where to write the draft (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Overwrite `--out` if it exists.
        #[arg(long)]
        force: bool,
        /// Rows sampled to infer types and kinds.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
        sample_rows: u32,
    },
}

/// Runs `erhai policy …`.
pub(super) fn run(ctx: &Context, cmd: PolicyCommand) -> Result {
    match cmd {
        PolicyCommand::Draft {
            file,
            out,
            force,
            sample_rows,
        } => {
            let draft = policy_draft::draft(&file, sample_rows as usize)?;
            for w in &draft.warnings {
                eprintln!("warning: {w}");
            }
            match &out {
                Some(path) => {
                    let mut options = std::fs::OpenOptions::new();
                    options.write(true);
                    if force {
                        options.create(true).truncate(true);
                    } else {
                        options.create_new(true);
                    }
                    let mut f = options.open(path).map_err(|e| {
                        if e.kind() == std::io::ErrorKind::AlreadyExists {
                            crate::failure::CliError::usage(format!(
                                "{} exists; give --force to overwrite it",
                                path.display()
                            ))
                        } else {
                            crate::failure::CliError::usage(format!("{}: {e}", path.display()))
                        }
                    })?;
                    f.write_all(draft.toml.as_bytes())
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    ctx.print(
                        || {
                            format!(
                                "wrote a draft policy to {} from {} rows ({} warnings); review \
                                 it before `erhai dataset register`",
                                path.display(),
                                draft.rows,
                                draft.warnings.len()
                            )
                        },
                        || {
                            json!({"out": path.display().to_string(), "rows": draft.rows,
                                   "warnings": draft.warnings})
                        },
                    );
                }
                None => ctx.print(
                    || draft.toml.trim_end().to_string(),
                    || {
                        json!({"policy_toml": draft.toml, "rows": draft.rows,
                               "warnings": draft.warnings})
                    },
                ),
            }
        }
    }
    Ok(())
}
