//! `erhai lineage`: where a dataset went, where a release came from.

use clap::Args;

use super::{Context, Result};

/// `erhai lineage …`
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct LineageArgs {
    /// Every job, release and download that used this dataset (id or name).
    #[arg(long)]
    dataset: Option<String>,
    /// The datasets, columns, analyst, reviewers, checks and withheld rows behind this
    /// release: its id as the receipt names it (rel-…) or its job id.
    #[arg(long)]
    release: Option<String>,
}

/// Runs `erhai lineage …`.
pub(super) async fn run(ctx: &Context, args: LineageArgs) -> Result {
    let c = ctx.client().await?;
    let l = c
        .lineage(
            args.dataset.as_deref().unwrap_or(""),
            args.release.as_deref().unwrap_or(""),
        )
        .await?;
    ctx.show(&l);
    Ok(())
}
