//! The cost of the disclosure statistics: a plain aggregate against the same query rewritten by
//! erhai's statistics rewrite, on the same in-memory data in the same run.
//!
//! - threshold: `count(*)` per group, plus the hidden unit set of every group;
//! - dominance: `count(*)` and `sum(v)` per group, plus the unit set and the per-unit
//!   contributions to the sum.
//!
//! - branch statistics: `sum(CASE WHEN v > 500 THEN v ELSE 0 END)` per group, plus the unit
//!   set and contributions of each side of the condition (issue 14: a condition inside an
//!   aggregate defines populations), against the same conditional sum plain.
//!
//! - datafusion_count_distinct: DataFusion's own `count(DISTINCT unit)` beside `count(*)`, the
//!   cheapest exact threshold count without the sets, for comparison.
//!
//! 1M and 10M rows, 10 and 10k groups; a privacy unit (an 18-character ID) has ten rows on
//! average, spread over the groups at random. Figures in docs/BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use criterion::{Criterion, criterion_group, criterion_main};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use erhai_engine::MasterKey;
use erhai_engine::testing::{UnitMap, UnitSource, add_statistics};
use rand::{Rng, SeedableRng};

const BATCH: usize = 64 * 1024;

fn table(rows: usize, groups: i64) -> Vec<Vec<RecordBatch>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("unit", DataType::Utf8, false),
        Field::new("g", DataType::Int64, false),
        Field::new("v", DataType::Float64, false),
    ]));
    let units = (rows / 10).max(1) as u64;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut partitions = vec![Vec::new(), Vec::new()];
    let mut made = 0;
    while made < rows {
        let n = BATCH.min(rows - made);
        let unit: StringArray = (0..n)
            .map(|_| Some(format!("53290119{:010}", rng.random_range(0..units))))
            .collect();
        let g: Int64Array = (0..n).map(|_| rng.random_range(0..groups)).collect();
        let v: Float64Array = (0..n).map(|_| rng.random_range(0.0..1000.0)).collect();
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(unit), Arc::new(g), Arc::new(v)],
        )
        .expect("batch");
        partitions[(made / BATCH) % 2].push(b);
        made += n;
    }
    partitions
}

async fn plan(ctx: &SessionContext, sql: &str) -> LogicalPlan {
    ctx.sql(sql).await.expect("plan").logical_plan().clone()
}

async fn run(ctx: &SessionContext, plan: &LogicalPlan) -> usize {
    let batches = ctx
        .execute_logical_plan(plan.clone())
        .await
        .expect("execute")
        .collect()
        .await
        .expect("collect");
    batches.iter().map(|b| b.num_rows()).sum()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let master = MasterKey::create(&dir.path().join("master.key")).expect("key");
    let units: UnitMap = [(
        "t".to_string(),
        UnitSource {
            dataset: "t".into(),
            column: "unit".into(),
            key: master.unit_key("ds-bench"),
        },
    )]
    .into_iter()
    .collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs each bench once on a debug
    // build, where small tables check that everything runs.
    let sizes: &[(usize, i64)] = if std::env::args().any(|a| a == "--bench") {
        &[
            (1_000_000, 10),
            (1_000_000, 10_000),
            (10_000_000, 10),
            (10_000_000, 10_000),
        ]
    } else {
        &[(20_000, 10), (20_000, 1_000)]
    };
    for &(rows, groups) in sizes {
        let data = table(rows, groups);
        let ctx = SessionContext::new();
        let schema = data[0][0].schema();
        ctx.register_table(
            "t",
            Arc::new(MemTable::try_new(schema, data).expect("table")),
        )
        .expect("register");
        let count = rt.block_on(plan(&ctx, "SELECT g, count(*) AS n FROM t GROUP BY g"));
        let sum = rt.block_on(plan(
            &ctx,
            "SELECT g, count(*) AS n, sum(v) AS s FROM t GROUP BY g",
        ));
        let distinct = rt.block_on(plan(
            &ctx,
            "SELECT g, count(*) AS n, count(DISTINCT unit) AS u FROM t GROUP BY g",
        ));
        let conditional = rt.block_on(plan(
            &ctx,
            "SELECT g, count(*) AS n, sum(CASE WHEN v > 500 THEN v ELSE 0 END) AS s FROM t GROUP BY g",
        ));
        let (threshold, _) = add_statistics(&count, &units, 2).expect("rewrite");
        let (branches, _) = add_statistics(&conditional, &units, 2).expect("rewrite");
        let (dominance, _) = add_statistics(&sum, &units, 2).expect("rewrite");
        let size = if rows >= 1_000_000 {
            format!("{}M", rows / 1_000_000)
        } else {
            format!("{}k", rows / 1_000)
        };
        let mut g = c.benchmark_group(format!("stats/{size}_rows/{groups}_groups"));
        g.sample_size(10);
        for (name, p) in [
            ("plain_count", &count),
            ("threshold", &threshold),
            ("datafusion_count_distinct", &distinct),
            ("plain_sum", &sum),
            ("threshold_and_dominance", &dominance),
            ("plain_conditional_sum", &conditional),
            ("branch_statistics", &branches),
        ] {
            g.bench_function(name, |b| {
                b.to_async(&rt)
                    .iter(|| async { black_box(run(&ctx, p).await) })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
