//! The decrypted-batch cache through the real engine: the same rows as reading the encrypted
//! files, the scenario's narrowing still holds, and development samples are cached apart.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use erhai_devkit::demo::store_demo_tables;
use erhai_devkit::demo_data::{self, Sizes};
use erhai_engine::{Engine, Limits, MasterKey, StoredTable};

const SQL: &str = "SELECT district, count(*) AS stays, sum(nights) AS nights \
                   FROM hotel_stays GROUP BY district ORDER BY district";

async fn rows(engine: &Engine, tables: &[StoredTable], sql: &str) -> String {
    let sandbox = engine.sandbox(tables, "test").await.expect("sandbox");
    let checked = sandbox.prepare(sql, 2).await.expect("allowed");
    let batches: Vec<RecordBatch> = sandbox
        .execute(&checked)
        .await
        .expect("run")
        .batches
        .iter()
        .map(|b| {
            // The visible columns only: hidden statistics are compared by the checks' tests.
            let keep: Vec<usize> = (0..b.num_columns())
                .filter(|i| !b.schema().field(*i).name().starts_with("__erhai_"))
                .collect();
            b.project(&keep).expect("project")
        })
        .collect();
    pretty_format_batches(&batches).expect("format").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_batches_answer_as_the_files_do_and_keep_the_narrowing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let master = MasterKey::create(&dir.path().join("master.key")).expect("key");
    let files =
        Engine::new(dir.path(), master, Limits::default(), Default::default()).expect("engine");
    let data = demo_data::generate(3, Sizes::with_stays(20_000)).expect("data");
    let tables = store_demo_tables(&files, data).expect("store");
    let cached = Engine::new(
        dir.path(),
        MasterKey::load(&dir.path().join("master.key")).expect("key"),
        Limits {
            cache_bytes: 256 << 20,
            ..Limits::default()
        },
        Default::default(),
    )
    .expect("engine");

    let from_files = rows(&files, &tables, SQL).await;
    assert_eq!(cached.cached_bytes(), 0);
    let first = rows(&cached, &tables, SQL).await;
    let held = cached.cached_bytes();
    assert!(held > 0, "the first job loads the versions it reads");
    let second = rows(&cached, &tables, SQL).await;
    assert_eq!(
        cached.cached_bytes(),
        held,
        "the second job is served from memory"
    );
    assert_eq!(first, from_files);
    assert_eq!(second, from_files);

    // A scenario that did not approve `phone`: the cached table holds only approved columns.
    let mut narrowed = tables.clone();
    let stays = &mut narrowed[0];
    let fields: Vec<_> = stays
        .schema
        .fields()
        .iter()
        .filter(|f| f.name() != "phone")
        .cloned()
        .collect();
    stays.schema = Arc::new(arrow::datatypes::Schema::new(fields));
    stays.policy.columns.retain(|c, _| c != "phone");
    let sandbox = cached.sandbox(&narrowed, "test").await.expect("sandbox");
    let e = sandbox
        .prepare(
            "SELECT substr(mask_phone(phone), 1, 3) AS p, count(*) FROM hotel_stays GROUP BY 1",
            2,
        )
        .await
        .err()
        .expect("phone is not in the narrowed table");
    assert!(e.to_string().contains("phone"), "{e}");
    assert_eq!(rows(&cached, &narrowed, SQL).await, from_files);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_too_small_for_a_version_reads_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let master = MasterKey::create(&dir.path().join("master.key")).expect("key");
    let engine = Engine::new(
        dir.path(),
        master,
        Limits {
            cache_bytes: 1024,
            ..Limits::default()
        },
        Default::default(),
    )
    .expect("engine");
    let data = demo_data::generate(4, Sizes::with_stays(5_000)).expect("data");
    let tables = store_demo_tables(&engine, data).expect("store");
    let a = rows(&engine, &tables, SQL).await;
    assert_eq!(engine.cached_bytes(), 0);
    assert_eq!(rows(&engine, &tables, SQL).await, a);
}
