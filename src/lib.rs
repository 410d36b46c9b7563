//! The `erhai` binary's library: the command line, the demo and the demo-data generator. The
//! client itself is the `erhai-client` crate; tests and benches drive erhai through these, as a
//! user would.

pub mod cli;
pub mod demo;
pub mod demo_data;
pub mod output;
pub mod tpch;

/// Installs the rustls crypto provider (ring) for this process; call once at startup.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM, the signal service managers send: both take the
/// graceful path (running jobs end or are marked interrupted, a shutdown event and a final
/// signed checkpoint are written).
pub async fn termination() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
