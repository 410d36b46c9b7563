//! What reviewers and governance see, end to end on the crafted firms of `disclosure.rs`: the
//! review queue and grouped findings through the CLI binary, approval with the rows to review
//! withheld (complementary suppression, the receipt, lineage by release id, the audit, and the
//! ledger that later checks read).

use std::path::Path;
use std::process::{Command, Output};

use crate::common::code;
use crate::disclosure::{S, full, outcome_of, platform_with, rules_of};

use erhai_devkit::demo::TENANT;
use erhai_proto::v1 as pb;
use tonic::Code;

fn erhai(identity: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_erhai"))
        .arg("--identity")
        .arg(identity)
        .args(args)
        .output()
        .expect("run erhai")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Rows per sector and district, and per sector: A's firms are all in one sector (a row to
/// review), and the sector total holds A's row with the other released parts.
const BY_SECTOR: &str = "SELECT district, sector, count(*) AS firms FROM firms \
     WHERE district IN ('A', 'B', 'D') GROUP BY GROUPING SETS ((district, sector), (sector)) \
     ORDER BY sector, district NULLS LAST";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_with_flagged_rows_withheld_releases_the_rest_and_records_what_it_left_out() {
    let p = platform_with(|c| c.release.second_reviewer = true).await;
    let analyst = p.client("analyst").await.expect("analyst");
    let reviewer = p.client("reviewer").await.expect("reviewer");
    let second = p.client("reviewer2").await.expect("reviewer2");
    let auditor = p.client("auditor").await.expect("auditor");

    let job = analyst.submit(S, BY_SECTOR).await.expect("submit");
    let job = full(&auditor, job).await;
    // 零售: B, D, total; 餐饮: A, B, D, total. Only A's row is to review.
    let report = job.report.as_ref().expect("report");
    assert_eq!(
        (report.rows_computed, report.rows_review),
        (7, 1),
        "{report:?}"
    );
    assert_eq!(rules_of(&job, 3), vec!["one-category"], "{:#?}", job.report);
    for row in [0, 1, 2, 4, 5, 6] {
        assert_eq!(outcome_of(&job, row), "pass", "row {row}: {report:?}");
    }
    assert_eq!(job.approvals_needed, 2);

    // The first approval fixes the mode; the second must agree.
    let first = reviewer
        .approve_withholding(&job.id, "A's sector is public; withhold it anyway")
        .await
        .expect("first approval");
    assert_eq!(first.state, "awaiting_review");
    assert!(first.suppress_flagged);
    let (c, m) = code(second.decide(&job.id, true, "fine as is").await);
    assert_eq!(c, Code::FailedPrecondition, "{m}");
    assert!(
        m.contains("must agree") && m.contains("--suppress-flagged"),
        "{m}"
    );
    let released = second
        .approve_withholding(&job.id, "agreed, without A")
        .await
        .expect("second approval");
    assert_eq!(released.state, "released");
    // A's row, and the 餐饮 total that less B's and D's rows would give A's back.
    let withheld: Vec<(u64, &str)> = released
        .withheld
        .iter()
        .map(|w| (w.reviewed_row, w.rule.as_str()))
        .collect();
    assert_eq!(withheld, vec![(3, "flagged"), (6, "complementary")]);

    // The receipt covers exactly the five released rows, and verifies.
    let (file, receipt) = analyst.fetch_file(&job.id, "csv").await.expect("fetch");
    let key = analyst.platform_key().await.expect("key");
    let r = erhai_client::receipt::verify(&receipt, &file, &key).expect("verify");
    assert_eq!(r.rows, 5);
    assert_eq!(r.release, released.release_id);
    assert_eq!(r.result_sha256, released.result_sha256);
    assert_eq!(r.reviewers, vec!["reviewer", "reviewer2"]);
    let csv = String::from_utf8_lossy(&file).to_string();
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert!(!csv.lines().any(|l| l.starts_with("A,")), "{csv}");
    assert!(!csv.contains(",36"), "the 餐饮 total is withheld: {csv}");
    // The analyst learns nothing of what was withheld or why.
    let seen = analyst.job(&job.id).await.expect("job");
    assert!(
        seen.withheld.is_empty() && !seen.suppress_flagged,
        "{seen:?}"
    );

    // Lineage by the id the receipt names: the auditor sees what was withheld.
    let l = auditor.lineage("", &r.release).await.expect("lineage");
    assert_eq!(l.jobs.len(), 1);
    assert_eq!(l.jobs[0].id, job.id);
    assert_eq!(l.jobs[0].withheld.len(), 2);
    assert_eq!(l.datasets, vec!["firms@v1"]);
    let own = analyst.lineage("", &r.release).await.expect("own lineage");
    assert_eq!(own.jobs[0].id, job.id);
    let (c, m) = code(auditor.lineage("", "rel-999999").await);
    assert_eq!(c, Code::NotFound);
    assert!(m.contains("rel-999999"), "{m}");
    // A job awaiting review is no release.
    let pending = analyst.submit(S, BY_SECTOR).await.expect("submit");
    let rel = format!("rel-{}", pending.id.trim_start_matches("job-"));
    let (c, _) = code(auditor.lineage("", &rel).await);
    assert_eq!(c, Code::NotFound);

    // The audit names the withheld rows by position and rule, never by value.
    let events = auditor
        .audit_query(pb::ListAuditRequest {
            action: "release_withheld".into(),
            all: true,
            ..Default::default()
        })
        .await
        .expect("audit");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].object, job.id);
    assert!(
        events[0].reason.contains("flagged: rows 3")
            && events[0].reason.contains("complementary: rows 6"),
        "{}",
        events[0].reason
    );

    // Later checks read the withheld rows as suppressed: the 餐饮 total asked again, less the
    // released B and D rows, would give A's row back.
    let again = analyst
        .submit(
            S,
            "SELECT count(*) AS firms FROM firms WHERE sector = '餐饮' \
             AND district IN ('A', 'B', 'D')",
        )
        .await
        .expect("submit");
    let again = full(&auditor, again).await;
    assert_eq!(outcome_of(&again, 0), "fail", "{:?}", again.report);
    assert!(
        rules_of(&again, 0).contains(&"complementary".to_string()),
        "{:?}",
        again.report
    );

    // The tenant's report counts the withheld rows, and its figures add up.
    let today = chrono::Utc::now().date_naive().to_string();
    let report = auditor
        .report(TENANT, &today, &today)
        .await
        .expect("report");
    assert_eq!(
        (report.releases, report.rows_released, report.rows_withheld),
        (1, 5, 2)
    );
    assert_eq!(
        report.production_run,
        report.run_released + report.rejected + report.run_awaiting
    );
    // The tenant's own report leaves the withheld count out (it depends on the data).
    let own = analyst
        .report("", &today, &today)
        .await
        .expect("own report");
    assert_eq!((own.rows_released, own.rows_withheld), (5, 0));
    p.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withholding_is_refused_where_it_cannot_apply() {
    let p = platform_with(|_| {}).await;
    let analyst = p.client("analyst").await.expect("analyst");
    let reviewer = p.client("reviewer").await.expect("reviewer");
    let auditor = p.client("auditor").await.expect("auditor");

    // Nothing to review: approve it whole.
    let plain = analyst
        .submit(
            S,
            "SELECT count(*) AS firms FROM firms WHERE district IN ('A', 'B')",
        )
        .await
        .expect("submit");
    full(&auditor, plain.clone()).await;
    let (c, m) = code(reviewer.approve_withholding(&plain.id, "withhold").await);
    assert_eq!(c, Code::FailedPrecondition);
    assert!(m.contains("no rows to review"), "{m}");

    // Every row to review: nothing would remain.
    let all = analyst
        .submit(
            S,
            "SELECT district, count(*) AS firms, max(employees) AS largest FROM firms \
             WHERE district IN ('A', 'F') GROUP BY district",
        )
        .await
        .expect("submit");
    full(&auditor, all.clone()).await;
    let (c, m) = code(reviewer.approve_withholding(&all.id, "withhold").await);
    assert_eq!(c, Code::FailedPrecondition);
    assert!(m.contains("nothing to release"), "{m}");
    // Still pending: the refusal changed nothing.
    assert_eq!(
        auditor.job(&all.id).await.expect("job").state,
        "awaiting_review"
    );
    p.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_queue_and_grouped_findings_read_in_the_terminal() {
    let p = platform_with(|_| {}).await;
    let analyst = p.client("analyst").await.expect("analyst");
    let auditor = p.client("auditor").await.expect("auditor");
    // Every district in one sector: A, E and F to review, C (9 firms) suppressed.
    let job = analyst
        .submit(
            S,
            "SELECT district, sector, count(*) AS firms FROM firms \
             WHERE district IN ('A', 'C', 'E', 'F') GROUP BY district, sector \
             ORDER BY district",
        )
        .await
        .expect("submit");
    let job = full(&auditor, job).await;
    let reviewer = p.identity("reviewer");

    let list = stdout(&erhai(&reviewer, &["review", "list"]));
    let line = list
        .lines()
        .find(|l| l.contains(&job.id))
        .unwrap_or_else(|| panic!("{list}"));
    let cells: Vec<&str> = line
        .split(['│', '┆'])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(cells[1], S, "{line}");
    assert_eq!(cells[2], TENANT, "{line}");
    assert!(
        cells[4].ends_with('s') || cells[4].ends_with('m'),
        "age: {line}"
    );
    assert_eq!((cells[5], cells[6], cells[7]), ("3", "1", "one"), "{line}");
    for header in [
        "scenario",
        "age",
        "to review",
        "suppressed",
        "reviewers needed",
    ] {
        assert!(list.contains(header), "{header}: {list}");
    }

    let show = stdout(&erhai(&reviewer, &["review", "show", &job.id]));
    assert!(
        show.contains("3 rows to review: one-category (district determines sector) — row 0, 1, 2"),
        "{show}"
    );
    assert!(
        show.contains(
            "1 row suppressed: threshold (fewer than k = 10 units of firms) — computed row 1"
        ),
        "{show}"
    );
    let all = stdout(&erhai(&reviewer, &["review", "show", &job.id, "--all"]));
    assert_eq!(
        all.lines().filter(|l| l.contains("computed row ")).count(),
        4,
        "{all}"
    );

    // JSON keeps every row for programs, and the groups beside them.
    let json = stdout(&erhai(
        &reviewer,
        &["--output", "json", "review", "show", &job.id],
    ));
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["job"]["report"]["rows"].as_array().map(Vec::len), Some(4));
    assert_eq!(v["groups"][0]["rule"], "one-category");
    assert_eq!(v["groups"][0]["rows"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["preview"].as_array().map(Vec::len), Some(3));
    p.stop().await.expect("stop");
}
