//! Server configuration: `erhai.toml` in the deployment directory, overridable by `ERHAI_*`
//! environment variables. Holds paths, never key material.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use erhai_engine::{Limits, SampleSpec};
use erhai_policies::ReleaseRules;
use serde::{Deserialize, Serialize};

use crate::error::GatewayError;

/// The configuration file's name inside a deployment directory.
pub const CONFIG_FILE: &str = "erhai.toml";

/// Everything the server needs to start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Deployment directory: meta/, datasets/, results/, tls/, keys/ (relative paths are resolved
    /// against the configuration file's directory).
    pub data_dir: PathBuf,
    /// Master key file; default `<data_dir>/keys/master.key`.
    #[serde(default)]
    pub master_key_file: Option<PathBuf>,
    /// Validity of issued user certificates, days.
    #[serde(default = "default_cert_days")]
    pub user_cert_days: u32,
    /// Per-job limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Release rules.
    #[serde(default)]
    pub release: ReleaseConfig,
    /// Governance settings.
    #[serde(default)]
    pub governance: GovernanceConfig,
    /// Development samples.
    #[serde(default)]
    pub dev: DevConfig,
    /// Address of the operators' plain-HTTP listener serving `GET /healthz` (200 `ok` while
    /// calls are accepted and the metadata store and audit chain take durable writes) and
    /// `GET /metrics` (Prometheus / OpenMetrics text: calls by action and outcome, job run
    /// times, queued and running jobs, audit append latency, batch cache hits and misses).
    /// It exposes counters only, never data, SQL, names or keys, and has no authentication.
    /// Absent: no such listener. Env `ERHAI_METRICS_LISTEN`. Example: `"127.0.0.1:9464"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// Allow `metrics_listen` on a non-loopback address (default false: such an address is
    /// refused at startup, since the listener is unauthenticated plain HTTP; prefer scraping
    /// through a local agent or a tunnel).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub metrics_public: bool,
    /// Format of the server's log on stderr: `text` (default; no colours unless stderr is a
    /// terminal) or `json` (one object per line, for log shippers). `erhai serve
    /// --log-format` and env `ERHAI_LOG_FORMAT` override it; `ERHAI_LOG` filters it (default
    /// `warn,erhai_gateway=info`: warnings and one line per call).
    #[serde(default, skip_serializing_if = "LogFormat::is_text")]
    pub log_format: LogFormat,
}

/// How the server writes its log.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    fn is_text(&self) -> bool {
        *self == LogFormat::Text
    }
}

/// Development samples as configured (a dataset's registration may choose its own rate and
/// seed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevConfig {
    /// Default fraction of rows drawn.
    pub sample_rate: f64,
    /// Fewest rows drawn (unless the dataset is smaller).
    pub sample_floor: u64,
}

impl Default for DevConfig {
    fn default() -> Self {
        let d = SampleSpec::default();
        DevConfig {
            sample_rate: d.rate,
            sample_floor: d.floor,
        }
    }
}

fn default_cert_days() -> u32 {
    365
}

/// Per-job limits as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Memory pool per job, MiB.
    pub memory_mib: u64,
    /// Wall-clock limit per job, seconds.
    pub timeout_secs: u64,
    /// Rows a result may have before checks.
    pub max_result_rows: u64,
    /// Jobs executing at once; more wait their turn.
    pub concurrent_jobs: usize,
    /// Largest upload accepted, in MiB of Arrow IPC data.
    pub max_upload_mib: u64,
    /// MiB of decrypted batches of hot datasets kept in memory for later jobs (never on disk);
    /// 0 turns the cache off. Counted outside the per-job pool.
    pub cache_mib: u64,
    /// How long an Arrow Flight SQL ticket or prepared statement stays valid, seconds.
    pub flight_ticket_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            memory_mib: 2048,
            timeout_secs: 120,
            max_result_rows: 100_000,
            concurrent_jobs: 2,
            max_upload_mib: 16 * 1024,
            cache_mib: 0,
            flight_ticket_secs: 600,
        }
    }
}

/// Governance settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GovernanceConfig {
    /// Longest operating agreement, in years.
    pub max_agreement_years: u32,
    /// Public holidays (YYYY-MM-DD) that review deadlines skip besides weekends.
    pub holidays: Vec<String>,
}

impl Default for GovernanceConfig {
    fn default() -> Self {
        GovernanceConfig {
            max_agreement_years: 3,
            holidays: Vec::new(),
        }
    }
}

impl GovernanceConfig {
    /// The holidays as dates (validated at load).
    pub fn holiday_dates(&self) -> Vec<chrono::NaiveDate> {
        self.holidays
            .iter()
            .filter_map(|h| chrono::NaiveDate::parse_from_str(h, "%Y-%m-%d").ok())
            .collect()
    }
}

/// Release rules as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReleaseConfig {
    /// Minimum distinct privacy units per released row.
    pub k: u64,
    /// A result with any row to review needs the approval of a second reviewer.
    pub second_reviewer: bool,
}

impl Default for ReleaseConfig {
    fn default() -> Self {
        ReleaseConfig {
            k: erhai_policies::release::DEFAULT_K,
            second_reviewer: false,
        }
    }
}

impl ServerConfig {
    /// A configuration for a deployment in `dir`.
    pub fn new(dir: &Path, listen: SocketAddr) -> ServerConfig {
        ServerConfig {
            listen,
            data_dir: dir.to_path_buf(),
            master_key_file: None,
            user_cert_days: default_cert_days(),
            limits: LimitsConfig::default(),
            release: ReleaseConfig::default(),
            governance: GovernanceConfig::default(),
            dev: DevConfig::default(),
            metrics_listen: None,
            metrics_public: false,
            log_format: LogFormat::default(),
        }
    }

    /// Reads `path`, resolves relative paths against its directory and applies `ERHAI_LISTEN`,
    /// `ERHAI_DATA_DIR`, `ERHAI_K`, `ERHAI_TIMEOUT_SECS`, `ERHAI_MEMORY_MIB`,
    /// `ERHAI_CACHE_MIB`, `ERHAI_METRICS_LISTEN` and `ERHAI_LOG_FORMAT` overrides.
    pub fn load(path: &Path) -> Result<ServerConfig, GatewayError> {
        let text = std::fs::read_to_string(path)
            .map_err(GatewayError::io(format!("reading {}", path.display())))?;
        let mut cfg: ServerConfig = toml::from_str(&text)
            .map_err(|e| GatewayError::Config(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        if cfg.data_dir.is_relative() {
            cfg.data_dir = base.join(&cfg.data_dir);
        }
        if let Some(k) = &cfg.master_key_file
            && k.is_relative()
        {
            cfg.master_key_file = Some(base.join(k));
        }
        cfg.apply_env()?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn apply_env(&mut self) -> Result<(), GatewayError> {
        fn parse<T: std::str::FromStr>(name: &str) -> Result<Option<T>, GatewayError> {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| GatewayError::Config(format!("{name}={v} is not a valid value"))),
                Err(_) => Ok(None),
            }
        }
        if let Some(v) = parse("ERHAI_LISTEN")? {
            self.listen = v;
        }
        if let Some(v) = parse::<PathBuf>("ERHAI_DATA_DIR")? {
            self.data_dir = v;
        }
        if let Some(v) = parse("ERHAI_K")? {
            self.release.k = v;
        }
        if let Some(v) = parse("ERHAI_TIMEOUT_SECS")? {
            self.limits.timeout_secs = v;
        }
        if let Some(v) = parse("ERHAI_MEMORY_MIB")? {
            self.limits.memory_mib = v;
        }
        if let Some(v) = parse("ERHAI_CACHE_MIB")? {
            self.limits.cache_mib = v;
        }
        if let Some(v) = parse("ERHAI_METRICS_LISTEN")? {
            self.metrics_listen = Some(v);
        }
        if let Some(v) = parse("ERHAI_LOG_FORMAT")? {
            self.log_format = v;
        }
        Ok(())
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), GatewayError> {
        if let Some(addr) = self.metrics_listen
            && !addr.ip().is_loopback()
            && !self.metrics_public
        {
            return Err(GatewayError::Config(format!(
                "metrics_listen = \"{addr}\" is not a loopback address: the metrics listener is \
                 unauthenticated plain HTTP; keep it on 127.0.0.1 (scrape through a local agent \
                 or a tunnel) or set metrics_public = true to expose it on purpose"
            )));
        }
        for h in &self.governance.holidays {
            chrono::NaiveDate::parse_from_str(h, "%Y-%m-%d").map_err(|e| {
                GatewayError::Config(format!("governance.holidays: `{h}` is not YYYY-MM-DD: {e}"))
            })?;
        }
        if !(1..=10).contains(&self.governance.max_agreement_years) {
            return Err(GatewayError::Config(
                "governance.max_agreement_years must be between 1 and 10".into(),
            ));
        }
        self.release_rules()
            .validate()
            .map_err(|e| GatewayError::Config(e.to_string()))?;
        if self.limits.memory_mib < 16 {
            return Err(GatewayError::Config(
                "limits.memory_mib must be at least 16".into(),
            ));
        }
        if self.limits.timeout_secs == 0 {
            return Err(GatewayError::Config(
                "limits.timeout_secs must be at least 1".into(),
            ));
        }
        SampleSpec {
            rate: self.dev.sample_rate,
            floor: self.dev.sample_floor,
            seed: 0,
        }
        .validate()
        .map_err(|e| GatewayError::Config(format!("dev.sample_rate: {e}")))?;
        if self.user_cert_days == 0 || self.user_cert_days > 3650 {
            return Err(GatewayError::Config(
                "user_cert_days must be between 1 and 3650".into(),
            ));
        }
        Ok(())
    }

    /// The engine's limits.
    pub fn engine_limits(&self) -> Limits {
        Limits {
            memory_bytes: (self.limits.memory_mib as usize).saturating_mul(1 << 20),
            timeout: Duration::from_secs(self.limits.timeout_secs),
            max_rows: self.limits.max_result_rows,
            cache_bytes: (self.limits.cache_mib as usize).saturating_mul(1 << 20),
            ..Limits::default()
        }
    }

    /// The release rules.
    pub fn release_rules(&self) -> ReleaseRules {
        ReleaseRules {
            k: self.release.k,
            ..ReleaseRules::default()
        }
    }

    /// The master key file.
    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys").join("master.key"))
    }

    /// The platform's audit checkpoint signing key (Ed25519, beside the master key).
    pub fn audit_key_path(&self) -> PathBuf {
        self.master_key_path()
            .parent()
            .map(|p| p.join("audit-signing.pk8"))
            .unwrap_or_else(|| self.data_dir.join("keys").join("audit-signing.pk8"))
    }

    /// The TLS directory.
    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir.join("tls")
    }

    /// The sled directory.
    pub fn meta_dir(&self) -> PathBuf {
        self.data_dir.join("meta")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/erhai.toml` documents every key with its default: it must parse (unknown keys are
    /// refused) and equal a fresh configuration, so the reference cannot drift from the code.
    #[test]
    fn the_reference_configuration_is_the_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/erhai.toml");
        let text = std::fs::read_to_string(&path).expect("docs/erhai.toml");
        let documented: ServerConfig = toml::from_str(&text).expect("parses");
        let fresh = ServerConfig::new(Path::new("."), documented.listen);
        assert_eq!(documented, fresh);
        documented.validate().expect("valid");
        // Every key of the code appears in the reference, not only by default.
        let written = toml::to_string(&fresh).expect("serialize");
        let keys = |t: &str| -> Vec<String> {
            t.lines()
                .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.trim().to_string()))
                .collect()
        };
        let in_docs = keys(&text);
        for k in keys(&written) {
            assert!(
                in_docs.contains(&k),
                "docs/erhai.toml does not document `{k}`"
            );
        }
    }
}
