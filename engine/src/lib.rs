//! The erhai sandbox: the encrypted dataset store, one locked-down DataFusion session per job,
//! plan lineage, the statistics rewrite and the automatic result checks.
//!
//! Only this crate ever holds decrypted rows. It knows nothing about users, tenants or the
//! network: the gateway tells it which tables a job may read and what to do with the result.

// Every module is the crate's own: what leaves it is the `Engine`'s typed operations and the
// types re-exported below. No code outside can name a data key, a decrypted batch store or
// a way to run a plan that was not checked (see the `compile_fail` examples on `Engine`).
pub(crate) mod aggregate_args;
pub(crate) mod audit;
pub(crate) mod cache;
pub(crate) mod checks;
pub(crate) mod dev_sample;
pub(crate) mod differencing;
pub(crate) mod dp;
pub(crate) mod error;
pub mod export;
pub(crate) mod gate;
pub(crate) mod harden;
pub(crate) mod inline;
pub(crate) mod keys;
pub(crate) mod lineage;
pub(crate) mod masks;
pub(crate) mod prepared;
pub(crate) mod sandbox;
pub(crate) mod sql_error;
pub(crate) mod statistics;
pub(crate) mod store;
pub(crate) mod subqueries;
pub(crate) mod unit_set;
pub(crate) mod unit_stats;
pub(crate) mod withhold;

/// Internals that benchmarks and tests measure directly; built only with the `testing`
/// feature, which only dev-dependencies turn on (never the server binary).
#[cfg(feature = "testing")]
pub mod testing {
    pub use crate::masks::{PseudonymKey, apply_mask, mask_functions};
    pub use crate::sandbox::{CheckedQuery, Executed, Sandbox};
    pub use crate::statistics::{UnitMap, UnitSource, add_statistics};
}

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use erhai_policies::{DatasetPolicy, PlanLineage, PlanVerdict, ReleaseRules};

pub use audit::LinearAudit;
pub use checks::{CheckReport, ResultShape, RowPopulation, RowUnits, SUBQUERY_ROWS};
pub use dev_sample::{BuiltSample, SampleSpec};
pub use differencing::EarlierRow;
pub use dp::DpRequest;
pub use error::{EngineError, Result};
pub use keys::{MasterKey, RecordSealer, SEALED_PREFIX};
pub use prepared::{Disclosure, Prepared};
pub use sandbox::{Limits, MAX_SQL_BYTES};
pub use statistics::Source;
pub use unit_set::UnitSet;
pub use withhold::{WithheldRow, WithholdError, withhold};

use keys::DataKey;
use sandbox::{Sandbox, TableSpec};

/// A registered dataset version as the gateway stores it.
#[derive(Clone, Debug)]
pub struct StoredTable {
    /// Table name in queries.
    pub name: String,
    /// Dataset id.
    pub dataset_id: String,
    /// Version number.
    pub version: u32,
    /// Data key wrapped by the master key.
    pub wrapped_key: Vec<u8>,
    /// Schema recorded at registration.
    pub schema: SchemaRef,
    /// Column policy.
    pub policy: DatasetPolicy,
    /// Which copy the table reads: the data itself or its development sample.
    pub env: Env,
}

/// The two environments. They never share a session, a catalog or result storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Env {
    /// Full data; results go to review.
    #[default]
    Prod,
    /// The development samples; results return at once.
    Dev,
}

/// The outcome of a production query that ran.
#[derive(Debug)]
pub struct QueryOutcome {
    /// The plan verdict (allowed).
    pub verdict: PlanVerdict,
    /// Lineage of the plan.
    pub lineage: PlanLineage,
    /// Automatic check report.
    pub report: CheckReport,
    /// Key of the quarantined result, wrapped.
    pub result_wrapped_key: Vec<u8>,
    /// The privacy units behind every computed row, for the differencing checks.
    pub units: Vec<RowUnits>,
}

/// A development query's outcome: what its plan reads, the plan check's verdict, and the rows
/// when it allowed the query (none when it refused).
#[derive(Debug)]
pub struct DevRun {
    /// Lineage of the plan.
    pub lineage: PlanLineage,
    /// The plan verdict.
    pub verdict: PlanVerdict,
    /// The rows: their schema and batches.
    pub rows: Option<(Arc<Schema>, Vec<RecordBatch>)>,
}

/// An upload in progress: rows are encrypted as they arrive.
pub struct Upload {
    writer: store::EncryptedWriter,
    /// The data key, wrapped, to be committed with the dataset record.
    pub wrapped_key: Vec<u8>,
    /// The schema every batch must have.
    pub schema: SchemaRef,
}

impl Upload {
    /// Appends a batch, which must have the upload's schema.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(EngineError::BadData(
                "a record batch's schema differs from the first batch's schema".into(),
            ));
        }
        self.writer.write(batch)
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.writer.rows()
    }

    /// Makes the file durable; returns its size.
    pub fn finish(self) -> Result<u64> {
        self.writer.finish()
    }
}

/// The engine: owns the data directory's files and the master key.
///
/// Its operations are the only way to data: a query is parsed, checked, rewritten, run, checked
/// again and quarantined in one call, and the compiler keeps every other way closed to code
/// outside this crate (`make test` runs these examples):
///
/// ```compile_fail,E0603
/// // A data key cannot be named…
/// let _key: Option<erhai_engine::keys::DataKey> = None;
/// ```
///
/// ```compile_fail,E0624
/// // …nor unwrapped from the master key.
/// fn unwrap(master: &erhai_engine::MasterKey) {
///     let _ = master.unwrap_key(&[], "dataset/v1");
/// }
/// ```
///
/// ```compile_fail,E0599
/// // No sandbox that plans and runs step by step: its rows are unchecked.
/// async fn run(engine: &erhai_engine::Engine) {
///     let _ = engine.sandbox(&[], "scope").await;
/// }
/// ```
///
/// ```compile_fail,E0603
/// // No reader of a version's encrypted files.
/// use erhai_engine::store::read_encrypted;
/// ```
///
/// ```
/// // What the gateway does use: checked operations and sealed records.
/// fn sealer(master: &erhai_engine::MasterKey) -> erhai_engine::RecordSealer {
///     master.record_sealer()
/// }
/// ```
pub struct Engine {
    data_dir: PathBuf,
    master: MasterKey,
    limits: Limits,
    rules: ReleaseRules,
    /// Decrypted batches of hot dataset versions (`Limits::cache_bytes`; none when 0).
    cache: Option<Arc<cache::BatchCache>>,
    /// Datasets stored and scanned unencrypted (benchmarks only, see the feature).
    #[cfg(feature = "bench-plaintext")]
    plaintext: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.data_dir)
            .field("limits", &self.limits)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// Set comparisons one job's differencing check may make (a few seconds at most).
pub const DIFFERENCING_BUDGET: u64 = 5_000_000;

/// Units at the start of every released population by which the ledger finds it again: two
/// populations differing by fewer than k units share one of their k smallest, so a threshold
/// up to this many is checked exactly.
pub const LEDGER_PREFIX: usize = 64;

/// Why the store of earlier releases could not answer (its own error, kept as the source).
pub type ReleasesError = Box<dyn std::error::Error + Send + Sync>;

/// The populations of earlier releases, found by unit.
pub trait Releases: Send + Sync {
    /// Every population of an earlier release over `dataset` (the name the job's query uses)
    /// that holds one of `units` among its [`LEDGER_PREFIX`] smallest; `Ok((rows, false))`
    /// when the lookup stopped at its bound before finding them all.
    fn lookup(
        &self,
        dataset: &str,
        units: &[u32],
    ) -> std::result::Result<(Vec<differencing::EarlierRow>, bool), ReleasesError>;

    /// The linear audit of the figures released over `dataset` so far (none: nothing yet).
    fn audit(
        &self,
        dataset: &str,
    ) -> std::result::Result<Option<audit::LinearAudit>, ReleasesError>;
}

/// No earlier releases.
pub struct NoReleases;

impl Releases for NoReleases {
    fn lookup(
        &self,
        _: &str,
        _: &[u32],
    ) -> std::result::Result<(Vec<differencing::EarlierRow>, bool), ReleasesError> {
        Ok((Vec::new(), true))
    }

    fn audit(&self, _: &str) -> std::result::Result<Option<audit::LinearAudit>, ReleasesError> {
        Ok(None)
    }
}

/// The differencing findings of a result's populations, against each other and the earlier
/// releases that share units with them. A check that could not be completed fails every row
/// (a finding on row [`SUBQUERY_ROWS`]).
pub fn differencing_findings(
    units: &[RowUnits],
    rules: &ReleaseRules,
    releases: &dyn Releases,
) -> Result<Vec<(u64, erhai_policies::Finding)>> {
    let datasets: std::collections::BTreeSet<&str> = units
        .iter()
        .flat_map(|r| r.sets.iter().map(|p| p.dataset.as_str()))
        .collect();
    let prefix = usize::try_from(rules.k)
        .unwrap_or(usize::MAX)
        .min(LEDGER_PREFIX);
    let mut budget = DIFFERENCING_BUDGET;
    let mut out = Vec::new();
    for d in datasets {
        // Earlier populations that could differ from a new one by fewer than k share one of
        // its smallest units; those that could be parts of a new released total share its
        // smallest unit with one of the total's units.
        let mut probe: Vec<u32> = Vec::new();
        for r in units {
            for p in r.sets.iter().filter(|p| p.dataset == d) {
                probe.extend_from_slice(p.set.prefix(prefix));
                if r.released_row.is_some() && p.source == statistics::Source::Group {
                    probe.extend(p.set.iter());
                }
            }
        }
        probe.sort_unstable();
        probe.dedup();
        let (earlier, complete) = releases.lookup(d, &probe).map_err(EngineError::Releases)?;
        let o = differencing::check(d, units, &earlier, rules, budget);
        budget = budget.saturating_sub(o.comparisons);
        out.extend(o.flags);
        // Combinations of more than two figures: the linear audit.
        let state = releases
            .audit(d)
            .map_err(EngineError::Releases)?
            .unwrap_or_default();
        let any_released = units
            .iter()
            .any(|r| r.row < checks::SUBQUERY_ROWS && r.released_row.is_some());
        let figures: Vec<(u64, Vec<&unit_set::UnitSet>)> = units
            .iter()
            .filter(|r| {
                r.released_row.is_some() || (r.row >= checks::SUBQUERY_ROWS && any_released)
            })
            .map(|r| {
                (
                    r.row,
                    r.sets
                        .iter()
                        .filter(|p| p.dataset == d && p.figure)
                        .map(|p| &p.set)
                        .collect(),
                )
            })
            .collect();
        let audited = state.check(&figures, rules.k);
        for (row, n) in audited.isolating {
            out.push((
                row,
                erhai_policies::Finding::fail(
                    "linear-combination",
                    format!(
                        "its figures, combined with other released figures over {d}, isolate \
                         {n} unit(s) (fewer than k = {}): a sum or difference of released \
                         counts or sums would disclose them",
                        rules.k
                    ),
                ),
            ));
        }
        if audited.exhausted {
            out.push((
                checks::SUBQUERY_ROWS,
                erhai_policies::Finding::fail(
                    "differencing-incomplete",
                    format!(
                        "the linear audit over {d} stopped at its bound of work or time ({} units, rank {}): a \
                         result that was not audited against every release over the same data \
                         is withheld",
                        state.units(),
                        state.rank()
                    ),
                ),
            ));
        }
        if o.exhausted || !complete {
            // Rows cannot be named: nothing of the result may pass an incomplete check.
            out.push((
                checks::SUBQUERY_ROWS,
                erhai_policies::Finding::fail(
                    "differencing-incomplete",
                    format!(
                        "the differencing check over {d} stopped at its bound ({} comparisons, \
                         {} earlier populations): a result that was not compared with every \
                         release over the same data is withheld; narrow the query",
                        o.comparisons,
                        earlier.len()
                    ),
                ),
            ));
        }
    }
    Ok(out)
}

/// The key object of a dataset version: bound into its key wrapping and its files' AAD.
pub fn dataset_key_object(dataset_id: &str, version: u32) -> String {
    format!("{dataset_id}/v{version}")
}

/// The key object of a dataset version's development sample.
pub fn dev_key_object(dataset_id: &str, version: u32) -> String {
    format!("dev/{dataset_id}/v{version}")
}

fn result_key_object(job_id: &str) -> String {
    format!("result/{job_id}")
}

impl Engine {
    /// An engine over `data_dir`.
    pub fn new(
        data_dir: &Path,
        master: MasterKey,
        limits: Limits,
        rules: ReleaseRules,
    ) -> Result<Engine> {
        rules.validate()?;
        Ok(Engine {
            data_dir: data_dir.to_path_buf(),
            master,
            cache: (limits.cache_bytes > 0)
                .then(|| Arc::new(cache::BatchCache::new(limits.cache_bytes))),
            limits,
            rules,
            #[cfg(feature = "bench-plaintext")]
            plaintext: false,
        })
    }

    /// This engine, storing and scanning datasets without encryption: only for measuring what
    /// encryption costs (results stay encrypted). The server never builds this feature.
    #[cfg(feature = "bench-plaintext")]
    pub fn plaintext_for_benchmarks(mut self) -> Engine {
        self.plaintext = true;
        self
    }

    /// Bytes of decrypted batches the cache holds (0 without a cache).
    pub fn cached_bytes(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.bytes())
    }

    /// The batch cache's hits and misses since start ((0, 0) without a cache).
    pub fn cache_hits_and_misses(&self) -> (u64, u64) {
        self.cache.as_ref().map_or((0, 0), |c| c.hits_and_misses())
    }

    /// The sealer of the platform's metadata records (derived from the master key).
    pub fn record_sealer(&self) -> RecordSealer {
        self.master.record_sealer()
    }

    /// The release rules in force.
    pub fn rules(&self) -> &ReleaseRules {
        &self.rules
    }

    /// Starts storing a new dataset version after checking the policy against the schema.
    pub fn begin_upload(
        &self,
        dataset_id: &str,
        version: u32,
        schema: SchemaRef,
        policy: &DatasetPolicy,
    ) -> Result<Upload> {
        let columns: Vec<(String, String)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().to_string()))
            .collect();
        policy.validate_against(&columns)?;
        let key = DataKey::generate()?;
        let object = dataset_key_object(dataset_id, version);
        let wrapped_key = self.master.wrap(&key, &object)?;
        let dir = store::dataset_dir(&self.data_dir, dataset_id, version);
        #[cfg(feature = "bench-plaintext")]
        let writer = if self.plaintext {
            store::EncryptedWriter::create_plaintext_for_benchmarks(&dir, schema.clone())?
        } else {
            store::EncryptedWriter::create(&dir, schema.clone(), &key, &object)?
        };
        #[cfg(not(feature = "bench-plaintext"))]
        let writer = store::EncryptedWriter::create(&dir, schema.clone(), &key, &object)?;
        Ok(Upload {
            writer,
            wrapped_key,
            schema,
        })
    }

    /// Builds the development sample of a stored (production) table and returns the table that
    /// reads it, with the number of rows drawn.
    pub fn build_dev_sample(
        &self,
        table: &StoredTable,
        spec: &SampleSpec,
    ) -> Result<(StoredTable, u64)> {
        let source_object = dataset_key_object(&table.dataset_id, table.version);
        let source_key = self.master.unwrap_key(&table.wrapped_key, &source_object)?;
        let object = dev_key_object(&table.dataset_id, table.version);
        let key = DataKey::generate()?;
        let wrapped_key = self.master.wrap(&key, &object)?;
        let dir = store::dev_dir(&self.data_dir, &table.dataset_id, table.version);
        let source = store::dataset_dir(&self.data_dir, &table.dataset_id, table.version)
            .join(store::DATA_FILE);
        // One pseudonym key for all samples, so identifiers still join across datasets.
        let pseudonym = self.master.pseudonym_key("dev-sample");
        let built = dev_sample::build(
            dev_sample::SampleIo {
                source: &source,
                source_key: &source_key,
                source_object: &source_object,
                dir: &dir,
                key: &key,
                object: &object,
            },
            &table.policy,
            spec,
            &source_object,
            &pseudonym,
        )?;
        Ok((
            StoredTable {
                name: table.name.clone(),
                dataset_id: table.dataset_id.clone(),
                version: table.version,
                wrapped_key,
                schema: built.schema,
                policy: built.policy,
                env: Env::Dev,
            },
            built.rows,
        ))
    }

    /// Checks a development query over samples without running it: its verdict, and the
    /// columns its rows would have.
    pub async fn check_dev_query(
        &self,
        sql: &str,
        tables: &[StoredTable],
        scope: &str,
    ) -> Result<(PlanVerdict, Arc<Schema>)> {
        if let Some(t) = tables.iter().find(|t| t.env != Env::Dev) {
            return Err(EngineError::Forbidden(format!(
                "table {} is production data; development queries read samples only",
                t.name
            )));
        }
        let sandbox = self.sandbox_for(tables, scope).await?;
        let (_, verdict, plan) = sandbox.check(sql, false).await?;
        Ok((verdict, Arc::new(plan.schema().as_arrow().clone())))
    }

    /// Runs a development query over samples: checked (columns and functions), not required
    /// to aggregate, not reviewed; rows return to the caller and are stored nowhere.
    pub async fn run_dev_query(
        &self,
        sql: &str,
        tables: &[StoredTable],
        scope: &str,
    ) -> Result<DevRun> {
        if let Some(t) = tables.iter().find(|t| t.env != Env::Dev) {
            return Err(EngineError::Forbidden(format!(
                "table {} is production data; development queries read samples only",
                t.name
            )));
        }
        let sandbox = self.sandbox_for(tables, scope).await?;
        let (lineage, verdict, plan) = sandbox.check(sql, false).await?;
        if !verdict.allowed() {
            return Ok(DevRun {
                lineage,
                verdict,
                rows: None,
            });
        }
        let schema = Arc::new(plan.schema().as_arrow().clone());
        let batches = sandbox.execute_plan(harden::harden(plan)?).await?;
        let schema = match batches.first() {
            Some(b) => b.schema(),
            None => schema,
        };
        Ok(DevRun {
            lineage,
            verdict,
            rows: Some((schema, batches)),
        })
    }

    /// The whole population of a stored table: every privacy unit it holds, and the digest of
    /// that population's definition (every row, no condition). A dataset's row count is
    /// public, so the differencing checks count this population as released.
    pub async fn whole_population(&self, table: &StoredTable) -> Result<(unit_set::UnitSet, u64)> {
        let sandbox = self
            .sandbox_for(std::slice::from_ref(table), "registration")
            .await?;
        let units = sandbox.all_units(&table.name).await?;
        let definition = statistics::whole_dataset_definition(&table.name);
        Ok((units, checks::fingerprint(&definition, &[])))
    }

    /// Removes a dataset version's files (an upload that failed before commit).
    pub fn discard_dataset(&self, dataset_id: &str) {
        let _ = std::fs::remove_dir_all(self.data_dir.join("datasets").join(dataset_id));
        let _ = std::fs::remove_dir_all(self.data_dir.join("dev").join(dataset_id));
    }

    /// Removes the files of one version of a dataset and of its sample (a new version whose
    /// upload failed before commit); the dataset's other versions stay.
    pub fn discard_version(&self, dataset_id: &str, version: u32) {
        let _ = std::fs::remove_dir_all(store::dataset_dir(&self.data_dir, dataset_id, version));
        self.discard_dev_sample(dataset_id, version);
    }

    /// Removes the development sample of a version that a newer one replaced (no session
    /// reads it again).
    pub fn discard_dev_sample(&self, dataset_id: &str, version: u32) {
        let _ = std::fs::remove_dir_all(store::dev_dir(&self.data_dir, dataset_id, version));
        if let Some(cache) = &self.cache {
            cache.forget(&dev_key_object(dataset_id, version));
        }
    }

    /// Deletes every file of a dataset (all versions and samples) and its cached batches;
    /// returns how many files were removed. Unlike [`Engine::discard_dataset`] a failure is an
    /// error: the caller must not report a deletion that left data behind.
    pub fn delete_dataset(&self, dataset_id: &str) -> Result<u64> {
        let mut removed = 0u64;
        for sub in ["datasets", "dev"] {
            let dir = self.data_dir.join(sub).join(dataset_id);
            if !dir.exists() {
                continue;
            }
            removed += store::count_files(&dir).map_err(EngineError::io("counting files"))?;
            std::fs::remove_dir_all(&dir).map_err(EngineError::io("removing a dataset"))?;
        }
        if let Some(cache) = &self.cache {
            cache.forget(&format!("{dataset_id}/v"));
            cache.forget(&format!("dev/{dataset_id}/v"));
        }
        Ok(removed)
    }

    /// A sandbox over `tables`, for benchmarks and tests that plan, check and run queries
    /// step by step (feature `testing`).
    #[cfg(feature = "testing")]
    pub async fn sandbox(&self, tables: &[StoredTable], scope: &str) -> Result<Sandbox> {
        self.sandbox_for(tables, scope).await
    }

    /// A sandbox over `tables` (their keys unwrapped here), for planning and checking;
    /// `scope` keys its pseudonyms.
    pub(crate) async fn sandbox_for(&self, tables: &[StoredTable], scope: &str) -> Result<Sandbox> {
        let mut specs = Vec::with_capacity(tables.len());
        for t in tables {
            let (object, dir) = match t.env {
                Env::Prod => (
                    dataset_key_object(&t.dataset_id, t.version),
                    store::dataset_dir(&self.data_dir, &t.dataset_id, t.version),
                ),
                Env::Dev => (
                    dev_key_object(&t.dataset_id, t.version),
                    store::dev_dir(&self.data_dir, &t.dataset_id, t.version),
                ),
            };
            let key = self.master.unwrap_key(&t.wrapped_key, &object)?;
            let cached = match &self.cache {
                Some(cache) => self.cached(cache, &dir, &key, &object).await?,
                None => None,
            };
            specs.push(TableSpec {
                name: t.name.clone(),
                dir,
                key,
                cached,
                key_object: object,
                schema: t.schema.clone(),
                policy: t.policy.clone(),
                unit_key: self.master.unit_key(&t.dataset_id),
                #[cfg(feature = "bench-plaintext")]
                plaintext: self.plaintext,
            });
        }
        Sandbox::new(
            specs,
            self.limits.clone(),
            &self.master.pseudonym_key(scope),
        )
        .await
    }

    /// The decrypted batches of one version, from `cache` or loaded into it (on a blocking
    /// thread: the first job over a version decodes all of it).
    async fn cached(
        &self,
        cache: &Arc<cache::BatchCache>,
        dir: &Path,
        key: &DataKey,
        object: &str,
    ) -> Result<Option<cache::Partitions>> {
        let (cache, dir, key, object) = (
            cache.clone(),
            dir.to_path_buf(),
            key.clone(),
            object.to_string(),
        );
        let parts = self.limits.target_partitions.max(1);
        #[cfg(feature = "bench-plaintext")]
        let plaintext = self.plaintext;
        #[cfg(not(feature = "bench-plaintext"))]
        let plaintext = false;
        tokio::task::spawn_blocking(move || {
            cache.get_or_load(&object, || {
                let key = (!plaintext).then_some((&key, object.as_str()));
                cache::load(&dir, key, parts)
            })
        })
        .await
        .map_err(|e| EngineError::Execution(format!("cache loader: {e}")))?
    }

    /// Runs a production query under the engine's release rules, with no earlier releases to
    /// difference against (tests and benchmarks).
    pub async fn run_query(
        &self,
        job_id: &str,
        sql: &str,
        tables: &[StoredTable],
        scope: &str,
    ) -> Result<QueryOutcome> {
        let disclosure = prepared::Disclosure::Checked(self.rules.clone());
        let prepared = self.prepare(sql, tables, scope, disclosure).await?;
        self.run(job_id, prepared, &NoReleases).await
    }

    pub(crate) fn quarantine(
        &self,
        job_id: &str,
        schema: Arc<Schema>,
        batches: &[RecordBatch],
    ) -> Result<Vec<u8>> {
        let key = DataKey::generate()?;
        let object = result_key_object(job_id);
        let wrapped = self.master.wrap(&key, &object)?;
        let dir = store::result_dir(&self.data_dir, job_id);
        let mut w = store::EncryptedWriter::create(&dir, schema, &key, &object)?;
        for b in batches {
            w.write(b)?;
        }
        w.finish()?;
        Ok(wrapped)
    }

    /// Reads a quarantined result.
    pub fn read_result(
        &self,
        job_id: &str,
        wrapped_key: &[u8],
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let object = result_key_object(job_id);
        let key = self.master.unwrap_key(wrapped_key, &object)?;
        let path = store::result_dir(&self.data_dir, job_id).join(store::DATA_FILE);
        store::read_encrypted(&path, &key, &object)
    }

    /// Removes files half-written by a crash; returns how many.
    pub fn remove_orphans(&self) -> Result<usize> {
        store::remove_orphans(&self.data_dir)
    }
}
