//! `erhai serve`: the server, until Ctrl-C or SIGTERM.

use std::path::{Path, PathBuf};

use erhai_gateway::config::{CONFIG_FILE, LogFormat};
use erhai_gateway::{GatewayError, ServerConfig};

use super::Result;

/// `--log-format`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines (no colours unless stderr is a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

/// The configuration file `serve` reads.
fn config_path(dir: Option<&Path>, config: Option<&Path>) -> Option<PathBuf> {
    match (config, dir) {
        (Some(c), _) => Some(c.to_path_buf()),
        (None, Some(d)) => Some(d.join(CONFIG_FILE)),
        (None, None) => None,
    }
}

/// The server's logging: `--log-format`, else the configuration's `log_format` (and
/// `ERHAI_LOG_FORMAT`); one line per call unless `ERHAI_LOG` says otherwise. A configuration
/// that does not load is reported by `serve` itself, after logging starts.
pub(super) fn logging(
    dir: Option<&Path>,
    config: Option<&Path>,
    flag: Option<LogFormatArg>,
) -> crate::Logging {
    let format = match flag {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Text) => LogFormat::Text,
        None => config_path(dir, config)
            .and_then(|p| ServerConfig::load(&p).ok())
            .map(|c| c.log_format)
            .unwrap_or_default(),
    };
    crate::Logging {
        format,
        default_filter: "warn,erhai_gateway=info",
    }
}

/// Runs the server of the deployment in `dir` or configured by `config`.
pub(super) async fn serve(dir: Option<PathBuf>, config: Option<PathBuf>) -> Result {
    let Some(path) = config_path(dir.as_deref(), config.as_deref()) else {
        return Err(
            "give --dir DIR (a deployment made by `erhai admin init`) or --config FILE".into(),
        );
    };
    let cfg = ServerConfig::load(Path::new(&path))?;
    let server = match erhai_gateway::start(cfg).await {
        Ok(s) => s,
        Err(GatewayError::AddrInUse { addr, key }) => {
            return Err(format!(
                "{addr} is already in use (another erhai serve?): stop it or change `{key}` in {}",
                path.display()
            )
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    println!("ready {}", erhai_gateway::deploy::endpoint_for(server.addr));
    if let Some(m) = server.metrics_addr {
        println!("metrics http://{m}/metrics");
    }
    crate::termination().await?;
    server.shutdown().await?;
    Ok(())
}
