//! The development sample through the real engine: deterministic, a share of the data and never
//! all of it, free of raw identifiers, quasi-identifiers coarsened, measures perturbed, rare
//! combinations left out, and pseudonymized consistently across datasets.

use arrow::array::{Array, AsArray};
use arrow::record_batch::RecordBatch;
use erhai_devkit::demo::store_demo_tables;
use erhai_devkit::demo_data::{self, Sizes};
use erhai_engine::testing::apply_mask;
use erhai_engine::{Engine, Limits, MasterKey, SampleSpec, StoredTable};

fn engine(dir: &std::path::Path) -> (Engine, Vec<StoredTable>) {
    let master = MasterKey::create(&dir.join("master.key")).expect("key");
    let engine = Engine::new(dir, master, Limits::default(), Default::default()).expect("engine");
    let data = demo_data::generate(5, Sizes::with_stays(20_000)).expect("data");
    let tables = store_demo_tables(&engine, data).expect("store");
    (engine, tables)
}

async fn rows(engine: &Engine, tables: &[StoredTable], sql: &str) -> Vec<RecordBatch> {
    let run = engine
        .run_dev_query(sql, tables, "test")
        .await
        .expect("dev query");
    run.rows.expect("allowed").1
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
    // 10% of 20,000 drawn; rows with a rare combination of quasi-identifiers left out.
    assert!(n > 0 && n <= 2_000, "{n}");
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

    // Identifiers never appear raw; quasi-identifiers are coarsened; measures perturbed.
    drop(a);
    let full = rows(
        &engine,
        &[c],
        "SELECT guest_name, phone, id_number, gender, birth_year, home_province, home_city, \
         checkin_date, nights, spend_yuan FROM hotel_stays",
    )
    .await;
    // Names and phones are pseudonyms: even a masked phone (first three and last four digits)
    // would find a known person's rows.
    for c in ["guest_name", "phone", "id_number"] {
        let values = column(&full, c);
        assert!(
            values
                .iter()
                .all(|v| v.len() == 32 && v.chars().all(|x| x.is_ascii_hexdigit())),
            "{c}: {:?}",
            &values[..3]
        );
    }
    let years = column(&full, "birth_year");
    assert!(
        years.iter().all(|y| y.ends_with('0') || y == "NULL"),
        "birth years in 10-year bands (or withheld where rare): {:?}",
        &years[..5]
    );
    assert_eq!(
        column(&full, "home_city"),
        column(&full, "home_province"),
        "a city becomes its province"
    );
    assert!(
        column(&full, "checkin_date")
            .iter()
            .all(|d| d.ends_with("-01"))
    );
    let spend = column(&full, "spend_yuan");
    assert!(
        spend.iter().all(|v| {
            let digits: String = v.chars().filter(|c| c.is_ascii_digit()).collect();
            digits.trim_start_matches('0').trim_end_matches('0').len() <= 2
        }),
        "spend rounded to two significant digits: {:?}",
        &spend[..5]
    );
    // k-anonymity: every combination of the quasi-identifiers occurs at least 5 times (rare
    // ones lost their values, and those rows share the combination of withheld values).
    let mut combos: std::collections::HashMap<(String, String, String), usize> = Default::default();
    let (g, y, p) = (
        column(&full, "gender"),
        years.clone(),
        column(&full, "home_province"),
    );
    for i in 0..g.len() {
        *combos
            .entry((g[i].clone(), y[i].clone(), p[i].clone()))
            .or_default() += 1;
    }
    assert!(combos.values().all(|&n| n >= 5), "{combos:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_dataset_gets_a_small_sample_and_a_tiny_one_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let master = MasterKey::create(&dir.path().join("master.key")).expect("key");
    let engine =
        Engine::new(dir.path(), master, Limits::default(), Default::default()).expect("engine");
    // 963 stays: the old floor of 1,000 rows "sampled" all of them.
    let data = demo_data::generate(5, Sizes::with_stays(963)).expect("data");
    let stays = data.hotel_stays.clone();
    let tables = store_demo_tables(&engine, data).expect("store");
    let (sample, n) = engine
        .build_dev_sample(&tables[0], &SampleSpec::default())
        .expect("sample");
    assert!(n <= 96, "at most a tenth: {n}");
    let got = rows(
        &engine,
        &[sample],
        "SELECT birth_year, nights, spend_yuan FROM hotel_stays",
    )
    .await;
    let exact: std::collections::HashSet<String> = {
        let by = stays.column_by_name("birth_year").expect("column");
        let by = arrow::compute::cast(by, &arrow::datatypes::DataType::Utf8).expect("cast");
        by.as_string::<i32>()
            .iter()
            .flatten()
            .filter(|v| !v.ends_with('0'))
            .map(str::to_string)
            .collect()
    };
    assert!(
        column(&got, "birth_year")
            .iter()
            .all(|y| !exact.contains(y)),
        "no exact birth year"
    );
    // Under 100 rows: no sample rows at all.
    let tiny = demo_data::generate(6, Sizes::with_stays(90)).expect("data");
    let dir2 = tempfile::tempdir().expect("tempdir");
    let master = MasterKey::create(&dir2.path().join("master.key")).expect("key");
    let engine2 =
        Engine::new(dir2.path(), master, Limits::default(), Default::default()).expect("engine");
    let tables = store_demo_tables(&engine2, tiny).expect("store");
    let (_, n) = engine2
        .build_dev_sample(&tables[0], &SampleSpec::default())
        .expect("sample");
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pseudonyms_join_across_samples_and_differ_across_scopes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, tables) = engine(dir.path());
    let spec = SampleSpec {
        rate: 0.1,
        floor: 0,
        seed: 0,
    };
    let samples: Vec<StoredTable> = tables[..2]
        .iter()
        .map(|t| engine.build_dev_sample(t, &spec).expect("sample").0)
        .collect();
    // Pseudonyms of one person are equal in both samples, so the join finds pairs.
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
