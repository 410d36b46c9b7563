//! Lineage + policy check for the 22 TPC-H queries against DataFusion's own planning of the same
//! query (parse, statement gate, analysis), measured in the same run. The verdict of each query
//! under the benchmark policy (benches/tpch/policy) is printed first: refused queries are checked
//! as fully as allowed ones, so both are timed.
//!
//! cargo bench --bench tpch_check

mod common;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use erhai_devkit::tpch;
use erhai_engine::testing::Sandbox;
use erhai_engine::{Limits, MasterKey};

fn sandbox(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> Sandbox {
    let master = MasterKey::create(&dir.join("master.key")).expect("key");
    let engine = erhai_engine::Engine::new(dir, master, Limits::default(), Default::default())
        .expect("engine");
    // Planning needs only the schemas; a tiny scale factor keeps set-up fast.
    let tables = tpch::store_tables(&engine, 0.001).expect("tpch tables");
    rt.block_on(engine.sandbox(&tables, "bench"))
        .expect("sandbox")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let sb = sandbox(&rt, dir.path());
    let mut g = c.benchmark_group("tpch_check");
    g.sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (name, sql) in tpch::QUERIES {
        let plan = rt
            .block_on(sb.plan(sql))
            .unwrap_or_else(|e| panic!("{name} does not plan: {e}"));
        let (_, verdict) = sb
            .check_plan(&plan, true)
            .unwrap_or_else(|e| panic!("{name}: lineage failed: {e}"));
        let first = verdict
            .refusals
            .first()
            .map(|r| format!("refused: {}", r.rule))
            .unwrap_or_else(|| "allowed".into());
        eprintln!("{name}: {first}");
        common::planning_vs_check(&mut g, &rt, &sb, name, sql, &plan);
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
