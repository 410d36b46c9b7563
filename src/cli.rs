//! The command line: `erhai [--identity DIR] [--output table|json] <command>`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use erhai_gateway::ServerConfig;
use erhai_gateway::config::CONFIG_FILE;
use erhai_proto::v1 as pb;
use serde_json::json;

use crate::output::{self, Format};
use erhai_client::Client;

/// erhai — a privacy-preserving compute enclave for public data.
#[derive(Debug, Parser)]
#[command(name = "erhai", version, about)]
pub struct Cli {
    /// Identity bundle directory (cert.pem, key.pem, ca.pem, endpoint).
    #[arg(long, global = true, env = "ERHAI_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "table")]
    pub output: Format,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve {
        /// Deployment directory holding erhai.toml (or give --config).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the whole flow on generated data in a throwaway deployment.
    Demo(crate::demo::DemoArgs),
    /// Platform administration.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Show the calling user.
    Whoami,
    /// Datasets.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Queries.
    #[command(subcommand)]
    Query(QueryCommand),
    /// Jobs.
    #[command(subcommand)]
    Job(JobCommand),
    /// Export review.
    #[command(subcommand)]
    Review(ReviewCommand),
    /// Released results.
    #[command(subcommand)]
    Release(ReleaseCommand),
    /// Scenarios: release settings and differential-privacy budgets.
    #[command(subcommand)]
    Scenario(ScenarioCommand),
    /// Tenants (operating entities) and their operating agreements.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Data-quality requests: analysts file, providers answer, the authority watches.
    #[command(subcommand)]
    Quality(QualityCommand),
    /// A tenant's periodic report (authority; a tenant for itself).
    Report(ReportArgs),
    /// The audit chain.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Trace a dataset to its jobs, releases and downloads, or a release to its sources.
    Lineage(LineageArgs),
}

/// `erhai lineage …`
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct LineageArgs {
    /// Every job, release and download that used this dataset (id or name).
    #[arg(long)]
    dataset: Option<String>,
    /// The datasets, columns, analyst, reviewer and checks behind this release (job id).
    #[arg(long)]
    release: Option<String>,
}

/// `erhai admin …`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a deployment: CA, server certificate, master key, erhai.toml, first admin.
    Init {
        /// Deployment directory (must be empty or absent).
        #[arg(long)]
        dir: PathBuf,
        /// Address the server will listen on.
        #[arg(long, default_value = "127.0.0.1:7443")]
        listen: SocketAddr,
    },
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// Print the platform's Ed25519 public key (hex), which verifies release receipts.
    PublicKey {
        /// Also write it to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `erhai admin user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Record a user and write their identity bundle.
    Add(UserAdd),
    /// List users.
    List,
    /// Set when a user expires (`now`, an RFC 3339 time, or `never`).
    Expire {
        /// User id.
        #[arg(long)]
        id: String,
        /// When.
        #[arg(long)]
        at: String,
    },
}

/// Arguments of `admin user add`.
#[derive(Debug, Args)]
pub struct UserAdd {
    /// User id (the certificate's name).
    #[arg(long)]
    pub id: String,
    /// Real name.
    #[arg(long)]
    pub name: String,
    /// admin, provider, analyst, reviewer or auditor.
    #[arg(long)]
    pub role: String,
    /// Tenant (operating entity), for analysts.
    #[arg(long, default_value = "")]
    pub tenant: String,
    /// Provider unit, for providers.
    #[arg(long, default_value = "")]
    pub unit: String,
    /// Where to write the identity bundle.
    #[arg(long)]
    pub out: PathBuf,
    /// Certificate validity in days (default: the platform's).
    #[arg(long, default_value_t = 0)]
    pub valid_days: i64,
}

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

/// `erhai report …`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Tenant (default: your own).
    #[arg(long, default_value = "")]
    tenant: String,
    /// First day, YYYY-MM-DD.
    #[arg(long)]
    from: String,
    /// Last day, YYYY-MM-DD.
    #[arg(long)]
    to: String,
    /// Document format: md or html (`--output json` gives JSON).
    #[arg(long, default_value = "md")]
    format: String,
    /// Write the document here instead of printing it.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `erhai quality …`
#[derive(Debug, Subcommand)]
pub enum QualityCommand {
    /// Report what is wrong with a dataset (analyst).
    File {
        /// Dataset name.
        #[arg(long)]
        dataset: String,
        /// An example column.
        #[arg(long, default_value = "")]
        column: String,
        /// What is wrong.
        #[arg(long)]
        issue: String,
    },
    /// Requests you may see, oldest open first, with their age.
    List {
        /// Open requests only.
        #[arg(long)]
        open: bool,
    },
    /// Answer and close a request on your unit's dataset (provider).
    Answer {
        /// Request id.
        id: String,
        /// The answer.
        #[arg(long)]
        answer: String,
    },
}

/// `erhai tenant …`
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Register an operating entity (admin); it has no access until the authority dates its
    /// agreement.
    Create {
        /// Tenant name (users' --tenant).
        name: String,
        /// The entity's name.
        #[arg(long, default_value = "")]
        title: String,
    },
    /// Tenants (admin, authority, center, auditor).
    List,
    /// A tenant, its agreement and its history (yours if no name).
    Show {
        /// Tenant name.
        name: Option<String>,
    },
    /// Set the agreement's dates (authority; at most 3 years by default).
    Agreement {
        /// Tenant name.
        name: String,
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        start: String,
        /// Last day, YYYY-MM-DD.
        #[arg(long)]
        end: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Suspend a tenant after a violation (authority).
    Suspend {
        /// Tenant name.
        name: String,
        /// The violation.
        #[arg(long)]
        reason: String,
    },
    /// Restore a suspended tenant after its rectification (authority).
    Restore {
        /// Tenant name.
        name: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Terminate a tenant's agreement (authority); final.
    Terminate {
        /// Tenant name.
        name: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Submit your suspended tenant's rectification report.
    Rectify {
        /// The report.
        #[arg(long)]
        report: String,
    },
}

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

/// `erhai audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Audit events, oldest first.
    List {
        #[command(flatten)]
        filter: AuditFilter,
        /// At most this many (the newest).
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Write every matching event to a JSON Lines file for external archiving.
    Export {
        #[command(flatten)]
        filter: AuditFilter,
        /// Output file (.jsonl).
        #[arg(long)]
        out: PathBuf,
    },
    /// Recompute the hash chain and check every signed checkpoint.
    Verify,
    /// The latest signed checkpoint (keep it outside the platform).
    Checkpoint,
}

/// Which audit events.
#[derive(Debug, clap::Args)]
pub struct AuditFilter {
    /// Only this user's.
    #[arg(long, default_value = "")]
    user: String,
    /// Only this tenant's.
    #[arg(long, default_value = "")]
    tenant: String,
    /// Only this action.
    #[arg(long, default_value = "")]
    action: String,
    /// Only events whose object ids contain this.
    #[arg(long, default_value = "")]
    object: String,
    /// From this time (RFC 3339, or a date YYYY-MM-DD).
    #[arg(long)]
    since: Option<String>,
    /// Before this time (RFC 3339, or a date YYYY-MM-DD).
    #[arg(long)]
    until: Option<String>,
}

impl AuditFilter {
    fn request(&self, limit: u64, all: bool) -> Result<pb::ListAuditRequest, String> {
        Ok(pb::ListAuditRequest {
            limit,
            all,
            user: self.user.clone(),
            tenant: self.tenant.clone(),
            action: self.action.clone(),
            object: self.object.clone(),
            since_ms: parse_instant(self.since.as_deref())?,
            until_ms: parse_instant(self.until.as_deref())?,
        })
    }
}

/// An RFC 3339 time or a date (midnight UTC) as ms since the epoch; absent: 0.
fn parse_instant(s: Option<&str>) -> Result<i64, String> {
    let Some(s) = s else { return Ok(0) };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or_else(|| format!("`{s}` is neither an RFC 3339 time nor a date YYYY-MM-DD"))
}

async fn connect(cli_identity: &Option<PathBuf>) -> Result<Client, Box<dyn std::error::Error>> {
    let dir = cli_identity
        .as_ref()
        .ok_or("no identity: give --identity DIR or set ERHAI_IDENTITY")?;
    Ok(Client::connect_dir(dir).await?)
}

fn print(format: Format, table: impl FnOnce() -> String, json: impl FnOnce() -> serde_json::Value) {
    match format {
        Format::Table => println!("{}", table()),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json()).unwrap_or_default()
        ),
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let fmt = cli.output;
    match cli.command {
        Command::Serve { dir, config } => serve(dir, config).await,
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Admin(AdminCommand::Init { dir, listen }) => {
            let d = erhai_gateway::deploy::init(&dir, listen)?;
            print(
                fmt,
                || {
                    format!(
                        "deployment created in {}\nconfiguration: {}\nadmin identity: {}\nstart it with: erhai serve --dir {}",
                        dir.display(),
                        d.config_file.display(),
                        d.admin_identity.display(),
                        dir.display()
                    )
                },
                || json!({"config": d.config_file, "admin_identity": d.admin_identity}),
            );
            Ok(())
        }
        Command::Admin(AdminCommand::PublicKey { out }) => {
            let key = hex::encode(connect(&cli.identity).await?.platform_key().await?);
            if let Some(out) = &out {
                std::fs::write(out, format!("{key}\n"))
                    .map_err(|e| format!("{}: {e}", out.display()))?;
            }
            print(fmt, || key.clone(), || json!({"public_key": key}));
            Ok(())
        }
        Command::Admin(AdminCommand::User(cmd)) => {
            let c = connect(&cli.identity).await?;
            match cmd {
                UserCommand::Add(a) => {
                    let u = c
                        .add_user(
                            pb::CreateUserRequest {
                                id: a.id,
                                name: a.name,
                                role: a.role,
                                tenant: a.tenant,
                                unit: a.unit,
                                public_key_pem: String::new(),
                                valid_days: a.valid_days,
                            },
                            &a.out,
                        )
                        .await?;
                    print(
                        fmt,
                        || {
                            format!(
                                "user {} ({}) created; identity bundle in {}",
                                u.id,
                                u.role,
                                a.out.display()
                            )
                        },
                        || output::user_json(&u),
                    );
                }
                UserCommand::List => {
                    let us = c.list_users().await?;
                    print(
                        fmt,
                        || output::users_table(&us),
                        || json!(us.iter().map(output::user_json).collect::<Vec<_>>()),
                    );
                }
                UserCommand::Expire { id, at } => {
                    let ms = match at.as_str() {
                        "now" => chrono::Utc::now().timestamp_millis(),
                        "never" => 0,
                        t => chrono::DateTime::parse_from_rfc3339(t)
                            .map_err(|e| {
                                format!("--at `{t}`: {e}; use now, never or an RFC 3339 time")
                            })?
                            .timestamp_millis(),
                    };
                    let u = c.set_user_expiry(&id, ms).await?;
                    print(
                        fmt,
                        || output::users_table(std::slice::from_ref(&u)),
                        || output::user_json(&u),
                    );
                }
            }
            Ok(())
        }
        Command::Whoami => {
            let u = connect(&cli.identity).await?.whoami().await?;
            print(
                fmt,
                || output::users_table(std::slice::from_ref(&u)),
                || output::user_json(&u),
            );
            Ok(())
        }
        Command::Dataset(cmd) => {
            let c = connect(&cli.identity).await?;
            match cmd {
                DatasetCommand::ApproveImport { name, reason } => {
                    let d = c.approve_import(&name, &reason).await?;
                    print(
                        fmt,
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
                    let policy_text = std::fs::read_to_string(&policy)
                        .map_err(|e| format!("{}: {e}", policy.display()))?;
                    let (schema, batches) =
                        erhai_client::files::read_data(&file, Some(&policy_text))?;
                    let d = c
                        .register_sampled(
                            &name,
                            &description,
                            &policy_text,
                            schema,
                            batches,
                            sample_rate.unwrap_or(0.0),
                            sample_seed,
                        )
                        .await?;
                    print(
                        fmt,
                        || {
                            format!(
                                "registered {} as {} ({} rows, encrypted at rest)",
                                d.name, d.id, d.rows
                            )
                        },
                        || output::dataset_json(&d),
                    );
                }
                DatasetCommand::List => {
                    let ds = c.list_datasets().await?;
                    print(
                        fmt,
                        || output::datasets_table(&ds),
                        || json!(ds.iter().map(output::dataset_json).collect::<Vec<_>>()),
                    );
                }
                DatasetCommand::Show { dataset } => {
                    let d = c.get_dataset(&dataset).await?;
                    print(
                        fmt,
                        || output::dataset_detail(&d),
                        || output::dataset_json(&d),
                    );
                }
            }
            Ok(())
        }
        Command::Query(QueryCommand::Check { sql, scenario }) => {
            let v = connect(&cli.identity).await?.check(&scenario, &sql).await?;
            print(
                fmt,
                || output::verdict_detail(&v),
                || output::verdict_json(&v),
            );
            if !v.allowed {
                return Err("the query would be refused".into());
            }
            Ok(())
        }
        Command::Query(QueryCommand::Submit {
            sql,
            wait: _,
            env: Env::Dev,
            out,
            scenario,
            epsilon,
        }) => {
            if epsilon != 0.0 {
                return Err("--epsilon is for production runs (samples spend no budget)".into());
            }
            if let Some(out) = &out {
                erhai_client::files::FileFormat::of(out)?;
            }
            let (j, schema, batches) = connect(&cli.identity)
                .await?
                .run_dev(&scenario, &sql)
                .await?;
            if let Some(out) = &out {
                erhai_client::files::write_data(out, &schema, &batches)?;
            }
            print(
                fmt,
                || {
                    format!(
                        "development job {} (samples, not reviewed; promote with `erhai job promote {}`)\n{}",
                        j.id,
                        j.id,
                        output::batches_table(&batches)
                    )
                },
                || json!({"job": output::job_json(&j), "rows": output::batches_json(&batches)}),
            );
            Ok(())
        }
        Command::Query(QueryCommand::Submit {
            sql,
            wait: _,
            env: Env::Prod,
            out,
            scenario,
            epsilon,
        }) => {
            if out.is_some() {
                return Err("--out is for development runs; production results are fetched with `erhai release fetch` once approved".into());
            }
            let j = connect(&cli.identity)
                .await?
                .submit_in(&sql, &scenario, epsilon)
                .await?;
            print(fmt, || output::job_detail(&j), || output::job_json(&j));
            if j.state == "failed" {
                return Err(format!("job {} failed: {}", j.id, j.error).into());
            }
            Ok(())
        }
        Command::Job(cmd) => {
            let c = connect(&cli.identity).await?;
            match cmd {
                JobCommand::Show { job } => {
                    let j = c.job(&job).await?;
                    print(fmt, || output::job_detail(&j), || output::job_json(&j));
                }
                JobCommand::Promote { job } => {
                    let j = c.promote(&job).await?;
                    print(fmt, || output::job_detail(&j), || output::job_json(&j));
                }
                JobCommand::List => {
                    let js = c.jobs().await?;
                    print(
                        fmt,
                        || output::jobs_table(&js),
                        || json!(js.iter().map(output::job_json).collect::<Vec<_>>()),
                    );
                }
            }
            Ok(())
        }
        Command::Review(cmd) => {
            let c = connect(&cli.identity).await?;
            match cmd {
                ReviewCommand::List => {
                    let js = c.pending().await?;
                    print(
                        fmt,
                        || output::jobs_table(&js),
                        || json!(js.iter().map(output::job_json).collect::<Vec<_>>()),
                    );
                }
                ReviewCommand::Show { job, wait } => {
                    if wait {
                        c.finished(&job, REVIEW_WAIT).await?;
                    }
                    let (d, preview) = c.show_review(&job).await?;
                    let j = d.job.unwrap_or_default();
                    print(
                        fmt,
                        || {
                            format!(
                                "{}rows that would be released ({} shown, rows to review marked):\n{}",
                                output::job_detail(&j),
                                d.preview_rows,
                                output::review_preview(&preview, j.report.as_ref())
                            )
                        },
                        || json!({"job": output::job_json(&j), "preview": output::batches_json(&preview)}),
                    );
                }
                ReviewCommand::Approve { job, reason, .. }
                | ReviewCommand::Reject { job, reason, .. }
                    if reason.trim().is_empty() =>
                {
                    return Err(format!("job {job}: a decision needs a non-empty --reason").into());
                }
                ReviewCommand::Approve { job, reason, wait } => {
                    if wait {
                        c.finished(&job, REVIEW_WAIT).await?;
                    }
                    let j = c.decide(&job, true, &reason).await?;
                    print(
                        fmt,
                        || format!("job {} {}", j.id, j.state),
                        || output::job_json(&j),
                    );
                }
                ReviewCommand::Reject { job, reason, wait } => {
                    if wait {
                        c.finished(&job, REVIEW_WAIT).await?;
                    }
                    let j = c.decide(&job, false, &reason).await?;
                    print(
                        fmt,
                        || format!("job {} {}", j.id, j.state),
                        || output::job_json(&j),
                    );
                }
            }
            Ok(())
        }
        Command::Release(ReleaseCommand::Fetch { job, out }) => {
            let format = erhai_client::files::FileFormat::of(&out)?;
            let (file, receipt) = connect(&cli.identity)
                .await?
                .fetch_file(&job, format.name())
                .await?;
            let receipt_path = erhai_client::files::receipt_path(&out);
            std::fs::write(&out, &file).map_err(|e| format!("{}: {e}", out.display()))?;
            std::fs::write(&receipt_path, &receipt)
                .map_err(|e| format!("{}: {e}", receipt_path.display()))?;
            print(
                fmt,
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
        Command::Release(ReleaseCommand::Verify {
            receipt,
            file,
            public_key,
        }) => {
            let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
            let key_text = if Path::new(&public_key).is_file() {
                String::from_utf8_lossy(&read(Path::new(&public_key))?).into_owned()
            } else {
                public_key.clone()
            };
            let key = hex::decode(key_text.trim())
                .map_err(|e| format!("--public-key is neither a key file nor hex: {e}"))?;
            let envelope = String::from_utf8(read(&receipt)?)
                .map_err(|_| format!("{}: not a text file", receipt.display()))?;
            let r = erhai_gateway::receipt::verify(&envelope, &read(&file)?, &key)
                .map_err(|e| format!("{} does not verify: {e}", file.display()))?;
            print(
                fmt,
                || {
                    format!(
                        "verified: {} is release {} of job {} ({} rows, approved by {} at {}), \
                         fetched by {} at {}",
                        file.display(),
                        r.release,
                        r.job,
                        r.rows,
                        r.reviewers.join(", "),
                        r.approved_at,
                        r.fetched_by,
                        r.fetched_at
                    )
                },
                || json!({"verified": true, "receipt": serde_json::to_value(&r).unwrap_or_default()}),
            );
            Ok(())
        }
        Command::Report(a) => {
            let r = connect(&cli.identity)
                .await?
                .report(&a.tenant, &a.from, &a.to)
                .await?;
            let doc = match (cli.output, a.format.as_str()) {
                (Format::Json, _) => {
                    serde_json::to_string_pretty(&output::report_json(&r)).unwrap_or_default()
                }
                (_, "md") => output::report_markdown(&r),
                (_, "html") => output::report_html(&r),
                (_, other) => {
                    return Err(format!("unknown --format `{other}`; use md or html").into());
                }
            };
            match &a.out {
                Some(out) => {
                    std::fs::write(out, &doc).map_err(|e| format!("{}: {e}", out.display()))?;
                    println!("wrote the report of {} to {}", r.tenant, out.display());
                }
                None => println!("{doc}"),
            }
            Ok(())
        }
        Command::Quality(cmd) => {
            let c = connect(&cli.identity).await?;
            let list = match cmd {
                QualityCommand::File {
                    dataset,
                    column,
                    issue,
                } => vec![c.file_quality(&dataset, &column, &issue).await?],
                QualityCommand::List { open } => c.quality(open).await?,
                QualityCommand::Answer { id, answer } => {
                    vec![c.answer_quality(&id, &answer).await?]
                }
            };
            print(
                fmt,
                || output::quality_table(&list),
                || json!(list.iter().map(output::quality_json).collect::<Vec<_>>()),
            );
            Ok(())
        }
        Command::Tenant(cmd) => {
            let c = connect(&cli.identity).await?;
            let t = match cmd {
                TenantCommand::Create { name, title } => c.create_tenant(&name, &title).await?,
                TenantCommand::List => {
                    let all = c.tenants().await?;
                    print(
                        fmt,
                        || {
                            all.iter()
                                .map(output::tenant_text)
                                .collect::<Vec<_>>()
                                .join("\n")
                        },
                        || json!(all.iter().map(output::tenant_json).collect::<Vec<_>>()),
                    );
                    return Ok(());
                }
                TenantCommand::Show { name } => c.tenant(name.as_deref().unwrap_or("")).await?,
                TenantCommand::Agreement {
                    name,
                    start,
                    end,
                    reason,
                } => c.set_agreement(&name, &start, &end, &reason).await?,
                TenantCommand::Suspend { name, reason } => {
                    c.change_tenant_status(&name, "suspend", &reason).await?
                }
                TenantCommand::Restore { name, reason } => {
                    c.change_tenant_status(&name, "restore", &reason).await?
                }
                TenantCommand::Terminate { name, reason } => {
                    c.change_tenant_status(&name, "terminate", &reason).await?
                }
                TenantCommand::Rectify { report } => c.rectify(&report).await?,
            };
            print(fmt, || output::tenant_text(&t), || output::tenant_json(&t));
            Ok(())
        }
        Command::Scenario(cmd) => {
            let c = connect(&cli.identity).await?;
            match cmd {
                ScenarioCommand::Apply { file } => {
                    let s = c
                        .apply_scenario(erhai_client::application::read_application(&file)?)
                        .await?;
                    print(
                        fmt,
                        || output::scenario_text(&s),
                        || output::scenario_json(&s),
                    );
                }
                ScenarioCommand::Review {
                    name,
                    approve,
                    reject: _,
                    reason,
                    columns,
                } => {
                    let s = c.review_scenario(&name, approve, &reason, &columns).await?;
                    print(
                        fmt,
                        || output::scenario_text(&s),
                        || output::scenario_json(&s),
                    );
                }
                ScenarioCommand::Revoke { name, reason } => {
                    let s = c.revoke_scenario(&name, &reason).await?;
                    print(
                        fmt,
                        || output::scenario_text(&s),
                        || output::scenario_json(&s),
                    );
                }
                ScenarioCommand::Overdue => {
                    let all = c.overdue_scenarios().await?;
                    print(
                        fmt,
                        || {
                            all.iter()
                                .map(output::scenario_text)
                                .collect::<Vec<_>>()
                                .join("\n")
                        },
                        || json!(all.iter().map(output::scenario_json).collect::<Vec<_>>()),
                    );
                }
                ScenarioCommand::List => {
                    let all = c.scenarios().await?;
                    print(
                        fmt,
                        || {
                            all.iter()
                                .map(output::scenario_text)
                                .collect::<Vec<_>>()
                                .join("\n")
                        },
                        || json!(all.iter().map(output::scenario_json).collect::<Vec<_>>()),
                    );
                }
                ScenarioCommand::Show { name } => {
                    let s = c.scenario(&name).await?;
                    print(
                        fmt,
                        || output::scenario_text(&s),
                        || output::scenario_json(&s),
                    );
                }
                ScenarioCommand::Budget { name } => {
                    let b = c.budget(&name).await?;
                    print(
                        fmt,
                        || {
                            format!(
                                "scenario {}: ε spent {:.4} of {} ({:.4} left) over {} queries; δ spent {:e} of {:e}",
                                b.scenario,
                                b.epsilon_spent,
                                b.epsilon_total,
                                b.epsilon_left,
                                b.queries,
                                b.delta_spent,
                                b.delta_total
                            )
                        },
                        || json!({"scenario": b.scenario, "epsilon_total": b.epsilon_total, "epsilon_spent": b.epsilon_spent, "epsilon_left": b.epsilon_left, "delta_total": b.delta_total, "delta_spent": b.delta_spent, "queries": b.queries}),
                    );
                }
            }
            Ok(())
        }
        Command::Lineage(args) => {
            let c = connect(&cli.identity).await?;
            let l = c
                .lineage(
                    args.dataset.as_deref().unwrap_or(""),
                    args.release.as_deref().unwrap_or(""),
                )
                .await?;
            print(
                fmt,
                || output::lineage_text(&l),
                || output::lineage_json(&l),
            );
            Ok(())
        }
        Command::Audit(cmd) => {
            let c = connect(&cli.identity).await?;
            match cmd {
                AuditCommand::List { filter, limit } => {
                    let es = c.audit_query(filter.request(limit, false)?).await?;
                    print(fmt, || output::audit_table(&es), || output::audit_json(&es));
                }
                AuditCommand::Export { filter, out } => {
                    let es = c.audit_query(filter.request(0, true)?).await?;
                    let mut text = String::new();
                    for e in output::audit_json(&es).as_array().into_iter().flatten() {
                        text.push_str(&e.to_string());
                        text.push('\n');
                    }
                    std::fs::write(&out, text).map_err(|e| format!("{}: {e}", out.display()))?;
                    print(
                        fmt,
                        || format!("wrote {} events to {}", es.len(), out.display()),
                        || json!({"events": es.len(), "file": out}),
                    );
                }
                AuditCommand::Checkpoint => {
                    let cp = c.audit_checkpoint().await?;
                    let j = json!({
                        "seq": cp.seq, "hash": cp.hash, "time": output::time(cp.time_ms),
                        "time_ms": cp.time_ms, "public_key": cp.public_key, "signature": cp.signature,
                    });
                    print(
                        fmt,
                        || serde_json::to_string_pretty(&j).unwrap_or_default(),
                        || j.clone(),
                    );
                }
                AuditCommand::Verify => {
                    let v = c.audit_verify().await?;
                    print(
                        fmt,
                        || v.detail.clone(),
                        || json!({"ok": v.ok, "events": v.events, "checkpoints": v.checkpoints, "detail": v.detail}),
                    );
                    if !v.ok {
                        return Err(format!("audit chain broken: {}", v.detail).into());
                    }
                }
            }
            Ok(())
        }
    }
}

async fn serve(
    dir: Option<PathBuf>,
    config: Option<PathBuf>,
) -> Result<(), Box<dyn std::error::Error>> {
    let path = match (config, dir) {
        (Some(c), _) => c,
        (None, Some(d)) => d.join(CONFIG_FILE),
        (None, None) => {
            return Err(
                "give --dir DIR (a deployment made by `erhai admin init`) or --config FILE".into(),
            );
        }
    };
    let cfg = ServerConfig::load(Path::new(&path))?;
    let server = erhai_gateway::start(cfg).await?;
    println!("ready {}", erhai_gateway::deploy::endpoint_for(server.addr));
    crate::termination().await?;
    server.shutdown().await?;
    Ok(())
}
