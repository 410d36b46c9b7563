//! One small query end to end over gRPC on loopback (submit → plan check → encrypted scan →
//! threshold statistics → quarantine → awaiting review) against a 100k-row dataset, beside plain
//! DataFusion running the same SQL on the same rows in memory, in the same run.
//!
//! cargo bench --bench query_roundtrip

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use erhai_devkit::demo::{DEMO_USERS, Platform};
use erhai_devkit::demo_data::{self, Sizes};

const SQL: &str = "SELECT district, count(DISTINCT id_number) AS visitors, sum(spend_yuan) AS spend FROM hotel_stays GROUP BY district";
const ROWS: usize = 100_000;

fn bench(c: &mut Criterion) {
    erhai::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let data = demo_data::generate(9, Sizes::with_stays(ROWS)).expect("data");
    let stays = data.hotel_stays;
    let (platform, analyst, auditor) = rt.block_on(async {
        let p = Platform::start(None, |_| {}).await.expect("start");
        for (id, name, role, tenant, unit) in DEMO_USERS {
            p.add_user(id, name, role, tenant, unit)
                .await
                .expect("user");
        }
        let provider = p.client("provider").await.expect("provider");
        provider
            .register(
                "hotel_stays",
                "",
                demo_data::HOTEL_STAYS_POLICY,
                stays.schema(),
                vec![stays.clone()],
            )
            .await
            .expect("register");
        erhai_devkit::demo::authorize_datasets(&p, "bench", &["hotel_stays"])
            .await
            .expect("scenario");
        let analyst = p.client("analyst").await.expect("analyst");
        // The analyst's answer comes at acceptance; the auditor sees when the run has ended.
        let auditor = p.client("auditor").await.expect("auditor");
        (p, analyst, auditor)
    });
    let ctx = SessionContext::new();
    let table = MemTable::try_new(stays.schema(), vec![vec![stays]]).expect("memtable");
    ctx.register_table("hotel_stays", Arc::new(table))
        .expect("register");

    let mut g = c.benchmark_group("query_roundtrip_100k");
    g.sample_size(20);
    g.bench_function("plain_datafusion_in_memory", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                ctx.sql(SQL)
                    .await
                    .expect("sql")
                    .collect()
                    .await
                    .expect("collect"),
            )
        })
    });
    g.bench_function("erhai_submit_to_awaiting_review", |b| {
        b.to_async(&rt).iter(|| async {
            let job = analyst.submit("bench", SQL).await.expect("submit");
            let job = auditor
                .finished(&job.id, std::time::Duration::from_secs(600))
                .await
                .expect("finished");
            assert_eq!(job.state, "awaiting_review");
            black_box(job)
        })
    });
    g.finish();
    rt.block_on(platform.stop()).expect("stop");
}

criterion_group!(benches, bench);
criterion_main!(benches);
