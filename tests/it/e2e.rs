//! End-to-end tests: the real server on 127.0.0.1 with real TLS, driven through the client.

use crate::common::{code as status, platform_with_users};
use erhai_client::{Client, ClientError, IdentityBundle, upload_messages};
use erhai_devkit::demo::{Platform, TENANT, authorize_datasets, contains_bytes, load_demo_data};
use erhai_devkit::demo_data::{self, Sizes};
use tonic::Code;

const SEED: u64 = 11;
const STAYS: usize = 3_000;
/// The scenario every query of these tests names: all columns of the three demo tables.
const S: &str = "e2e";
/// How long a test waits for a job to finish running.
const LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// A platform with the demo users, the demo data and a second tenant's analyst.
async fn platform() -> Platform {
    platform_with(|_| {}).await
}

async fn platform_with(edit: impl FnOnce(&mut erhai_gateway::ServerConfig)) -> Platform {
    let p = platform_with_users(edit).await;
    p.add_user("other-analyst", "外部分析", "analyst", "erhai-insight", "")
        .await
        .expect("user");
    load_demo_data(&p, SEED, Sizes::with_stays(STAYS))
        .await
        .expect("data");
    authorize_datasets(&p, S, &["hotel_stays", "scenic_entries", "enterprises"])
        .await
        .expect("scenario");
    p
}

fn check_status<T: std::fmt::Debug>(r: Result<T, ClientError>, code: Code, fragment: &str) {
    let (c, m) = status(r);
    assert_eq!(c, code, "{m}");
    assert!(m.contains(fragment), "`{m}` should contain `{fragment}`");
}

const BY_DISTRICT: &str = "SELECT district, count(DISTINCT id_number) AS visitors, sum(nights) AS nights FROM hotel_stays GROUP BY district";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_query_review_release() {
    let p = platform().await;
    let analyst = p.client("analyst").await.expect("analyst");
    let reviewer = p.client("reviewer").await.expect("reviewer");

    let job = analyst.submit(S, BY_DISTRICT).await.expect("submit");
    assert_eq!(job.state, "awaiting_review", "{job:?}");
    assert!(job.report.is_none(), "the analyst sees no check report");
    let checked = reviewer.finished(&job.id, LIMIT).await.expect("finished");
    assert_eq!(checked.report.expect("report").rows_released, 12);

    // Nothing is downloadable before approval.
    check_status(
        analyst.fetch(&job.id).await,
        Code::FailedPrecondition,
        "only results a reviewer approved",
    );

    let (detail, preview) = reviewer.show_review(&job.id).await.expect("show");
    assert_eq!(detail.preview_rows, 12);
    assert_eq!(
        preview[0].num_columns(),
        3,
        "hidden statistics never leave the engine"
    );
    check_status(
        reviewer.decide(&job.id, true, "  ").await,
        Code::InvalidArgument,
        "needs a reason",
    );
    let approved = reviewer
        .decide(&job.id, true, "district totals")
        .await
        .expect("approve");
    assert_eq!(approved.state, "released");
    check_status(
        reviewer.decide(&job.id, false, "again").await,
        Code::FailedPrecondition,
        "is released by reviewer",
    );

    let (schema, batches) = analyst.fetch(&job.id).await.expect("fetch");
    assert_eq!(schema.fields().len(), 3);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 12);

    // The released visitors equal what DataFusion computes on the generated data directly.
    let data = demo_data::generate(SEED, Sizes::with_stays(STAYS)).expect("data");
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.register_batch("hotel_stays", data.hotel_stays)
        .expect("register");
    let expected = ctx
        .sql("SELECT sum(v) FROM (SELECT count(DISTINCT id_number) AS v FROM hotel_stays GROUP BY district)")
        .await
        .expect("sql")
        .collect()
        .await
        .expect("collect");
    let expected =
        arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(expected[0].column(0))
            .value(0);
    let released: i64 = batches
        .iter()
        .map(|b| {
            arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(b.column(1))
                .iter()
                .flatten()
                .sum::<i64>()
        })
        .sum();
    assert_eq!(released, expected);

    // The CSV, Parquet and Arrow writers all accept the release.
    for ext in ["csv", "parquet", "arrow"] {
        let out = p.dir.join(format!("out.{ext}"));
        erhai_client::files::write_data(&out, &schema, &batches).expect("write");
        let (_, back) = erhai_client::files::read_data(&out, None).expect("read back");
        assert_eq!(
            back.iter().map(|b| b.num_rows()).sum::<usize>(),
            12,
            "{ext}"
        );
    }
    p.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_groups_are_suppressed() {
    let p = platform().await;
    let analyst = p.client("analyst").await.expect("analyst");
    let job = analyst
        .submit(S, "SELECT hotel_name, checkin_date, count(*) AS n FROM hotel_stays GROUP BY hotel_name, checkin_date")
        .await
        .expect("submit");
    // The analyst sees neither how many rows were suppressed nor which.
    assert!(job.report.is_none());
    let auditor = p.client("auditor").await.expect("auditor");
    let r = auditor
        .finished(&job.id, LIMIT)
        .await
        .expect("job")
        .report
        .expect("report");
    assert!(
        r.rows_suppressed > 0 && r.rows_suppressed == r.rows_computed - r.rows_released,
        "{r:?}"
    );
    let failed = r
        .rows
        .iter()
        .find(|x| x.outcome == "fail")
        .expect("a failed row");
    assert!(
        failed.reasons[0].contains("distinct privacy units of hotel_stays"),
        "{failed:?}"
    );
    assert_eq!(r.outcome, "fail");
    assert!(analyst.job(&job.id).await.expect("job").report.is_none());
    // A global aggregate over fewer than k persons is suppressed whole: 0 and 1 look alike.
    let tiny = analyst
        .submit(S, "SELECT count(*) AS n FROM hotel_stays WHERE district = '漾濞县' AND nights = 7 AND birth_year = 1960")
        .await
        .expect("submit");
    let tiny = auditor.finished(&tiny.id, LIMIT).await.expect("job");
    assert_eq!(tiny.report.expect("report").rows_released, 0);
    p.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_column_use_and_rule() {
    let p = platform().await;
    let analyst = p.client("analyst").await.expect("analyst");
    let cases: &[(&str, Code, &str)] = &[
        (
            "SELECT id_number, district FROM hotel_stays",
            Code::PermissionDenied,
            "hotel_stays.id_number",
        ),
        (
            "SELECT upper(id_number) AS x, count(*) FROM hotel_stays GROUP BY upper(id_number)",
            Code::PermissionDenied,
            "group_by",
        ),
        (
            "SELECT district, max(spend_yuan) FROM hotel_stays GROUP BY district",
            Code::PermissionDenied,
            "max() returns one row's value",
        ),
        (
            "SELECT guest_name, count(*) FROM hotel_stays GROUP BY guest_name",
            Code::PermissionDenied,
            "hotel_stays.guest_name",
        ),
        (
            "SELECT * FROM hotel_stays",
            Code::PermissionDenied,
            "may not be output raw",
        ),
        (
            "SELECT district FROM hotel_stays",
            Code::PermissionDenied,
            "production results must be aggregated",
        ),
        (
            "SELECT district, count(*) FROM hotel_stays WHERE stay_id = 'S000000001' GROUP BY district",
            Code::PermissionDenied,
            "hotel_stays.stay_id",
        ),
        (
            "SELEC district FROM hotel_stays",
            Code::InvalidArgument,
            "could not be planned",
        ),
        (
            "SELECT count(*) FROM no_such_table",
            Code::InvalidArgument,
            "no_such_table",
        ),
        (
            "CREATE TABLE t AS SELECT 1",
            Code::PermissionDenied,
            "only queries",
        ),
        (
            "SELECT count(*) FROM hotel_stays; SELECT 1",
            Code::PermissionDenied,
            "exactly one SQL statement",
        ),
        (
            "EXPLAIN SELECT count(*) FROM hotel_stays",
            Code::PermissionDenied,
            "EXPLAIN is not available",
        ),
        (
            "SELECT count(*) AS __erhai_units_0 FROM hotel_stays",
            Code::PermissionDenied,
            "reserved",
        ),
        (
            "SELECT count(*) FROM read_parquet('/etc/passwd')",
            Code::InvalidArgument,
            "read_parquet",
        ),
    ];
    for (sql, code, fragment) in cases {
        let (c, m) = status(analyst.submit(S, sql).await);
        assert_eq!(
            (c, m.contains(fragment)),
            (*code, true),
            "{sql}\n→ {c:?}: {m}"
        );
    }
    // Refused jobs are recorded, never run.
    let jobs = analyst.jobs().await.expect("jobs");
    assert!(
        jobs.iter()
            .all(|j| j.state == "refused" || j.state == "failed"),
        "{jobs:?}"
    );
    assert!(jobs.iter().all(|j| j.report.is_none()));
    p.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_isolated_and_roles_enforced() {
    let p = platform().await;
    let analyst = p.client("analyst").await.expect("analyst");
    let other = p.client("other-analyst").await.expect("other");
    let job = analyst.submit(S, BY_DISTRICT).await.expect("submit");
    let reviewer = p.client("reviewer").await.expect("r");
    reviewer.finished(&job.id, LIMIT).await.expect("run");
    reviewer.decide(&job.id, true, "ok").await.expect("approve");

    // Tenant B sees neither the job nor the release nor A's scenario; the public catalog is
    // all it sees, and reading any of it needs a scenario of its own.
    check_status(other.job(&job.id).await, Code::NotFound, "no job");
    check_status(other.fetch(&job.id).await, Code::NotFound, "no job");
    assert!(other.jobs().await.expect("jobs").is_empty());
    assert_eq!(other.list_datasets().await.expect("datasets").len(), 3);
    check_status(
        other.submit(S, BY_DISTRICT).await,
        Code::NotFound,
        "no scenario `e2e` visible to you",
    );
    check_status(
        other.submit("", BY_DISTRICT).await,
        Code::InvalidArgument,
        "every query names its scenario",
    );
    check_status(
        other.check("", BY_DISTRICT).await,
        Code::InvalidArgument,
        "every query names its scenario",
    );

    // The permission matrix.
    let provider = p.client("provider").await.expect("provider");
    let admin = p.client("admin").await.expect("admin");
    let reviewer = p.client("reviewer").await.expect("reviewer");
    check_status(
        provider.submit(S, BY_DISTRICT).await,
        Code::PermissionDenied,
        "role provider may not submit query",
    );
    check_status(
        admin.fetch(&job.id).await,
        Code::PermissionDenied,
        "role admin may not fetch release",
    );
    check_status(
        admin.submit(S, BY_DISTRICT).await,
        Code::PermissionDenied,
        "reserved for: analyst",
    );
    check_status(
        reviewer.fetch(&job.id).await,
        Code::PermissionDenied,
        "reserved for: analyst",
    );
    check_status(
        analyst.decide(&job.id, true, "mine").await,
        Code::PermissionDenied,
        "reserved for: reviewer",
    );
    check_status(
        analyst.audit(10, "", "").await,
        Code::PermissionDenied,
        "reserved for: auditor, admin",
    );
    check_status(
        analyst.review_scenario(S, true, "my own", &[]).await,
        Code::PermissionDenied,
        "role analyst may not review scenario",
    );
    // Providers see only their own unit's datasets.
    let mine = provider.list_datasets().await.expect("datasets");
    assert_eq!(
        mine.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        vec!["hotel_stays"]
    );
    p.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_change_nothing() {
    let p = platform().await;
    let provider = p.client("provider").await.expect("provider");
    let before = provider.list_datasets().await.expect("list").len();
    let data = demo_data::generate(3, Sizes::with_stays(200)).expect("data");
    let batch = data.hotel_stays;
    let schema = batch.schema();

    // A CSV whose columns do not match the policy.
    let csv = p.dir.join("stays.csv");
    erhai_client::files::write_data(
        &csv,
        &schema,
        &[batch
            .project(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
            .expect("project")],
    )
    .expect("csv");
    let policy = demo_data::HOTEL_STAYS_POLICY;
    let (s, b) = erhai_client::files::read_data(&csv, Some(policy)).expect("read csv");
    check_status(
        provider.register("stays_csv", "", policy, s, b).await,
        Code::InvalidArgument,
        "policy names column `spend_yuan`",
    );

    // A column without a policy entry.
    let short_policy = policy.replace("[columns.nights]", "[columns.nights_renamed]");
    check_status(
        provider
            .register(
                "stays2",
                "",
                &short_policy,
                schema.clone(),
                vec![batch.clone()],
            )
            .await,
        Code::InvalidArgument,
        "column `nights` has no policy entry",
    );

    // A bad policy file.
    check_status(
        provider
            .register(
                "stays3",
                "",
                "privacy_unit = 1",
                schema.clone(),
                vec![batch.clone()],
            )
            .await,
        Code::InvalidArgument,
        "policy",
    );
    check_status(
        provider
            .register("Bad Name", "", policy, schema.clone(), vec![batch.clone()])
            .await,
        Code::InvalidArgument,
        "dataset name",
    );

    // A truncated upload: no finish message, then a lying finish message.
    let msgs = upload_messages(
        "stays4",
        "",
        policy,
        &schema,
        std::slice::from_ref(&batch),
        false,
    )
    .expect("msgs");
    check_status(
        provider.register_raw(msgs).await,
        Code::DataLoss,
        "truncated",
    );
    let mut msgs = upload_messages(
        "stays4",
        "",
        policy,
        &schema,
        std::slice::from_ref(&batch),
        true,
    )
    .expect("msgs");
    if let Some(erhai_proto::v1::RegisterChunk {
        part: Some(erhai_proto::v1::register_chunk::Part::Finish(f)),
    }) = msgs.last_mut()
    {
        f.total_rows += 1;
    }
    check_status(
        provider.register_raw(msgs).await,
        Code::DataLoss,
        "incomplete",
    );

    // A name already taken.
    check_status(
        provider
            .register(
                "hotel_stays",
                "",
                policy,
                schema.clone(),
                vec![batch.clone()],
            )
            .await,
        Code::AlreadyExists,
        "already exists",
    );

    assert_eq!(
        provider.list_datasets().await.expect("list").len(),
        before,
        "nothing was registered"
    );
    // The name of a failed upload is free again, and no half-written files stayed behind.
    provider
        .register("stays4", "", policy, schema, vec![batch])
        .await
        .expect("a good upload works");
    let leftovers = walk(&p.dir.join("datasets"))
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "tmp"))
        .count();
    assert_eq!(leftovers, 0);
    p.stop().await.expect("stop");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path))
            } else {
                out.push(path)
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_is_the_verified_certificate() {
    let p = platform().await;
    // Without a client certificate the TLS handshake fails: no call reaches a service.
    let ca = std::fs::read_to_string(p.identity("analyst").join("ca.pem")).expect("ca");
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&ca))
        .domain_name("localhost");
    let channel = tonic::transport::Channel::from_shared(p.endpoint.clone())
        .expect("uri")
        .tls_config(tls)
        .expect("tls")
        .connect()
        .await;
    let anonymous = match channel {
        Err(_) => true,
        Ok(ch) => erhai_proto::v1::admin_service_client::AdminServiceClient::new(ch)
            .who_am_i(erhai_proto::v1::Empty {})
            .await
            .is_err(),
    };
    assert!(anonymous, "a call without a client certificate must fail");

    // A certificate from another platform's CA is refused.
    let other = Platform::start(None, |_| {})
        .await
        .expect("second platform");
    let mut foreign = IdentityBundle::load(&other.identity("admin")).expect("bundle");
    foreign.endpoint = p.endpoint.clone();
    let foreign_ok = match Client::connect(&foreign).await {
        Err(_) => false,
        Ok(c) => c.whoami().await.is_ok(),
    };
    assert!(
        !foreign_ok,
        "a foreign CA's certificate must not authenticate"
    );
    other.stop().await.expect("stop other");

    // Role and tenant come from the user record at each call: expiry takes effect at once.
    let analyst = p.client("analyst").await.expect("analyst");
    assert_eq!(analyst.whoami().await.expect("whoami").tenant, TENANT);
    let admin = p.client("admin").await.expect("admin");
    admin
        .set_user_expiry("analyst", chrono::Utc::now().timestamp_millis() - 1000)
        .await
        .expect("expire");
    check_status(
        analyst.submit(S, BY_DISTRICT).await,
        Code::Unauthenticated,
        "expired",
    );
    admin.set_user_expiry("analyst", 0).await.expect("renew");
    analyst.whoami().await.expect("renewed");

    // Re-issuing a user's certificate is refused (ids are unique); a duplicate id too.
    let dup = p.add_user("analyst", "x", "analyst", TENANT, "").await;
    check_status(dup, Code::AlreadyExists, "already exists");
    check_status(
        p.add_user("bad id", "x", "analyst", TENANT, "").await,
        Code::InvalidArgument,
        "user id",
    );
    check_status(
        p.add_user("no-tenant", "x", "analyst", "", "").await,
        Code::InvalidArgument,
        "--tenant",
    );

    // Every call, allowed or denied, is audited; the chain verifies.
    let auditor = p.client("auditor").await.expect("auditor");
    let events = auditor.audit(100_000, "analyst", "").await.expect("audit");
    assert!(
        events
            .iter()
            .any(|e| e.outcome == "denied" && e.reason.contains("expired")),
        "{events:?}"
    );
    assert!(auditor.audit_verify().await.expect("verify").ok);
    p.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_at_rest_is_plaintext_and_restart_keeps_state() {
    let p = platform().await;
    let data = demo_data::generate(SEED, Sizes::with_stays(STAYS)).expect("data");
    let stays = &data.hotel_stays;
    let value = |col: usize, row: usize| {
        arrow::array::AsArray::as_string::<i32>(stays.column(col))
            .value(row)
            .to_string()
    };
    for needle in [
        value(2, 0),
        value(2, 17),
        value(1, 3),
        value(3, 5),
        value(8, 0),
    ] {
        assert!(
            !contains_bytes(&p.dir, needle.as_bytes()).expect("scan"),
            "`{needle}` found in plaintext on disk"
        );
    }
    // The files are Parquet with an encrypted footer ("PARE"), not plain Parquet ("PAR1").
    let files: Vec<_> = walk(&p.dir.join("datasets"));
    assert_eq!(files.len(), 3);
    for f in &files {
        let bytes = std::fs::read(f).expect("read");
        assert_eq!(&bytes[bytes.len() - 4..], b"PARE", "{}", f.display());
    }

    // A restart keeps datasets, jobs and the audit chain.
    let analyst = p.client("analyst").await.expect("analyst");
    let job = analyst.submit(S, BY_DISTRICT).await.expect("submit");
    // Job records are sealed: a literal an analyst typed (it may be personal) is not on disk.
    let literal = "洱海边上的一家独特客栈Z9";
    let typed = analyst
        .submit(
            S,
            &format!("SELECT count(*) AS n FROM hotel_stays WHERE hotel_name = '{literal}'"),
        )
        .await
        .expect("submit");
    p.client("auditor")
        .await
        .expect("auditor")
        .finished(&typed.id, LIMIT)
        .await
        .expect("run");
    assert!(
        !contains_bytes(&p.dir, literal.as_bytes()).expect("scan"),
        "a query's literal found in plaintext on disk"
    );
    let p = p.restart().await.expect("restart");
    let analyst = p.client("analyst").await.expect("reconnect");
    assert_eq!(
        analyst.job(&job.id).await.expect("job").state,
        "awaiting_review"
    );
    let again = analyst
        .submit(S, BY_DISTRICT)
        .await
        .expect("query after restart");
    let auditor = p.client("auditor").await.expect("auditor");
    let again = auditor.finished(&again.id, LIMIT).await.expect("job");
    assert_eq!(again.report.expect("report").rows_released, 12);
    let v = auditor.audit_verify().await.expect("verify");
    assert!(v.ok, "{}", v.detail);
    p.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_give_precise_errors() {
    let p = platform_with(|cfg| {
        cfg.limits.max_result_rows = 5;
        cfg.limits.max_upload_mib = 1;
    })
    .await;
    let analyst = p.client("analyst").await.expect("analyst");
    let reviewer = p.client("reviewer").await.expect("reviewer");
    let job = analyst.submit(S, BY_DISTRICT).await.expect("submit");
    // The reviewer sees the failure and its reason; the analyst sees the job awaiting review
    // until the reviewer has looked, then failed without the error (it may depend on values).
    let failed = reviewer.finished(&job.id, LIMIT).await.expect("job");
    assert_eq!(failed.state, "failed");
    assert!(
        failed.error.contains("exceeds the limit of 5 rows"),
        "{}",
        failed.error
    );
    assert!(
        reviewer
            .pending()
            .await
            .expect("pending")
            .iter()
            .any(|j| j.id == job.id)
    );
    let seen = analyst.job(&job.id).await.expect("job");
    assert_eq!(
        (seen.state.as_str(), seen.error.as_str()),
        ("awaiting_review", "")
    );
    check_status(
        reviewer.decide(&job.id, true, "fine").await,
        Code::FailedPrecondition,
        "nothing to release",
    );
    reviewer
        .decide(&job.id, false, "the result is too large; narrow the query")
        .await
        .expect("close");
    // Closed, a failed run looks like a rejection: whether a run failed may depend on values.
    let seen = analyst.job(&job.id).await.expect("job");
    assert_eq!((seen.state.as_str(), seen.error.as_str()), ("rejected", ""));
    assert_eq!(
        seen.review_reason,
        "the result is too large; narrow the query"
    );
    check_status(
        analyst.fetch(&job.id).await,
        Code::FailedPrecondition,
        "only results a reviewer approved",
    );
    check_status(
        analyst.submit(S, &"x".repeat(70_000)).await,
        Code::InvalidArgument,
        "the limit is 65536",
    );
    p.stop().await.expect("stop");
}

/// Every string value of `batches`.
fn strings(batches: &[arrow::record_batch::RecordBatch]) -> std::collections::HashSet<String> {
    use arrow::array::Array;
    let mut out = std::collections::HashSet::new();
    for b in batches {
        for col in b.columns() {
            let Ok(s) = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8) else {
                continue;
            };
            let s = s
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .expect("utf8");
            out.extend(s.iter().flatten().map(str::to_string));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_runs_on_desensitized_samples() {
    use arrow::array::AsArray;
    let p = platform().await;
    let analyst = p.client("analyst").await.expect("analyst");
    let raw = demo_data::generate(SEED, Sizes::with_stays(STAYS)).expect("data");

    let d = analyst.get_dataset("hotel_stays").await.expect("dataset");
    assert_eq!(
        d.dev_sample_rows, 300,
        "1% of 3,000 is below the floor of 1,000, but a sample is never more than a tenth"
    );
    assert!(
        d.dev_sample_rule.contains("at most 10%"),
        "{}",
        d.dev_sample_rule
    );
    let by = |c: &str| {
        d.columns
            .iter()
            .find(|x| x.name == c)
            .expect("column")
            .sample
            .clone()
    };
    assert_eq!(by("birth_year"), "generalized to 10-wide bands");
    assert_eq!(
        by("id_number"),
        "pseudonymized (keyed, joins across samples)"
    );
    assert!(by("spend_yuan").starts_with("perturbed"));

    // Row-level output is fine in development: the sample is desensitized.
    let (job, _, rows) = analyst
        .run_dev(S, "SELECT * FROM hotel_stays")
        .await
        .expect("dev query");
    assert_eq!((job.env.as_str(), job.state.as_str()), ("dev", "completed"));
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 300);
    let seen = strings(&rows);
    let stays = &raw.hotel_stays;
    for column in ["id_number", "phone", "guest_name", "stay_id"] {
        let values = stays
            .column_by_name(column)
            .expect("column")
            .as_string::<i32>();
        let leaked = values
            .iter()
            .flatten()
            .filter(|v| seen.contains(*v))
            .count();
        assert_eq!(leaked, 0, "raw {column} values in the development sample");
    }
    let schema = rows[0].schema();
    assert!(
        schema.column_with_name("stay_id").is_none(),
        "secret columns are left out"
    );
    let phones = rows[0]
        .column_by_name("phone")
        .expect("phone")
        .as_string::<i32>();
    assert!(phones.iter().flatten().all(|p| p.len() == 32), "pseudonyms");
    let ids = rows[0]
        .column_by_name("id_number")
        .expect("id")
        .as_string::<i32>();
    assert!(ids.iter().flatten().all(|t| t.len() == 32), "pseudonyms");

    // Development jobs are never reviewed; promotion submits the SQL to production, where the
    // production rules apply.
    let (dev_job, _, _) = analyst.run_dev(S, BY_DISTRICT).await.expect("dev query");
    let reviewer = p.client("reviewer").await.expect("reviewer");
    let pending = reviewer.pending().await.expect("pending");
    assert!(pending.iter().all(|j| j.env != "dev"));
    let prod = analyst.promote(&dev_job.id).await.expect("promote");
    assert_eq!(prod.env, "prod");
    assert_eq!(prod.promoted_from, dev_job.id);
    check_status(
        analyst.promote(&job.id).await,
        Code::PermissionDenied,
        "production results must be aggregated",
    );
    check_status(
        analyst.promote(&prod.id).await,
        Code::FailedPrecondition,
        "only development jobs are promoted",
    );

    // Other tenants see neither the job nor the samples outside a scenario of their own.
    let other = p.client("other-analyst").await.expect("other");
    check_status(other.promote(&dev_job.id).await, Code::NotFound, "no job");
    check_status(
        other.run_dev(S, "SELECT count(*) FROM hotel_stays").await,
        Code::NotFound,
        "no scenario `e2e` visible to you",
    );
    check_status(
        other.run_dev("", "SELECT count(*) FROM hotel_stays").await,
        Code::InvalidArgument,
        "every query names its scenario",
    );
    p.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_traces_a_release_through_a_join() {
    let p = platform().await;
    let analyst = p.client("analyst").await.expect("analyst");
    let reviewer = p.client("reviewer").await.expect("reviewer");
    let auditor = p.client("auditor").await.expect("auditor");
    let sql = "SELECT h.district, count(DISTINCT s.id_number) AS visitors FROM hotel_stays h \
               JOIN scenic_entries s ON h.id_number = s.id_number GROUP BY h.district";
    let job = analyst.submit(S, sql).await.expect("submit");
    assert_eq!(job.state, "awaiting_review", "{job:?}");
    reviewer.finished(&job.id, LIMIT).await.expect("run");
    reviewer
        .decide(&job.id, true, "visitor counts by district")
        .await
        .expect("approve");
    analyst.fetch(&job.id).await.expect("fetch");

    // Where the release came from.
    let l = auditor.lineage("", &job.id).await.expect("lineage");
    assert_eq!(l.datasets, vec!["hotel_stays@v1", "scenic_entries@v1"]);
    assert!(
        l.columns.contains(&"hotel_stays.district".to_string()),
        "{:?}",
        l.columns
    );
    assert!(l.columns.contains(&"scenic_entries.id_number".to_string()));
    assert_eq!(l.jobs[0].submitted_by, "analyst");
    assert_eq!(l.jobs[0].reviewed_by, "reviewer");
    assert_eq!(l.downloads.len(), 1);
    assert_eq!(l.downloads[0].user, "analyst");

    // Jobs that never scanned scenic_entries — refused, failed at planning, development —
    // are not in its lineage, although their scenario lists it.
    let refused = "SELECT id_number FROM hotel_stays";
    check_status(analyst.submit(S, refused).await, Code::PermissionDenied, "");
    let misspelt = "SELECT count(*) FROM hotel_stays WHERE nope = 1";
    check_status(analyst.submit(S, misspelt).await, Code::InvalidArgument, "");
    analyst.run_dev(S, BY_DISTRICT).await.expect("dev query");

    // Where a dataset went: its provider sees it, another unit's provider does not; of the
    // jobs, a provider sees its own unit's datasets and columns only.
    let scenic = p.client("provider-scenic").await.expect("provider");
    let l = scenic.lineage("scenic_entries", "").await.expect("lineage");
    assert!(l.jobs.iter().any(|j| j.id == job.id));
    assert!(
        l.jobs.iter().all(|j| j.sql.contains("scenic_entries")),
        "{:?}",
        l.jobs.iter().map(|j| &j.sql).collect::<Vec<_>>()
    );
    assert_eq!(l.datasets, vec!["scenic_entries@v1"]);
    assert!(!l.columns.is_empty());
    assert!(
        l.columns.iter().all(|c| c.starts_with("scenic_entries.")),
        "{:?}",
        l.columns
    );
    assert!(l.downloads.iter().any(|d| d.job == job.id));
    let market = p.client("provider-market").await.expect("provider");
    check_status(
        market.lineage("scenic_entries", "").await,
        Code::NotFound,
        "no dataset",
    );
    // Tenants see their own jobs only.
    let other = p.client("other-analyst").await.expect("other");
    check_status(other.lineage("", &job.id).await, Code::NotFound, "no job");
    check_status(
        auditor.lineage("", "").await,
        Code::InvalidArgument,
        "exactly one",
    );

    // The job's internal steps are events of their own; calls carry the digest of the request.
    let events = auditor
        .audit_query(erhai_proto::v1::ListAuditRequest {
            object: job.id.clone(),
            all: true,
            ..Default::default()
        })
        .await
        .expect("events");
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    for a in [
        "submit_query",
        "job_started",
        "key_use",
        "job_finished",
        "decide",
        "fetch_release",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let submit = events
        .iter()
        .find(|e| e.action == "submit_query")
        .expect("submit event");
    assert_eq!(submit.digest.len(), 64);
    p.stop().await.expect("stop");
}
