//! `erhai quality …`: data-quality requests.

use clap::Subcommand;

use super::{Context, Result};

/// `erhai quality …`
#[derive(Debug, Subcommand)]
pub enum QualityCommand {
    /// Report what is wrong with a dataset (analyst).
    File {
        /// Dataset name.
        #[arg(long)]
        dataset: String,
        /// An example column.
        #[arg(long, default_value = "")]
        column: String,
        /// What is wrong.
        #[arg(long)]
        issue: String,
    },
    /// Requests you may see, oldest open first, with their age.
    List {
        /// Open requests only.
        #[arg(long)]
        open: bool,
    },
    /// Answer and close a request on your unit's dataset (provider).
    Answer {
        /// Request id.
        id: String,
        /// The answer.
        #[arg(long)]
        answer: String,
    },
}

/// Runs `erhai quality …`.
pub(super) async fn run(ctx: &Context, cmd: QualityCommand) -> Result {
    let c = ctx.client().await?;
    let list = match cmd {
        QualityCommand::File {
            dataset,
            column,
            issue,
        } => vec![c.file_quality(&dataset, &column, &issue).await?],
        QualityCommand::List { open } => c.quality(open).await?,
        QualityCommand::Answer { id, answer } => {
            vec![c.answer_quality(&id, &answer).await?]
        }
    };
    ctx.show(list.as_slice());
    Ok(())
}
