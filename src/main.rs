//! `erhai`: the server, administration, and one subcommand per user action.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    erhai::install_crypto_provider();
    let cli = erhai::cli::Cli::parse();
    erhai::run_logged(cli.logging(), erhai::cli::run(cli))
}
