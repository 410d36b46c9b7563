//! A dataset's life through the real server: new versions (the policy carried over or
//! replaced), what jobs record of the version they read, differencing across versions with a
//! reviewer who approves everything, retirement, and deletion of a registration made by
//! mistake (only before any use; nothing left on disk).

use crate::common::{code, platform_with_users};

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use erhai_client::Client;
use erhai_devkit::demo::{Platform, application_for_datasets, authorize_datasets};
use erhai_proto::v1 as pb;
use tonic::Code;

/// The scenario of the tests' queries.
const S: &str = "visits";

const POLICY: &str = r#"
privacy_unit = "person"

[columns.person]
kind = "other"
grade = "general"
uses = "identifier"

[columns.district]
kind = "dimension"
grade = "general"
uses = "dimension"

[columns.spend]
kind = "measure"
grade = "general"
uses = "measure"
bounds = [0, 10000]
"#;

/// Version 3's policy: district graded higher, a new measure.
const POLICY_V3: &str = r#"
privacy_unit = "person"

[columns.person]
kind = "other"
grade = "general"
uses = "identifier"

[columns.district]
kind = "dimension"
grade = "important"
uses = "dimension"

[columns.spend]
kind = "measure"
grade = "general"
uses = "measure"
bounds = [0, 10000]

[columns.nights]
kind = "measure"
grade = "general"
uses = "measure"
bounds = [0, 60]
"#;

const SQL: &str = "SELECT district, count(*) AS visitors, sum(spend) AS spend \
                   FROM visits GROUP BY district ORDER BY district";

/// The person the attacker wants: ordinary in every way, so only differencing can stop them.
const TARGET: u32 = 1000;

/// Persons `ids`: even ones in district X, odd ones in Y, spends between 100 and 160.
fn visits(ids: impl IntoIterator<Item = u32>) -> RecordBatch {
    let ids: Vec<u32> = ids.into_iter().collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("person", DataType::Utf8, false),
        Field::new("district", DataType::Utf8, false),
        Field::new("spend", DataType::Float64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| format!("P{i:05}")),
            )),
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| if i % 2 == 0 { "X" } else { "Y" }),
            )),
            Arc::new(Float64Array::from_iter_values(
                ids.iter().map(|i| 100.0 + f64::from(i % 7) * 10.0),
            )),
        ],
    )
    .expect("batch")
}

/// `batch` with one more column.
fn with_column(batch: &RecordBatch, name: &str, values: Vec<f64>) -> RecordBatch {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(name, DataType::Float64, false));
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(Float64Array::from(values)));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch")
}

/// `batch` without column `name`.
fn without_column(batch: &RecordBatch, name: &str) -> RecordBatch {
    let keep: Vec<usize> = (0..batch.num_columns())
        .filter(|i| batch.schema().field(*i).name() != name)
        .collect();
    batch.project(&keep).expect("project")
}

async fn new_version(
    c: &Client,
    name: &str,
    policy: &str,
    batch: RecordBatch,
) -> Result<pb::Dataset, erhai_client::ClientError> {
    let header = pb::RegisterHeader {
        name: name.into(),
        policy_toml: policy.into(),
        new_version: true,
        ..Default::default()
    };
    c.register_with(header, batch.schema(), vec![batch]).await
}

async fn register(p: &Platform, name: &str, batch: RecordBatch) -> pb::Dataset {
    p.client("provider")
        .await
        .expect("provider")
        .register(name, "crafted visits", POLICY, batch.schema(), vec![batch])
        .await
        .expect("register")
}

/// Waits for `job` to run, approves it as the reviewer who approves everything, and returns
/// it as the auditor sees it (with its check report).
async fn run_and_approve(p: &Platform, job: &pb::Job) -> pb::Job {
    let auditor = p.client("auditor").await.expect("auditor");
    let ran = auditor
        .finished(&job.id, Duration::from_secs(120))
        .await
        .expect("run");
    assert_eq!(ran.state, "awaiting_review", "{ran:?}");
    p.client("reviewer")
        .await
        .expect("reviewer")
        .decide(&job.id, true, "approves everything")
        .await
        .expect("approve");
    auditor.job(&job.id).await.expect("job")
}

/// The released rows as (district, visitors, spend).
async fn released(analyst: &Client, job: &str) -> Vec<(String, i64, f64)> {
    let (_, batches) = analyst.fetch(job).await.expect("fetch");
    let mut out = Vec::new();
    for b in batches {
        let d = arrow::compute::cast(b.column(0), &DataType::Utf8).expect("cast");
        let n = arrow::compute::cast(b.column(1), &DataType::Int64).expect("cast");
        let s = arrow::compute::cast(b.column(2), &DataType::Float64).expect("cast");
        let d = d.as_any().downcast_ref::<StringArray>().expect("district");
        let n = n
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .expect("n");
        let s = s.as_any().downcast_ref::<Float64Array>().expect("spend");
        for i in 0..b.num_rows() {
            if d.is_valid(i) && n.is_valid(i) && s.is_valid(i) {
                out.push((d.value(i).to_string(), n.value(i), s.value(i)));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_carry_or_replace_the_policy_and_jobs_record_what_they_read() {
    let p = platform_with_users(|_| {}).await;
    let d1 = register(&p, "visits", visits(0..40)).await;
    assert_eq!(d1.version, 1);
    authorize_datasets(&p, S, &["visits"])
        .await
        .expect("scenario");
    let provider = p.client("provider").await.expect("provider");
    let analyst = p.client("analyst").await.expect("analyst");
    let job1 = analyst.submit(S, SQL).await.expect("job on v1");
    assert_eq!(job1.dataset_versions, vec!["visits@v1"]);

    // Only the owning unit's provider adds a version; analysts and other units are refused.
    for user in ["provider-scenic", "analyst"] {
        let c = p.client(user).await.expect("client");
        let (c, m) = code(new_version(&c, "visits", "", visits(0..80)).await);
        assert_eq!(c, Code::PermissionDenied, "{user}: {m}");
        assert!(m.contains("dali-tourism-bureau"), "{m}");
    }
    // A carried-over policy needs the current columns: the refusal names each difference.
    let wrong = with_column(
        &without_column(&visits(0..80), "spend"),
        "hotel",
        vec![1.0; 80],
    );
    let (c, m) = code(new_version(&provider, "visits", "", wrong).await);
    assert_eq!(c, Code::InvalidArgument, "{m}");
    assert!(
        m.contains("missing column(s) spend") && m.contains("new column(s) hotel"),
        "{m}"
    );
    // Nothing of the refused uploads stayed: the dataset is still at version 1.
    assert_eq!(
        analyst.get_dataset("visits").await.expect("show").version,
        1
    );

    // Forty persons more: far from any one person (differencing would otherwise withhold).
    let d2 = new_version(&provider, "visits", "", visits(0..80))
        .await
        .expect("version 2");
    assert_eq!((d2.version, d2.rows), (2, 80));
    assert!(d2.policy_changes.is_empty());
    assert_eq!(d2.earlier_versions.len(), 1);
    assert_eq!(d2.id, d1.id, "a version is the same dataset");

    // A replaced policy may not move the privacy unit (releases are compared by it).
    let moved = POLICY_V3.replace("privacy_unit = \"person\"", "privacy_unit = \"district\"");
    let v3_batch = with_column(&visits(0..80), "nights", vec![2.0; 80]);
    let (c, m) = code(new_version(&provider, "visits", &moved, v3_batch.clone()).await);
    assert_eq!(c, Code::InvalidArgument, "{m}");
    assert!(m.contains("privacy unit"), "{m}");
    // Replaced: the answer names the columns whose grades and uses changed.
    let d3 = new_version(&provider, "visits", POLICY_V3, v3_batch)
        .await
        .expect("version 3");
    assert_eq!(d3.version, 3);
    assert!(
        d3.policy_changes
            .iter()
            .any(|c| c.starts_with("district: grade general → important")),
        "{:?}",
        d3.policy_changes
    );
    assert!(
        d3.policy_changes
            .iter()
            .any(|c| c.starts_with("nights: added")),
        "{:?}",
        d3.policy_changes
    );

    // The scenario keeps the columns it approved; the new one is not approved.
    let v = analyst.check(S, SQL).await.expect("check");
    assert!(v.allowed, "{v:?}");
    let (c, m) = code(
        analyst
            .check(
                S,
                "SELECT district, sum(nights) AS n FROM visits GROUP BY district",
            )
            .await,
    );
    assert_eq!(c, Code::PermissionDenied, "{m}");
    assert!(
        m.contains("visits.nights") && m.contains("not among the columns scenario"),
        "{m}"
    );

    // Queries read the latest version, in production and development; the sample was redrawn.
    let job3 = analyst.submit(S, SQL).await.expect("job on v3");
    assert_eq!(job3.dataset_versions, vec!["visits@v3"]);
    let (dev, _, _) = analyst
        .run_dev(
            S,
            "SELECT district, count(*) AS n FROM visits GROUP BY district",
        )
        .await
        .expect("dev");
    assert_eq!(dev.dataset_versions, vec!["visits@v3"]);
    let dev_dir = p.dir.join("dev").join(&d1.id);
    assert!(dev_dir.join("v3").exists());
    assert!(!dev_dir.join("v1").exists() && !dev_dir.join("v2").exists());
    // Earlier versions' encrypted files stay: releases over them remain traceable.
    for v in 1..=3 {
        assert!(
            p.dir
                .join("datasets")
                .join(&d1.id)
                .join(format!("v{v}"))
                .exists()
        );
    }

    // The job, its lineage and its receipt name the version it read.
    let job1 = run_and_approve(&p, &job1).await;
    assert_eq!(job1.dataset_versions, vec!["visits@v1"]);
    let l = analyst.lineage("", &job1.id).await.expect("lineage");
    assert_eq!(l.datasets, vec!["visits@v1"]);
    let (file, receipt) = analyst.fetch_file(&job1.id, "csv").await.expect("fetch");
    let key = analyst.platform_key().await.expect("key");
    erhai_client::receipt::verify(&receipt, &file, &key).expect("the receipt verifies");
    run_and_approve(&p, &job3).await;
    let l = provider.lineage("visits", "").await.expect("lineage");
    assert_eq!(l.datasets, vec!["visits@v1", "visits@v3"]);
    let shown = provider.get_dataset("visits").await.expect("show");
    assert_eq!(
        shown
            .earlier_versions
            .iter()
            .map(|v| v.version)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    p.stop().await.expect("stop");
}

/// The attacker's view: the same aggregate on v1 and on v2, where v2 adds (or removes) one
/// person, would isolate that person. The differencing ledger spans versions, so the second
/// release withholds the row that would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_person_added_or_removed_by_a_version_is_not_disclosed_by_difference() {
    let p = platform_with_users(|_| {}).await;
    register(&p, "visits", visits(0..40)).await;
    register(&p, "leavers", visits((0..40).chain([TARGET]))).await;
    authorize_datasets(&p, S, &["visits", "leavers"])
        .await
        .expect("scenario");
    let provider = p.client("provider").await.expect("provider");
    let analyst = p.client("analyst").await.expect("analyst");
    let leavers_sql = SQL.replace("FROM visits", "FROM leavers");

    // Version 1 of each, released in full.
    for sql in [SQL.to_string(), leavers_sql.clone()] {
        let job = analyst.submit(S, &sql).await.expect("submit v1");
        run_and_approve(&p, &job).await;
        assert_eq!(released(&analyst, &job.id).await.len(), 2, "{sql}");
    }

    // Version 2: the target joins visits and leaves leavers (in district X, both times).
    new_version(&provider, "visits", "", visits((0..40).chain([TARGET])))
        .await
        .expect("visits v2");
    new_version(&provider, "leavers", "", visits(0..40))
        .await
        .expect("leavers v2");
    for (name, sql) in [("visits", SQL.to_string()), ("leavers", leavers_sql)] {
        let job = analyst.submit(S, &sql).await.expect("submit v2");
        assert_eq!(job.dataset_versions, vec![format!("{name}@v2")]);
        let job = run_and_approve(&p, &job).await;
        let report = job.report.as_ref().expect("report");
        let x = report
            .rows
            .iter()
            .find(|r| r.row == 0)
            .expect("district X is flagged");
        assert_eq!(x.outcome, "fail", "{name}: {x:?}");
        assert!(
            x.findings.iter().any(|f| f.rule == "differencing"),
            "{name}: {x:?}"
        );
        // What the analyst gets: district Y as before, no district X to subtract.
        let rows = released(&analyst, &job.id).await;
        assert!(rows.iter().all(|(d, _, _)| d != "X"), "{name}: {rows:?}");
    }
    p.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_dataset_takes_no_new_use_and_keeps_its_history() {
    let p = platform_with_users(|_| {}).await;
    register(&p, "visits", visits(0..40)).await;
    authorize_datasets(&p, S, &["visits"])
        .await
        .expect("scenario");
    let provider = p.client("provider").await.expect("provider");
    let analyst = p.client("analyst").await.expect("analyst");
    let pending = analyst.submit(S, SQL).await.expect("before retirement");

    // Another unit's provider and the admin may not; the owner may (the authority too).
    let other = p.client("provider-scenic").await.expect("other");
    let (c, m) = code(other.retire_dataset("visits", "not ours").await);
    assert_eq!(c, Code::PermissionDenied, "{m}");
    let (c, m) = code(provider.retire_dataset("visits", "  ").await);
    assert_eq!(c, Code::InvalidArgument, "{m}");
    let d = provider
        .retire_dataset("visits", "superseded by the 2027 register")
        .await
        .expect("retire");
    let r = d.retired.as_ref().expect("retired");
    assert_eq!(r.by, "provider");
    let (c, m) = code(
        p.client("authority")
            .await
            .expect("a")
            .retire_dataset("visits", "again")
            .await,
    );
    assert_eq!(c, Code::FailedPrecondition, "{m}");

    // No new queries: production, check and development each name the dataset, the
    // retirement and who retired it.
    let refusals = [
        code(analyst.submit(S, SQL).await),
        code(analyst.check(S, SQL).await),
        code(analyst.run_dev(S, SQL).await),
    ];
    for (c, m) in refusals {
        assert_eq!(c, Code::PermissionDenied, "{m}");
        assert!(
            m.contains("visits was retired") && m.contains("by provider"),
            "{m}"
        );
    }
    // No new scenario names it, no new version continues it.
    let app = application_for_datasets(&p, "late", &["visits"])
        .await
        .expect("application");
    let (c, m) = code(analyst.apply_scenario(app).await);
    assert_eq!(c, Code::FailedPrecondition, "{m}");
    assert!(m.contains("visits was retired"), "{m}");
    let (c, m) = code(new_version(&provider, "visits", "", visits(0..41)).await);
    assert_eq!(c, Code::FailedPrecondition, "{m}");

    // The pending job is still reviewed, fetched and traced.
    run_and_approve(&p, &pending).await;
    assert_eq!(released(&analyst, &pending.id).await.len(), 2);
    let l = provider.lineage("visits", "").await.expect("lineage");
    assert_eq!(l.jobs.len(), 1);
    assert_eq!(l.datasets, vec!["visits@v1"]);
    let listed = analyst.list_datasets().await.expect("list");
    assert!(
        listed
            .iter()
            .any(|d| d.name == "visits" && d.retired.is_some())
    );
    p.stop().await.expect("stop");
}

fn erhai(p: &Platform, user: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_erhai"))
        .arg("--identity")
        .arg(p.identity(user))
        .args(args)
        .output()
        .expect("run erhai")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_is_deleted_only_before_use_and_leaves_nothing_behind() {
    let p = platform_with_users(|_| {}).await;
    let provider = p.client("provider").await.expect("provider");
    let files = tempfile::tempdir().expect("dir");
    let csv = |name: &str, ids: std::ops::Range<u32>| {
        let path = files.path().join(name);
        let mut text = String::from("person,district,spend\n");
        for i in ids {
            text += &format!(
                "P{i:05},{},{}\n",
                if i % 2 == 0 { "X" } else { "Y" },
                100 + i
            );
        }
        std::fs::write(&path, text).expect("csv");
        path
    };
    let policy = files.path().join("policy.toml");
    std::fs::write(&policy, POLICY).expect("policy");

    // Registered by mistake through the CLI, a second version with the policy carried over
    // (the CSV's types come from the current version), then deleted.
    let first = csv("v1.csv", 0..30);
    let out = erhai(
        &p,
        "provider",
        &[
            "dataset",
            "register",
            "--name",
            "mistake",
            "--file",
            first.to_str().expect("path"),
            "--policy",
            policy.to_str().expect("path"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = csv("v2.csv", 0..31);
    let out = erhai(
        &p,
        "provider",
        &[
            "--output",
            "json",
            "dataset",
            "register",
            "--name",
            "mistake",
            "--new-version",
            "--file",
            second.to_str().expect("path"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v2: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v2["version"], 2);
    let id = v2["id"].as_str().expect("id").to_string();
    // A piece of ciphertext, to look for on disk afterwards.
    let stored = p
        .dir
        .join("datasets")
        .join(&id)
        .join("v2")
        .join("part-0.parquet");
    let bytes = std::fs::read(&stored).expect("stored");
    let needle = bytes[bytes.len() / 2..bytes.len() / 2 + 64].to_vec();

    let (c, m) = code(
        p.client("provider-scenic")
            .await
            .expect("other")
            .delete_dataset("mistake", "not ours")
            .await,
    );
    assert_eq!(c, Code::PermissionDenied, "{m}");
    let out = erhai(
        &p,
        "provider",
        &[
            "--output",
            "json",
            "dataset",
            "delete",
            "mistake",
            "--reason",
            "wrong file",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deleted: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(deleted["versions"], 2);
    assert!(deleted["files_removed"].as_u64().expect("files") >= 2);
    assert!(!p.dir.join("datasets").join(&id).exists());
    assert!(!p.dir.join("dev").join(&id).exists());
    assert!(!erhai_devkit::demo::contains_bytes(&p.dir, &needle).expect("scan"));
    let (c, _) = code(provider.get_dataset("mistake").await);
    assert_eq!(c, Code::NotFound);
    // The deletion is audited with its reason.
    let events = p
        .client("auditor")
        .await
        .expect("auditor")
        .audit(50, "provider", "delete_dataset")
        .await
        .expect("audit");
    assert!(
        events
            .iter()
            .any(|e| e.outcome == "allowed" && e.object.contains("wrong file")),
        "{events:?}"
    );
    // The name is free again.
    register(&p, "mistake", visits(0..40)).await;

    // Once a scenario approved it and a job read it, it is retired, not deleted.
    authorize_datasets(&p, S, &["mistake"])
        .await
        .expect("scenario");
    p.client("analyst")
        .await
        .expect("analyst")
        .run_dev(
            S,
            "SELECT district, count(*) AS n FROM mistake GROUP BY district",
        )
        .await
        .expect("dev");
    let (c, m) = code(provider.delete_dataset("mistake", "second thoughts").await);
    assert_eq!(c, Code::FailedPrecondition, "{m}");
    assert!(
        m.contains("1 job(s)") && m.contains("1 scenario(s)") && m.contains("dataset retire"),
        "{m}"
    );
    assert!(provider.get_dataset("mistake").await.is_ok());
    p.stop().await.expect("stop");
}
