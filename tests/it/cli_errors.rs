//! The CLI's failures as a script sees them: one exit code per kind, one JSON object on stderr
//! under `--output json`, transport failures named; and its conveniences (SQL from stdin or a
//! file, the ε notice, a future agreement, completions and man pages).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use erhai_devkit::demo::{
    application_for_datasets, authorize_datasets, authorize_scenario, load_demo_data,
};
use erhai_devkit::demo_data::Sizes;
use erhai_proto::v1 as pb;

use crate::common::platform_with_users;

const SCENARIO: &str = "cli-errors";

fn erhai_with(identity: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_erhai"))
        .arg("--identity")
        .arg(identity)
        .args(args)
        .env("ERHAI_SCENARIO", SCENARIO)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run erhai");
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.unwrap_or_default().as_bytes())
            .expect("stdin");
    }
    child.wait_with_output().expect("erhai output")
}

fn erhai(identity: &Path, args: &[&str]) -> Output {
    erhai_with(identity, args, None)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// Fails unless `out` exited with `code`; returns its stderr.
fn exits(out: &Output, code: i32) -> String {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    err
}

/// The `error` object of a failure under `--output json`: stderr is exactly one JSON object.
fn json_error(out: &Output) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&out.stderr)
        .unwrap_or_else(|e| panic!("stderr is not one JSON object ({e}): {}", text(&out.stderr)));
    v["error"].clone()
}

/// A copy of `bundle` (cert, key, CA) that talks to `endpoint` and trusts `ca_from`'s CA.
fn bundle_copy(into: &Path, bundle: &Path, ca_from: &Path, endpoint: &str) -> PathBuf {
    std::fs::create_dir_all(into).expect("dir");
    for f in ["cert.pem", "key.pem"] {
        std::fs::copy(bundle.join(f), into.join(f)).expect("copy");
    }
    std::fs::copy(ca_from.join("ca.pem"), into.join("ca.pem")).expect("copy ca");
    std::fs::write(into.join("endpoint"), format!("{endpoint}\n")).expect("endpoint");
    into.to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_failure_has_its_exit_code_and_json_form() {
    let p = platform_with_users(|_| {}).await;
    load_demo_data(&p, 5, Sizes::with_stays(2_000))
        .await
        .expect("data");
    authorize_datasets(&p, SCENARIO, &["hotel_stays"])
        .await
        .expect("scenario");
    let analyst = p.identity("analyst");

    // Refused by a column policy: 3, labelled a refusal, not "permission denied".
    let refused = [
        "query",
        "submit",
        "--sql",
        "SELECT id_number FROM hotel_stays",
    ];
    let err = exits(&erhai(&analyst, &refused), 3);
    assert!(
        err.starts_with("error: refused:") && err.contains("hotel_stays.id_number"),
        "{err}"
    );
    let out = erhai(
        &analyst,
        &[&["--output", "json"][..], &refused[..]].concat(),
    );
    exits(&out, 3);
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let e = json_error(&out);
    assert_eq!(e["kind"], "refused", "{e}");
    assert_eq!(e["code"], "PERMISSION_DENIED", "{e}");
    assert_eq!(e["exit_code"], 3, "{e}");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("id_number")),
        "{e}"
    );
    // A dry run that would be refused is a refusal too.
    exits(
        &erhai(
            &analyst,
            &[
                "query",
                "check",
                "--sql",
                "SELECT id_number FROM hotel_stays",
            ],
        ),
        3,
    );

    // Not found: 4.
    let out = erhai(&analyst, &["--output", "json", "job", "show", "job-nope"]);
    exits(&out, 4);
    assert_eq!(json_error(&out)["kind"], "not_found");

    // A role without the permission: 7, "permission denied" (no policy was consulted).
    let err = exits(&erhai(&analyst, &["admin", "user", "list"]), 7);
    assert!(err.contains("permission denied"), "{err}");

    // Usage: clap's own errors and the CLI's checks of its input both exit 2.
    exits(
        &erhai(
            &analyst,
            &["query", "check", "--sql", "SELECT 1", "--file", "q.sql"],
        ),
        2,
    );
    let err = exits(
        &erhai(
            &analyst,
            &["query", "check", "--file", "/nonexistent/q.sql"],
        ),
        2,
    );
    assert!(err.contains("/nonexistent/q.sql"), "{err}");

    // SQL that does not plan is invalid input: 2, with a message free of DataFusion's names.
    let out = erhai(
        &analyst,
        &[
            "--output",
            "json",
            "query",
            "submit",
            "--sql",
            "SELECT district FROM hotel_stays WHERE nigths > 2",
        ],
    );
    exits(&out, 2);
    let e = json_error(&out);
    assert_eq!(e["code"], "INVALID_ARGUMENT", "{e}");
    let m = e["message"].as_str().unwrap_or_default().to_string();
    assert!(m.contains("nigths") && m.contains("nights"), "{m}");
    for internal in ["datafusion.", "Schema error", "Error during planning"] {
        assert!(!m.contains(internal), "{internal} in {m}");
    }
    let err = exits(
        &erhai(
            &analyst,
            &[
                "query",
                "check",
                "--sql",
                "SELECT district\nFROM hotel_stays WHER nights > 2",
            ],
        ),
        2,
    );
    assert!(!err.contains("ParserError"), "{err}");
    assert!(err.contains("line 2"), "{err}");

    // The same query from stdin and from a file.
    let sql = "SELECT district, count(*) AS stays FROM hotel_stays GROUP BY district";
    let out = erhai_with(&analyst, &["query", "check", "--sql", "-"], Some(sql));
    exits(&out, 0);
    assert!(
        text(&out.stdout).contains("district"),
        "{}",
        text(&out.stdout)
    );
    let file = p.dir.join("q.sql");
    std::fs::write(&file, sql).expect("sql file");
    let file = file.to_string_lossy().to_string();
    let out = erhai(&analyst, &["query", "check", "--file", &file]);
    exits(&out, 0);
    let err = exits(
        &erhai_with(&analyst, &["query", "check", "--sql", "-"], Some("  \n")),
        2,
    );
    assert!(err.contains("stdin holds no SQL"), "{err}");
    p.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_certificate_and_a_closed_port_are_named() {
    let p = platform_with_users(|_| {}).await;
    let other = erhai_devkit::demo::Platform::start(None, |_| {})
        .await
        .expect("second platform");
    let tmp = tempfile::tempdir().expect("tmp");

    // A certificate another platform's CA signed, presented to this one (whose CA the bundle
    // trusts, so the server's certificate is fine): the server rejects it in the handshake.
    let foreign = bundle_copy(
        &tmp.path().join("foreign"),
        &other.identity("admin"),
        &p.identity("admin"),
        &p.endpoint,
    );
    let out = erhai(&foreign, &["whoami"]);
    let err = exits(&out, 5);
    assert!(
        err.contains("the server rejected this identity's certificate")
            && err.contains("ERHAI_IDENTITY")
            && !err.contains("transport error"),
        "{err}"
    );
    let out = erhai(&foreign, &["--output", "json", "whoami"]);
    exits(&out, 5);
    assert_eq!(json_error(&out)["kind"], "unauthenticated");

    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let endpoint = format!("https://127.0.0.1:{port}");
    let closed = bundle_copy(
        &tmp.path().join("closed"),
        &p.identity("admin"),
        &p.identity("admin"),
        &endpoint,
    );
    let err = exits(&erhai(&closed, &["whoami"]), 6);
    assert!(
        err.contains(&format!(
            "cannot reach {endpoint}: connection refused (is `erhai serve` running?)"
        )),
        "{err}"
    );
    other.stop().await.expect("stop");
    p.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dp_query_says_what_it_spends_and_a_future_agreement_is_pending() {
    let p = platform_with_users(|_| {}).await;
    load_demo_data(&p, 5, Sizes::with_stays(500))
        .await
        .expect("data");
    let mut app = application_for_datasets(&p, "stays-dp", &["hotel_stays"])
        .await
        .expect("application");
    app.dp = Some(pb::DpSettings {
        epsilon_total: 2.0,
        delta_total: 1e-5,
        epsilon_per_query: 0.5,
        delta_per_query: 1e-6,
        max_groups_per_unit: 1,
        max_rows_per_unit: 1,
    });
    authorize_scenario(&p, "analyst", app, &[], false)
        .await
        .expect("scenario");
    let analyst = p.identity("analyst");
    let out = erhai(
        &analyst,
        &[
            "--output",
            "json",
            "query",
            "submit",
            "--scenario",
            "stays-dp",
            "--sql",
            "SELECT count(*) AS stays FROM hotel_stays",
        ],
    );
    let err = exits(&out, 0);
    assert!(
        err.contains("spends ε = 0.5 (its per-query cap); 2 of ε = 2 remains, 1.5 after it"),
        "{err}"
    );
    // stdout stays the answer alone.
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert!(job["id"].is_string(), "{job}");

    // An agreement that starts next month: the tenant is not shown as active.
    let admin = p.client("admin").await.expect("admin");
    admin
        .create_tenant("later-co", "Later Co")
        .await
        .expect("tenant");
    let start = chrono::Utc::now().date_naive() + chrono::Days::new(30);
    let end = start + chrono::Days::new(365);
    p.client("authority")
        .await
        .expect("authority")
        .set_agreement(
            "later-co",
            &start.to_string(),
            &end.to_string(),
            "signed, starts next month",
        )
        .await
        .expect("agreement");
    let out = erhai(&p.identity("authority"), &["tenant", "show", "later-co"]);
    exits(&out, 0);
    let shown = text(&out.stdout);
    assert!(
        shown.contains(&format!("(pending until {start})")) && !shown.contains("(active)"),
        "{shown}"
    );
    p.stop().await.expect("stop");
}

#[test]
fn completions_and_man_pages_cover_the_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_erhai"))
        .args(["completions", "bash"])
        .output()
        .expect("run erhai");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let script = text(&out.stdout);
    assert!(
        script.contains("query") && script.contains("--scenario"),
        "{script}"
    );

    let dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(env!("CARGO_BIN_EXE_erhai"))
        .args(["man", "--out"])
        .arg(dir.path())
        .output()
        .expect("run erhai");
    assert!(out.status.success(), "{}", text(&out.stderr));
    for page in [
        "erhai.1",
        "erhai-query.1",
        "erhai-query-submit.1",
        "erhai-release-fetch.1",
    ] {
        let path = dir.path().join(page);
        let body = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(body.contains(".TH"), "{page} missing or not a man page");
    }

    // The exit codes are documented where a user looks first.
    let out = Command::new(env!("CARGO_BIN_EXE_erhai"))
        .arg("--help")
        .output()
        .expect("run erhai");
    let help = text(&out.stdout);
    assert!(
        help.contains("Exit codes") && help.contains("3  refused by policy"),
        "{help}"
    );
}
