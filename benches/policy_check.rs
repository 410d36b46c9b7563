//! The policy check on a plan (lineage + rules) against DataFusion's own planning of the same
//! query, measured in the same run: the ratio is the figure that matters on a noisy machine.
//!
//! cargo bench --bench policy_check

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use erhai_devkit::demo::store_demo_tables;
use erhai_devkit::demo_data::{self, Sizes};
use erhai_engine::testing::Sandbox;
use erhai_engine::{Limits, MasterKey};

const QUERIES: [(&str, &str); 4] = [
    (
        "district",
        "SELECT district, count(DISTINCT id_number) AS visitors, sum(spend_yuan) FROM hotel_stays GROUP BY district ORDER BY district",
    ),
    (
        "join",
        "SELECT h.district, count(DISTINCT s.id_number) FROM hotel_stays h JOIN scenic_entries s ON h.id_number = s.id_number WHERE h.nights > 2 GROUP BY h.district",
    ),
    (
        "semi_join",
        "SELECT home_province, avg(nights) FROM hotel_stays WHERE id_number IN (SELECT id_number FROM scenic_entries WHERE spot_name = '苍山') GROUP BY home_province HAVING count(*) > 10",
    ),
    (
        "cte",
        "WITH t AS (SELECT district AS d, nights AS n FROM hotel_stays WHERE gender = '女') SELECT d, sum(n), count(*) FROM t GROUP BY d",
    ),
];

fn sandbox(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> Sandbox {
    let master = MasterKey::create(&dir.join("master.key")).expect("key");
    let engine = erhai_engine::Engine::new(dir, master, Limits::default(), Default::default())
        .expect("engine");
    let data = demo_data::generate(1, Sizes::with_stays(1_000)).expect("data");
    let tables = store_demo_tables(&engine, data).expect("store");
    rt.block_on(engine.sandbox(&tables, "bench"))
        .expect("sandbox")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let sb = sandbox(&rt, dir.path());
    let mut g = c.benchmark_group("policy_check");
    for (name, sql) in QUERIES {
        let plan = rt.block_on(sb.plan(sql)).expect("plan");
        let (_, verdict) = sb.check_plan(&plan, true).expect("check");
        assert!(verdict.allowed(), "{name}: {}", verdict.explain());
        common::planning_vs_check(&mut g, &rt, &sb, name, sql, &plan);
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
