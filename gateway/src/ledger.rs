//! The unit-set ledger: for every row of every production result, the privacy units of each
//! contributing dataset behind it (sets of keyed unit indexes, never identifiers),
//! per release scope. Differencing checks compare a new result against the rows of jobs that
//! were released in the same scope.
//!
//! Key: `scope \0 dataset \0 job \0 row (u64 big-endian)`; value: one byte (1 released,
//! 0 suppressed in that job), for released rows their position in the released result (u64
//! big-endian), and the serialized set. A job's rows are written when it finishes;
//! whether they count depends on the job's state (only released jobs are "earlier releases").

use erhai_engine::RowUnits;
use erhai_engine::differencing::EarlierRow;
use erhai_engine::unit_set::UnitSet;

use crate::error::GatewayError;

/// Rows of earlier releases loaded for one check at most (the newest are kept).
pub const MAX_EARLIER_ROWS: usize = 200_000;

/// The ledger tree.
#[derive(Clone)]
pub struct UnitLedger {
    tree: sled::Tree,
}

fn prefix(scope: &str, dataset: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(scope.len() + dataset.len() + 2);
    k.extend_from_slice(scope.as_bytes());
    k.push(0);
    k.extend_from_slice(dataset.as_bytes());
    k.push(0);
    k
}

impl UnitLedger {
    /// Opens the ledger's tree in `db`.
    pub fn open(db: &sled::Db) -> Result<UnitLedger, GatewayError> {
        Ok(UnitLedger {
            tree: db.open_tree("unit_sets")?,
        })
    }

    /// Records the unit sets of every computed row of `job` (flushed by the caller's commit).
    pub fn record(&self, scope: &str, job: &str, rows: &[RowUnits]) -> Result<(), GatewayError> {
        let mut batch = sled::Batch::default();
        for r in rows {
            for (dataset, set) in &r.sets {
                let mut key = prefix(scope, dataset);
                key.extend_from_slice(job.as_bytes());
                key.push(0);
                key.extend_from_slice(&r.row.to_be_bytes());
                let encoded = set.encode();
                let mut value = Vec::with_capacity(9 + encoded.len());
                match r.released_row {
                    Some(at) => {
                        value.push(1);
                        value.extend_from_slice(&at.to_be_bytes());
                    }
                    None => value.push(0),
                }
                value.extend_from_slice(&encoded);
                batch.insert(key, value);
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// The rows of `job` itself, rebuilt (for the re-check at approval).
    pub fn rows_of(
        &self,
        scope: &str,
        datasets: &[String],
        job: &str,
    ) -> Result<Vec<RowUnits>, GatewayError> {
        let mut rows: std::collections::BTreeMap<u64, RowUnits> = Default::default();
        for dataset in datasets {
            let mut p = prefix(scope, dataset);
            p.extend_from_slice(job.as_bytes());
            p.push(0);
            for item in self.tree.scan_prefix(&p) {
                let (key, value) = item?;
                let (row, released_row, set) = decode(&key[p.len()..], &value)?;
                rows.entry(row)
                    .or_insert_with(|| RowUnits {
                        row,
                        released_row,
                        sets: Vec::new(),
                    })
                    .sets
                    .push((dataset.clone(), set));
            }
        }
        Ok(rows.into_values().collect())
    }

    /// Rows of other jobs of `scope` over `dataset` for which `released(job)` holds; the bool
    /// says whether [`MAX_EARLIER_ROWS`] cut the list.
    pub fn earlier(
        &self,
        scope: &str,
        dataset: &str,
        exclude_job: &str,
        mut released: impl FnMut(&str) -> bool,
    ) -> Result<(Vec<EarlierRow>, bool), GatewayError> {
        let p = prefix(scope, dataset);
        let mut out = Vec::new();
        let mut capped = false;
        // Newest first: job ids grow, so the reverse scan meets recent releases first.
        for item in self.tree.scan_prefix(&p).rev() {
            let (key, value) = item?;
            let rest = &key[p.len()..];
            let Some(sep) = rest.iter().position(|b| *b == 0) else {
                return Err(GatewayError::Store("corrupt unit-set key".into()));
            };
            let job = std::str::from_utf8(&rest[..sep])
                .map_err(|_| GatewayError::Store("corrupt unit-set key".into()))?;
            if job == exclude_job || !released(job) {
                continue;
            }
            if out.len() >= MAX_EARLIER_ROWS {
                capped = true;
                break;
            }
            let (row, released_row, set) = decode(&rest[sep + 1..], &value)?;
            out.push(EarlierRow {
                job: job.to_string(),
                row,
                released: released_row.is_some(),
                set,
            });
        }
        Ok((out, capped))
    }
}

/// (row, released position, set) of one record.
fn decode(row_key: &[u8], value: &[u8]) -> Result<(u64, Option<u64>, UnitSet), GatewayError> {
    let corrupt = || GatewayError::Store("corrupt unit-set record".into());
    let row = u64::from_be_bytes(row_key.try_into().map_err(|_| corrupt())?);
    let (flag, rest) = value.split_first().ok_or_else(corrupt)?;
    let (released_row, bytes) = if *flag == 1 {
        let (at, bytes) = rest.split_at_checked(8).ok_or_else(corrupt)?;
        (
            Some(u64::from_be_bytes(at.try_into().map_err(|_| corrupt())?)),
            bytes,
        )
    } else {
        (None, rest)
    };
    let set = UnitSet::decode(bytes).ok_or_else(corrupt)?;
    Ok((row, released_row, set))
}
