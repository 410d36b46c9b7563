//! `erhai`: the server, the demo, administration, and one subcommand per user action.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    erhai::install_crypto_provider();
    let cli = erhai::cli::Cli::parse();
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
    match runtime.block_on(erhai::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
