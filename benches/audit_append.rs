//! Durable audit appends on a real sled store: one writer, and eight writers sharing flushes
//! (group commit). Baseline in the same run: a plain sled insert + flush per event, which is
//! what every append cost before group commit.
//!
//! cargo bench --bench audit_append

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use erhai_gateway::audit::{AuditLog, CheckpointPolicy, NewEvent, signing_key};

const PER_WRITER: u64 = 200;

fn event(i: u64) -> NewEvent {
    NewEvent {
        user: "analyst".into(),
        role: "analyst".into(),
        tenant: "cangshan-data".into(),
        action: "submit_query".into(),
        object: format!("job-{i:06}"),
        outcome: "allowed".into(),
        reason: String::new(),
        digest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sled::open(dir.path().join("db")).expect("sled");
    let key = signing_key(&dir.path().join("audit.pk8")).expect("key");
    let log = AuditLog::open(&db, key, CheckpointPolicy::default()).expect("open");
    let plain = db.open_tree("plain").expect("tree");

    let mut g = c.benchmark_group("audit_append");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(PER_WRITER));
    g.bench_function("sled_insert_and_flush_per_event", |b| {
        let mut i = 0u64;
        b.iter(|| {
            for _ in 0..PER_WRITER {
                i += 1;
                plain
                    .insert(i.to_be_bytes(), &b"event"[..])
                    .expect("insert");
                db.flush().expect("flush");
            }
        })
    });
    // The same with an event-sized value (≈ 350 bytes of JSON), to separate value size from
    // the chain's own work.
    let sized = vec![b'x'; 350];
    g.bench_function("sled_insert_350_bytes_and_flush_per_event", |b| {
        let mut i = 0u64;
        b.iter(|| {
            for _ in 0..PER_WRITER {
                i += 1;
                plain.insert(i.to_be_bytes(), &sized[..]).expect("insert");
                db.flush().expect("flush");
            }
        })
    });
    g.bench_function("one_writer", |b| {
        let mut i = 0u64;
        b.iter(|| {
            for _ in 0..PER_WRITER {
                i += 1;
                black_box(log.append(event(i)).expect("append"));
            }
        })
    });
    g.throughput(Throughput::Elements(8 * PER_WRITER));
    g.bench_function("eight_writers_group_commit", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for t in 0..8u64 {
                    let log = &log;
                    s.spawn(move || {
                        for i in 0..PER_WRITER {
                            black_box(log.append(event(t * 1_000_000 + i)).expect("append"));
                        }
                    });
                }
            });
        })
    });
    g.finish();
    assert!(log.verify().expect("verify").is_ok());
}

criterion_group!(benches, bench);
criterion_main!(benches);
