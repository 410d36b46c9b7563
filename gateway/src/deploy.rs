//! Creating a deployment (`erhai admin init`): PKI, master key, configuration, metadata store and
//! the first admin's identity bundle.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use erhai_engine::MasterKey;

use crate::authz::Role;
use crate::config::{CONFIG_FILE, ServerConfig};
use crate::error::GatewayError;
use crate::pki::{self, CertificateAuthority, ClientKey};
use crate::state::{Store, UserRecord, now_ms};

/// What `init` created.
#[derive(Debug)]
pub struct Deployment {
    /// The configuration file.
    pub config_file: PathBuf,
    /// The first admin's identity bundle.
    pub admin_identity: PathBuf,
}

/// The endpoint URL clients use for a listen address.
pub fn endpoint_for(listen: SocketAddr) -> String {
    let ip = if listen.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        listen.ip()
    };
    format!("https://{}", SocketAddr::new(ip, listen.port()))
}

/// Writes `listen` into the configuration file `config_file`, keeping its other settings: a
/// deployment started on port 0 (the demo, tests) keeps the port it got across restarts, so
/// the endpoint its identity bundles name stays right.
pub fn pin_listen(config_file: &Path, listen: SocketAddr) -> Result<(), GatewayError> {
    let what = || format!("{}", config_file.display());
    let text = std::fs::read_to_string(config_file)
        .map_err(GatewayError::io(format!("reading {}", what())))?;
    let mut table: toml::Table =
        toml::from_str(&text).map_err(|e| GatewayError::Config(format!("{}: {e}", what())))?;
    table.insert("listen".into(), toml::Value::String(listen.to_string()));
    let text = toml::to_string_pretty(&table).map_err(|e| GatewayError::Config(e.to_string()))?;
    std::fs::write(config_file, text).map_err(GatewayError::io(format!("writing {}", what())))
}

/// Creates a deployment in `dir` (which must be empty or absent).
pub fn init(dir: &Path, listen: SocketAddr) -> Result<Deployment, GatewayError> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(GatewayError::io("reading target directory"))?
            .next()
            .is_some()
    {
        return Err(GatewayError::Config(format!(
            "{} is not empty; init creates a new deployment only",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir.join("keys"))
        .map_err(GatewayError::io("creating keys directory"))?;
    let cfg = ServerConfig::new(Path::new("."), listen);
    let mut abs = cfg.clone();
    abs.data_dir = dir.to_path_buf();
    pki::create_ca_and_server(&abs.tls_dir())?;
    MasterKey::create(&abs.master_key_path())?;
    let text = toml::to_string_pretty(&cfg).map_err(|e| GatewayError::Config(e.to_string()))?;
    let config_file = dir.join(CONFIG_FILE);
    std::fs::write(&config_file, text).map_err(GatewayError::io("writing erhai.toml"))?;

    let ca = CertificateAuthority::load(&abs.tls_dir())?;
    let key = ClientKey::generate()?;
    let (cert, fp) = ca.issue_user("admin", &key.public_key_pem(), cfg.user_cert_days)?;
    let store = Store::open(&abs.meta_dir())?;
    store.insert_user(&UserRecord {
        id: "admin".into(),
        name: "Platform administrator".into(),
        role: Role::Admin,
        tenant: None,
        unit: None,
        created_at_ms: now_ms(),
        expires_at_ms: None,
        disabled: false,
        cert_sha256: fp,
    })?;
    let admin_identity = dir.join("identities").join("admin");
    pki::write_identity(
        &admin_identity,
        &cert,
        &key.private_key_pem(),
        ca.ca_pem(),
        &endpoint_for(listen),
    )?;
    Ok(Deployment {
        config_file,
        admin_identity,
    })
}
