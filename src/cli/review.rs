//! `erhai review …`: the reviewer's list, view and decisions.

use clap::Subcommand;
use serde_json::json;

use super::{Context, Result};
use crate::output::{self, Render};
use crate::review_view;

/// `erhai review …`
#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// Jobs awaiting review: scenario, tenant, age, rows to review, rows suppressed, and the
    /// reviewers each needs.
    List,
    /// A job's SQL, its findings grouped by rule and reason, and the rows that would be
    /// released.
    Show {
        /// Job id.
        job: String,
        /// Wait until the job has finished running.
        #[arg(long)]
        wait: bool,
        /// List every flagged row with its reasons instead of grouping them.
        #[arg(long)]
        all: bool,
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
        /// Release it without its rows to review (and without any row that would give them
        /// back by subtraction); a second approval must say the same.
        #[arg(long)]
        suppress_flagged: bool,
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
            let now = chrono::Utc::now().timestamp_millis();
            ctx.print(
                || review_view::pending_table(&js, now),
                || js.as_slice().json(),
            );
        }
        ReviewCommand::Show { job, wait, all } => {
            if wait {
                wait_for(&c, &job).await?;
            }
            let (d, preview) = c.show_review(&job).await?;
            let j = d.job.unwrap_or_default();
            ctx.print(
                || {
                    let rows = |r: &erhai_proto::v1::CheckReport| {
                        if all {
                            review_view::every_row(r)
                        } else {
                            review_view::grouped_text(r, false)
                        }
                    };
                    format!(
                        "{}rows that would be released ({} shown, rows to review marked):\n{}",
                        output::job_text(&j, &rows),
                        d.preview_rows,
                        output::review_preview(&preview, j.report.as_ref())
                    )
                },
                || {
                    let groups = j
                        .report
                        .as_ref()
                        .map(review_view::groups)
                        .unwrap_or_default();
                    json!({
                        "job": j.json(),
                        "groups": groups,
                        "preview": output::batches_json(&preview),
                    })
                },
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
        ReviewCommand::Approve {
            job,
            reason,
            wait,
            suppress_flagged,
        } => {
            if wait {
                wait_for(&c, &job).await?;
            }
            let j = if suppress_flagged {
                c.approve_withholding(&job, &reason).await?
            } else {
                c.decide(&job, true, &reason).await?
            };
            ctx.print(|| approved_text(&j), || j.json());
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

/// What an approval did: released (with what it withheld) or waiting for another reviewer.
fn approved_text(j: &erhai_proto::v1::Job) -> String {
    let mut s = format!("job {} {}", j.id, j.state);
    if !j.release_id.is_empty() {
        s += &format!(" as {}", j.release_id);
    }
    if j.state == "awaiting_review" {
        s += &format!(
            " ({} of {} approvals in)",
            j.approvals.len(),
            j.approvals_needed
        );
    }
    if !j.withheld.is_empty() {
        s += &format!(
            "\nwithheld {} row(s) of the reviewed result — {}",
            j.withheld.len(),
            review_view::withheld_summary(&j.withheld)
        );
    }
    s
}
