//! `erhai job …`: show, list, promote.

use clap::Subcommand;

use super::{Context, Result};

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
            ctx.show(&j);
        }
        JobCommand::Promote { job } => {
            let j = c.promote(&job).await?;
            ctx.show(&j);
        }
        JobCommand::List => {
            let js = c.jobs().await?;
            ctx.show(js.as_slice());
        }
    }
    Ok(())
}
