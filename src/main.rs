//! `erhai`: the server, administration, and one subcommand per user action.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    erhai::install_crypto_provider();
    let cli = erhai::cli::Cli::parse();
    erhai::lang::Lang::detect(cli.lang).set_current();
    let json_errors = cli.output == erhai::output::Format::Json;
    erhai::run_logged(cli.logging(), json_errors, erhai::cli::run(cli))
}
