//! The sandbox: one locked-down DataFusion session per job. Its catalog holds only the tables the
//! job may read; SQL is parsed with DDL, DML and statements denied; there are no URL tables, no
//! table functions, no information_schema; memory, time and result size are limited; spilling to
//! disk is off (nothing decrypted ever reaches disk).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::common::config::{EncryptionFactoryOptions, TableParquetOptions};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::SessionStateDefaults;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::parquet_encryption::EncryptionFactory;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::parquet::encryption::decrypt::FileDecryptionProperties;
use datafusion::parquet::encryption::encrypt::FileEncryptionProperties;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use erhai_policies::{DatasetPolicy, PlanLineage, PlanVerdict, check_plan};
use futures::StreamExt;

use crate::error::{EngineError, Result};
use crate::harden::harden;
use crate::keys::DataKey;
use crate::lineage::plan_lineage;
use crate::masks::{PseudonymKey, mask_functions};
use crate::statistics::{HIDDEN_PREFIX, HiddenColumns, UnitMap, UnitSource, add_statistics};
use crate::store::decryption_properties;
use crate::subqueries::{SidePlan, side_plans};
use crate::unit_stats::UnitKey;

pub use crate::gate::MAX_SQL_BYTES;

const FACTORY_ID: &str = "erhai-keyring";
const KEY_OPTION: &str = "key_id";

/// Per-job resource limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Memory pool for query execution, bytes.
    pub memory_bytes: usize,
    /// Wall-clock limit for planning and execution.
    pub timeout: Duration,
    /// Maximum rows a result may have before checks.
    pub max_rows: u64,
    /// Execution parallelism.
    pub target_partitions: usize,
    /// Bytes of decrypted batches the engine keeps for later jobs (0: no cache). Shared by all
    /// jobs of an engine, outside the per-job pool.
    pub cache_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 2 << 30,
            timeout: Duration::from_secs(120),
            max_rows: 100_000,
            target_partitions: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            cache_bytes: 0,
        }
    }
}

/// A dataset version the job may read.
#[derive(Clone, Debug)]
pub struct TableSpec {
    /// Table name in the query (the dataset's name).
    pub name: String,
    /// Directory of the version's encrypted Parquet files.
    pub dir: PathBuf,
    /// The key object (`<dataset id>/v<version>`), bound into the files' AAD.
    pub key_object: String,
    /// The version's data key, unwrapped.
    pub key: DataKey,
    /// The schema recorded at registration.
    pub schema: SchemaRef,
    /// The column policy.
    pub policy: DatasetPolicy,
    /// The key of the dataset's privacy-unit index.
    pub unit_key: UnitKey,
    /// The version's decrypted batches, when the engine's cache holds them: scanned in memory
    /// instead of the files.
    pub cached: Option<crate::cache::Partitions>,
    /// The files are unencrypted (benchmarks only).
    #[cfg(feature = "bench-plaintext")]
    pub plaintext: bool,
}

/// A table over cached batches, holding only the columns of `schema` (the scenario's): `None`
/// when the batches do not fit the schema, and the files are read instead.
fn in_memory(
    schema: &SchemaRef,
    cached: Option<&Vec<Vec<RecordBatch>>>,
) -> Option<datafusion::datasource::MemTable> {
    let partitions = cached?
        .iter()
        .map(|part| {
            part.iter()
                .map(|b| {
                    let columns = schema
                        .fields()
                        .iter()
                        .map(|f| b.column_by_name(f.name()).cloned())
                        .collect::<Option<Vec<_>>>()?;
                    RecordBatch::try_new(schema.clone(), columns).ok()
                })
                .collect::<Option<Vec<_>>>()
        })
        .collect::<Option<Vec<_>>>()?;
    datafusion::datasource::MemTable::try_new(schema.clone(), partitions).ok()
}

/// Data keys of the job's tables, resolved by key id when DataFusion opens a file. Keys stay in
/// this process's memory: plans and configuration carry only the key id.
struct KeyRing {
    keys: HashMap<String, DataKey>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyRing({} keys, <redacted>)", self.keys.len())
    }
}

#[async_trait]
impl EncryptionFactory for KeyRing {
    async fn get_file_encryption_properties(
        &self,
        _config: &EncryptionFactoryOptions,
        _schema: &SchemaRef,
        _file_path: &ObjectPath,
    ) -> datafusion::error::Result<Option<Arc<FileEncryptionProperties>>> {
        Err(datafusion::error::DataFusionError::Plan(
            "the sandbox never writes files".into(),
        ))
    }

    async fn get_file_decryption_properties(
        &self,
        config: &EncryptionFactoryOptions,
        _file_path: &ObjectPath,
    ) -> datafusion::error::Result<Option<Arc<FileDecryptionProperties>>> {
        let id = config.options.get(KEY_OPTION).ok_or_else(|| {
            datafusion::error::DataFusionError::Plan("table has no key id".into())
        })?;
        let key = self.keys.get(id).ok_or_else(|| {
            datafusion::error::DataFusionError::Plan(format!("no key for {id} in this job"))
        })?;
        decryption_properties(key, id)
            .map(Some)
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))
    }
}

/// Scalar functions that exist in the sandbox. Anything else does not.
pub const SCALAR_FUNCTIONS: &[&str] = &[
    "abs",
    "ceil",
    "floor",
    "round",
    "trunc",
    "power",
    "pow",
    "sqrt",
    "cbrt",
    "ln",
    "log",
    "log2",
    "log10",
    "exp",
    "signum",
    "greatest",
    "least",
    "coalesce",
    "nullif",
    "nvl",
    "nvl2",
    "isnan",
    "iszero",
    "upper",
    "lower",
    "trim",
    "btrim",
    "ltrim",
    "rtrim",
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "substr",
    "substring",
    "left",
    "right",
    "concat",
    "concat_ws",
    "replace",
    "lpad",
    "rpad",
    "starts_with",
    "ends_with",
    "strpos",
    "instr",
    "split_part",
    "reverse",
    "repeat",
    "initcap",
    "date_trunc",
    "date_part",
    "datepart",
    "date_bin",
    "to_date",
    "to_char",
    "make_date",
    "to_timestamp",
    "current_date",
    "now",
    "regexp_like",
    "regexp_replace",
    "get_field",
    "arrow_cast",
    "nanvl",
    "mod",
];

/// Aggregate functions that exist in the sandbox. Whether a column may be aggregated with one is
/// the policy's decision; functions that reveal single values are kept so that refusals can name
/// them instead of failing as unknown.
pub const AGGREGATE_FUNCTIONS: &[&str] = &[
    "count",
    "sum",
    "avg",
    "mean",
    "min",
    "max",
    "median",
    "stddev",
    "stddev_samp",
    "stddev_pop",
    "var",
    "var_samp",
    "var_pop",
    "variance",
    "approx_distinct",
    "approx_median",
    "approx_percentile_cont",
    "array_agg",
    "string_agg",
    "first_value",
    "last_value",
    "bool_and",
    "bool_or",
    "grouping",
];

/// One job's sandbox.
pub struct Sandbox {
    ctx: SessionContext,
    tables: HashMap<String, String>,
    units: UnitMap,
    policies: BTreeMap<String, DatasetPolicy>,
    limits: Limits,
}

/// A query that passed the plan check, rewritten to carry its privacy-unit statistics, with
/// its uncorrelated subqueries rewritten to be checked on their own.
pub struct CheckedQuery {
    plan: LogicalPlan,
    visible: Arc<Schema>,
    hidden: HiddenColumns,
    sides: Vec<SidePlan>,
}

impl CheckedQuery {
    /// The columns the analyst's result has, without the hidden statistics.
    pub fn visible_schema(&self) -> Arc<Schema> {
        self.visible.clone()
    }
}

/// An executed query: all rows, statistics attached.
pub struct Executed {
    /// Result batches including the hidden statistics.
    pub batches: Vec<RecordBatch>,
    /// The visible schema.
    pub schema: Arc<Schema>,
    /// What the hidden columns after the visible ones hold.
    pub hidden: HiddenColumns,
    /// Each uncorrelated subquery and its rows.
    pub(crate) sides: Vec<(SidePlan, Vec<RecordBatch>)>,
}

impl Sandbox {
    /// Builds a session holding exactly `tables`.
    /// `pseudonym` keys the `pseudonym()` mask for the job's scope.
    pub(crate) async fn new(
        tables: Vec<TableSpec>,
        limits: Limits,
        pseudonym: &PseudonymKey,
    ) -> Result<Sandbox> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(limits.memory_bytes, 1.0)
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()
            .map_err(|e| EngineError::Execution(e.to_string()))?;
        let keys = tables
            .iter()
            .map(|t| (t.key_object.clone(), t.key.clone()))
            .collect();
        runtime.register_parquet_encryption_factory(FACTORY_ID, Arc::new(KeyRing { keys }));

        let config = SessionConfig::new()
            .with_information_schema(false)
            .with_target_partitions(limits.target_partitions.max(1))
            .with_create_default_catalog_and_schema(true);
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_expr_planners(SessionStateDefaults::default_expr_planners())
            .with_scalar_functions(
                SessionStateDefaults::default_scalar_functions()
                    .into_iter()
                    .filter(|f| SCALAR_FUNCTIONS.contains(&f.name()))
                    // Total (NULL where a value makes them fail) and bounded in output size.
                    .map(crate::harden::total)
                    .chain(mask_functions(pseudonym))
                    .collect(),
            )
            .with_aggregate_functions(
                SessionStateDefaults::default_aggregate_functions()
                    .into_iter()
                    .filter(|f| AGGREGATE_FUNCTIONS.contains(&f.name()))
                    .collect(),
            )
            .with_window_functions(SessionStateDefaults::default_window_functions())
            .with_table_functions(HashMap::new())
            .with_table_factories(HashMap::new())
            .build();
        let ctx = SessionContext::new_with_state(state);

        let mut names = HashMap::new();
        let mut units = HashMap::new();
        let mut policies = BTreeMap::new();
        for t in tables {
            let mut options = TableParquetOptions::default();
            options.crypto.factory_id = Some(FACTORY_ID.to_string());
            options
                .crypto
                .factory_options
                .options
                .insert(KEY_OPTION.to_string(), t.key_object.clone());
            #[cfg(feature = "bench-plaintext")]
            if t.plaintext {
                options = TableParquetOptions::default();
            }
            let table: Arc<dyn datafusion::catalog::TableProvider> =
                match in_memory(&t.schema, t.cached.as_deref()) {
                    Some(table) => Arc::new(table),
                    None => {
                        let format = ParquetFormat::default().with_options(options);
                        let listing =
                            ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
                        let url = ListingTableUrl::parse(format!("{}/", t.dir.display()))
                            .map_err(|e| EngineError::Execution(e.to_string()))?;
                        let config = ListingTableConfig::new(url)
                            .with_listing_options(listing)
                            .with_schema(t.schema.clone());
                        Arc::new(
                            ListingTable::try_new(config)
                                .map_err(|e| EngineError::Execution(e.to_string()))?,
                        )
                    }
                };
            ctx.register_table(t.name.as_str(), table)
                .map_err(|e| EngineError::Execution(e.to_string()))?;
            names.insert(t.name.clone(), t.name.clone());
            units.insert(
                t.name.clone(),
                UnitSource {
                    dataset: t.name.clone(),
                    column: t.policy.privacy_unit.clone(),
                    key: t.unit_key.clone(),
                },
            );
            policies.insert(t.name.clone(), t.policy);
        }
        Ok(Sandbox {
            ctx,
            tables: names,
            units,
            policies,
            limits,
        })
    }

    /// Parses and plans `sql` under the sandbox's SQL options.
    pub async fn plan(&self, sql: &str) -> Result<LogicalPlan> {
        if sql.to_ascii_lowercase().contains(HIDDEN_PREFIX) {
            return Err(EngineError::Forbidden(format!(
                "names starting with `{HIDDEN_PREFIX}` are reserved for erhai's statistics"
            )));
        }
        let statement = crate::gate::gate(sql)?;
        self.known_tables(&statement)?;
        let plan = self
            .ctx
            .state()
            .statement_to_plan(statement)
            .await
            .map_err(planning_error)?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|e| classify(e.to_string()))?;
        // Aggregates see through the derived tables below them (see `inline`).
        crate::inline::inline_into_aggregates(plan)
    }

    /// Every table the statement reads is one the sandbox holds (CTE names aside).
    fn known_tables(&self, statement: &datafusion::sql::parser::Statement) -> Result<()> {
        let normalize = self
            .ctx
            .state()
            .config()
            .options()
            .sql_parser
            .enable_ident_normalization;
        let (relations, _ctes) =
            datafusion::sql::resolve::resolve_table_references(statement, normalize)
                .map_err(planning_error)?;
        for r in relations {
            if !self.tables.contains_key(r.table()) || r.schema().is_some_and(|s| s != "public") {
                return Err(EngineError::UnknownTable {
                    name: r.table().to_string(),
                });
            }
        }
        Ok(())
    }

    /// Plans and checks `sql` without running it. `require_aggregation` is set for production.
    pub async fn check(
        &self,
        sql: &str,
        require_aggregation: bool,
    ) -> Result<(PlanLineage, PlanVerdict, LogicalPlan)> {
        let plan = self.plan(sql).await?;
        let (lineage, verdict) = self.check_plan(&plan, require_aggregation)?;
        Ok((lineage, verdict, plan))
    }

    /// Lineage and verdict of an already planned query.
    pub fn check_plan(
        &self,
        plan: &LogicalPlan,
        require_aggregation: bool,
    ) -> Result<(PlanLineage, PlanVerdict)> {
        let units: HashMap<String, String> = self
            .policies
            .iter()
            .map(|(name, p)| (name.clone(), p.privacy_unit.clone()))
            .collect();
        let lineage = plan_lineage(plan, &self.tables, &units)?;
        let verdict = check_plan(&lineage, &self.policies, require_aggregation);
        Ok((lineage, verdict))
    }

    /// Checks `sql` and, when allowed, rewrites it to compute the hidden statistics; `keep` is
    /// how many of the largest per-unit contributions each sum reports (benchmarks and tests;
    /// jobs go through `Engine::prepare`).
    #[cfg(feature = "testing")]
    pub async fn prepare(&self, sql: &str, keep: usize) -> Result<CheckedQuery> {
        let (_, verdict, plan) = self.check(sql, true).await?;
        if !verdict.allowed() {
            return Err(EngineError::Refused(Box::new(verdict)));
        }
        self.rewrite(&plan, keep)
    }

    /// The statistics rewrite of an allowed plan and of its uncorrelated subqueries: a shape it
    /// cannot follow is refused here, before anything runs (also in a dry run).
    pub(crate) fn rewrite(&self, plan: &LogicalPlan, keep: usize) -> Result<CheckedQuery> {
        let visible = Arc::new(plan.schema().as_arrow().clone());
        let sides = side_plans(plan, &self.units, keep)?
            .into_iter()
            .map(|mut side| {
                side.plan = harden(side.plan)?;
                Ok(side)
            })
            .collect::<Result<Vec<_>>>()?;
        let (plan, hidden) = add_statistics(plan, &self.units, keep)?;
        let plan = harden(plan)?;
        Ok(CheckedQuery {
            plan,
            visible,
            hidden,
            sides,
        })
    }

    /// Runs a checked query, and each of its uncorrelated subqueries on its own, within the
    /// limits.
    pub async fn execute(&self, q: &CheckedQuery) -> Result<Executed> {
        let batches = self.execute_plan(q.plan.clone()).await?;
        let mut sides = Vec::with_capacity(q.sides.len());
        for side in &q.sides {
            let rows = self.execute_plan(side.plan.clone()).await?;
            sides.push((side.clone(), rows));
        }
        // The executed types are the coerced ones (the planner's schema predates type
        // coercion: a CASE of decimals and integers widens once coerced).
        let schema = match batches.first() {
            Some(b) if b.num_columns() >= q.visible.fields().len() => {
                let fields: Vec<_> = b.schema().fields()[..q.visible.fields().len()]
                    .iter()
                    .zip(q.visible.fields())
                    .map(|(actual, named)| {
                        Arc::new(actual.as_ref().clone().with_name(named.name()))
                    })
                    .collect();
                Arc::new(Schema::new(fields))
            }
            _ => q.visible.clone(),
        };
        Ok(Executed {
            batches,
            schema,
            hidden: q.hidden.clone(),
            sides,
        })
    }

    /// Runs a plan the caller has checked and hands each batch to `each`, within the time
    /// limit; for internal plans whose rows never leave the engine (no row limit).
    pub(crate) async fn for_each_batch(
        &self,
        plan: LogicalPlan,
        mut each: impl FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let run = async {
            let df = self
                .ctx
                .execute_logical_plan(plan)
                .await
                .map_err(exec_error)?;
            let mut stream = df.execute_stream().await.map_err(exec_error)?;
            while let Some(b) = stream.next().await {
                each(&b.map_err(exec_error)?)?;
            }
            Ok(())
        };
        tokio::time::timeout(self.limits.timeout, run)
            .await
            .map_err(|_| EngineError::Timeout(self.limits.timeout.as_secs()))?
    }

    /// Every privacy unit of table `name` (the population of all its rows).
    pub(crate) async fn all_units(&self, name: &str) -> Result<crate::unit_set::UnitSet> {
        let source = self
            .units
            .get(name)
            .ok_or_else(|| EngineError::Plan(format!("table `{name}` does not exist")))?;
        let call = crate::unit_stats::unit_set(source.key.clone())
            .call(vec![datafusion::prelude::col(source.column.as_str())]);
        let plan = self
            .ctx
            .table(name)
            .await
            .and_then(|t| t.aggregate(vec![], vec![call.alias("units")]))
            .map_err(|e| EngineError::Plan(e.to_string()))?
            .logical_plan()
            .clone();
        let mut set = None;
        self.for_each_batch(plan, |b| {
            let col = b.column(0);
            if let Some(bin) = arrow::array::AsArray::as_binary_opt::<i32>(col.as_ref())
                && !arrow::array::Array::is_empty(bin)
                && arrow::array::Array::is_valid(bin, 0)
            {
                set = crate::unit_set::UnitSet::decode(bin.value(0));
            }
            Ok(())
        })
        .await?;
        set.ok_or_else(|| EngineError::Execution("the units of a table could not be read".into()))
    }

    /// The plan of `plan` in differential-privacy mode (see [`crate::dp`]).
    pub(crate) fn dp_plan(&self, plan: &LogicalPlan) -> Result<crate::dp::DpPlan> {
        crate::dp::DpPlan::build(plan, &self.units, &self.policies)
    }

    /// Runs a plan the caller has checked, within the time and row limits.
    pub(crate) async fn execute_plan(&self, plan: LogicalPlan) -> Result<Vec<RecordBatch>> {
        let limit = self.limits.max_rows;
        let mut rows = 0u64;
        let mut batches = Vec::new();
        self.for_each_batch(plan, |b| {
            rows += b.num_rows() as u64;
            if rows > limit {
                return Err(EngineError::TooManyRows { limit });
            }
            batches.push(b.clone());
            Ok(())
        })
        .await?;
        Ok(batches)
    }
}

/// Removes quoted values from an execution error: messages such as "cannot cast string '…'"
/// would otherwise carry a protected value out of the sandbox.
pub fn redact_values(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut quoted = false;
    for c in msg.chars() {
        if c == '\'' {
            if !quoted {
                out.push_str("'…'");
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

fn exec_error(e: datafusion::error::DataFusionError) -> EngineError {
    let text = e.to_string();
    if text.contains("panicked") || text.contains("panic") {
        return EngineError::Execution(
            "the query stopped on an internal error (recorded for the operators)".into(),
        );
    }
    EngineError::Execution(redact_values(&text))
}

/// A planning error as the sandbox reports it: an unknown column with its name and the
/// columns in scope, the rest by category.
fn planning_error(e: datafusion::error::DataFusionError) -> EngineError {
    use datafusion::common::SchemaError;
    use datafusion::error::DataFusionError;
    let DataFusionError::SchemaError(schema_error, _) = e.find_root() else {
        return classify(e.to_string());
    };
    match schema_error.as_ref() {
        SchemaError::FieldNotFound {
            field,
            valid_fields,
        } => {
            let valid: Vec<String> = valid_fields
                .iter()
                .filter(|c| !c.name.starts_with(HIDDEN_PREFIX))
                .map(|c| c.flat_name())
                .collect();
            let suggestion = crate::sql_error::closest(
                &field.name,
                valid_fields
                    .iter()
                    .filter(|c| !c.name.starts_with(HIDDEN_PREFIX))
                    .map(|c| c.name.as_str()),
            )
            .map(str::to_string);
            EngineError::UnknownColumn {
                column: field.name.clone(),
                qualifier: field.relation.as_ref().map(|r| r.table().to_string()),
                valid,
                suggestion,
            }
        }
        _ => classify(e.to_string()),
    }
}

/// Turns DataFusion's planning errors into the sandbox's categories.
pub(crate) fn classify(msg: String) -> EngineError {
    let msg = crate::sql_error::clean(&msg);
    let lower = msg.to_ascii_lowercase();
    if lower.contains("ddl not supported")
        || lower.contains("dml not supported")
        || lower.contains("statement not supported")
    {
        EngineError::Forbidden(format!(
            "only queries (SELECT) are allowed in the sandbox: {msg}"
        ))
    } else {
        EngineError::Plan(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_errors_lose_quoted_values() {
        assert_eq!(
            redact_values("Cannot cast string '532901199001011234' to value of Int32 type"),
            "Cannot cast string '…' to value of Int32 type"
        );
        assert_eq!(redact_values("no quotes"), "no quotes");
        assert_eq!(redact_values("unterminated 'abc"), "unterminated '…'");
    }
}
