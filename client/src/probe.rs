//! Why a call died in the transport: a TLS 1.3 client finishes its handshake before the server
//! has judged its certificate, so a rejection reaches the first call either as the server's
//! alert or, if the connection closed first, as "connection closed" with no reason. This
//! repeats the handshake on its own and reads the server's first bytes: an HTTP/2 server
//! speaks first (its SETTINGS frame) once it has accepted the certificate, and sends an alert
//! when it has not.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::AsyncReadExt;

use crate::ClientError;
use crate::identity::IdentityBundle;

/// How long the probe waits for the server's first bytes.
const PROBE_WAIT: Duration = Duration::from_secs(5);

/// `e` restated as a rejected certificate if it is a transport failure and a fresh handshake
/// with `identity` is rejected; otherwise `e` unchanged.
pub async fn explain(identity: &IdentityBundle, e: ClientError) -> ClientError {
    if !e.is_transport() {
        return e;
    }
    match handshake_rejection(identity).await {
        Some(detail) => ClientError::CertificateRejected { detail },
        None => e,
    }
}

/// The server's verdict on `identity`'s certificate if it rejects it, from a handshake of our
/// own; `None` if it accepts it or the probe cannot tell.
pub async fn handshake_rejection(identity: &IdentityBundle) -> Option<String> {
    let config = tls_config(identity)?;
    let address = authority(&identity.endpoint)?;
    let tcp = tokio::time::timeout(PROBE_WAIT, tokio::net::TcpStream::connect(address))
        .await
        .ok()?
        .ok()?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").ok()?;
    let connected = tokio::time::timeout(PROBE_WAIT, connector.connect(name, tcp)).await;
    let mut tls = match connected {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return crate::error::alert_in(&e).or_else(|| closed_by_server(&e)),
        Err(_) => return None,
    };
    let mut first = [0u8; 64];
    match tokio::time::timeout(PROBE_WAIT, tls.read(&mut first)).await {
        Ok(Ok(0)) => Some("the server closed the connection after the handshake".into()),
        Ok(Ok(_)) => None,
        Ok(Err(e)) => crate::error::alert_in(&e).or_else(|| closed_by_server(&e)),
        Err(_) => None,
    }
}

/// A handshake the server ended without a word.
fn closed_by_server(e: &std::io::Error) -> Option<String> {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted
    )
    .then(|| "the server ended the TLS handshake".to_string())
}

/// The same trust and identity the channel uses.
fn tls_config(identity: &IdentityBundle) -> Option<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(identity.ca.as_bytes()) {
        roots.add(ca.ok()?).ok()?;
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(identity.cert.as_bytes())
            .collect::<Result<_, _>>()
            .ok()?;
    let key = PrivateKeyDer::from_pem_slice(identity.key.as_bytes()).ok()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .ok()
}

/// `host:port` of an `https://host:port[/…]` endpoint.
fn authority(endpoint: &str) -> Option<String> {
    let rest = endpoint.strip_prefix("https://")?;
    let host_port = rest.split('/').next()?;
    host_port.contains(':').then(|| host_port.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authority_of_an_endpoint() {
        assert_eq!(
            authority("https://127.0.0.1:7443").as_deref(),
            Some("127.0.0.1:7443")
        );
        assert_eq!(
            authority("https://[::1]:7443/").as_deref(),
            Some("[::1]:7443")
        );
        assert_eq!(authority("http://127.0.0.1:7443"), None);
    }
}
