//! The automatic disclosure checks on crafted data, end to end: the real server on 127.0.0.1
//! with TLS, a crafted dataset registered by its provider, queries by an analyst, decisions by a
//! reviewer. Each check fires where it should and only there.

use crate::common::{code, platform_with_users};

use std::sync::Arc;

use arrow::array::{Float64Array, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use erhai_client::Client;
use erhai_devkit::demo::{
    Platform, TENANT, application_for_datasets, authorize_datasets, authorize_scenario,
};
use erhai_proto::v1 as pb;
use tonic::Code;

/// The scenario of the tests' queries: every column of firms.
pub(crate) const S: &str = "firms";

const POLICY: &str = r#"
privacy_unit = "firm_id"

[columns.firm_id]
kind = "other"
grade = "general"
uses = "identifier"

[columns.district]
kind = "dimension"
grade = "general"
uses = "dimension"

[columns.sector]
kind = "dimension"
grade = "general"
uses = "dimension"

[columns.revenue]
kind = "measure"
grade = "general"
uses = "measure"
bounds = [0, 20000]

[columns.refund]
kind = "measure"
grade = "general"
uses = "measure"
bounds = [-100, 100]

[columns.employees]
kind = "measure"
grade = "general"
uses = "measure"
aggregate_functions = ["count", "sum", "avg", "max"]
"#;

/// One firm: district, sector, revenue, refund, employees.
type Firm = (&'static str, &'static str, f64, f64, i32);

/// The crafted firms, district by district:
/// - A: 12 firms, all in one sector, equal revenue, refunds all zero;
/// - B: 24 firms, two sectors, one firm with 10,000 of revenue against 10 for the rest;
/// - C: 9 firms (one short of k);
/// - D: 24 firms, two sectors, one negative refund, one firm with a single employee;
/// - E: 12 firms whose two largest hold exactly 90% of revenue (the n-k boundary);
/// - F: exactly 10 firms (the threshold boundary).
fn firms() -> Vec<Firm> {
    let mut v: Vec<Firm> = Vec::new();
    v.extend((0..12).map(|_| ("A", "餐饮", 100.0, 0.0, 5)));
    v.extend((0..24).map(|i| {
        let sector = if i % 2 == 0 { "餐饮" } else { "零售" };
        let revenue = if i == 0 { 10_000.0 } else { 10.0 };
        ("B", sector, revenue, 1.0, if i == 1 { 1 } else { 5 })
    }));
    v.extend((0..9).map(|_| ("C", "零售", 100.0, 1.0, 5)));
    v.extend((0..24).map(|i| {
        let sector = if i % 2 == 0 { "餐饮" } else { "零售" };
        let refund = if i == 0 { -50.0 } else { 5.0 };
        ("D", sector, 100.0, refund, if i == 3 { 1 } else { 5 })
    }));
    v.extend((0..12).map(|i| ("E", "零售", if i < 2 { 45.0 } else { 1.0 }, 1.0, 5)));
    v.extend((0..10).map(|_| ("F", "餐饮", 100.0, 1.0, 5)));
    v
}

fn batch() -> RecordBatch {
    let f = firms();
    let schema = Arc::new(Schema::new(vec![
        Field::new("firm_id", DataType::Utf8, false),
        Field::new("district", DataType::Utf8, false),
        Field::new("sector", DataType::Utf8, false),
        Field::new("revenue", DataType::Float64, false),
        Field::new("refund", DataType::Float64, false),
        Field::new("employees", DataType::Int32, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                (0..f.len()).map(|i| format!("91532900MA{i:08}")),
            )),
            Arc::new(StringArray::from_iter_values(f.iter().map(|x| x.0))),
            Arc::new(StringArray::from_iter_values(f.iter().map(|x| x.1))),
            Arc::new(Float64Array::from_iter_values(f.iter().map(|x| x.2))),
            Arc::new(Float64Array::from_iter_values(f.iter().map(|x| x.3))),
            Arc::new(Int32Array::from_iter_values(f.iter().map(|x| x.4))),
        ],
    )
    .expect("batch")
}

async fn platform() -> Platform {
    platform_with(|_| {}).await
}

pub(crate) async fn platform_with(edit: impl FnOnce(&mut erhai_gateway::ServerConfig)) -> Platform {
    let p = platform_with_users(edit).await;
    p.add_user("reviewer2", "第二审核", "reviewer", TENANT, "")
        .await
        .expect("user");
    let b = batch();
    p.client("provider-market")
        .await
        .expect("provider")
        .register("firms", "crafted firms", POLICY, b.schema(), vec![b])
        .await
        .expect("register");
    authorize_datasets(&p, S, &["firms"])
        .await
        .expect("scenario");
    p
}

/// The rules that fired on computed row `row`.
pub(crate) fn rules_of(job: &pb::Job, row: u64) -> Vec<String> {
    job.report
        .as_ref()
        .expect("report")
        .rows
        .iter()
        .filter(|x| x.row == row)
        .flat_map(|x| x.findings.iter().map(|f| f.rule.clone()))
        .collect()
}

pub(crate) fn outcome_of(job: &pb::Job, row: u64) -> String {
    job.report
        .as_ref()
        .expect("report")
        .rows
        .iter()
        .find(|x| x.row == row)
        .map(|x| x.outcome.clone())
        .unwrap_or_else(|| "pass".into())
}

/// The job as an auditor sees it once it has run: the whole check report (the analyst sees
/// nothing that depends on the data until a reviewer has decided).
pub(crate) async fn full(auditor: &Client, job: pb::Job) -> pb::Job {
    auditor
        .finished(&job.id, std::time::Duration::from_secs(120))
        .await
        .expect("job")
}

async fn approve(reviewer: &Client, job: &pb::Job) {
    reviewer
        .decide(&job.id, true, "aggregates checked")
        .await
        .expect("approve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_check_fires_on_its_crafted_cell() {
    let p = platform().await;
    let analyst = p.client("analyst").await.expect("analyst");
    let reviewer = p.client("reviewer").await.expect("reviewer");
    let auditor = p.client("auditor").await.expect("auditor");

    // Rows in district order A..F: positions 0..5.
    let job = analyst
        .submit(
            S,
            "SELECT district, count(*) AS firms, sum(revenue) AS revenue, sum(refund) AS refund \
             FROM firms GROUP BY district ORDER BY district",
        )
        .await
        .expect("submit");
    // Until a reviewer decides, the analyst sees an accepted job and nothing else: no counts,
    // no rules, no state that depends on the run.
    assert_eq!(job.state, "awaiting_review");
    assert!(job.report.is_none() && job.error.is_empty() && job.finished_at_ms == 0);
    let job = full(&auditor, job).await;
    let seen = analyst.job(&job.id).await.expect("job");
    assert_eq!(seen.state, "awaiting_review");
    assert!(
        seen.report.is_none() && seen.finished_at_ms == 0,
        "{seen:?}"
    );
    let r = job.report.clone().expect("report");
    assert_eq!(r.rows_computed, 6, "{r:?}");
    // A: refunds are all zero → a zero sum fails (it says no firm of A had a refund).
    assert_eq!(rules_of(&job, 0), vec!["zero"]);
    assert_eq!(outcome_of(&job, 0), "fail");
    // B: one firm holds 97.8% of revenue → n-k and p% fail; the row is suppressed.
    let b = rules_of(&job, 1);
    assert!(b.contains(&"dominance-nk".to_string()), "{b:?}");
    assert_eq!(outcome_of(&job, 1), "fail");
    // C: 9 firms, one short of k → threshold fail.
    assert_eq!(rules_of(&job, 2), vec!["threshold"]);
    // D: one negative refund among positive ones: the negative side has a single contributor,
    // which the rest would reveal by subtraction → dominance fails on that side.
    let d = rules_of(&job, 3);
    assert!(d.contains(&"dominance-nk".to_string()), "{d:?}");
    assert!(
        job.report.as_ref().expect("report").rows[3]
            .findings
            .iter()
            .any(|f| f.message.contains("negative contributions")),
        "{:?}",
        r.rows[3]
    );
    // E: the two largest hold exactly 90% → fails (the ACRO reference fails at 0.90);
    // F: exactly k firms → passes.
    assert_eq!(rules_of(&job, 4), vec!["dominance-nk"]);
    assert_eq!(outcome_of(&job, 5), "pass");
    assert_eq!(
        (r.rows_released, r.rows_suppressed, r.rows_review),
        (1, 5, 0)
    );
    assert_eq!(r.outcome, "fail");
    let (detail, preview) = reviewer.show_review(&job.id).await.expect("show");
    assert_eq!(detail.preview_rows, 1);
    assert_eq!(preview[0].num_rows(), 1);
    // Decided, the analyst sees the decision, still without the report.
    approve(&reviewer, &job).await;
    let seen = analyst.job(&job.id).await.expect("job");
    assert_eq!(seen.state, "released");
    assert!(seen.report.is_none());

    // One category: every firm of A is in one sector, while sectors vary elsewhere.
    let job = analyst
        .submit(
            S,
            "SELECT district, sector, count(*) AS firms FROM firms \
             WHERE district IN ('A', 'B', 'D') GROUP BY district, sector ORDER BY district, sector",
        )
        .await
        .expect("submit");
    let job = full(&auditor, job).await;
    assert_eq!(rules_of(&job, 0), vec!["one-category"]);
    for row in 1..5 {
        assert_eq!(outcome_of(&job, row), "pass", "row {row}");
    }
    let (_, preview) = reviewer.show_review(&job.id).await.expect("show");
    let shown = erhai::output::review_preview(&preview, job.report.as_ref());
    assert!(shown.contains("REVIEW (one-category)"), "{shown}");

    // A policy may allow max, but a max is one firm's figure: every row goes to review. (A and
    // E: no release holds their firms yet — F's were released above, and a population equal
    // to an earlier one under other conditions fails.)
    let job = analyst
        .submit(
            S,
            "SELECT district, max(employees) AS largest FROM firms \
             WHERE district IN ('A', 'E') GROUP BY district ORDER BY district",
        )
        .await
        .expect("submit");
    let job = full(&auditor, job).await;
    assert_eq!(rules_of(&job, 0), vec!["single-value"]);
    assert_eq!(rules_of(&job, 1), vec!["single-value"]);
    p.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differencing_and_complementary_suppression_are_caught() {
    let p = platform().await;
    let analyst = p.client("analyst").await.expect("analyst");
    let reviewer = p.client("reviewer").await.expect("reviewer");
    let auditor = p.client("auditor").await.expect("auditor");
    let count = |filter: &str| format!("SELECT count(*) AS firms FROM firms WHERE {filter}");

    // A released total, then the same population less one firm: the pair would disclose that
    // firm, so the second fails (review is for judgment, not arithmetic).
    let total = analyst
        .submit(S, &count("district = 'D'"))
        .await
        .expect("submit");
    let total = full(&auditor, total).await;
    assert_eq!(outcome_of(&total, 0), "pass");
    approve(&reviewer, &total).await;
    let less_one = analyst
        .submit(S, &count("district = 'D' AND employees > 1"))
        .await
        .expect("submit");
    let less_one = full(&auditor, less_one).await;
    let rules = rules_of(&less_one, 0);
    assert!(
        rules.contains(&"differencing".to_string())
            && rules.contains(&"linear-combination".to_string()),
        "{rules:?}"
    );
    assert_eq!(outcome_of(&less_one, 0), "fail");
    let f = &less_one.report.as_ref().expect("report").rows[0].findings[0];
    assert!(
        f.message.contains(&total.id) && f.message.contains("by 1"),
        "{}",
        f.message
    );

    // Two such jobs pending at once: each passed alone; approving the second after the first
    // withdraws it (it fails, with the finding in its report) and the analyst, once a reviewer
    // has looked, sees it failed.
    let first = analyst
        .submit(S, &count("district = 'B'"))
        .await
        .expect("submit");
    let first = full(&auditor, first).await;
    let second = analyst
        .submit(S, &count("district = 'B' AND employees > 1"))
        .await
        .expect("submit");
    let second = full(&auditor, second).await;
    assert_eq!(outcome_of(&second, 0), "pass");
    approve(&reviewer, &first).await;
    let (c, m) = code(reviewer.decide(&second.id, true, "looks fine").await);
    assert_eq!(c, Code::FailedPrecondition, "{m}");
    assert!(m.contains("checked again"), "{m}");
    let again = auditor.job(&second.id).await.expect("job");
    assert_eq!(again.state, "failed");
    let seen = analyst.job(&second.id).await.expect("job");
    assert_eq!(seen.state, "rejected");
    assert!(seen.error.is_empty() && seen.report.is_none(), "{seen:?}");
    let (c, _) = code(analyst.fetch(&second.id).await);
    assert_eq!(c, Code::FailedPrecondition);

    // A released total of A and C; then A and C apart: C (9 firms) fails its threshold, and A
    // differs from the total by C's 9 firms, so it fails too.
    // (Written without OR: an OR's small part would be a population of its own.)
    let ac = analyst
        .submit(S, &count("district NOT IN ('B', 'D', 'E', 'F')"))
        .await
        .expect("submit");
    let ac = full(&auditor, ac).await;
    approve(&reviewer, &ac).await;
    let apart = analyst
        .submit(
            S,
            "SELECT district, count(*) AS firms FROM firms WHERE district IN ('A', 'C') \
             GROUP BY district ORDER BY district",
        )
        .await
        .expect("submit");
    let apart = full(&auditor, apart).await;
    assert_eq!(outcome_of(&apart, 1), "fail");
    let a = rules_of(&apart, 0);
    assert!(a.contains(&"differencing".to_string()), "{a:?}");
    assert_eq!(outcome_of(&apart, 0), "fail");

    // Complementary suppression inside one result: a total with its parts, one of which is
    // suppressed; the total less the released parts is the suppressed part.
    let rollup = analyst
        .submit(
            S,
            "SELECT district, count(*) AS firms FROM firms WHERE district IN ('E', 'C', 'F') \
             GROUP BY ROLLUP(district) ORDER BY district NULLS LAST",
        )
        .await
        .expect("submit");
    let rollup = full(&auditor, rollup).await;
    // C, E, F, then the total.
    assert_eq!(rules_of(&rollup, 0), vec!["threshold"]);
    assert!(
        rules_of(&rollup, 3).contains(&"complementary".to_string()),
        "{:?}",
        rollup.report
    );
    assert_eq!(outcome_of(&rollup, 3), "fail");

    // A rejected job is no earlier release: nothing is compared against it.
    let rejected = analyst
        .submit(S, &count("district = 'E'"))
        .await
        .expect("submit");
    let rejected = full(&auditor, rejected).await;
    reviewer
        .decide(&rejected.id, false, "not needed")
        .await
        .expect("reject");
    let e = analyst
        .submit(S, &count("district = 'E' AND revenue < 40"))
        .await
        .expect("submit");
    let e = full(&auditor, e).await;
    assert_eq!(outcome_of(&e, 0), "pass");

    // A general tracker: A ∪ {t}, A ∪ B and B, every pair far apart, combine to t. Written
    // with an OR, its first release already fails: `t` is a part of the OR of one firm.
    // (A: the firms of F; B: those of E; t: one firm of D.)
    let tracked = "(district = 'F' OR (district = 'D' AND employees = 1))";
    let first = analyst.submit(S, &count(tracked)).await.expect("submit");
    let first = full(&auditor, first).await;
    assert_eq!(
        rules_of(&first, 0),
        vec!["population"],
        "{:?}",
        first.report
    );
    assert_eq!(outcome_of(&first, 0), "fail");
    let second = analyst
        .submit(S, &count("district IN ('F', 'E')"))
        .await
        .expect("submit");
    let second = full(&auditor, second).await;
    assert_eq!(outcome_of(&second, 0), "pass", "{:?}", second.report);
    approve(&reviewer, &second).await;
    let third = analyst
        .submit(S, &count("district = 'E'"))
        .await
        .expect("submit");
    let third = full(&auditor, third).await;
    // Nothing of the tracker was released: E less (E ∪ F) is F, a population of 10.
    assert_eq!(outcome_of(&third, 0), "pass", "{:?}", third.report);
    p.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_to_review_need_a_second_reviewer_when_configured() {
    let p = platform_with(|c| c.release.second_reviewer = true).await;
    let analyst = p.client("analyst").await.expect("analyst");
    let reviewer = p.client("reviewer").await.expect("reviewer");
    let auditor = p.client("auditor").await.expect("auditor");
    let second = p.client("reviewer2").await.expect("reviewer2");

    // A policy allows max: a single firm's figure, rows to review.
    let job = analyst
        .submit(
            S,
            "SELECT district, count(*) AS firms, max(employees) AS largest FROM firms \
             WHERE district IN ('A', 'F') GROUP BY district",
        )
        .await
        .expect("submit");
    let job = full(&auditor, job).await;
    assert_eq!(job.approvals_needed, 2);
    let after_one = reviewer
        .decide(&job.id, true, "staff sizes are published by the registry")
        .await
        .expect("first approval");
    assert_eq!(after_one.state, "awaiting_review");
    assert_eq!(after_one.approvals, vec!["reviewer"]);
    let (c, m) = code(reviewer.decide(&job.id, true, "again").await);
    assert_eq!(c, Code::FailedPrecondition);
    assert!(m.contains("second reviewer"), "{m}");
    let (c, _) = code(analyst.fetch(&job.id).await);
    assert_eq!(c, Code::FailedPrecondition);
    let released = second
        .decide(&job.id, true, "agreed")
        .await
        .expect("second approval");
    assert_eq!(released.state, "released");
    assert!(!released.release_id.is_empty() && released.result_sha256.len() == 64);

    // The receipt names both reviewers and verifies against the platform key.
    let (file, receipt) = analyst.fetch_file(&job.id, "csv").await.expect("fetch");
    let key = analyst.platform_key().await.expect("key");
    let r = erhai_client::receipt::verify(&receipt, &file, &key).expect("verify");
    assert_eq!(r.reviewers, vec!["reviewer", "reviewer2"]);
    assert_eq!(
        (r.rows, r.release.as_str()),
        (2, released.release_id.as_str())
    );
    assert_eq!(r.result_sha256, released.result_sha256);
    // The same release in another format: another file hash, the same result hash.
    let (parquet, receipt2) = analyst.fetch_file(&job.id, "parquet").await.expect("fetch");
    let r2 = erhai_client::receipt::verify(&receipt2, &parquet, &key).expect("verify");
    assert_eq!(r2.result_sha256, r.result_sha256);
    assert_ne!(r2.file_sha256, r.file_sha256);
    assert!(erhai_client::receipt::verify(&receipt, &parquet, &key).is_err());

    // A result with nothing to review needs one reviewer.
    let plain = analyst
        .submit(
            S,
            "SELECT count(*) AS firms FROM firms WHERE district IN ('A', 'B')",
        )
        .await
        .expect("submit");
    let plain = full(&auditor, plain).await;
    assert_eq!(plain.approvals_needed, 1);
    let done = reviewer
        .decide(&plain.id, true, "a count")
        .await
        .expect("approve");
    assert_eq!(done.state, "released");
    // Every fetch is audited.
    let events = auditor
        .audit_query(pb::ListAuditRequest {
            object: job.id.clone(),
            all: true,
            ..Default::default()
        })
        .await
        .expect("events");
    let fetches = events
        .iter()
        .filter(|e| e.action == "fetch_release" && e.outcome == "allowed")
        .count();
    assert_eq!(fetches, 2);
    p.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dp_scenario_spends_a_budget_that_no_restart_resets() {
    let p = platform().await;
    let mut app = application_for_datasets(&p, "firms-dp", &["firms"])
        .await
        .expect("application");
    app.dp = Some(pb::DpSettings {
        epsilon_total: 2.0,
        delta_total: 1e-5,
        epsilon_per_query: 1.0,
        delta_per_query: 1e-6,
        max_groups_per_unit: 1,
        max_rows_per_unit: 1,
    });
    authorize_scenario(&p, "analyst", app.clone(), &[], false)
        .await
        .expect("scenario");
    // Names are never reused: the budget stays spent.
    let analyst = p.client("analyst").await.expect("analyst");
    let (c, m) = code(analyst.apply_scenario(app).await);
    assert_eq!(c, Code::AlreadyExists, "{m}");

    let total =
        "SELECT count(*) AS firms, sum(revenue) AS revenue, avg(revenue) AS mean FROM firms";
    // Shapes DP mode does not answer, and sums without declared bounds, are refused before
    // anything is spent.
    let (c, m) = code(
        analyst
            .submit_in("SELECT sum(employees) AS e FROM firms", "firms-dp", 0.5)
            .await,
    );
    assert_eq!(c, Code::PermissionDenied, "{m}");
    assert!(m.contains("bounds"), "{m}");
    let (c, m) = code(
        analyst
            .submit_in(
                "SELECT count(DISTINCT sector) AS s FROM firms",
                "firms-dp",
                0.5,
            )
            .await,
    );
    assert_eq!(c, Code::PermissionDenied, "{m}");
    assert_eq!(analyst.budget("firms-dp").await.expect("budget").queries, 0);
    // ε beyond the per-query cap.
    let (c, m) = code(analyst.submit_in(total, "firms-dp", 1.5).await);
    assert_eq!(c, Code::ResourceExhausted, "{m}");
    assert!(m.contains("per-query cap"), "{m}");

    let job = analyst
        .submit_in(total, "firms-dp", 1.0)
        .await
        .expect("dp query");
    assert_eq!(job.state, "awaiting_review", "{job:?}");
    assert_eq!(job.epsilon, 1.0);
    // Nothing un-noised reaches anyone but the auditor: the reviewer sees the rules and the
    // noisy rows, never an exact count of computed or suppressed groups.
    let reviewer = p.client("reviewer").await.expect("reviewer");
    let auditor = p.client("auditor").await.expect("auditor");
    let seen = full(&reviewer, job.clone()).await;
    let r = seen.report.as_ref().expect("report");
    assert!(r.rules.contains("differential privacy"), "{r:?}");
    assert_eq!((r.rows_computed, r.rows_suppressed), (0, 0), "{r:?}");
    let exact = full(&auditor, job.clone()).await;
    assert_eq!(exact.report.as_ref().expect("report").rows_computed, 1);
    // 91 firms; noise of scale 2 (ε 1 over two statistics) and a threshold near 27.
    approve(&reviewer, &job).await;
    let (_, batches) = analyst.fetch(&job.id).await.expect("fetch");
    let firms = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .expect("count")
        .value(0);
    assert!((51..=131).contains(&firms), "noisy count {firms} of 91");
    let b = analyst.budget("firms-dp").await.expect("budget");
    assert_eq!((b.epsilon_spent, b.epsilon_left, b.queries), (1.0, 1.0, 1));

    analyst
        .submit_in(total, "firms-dp", 1.0)
        .await
        .expect("second query");
    let (c, m) = code(analyst.submit_in(total, "firms-dp", 0.1).await);
    assert_eq!(c, Code::ResourceExhausted, "{m}");
    assert!(m.contains("left"), "{m}");

    // A restart does not reset the ledger.
    let p = p.restart().await.expect("restart");
    let analyst = p.client("analyst").await.expect("analyst");
    let b = analyst.budget("firms-dp").await.expect("budget");
    assert_eq!((b.epsilon_spent, b.queries), (2.0, 2));
    let (c, _) = code(analyst.submit_in(total, "firms-dp", 0.1).await);
    assert_eq!(c, Code::ResourceExhausted);
    // Another tenant cannot see the scenario, let alone spend it.
    p.add_user("outsider", "外部", "analyst", "erhai-insight", "")
        .await
        .expect("user");
    let outsider = p.client("outsider").await.expect("outsider");
    let (c, _) = code(outsider.submit_in(total, "firms-dp", 0.1).await);
    assert_eq!(c, Code::NotFound);
    p.stop().await.expect("stop");
}
