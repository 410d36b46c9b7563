//! Masking kernels over 10M values each (10k when run as a test): erhai's vectorized kernel,
//! a naive per-row `String` implementation, the equivalent plain SQL expression in DataFusion,
//! and erhai's mask called from SQL, all in the same run.
//!
//! cargo bench --bench masks

use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::datasource::MemTable;
use datafusion::execution::SessionStateDefaults;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use erhai_engine::MasterKey;
use erhai_engine::testing::{PseudonymKey, apply_mask, mask_functions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SURNAMES: [char; 8] = ['张', '李', '王', '赵', '段', '杨', '刘', '陈'];
const GIVEN: [char; 8] = ['伟', '芳', '娜', '敏', '静', '丽', '强', '磊'];

fn values(kind: &str, n: usize) -> ArrayRef {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let v: Vec<String> = (0..n)
        .map(|_| match kind {
            "phone" => format!("13{:09}", rng.random_range(0..1_000_000_000u64)),
            "id" => format!(
                "5329{:02}19{:02}{:02}{:02}{:03}{}",
                rng.random_range(1..33),
                rng.random_range(40..99),
                rng.random_range(1..13),
                rng.random_range(1..29),
                rng.random_range(0..1000),
                rng.random_range(0..10)
            ),
            _ => {
                let mut s = String::new();
                s.push(SURNAMES[rng.random_range(0..SURNAMES.len())]);
                for _ in 0..rng.random_range(1..3) {
                    s.push(GIVEN[rng.random_range(0..GIVEN.len())]);
                }
                s
            }
        })
        .collect();
    Arc::new(StringArray::from(v))
}

fn naive_phone(s: &str) -> String {
    format!("{}****{}", &s[..3], &s[7..])
}

fn naive_id(s: &str) -> String {
    format!("{}********{}", &s[..6], &s[14..])
}

fn naive_name(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        out.push(if i == 0 { c } else { '*' });
    }
    out
}

fn naive_pseudonym(key: &ring::hmac::Key, s: &str) -> String {
    hex::encode(&ring::hmac::sign(key, s.as_bytes()).as_ref()[..16])
}

/// Record-batch sized slices, as DataFusion hands arrays to functions.
const BATCH: usize = 8192;

fn batches(array: &ArrayRef) -> impl Iterator<Item = ArrayRef> + '_ {
    (0..array.len())
        .step_by(BATCH)
        .map(|o| array.slice(o, BATCH.min(array.len() - o)))
}

fn naive(array: &ArrayRef, f: &dyn Fn(&str) -> String) -> usize {
    batches(array)
        .map(|b| {
            let a = b.as_any().downcast_ref::<StringArray>().expect("utf8");
            let out: StringArray = a.iter().map(|v| v.map(f)).collect();
            black_box(out).len()
        })
        .sum()
}

fn context(array: &ArrayRef, key: &PseudonymKey) -> SessionContext {
    let state = SessionStateBuilder::new()
        .with_expr_planners(SessionStateDefaults::default_expr_planners())
        .with_scalar_functions(
            SessionStateDefaults::default_scalar_functions()
                .into_iter()
                .chain(mask_functions(key))
                .collect(),
        )
        .with_default_features()
        .build();
    let ctx = SessionContext::new_with_state(state);
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Utf8, true)]));
    let batches: Vec<RecordBatch> = batches(array)
        .map(|a| RecordBatch::try_new(schema.clone(), vec![a]).expect("batch"))
        .collect();
    let table = MemTable::try_new(schema, vec![batches]).expect("table");
    ctx.register_table("t", Arc::new(table)).expect("register");
    ctx
}

fn bench(c: &mut Criterion) {
    let n = if std::env::args().any(|a| a == "--bench") {
        10_000_000
    } else {
        10_000
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let master = MasterKey::create(&dir.path().join("master.key")).expect("key");
    let key = master.pseudonym_key("bench");
    let raw_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"bench");
    type Naive = Box<dyn Fn(&str) -> String>;
    let cases: [(&str, &str, &str, Option<&str>, Naive); 4] = [
        (
            "mask_phone",
            "phone",
            "mask_phone(v)",
            Some("concat(substr(v, 1, 3), '****', substr(v, 8))"),
            Box::new(naive_phone),
        ),
        (
            "mask_id_card",
            "id",
            "mask_id_card(v)",
            Some("concat(substr(v, 1, 6), '********', substr(v, 15))"),
            Box::new(naive_id),
        ),
        (
            "mask_name",
            "name",
            "mask_name(v)",
            Some("concat(substr(v, 1, 1), repeat('*', character_length(v) - 1))"),
            Box::new(naive_name),
        ),
        (
            "pseudonym",
            "id",
            "pseudonym(v)",
            None,
            Box::new(move |s| naive_pseudonym(&raw_key, s)),
        ),
    ];
    for (mask, kind, udf_sql, plain_sql, naive_fn) in cases {
        let array = values(kind, n);
        let ctx = context(&array, &key);
        let mut g = c.benchmark_group(format!("masks/{mask}"));
        g.throughput(Throughput::Elements(n as u64)).sample_size(10);
        // Single-threaded, batch by batch: the per-core figure.
        g.bench_function("erhai_kernel", |b| {
            b.iter(|| {
                batches(&array)
                    .map(|a| black_box(apply_mask(mask, &[], &a, &key).expect("mask")).len())
                    .sum::<usize>()
            })
        });
        g.bench_function("naive_per_row_string", |b| {
            b.iter(|| black_box(naive(black_box(&array), naive_fn.as_ref())))
        });
        let run = |sql: String| {
            let ctx = ctx.clone();
            async move {
                let df = ctx.sql(&sql).await.expect("plan");
                black_box(df.collect().await.expect("run"))
            }
        };
        g.bench_function("erhai_mask_in_sql", |b| {
            b.to_async(&rt)
                .iter(|| run(format!("SELECT {udf_sql} FROM t")))
        });
        if let Some(plain) = plain_sql {
            g.bench_function("plain_sql_expression", |b| {
                b.to_async(&rt)
                    .iter(|| run(format!("SELECT {plain} FROM t")))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
