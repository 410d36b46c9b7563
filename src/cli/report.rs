//! `erhai report`: a tenant's periodic report as Markdown, HTML or JSON.

use std::path::PathBuf;

use clap::Args;

use super::{Context, Result};
use crate::output::{self, Format, Render};

/// `erhai report …`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Tenant (default: your own).
    #[arg(long, default_value = "")]
    tenant: String,
    /// First day: YYYY-MM-DD, or relative to the server's today (`today`, `-30d`, `+1m`).
    #[arg(long, allow_hyphen_values = true)]
    from: String,
    /// Last day: YYYY-MM-DD, or relative to the server's today (`today`, `+3y-1d`).
    #[arg(long, allow_hyphen_values = true)]
    to: String,
    /// Document format: md or html (`--output json` gives JSON).
    #[arg(long, default_value = "md")]
    format: String,
    /// Write the document here instead of printing it.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `erhai report …`.
pub(super) async fn run(ctx: &Context, a: ReportArgs) -> Result {
    let r = ctx
        .client()
        .await?
        .report(&a.tenant, &a.from, &a.to)
        .await?;
    let doc = match (ctx.output, a.format.as_str()) {
        (Format::Json, _) => serde_json::to_string_pretty(&r.json()).unwrap_or_default(),
        (_, "md") => output::report_markdown(&r, crate::lang::Lang::current()),
        (_, "html") => output::report_html(&r, crate::lang::Lang::current()),
        (_, other) => {
            return Err(crate::failure::CliError::usage(format!(
                "unknown --format `{other}`; use md or html"
            ))
            .into());
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
