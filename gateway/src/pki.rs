//! The platform's PKI: a CA created by `admin init`, the server certificate, user certificates
//! issued from a public key the client generated (the private key never leaves the client), and
//! identity bundles (`cert.pem`, `key.pem`, `ca.pem`, `endpoint`).

use std::fs;
use std::io::Write;
use std::path::Path;

use erhai_proto::bundle;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SubjectPublicKeyInfo,
};
use ring::digest::{SHA256, digest};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::GatewayError;

/// File names inside the TLS directory.
pub const CA_CERT: &str = "ca.pem";
/// The CA's private key (0600).
pub const CA_KEY: &str = "ca.key";
/// The server's certificate.
pub const SERVER_CERT: &str = "server.pem";
/// The server's private key (0600).
pub const SERVER_KEY: &str = "server.key";

/// The names the server certificate is valid for; clients connect with `localhost`.
pub const SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// Writes `contents` to a new file readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), GatewayError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(GatewayError::io(format!("creating {}", path.display())))?;
    f.write_all(contents)
        .and_then(|_| f.sync_all())
        .map_err(GatewayError::io(format!("writing {}", path.display())))
}

fn validity(params: &mut CertificateParams, days: u32) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(i64::from(days));
}

/// Creates the CA and server certificate in `tls_dir`.
pub fn create_ca_and_server(tls_dir: &Path) -> Result<(), GatewayError> {
    fs::create_dir_all(tls_dir)
        .map_err(GatewayError::io(format!("creating {}", tls_dir.display())))?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "erhai platform CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut ca, 3650);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(
        SERVER_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    )?;
    server
        .distinguished_name
        .push(DnType::CommonName, "erhai server");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut server, 825);
    let server_cert = server.signed_by(&server_key, &issuer)?;

    fs::write(tls_dir.join(CA_CERT), ca_cert.pem())
        .map_err(GatewayError::io("writing CA certificate"))?;
    write_private(
        &tls_dir.join(CA_KEY),
        issuer.key().serialize_pem().as_bytes(),
    )?;
    fs::write(tls_dir.join(SERVER_CERT), server_cert.pem())
        .map_err(GatewayError::io("writing server certificate"))?;
    write_private(
        &tls_dir.join(SERVER_KEY),
        server_key.serialize_pem().as_bytes(),
    )?;
    Ok(())
}

/// The CA as the server holds it, to issue user certificates.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertificateAuthority(<key redacted>)")
    }
}

impl CertificateAuthority {
    /// Loads the CA from `tls_dir`.
    pub fn load(tls_dir: &Path) -> Result<Self, GatewayError> {
        let ca_pem = fs::read_to_string(tls_dir.join(CA_CERT))
            .map_err(GatewayError::io("reading CA certificate"))?;
        let key_pem =
            fs::read_to_string(tls_dir.join(CA_KEY)).map_err(GatewayError::io("reading CA key"))?;
        let key = KeyPair::from_pem(&key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, key)?;
        Ok(CertificateAuthority { issuer, ca_pem })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Issues a client certificate for `user_id` over the public key in `public_key_pem`.
    /// Returns the certificate PEM and its SHA-256 fingerprint.
    pub fn issue_user(
        &self,
        user_id: &str,
        public_key_pem: &str,
        days: u32,
    ) -> Result<(String, String), GatewayError> {
        let spki = SubjectPublicKeyInfo::from_pem(public_key_pem).map_err(|e| {
            GatewayError::Pki(format!("public key is not a PEM SubjectPublicKeyInfo: {e}"))
        })?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, user_id);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity(&mut params, days);
        let cert = params.signed_by(&spki, &self.issuer)?;
        Ok((cert.pem(), fingerprint(cert.der())))
    }
}

/// Hex SHA-256 of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(digest(&SHA256, der).as_ref())
}

/// The subject common name of a DER certificate.
pub fn common_name(der: &[u8]) -> Result<String, GatewayError> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| GatewayError::Pki(format!("unreadable certificate: {e}")))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| GatewayError::Pki("certificate has no common name".into()))?;
    Ok(cn.to_string())
}

/// A client key pair; the private key stays with the client.
pub struct ClientKey {
    key: KeyPair,
}

impl ClientKey {
    /// Generates a key pair (ECDSA P-256).
    pub fn generate() -> Result<Self, GatewayError> {
        Ok(ClientKey {
            key: KeyPair::generate()?,
        })
    }

    /// The public key, PEM SubjectPublicKeyInfo.
    pub fn public_key_pem(&self) -> String {
        self.key.public_key_pem()
    }

    /// The private key, PEM PKCS#8.
    pub fn private_key_pem(&self) -> String {
        self.key.serialize_pem()
    }
}

/// Writes an identity bundle into `dir` (created if needed; the key file is 0600).
pub fn write_identity(
    dir: &Path,
    cert_pem: &str,
    key_pem: &str,
    ca_pem: &str,
    endpoint: &str,
) -> Result<(), GatewayError> {
    fs::create_dir_all(dir).map_err(GatewayError::io(format!("creating {}", dir.display())))?;
    fs::write(dir.join(bundle::CERT), cert_pem).map_err(GatewayError::io("writing cert.pem"))?;
    write_private(&dir.join(bundle::KEY), key_pem.as_bytes())?;
    fs::write(dir.join(bundle::CA), ca_pem).map_err(GatewayError::io("writing ca.pem"))?;
    fs::write(dir.join(bundle::ENDPOINT), format!("{endpoint}\n"))
        .map_err(GatewayError::io("writing endpoint"))?;
    Ok(())
}
