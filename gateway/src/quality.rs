//! Data-quality requests: an analyst reports what is wrong with a dataset (and where); the
//! provider unit that owns it answers and closes the request; the authority watches the open
//! ones and their age.

use serde::{Deserialize, Serialize};

use crate::error::GatewayError;
use crate::records::Records;

/// One request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualityRecord {
    /// Id.
    pub id: String,
    /// Dataset id.
    pub dataset_id: String,
    /// Dataset name.
    pub dataset: String,
    /// Provider unit that owns the dataset.
    pub unit: String,
    /// An example column, if any.
    pub column: String,
    /// What is wrong.
    pub issue: String,
    /// Analyst who filed it.
    pub filed_by: String,
    /// Their tenant.
    pub tenant: String,
    /// When.
    pub filed_at_ms: i64,
    /// The provider's answer, once closed.
    pub answer: Option<String>,
    /// Who answered.
    pub answered_by: Option<String>,
    /// When.
    pub closed_at_ms: Option<i64>,
}

impl QualityRecord {
    /// Whether it still waits for an answer.
    pub fn open(&self) -> bool {
        self.closed_at_ms.is_none()
    }
}

/// A request closed already, by someone else or earlier.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("request {id} was closed by {by} already")]
pub struct AlreadyClosed {
    /// The request.
    pub id: String,
    /// Who closed it.
    pub by: String,
}

/// The requests tree.
#[derive(Clone)]
pub struct QualityRequests {
    records: Records<QualityRecord>,
}

impl QualityRequests {
    /// Opens the tree in `db`.
    pub fn open(db: &sled::Db) -> Result<QualityRequests, GatewayError> {
        Ok(QualityRequests {
            records: Records::open(db, "quality_requests", "data-quality request")?,
        })
    }

    /// Stores a request (new or closed).
    pub fn put(&self, r: &QualityRecord) -> Result<(), GatewayError> {
        self.records.put(&r.id, r)
    }

    /// Closes request `id` with `answer`, once: `Ok(None)` if it does not exist, `Ok(Some(Err))`
    /// if it was closed already.
    pub fn close(
        &self,
        id: &str,
        answer: &str,
        by: &str,
        at_ms: i64,
    ) -> Result<Option<Result<QualityRecord, AlreadyClosed>>, GatewayError> {
        self.records.update(id, |r| {
            if !r.open() {
                return Err(AlreadyClosed {
                    id: r.id.clone(),
                    by: r.answered_by.clone().unwrap_or_default(),
                });
            }
            let mut r = r.clone();
            r.answer = Some(answer.to_string());
            r.answered_by = Some(by.to_string());
            r.closed_at_ms = Some(at_ms);
            Ok(r)
        })
    }

    /// All requests.
    pub fn all(&self) -> Result<Vec<QualityRecord>, GatewayError> {
        self.records.all()
    }

    /// One request.
    pub fn get(&self, id: &str) -> Result<Option<QualityRecord>, GatewayError> {
        self.records.get(id)
    }
}
