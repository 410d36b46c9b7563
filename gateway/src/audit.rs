//! The audit chain: every RPC, allowed or denied, appends an event; each event's hash is
//! SHA-256(previous hash ‖ canonical encoding of the event), so removing, changing or reordering
//! events breaks the chain, which [`AuditLog::verify`] finds. Events are flushed before the RPC
//! answers.

use std::sync::Mutex;

use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};

use crate::error::GatewayError;
use crate::state::now_ms;

/// One audit event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Sequence number, from 1.
    pub seq: u64,
    /// Time, ms since the epoch.
    pub time_ms: i64,
    /// User id (the certificate's name, even when unknown).
    pub user: String,
    /// Role at the time.
    pub role: String,
    /// Tenant at the time.
    pub tenant: String,
    /// Action.
    pub action: String,
    /// Object ids.
    pub object: String,
    /// allowed | denied | failed.
    pub outcome: String,
    /// Why (denials and failures).
    pub reason: String,
    /// Hex hash of the previous event ("" for the first).
    pub prev_hash: String,
    /// Hex hash of this event.
    pub hash: String,
}

/// What the caller supplies; the chain fills in sequence, time and hashes.
#[derive(Clone, Debug, Default)]
pub struct NewEvent {
    /// User id.
    pub user: String,
    /// Role.
    pub role: String,
    /// Tenant.
    pub tenant: String,
    /// Action.
    pub action: String,
    /// Object ids.
    pub object: String,
    /// allowed | denied | failed.
    pub outcome: String,
    /// Reason.
    pub reason: String,
}

/// The chain, in its own sled tree.
pub struct AuditLog {
    db: sled::Db,
    tree: sled::Tree,
    head: Mutex<(u64, String)>,
}

fn hash_event(e: &AuditEvent) -> String {
    // Canonical encoding: the fields in a fixed order, length-prefixed.
    let mut ctx = Context::new(&SHA256);
    ctx.update(e.prev_hash.as_bytes());
    ctx.update(&e.seq.to_be_bytes());
    ctx.update(&e.time_ms.to_be_bytes());
    for f in [
        &e.user, &e.role, &e.tenant, &e.action, &e.object, &e.outcome, &e.reason,
    ] {
        ctx.update(&(f.len() as u64).to_be_bytes());
        ctx.update(f.as_bytes());
    }
    hex::encode(ctx.finish().as_ref())
}

impl AuditLog {
    /// Opens the chain stored in `db`.
    pub fn open(db: &sled::Db) -> Result<AuditLog, GatewayError> {
        let tree = db.open_tree("audit")?;
        let head = match tree.last()? {
            Some((_, v)) => {
                let e: AuditEvent = serde_json::from_slice(&v)
                    .map_err(|e| GatewayError::Store(format!("corrupt audit event: {e}")))?;
                (e.seq, e.hash)
            }
            None => (0, String::new()),
        };
        Ok(AuditLog {
            db: db.clone(),
            tree,
            head: Mutex::new(head),
        })
    }

    /// Appends an event durably; returns it.
    pub fn append(&self, n: NewEvent) -> Result<AuditEvent, GatewayError> {
        let mut head = self
            .head
            .lock()
            .map_err(|_| GatewayError::Store("audit lock poisoned".into()))?;
        let mut e = AuditEvent {
            seq: head.0 + 1,
            time_ms: now_ms(),
            user: n.user,
            role: n.role,
            tenant: n.tenant,
            action: n.action,
            object: n.object,
            outcome: n.outcome,
            reason: n.reason,
            prev_hash: head.1.clone(),
            hash: String::new(),
        };
        e.hash = hash_event(&e);
        let bytes = serde_json::to_vec(&e).map_err(|err| GatewayError::Store(err.to_string()))?;
        self.tree.insert(e.seq.to_be_bytes(), bytes)?;
        self.db.flush()?;
        *head = (e.seq, e.hash.clone());
        Ok(e)
    }

    /// Events in order, newest `limit`, filtered.
    pub fn list(
        &self,
        limit: usize,
        user: Option<&str>,
        action: Option<&str>,
    ) -> Result<Vec<AuditEvent>, GatewayError> {
        let mut out = Vec::new();
        for kv in self.tree.iter().rev() {
            let (_, v) = kv?;
            let e: AuditEvent = serde_json::from_slice(&v)
                .map_err(|e| GatewayError::Store(format!("corrupt audit event: {e}")))?;
            if user.is_some_and(|u| e.user != u) || action.is_some_and(|a| e.action != a) {
                continue;
            }
            out.push(e);
            if out.len() >= limit {
                break;
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Recomputes the chain; returns the number of events, or a description of the first break.
    pub fn verify(&self) -> Result<Result<u64, String>, GatewayError> {
        let mut prev = String::new();
        let mut expected_seq = 1u64;
        for kv in self.tree.iter() {
            let (k, v) = kv?;
            let e: AuditEvent = match serde_json::from_slice(&v) {
                Ok(e) => e,
                Err(err) => {
                    return Ok(Err(format!(
                        "event at key {} is unreadable: {err}",
                        hex::encode(&k)
                    )));
                }
            };
            if e.seq != expected_seq {
                return Ok(Err(format!(
                    "expected event {expected_seq}, found event {}: events are missing or reordered",
                    e.seq
                )));
            }
            if e.prev_hash != prev {
                return Ok(Err(format!(
                    "event {} does not link to event {}",
                    e.seq,
                    e.seq - 1
                )));
            }
            if hash_event(&e) != e.hash {
                return Ok(Err(format!(
                    "event {} was modified: its hash does not match its contents",
                    e.seq
                )));
            }
            prev = e.hash;
            expected_seq += 1;
        }
        Ok(Ok(expected_seq - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str) -> NewEvent {
        NewEvent {
            user: "u".into(),
            action: action.into(),
            outcome: "allowed".into(),
            ..Default::default()
        }
    }

    #[test]
    fn chain_detects_modification_and_deletion() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("sled");
        let log = AuditLog::open(&db).expect("open");
        for a in ["a", "b", "c"] {
            log.append(event(a)).expect("append");
        }
        assert_eq!(log.verify().expect("verify"), Ok(3));
        let tree = db.open_tree("audit").expect("tree");
        let mut e: AuditEvent =
            serde_json::from_slice(&tree.get(2u64.to_be_bytes()).expect("get").expect("some"))
                .expect("json");
        e.outcome = "denied".into();
        tree.insert(2u64.to_be_bytes(), serde_json::to_vec(&e).expect("json"))
            .expect("insert");
        assert!(
            log.verify()
                .expect("verify")
                .unwrap_err()
                .contains("event 2 was modified")
        );
        tree.remove(2u64.to_be_bytes()).expect("remove");
        assert!(
            log.verify()
                .expect("verify")
                .unwrap_err()
                .contains("missing or reordered")
        );
        // Reopening continues from the stored head.
        let log2 = AuditLog::open(&db).expect("reopen");
        assert_eq!(log2.append(event("d")).expect("append").seq, 4);
    }
}
