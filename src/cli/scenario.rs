//! `erhai scenario …`: applications, their review chain, budgets.

use std::path::PathBuf;

use clap::Subcommand;

use super::{Context, Result};

/// `erhai scenario …`
#[derive(Debug, Subcommand)]
pub enum ScenarioCommand {
    /// Apply for a scenario (analyst): title, purpose, domain, outputs, validity and the exact
    /// columns needed with a justification each.
    Apply {
        /// The application (TOML).
        #[arg(long)]
        file: PathBuf,
    },
    /// Decide the scenario's current review step (center, then authority, then each provider).
    Review {
        /// Scenario name.
        name: String,
        /// Approve.
        #[arg(long, conflicts_with = "reject", required_unless_present = "reject")]
        approve: bool,
        /// Reject (ends the application).
        #[arg(long)]
        reject: bool,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Approve only these columns (dataset.column, comma-separated): a narrower set.
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
    },
    /// Revoke a scenario (authority).
    Revoke {
        /// Scenario name.
        name: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Review steps past their deadline (authority).
    Overdue,
    /// Scenarios you may see.
    List,
    /// One scenario.
    Show {
        /// Scenario name.
        name: String,
    },
    /// A DP scenario's privacy budget: spent and left.
    Budget {
        /// Scenario name.
        name: String,
    },
}

/// Runs `erhai scenario …`.
pub(super) async fn run(ctx: &Context, cmd: ScenarioCommand) -> Result {
    let c = ctx.client().await?;
    match cmd {
        ScenarioCommand::Apply { file } => {
            let s = c
                .apply_scenario(erhai_client::application::read_application(&file)?)
                .await?;
            ctx.show(&s);
        }
        ScenarioCommand::Review {
            name,
            approve,
            reject: _,
            reason,
            columns,
        } => {
            let s = c.review_scenario(&name, approve, &reason, &columns).await?;
            ctx.show(&s);
        }
        ScenarioCommand::Revoke { name, reason } => {
            let s = c.revoke_scenario(&name, &reason).await?;
            ctx.show(&s);
        }
        ScenarioCommand::Overdue => {
            let all = c.overdue_scenarios().await?;
            ctx.show(all.as_slice());
        }
        ScenarioCommand::List => {
            let all = c.scenarios().await?;
            ctx.show(all.as_slice());
        }
        ScenarioCommand::Show { name } => {
            let s = c.scenario(&name).await?;
            ctx.show(&s);
        }
        ScenarioCommand::Budget { name } => {
            ctx.show(&c.budget(&name).await?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn the_documented_application_has_valid_dp_settings() {
        // The client only carries the settings; this checks the example against the server's
        // own rules, so the documentation does not teach a refused application.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/application.toml");
        let s = erhai_client::application::read_application(&path).expect("docs/application.toml");
        let d = s.dp.expect("dp");
        erhai_gateway::scenario::dp_from_pb(&d)
            .validate()
            .expect("valid DP settings");
    }
}
