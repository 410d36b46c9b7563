//! Server-side handles behind Flight SQL tickets and prepared statements.
//!
//! A client only ever holds a random, unguessable handle; what it stands for (a job whose status
//! to show, development rows already computed, a release to read again, a checked statement)
//! stays here, bound to the user it was issued to, with an expiry. A handle never carries SQL or
//! anything else a client could edit into a different read: the read it allows was decided when
//! it was issued and is decided again when it is used.
//!
//! Memory is bounded: a user holds at most [`PER_USER`] handles (a new one pushes out that user's
//! oldest) and [`ROW_BYTES_PER_USER`] bytes of development rows; the whole table holds at most
//! [`TOTAL`] handles and [`ROW_BYTES_TOTAL`] bytes, beyond which new handles are refused.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use erhai_engine::Env;
use ring::rand::{SecureRandom, SystemRandom};

use super::statement::Statement;

/// Handles one user may hold at once.
pub const PER_USER: usize = 64;
/// Handles the server holds at once.
pub const TOTAL: usize = 4096;
/// Bytes of development rows one user's tickets may hold.
pub const ROW_BYTES_PER_USER: usize = 256 << 20;
/// Bytes of development rows all tickets may hold.
pub const ROW_BYTES_TOTAL: usize = 1 << 30;

/// What a ticket reads (once, by the user it was issued to).
#[derive(Clone, Debug)]
pub enum Readable {
    /// The status row of a production job.
    Status { job: String },
    /// The rows of a development query, computed when the ticket was issued.
    Rows {
        job: String,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    /// A released result, checked again when read.
    Release { job: String },
}

impl Readable {
    /// The job the ticket belongs to.
    pub fn job(&self) -> &str {
        match self {
            Readable::Status { job } | Readable::Rows { job, .. } | Readable::Release { job } => {
                job
            }
        }
    }
}

/// A prepared statement: checked when prepared, checked again at every execution.
#[derive(Clone, Debug)]
pub struct PreparedStatement {
    /// The statement.
    pub statement: Statement,
    /// The scenario it was prepared in ("" for a release read).
    pub scenario: String,
    /// The environment it was prepared for.
    pub env: Env,
}

/// What a handle stands for.
#[derive(Clone, Debug)]
pub enum Held {
    /// A ticket (DoGet).
    Ticket(Readable),
    /// A prepared statement (GetFlightInfo, close).
    Prepared(PreparedStatement),
}

impl Held {
    fn row_bytes(&self) -> usize {
        match self {
            Held::Ticket(Readable::Rows { batches, .. }) => {
                batches.iter().map(|b| b.get_array_memory_size()).sum()
            }
            _ => 0,
        }
    }
}

/// Why a handle was not honoured. A handle of another user is `Unknown` to the caller: it must
/// not learn that the handle exists.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Never issued, already read, closed, issued to someone else, or of the other kind.
    Unknown,
    /// The caller's own, past its expiry.
    Expired,
}

/// Why no handle could be issued.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    /// The server holds as many handles (or row bytes) as it may.
    #[error(
        "the server holds as many open Flight SQL results as it may; read or close yours (or wait \
         for them to expire) and try again"
    )]
    Server,
    /// One result alone is larger than a user's share.
    #[error(
        "this development result is larger than the {} MiB a user's open results may hold; \
         select fewer rows or columns",
        ROW_BYTES_PER_USER >> 20
    )]
    TooLarge,
}

struct Entry {
    user: String,
    issued: Instant,
    expires: Instant,
    bytes: usize,
    held: Held,
}

/// The table of live handles.
pub struct Tickets {
    ttl: Duration,
    rng: SystemRandom,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Tickets {
    /// An empty table whose handles live `ttl`.
    pub fn new(ttl: Duration) -> Tickets {
        Tickets {
            ttl,
            rng: SystemRandom::new(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// How long a handle lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // The map stays consistent across a panic elsewhere: every change is one insert/remove.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Issues a handle for `held` to `user`: 256 random bits, hex.
    pub fn issue(&self, user: &str, held: Held, now: Instant) -> Result<String, Full> {
        let bytes = held.row_bytes();
        if bytes > ROW_BYTES_PER_USER {
            return Err(Full::TooLarge);
        }
        let mut raw = [0u8; 32];
        // The system RNG failing is not recoverable; refusing is the safe answer.
        self.rng.fill(&mut raw).map_err(|_| Full::Server)?;
        let handle = hex::encode(raw);
        let mut entries = self.lock();
        entries.retain(|_, e| e.expires > now);
        // The user's oldest handles make room for the new one.
        loop {
            let (count, used, oldest) = entries.iter().filter(|(_, e)| e.user == user).fold(
                (0usize, 0usize, None::<(&String, Instant)>),
                |(n, b, o), (k, e)| {
                    let o = match o {
                        Some((_, t)) if t <= e.issued => o,
                        _ => Some((k, e.issued)),
                    };
                    (n + 1, b + e.bytes, o)
                },
            );
            if count < PER_USER && used + bytes <= ROW_BYTES_PER_USER {
                break;
            }
            let Some((key, _)) = oldest else { break };
            let key = key.clone();
            entries.remove(&key);
        }
        let total_bytes: usize = entries.values().map(|e| e.bytes).sum();
        if entries.len() >= TOTAL || total_bytes + bytes > ROW_BYTES_TOTAL {
            return Err(Full::Server);
        }
        entries.insert(
            handle.clone(),
            Entry {
                user: user.to_string(),
                issued: now,
                expires: now + self.ttl,
                bytes,
                held,
            },
        );
        Ok(handle)
    }

    /// What `handle` stands for, whoever holds it: only to name the call in the audit log
    /// before the caller is known. Never answers a client.
    pub fn describe(&self, handle: &[u8]) -> Option<Held> {
        let handle = std::str::from_utf8(handle).ok()?;
        self.lock().get(handle).map(|e| match &e.held {
            // The rows themselves are not needed to name the call.
            Held::Ticket(Readable::Rows { job, schema, .. }) => Held::Ticket(Readable::Rows {
                job: job.clone(),
                schema: schema.clone(),
                batches: Vec::new(),
            }),
            other => other.clone(),
        })
    }

    /// Takes ticket `handle` of `user` (a ticket is read once).
    pub fn take(&self, handle: &[u8], user: &str, now: Instant) -> Result<Readable, Lookup> {
        let handle = std::str::from_utf8(handle).map_err(|_| Lookup::Unknown)?;
        let mut entries = self.lock();
        match entries.get(handle) {
            Some(e) if e.user == user && matches!(e.held, Held::Ticket(_)) => {}
            _ => return Err(Lookup::Unknown),
        }
        let Some(entry) = entries.remove(handle) else {
            return Err(Lookup::Unknown);
        };
        if entry.expires <= now {
            return Err(Lookup::Expired);
        }
        match entry.held {
            Held::Ticket(r) => Ok(r),
            Held::Prepared(_) => Err(Lookup::Unknown),
        }
    }

    /// Prepared statement `handle` of `user`. It stays until closed, or until it has not been
    /// used for the handles' lifetime: clients re-execute the same handle for a repeated query.
    pub fn prepared(
        &self,
        handle: &[u8],
        user: &str,
        now: Instant,
    ) -> Result<PreparedStatement, Lookup> {
        let handle = std::str::from_utf8(handle).map_err(|_| Lookup::Unknown)?;
        let mut entries = self.lock();
        let expired = match entries.get_mut(handle) {
            Some(Entry {
                user: owner,
                expires,
                held: Held::Prepared(p),
                ..
            }) if owner == user => {
                if *expires > now {
                    *expires = now + self.ttl;
                    return Ok(p.clone());
                }
                true
            }
            _ => false,
        };
        if expired {
            entries.remove(handle);
            return Err(Lookup::Expired);
        }
        Err(Lookup::Unknown)
    }

    /// Closes prepared statement `handle` if `user` holds it; anything else is left alone.
    pub fn close(&self, handle: &[u8], user: &str) {
        let Ok(handle) = std::str::from_utf8(handle) else {
            return;
        };
        let mut entries = self.lock();
        if entries
            .get(handle)
            .is_some_and(|e| e.user == user && matches!(e.held, Held::Prepared(_)))
        {
            entries.remove(handle);
        }
    }

    /// Handles held now (tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no handle is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(job: &str) -> Held {
        Held::Ticket(Readable::Status { job: job.into() })
    }

    #[test]
    fn a_ticket_is_read_once_by_its_user_only() {
        let t = Tickets::new(Duration::from_secs(60));
        let now = Instant::now();
        let h = t.issue("ana", status("job-1"), now).expect("issue");
        assert_eq!(h.len(), 64, "256 random bits");
        assert_eq!(
            t.take(h.as_bytes(), "bob", now).err(),
            Some(Lookup::Unknown)
        );
        // A colleague's attempt does not consume the owner's ticket.
        assert_eq!(
            t.take(h.as_bytes(), "ana", now).expect("own").job(),
            "job-1"
        );
        assert_eq!(
            t.take(h.as_bytes(), "ana", now).err(),
            Some(Lookup::Unknown)
        );
        assert_eq!(t.take(b"\xff\xfe", "ana", now).err(), Some(Lookup::Unknown));
    }

    #[test]
    fn expired_handles_are_refused_and_forgotten() {
        let t = Tickets::new(Duration::from_secs(60));
        let now = Instant::now();
        let h = t.issue("ana", status("job-1"), now).expect("issue");
        let later = now + Duration::from_secs(61);
        assert_eq!(
            t.take(h.as_bytes(), "bob", later).err(),
            Some(Lookup::Unknown)
        );
        assert_eq!(
            t.take(h.as_bytes(), "ana", later).err(),
            Some(Lookup::Expired)
        );
        assert!(t.is_empty());
        let p = Held::Prepared(PreparedStatement {
            statement: Statement::Sql("SELECT 1".into()),
            scenario: "s".into(),
            env: Env::Prod,
        });
        let h = t.issue("ana", p, now).expect("issue");
        assert!(t.prepared(h.as_bytes(), "ana", now).is_ok());
        assert_eq!(
            t.prepared(h.as_bytes(), "bob", now).err(),
            Some(Lookup::Unknown)
        );
        let used = now + Duration::from_secs(59);
        assert!(t.prepared(h.as_bytes(), "ana", used).is_ok(), "reusable");
        assert!(
            t.prepared(h.as_bytes(), "ana", later).is_ok(),
            "each use extends its life"
        );
        let later = later + Duration::from_secs(61);
        assert_eq!(
            t.take(h.as_bytes(), "ana", now).err(),
            Some(Lookup::Unknown),
            "a prepared statement is not a ticket"
        );
        assert_eq!(
            t.prepared(h.as_bytes(), "ana", later).err(),
            Some(Lookup::Expired)
        );
    }

    #[test]
    fn memory_is_bounded_per_user_and_in_total() {
        let t = Tickets::new(Duration::from_secs(60));
        let now = Instant::now();
        let first = t.issue("ana", status("job-0"), now).expect("issue");
        for i in 1..=PER_USER {
            let at = now + Duration::from_millis(i as u64);
            t.issue("ana", status(&format!("job-{i}")), at)
                .expect("issue");
        }
        assert_eq!(t.len(), PER_USER, "a user's oldest handle made room");
        assert_eq!(
            t.take(first.as_bytes(), "ana", now).err(),
            Some(Lookup::Unknown)
        );
        for u in 0..(TOTAL / PER_USER) {
            for _ in 0..PER_USER {
                let _ = t.issue(&format!("user-{u}"), status("j"), now);
            }
        }
        assert_eq!(t.len(), TOTAL);
        assert_eq!(
            t.issue("newcomer", status("j"), now).err(),
            Some(Full::Server)
        );
        // Expired handles make room again.
        let later = now + Duration::from_secs(61);
        assert!(t.issue("newcomer", status("j"), later).is_ok());
    }

    #[test]
    fn closing_touches_only_ones_own_prepared_statements() {
        let t = Tickets::new(Duration::from_secs(60));
        let now = Instant::now();
        let p = Held::Prepared(PreparedStatement {
            statement: Statement::Sql("SELECT 1".into()),
            scenario: "s".into(),
            env: Env::Prod,
        });
        let h = t.issue("ana", p, now).expect("issue");
        let ticket = t.issue("ana", status("job-1"), now).expect("issue");
        t.close(h.as_bytes(), "bob");
        t.close(ticket.as_bytes(), "ana");
        assert_eq!(t.len(), 2);
        t.close(h.as_bytes(), "ana");
        assert_eq!(t.len(), 1);
    }
}
