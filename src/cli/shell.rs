//! `erhai completions SHELL` and `erhai man --out DIR`: generated from the clap definition, so
//! they never drift from the commands.

use std::path::Path;

use clap::CommandFactory;
use serde_json::json;

use super::{Cli, Result};
use crate::failure::CliError;
use crate::output::Format;

/// Writes the completion script of `shell` to stdout.
pub(super) fn completions(shell: clap_complete::Shell) -> Result {
    clap_complete::generate(shell, &mut Cli::command(), "erhai", &mut std::io::stdout());
    Ok(())
}

/// Writes one man page per command and subcommand into `out`.
pub(super) fn man_pages(out: &Path, format: Format) -> Result {
    std::fs::create_dir_all(out)
        .map_err(|e| CliError::usage(format!("{}: cannot create it: {e}", out.display())))?;
    clap_mangen::generate_to(Cli::command(), out)
        .map_err(|e| format!("writing man pages into {}: {e}", out.display()))?;
    let mut pages: Vec<String> = std::fs::read_dir(out)
        .map_err(|e| format!("{}: {e}", out.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("erhai") && n.ends_with(".1"))
        .collect();
    pages.sort();
    match format {
        Format::Table => println!("wrote {} man pages to {}", pages.len(), out.display()),
        Format::Json => println!("{}", json!({"dir": out, "pages": pages})),
    }
    Ok(())
}
