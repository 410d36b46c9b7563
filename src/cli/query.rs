//! `erhai query …`: submit (production or development) and check.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::{Context, Result};
use crate::failure::CliError;
use crate::output::{self, Render};

/// `erhai query …`
#[derive(Debug, Subcommand)]
pub enum QueryCommand {
    /// Submit a query. Production (the default) ends awaiting review, or refused with reasons;
    /// development runs on the desensitized samples and prints the rows at once.
    Submit {
        #[command(flatten)]
        sql: SqlText,
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
        /// DP scenarios: the ε this query spends. 0 (the default) spends the scenario's
        /// per-query cap; what it spends and what remains are printed on stderr first.
        #[arg(long, default_value_t = 0.0)]
        epsilon: f64,
        /// Print only the job's id, for scripts (`JOB=$(erhai query submit -q …)`); development rows
        /// then go only to --out.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Check a query without running it: each output column's lineage and the rule applied.
    Check {
        #[command(flatten)]
        sql: SqlText,
        /// The scenario the query would run in.
        #[arg(long, env = "ERHAI_SCENARIO")]
        scenario: String,
    },
}

/// Where the SQL comes from: `--sql TEXT`, `--sql -` (stdin) or `--file PATH`.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct SqlText {
    /// The SQL; `-` reads it from stdin.
    #[arg(long)]
    sql: Option<String>,
    /// A file holding the SQL (instead of --sql).
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
}

/// The most SQL text read from stdin or a file: far above what the server accepts, so the
/// server's own limit is the one a user meets, and a wrong file is not read whole.
const MAX_SQL_FILE_BYTES: u64 = 4 << 20;

impl SqlText {
    /// The SQL text, read from stdin or the file if asked.
    fn read(&self) -> std::result::Result<String, CliError> {
        use std::io::Read;
        let (text, from) = match (&self.sql, &self.file) {
            (Some(sql), _) if sql != "-" => return Ok(sql.clone()),
            (Some(_), _) => {
                let mut text = String::new();
                std::io::stdin()
                    .take(MAX_SQL_FILE_BYTES)
                    .read_to_string(&mut text)
                    .map_err(|e| CliError::usage(format!("--sql -: cannot read stdin: {e}")))?;
                (text, "stdin".to_string())
            }
            (None, Some(path)) => {
                let mut text = String::new();
                std::fs::File::open(path)
                    .and_then(|f| f.take(MAX_SQL_FILE_BYTES).read_to_string(&mut text))
                    .map_err(|e| CliError::usage(format!("--file {}: {e}", path.display())))?;
                (text, path.display().to_string())
            }
            (None, None) => {
                return Err(CliError::usage(
                    "give the SQL: --sql TEXT, --sql - or --file PATH",
                ));
            }
        };
        if text.trim().is_empty() {
            return Err(CliError::usage(format!("{from} holds no SQL")));
        }
        Ok(text)
    }
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
            let sql = sql.read()?;
            let v = ctx.client().await?.check(&scenario, &sql).await?;
            ctx.show(&v);
            if !v.allowed {
                return Err(CliError::refused("the query would be refused").into());
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
                return Err(CliError::usage(
                    "--epsilon is for production runs (samples spend no budget)",
                )
                .into());
            }
            if let Some(out) = &out {
                erhai_client::files::FileFormat::of(out)?;
            }
            let sql = sql.read()?;
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
                return Err(CliError::usage("--out is for development runs; production results are fetched with `erhai release fetch` once approved").into());
            }
            let sql = sql.read()?;
            let c = ctx.client().await?;
            announce_spend(&c, &scenario, epsilon).await;
            let j = c.submit_in(&sql, &scenario, epsilon).await?;
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

/// In a differential-privacy scenario, says on stderr (stdout stays the answer's) what the
/// query will spend and what remains. Best effort: the server decides and charges, so a
/// budget that cannot be read here does not stop the submission.
async fn announce_spend(c: &erhai_client::Client, scenario: &str, epsilon: f64) {
    let Ok(s) = c.scenario(scenario).await else {
        return;
    };
    let Some(dp) = s.dp else { return };
    let spend = if epsilon == 0.0 {
        dp.epsilon_per_query
    } else {
        epsilon
    };
    let Ok(b) = c.budget(scenario).await else {
        return;
    };
    eprintln!("{}", spend_notice(scenario, spend, epsilon == 0.0, &b));
}

/// The line `announce_spend` prints.
fn spend_notice(scenario: &str, spend: f64, default: bool, b: &erhai_proto::v1::Budget) -> String {
    let after = b.epsilon_left - spend;
    format!(
        "scenario {scenario} (differential privacy): this query spends ε = {}{}; {} of ε = {} \
         remains{}",
        eps(spend),
        if default { " (its per-query cap)" } else { "" },
        eps(b.epsilon_left),
        eps(b.epsilon_total),
        if after < -1e-12 {
            " — not enough: the server will refuse it".to_string()
        } else {
            format!(", {} after it", eps(after.max(0.0)))
        }
    )
}

/// An ε for people: no float noise (3 - 0.1 is 2.9, not 2.9000000000000004).
fn eps(x: f64) -> String {
    let s = format!("{x:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spend_notice_says_what_remains_and_when_it_is_not_enough() {
        let b = erhai_proto::v1::Budget {
            epsilon_total: 3.0,
            epsilon_left: 1.0,
            ..Default::default()
        };
        let n = spend_notice("tour", 0.5, true, &b);
        assert!(
            n.contains("ε = 0.5 (its per-query cap); 1 of ε = 3 remains, 0.5 after it"),
            "{n}"
        );
        let n = spend_notice("tour", 0.1, false, &b);
        assert!(n.contains("0.9 after it"), "{n}");
        let n = spend_notice("tour", 2.0, false, &b);
        assert!(n.contains("not enough"), "{n}");
    }
}
