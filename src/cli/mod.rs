//! The command line: `erhai [--identity DIR] [--output table|json] <command>`. One module per
//! command group, each with its clap subcommands and the code that runs them; this one holds
//! the global options and dispatches.

pub mod admin;
pub mod audit;
pub mod dataset;
pub mod job;
pub mod lineage;
pub mod policy;
pub mod quality;
pub mod query;
pub mod release;
pub mod report;
pub mod review;
pub mod scenario;
mod serve;
pub mod shell;
pub mod tenant;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use erhai_client::{Client, ClientError};

use crate::output::{Format, Render};

/// What a command returns: its errors are printed as `error: …` (or JSON) and exit with their
/// kind's code (`crate::failure`).
type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// erhai — a privacy-preserving compute enclave for public data.
#[derive(Debug, Parser)]
#[command(name = "erhai", version, about, after_help = crate::failure::EXIT_CODES)]
pub struct Cli {
    /// Identity bundle directory (cert.pem, key.pem, ca.pem, endpoint).
    #[arg(long, global = true, env = "ERHAI_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "table")]
    pub output: Format,
    /// Language of messages and reports (default: from ERHAI_LANG, LC_ALL, LC_MESSAGES, LANG).
    #[arg(long, global = true, value_enum)]
    pub lang: Option<crate::lang::Lang>,
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
        /// Log format on stderr (default: `log_format` in erhai.toml, else text); `ERHAI_LOG`
        /// filters it, e.g. `ERHAI_LOG=warn,erhai_gateway::calls=info`.
        #[arg(long, value_enum)]
        log_format: Option<serve::LogFormatArg>,
    },
    /// Platform administration.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Show the calling user.
    Whoami,
    /// Datasets.
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
    /// Column policies: draft one for your own data file (offline, no identity needed).
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Queries.
    #[command(subcommand)]
    Query(query::QueryCommand),
    /// Jobs.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Export review.
    #[command(subcommand)]
    Review(review::ReviewCommand),
    /// Released results.
    #[command(subcommand)]
    Release(release::ReleaseCommand),
    /// Scenarios: release settings and differential-privacy budgets.
    #[command(subcommand)]
    Scenario(scenario::ScenarioCommand),
    /// Tenants (operating entities) and their operating agreements.
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Data-quality requests: analysts file, providers answer, the authority watches.
    #[command(subcommand)]
    Quality(quality::QualityCommand),
    /// A tenant's periodic report (authority; a tenant for itself).
    Report(report::ReportArgs),
    /// The audit chain.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Trace a dataset to its jobs, releases and downloads, or a release to its sources.
    Lineage(lineage::LineageArgs),
    /// Print a shell completion script to stdout (e.g. `erhai completions bash > ~/.local/share/bash-completion/completions/erhai`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write man pages, one per command and subcommand (erhai.1, erhai-query-submit.1, …).
    Man {
        /// Directory to write them to (created if absent).
        #[arg(long)]
        out: PathBuf,
    },
}

/// The global options every command runs with.
struct Context {
    identity: Option<PathBuf>,
    output: Format,
}

impl Context {
    /// A client connected with the identity given by `--identity` or `ERHAI_IDENTITY`.
    async fn client(&self) -> Result<Client> {
        let dir = self.identity.as_ref().ok_or_else(|| {
            crate::failure::CliError::usage(
                "no identity: give --identity DIR or set ERHAI_IDENTITY",
            )
        })?;
        Ok(Client::connect_dir(dir).await?)
    }

    /// Prints `table` or `json`, as `--output` asks; only the one asked for is computed.
    fn print(&self, table: impl FnOnce() -> String, json: impl FnOnce() -> serde_json::Value) {
        match self.output {
            Format::Table => println!("{}", table()),
            Format::Json => println!(
                "{}",
                serde_json::to_string_pretty(&json()).unwrap_or_default()
            ),
        }
    }

    /// Prints a response as `--output` asks.
    fn show<R: Render + ?Sized>(&self, r: &R) {
        self.print(|| r.text(), || r.json());
    }
}

impl Cli {
    /// How this command logs: the server one line per call (text or JSON), every other
    /// command only warnings.
    pub fn logging(&self) -> crate::Logging {
        match &self.command {
            Command::Serve {
                dir,
                config,
                log_format,
            } => serve::logging(dir.as_deref(), config.as_deref(), *log_format),
            _ => crate::Logging::default(),
        }
    }
}

/// Runs a parsed command line. A call that died in the transport is looked into: a server
/// that rejected the identity's certificate may have closed the connection without a word.
pub async fn run(cli: Cli) -> Result {
    let ctx = Context {
        identity: cli.identity,
        output: cli.output,
    };
    let Err(e) = dispatch(&ctx, cli.command).await else {
        return Ok(());
    };
    let Some(dir) = &ctx.identity else {
        return Err(e);
    };
    let client_error = match e.downcast::<ClientError>() {
        Ok(c) if c.is_transport() => c,
        Ok(c) => return Err(c),
        Err(e) => return Err(e),
    };
    let Ok(bundle) = erhai_client::IdentityBundle::load(dir) else {
        return Err(client_error);
    };
    Err(Box::new(
        erhai_client::probe::explain(&bundle, *client_error).await,
    ))
}

async fn dispatch(ctx: &Context, command: Command) -> Result {
    match command {
        Command::Serve { dir, config, .. } => serve::serve(dir, config).await,
        Command::Admin(cmd) => admin::run(ctx, cmd).await,
        Command::Whoami => admin::whoami(ctx).await,
        Command::Dataset(cmd) => dataset::run(ctx, cmd).await,
        Command::Policy(cmd) => policy::run(ctx, cmd),
        Command::Query(cmd) => query::run(ctx, cmd).await,
        Command::Job(cmd) => job::run(ctx, cmd).await,
        Command::Review(cmd) => review::run(ctx, cmd).await,
        Command::Release(cmd) => release::run(ctx, cmd).await,
        Command::Scenario(cmd) => scenario::run(ctx, cmd).await,
        Command::Tenant(cmd) => tenant::run(ctx, cmd).await,
        Command::Quality(cmd) => quality::run(ctx, cmd).await,
        Command::Report(args) => report::run(ctx, args).await,
        Command::Audit(cmd) => audit::run(ctx, cmd).await,
        Command::Lineage(args) => lineage::run(ctx, args).await,
        Command::Completions { shell } => shell::completions(shell),
        Command::Man { out } => shell::man_pages(&out, ctx.output),
    }
}
