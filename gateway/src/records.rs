//! Typed records in sled: one tree holds one record type, each a JSON value under a string key,
//! sealed at rest when the tree is opened with a sealer. Every store of the gateway reads and
//! writes its records through [`Records`], so that encoding, sealing, corruption reports and
//! compare-and-swap changes are written once.
//!
//! The audit chain and the population ledger keep their own layouts (big-endian sequence keys,
//! packed unit sets): their order and encoding are part of what they guarantee.

use std::marker::PhantomData;

use erhai_engine::{RecordSealer, SEALED_PREFIX};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::GatewayError;

/// Why a stored record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The stored bytes are not a record of the tree's type.
    #[error("corrupt {what} {key}: {source}")]
    Corrupt {
        /// The kind of record.
        what: &'static str,
        /// Its key.
        key: String,
        /// Why it does not decode.
        source: serde_json::Error,
    },
    /// The record could not be encoded.
    #[error("encoding {what} {key}: {source}")]
    Encode {
        /// The kind of record.
        what: &'static str,
        /// Its key.
        key: String,
        /// Why.
        source: serde_json::Error,
    },
    /// A sealed record was read by a store opened without the master key (an offline tool).
    #[error("{what} {key} is sealed: opening it needs the master key")]
    NeedsKey {
        /// The kind of record.
        what: &'static str,
        /// Its key.
        key: String,
    },
    /// Sealing or opening failed (a wrong key, a record moved to another name, a truncation).
    #[error("sealed {what} {key}: {source}")]
    Seal {
        /// The kind of record.
        what: &'static str,
        /// Its key.
        key: String,
        /// The engine's crypto error (boxed: it is large, and every store result carries it).
        source: Box<erhai_engine::EngineError>,
    },
}

/// The records of type `T` in one sled tree.
pub struct Records<T> {
    tree: sled::Tree,
    /// The tree's name: with the key, what a sealed record is bound to (`jobs/<id>`).
    name: &'static str,
    /// The kind of record, as errors name it.
    what: &'static str,
    sealer: Option<RecordSealer>,
    record: PhantomData<fn() -> T>,
}

// Derived `Clone` would ask `T: Clone`; the handle never holds a `T`.
impl<T> Clone for Records<T> {
    fn clone(&self) -> Self {
        Records {
            tree: self.tree.clone(),
            name: self.name,
            what: self.what,
            sealer: self.sealer.clone(),
            record: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Records<T> {
    /// Opens tree `name` of `db`, whose records are `what`s (for errors).
    pub fn open(
        db: &sled::Db,
        name: &'static str,
        what: &'static str,
    ) -> Result<Self, GatewayError> {
        Ok(Records {
            tree: db.open_tree(name)?,
            name,
            what,
            sealer: None,
            record: PhantomData,
        })
    }

    /// These records, sealed with `sealer` when written (and opened when sealed). Records
    /// written before sealing still read as they are.
    pub fn sealed_with(mut self, sealer: RecordSealer) -> Self {
        self.sealer = Some(sealer);
        self
    }

    fn sealed_name(&self, key: &str) -> String {
        format!("{}/{key}", self.name)
    }

    fn encode(&self, key: &str, record: &T) -> Result<Vec<u8>, RecordError> {
        let plain = serde_json::to_vec(record).map_err(|source| RecordError::Encode {
            what: self.what,
            key: key.to_string(),
            source,
        })?;
        match &self.sealer {
            Some(s) => s
                .seal(&self.sealed_name(key), &plain)
                .map_err(|source| RecordError::Seal {
                    what: self.what,
                    key: key.to_string(),
                    source: Box::new(source),
                }),
            None => Ok(plain),
        }
    }

    fn decode(&self, key: &str, bytes: &[u8]) -> Result<T, RecordError> {
        let opened;
        let json = if bytes.starts_with(SEALED_PREFIX) {
            let s = self.sealer.as_ref().ok_or_else(|| RecordError::NeedsKey {
                what: self.what,
                key: key.to_string(),
            })?;
            opened = s
                .open(&self.sealed_name(key), bytes)
                .map_err(|source| RecordError::Seal {
                    what: self.what,
                    key: key.to_string(),
                    source: Box::new(source),
                })?;
            opened.as_slice()
        } else {
            bytes
        };
        serde_json::from_slice(json).map_err(|source| RecordError::Corrupt {
            what: self.what,
            key: key.to_string(),
            source,
        })
    }

    /// The record under `key`.
    pub fn get(&self, key: &str) -> Result<Option<T>, GatewayError> {
        match self.tree.get(key.as_bytes())? {
            None => Ok(None),
            Some(v) => Ok(Some(self.decode(key, &v)?)),
        }
    }

    /// Whether a record is stored under `key` (without reading it).
    pub fn contains(&self, key: &[u8]) -> Result<bool, GatewayError> {
        Ok(self.tree.contains_key(key)?)
    }

    /// Writes `record` under `key`, replacing what was there.
    pub fn put(&self, key: &str, record: &T) -> Result<(), GatewayError> {
        self.tree
            .insert(key.as_bytes(), self.encode(key, record)?)?;
        Ok(())
    }

    /// Removes the record under `key` (nothing if there is none).
    pub fn remove(&self, key: &str) -> Result<(), GatewayError> {
        self.tree.remove(key.as_bytes())?;
        Ok(())
    }

    /// Writes `record` under `key` unless a record is there already; false if one was.
    pub fn create(&self, key: &str, record: &T) -> Result<bool, GatewayError> {
        let bytes = self.encode(key, record)?;
        Ok(self
            .tree
            .compare_and_swap(key.as_bytes(), None as Option<&[u8]>, Some(bytes))?
            .is_ok())
    }

    /// Every record with its key, in key order.
    pub fn iter(&self) -> impl Iterator<Item = Result<(String, T), GatewayError>> + '_ {
        self.tree.iter().map(|item| {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let record = self.decode(&key, &v)?;
            Ok((key, record))
        })
    }

    /// Every record, in key order.
    pub fn all(&self) -> Result<Vec<T>, GatewayError> {
        self.iter().map(|r| r.map(|(_, record)| record)).collect()
    }

    /// Changes the record under `key` atomically (compare-and-swap, retried on a concurrent
    /// write): `change` sees the record (`None`: none yet) and returns the new one or why not.
    pub fn upsert<E>(
        &self,
        key: &str,
        change: impl Fn(Option<&T>) -> Result<T, E>,
    ) -> Result<Result<T, E>, GatewayError> {
        loop {
            let old = self.tree.get(key.as_bytes())?;
            let record = old.as_deref().map(|b| self.decode(key, b)).transpose()?;
            let new = match change(record.as_ref()) {
                Ok(n) => n,
                Err(why) => return Ok(Err(why)),
            };
            let bytes = self.encode(key, &new)?;
            if self
                .tree
                .compare_and_swap(key.as_bytes(), old, Some(bytes))?
                .is_ok()
            {
                return Ok(Ok(new));
            }
        }
    }

    /// Changes the existing record under `key` atomically, as [`Records::upsert`] does.
    /// `Ok(None)`: no such record.
    pub fn update<E>(
        &self,
        key: &str,
        change: impl Fn(&T) -> Result<T, E>,
    ) -> Result<Option<Result<T, E>>, GatewayError> {
        let changed = self.upsert(key, |old| match old {
            None => Err(None),
            Some(record) => change(record).map_err(Some),
        })?;
        Ok(match changed {
            Ok(new) => Some(Ok(new)),
            Err(Some(why)) => Some(Err(why)),
            Err(None) => None,
        })
    }

    /// Seals the records written before sealing (or before the tree had a sealer); returns how
    /// many. Without a sealer, nothing.
    pub fn seal_plain(&self) -> Result<usize, GatewayError> {
        if self.sealer.is_none() {
            return Ok(0);
        }
        let mut n = 0;
        for item in self.tree.iter() {
            let (k, v) = item?;
            if v.starts_with(SEALED_PREFIX) {
                continue;
            }
            let key = String::from_utf8_lossy(&k).into_owned();
            let record = self.decode(&key, &v)?;
            // A concurrent writer has sealed or replaced it meanwhile: its version stands.
            let _ = self
                .tree
                .compare_and_swap(&k, Some(v), Some(self.encode(&key, &record)?))?;
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use erhai_engine::MasterKey;
    use serde::Deserialize;

    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Counter {
        n: u32,
    }

    fn sealer(dir: &std::path::Path) -> RecordSealer {
        MasterKey::create(&dir.join("master.key"))
            .expect("key")
            .record_sealer()
    }

    #[test]
    fn plain_records_still_read_once_sealing_starts_and_are_sealed_in_place() {
        let dir = tempfile::tempdir().expect("dir");
        let db = sled::open(dir.path().join("db")).expect("db");
        let plain: Records<Counter> = Records::open(&db, "counters", "counter").expect("open");
        plain.put("a", &Counter { n: 1 }).expect("put");
        // The on-disk form of an unsealed record is its JSON.
        assert_eq!(
            db.open_tree("counters")
                .expect("tree")
                .get("a")
                .expect("get"),
            Some(br#"{"n":1}"#.as_slice().into())
        );
        let sealed = plain.clone().sealed_with(sealer(dir.path()));
        assert_eq!(sealed.get("a").expect("get"), Some(Counter { n: 1 }));
        assert_eq!(sealed.seal_plain().expect("seal"), 1);
        assert_eq!(sealed.seal_plain().expect("seal"), 0);
        assert_eq!(sealed.get("a").expect("get"), Some(Counter { n: 1 }));
        assert!(matches!(
            plain.get("a").map_err(|e| e.to_string()),
            Err(e) if e.contains("needs the master key")
        ));
    }

    #[test]
    fn updates_see_the_current_record_and_pass_refusals_through() {
        let dir = tempfile::tempdir().expect("dir");
        let db = sled::open(dir.path()).expect("db");
        let r: Records<Counter> = Records::open(&db, "counters", "counter").expect("open");
        let bump = |c: &Counter| {
            if c.n >= 2 {
                Err("full")
            } else {
                Ok(Counter { n: c.n + 1 })
            }
        };
        assert_eq!(r.update("a", bump).expect("update"), None);
        assert!(r.create("a", &Counter { n: 0 }).expect("create"));
        assert!(!r.create("a", &Counter { n: 9 }).expect("create"));
        assert_eq!(
            r.update("a", bump).expect("update"),
            Some(Ok(Counter { n: 1 }))
        );
        assert_eq!(
            r.update("a", bump).expect("update"),
            Some(Ok(Counter { n: 2 }))
        );
        assert_eq!(r.update("a", bump).expect("update"), Some(Err("full")));
        let first = r
            .upsert("b", |old| {
                Ok::<_, ()>(Counter {
                    n: old.map_or(7, |c| c.n + 1),
                })
            })
            .expect("upsert");
        assert_eq!(first, Ok(Counter { n: 7 }));
        assert_eq!(r.all().expect("all").len(), 2);
    }
}
