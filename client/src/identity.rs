//! Identity bundles: the directory holding a user's certificate, private key, the platform CA
//! and the server's endpoint. The key pair is generated here, so the private key never leaves
//! the machine that will use it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use erhai_proto::bundle;

use crate::ClientError;

/// The environment variable that overrides an identity bundle's endpoint.
pub const ENDPOINT_ENV: &str = "ERHAI_ENDPOINT";

/// An identity bundle read from disk.
#[derive(Clone)]
pub struct IdentityBundle {
    /// Where it was read from.
    pub dir: PathBuf,
    pub(crate) cert: String,
    pub(crate) key: String,
    pub(crate) ca: String,
    /// The server endpoint URL.
    pub endpoint: String,
}

impl std::fmt::Debug for IdentityBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityBundle")
            .field("dir", &self.dir)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl IdentityBundle {
    /// Reads `dir/{cert.pem,key.pem,ca.pem,endpoint}`; a non-empty `ERHAI_ENDPOINT`
    /// replaces the bundle's endpoint (a server moved, or reached through a tunnel).
    pub fn load(dir: &Path) -> Result<Self, ClientError> {
        Self::load_with_endpoint(dir, std::env::var(ENDPOINT_ENV).ok().as_deref())
    }

    /// Reads the bundle in `dir`, its endpoint replaced by `endpoint` when that is non-empty.
    pub fn load_with_endpoint(dir: &Path, endpoint: Option<&str>) -> Result<Self, ClientError> {
        let read = |name: &str| {
            fs::read_to_string(dir.join(name)).map_err(|e| identity_error(dir, name, "read", &e))
        };
        let (cert, key, ca) = (read(bundle::CERT)?, read(bundle::KEY)?, read(bundle::CA)?);
        let endpoint = match endpoint.map(str::trim).filter(|e| !e.is_empty()) {
            Some(e) if e.starts_with("https://") => e.to_string(),
            Some(e) => {
                return Err(ClientError::Identity {
                    dir: dir.to_path_buf(),
                    what: format!(
                        "{ENDPOINT_ENV}=`{e}` is not an https:// URL (e.g. https://127.0.0.1:7443)"
                    ),
                });
            }
            None => read(bundle::ENDPOINT)?.trim().to_string(),
        };
        Ok(IdentityBundle {
            dir: dir.to_path_buf(),
            cert,
            key,
            ca,
            endpoint,
        })
    }
}

fn identity_error(dir: &Path, name: &str, verb: &str, e: &dyn std::fmt::Display) -> ClientError {
    ClientError::Identity {
        dir: dir.to_path_buf(),
        what: format!("cannot {verb} {name}: {e}"),
    }
}

/// A new user's key pair (ECDSA P-256); only its public half is sent to the server.
pub(crate) struct KeyPair(rcgen::KeyPair);

impl KeyPair {
    pub(crate) fn generate() -> Result<Self, ClientError> {
        rcgen::KeyPair::generate()
            .map(KeyPair)
            .map_err(|e| ClientError::Data(format!("cannot generate a key pair: {e}")))
    }

    /// The public key, PEM SubjectPublicKeyInfo.
    pub(crate) fn public_key_pem(&self) -> String {
        self.0.public_key_pem()
    }

    /// The private key, PEM PKCS#8.
    pub(crate) fn private_key_pem(&self) -> String {
        self.0.serialize_pem()
    }
}

/// Writes an identity bundle into `dir` (created if needed; the key file readable by its owner
/// only).
pub(crate) fn write_bundle(
    dir: &Path,
    cert_pem: &str,
    key_pem: &str,
    ca_pem: &str,
    endpoint: &str,
) -> Result<(), ClientError> {
    fs::create_dir_all(dir).map_err(|e| ClientError::Identity {
        dir: dir.to_path_buf(),
        what: format!("cannot create the directory: {e}"),
    })?;
    let write = |name: &str, contents: &str| {
        fs::write(dir.join(name), contents).map_err(|e| identity_error(dir, name, "write", &e))
    };
    write(bundle::CERT, cert_pem)?;
    write_private(&dir.join(bundle::KEY), key_pem.as_bytes())
        .map_err(|e| identity_error(dir, bundle::KEY, "write", &e))?;
    write(bundle::CA, ca_pem)?;
    write(bundle::ENDPOINT, &format!("{endpoint}\n"))
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_bundle_loads_and_its_key_is_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = dir.path().join("alice");
        let key = KeyPair::generate().expect("key");
        write_bundle(
            &at,
            "CERT",
            &key.private_key_pem(),
            "CA",
            "https://localhost:1",
        )
        .expect("write");
        let b = IdentityBundle::load(&at).expect("load");
        assert_eq!(b.endpoint, "https://localhost:1");
        assert_eq!((b.cert.as_str(), b.ca.as_str()), ("CERT", "CA"));
        assert!(b.key.contains("PRIVATE KEY"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(at.join(bundle::KEY))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn an_endpoint_override_replaces_the_bundles_and_must_be_https() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = KeyPair::generate().expect("key");
        write_bundle(
            dir.path(),
            "C",
            &key.private_key_pem(),
            "A",
            "https://old:1",
        )
        .expect("write");
        let b =
            IdentityBundle::load_with_endpoint(dir.path(), Some(" https://new:2 ")).expect("load");
        assert_eq!(b.endpoint, "https://new:2");
        let b = IdentityBundle::load_with_endpoint(dir.path(), Some("")).expect("load");
        assert_eq!(b.endpoint, "https://old:1");
        let e = IdentityBundle::load_with_endpoint(dir.path(), Some("http://new:2"))
            .expect_err("plain http");
        assert!(e.to_string().contains("ERHAI_ENDPOINT"), "{e}");
    }

    #[test]
    fn a_missing_bundle_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = IdentityBundle::load(dir.path()).expect_err("empty dir");
        assert!(e.to_string().contains("cannot read cert.pem"), "{e}");
    }
}
