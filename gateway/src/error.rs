//! Errors of the gateway outside request handling (startup, configuration, PKI). Request handling
//! answers with `tonic::Status` directly.

/// A startup, configuration or PKI failure.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Configuration could not be read or is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Certificates or keys could not be created or parsed.
    #[error("certificates: {0}")]
    Pki(String),
    /// The metadata store failed.
    #[error("metadata store: {0}")]
    Store(String),
    /// sled failed.
    #[error("metadata store: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record could not be read or written.
    #[error("metadata store: {0}")]
    Record(#[from] crate::records::RecordError),
    /// The listen address is taken.
    #[error(
        "{addr} is already in use (another erhai serve?): stop it or change `{key}` in erhai.toml"
    )]
    AddrInUse {
        /// The address.
        addr: std::net::SocketAddr,
        /// The configuration key that chose it (`listen`, `metrics_listen`).
        key: &'static str,
    },
    /// TLS setup failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The engine failed to start.
    #[error(transparent)]
    Engine(#[from] erhai_engine::EngineError),
}

impl GatewayError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> GatewayError {
        let context = context.into();
        move |source| GatewayError::Io { context, source }
    }
}

impl From<rcgen::Error> for GatewayError {
    fn from(e: rcgen::Error) -> Self {
        GatewayError::Pki(e.to_string())
    }
}
