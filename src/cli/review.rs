//! `erhai review …`: the reviewer's list, view and decisions.

use clap::Subcommand;
use serde_json::json;

use super::{Context, Result};
use crate::output::{self, Render};

/// `erhai review …`
#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// Jobs awaiting review.
    List,
    /// A job's SQL, report and the rows that would be released.
    Show {
        /// Job id.
        job: String,
        /// Wait until the job has finished running.
        #[arg(long)]
        wait: bool,
    },
    /// Release a job's result.
    Approve {
        /// Job id.
        job: String,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Wait until the job has finished running.
        #[arg(long)]
        wait: bool,
    },
    /// Refuse a job's result (or close a job whose run failed).
    Reject {
        /// Job id.
        job: String,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Wait until the job has finished running.
        #[arg(long)]
        wait: bool,
    },
}

/// How long `--wait` waits for a job to finish running.
const REVIEW_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// Waits for `job` to finish running, with a spinner at a terminal.
async fn wait_for(c: &erhai_client::Client, job: &str) -> Result {
    let spinner = crate::progress::waiting(format!("waiting for job {job} to finish running"));
    let done = c.finished(job, REVIEW_WAIT).await;
    spinner.finish_and_clear();
    done?;
    Ok(())
}

/// Runs `erhai review …`.
pub(super) async fn run(ctx: &Context, cmd: ReviewCommand) -> Result {
    let c = ctx.client().await?;
    match cmd {
        ReviewCommand::List => {
            let js = c.pending().await?;
            ctx.show(js.as_slice());
        }
        ReviewCommand::Show { job, wait } => {
            if wait {
                wait_for(&c, &job).await?;
            }
            let (d, preview) = c.show_review(&job).await?;
            let j = d.job.unwrap_or_default();
            ctx.print(
                || {
                    format!(
                        "{}rows that would be released ({} shown, rows to review marked):\n{}",
                        j.text(),
                        d.preview_rows,
                        output::review_preview(&preview, j.report.as_ref())
                    )
                },
                || json!({"job": j.json(), "preview": output::batches_json(&preview)}),
            );
        }
        ReviewCommand::Approve { job, reason, .. } | ReviewCommand::Reject { job, reason, .. }
            if reason.trim().is_empty() =>
        {
            return Err(crate::failure::CliError::usage(format!(
                "job {job}: a decision needs a non-empty --reason"
            ))
            .into());
        }
        ReviewCommand::Approve { job, reason, wait } => {
            if wait {
                wait_for(&c, &job).await?;
            }
            let j = c.decide(&job, true, &reason).await?;
            ctx.print(|| format!("job {} {}", j.id, j.state), || j.json());
        }
        ReviewCommand::Reject { job, reason, wait } => {
            if wait {
                wait_for(&c, &job).await?;
            }
            let j = c.decide(&job, false, &reason).await?;
            ctx.print(|| format!("job {} {}", j.id, j.state), || j.json());
        }
    }
    Ok(())
}
