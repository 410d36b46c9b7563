//! The `erhai` binary's library: the command line and its output. The client itself is the
//! `erhai-client` crate; the demo, its data and TPC-H are the dev-only `erhai-devkit`.

use std::future::Future;
use std::process::ExitCode;

pub mod cli;
pub mod failure;
pub mod output;
pub mod policy_draft;
pub mod progress;

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

/// Runs `work` to completion as a process's main task, with logging (`ERHAI_LOG`) on stderr;
/// an error is printed as `error: …` and exits with its kind's code ([`failure`]).
pub fn run_to_exit(work: impl Future<Output = Result<(), Box<dyn std::error::Error>>>) -> ExitCode {
    run_to_exit_as(false, work)
}

/// [`run_to_exit`], printing a failure as one JSON object on stderr if `json_errors` (for
/// `--output json`, whose stdout a script parses).
pub fn run_to_exit_as(
    json_errors: bool,
    work: impl Future<Output = Result<(), Box<dyn std::error::Error>>>,
) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ERHAI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
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
                eprintln!("error: {}", report.message);
            }
            ExitCode::from(report.kind.exit_code())
        }
    }
}
