//! `erhai job …`: show, list, promote.

use clap::Subcommand;
use serde_json::json;

use super::{Context, Result};
use crate::output;

/// `erhai job …`
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// One job: SQL, verdict, report.
    Show {
        /// Job id.
        job: String,
    },
    /// Your jobs.
    List,
    /// Submit a development job's SQL to production (checked, run and reviewed there).
    Promote {
        /// The development job's id.
        job: String,
    },
}

/// Runs `erhai job …`.
pub(super) async fn run(ctx: &Context, cmd: JobCommand) -> Result {
    let c = ctx.client().await?;
    match cmd {
        JobCommand::Show { job } => {
            let j = c.job(&job).await?;
            ctx.print(|| output::job_detail(&j), || output::job_json(&j));
        }
        JobCommand::Promote { job } => {
            let j = c.promote(&job).await?;
            ctx.print(|| output::job_detail(&j), || output::job_json(&j));
        }
        JobCommand::List => {
            let js = c.jobs().await?;
            ctx.print(
                || output::jobs_table(&js),
                || json!(js.iter().map(output::job_json).collect::<Vec<_>>()),
            );
        }
    }
    Ok(())
}
