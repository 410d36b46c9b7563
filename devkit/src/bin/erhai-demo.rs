//! `erhai-demo`: the whole flow on generated Dali data in a throwaway deployment (`make demo`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    erhai::install_crypto_provider();
    let args = erhai_devkit::demo::DemoArgs::parse();
    erhai::run_to_exit(erhai_devkit::demo::run(args))
}
