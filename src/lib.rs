//! The `erhai` binary's library: the command line and its output. The client itself is the
//! `erhai-client` crate; the demo, its data and TPC-H are the dev-only `erhai-devkit`.

use std::future::Future;
use std::process::ExitCode;

pub use erhai_gateway::config::LogFormat;

pub mod cli;
pub mod failure;
pub mod lang;
pub mod output;
pub mod policy_draft;
pub mod progress;
pub mod report_doc;
pub mod review_view;

/// Installs the rustls crypto provider (ring) for this process; call once at startup.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM, the signal service managers send: both take the
/// graceful path (running jobs end or are marked interrupted, a shutdown event and a final
/// signed checkpoint are written).
pub async fn termination() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

/// How a process logs on stderr.
#[derive(Clone, Copy, Debug)]
pub struct Logging {
    /// Text or JSON lines.
    pub format: LogFormat,
    /// The filter when `ERHAI_LOG` is not set (an `EnvFilter` directive list).
    pub default_filter: &'static str,
}

impl Default for Logging {
    /// Warnings and errors, as text: a command's output is its answer, not a log.
    fn default() -> Self {
        Logging {
            format: LogFormat::Text,
            default_filter: "warn",
        }
    }
}

impl Logging {
    /// Installs the global subscriber. `ERHAI_LOG` (e.g. `warn,erhai_gateway::calls=info`)
    /// replaces the default filter; text has colours only when stderr is a terminal.
    fn install(self) {
        let filter = tracing_subscriber::EnvFilter::try_from_env("ERHAI_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(self.default_filter));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        match self.format {
            LogFormat::Json => builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .init(),
            LogFormat::Text => builder
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init(),
        }
    }
}

/// Runs `work` to completion as a process's main task, with logging (`ERHAI_LOG`) on stderr;
/// an error is printed as `error: …` and exits with its kind's code ([`failure`]).
pub fn run_to_exit(work: impl Future<Output = Result<(), Box<dyn std::error::Error>>>) -> ExitCode {
    run_logged(Logging::default(), false, work)
}

/// [`run_to_exit`] with `logging` instead of the default, printing a failure as one JSON object
/// on stderr if `json_errors` (for `--output json`, whose stdout a script parses).
pub fn run_logged(
    logging: Logging,
    json_errors: bool,
    work: impl Future<Output = Result<(), Box<dyn std::error::Error>>>,
) -> ExitCode {
    logging.install();
    // Planning and checking recurse over analyst-built trees; the checks grow their stacks on
    // demand, and roomier worker stacks (reserved, not committed) keep the rest clear of the
    // edge in debug builds too.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(16 << 20)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let report = failure::Report::of(e.as_ref());
            if json_errors {
                eprintln!("{}", report.json());
            } else {
                eprintln!(
                    "{}: {}",
                    lang::Lang::current().pick("error", "错误"),
                    report.message
                );
            }
            ExitCode::from(report.kind.exit_code())
        }
    }
}
