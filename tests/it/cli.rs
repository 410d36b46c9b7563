//! The CLI against a real server: exit codes, messages on stderr, JSON output.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::platform_with_users;
use erhai_devkit::demo::{authorize_datasets, load_demo_data};
use erhai_devkit::demo_data::Sizes;

/// The scenario the CLI's queries run in, named once in the environment as an analyst would.
const SCENARIO: &str = "cli";

fn erhai(identity: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_erhai"))
        .arg("--identity")
        .arg(identity)
        .args(args)
        .env("ERHAI_SCENARIO", SCENARIO)
        .output()
        .expect("run erhai")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_drives_the_whole_flow() {
    let p = platform_with_users(|_| {}).await;
    load_demo_data(&p, 5, Sizes::with_stays(2_000))
        .await
        .expect("data");
    authorize_datasets(&p, SCENARIO, &["hotel_stays"])
        .await
        .expect("scenario");
    let analyst = p.identity("analyst");
    let reviewer = p.identity("reviewer");

    // Every query names its scenario: without one the CLI says so and sends nothing.
    let out = Command::new(env!("CARGO_BIN_EXE_erhai"))
        .arg("--identity")
        .arg(&analyst)
        .args(["query", "check", "--sql", "SELECT 1"])
        .env_remove("ERHAI_SCENARIO")
        .output()
        .expect("run erhai");
    assert!(
        !out.status.success() && text(&out.stderr).contains("--scenario"),
        "{}",
        text(&out.stderr)
    );

    // A refusal exits non-zero with the reason on stderr.
    let out = erhai(
        &analyst,
        &[
            "query",
            "submit",
            "--sql",
            "SELECT id_number FROM hotel_stays",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("hotel_stays.id_number"),
        "{}",
        text(&out.stderr)
    );

    // A dry run explains the verdict per column without running anything.
    let out = erhai(
        &analyst,
        &[
            "query",
            "check",
            "--sql",
            "SELECT district, count(DISTINCT id_number) FROM hotel_stays GROUP BY district",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("count(DISTINCT …)"),
        "{}",
        text(&out.stdout)
    );
    let out = erhai(
        &analyst,
        &[
            "--output",
            "json",
            "query",
            "check",
            "--sql",
            "SELECT phone, count(*) FROM hotel_stays GROUP BY phone",
        ],
    );
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["refusals"][0]["column"], "hotel_stays.phone");
    assert_eq!(v["refusals"][0]["use"], "group_by");

    // An accepted query, as JSON.
    let sql =
        "SELECT district, count(DISTINCT id_number) AS visitors FROM hotel_stays GROUP BY district";
    let out = erhai(
        &analyst,
        &["--output", "json", "query", "submit", "--sql", sql],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(job["state"], "awaiting_review");
    let id = job["id"].as_str().expect("id").to_string();

    let out = erhai(&reviewer, &["review", "show", &id, "--wait"]);
    assert!(
        out.status.success() && text(&out.stdout).contains("大理市"),
        "{}",
        text(&out.stdout)
    );
    let out = erhai(
        &reviewer,
        &["review", "approve", &id, "--reason", "district totals"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = erhai(&reviewer, &["review", "approve", &id, "--reason", "again"]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("failed precondition"),
        "{}",
        text(&out.stderr)
    );

    let file = p.dir.join("visitors.csv");
    let out = erhai(
        &analyst,
        &[
            "release",
            "fetch",
            &id,
            "--out",
            file.to_str().expect("path"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = std::fs::read_to_string(&file).expect("csv");
    assert_eq!(csv.lines().count(), 13, "{csv}");
    assert!(csv.starts_with("district,visitors"));

    // The file comes with a signed receipt that verifies offline against the platform key;
    // a changed file or a changed receipt does not.
    let key = p.dir.join("platform-key.txt");
    let out = erhai(
        &analyst,
        &["admin", "public-key", "--out", key.to_str().expect("path")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let receipt = p.dir.join("visitors.csv.receipt.json");
    let verify = |file: &Path, receipt: &Path| {
        erhai(
            &analyst,
            &[
                "release",
                "verify",
                "--receipt",
                receipt.to_str().expect("path"),
                "--file",
                file.to_str().expect("path"),
                "--public-key",
                key.to_str().expect("path"),
            ],
        )
    };
    let out = verify(&file, &receipt);
    assert!(
        out.status.success() && text(&out.stdout).contains("approved by reviewer"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let altered = p.dir.join("altered.csv");
    std::fs::write(&altered, csv.replacen(",", ",9", 2)).expect("write");
    let out = verify(&altered, &receipt);
    assert!(
        !out.status.success() && text(&out.stderr).contains("SHA-256"),
        "{}",
        text(&out.stderr)
    );
    let forged = p.dir.join("forged.receipt.json");
    let envelope = std::fs::read_to_string(&receipt).expect("receipt");
    std::fs::write(&forged, envelope.replace("reviewer", "reviewer2")).expect("write");
    let out = verify(&file, &forged);
    assert!(
        !out.status.success() && text(&out.stderr).contains("signature"),
        "{}",
        text(&out.stderr)
    );

    // The Excel form: a UTF-8 BOM in front, and the same receipt verifies it.
    let excel = p.dir.join("visitors-excel.csv");
    let out = erhai(
        &analyst,
        &[
            "release",
            "fetch",
            &id,
            "--excel",
            "--out",
            excel.to_str().expect("path"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bytes = std::fs::read(&excel).expect("excel csv");
    assert!(bytes.starts_with(b"\xEF\xBB\xBFdistrict,visitors"));
    let out = verify(&excel, &p.dir.join("visitors-excel.csv.receipt.json"));
    assert!(
        out.status.success() && text(&out.stdout).contains("Excel form"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let altered_excel = p.dir.join("altered-excel.csv");
    std::fs::write(&altered_excel, [&bytes[..], b"x,1\n"].concat()).expect("write");
    let out = verify(
        &altered_excel,
        &p.dir.join("visitors-excel.csv.receipt.json"),
    );
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let out = erhai(
        &analyst,
        &["release", "fetch", &id, "--excel", "--out", "v.parquet"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    // Other commands answer, in both formats.
    for args in [
        &["dataset", "list"][..],
        &["dataset", "show", "hotel_stays"],
        &["job", "list"],
        &["whoami"],
    ] {
        let out = erhai(&analyst, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    let out = erhai(&p.identity("auditor"), &["audit", "verify"]);
    assert!(
        out.status.success() && text(&out.stdout).contains("chain intact"),
        "{}",
        text(&out.stdout)
    );

    // A missing identity is a clear error.
    let out = erhai(&p.dir.join("nowhere"), &["whoami"]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("cannot read cert.pem"),
        "{}",
        text(&out.stderr)
    );
    p.stop().await.expect("stop");
}

#[test]
fn admin_init_creates_a_deployment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("d");
    let out = Command::new(env!("CARGO_BIN_EXE_erhai"))
        .args([
            "admin",
            "init",
            "--dir",
            target.to_str().expect("path"),
            "--listen",
            "127.0.0.1:7443",
        ])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    for f in [
        "erhai.toml",
        "tls/ca.pem",
        "tls/server.pem",
        "keys/master.key",
        "identities/admin/cert.pem",
        "identities/admin/endpoint",
    ] {
        assert!(target.join(f).exists(), "{f} missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [
            "keys/master.key",
            "tls/ca.key",
            "tls/server.key",
            "identities/admin/key.pem",
        ] {
            let mode = std::fs::metadata(target.join(f))
                .expect("meta")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
    }
    // A second init into the same directory is refused and changes nothing.
    let out = Command::new(env!("CARGO_BIN_EXE_erhai"))
        .args(["admin", "init", "--dir", target.to_str().expect("path")])
        .output()
        .expect("run");
    assert!(
        !out.status.success() && text(&out.stderr).contains("not empty"),
        "{}",
        text(&out.stderr)
    );
}

/// Starts `erhai serve` on a deployment and waits until it answers.
async fn serve(dir: &Path) -> (std::process::Child, erhai_client::Client) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_erhai"))
        .args(["serve", "--dir", dir.to_str().expect("path")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn server");
    for _ in 0..200 {
        if let Ok(c) = erhai_client::Client::connect_dir(&dir.join("identities/admin")).await
            && c.whoami().await.is_ok()
        {
            return (child, c);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("server did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_audit_events_survive_sigkill() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    erhai::install_crypto_provider();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("d");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_erhai"))
        .args(["admin", "init", "--dir", dir.to_str().expect("path")])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .output()
        .expect("init");
    assert!(out.status.success(), "{}", text(&out.stderr));

    let (mut child, admin) = serve(&dir).await;
    // A burst of audited calls from four clients; count the ones the server acknowledged.
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let c = erhai_client::Client::connect_dir(&dir.join("identities/admin"))
            .await
            .expect("client");
        let (acked, stop) = (acked.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if c.whoami().await.is_ok() {
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        let _ = t.await;
    }
    drop(admin);
    let acked = acked.load(Ordering::SeqCst);
    assert!(acked > 10, "the burst made too few calls ({acked})");

    // After a restart the chain verifies and holds every acknowledged call.
    let (mut child, admin) = serve(&dir).await;
    let v = admin.audit_verify().await.expect("verify");
    assert!(v.ok, "{}", v.detail);
    let events = admin
        .audit_query(erhai_proto::v1::ListAuditRequest {
            action: "who_am_i".into(),
            all: true,
            ..Default::default()
        })
        .await
        .expect("events");
    let allowed = events.iter().filter(|e| e.outcome == "allowed").count() as u64;
    assert!(
        allowed >= acked,
        "{allowed} events for {acked} acknowledged calls"
    );
    let cp = admin.audit_checkpoint().await.expect("checkpoint");
    assert!(cp.seq > 0 && !cp.signature.is_empty());
    child.kill().expect("stop");
    let _ = child.wait();
}
