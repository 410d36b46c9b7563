//! `erhai serve`: the server, until Ctrl-C or SIGTERM.

use std::path::{Path, PathBuf};

use erhai_gateway::ServerConfig;
use erhai_gateway::config::CONFIG_FILE;

use super::Result;

/// Runs the server of the deployment in `dir` or configured by `config`.
pub(super) async fn serve(dir: Option<PathBuf>, config: Option<PathBuf>) -> Result {
    let path = match (config, dir) {
        (Some(c), _) => c,
        (None, Some(d)) => d.join(CONFIG_FILE),
        (None, None) => {
            return Err(
                "give --dir DIR (a deployment made by `erhai admin init`) or --config FILE".into(),
            );
        }
    };
    let cfg = ServerConfig::load(Path::new(&path))?;
    let server = erhai_gateway::start(cfg).await?;
    println!("ready {}", erhai_gateway::deploy::endpoint_for(server.addr));
    crate::termination().await?;
    server.shutdown().await?;
    Ok(())
}
