//! Pieces the benches share.

use std::hint::black_box;

use criterion::BenchmarkGroup;
use criterion::measurement::WallTime;
use datafusion::logical_expr::LogicalPlan;
use erhai_engine::testing::Sandbox;

/// Benches DataFusion planning `sql` against erhai's lineage + check of its `plan`, side by
/// side in one group, so that their ratio comes from the same run.
pub fn planning_vs_check(
    g: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    sb: &Sandbox,
    name: &str,
    sql: &str,
    plan: &LogicalPlan,
) {
    g.bench_function(format!("{name}/datafusion_planning"), |b| {
        b.to_async(rt)
            .iter(|| async { black_box(sb.plan(black_box(sql)).await.expect("plan")) })
    });
    g.bench_function(format!("{name}/lineage_and_check"), |b| {
        b.iter(|| black_box(sb.check_plan(black_box(plan), true).expect("check")))
    });
}
