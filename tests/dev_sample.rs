//! The development sample through the real engine: deterministic, sized as configured, free of
//! raw identifiers, and pseudonymized consistently across datasets.

use arrow::array::{Array, AsArray};
use arrow::record_batch::RecordBatch;
use erhai::demo::store_demo_tables;
use erhai::demo_data::{self, Sizes};
use erhai_engine::masks::apply_mask;
use erhai_engine::{Engine, Limits, MasterKey, SampleSpec, StoredTable};

fn engine(dir: &std::path::Path) -> (Engine, Vec<StoredTable>) {
    let master = MasterKey::create(&dir.join("master.key")).expect("key");
    let engine = Engine::new(dir, master, Limits::default(), Default::default()).expect("engine");
    let data = demo_data::generate(5, Sizes::with_stays(20_000)).expect("data");
    let tables = store_demo_tables(&engine, data).expect("store");
    (engine, tables)
}

async fn rows(engine: &Engine, tables: &[StoredTable], sql: &str) -> Vec<RecordBatch> {
    engine
        .run_dev_query(sql, tables, "test")
        .await
        .expect("dev query")
        .2
}

fn column(batches: &[RecordBatch], name: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name(name).expect("column");
            let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).expect("cast");
            c.as_string::<i32>()
                .iter()
                .map(|v| v.unwrap_or("NULL").to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_are_deterministic_sized_and_desensitized() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, tables) = engine(dir.path());
    let stays = &tables[0];
    let spec = SampleSpec {
        rate: 0.1,
        floor: 100,
        seed: 7,
    };
    let (a, n) = engine.build_dev_sample(stays, &spec).expect("sample");
    assert_eq!(n, 2_000, "10% of 20,000");
    let first = rows(
        &engine,
        std::slice::from_ref(&a),
        "SELECT id_number, checkin_date FROM hotel_stays",
    )
    .await;
    // Same seed, same rows (the sample is rebuilt in place, under a new key).
    let (b, _) = engine.build_dev_sample(stays, &spec).expect("again");
    let second = rows(
        &engine,
        &[b],
        "SELECT id_number, checkin_date FROM hotel_stays",
    )
    .await;
    assert_eq!(column(&first, "id_number"), column(&second, "id_number"));
    // Another seed, other rows.
    let (c, _) = engine
        .build_dev_sample(stays, &SampleSpec { seed: 8, ..spec })
        .expect("other seed");
    let third = rows(
        &engine,
        std::slice::from_ref(&c),
        "SELECT id_number FROM hotel_stays",
    )
    .await;
    assert_ne!(column(&first, "id_number"), column(&third, "id_number"));

    // Birth dates and the like are generalized; identifiers never appear raw.
    drop(a);
    let full = rows(
        &engine,
        &[c],
        "SELECT guest_name, phone, id_number, birth_year FROM hotel_stays",
    )
    .await;
    let names = column(&full, "guest_name");
    assert!(names.iter().all(|n| n.contains('*')), "{:?}", &names[..3]);
    assert!(column(&full, "phone").iter().all(|p| p.contains("****")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pseudonyms_join_across_samples_and_differ_across_scopes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, tables) = engine(dir.path());
    let spec = SampleSpec {
        rate: 1.0,
        floor: 0,
        seed: 0,
    };
    let samples: Vec<StoredTable> = tables[..2]
        .iter()
        .map(|t| engine.build_dev_sample(t, &spec).expect("sample").0)
        .collect();
    // With full samples, the pseudonymized join finds the same pairs as the raw join would.
    let joined = rows(
        &engine,
        &samples,
        "SELECT count(*) AS n FROM hotel_stays h JOIN scenic_entries s ON h.id_number = s.id_number",
    )
    .await;
    let n = joined[0]
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0);
    assert!(n > 0, "pseudonyms must join across datasets");

    // pseudonym() in SQL: the same value gives the same token in one scope, another in the next.
    let master = MasterKey::create(&dir.path().join("other.key")).expect("key");
    let ids: arrow::array::ArrayRef = std::sync::Arc::new(arrow::array::StringArray::from(vec![
        Some("a"),
        None,
        Some("a"),
        Some("b"),
    ]));
    let token = |scope: &str| {
        let out = apply_mask("pseudonym", &[], &ids, &master.pseudonym_key(scope)).expect("mask");
        let s = out.as_string::<i32>();
        (0..s.len())
            .map(|i| (!s.is_null(i)).then(|| s.value(i).to_string()))
            .collect::<Vec<_>>()
    };
    let one = token("scenario/1");
    assert_eq!(one, token("scenario/1"));
    assert_eq!(one[0], one[2]);
    assert_ne!(one[0], one[3]);
    assert_eq!(one[1], None, "null stays null");
    let two = token("scenario/2");
    assert_ne!(one[0], two[0], "scopes are unlinkable");
}
