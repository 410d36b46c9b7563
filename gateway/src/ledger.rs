//! The population ledger: for every row of every production result, the populations behind it
//! (the privacy units of each contributing dataset behind its group, each side of each condition
//! inside its aggregates, and each subquery it depends on) — sets of keyed unit indexes, never
//! identifiers. One ledger per dataset (by id, so across its versions, scenarios and tenants):
//! differencing compares a new result with every release over the same data, whoever made it,
//! because pooled attacks by several analysts or tenants are the realistic threat.
//!
//! Trees:
//! - `populations`: `dataset \0 job \0 row (u64 BE) population (u32 BE)` → flags (bit 0:
//!   released in that job's result, bit 1: the row's group, bit 2: a figure is computed over
//!   it), where it comes from (tag and index: group, an aggregate's condition, a subquery), the
//!   digest of its definition (u64) and the encoded set. The whole of each dataset is recorded
//!   at registration as job `registered/<dataset>`, released (its row count is public);
//! - `population_index`: `dataset \0 unit (u32 BE) job \0 row population` → nothing, for each of
//!   the population's [`LEDGER_PREFIX`] smallest units: two populations that differ by fewer
//!   than k units share one of their k smallest, so a new result finds the few earlier
//!   populations it must be compared with without reading the rest.
//!
//! A job's populations are written when it finishes; whether they count depends on the job's
//! state at the time of the check (only released jobs are earlier releases).

use std::collections::{BTreeMap, HashMap, HashSet};

use erhai_engine::LinearAudit;
use erhai_engine::UnitSet;
use erhai_engine::{EarlierRow, LEDGER_PREFIX, RowPopulation, RowUnits, Source};

use crate::error::GatewayError;

/// Index entries one lookup may visit; beyond it the lookup says it is incomplete (and the
/// result it was for is withheld).
pub const MAX_INDEX_ENTRIES: usize = 2_000_000;

/// The ledger's trees.
#[derive(Clone)]
pub struct PopulationLedger {
    populations: sled::Tree,
    index: sled::Tree,
    /// Per dataset, the linear audit of every figure released over it
    /// ([`erhai_engine::LinearAudit`]), updated as releases are approved.
    audits: sled::Tree,
}

const RELEASED: u8 = 1;
const GROUP: u8 = 2;
const FIGURE: u8 = 4;

fn corrupt() -> GatewayError {
    GatewayError::Store("corrupt population-ledger record".into())
}

fn job_prefix(dataset: &str, job: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(dataset.len() + job.len() + 2);
    k.extend_from_slice(dataset.as_bytes());
    k.push(0);
    k.extend_from_slice(job.as_bytes());
    k.push(0);
    k
}

fn unit_prefix(dataset: &str, unit: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(dataset.len() + 5);
    k.extend_from_slice(dataset.as_bytes());
    k.push(0);
    k.extend_from_slice(&unit.to_be_bytes());
    k
}

/// `job \0 row population` → (job, row, population).
fn split_tail(tail: &[u8]) -> Result<(String, u64, u32), GatewayError> {
    let sep = tail.iter().position(|b| *b == 0).ok_or_else(corrupt)?;
    let job = std::str::from_utf8(&tail[..sep]).map_err(|_| corrupt())?;
    let rest = &tail[sep + 1..];
    if rest.len() != 12 {
        return Err(corrupt());
    }
    let row = u64::from_be_bytes(rest[..8].try_into().map_err(|_| corrupt())?);
    let pop = u32::from_be_bytes(rest[8..].try_into().map_err(|_| corrupt())?);
    Ok((job.to_string(), row, pop))
}

fn encode_source(s: Source) -> [u8; 5] {
    let (tag, i) = match s {
        Source::Group => (0u8, 0usize),
        Source::Aggregate(i) => (1, i),
        Source::Subquery(i) => (2, i),
    };
    let i = u32::try_from(i).unwrap_or(u32::MAX).to_be_bytes();
    [tag, i[0], i[1], i[2], i[3]]
}

/// What a population record holds.
struct Value {
    flags: u8,
    source: Source,
    fingerprint: u64,
    set: UnitSet,
}

fn decode_value(value: &[u8]) -> Result<Value, GatewayError> {
    let head = value.get(..14).ok_or_else(corrupt)?;
    let i = u32::from_be_bytes(head[2..6].try_into().map_err(|_| corrupt())?) as usize;
    let source = match head[1] {
        0 => Source::Group,
        1 => Source::Aggregate(i),
        2 => Source::Subquery(i),
        _ => return Err(corrupt()),
    };
    let fingerprint = u64::from_be_bytes(head[6..14].try_into().map_err(|_| corrupt())?);
    let set = UnitSet::decode(&value[14..]).ok_or_else(corrupt)?;
    Ok(Value {
        flags: head[0],
        source,
        fingerprint,
        set,
    })
}

/// The job under which the whole population of a dataset's `version` is recorded when it is
/// registered (version 1 keeps the name it had before versions). Every version's row count is
/// public, so each stays a release of its own: a later version differs from an earlier one
/// by the units added or removed, and differencing sees both.
pub fn registration(dataset_id: &str, version: u32) -> String {
    if version <= 1 {
        format!("registered/{dataset_id}")
    } else {
        format!("registered/{dataset_id}/v{version}")
    }
}

/// Whether `job` is a registration's (always released: a dataset's row count is public).
pub fn is_registration(job: &str) -> bool {
    job.starts_with("registered/")
}

impl PopulationLedger {
    /// Opens the ledger's trees in `db`. Sets recorded by earlier versions (per scope and
    /// dataset name, tree `unit_sets`) move into it, their datasets named by `id_of`.
    pub fn open(
        db: &sled::Db,
        id_of: impl Fn(&str) -> Option<String>,
    ) -> Result<PopulationLedger, GatewayError> {
        let ledger = PopulationLedger {
            populations: db.open_tree("populations")?,
            index: db.open_tree("population_index")?,
            audits: db.open_tree("release_audits")?,
        };
        ledger.migrate(db, id_of)?;
        Ok(ledger)
    }

    /// Moves the per-scope sets of earlier versions into the per-dataset ledger.
    fn migrate(
        &self,
        db: &sled::Db,
        id_of: impl Fn(&str) -> Option<String>,
    ) -> Result<(), GatewayError> {
        let old = db.open_tree("unit_sets")?;
        if old.is_empty() {
            return Ok(());
        }
        let mut rows: BTreeMap<(String, String, u64), RowUnits> = BTreeMap::new();
        for item in old.iter() {
            let (key, value) = item?;
            // scope \0 dataset \0 job \0 row(8)
            let mut parts = key.splitn(4, |b| *b == 0);
            let (_scope, dataset, job, row) = (
                parts.next().ok_or_else(corrupt)?,
                parts.next().ok_or_else(corrupt)?,
                parts.next().ok_or_else(corrupt)?,
                parts.next().ok_or_else(corrupt)?,
            );
            let name = std::str::from_utf8(dataset).map_err(|_| corrupt())?;
            let job = std::str::from_utf8(job).map_err(|_| corrupt())?.to_string();
            let row = u64::from_be_bytes(row.try_into().map_err(|_| corrupt())?);
            let (flag, rest) = value.split_first().ok_or_else(corrupt)?;
            let (released, bytes) = if *flag == 1 {
                (true, rest.get(8..).ok_or_else(corrupt)?)
            } else {
                (false, rest)
            };
            let set = UnitSet::decode(bytes).ok_or_else(corrupt)?;
            let Some(id) = id_of(name) else { continue };
            rows.entry((id.clone(), job, row))
                .or_insert_with(|| RowUnits {
                    row,
                    released_row: released.then_some(row),
                    sets: Vec::new(),
                })
                .sets
                .push(RowPopulation {
                    dataset: id,
                    source: Source::Group,
                    figure: true,
                    fingerprint: 0,
                    set,
                });
        }
        let mut by_job: BTreeMap<String, Vec<RowUnits>> = BTreeMap::new();
        for ((_, job, _), r) in rows {
            by_job.entry(job).or_default().push(r);
        }
        for (job, rows) in by_job {
            self.record(&job, &rows, &|d| Some(d.to_string()))?;
        }
        old.clear()?;
        db.drop_tree("unit_sets")?;
        db.flush()?;
        Ok(())
    }

    /// Records every population of `job`'s rows; `id_of` names the dataset id of a dataset as
    /// the job's query named it (flushed by the caller's commit).
    pub fn record(
        &self,
        job: &str,
        rows: &[RowUnits],
        id_of: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), GatewayError> {
        let mut pops = sled::Batch::default();
        let mut index = sled::Batch::default();
        for r in rows {
            for (i, p) in r.sets.iter().enumerate() {
                let Some(dataset) = id_of(&p.dataset) else {
                    continue;
                };
                let mut tail = Vec::with_capacity(job.len() + 13);
                tail.extend_from_slice(job.as_bytes());
                tail.push(0);
                tail.extend_from_slice(&r.row.to_be_bytes());
                tail.extend_from_slice(&(i as u32).to_be_bytes());
                let mut key = dataset.as_bytes().to_vec();
                key.push(0);
                key.extend_from_slice(&tail);
                let mut flags = 0u8;
                if r.released_row.is_some() {
                    flags |= RELEASED;
                }
                if p.source == Source::Group && r.row < erhai_engine::SUBQUERY_ROWS {
                    flags |= GROUP;
                }
                if p.figure {
                    flags |= FIGURE;
                }
                let encoded = p.set.encode();
                let mut value = Vec::with_capacity(14 + encoded.len());
                value.push(flags);
                value.extend_from_slice(&encode_source(p.source));
                value.extend_from_slice(&p.fingerprint.to_be_bytes());
                value.extend_from_slice(&encoded);
                pops.insert(key, value);
                for &u in p.set.prefix(LEDGER_PREFIX) {
                    let mut ikey = unit_prefix(&dataset, u);
                    ikey.extend_from_slice(&tail);
                    index.insert(ikey, Vec::<u8>::new());
                }
            }
        }
        self.populations.apply_batch(pops)?;
        self.index.apply_batch(index)?;
        Ok(())
    }

    /// The rows of `job` itself over the datasets `ids` (id → name as the query saw it),
    /// rebuilt for the check again at approval.
    pub fn rows_of(
        &self,
        job: &str,
        ids: &[(String, String)],
    ) -> Result<Vec<RowUnits>, GatewayError> {
        let mut rows: BTreeMap<u64, RowUnits> = BTreeMap::new();
        for (id, name) in ids {
            let p = job_prefix(id, job);
            for item in self.populations.scan_prefix(&p) {
                let (key, value) = item?;
                let rest = &key[p.len()..];
                if rest.len() != 12 {
                    return Err(corrupt());
                }
                let row = u64::from_be_bytes(rest[..8].try_into().map_err(|_| corrupt())?);
                let v = decode_value(&value)?;
                rows.entry(row)
                    .or_insert_with(|| RowUnits {
                        row,
                        released_row: (v.flags & RELEASED != 0).then_some(row),
                        sets: Vec::new(),
                    })
                    .sets
                    .push(RowPopulation {
                        dataset: name.clone(),
                        source: v.source,
                        figure: v.flags & FIGURE != 0,
                        fingerprint: v.fingerprint,
                        set: v.set,
                    });
            }
        }
        Ok(rows.into_values().collect())
    }

    /// Marks the rows `rows` of `job` over the datasets `ids` released or not, in place: rows
    /// withheld at approval are suppressed cells for every later check (a later total less its
    /// released parts must not give them back).
    pub fn mark_rows(
        &self,
        job: &str,
        ids: &[String],
        rows: &HashSet<u64>,
        released: bool,
    ) -> Result<(), GatewayError> {
        let mut batch = sled::Batch::default();
        for id in ids {
            let p = job_prefix(id, job);
            for item in self.populations.scan_prefix(&p) {
                let (key, value) = item?;
                let rest = &key[p.len()..];
                let row = rest
                    .get(..8)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(corrupt)?;
                if !rows.contains(&row) {
                    continue;
                }
                let mut v = value.to_vec();
                let flags = v.first_mut().ok_or_else(corrupt)?;
                if released {
                    *flags |= RELEASED;
                } else {
                    *flags &= !RELEASED;
                }
                batch.insert(key, v);
            }
        }
        self.populations.apply_batch(batch)?;
        Ok(())
    }

    /// The populations over dataset `id` of jobs other than `exclude_job` for which
    /// `released(job)` holds, that have one of `units` among their smallest units; the bool
    /// says whether the lookup completed within [`MAX_INDEX_ENTRIES`].
    pub fn lookup(
        &self,
        id: &str,
        units: &[u32],
        exclude_job: &str,
        mut released: impl FnMut(&str) -> bool,
    ) -> Result<(Vec<EarlierRow>, bool), GatewayError> {
        let mut seen: HashSet<(String, u64, u32)> = HashSet::new();
        let mut states: HashMap<String, bool> = HashMap::new();
        let mut out = Vec::new();
        let mut visited = 0usize;
        for &u in units {
            let p = unit_prefix(id, u);
            for item in self.index.scan_prefix(&p) {
                visited += 1;
                if visited > MAX_INDEX_ENTRIES {
                    return Ok((out, false));
                }
                let (key, _) = item?;
                let (job, row, pop) = split_tail(&key[p.len()..])?;
                if job == exclude_job {
                    continue;
                }
                let counts = *states
                    .entry(job.clone())
                    .or_insert_with(|| is_registration(&job) || released(&job));
                if !counts || !seen.insert((job.clone(), row, pop)) {
                    continue;
                }
                let mut pkey = job_prefix(id, &job);
                pkey.extend_from_slice(&row.to_be_bytes());
                pkey.extend_from_slice(&pop.to_be_bytes());
                let Some(value) = self.populations.get(&pkey)? else {
                    continue;
                };
                let v = decode_value(&value)?;
                out.push(EarlierRow {
                    job,
                    row,
                    released: v.flags & RELEASED != 0,
                    group: v.flags & GROUP != 0,
                    fingerprint: v.fingerprint,
                    set: v.set,
                });
            }
        }
        Ok((out, true))
    }
}

impl PopulationLedger {
    /// The linear audit of dataset `id`: every figure population of the released rows of jobs
    /// for which `released(job)` holds. Built from the ledger while none is stored (datasets
    /// released before the audit existed); stored, and kept up to date, only by
    /// [`Self::record_release`], under the release lock.
    pub fn audit(
        &self,
        id: &str,
        mut released: impl FnMut(&str) -> bool,
    ) -> Result<LinearAudit, GatewayError> {
        if let Some(bytes) = self.audits.get(id.as_bytes())? {
            return LinearAudit::decode(&bytes).ok_or_else(corrupt);
        }
        let mut audit = LinearAudit::default();
        let mut by_job: BTreeMap<String, Vec<UnitSet>> = BTreeMap::new();
        let mut states: HashMap<String, bool> = HashMap::new();
        let p = {
            let mut k = id.as_bytes().to_vec();
            k.push(0);
            k
        };
        for item in self.populations.scan_prefix(&p) {
            let (key, value) = item?;
            let (job, _, _) = split_tail(&key[p.len()..])?;
            let counts = *states
                .entry(job.clone())
                .or_insert_with(|| is_registration(&job) || released(&job));
            let v = decode_value(&value)?;
            if counts && v.flags & RELEASED != 0 && v.flags & FIGURE != 0 {
                by_job.entry(job).or_default().push(v.set);
            }
        }
        for sets in by_job.values() {
            let refs: Vec<&UnitSet> = sets.iter().collect();
            audit.record(&refs);
        }
        Ok(audit)
    }

    /// Records the whole population of a dataset (all its units), released: a dataset's row
    /// count is public, so `count(*)` over every row is as good as released.
    pub fn record_registration(
        &self,
        id: &str,
        version: u32,
        name: &str,
        units: UnitSet,
        fingerprint: u64,
    ) -> Result<(), GatewayError> {
        let row = RowUnits {
            row: 0,
            released_row: Some(0),
            sets: vec![RowPopulation {
                dataset: name.to_string(),
                source: Source::Group,
                figure: true,
                fingerprint,
                set: units,
            }],
        };
        self.record(&registration(id, version), &[row], &|_| {
            Some(id.to_string())
        })?;
        // An audit state kept so far is rebuilt from the ledger with it at the next check.
        self.audits.remove(id.as_bytes())?;
        Ok(())
    }

    /// Whether the whole population of version `version` of dataset `id` is recorded.
    pub fn has_registration(&self, id: &str, version: u32) -> Result<bool, GatewayError> {
        Ok(self
            .populations
            .scan_prefix(job_prefix(id, &registration(id, version)))
            .next()
            .is_some())
    }

    /// Forgets every population of dataset `id` and its audit (a dataset deleted before any
    /// job read it: only its registrations are there). Keyed unit indexes are derived from the
    /// data; nothing of a deleted dataset stays.
    pub fn forget_dataset(&self, id: &str) -> Result<usize, GatewayError> {
        let mut prefix = id.as_bytes().to_vec();
        prefix.push(0);
        let mut removed = 0;
        for tree in [&self.populations, &self.index] {
            let mut batch = sled::Batch::default();
            for item in tree.scan_prefix(&prefix) {
                let (key, _) = item?;
                batch.remove(key);
                removed += 1;
            }
            tree.apply_batch(batch)?;
        }
        self.audits.remove(id.as_bytes())?;
        Ok(removed)
    }

    /// Adds the figures of `job`'s released rows over the datasets `ids` (id → name) to their
    /// audits, when a reviewer releases it (under the release lock).
    pub fn record_release(
        &self,
        job: &str,
        ids: &[(String, String)],
        released: impl Fn(&str) -> bool,
    ) -> Result<(), GatewayError> {
        let rows = self.rows_of(job, ids)?;
        let any_released = rows
            .iter()
            .any(|r| r.row < erhai_engine::SUBQUERY_ROWS && r.released_row.is_some());
        for (id, name) in ids {
            let mut audit = self.audit(id, |j| j != job && released(j))?;
            let sets: Vec<&UnitSet> = rows
                .iter()
                .filter(|r| {
                    r.released_row.is_some()
                        || (r.row >= erhai_engine::SUBQUERY_ROWS && any_released)
                })
                .flat_map(|r| r.sets.iter())
                .filter(|p| p.dataset == *name && p.figure)
                .map(|p| &p.set)
                .collect();
            audit.record(&sets);
            self.audits.insert(id.as_bytes(), audit.encode())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(range: std::ops::Range<u32>) -> UnitSet {
        UnitSet::from_unsorted(range.collect())
    }

    fn rows(sets: &[UnitSet]) -> Vec<RowUnits> {
        sets.iter()
            .enumerate()
            .map(|(i, s)| RowUnits {
                row: i as u64,
                released_row: Some(i as u64),
                sets: vec![RowPopulation {
                    dataset: "stays".into(),
                    source: Source::Group,
                    figure: true,
                    fingerprint: 7,
                    set: s.clone(),
                }],
            })
            .collect()
    }

    #[test]
    fn each_version_registers_its_own_population_and_deletion_forgets_them_all() {
        let dir = tempfile::tempdir().expect("dir");
        let db = sled::open(dir.path()).expect("db");
        let ledger = PopulationLedger::open(&db, |n| Some(n.to_string())).expect("open");
        ledger
            .record_registration("ds-1", 1, "stays", set(0..40), 7)
            .expect("v1");
        ledger
            .record_registration("ds-1", 2, "stays", set(0..41), 7)
            .expect("v2");
        ledger
            .record_registration("ds-10", 1, "other", set(0..40), 7)
            .expect("other");
        assert!(ledger.has_registration("ds-1", 1).expect("v1"));
        assert!(ledger.has_registration("ds-1", 2).expect("v2"));
        assert!(!ledger.has_registration("ds-1", 3).expect("v3"));
        // A new result over ds-1 meets both versions' populations: one unit apart.
        let (found, complete) = ledger
            .lookup("ds-1", &[0], "job-9", |_| false)
            .expect("lookup");
        assert!(complete);
        let mut sizes: Vec<u64> = found.iter().map(|e| e.set.len()).collect();
        sizes.sort();
        assert_eq!(sizes, vec![40, 41]);
        assert!(ledger.forget_dataset("ds-1").expect("forget") > 0);
        assert!(!ledger.has_registration("ds-1", 1).expect("v1"));
        let (found, _) = ledger
            .lookup("ds-1", &[0], "job-9", |_| true)
            .expect("lookup");
        assert!(found.is_empty());
        // A dataset whose id extends the deleted one's is untouched.
        assert!(ledger.has_registration("ds-10", 1).expect("other"));
    }

    #[test]
    fn lookups_find_populations_by_their_smallest_units_across_jobs() {
        let dir = tempfile::tempdir().expect("dir");
        let db = sled::open(dir.path()).expect("db");
        let ledger = PopulationLedger::open(&db, |n| Some(n.to_string())).expect("open");
        let id = |_: &str| Some("ds-1".to_string());
        ledger
            .record("job-1", &rows(&[set(0..50), set(1000..1040)]), &id)
            .expect("record");
        ledger
            .record("job-2", &rows(&[set(5000..5100)]), &id)
            .expect("record");
        let (found, complete) = ledger
            .lookup("ds-1", &[3, 1010], "job-9", |_| true)
            .expect("lookup");
        assert!(complete);
        assert_eq!(found.len(), 2);
        assert!(
            found
                .iter()
                .all(|e| e.job == "job-1" && e.released && e.group)
        );
        // Unreleased jobs and the job itself do not count; other datasets are apart.
        let (found, _) = ledger
            .lookup("ds-1", &[3], "job-9", |j| j != "job-1")
            .expect("lookup");
        assert!(found.is_empty());
        let (found, _) = ledger.lookup("ds-2", &[3], "x", |_| true).expect("lookup");
        assert!(found.is_empty());
        let back = ledger
            .rows_of("job-1", &[("ds-1".into(), "stays".into())])
            .expect("rows");
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].sets[0].set, set(0..50));
    }

    #[test]
    fn rows_withheld_at_approval_read_back_as_suppressed() {
        let dir = tempfile::tempdir().expect("dir");
        let db = sled::open(dir.path()).expect("db");
        let ledger = PopulationLedger::open(&db, |n| Some(n.to_string())).expect("open");
        let id = |_: &str| Some("ds-1".to_string());
        ledger
            .record("job-1", &rows(&[set(0..50), set(50..90)]), &id)
            .expect("record");
        let ids = ["ds-1".to_string()];
        ledger
            .mark_rows("job-1", &ids, &HashSet::from([1]), false)
            .expect("mark");
        let back = ledger
            .rows_of("job-1", &[("ds-1".into(), "stays".into())])
            .expect("rows");
        let released: Vec<bool> = back.iter().map(|r| r.released_row.is_some()).collect();
        assert_eq!(released, vec![true, false]);
        let (found, _) = ledger
            .lookup("ds-1", &[50], "job-9", |_| true)
            .expect("lookup");
        assert!(found.iter().all(|e| !e.released), "{found:?}");
        ledger
            .mark_rows("job-1", &ids, &HashSet::from([1]), true)
            .expect("mark");
        let back = ledger
            .rows_of("job-1", &[("ds-1".into(), "stays".into())])
            .expect("rows");
        assert!(back.iter().all(|r| r.released_row.is_some()));
    }

    #[test]
    fn sets_of_earlier_versions_move_into_the_ledger() {
        let dir = tempfile::tempdir().expect("dir");
        let db = sled::open(dir.path()).expect("db");
        let old = db.open_tree("unit_sets").expect("tree");
        let mut key = b"scenario/a\0stays\0job-7\0".to_vec();
        key.extend_from_slice(&0u64.to_be_bytes());
        let mut value = vec![1u8];
        value.extend_from_slice(&0u64.to_be_bytes());
        value.extend_from_slice(&set(0..30).encode());
        old.insert(key, value).expect("insert");
        let ledger = PopulationLedger::open(&db, |n| (n == "stays").then(|| "ds-1".to_string()))
            .expect("open");
        let (found, _) = ledger.lookup("ds-1", &[0], "x", |_| true).expect("lookup");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].job, "job-7");
        assert!(!db.tree_names().iter().any(|n| n.as_ref() == b"unit_sets"));
    }
}
