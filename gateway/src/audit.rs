//! The audit chain: every RPC, allowed or denied, and every internal state change appends an
//! event; each event's hash is SHA-256(previous hash ‖ canonical encoding of the event), so
//! changing, removing, inserting or reordering events breaks the chain, which
//! [`AuditLog::verify`] finds. Every N events or T seconds (and at startup and shutdown) the head
//! hash is signed with the platform's Ed25519 key: a checkpoint kept outside the platform also
//! exposes a cut tail.
//!
//! Durability: an append returns only once its event is on disk. Concurrent appenders share one
//! flush (group commit): whoever finds no flush running flushes everything appended so far, the
//! others wait for it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use ring::digest::{Context, SHA256};
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
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
    /// Hex SHA-256 of the request ("" for internal events and streams).
    #[serde(default)]
    pub digest: String,
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
    /// Digest of the request.
    pub digest: String,
}

/// A signed statement of the chain's head at one point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Sequence number of the head event.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
    /// When it was signed.
    pub time_ms: i64,
    /// The platform's Ed25519 public key, hex.
    pub public_key: String,
    /// Signature over [`Checkpoint::message`], hex.
    pub signature: String,
}

impl Checkpoint {
    /// The bytes signed: a fixed prefix, the sequence number, the hash and the time.
    pub fn message(seq: u64, hash: &str, time_ms: i64) -> Vec<u8> {
        format!("erhai audit checkpoint v1\n{seq}\n{hash}\n{time_ms}\n").into_bytes()
    }

    /// Whether the signature is valid for `public_key` (hex).
    pub fn signed_by(&self, public_key: &str) -> bool {
        let (Ok(pk), Ok(sig)) = (hex::decode(public_key), hex::decode(&self.signature)) else {
            return false;
        };
        self.public_key == public_key
            && UnparsedPublicKey::new(&ED25519, pk)
                .verify(&Self::message(self.seq, &self.hash, self.time_ms), &sig)
                .is_ok()
    }
}

/// How often checkpoints are signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// After this many events.
    pub every_events: u64,
    /// Or after this long, at the next event.
    pub every: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            every_events: 1_000,
            every: Duration::from_secs(60),
        }
    }
}

/// The first break `verify` finds in the chain or its checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum ChainBreak {
    /// A checkpoint that does not decode.
    #[error("checkpoint at key {key} is unreadable: {source}")]
    CheckpointUnreadable {
        /// The key, hex.
        key: String,
        /// Why it does not decode.
        source: serde_json::Error,
    },
    /// A checkpoint signed by another key (or not at all).
    #[error("checkpoint at event {seq} is not signed by this platform's key")]
    ForeignCheckpoint {
        /// The event it claims to sign.
        seq: u64,
    },
    /// An event that does not decode.
    #[error("event at key {key} is unreadable: {source}")]
    EventUnreadable {
        /// The key, hex.
        key: String,
        /// Why it does not decode.
        source: serde_json::Error,
    },
    /// An event under another event's key.
    #[error("event {seq} is stored under the key of event {key_seq}: events were moved")]
    Moved {
        /// The event's own number.
        seq: u64,
        /// The number its key says.
        key_seq: u64,
    },
    /// A gap or a swap in the sequence.
    #[error("expected event {expected}, found event {found}: events are missing or reordered")]
    Sequence {
        /// The next number.
        expected: u64,
        /// The number found.
        found: u64,
    },
    /// An event whose previous hash is not its predecessor's.
    #[error("event {seq} does not link to event {}", seq.saturating_sub(1))]
    Unlinked {
        /// The event.
        seq: u64,
    },
    /// An event whose hash is not its contents'.
    #[error("event {seq} was modified: its hash does not match its contents")]
    Modified {
        /// The event.
        seq: u64,
    },
    /// An event that differs from a signed checkpoint of it.
    #[error(
        "event {seq} differs from the signed checkpoint at that event: the chain was rewritten \
         up to here"
    )]
    Rewritten {
        /// The event.
        seq: u64,
    },
    /// A tail cut off below a signed checkpoint.
    #[error(
        "the chain ends at event {last}, but a signed checkpoint covers event {covered}: events \
         after {last} were removed"
    )]
    Truncated {
        /// The last event found.
        last: u64,
        /// The event the checkpoint covers.
        covered: u64,
    },
}

/// What `verify` found on an intact chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Events.
    pub events: u64,
    /// Checkpoints, all signed by the platform key and matching the chain.
    pub checkpoints: u64,
}

/// Which events `list` returns.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// Exact user.
    pub user: Option<String>,
    /// Exact tenant.
    pub tenant: Option<String>,
    /// Exact action.
    pub action: Option<String>,
    /// Substring of the object ids.
    pub object: Option<String>,
    /// From this time (ms, inclusive).
    pub since_ms: Option<i64>,
    /// Before this time (ms, exclusive).
    pub until_ms: Option<i64>,
}

impl EventFilter {
    fn keeps(&self, e: &AuditEvent) -> bool {
        self.user.as_ref().is_none_or(|u| &e.user == u)
            && self.tenant.as_ref().is_none_or(|t| &e.tenant == t)
            && self.action.as_ref().is_none_or(|a| &e.action == a)
            && self
                .object
                .as_ref()
                .is_none_or(|o| e.object.contains(o.as_str()))
            && self.since_ms.is_none_or(|s| e.time_ms >= s)
            && self.until_ms.is_none_or(|u| e.time_ms < u)
    }
}

struct Head {
    seq: u64,
    hash: String,
    checkpoint_seq: u64,
    checkpoint_ms: i64,
}

#[derive(Default)]
struct Sync {
    durable: u64,
    flushing: bool,
}

/// The chain, in its own sled trees (events and checkpoints).
pub struct AuditLog {
    db: sled::Db,
    tree: sled::Tree,
    checkpoints: sled::Tree,
    head: Mutex<Head>,
    appended: AtomicU64,
    sync: Mutex<Sync>,
    synced: Condvar,
    signer: Ed25519KeyPair,
    public_key: String,
    policy: CheckpointPolicy,
    /// Seconds each append took until durable (group commit included): the metrics listener
    /// exports it, since every call waits for it.
    append_seconds: Histogram,
}

/// Loads the platform's audit signing key (PKCS#8, 0600), creating it on first use.
pub fn signing_key(path: &Path) -> Result<Ed25519KeyPair, GatewayError> {
    let bad =
        |e: String| GatewayError::Config(format!("audit signing key {}: {e}", path.display()));
    if !path.exists() {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| bad("generating failed".into()))?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| bad(e.to_string()))?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        use std::io::Write;
        let mut f = opts.open(path).map_err(|e| bad(e.to_string()))?;
        f.write_all(pkcs8.as_ref())
            .and_then(|_| f.sync_all())
            .map_err(|e| bad(e.to_string()))?;
    }
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    Ed25519KeyPair::from_pkcs8(&bytes).map_err(|_| bad("not an Ed25519 PKCS#8 key".into()))
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
    // Appended only when present, so events written before digests existed keep their hash.
    if !e.digest.is_empty() {
        ctx.update(b"digest");
        ctx.update(&(e.digest.len() as u64).to_be_bytes());
        ctx.update(e.digest.as_bytes());
    }
    hex::encode(ctx.finish().as_ref())
}

fn decode<T: serde::de::DeserializeOwned>(v: &[u8], what: &str) -> Result<T, GatewayError> {
    serde_json::from_slice(v).map_err(|e| GatewayError::Store(format!("corrupt {what}: {e}")))
}

fn locked<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, GatewayError> {
    m.lock()
        .map_err(|_| GatewayError::Store("audit lock poisoned".into()))
}

impl AuditLog {
    /// Opens the chain stored in `db`, signing checkpoints with `signer`.
    pub fn open(
        db: &sled::Db,
        signer: Ed25519KeyPair,
        policy: CheckpointPolicy,
    ) -> Result<AuditLog, GatewayError> {
        let tree = db.open_tree("audit")?;
        let checkpoints = db.open_tree("audit_checkpoints")?;
        let (seq, hash) = match tree.last()? {
            Some((_, v)) => {
                let e: AuditEvent = decode(&v, "audit event")?;
                (e.seq, e.hash)
            }
            None => (0, String::new()),
        };
        let (checkpoint_seq, checkpoint_ms) = match checkpoints.last()? {
            Some((_, v)) => {
                let c: Checkpoint = decode(&v, "audit checkpoint")?;
                (c.seq, c.time_ms)
            }
            None => (0, now_ms()),
        };
        let public_key = hex::encode(signer.public_key().as_ref());
        Ok(AuditLog {
            append_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            db: db.clone(),
            tree,
            checkpoints,
            head: Mutex::new(Head {
                seq,
                hash,
                checkpoint_seq,
                checkpoint_ms,
            }),
            appended: AtomicU64::new(seq),
            sync: Mutex::new(Sync {
                durable: seq,
                flushing: false,
            }),
            synced: Condvar::new(),
            signer,
            public_key,
            policy,
        })
    }

    /// The platform's checkpoint public key, hex.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Appends an event and returns it once it is durable.
    pub fn append(&self, n: NewEvent) -> Result<AuditEvent, GatewayError> {
        let started = std::time::Instant::now();
        let e = {
            let mut head = locked(&self.head)?;
            let mut e = AuditEvent {
                seq: head.seq + 1,
                time_ms: now_ms(),
                user: n.user,
                role: n.role,
                tenant: n.tenant,
                action: n.action,
                object: n.object,
                outcome: n.outcome,
                reason: n.reason,
                digest: n.digest,
                prev_hash: head.hash.clone(),
                hash: String::new(),
            };
            e.hash = hash_event(&e);
            let bytes =
                serde_json::to_vec(&e).map_err(|err| GatewayError::Store(err.to_string()))?;
            self.tree.insert(e.seq.to_be_bytes(), bytes)?;
            head.seq = e.seq;
            head.hash = e.hash.clone();
            self.appended.store(e.seq, Ordering::SeqCst);
            let due = head.seq - head.checkpoint_seq >= self.policy.every_events
                || now_ms() - head.checkpoint_ms >= self.policy.every.as_millis() as i64;
            if due {
                self.sign_head(&mut head)?;
            }
            e
        };
        self.wait_durable(e.seq)?;
        self.append_seconds.observe(started.elapsed().as_secs_f64());
        Ok(e)
    }

    /// The histogram of append latencies (shared: observations made later show in it).
    pub fn append_latency(&self) -> Histogram {
        self.append_seconds.clone()
    }

    /// Whether the chain can take events now: its head is usable and the store accepts and
    /// flushes a write (a probe key outside the chain, so health checks add no events).
    pub fn writable(&self) -> Result<(), GatewayError> {
        drop(locked(&self.head)?);
        self.db
            .open_tree("health")?
            .insert("probe", &now_ms().to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// Signs a checkpoint of the current head now (startup, shutdown) and makes it durable.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, GatewayError> {
        let c = {
            let mut head = locked(&self.head)?;
            if head.seq == 0 {
                return Ok(None);
            }
            self.sign_head(&mut head)?
        };
        // One flush makes both the events and the checkpoint durable.
        self.db.flush()?;
        Ok(Some(c))
    }

    fn sign_head(&self, head: &mut Head) -> Result<Checkpoint, GatewayError> {
        let time_ms = now_ms();
        let signature = self
            .signer
            .sign(&Checkpoint::message(head.seq, &head.hash, time_ms));
        let c = Checkpoint {
            seq: head.seq,
            hash: head.hash.clone(),
            time_ms,
            public_key: self.public_key.clone(),
            signature: hex::encode(signature.as_ref()),
        };
        let bytes = serde_json::to_vec(&c).map_err(|err| GatewayError::Store(err.to_string()))?;
        self.checkpoints.insert(c.seq.to_be_bytes(), bytes)?;
        head.checkpoint_seq = head.seq;
        head.checkpoint_ms = time_ms;
        Ok(c)
    }

    /// Blocks until every event up to `seq` is on disk, sharing flushes with other appenders.
    fn wait_durable(&self, seq: u64) -> Result<(), GatewayError> {
        let mut st = locked(&self.sync)?;
        loop {
            if st.durable >= seq {
                return Ok(());
            }
            if st.flushing {
                st = self
                    .synced
                    .wait(st)
                    .map_err(|_| GatewayError::Store("audit lock poisoned".into()))?;
                continue;
            }
            st.flushing = true;
            drop(st);
            // Everything appended before the flush starts is covered by it.
            let target = self.appended.load(Ordering::SeqCst);
            let flushed = self.db.flush();
            st = locked(&self.sync)?;
            st.flushing = false;
            if flushed.is_ok() {
                st.durable = st.durable.max(target);
            }
            self.synced.notify_all();
            flushed?;
        }
    }

    /// The latest checkpoint.
    pub fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, GatewayError> {
        self.checkpoints
            .last()?
            .map(|(_, v)| decode(&v, "audit checkpoint"))
            .transpose()
    }

    /// The newest `limit` events that pass `filter`, oldest first (`limit` 0: all).
    pub fn list(
        &self,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<Vec<AuditEvent>, GatewayError> {
        let mut out = Vec::new();
        for kv in self.tree.iter().rev() {
            let (_, v) = kv?;
            let e: AuditEvent = decode(&v, "audit event")?;
            if !filter.keeps(&e) {
                continue;
            }
            out.push(e);
            if limit > 0 && out.len() >= limit {
                break;
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Recomputes the chain and checks every checkpoint; returns what was verified, or a
    /// description of the first break.
    pub fn verify(&self) -> Result<Result<Verified, ChainBreak>, GatewayError> {
        let mut checkpoints = BTreeMap::new();
        for kv in self.checkpoints.iter() {
            let (k, v) = kv?;
            let c: Checkpoint = match serde_json::from_slice(&v) {
                Ok(c) => c,
                Err(err) => {
                    return Ok(Err(ChainBreak::CheckpointUnreadable {
                        key: hex::encode(&k),
                        source: err,
                    }));
                }
            };
            if !c.signed_by(&self.public_key) {
                return Ok(Err(ChainBreak::ForeignCheckpoint { seq: c.seq }));
            }
            checkpoints.insert(c.seq, c);
        }
        let mut prev = String::new();
        let mut expected_seq = 1u64;
        for kv in self.tree.iter() {
            let (k, v) = kv?;
            let e: AuditEvent = match serde_json::from_slice(&v) {
                Ok(e) => e,
                Err(err) => {
                    return Ok(Err(ChainBreak::EventUnreadable {
                        key: hex::encode(&k),
                        source: err,
                    }));
                }
            };
            if k.as_ref() != e.seq.to_be_bytes() {
                return Ok(Err(ChainBreak::Moved {
                    seq: e.seq,
                    key_seq: u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8])),
                }));
            }
            if e.seq != expected_seq {
                return Ok(Err(ChainBreak::Sequence {
                    expected: expected_seq,
                    found: e.seq,
                }));
            }
            if e.prev_hash != prev {
                return Ok(Err(ChainBreak::Unlinked { seq: e.seq }));
            }
            if hash_event(&e) != e.hash {
                return Ok(Err(ChainBreak::Modified { seq: e.seq }));
            }
            if let Some(c) = checkpoints.get(&e.seq)
                && c.hash != e.hash
            {
                return Ok(Err(ChainBreak::Rewritten { seq: e.seq }));
            }
            prev = e.hash;
            expected_seq += 1;
        }
        let last = expected_seq - 1;
        if let Some((seq, _)) = checkpoints.range(last + 1..).next() {
            return Ok(Err(ChainBreak::Truncated {
                last,
                covered: *seq,
            }));
        }
        Ok(Ok(Verified {
            events: last,
            checkpoints: checkpoints.len() as u64,
        }))
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

    /// A chain of `n` events in a fresh sled store, a checkpoint every 4 events.
    fn chain(dir: &Path, n: usize) -> (sled::Db, AuditLog) {
        let db = sled::open(dir.join("db")).expect("sled");
        let key = signing_key(&dir.join("audit.pk8")).expect("key");
        let policy = CheckpointPolicy {
            every_events: 4,
            every: Duration::from_secs(3600),
        };
        let log = AuditLog::open(&db, key, policy).expect("open");
        for i in 0..n {
            log.append(event(&format!("a{i}"))).expect("append");
        }
        (db, log)
    }

    fn get(tree: &sled::Tree, seq: u64) -> AuditEvent {
        serde_json::from_slice(&tree.get(seq.to_be_bytes()).expect("get").expect("some"))
            .expect("json")
    }

    fn put(tree: &sled::Tree, key: u64, e: &AuditEvent) {
        tree.insert(key.to_be_bytes(), serde_json::to_vec(e).expect("json"))
            .expect("insert");
    }

    fn broken(log: &AuditLog) -> String {
        log.verify()
            .expect("verify")
            .expect_err("tampering must be found")
            .to_string()
    }

    #[test]
    fn intact_chain_verifies_with_checkpoints() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_db, log) = chain(dir.path(), 10);
        let v = log.verify().expect("verify").expect("intact");
        assert_eq!((v.events, v.checkpoints), (10, 2));
        let c = log.latest_checkpoint().expect("read").expect("some");
        assert_eq!(c.seq, 8);
        assert!(c.signed_by(log.public_key()));
        let mut forged = c.clone();
        forged.seq = 9;
        assert!(!forged.signed_by(log.public_key()));
    }

    #[test]
    fn modification_is_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, log) = chain(dir.path(), 6);
        let tree = db.open_tree("audit").expect("tree");
        let mut e = get(&tree, 3);
        e.outcome = "denied".into();
        put(&tree, 3, &e);
        assert!(broken(&log).contains("event 3 was modified"));
        // The request digest is part of the hash too.
        let mut d = get(&tree, 5);
        d.outcome = get(&tree, 5).outcome;
        d.digest = "ab".repeat(32);
        let d_hash = hash_event(&d);
        assert_ne!(d_hash, get(&tree, 5).hash);
        // Rehashing the modified event moves the break to the next link.
        e.hash = hash_event(&e);
        put(&tree, 3, &e);
        assert!(broken(&log).contains("event 4 does not link to event 3"));
    }

    #[test]
    fn deletion_insertion_and_reordering_are_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, log) = chain(dir.path(), 6);
        let tree = db.open_tree("audit").expect("tree");
        let (e2, e3) = (get(&tree, 2), get(&tree, 3));

        tree.remove(3u64.to_be_bytes()).expect("remove");
        assert!(broken(&log).contains("expected event 3, found event 4"));

        // Insert a forged event 3 that links to 2 and hashes correctly: event 4 exposes it.
        let mut forged = e3.clone();
        forged.reason = "nothing happened".into();
        forged.hash = hash_event(&forged);
        put(&tree, 3, &forged);
        assert!(broken(&log).contains("event 4 does not link to event 3"));

        // Swap two events.
        put(&tree, 2, &e3);
        put(&tree, 3, &e2);
        assert!(broken(&log).contains("stored under the key of event 2"));
    }

    #[test]
    fn a_cut_tail_is_found_after_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, log) = chain(dir.path(), 10);
        drop(log);
        let tree = db.open_tree("audit").expect("tree");
        for seq in 7..=10u64 {
            tree.remove(seq.to_be_bytes()).expect("remove");
        }
        db.flush().expect("flush");
        let key = signing_key(&dir.path().join("audit.pk8")).expect("key");
        let log = AuditLog::open(&db, key, CheckpointPolicy::default()).expect("reopen");
        let msg = broken(&log);
        assert!(
            msg.contains("ends at event 6, but a signed checkpoint covers event 8"),
            "{msg}"
        );
        // A checkpoint rewritten by someone without the key does not verify either.
        let cps = db.open_tree("audit_checkpoints").expect("tree");
        let mut c: Checkpoint =
            serde_json::from_slice(&cps.get(8u64.to_be_bytes()).expect("get").expect("some"))
                .expect("json");
        c.seq = 6;
        cps.remove(8u64.to_be_bytes()).expect("remove");
        cps.insert(6u64.to_be_bytes(), serde_json::to_vec(&c).expect("json"))
            .expect("insert");
        assert!(broken(&log).contains("not signed by this platform's key"));
    }

    #[test]
    fn concurrent_appends_share_flushes_and_keep_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_db, log) = chain(dir.path(), 0);
        std::thread::scope(|s| {
            for t in 0..8 {
                let log = &log;
                s.spawn(move || {
                    for i in 0..50 {
                        log.append(event(&format!("t{t}-{i}"))).expect("append");
                    }
                });
            }
        });
        let v = log.verify().expect("verify").expect("intact");
        assert_eq!(v.events, 400);
        let filter = EventFilter {
            action: Some("t3-7".into()),
            ..Default::default()
        };
        assert_eq!(log.list(0, &filter).expect("list").len(), 1);
        // Reopening continues from the stored head.
        let key = signing_key(&dir.path().join("audit.pk8")).expect("key");
        let log2 = AuditLog::open(&_db, key, CheckpointPolicy::default()).expect("reopen");
        assert_eq!(log2.append(event("after")).expect("append").seq, 401);
    }
}
