//! Policy decisions as data: every `tests/slt/*.slt` file runs through the real sandbox (the
//! engine's production path: plan check, statistics rewrite, encrypted scan, threshold checks) on
//! deterministic demo data. Allowed queries list their released rows; refused ones the reason.
//! `ERHAI_SLT_COMPLETE=1 cargo test --test policy_slt` fills in expected rows of new cases.

use std::sync::Arc;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use erhai_devkit::demo::store_demo_tables;
use erhai_devkit::demo_data::{self, Sizes};
use erhai_engine::{Engine, Limits, MasterKey, StoredTable};
use erhai_policies::ReleaseRules;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

#[derive(Debug)]
struct SltError(String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

#[derive(Clone)]
struct Sandbox {
    engine: Arc<Engine>,
    tables: Arc<Vec<StoredTable>>,
    jobs: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl AsyncDB for Sandbox {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let n = self.jobs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let job = format!("slt-{n}");
        let outcome = self
            .engine
            .run_query(&job, sql, &self.tables, "slt")
            .await
            .map_err(|e| SltError(e.to_string()))?;
        let (schema, batches) = self
            .engine
            .read_result(&job, &outcome.result_wrapped_key)
            .map_err(|e| SltError(e.to_string()))?;
        let options = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for b in &batches {
            let formatters = b
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SltError(e.to_string()))?;
            for r in 0..b.num_rows() {
                rows.push(formatters.iter().map(|f| f.value(r).to_string()).collect());
            }
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; schema.fields().len()],
            rows,
        })
    }

    async fn shutdown(&mut self) {}
}

async fn sandbox(dir: &std::path::Path) -> Sandbox {
    let master = MasterKey::create(&dir.join("master.key")).expect("master key");
    let engine =
        Engine::new(dir, master, Limits::default(), ReleaseRules::default()).expect("engine");
    let data = demo_data::generate(42, Sizes::with_stays(3_000)).expect("data");
    let tables = store_demo_tables(&engine, data).expect("store");
    Sandbox {
        engine: Arc::new(engine),
        tables: Arc::new(tables),
        jobs: Arc::new(Default::default()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_policy_cases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sandbox(dir.path()).await;
    let mut files: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slt"))
        .expect("slt dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        // ERHAI_SLT_FILE=masks runs only the files whose name contains it.
        .filter(|p| match std::env::var("ERHAI_SLT_FILE") {
            Ok(only) => p.to_string_lossy().contains(&only),
            Err(_) => true,
        })
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for file in &files {
        let db = db.clone();
        let mut runner = sqllogictest::Runner::new(move || {
            let db = db.clone();
            async move { Ok::<_, SltError>(db) }
        });
        // ERHAI_SLT_COMPLETE=1 rewrites the expected output in place (review the diff!).
        if std::env::var_os("ERHAI_SLT_COMPLETE").is_some() {
            runner
                .update_test_file(
                    file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::default_column_validator,
                )
                .await
                .expect("complete");
        } else if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}: {e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
