//! Key material: the master key (a file, 0600) and per-dataset / per-result data keys wrapped by it
//! with AES-256-GCM. Keys never appear in `Debug` output, logs or query plans.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::Path;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hkdf, hmac};

use crate::error::{EngineError, Result};
use crate::masks::PseudonymKey;
use crate::unit_stats::UnitKey;

const KEY_LEN: usize = 32;

/// The platform master key. It wraps data keys; keys derived from it (HKDF) key the per-scope
/// pseudonyms and seal the platform's records at rest; nothing else.
pub struct MasterKey {
    wrapping: LessSafeKey,
    pseudonym_root: hmac::Key,
    records: std::sync::Arc<LessSafeKey>,
}

/// Seals records of the platform's metadata at rest (job records hold SQL texts, which may
/// carry a personal literal an analyst typed): AES-256-GCM under a key derived from the master
/// key, each record bound to its name. It seals and opens; the key itself is never exposed.
#[derive(Clone)]
pub struct RecordSealer {
    key: std::sync::Arc<LessSafeKey>,
}

impl fmt::Debug for RecordSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecordSealer(<redacted>)")
    }
}

/// How a sealed record starts: records without it are from before sealing.
pub const SEALED_PREFIX: &[u8] = b"ERS1";

impl RecordSealer {
    /// `plain` sealed under `name` (bound as associated data).
    pub fn seal(&self, name: &str, plain: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| EngineError::Crypto("system random source failed".into()))?;
        let mut buf = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut buf,
            )
            .map_err(|_| EngineError::Crypto("sealing a record failed".into()))?;
        let mut out = Vec::with_capacity(SEALED_PREFIX.len() + NONCE_LEN + buf.len());
        out.extend_from_slice(SEALED_PREFIX);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// The plain bytes of a record sealed under `name`.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        let body = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or_else(|| EngineError::Crypto(format!("record {name} is not sealed")))?;
        if body.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(EngineError::Crypto(format!("record {name} is truncated")));
        }
        let (nonce, rest) = body.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| EngineError::Crypto("bad nonce".into()))?;
        let mut buf = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut buf)
            .map_err(|_| {
                EngineError::Crypto(format!(
                    "record {name} does not open with this master key (altered or moved)"
                ))
            })?;
        Ok(plain.to_vec())
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Creates a new random master key and writes it to `path` (mode 0600); refuses to overwrite.
    pub fn create(path: &Path) -> Result<MasterKey> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| EngineError::Crypto("system random source failed".into()))?;
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(EngineError::io(format!(
            "creating master key {}",
            path.display()
        )))?;
        f.write_all(hex::encode(bytes).as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(EngineError::io("writing master key"))?;
        Self::from_bytes(&bytes)
    }

    /// Loads the master key from `path`, refusing a file readable by others.
    pub fn load(path: &Path) -> Result<MasterKey> {
        let meta = fs::metadata(path).map_err(EngineError::io(format!(
            "reading master key {}",
            path.display()
        )))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(EngineError::Crypto(format!(
                    "master key {} has mode {mode:o}; it must be readable by its owner only (chmod 600)",
                    path.display()
                )));
            }
        }
        let text = fs::read_to_string(path).map_err(EngineError::io(format!(
            "reading master key {}",
            path.display()
        )))?;
        let bytes = hex::decode(text.trim()).map_err(|_| {
            EngineError::Crypto(format!("master key {} is not hex", path.display()))
        })?;
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<MasterKey> {
        if bytes.len() != KEY_LEN {
            return Err(EngineError::Crypto(format!(
                "master key must be {KEY_LEN} bytes, found {}",
                bytes.len()
            )));
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| EngineError::Crypto("invalid master key".into()))?;
        let pseudonym_root = hkdf::Salt::new(hkdf::HKDF_SHA256, b"erhai master key v1")
            .extract(bytes)
            .expand(&[b"pseudonym"], hmac::HMAC_SHA256)
            .map_err(|_| EngineError::Crypto("deriving the pseudonym key failed".into()))?
            .into();
        let mut records = [0u8; KEY_LEN];
        hkdf::Salt::new(hkdf::HKDF_SHA256, b"erhai master key v1")
            .extract(bytes)
            .expand(&[b"records"], &AES_256_GCM)
            .and_then(|okm| okm.fill(&mut records))
            .map_err(|_| EngineError::Crypto("deriving the record key failed".into()))?;
        let records = UnboundKey::new(&AES_256_GCM, &records)
            .map_err(|_| EngineError::Crypto("invalid record key".into()))?;
        Ok(MasterKey {
            wrapping: LessSafeKey::new(key),
            pseudonym_root,
            records: std::sync::Arc::new(LessSafeKey::new(records)),
        })
    }

    /// The sealer of the platform's metadata records.
    pub fn record_sealer(&self) -> RecordSealer {
        RecordSealer {
            key: self.records.clone(),
        }
    }

    /// The `pseudonym()` key of one scope (e.g. a scenario): stable for the scope, unrelated
    /// across scopes, and not usable to unwrap anything.
    pub fn pseudonym_key(&self, scope: &str) -> PseudonymKey {
        let tag = hmac::sign(&self.pseudonym_root, scope.as_bytes());
        PseudonymKey::new(hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref()))
    }

    /// The key of a dataset's privacy-unit index (see [`crate::unit_stats`]): stable for the
    /// dataset across versions, so unit sets of different releases can be compared.
    pub fn unit_key(&self, dataset_id: &str) -> UnitKey {
        let tag = hmac::sign(
            &self.pseudonym_root,
            format!("units/{dataset_id}").as_bytes(),
        );
        let mut key = [0u8; 16];
        key.copy_from_slice(&tag.as_ref()[..16]);
        UnitKey::new(key)
    }

    /// Wraps a data key; `context` (dataset id and version, or job id) is bound as associated
    /// data, so a wrapped key moved to another object does not unwrap.
    pub(crate) fn wrap(&self, key: &DataKey, context: &str) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| EngineError::Crypto("system random source failed".into()))?;
        let mut buf = key.0.to_vec();
        self.wrapping
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| EngineError::Crypto("wrapping a data key failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Unwraps a data key wrapped for `context`.
    pub(crate) fn unwrap_key(&self, wrapped: &[u8], context: &str) -> Result<DataKey> {
        if wrapped.len() != NONCE_LEN + KEY_LEN + AES_256_GCM.tag_len() {
            return Err(EngineError::Crypto(format!(
                "wrapped key for {context} has the wrong length"
            )));
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| EngineError::Crypto("bad nonce".into()))?;
        let mut buf = sealed.to_vec();
        let plain = self
            .wrapping
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| {
                EngineError::Crypto(format!(
                    "the data key of {context} does not unwrap with this master key"
                ))
            })?;
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(plain);
        Ok(DataKey(key))
    }
}

/// A data key: encrypts one dataset version or one result (Parquet modular encryption).
#[derive(Clone)]
pub struct DataKey([u8; KEY_LEN]);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Result<DataKey> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| EngineError::Crypto("system random source failed".into()))?;
        Ok(DataKey(bytes))
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        self.0.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_round_trip_and_context_binding() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        let master = MasterKey::create(&path).expect("create");
        let loaded = MasterKey::load(&path).expect("load");
        let key = DataKey::generate().expect("key");
        let wrapped = master.wrap(&key, "ds1/v1").expect("wrap");
        assert_eq!(
            loaded.unwrap_key(&wrapped, "ds1/v1").expect("unwrap").0,
            key.0
        );
        assert!(
            loaded.unwrap_key(&wrapped, "ds2/v1").is_err(),
            "context is bound"
        );
        assert!(
            MasterKey::create(&path).is_err(),
            "never overwrites a master key"
        );
        assert_eq!(
            format!("{master:?} {key:?}"),
            "MasterKey(<redacted>) DataKey(<redacted>)"
        );
    }
}
