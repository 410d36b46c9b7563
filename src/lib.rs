//! The `erhai` binary's library: the client, the command line, the demo and the demo-data
//! generator. Tests and benches drive erhai through these, as a user would.

pub mod cli;
pub mod client;
pub mod demo;
pub mod demo_data;
pub mod files;
pub mod output;
pub mod tpch;

/// Installs the rustls crypto provider (ring) for this process; call once at startup.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
