//! `erhai query …`: submit (production or development) and check.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::{Context, Result};
use crate::output::{self, Render};

/// `erhai query …`
#[derive(Debug, Subcommand)]
pub enum QueryCommand {
    /// Submit a query. Production (the default) ends awaiting review, or refused with reasons;
    /// development runs on the desensitized samples and prints the rows at once.
    Submit {
        /// The SQL.
        #[arg(long)]
        sql: String,
        /// Accepted for compatibility and ignored: a production job is answered once the plan
        /// check accepts it (the analyst's view never depends on the run); a reviewer waits for
        /// the run with `erhai review show --wait`.
        #[arg(long, hide = true)]
        wait: bool,
        /// Where to run: prod (full data, reviewed) or dev (samples, no review).
        #[arg(long, value_enum, default_value_t = Env::Prod)]
        env: Env,
        /// Development only: also write the rows to this file (.csv, .parquet or .arrow).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The scenario the query runs in: its approved columns are all it reads (and its k,
        /// reviewers, differential privacy apply).
        #[arg(long, env = "ERHAI_SCENARIO")]
        scenario: String,
        /// DP scenarios: the ε this query spends (default: the scenario's per-query cap).
        #[arg(long, default_value_t = 0.0)]
        epsilon: f64,
        /// Print only the job's id, for scripts (`JOB=$(erhai query submit -q …)`); development rows
        /// then go only to --out.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Check a query without running it: each output column's lineage and the rule applied.
    Check {
        /// The SQL.
        #[arg(long)]
        sql: String,
        /// The scenario the query would run in.
        #[arg(long, env = "ERHAI_SCENARIO")]
        scenario: String,
    },
}

/// The two environments of a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Env {
    /// Full data; the result goes to review.
    Prod,
    /// Sampled, desensitized data; rows return at once.
    Dev,
}

/// Runs `erhai query …`.
pub(super) async fn run(ctx: &Context, cmd: QueryCommand) -> Result {
    match cmd {
        QueryCommand::Check { sql, scenario } => {
            let v = ctx.client().await?.check(&scenario, &sql).await?;
            ctx.show(&v);
            if !v.allowed {
                return Err("the query would be refused".into());
            }
            Ok(())
        }
        QueryCommand::Submit {
            sql,
            wait: _,
            env: Env::Dev,
            out,
            scenario,
            epsilon,
            quiet,
        } => {
            if epsilon != 0.0 {
                return Err("--epsilon is for production runs (samples spend no budget)".into());
            }
            if let Some(out) = &out {
                erhai_client::files::FileFormat::of(out)?;
            }
            let (j, schema, batches) = ctx.client().await?.run_dev(&scenario, &sql).await?;
            if let Some(out) = &out {
                erhai_client::files::write_data(out, &schema, &batches)?;
            }
            if quiet {
                println!("{}", j.id);
                return Ok(());
            }
            ctx.print(|| {
                    format!(
                        "development job {} (samples, not reviewed; promote with `erhai job promote {}`)\n{}",
                        j.id,
                        j.id,
                        output::batches_table(&batches)
                    )
                },
                || json!({"job": j.json(), "rows": output::batches_json(&batches)}),
            );
            Ok(())
        }
        QueryCommand::Submit {
            sql,
            wait: _,
            env: Env::Prod,
            out,
            scenario,
            epsilon,
            quiet,
        } => {
            if out.is_some() {
                return Err("--out is for development runs; production results are fetched with `erhai release fetch` once approved".into());
            }
            let j = ctx
                .client()
                .await?
                .submit_in(&sql, &scenario, epsilon)
                .await?;
            if quiet {
                println!("{}", j.id);
            } else {
                ctx.show(&j);
            }
            if j.state == "failed" {
                return Err(format!("job {} failed: {}", j.id, j.error).into());
            }
            Ok(())
        }
    }
}
