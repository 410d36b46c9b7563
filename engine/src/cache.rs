//! A memory-bounded cache of decrypted Arrow batches of hot dataset versions.
//!
//! Decrypting and decoding Parquet is most of a scan's cost, and every job used to pay it again.
//! With a budget (`Limits::cache_bytes`, off by default), the first job over a dataset version
//! decodes all of it once, in parallel, and later jobs scan the batches in memory. The batches
//! stay in this process only: spilling is disabled and nothing is written anywhere, so the
//! clear text lives exactly where it lives while a query runs. A job still sees only the tables
//! the gateway gave it: the cache is keyed by the version's key object, and a sandbox registers
//! only its own tables, narrowed to the columns its scenario approved. Least recently used
//! versions leave first; a version larger than the whole budget is never cached (and not loaded
//! again to find out).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};

use crate::error::{EngineError, Result};
use crate::keys::DataKey;
use crate::store;

/// A version's batches, split into partitions that scan in parallel.
pub type Partitions = Arc<Vec<Vec<RecordBatch>>>;

/// The cache of one engine.
#[derive(Debug)]
pub struct BatchCache {
    budget: usize,
    state: Mutex<State>,
    /// Lookups answered from memory, and lookups that decoded the version (or found it too
    /// big): operators size `cache_mib` by these.
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, (Partitions, usize)>,
    /// Least recently used first.
    order: VecDeque<String>,
    bytes: usize,
    /// Versions found larger than the budget.
    too_big: HashSet<String>,
}

impl BatchCache {
    /// A cache holding at most `budget` bytes of batches.
    pub fn new(budget: usize) -> BatchCache {
        BatchCache {
            budget,
            state: Mutex::new(State::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves only bookkeeping behind: keep using it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The batches of the version whose key object is `object`, from the cache or loaded by
    /// `load` (outside the lock) and kept; `None` if the version does not fit the budget.
    pub fn get_or_load(
        &self,
        object: &str,
        load: impl FnOnce() -> Result<Vec<Vec<RecordBatch>>>,
    ) -> Result<Option<Partitions>> {
        {
            let mut s = self.state();
            if s.too_big.contains(object) {
                self.misses.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
            if let Some((p, _)) = s.entries.get(object).cloned() {
                s.order.retain(|o| o != object);
                s.order.push_back(object.to_string());
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(p));
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let partitions = load()?;
        let bytes: usize = partitions
            .iter()
            .flatten()
            .map(RecordBatch::get_array_memory_size)
            .sum();
        let mut s = self.state();
        if bytes > self.budget {
            s.too_big.insert(object.to_string());
            return Ok(None);
        }
        let partitions = Arc::new(partitions);
        if s.entries.contains_key(object) {
            // Another job loaded it meanwhile; keep theirs.
            return Ok(s.entries.get(object).map(|(p, _)| p.clone()));
        }
        while s.bytes + bytes > self.budget {
            let Some(oldest) = s.order.pop_front() else {
                break;
            };
            if let Some((_, b)) = s.entries.remove(&oldest) {
                s.bytes -= b;
            }
        }
        s.entries
            .insert(object.to_string(), (partitions.clone(), bytes));
        s.order.push_back(object.to_string());
        s.bytes += bytes;
        Ok(Some(partitions))
    }

    /// Drops every version whose key object starts with `prefix` (a dataset deleted, a sample
    /// replaced): nothing of it stays in memory.
    pub fn forget(&self, prefix: &str) {
        let mut s = self.state();
        let gone: Vec<String> = s
            .entries
            .keys()
            .filter(|o| o.starts_with(prefix))
            .cloned()
            .collect();
        for object in gone {
            if let Some((_, b)) = s.entries.remove(&object) {
                s.bytes -= b;
            }
            s.order.retain(|o| *o != object);
        }
        s.too_big.retain(|o| !o.starts_with(prefix));
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.state().bytes
    }

    /// Lookups answered from memory and lookups that were not, since the engine started.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

/// Decrypts and decodes `dir`'s data file into `parts` partitions, one thread each, row groups
/// dealt round-robin. `key` is `None` only for unencrypted benchmark files.
pub fn load(
    dir: &Path,
    key: Option<(&DataKey, &str)>,
    parts: usize,
) -> Result<Vec<Vec<RecordBatch>>> {
    let path = dir.join(store::DATA_FILE);
    let open = || -> Result<ParquetRecordBatchReaderBuilder<File>> {
        let file =
            File::open(&path).map_err(EngineError::io(format!("opening {}", path.display())))?;
        let mut options = ArrowReaderOptions::new();
        if let Some((key, object)) = key {
            options =
                options.with_file_decryption_properties(store::decryption_properties(key, object)?);
        }
        Ok(ParquetRecordBatchReaderBuilder::try_new_with_options(
            file, options,
        )?)
    };
    let groups = open()?.metadata().num_row_groups();
    let parts = parts.clamp(1, groups.max(1));
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..parts)
            .map(|p| {
                let open = &open;
                scope.spawn(move || -> Result<Vec<RecordBatch>> {
                    let mine: Vec<usize> = (p..groups).step_by(parts).collect();
                    if mine.is_empty() {
                        return Ok(Vec::new());
                    }
                    let reader = open()?
                        .with_row_groups(mine)
                        .with_batch_size(8192)
                        .build()?;
                    reader
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(|e| EngineError::Parquet(e.to_string()))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .map_err(|_| EngineError::Execution("a cache loader panicked".into()))?
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    fn batch(rows: usize) -> Vec<Vec<RecordBatch>> {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let col = Int64Array::from_iter_values(0..rows as i64);
        vec![vec![
            RecordBatch::try_new(schema, vec![Arc::new(col)]).expect("batch"),
        ]]
    }

    #[test]
    fn keeps_within_budget_evicting_the_least_recently_used() {
        let one = batch(1000)[0][0].get_array_memory_size();
        let cache = BatchCache::new(2 * one + one / 2);
        let mut loads = 0;
        let get = |o: &str, loads: &mut usize| {
            cache
                .get_or_load(o, || {
                    *loads += 1;
                    Ok(batch(1000))
                })
                .expect("load")
                .is_some()
        };
        assert!(get("a", &mut loads));
        assert!(get("b", &mut loads));
        assert!(get("a", &mut loads)); // hit: a is now the most recent
        assert_eq!(loads, 2);
        assert_eq!(cache.hits_and_misses(), (1, 2));
        assert!(get("c", &mut loads)); // evicts b
        assert!(get("a", &mut loads));
        assert_eq!(loads, 3);
        assert!(get("b", &mut loads));
        assert_eq!(loads, 4);
        assert!(cache.bytes() <= 2 * one + one / 2);
    }

    #[test]
    fn forgetting_a_dataset_drops_its_versions_and_nothing_else() {
        let one = batch(100)[0][0].get_array_memory_size();
        let cache = BatchCache::new(10 * one);
        for o in ["ds-1/v1", "ds-1/v2", "ds-10/v1"] {
            cache.get_or_load(o, || Ok(batch(100))).expect("load");
        }
        cache.forget("ds-1/v");
        assert_eq!(cache.bytes(), one);
        let mut reloaded = Vec::new();
        for o in ["ds-1/v1", "ds-10/v1"] {
            cache
                .get_or_load(o, || {
                    reloaded.push(o);
                    Ok(batch(100))
                })
                .expect("load");
        }
        assert_eq!(reloaded, vec!["ds-1/v1"]);
    }

    #[test]
    fn a_version_larger_than_the_budget_is_loaded_once_and_never_kept() {
        let cache = BatchCache::new(16);
        let mut loads = 0;
        for _ in 0..3 {
            let got = cache
                .get_or_load("big", || {
                    loads += 1;
                    Ok(batch(1000))
                })
                .expect("load");
            assert!(got.is_none());
        }
        assert_eq!(loads, 1);
        assert_eq!(cache.bytes(), 0);
    }
}
