//! Operating a deployment: certificate lifecycle (reissue, disable, enable, the last-admin
//! guard), the call log, the metrics listener, and a restarted deployment keeping its endpoint.

use erhai_client::Client;
use erhai_devkit::demo::Platform;
use tonic::Code;

use crate::common::code;

async fn platform() -> Platform {
    erhai::install_crypto_provider();
    Platform::start(None, |_| {}).await.expect("start")
}

/// The outcome of the audited `action` calls on `object` (newest last).
async fn audited(admin: &Client, action: &str) -> Vec<(String, String)> {
    admin
        .audit(0, "admin", action)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| (e.object, e.outcome))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reissued_certificate_replaces_the_old_one_and_disabled_users_are_refused() {
    let p = platform().await;
    let admin = p.client("admin").await.expect("admin");
    let bob = p
        .add_user("bob", "Bob Reviewer", "reviewer", "", "")
        .await
        .expect("bob");
    bob.whoami().await.expect("bob before the reissue");

    // Reissue: a new key pair and certificate; the old bundle is refused at its next call,
    // on the connection it already has, and says why.
    let fresh = p.dir.join("identities").join("bob-reissued");
    let before = admin.list_users().await.expect("users");
    let u = admin.reissue_user("bob", 0, &fresh).await.expect("reissue");
    let old_fp = before
        .iter()
        .find(|u| u.id == "bob")
        .map(|u| u.cert_sha256.clone())
        .expect("bob listed");
    assert_ne!(
        u.cert_sha256, old_fp,
        "the record names the new certificate"
    );
    let (c, m) = code(bob.whoami().await);
    assert_eq!(c, Code::Unauthenticated, "{m}");
    assert!(m.contains("replaced"), "{m}");
    let (c, _) = code(p.client("bob").await.expect("old bundle").whoami().await);
    assert_eq!(
        c,
        Code::Unauthenticated,
        "a new connection with the old bundle"
    );
    let bob2 = Client::connect_dir(&fresh).await.expect("new bundle");
    assert_eq!(bob2.whoami().await.expect("new bundle works").id, "bob");

    // Disable needs a reason; a disabled user is refused; enabling lets them back in.
    let (c, m) = code(admin.disable_user("bob", "  ").await);
    assert_eq!(c, Code::InvalidArgument, "{m}");
    let u = admin
        .disable_user("bob", "left the review team")
        .await
        .expect("disable");
    assert!(u.disabled);
    let (c, m) = code(bob2.whoami().await);
    assert_eq!(c, Code::Unauthenticated, "{m}");
    assert!(m.contains("disabled"), "{m}");
    assert!(!admin.enable_user("bob").await.expect("enable").disabled);
    bob2.whoami().await.expect("enabled again");

    // Each change is in the audit chain, the disable with its reason.
    assert_eq!(
        audited(&admin, "reissue_user").await,
        [("bob".to_string(), "allowed".to_string())]
    );
    let disables = audited(&admin, "disable_user").await;
    assert!(
        disables.contains(&("bob (left the review team)".into(), "allowed".into())),
        "{disables:?}"
    );
    assert_eq!(
        audited(&admin, "enable_user").await,
        [("bob".to_string(), "allowed".to_string())]
    );
    p.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_lasting_admin_cannot_be_disabled_or_expired() {
    let p = platform().await;
    let admin = p.client("admin").await.expect("admin");
    let later = chrono::Utc::now().timestamp_millis() + 86_400_000;
    for r in [
        admin.disable_user("admin", "going away").await,
        admin.set_user_expiry("admin", later).await,
    ] {
        let (c, m) = code(r);
        assert_eq!(c, Code::FailedPrecondition, "{m}");
        assert!(m.contains("last enabled admin"), "{m}");
    }
    admin.whoami().await.expect("still an admin");
    let refused = audited(&admin, "disable_user").await;
    assert_eq!(
        refused,
        [("admin (going away)".to_string(), "failed".to_string())]
    );

    // With a second admin, the first may expire; the second is then the last one.
    let second = p
        .add_user("admin2", "Second Admin", "admin", "", "")
        .await
        .expect("admin2");
    admin
        .set_user_expiry("admin", later)
        .await
        .expect("another admin remains");
    let (c, m) = code(admin.disable_user("admin2", "x").await);
    assert_eq!(c, Code::FailedPrecondition, "{m}");
    // Lifting the first admin's expiry makes the second one dispensable again.
    second
        .set_user_expiry("admin", 0)
        .await
        .expect("lift expiry");
    second
        .disable_user("admin2", "handing over")
        .await
        .expect("disable the second admin");
    p.stop().await.expect("stop");
}

/// `GET path` over plain HTTP/1.1: (status, body).
fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, body.to_string())
}

/// The value of the sample `series` (name and labels, exactly) in a metrics text.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_listener_counts_calls_and_answers_health_checks() {
    erhai::install_crypto_provider();
    let p = Platform::start(None, |c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await
    .expect("start");
    let at = p.server.metrics_addr.expect("a metrics listener");
    let (status, body) = http_get(at, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let who = r#"erhai_calls_total{action="who_am_i",outcome="ok"}"#;
    let denied = r#"erhai_calls_total{action="check_query",outcome="denied"}"#;
    let (_, before) = http_get(at, "/metrics");
    let admin = p.client("admin").await.expect("admin");
    for _ in 0..3 {
        admin.whoami().await.expect("whoami");
    }
    let (c, _) = code(admin.check("SELECT 'marker-5150'", "none").await);
    assert_eq!(c, Code::PermissionDenied);
    let (status, after) = http_get(at, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(sample(&after, who) - sample(&before, who), 3.0, "{after}");
    assert_eq!(
        sample(&after, denied) - sample(&before, denied),
        1.0,
        "{after}"
    );
    // Every call's audit event was timed; the other families are there from the start.
    assert!(
        sample(&after, "erhai_audit_append_seconds_count") >= 4.0,
        "{after}"
    );
    for family in [
        r#"erhai_jobs_queued{env="production"}"#,
        r#"erhai_jobs_running{env="development"}"#,
        "erhai_batch_cache_hits_total",
        "erhai_batch_cache_misses_total",
    ] {
        assert!(after.contains(family), "{family} missing: {after}");
    }
    // Nothing a caller sent is a label or a value.
    assert!(!after.contains("marker-5150"), "{after}");
    assert_eq!(http_get(at, "/nothing").0, 404);
    p.stop().await.expect("stop");
}

#[test]
fn a_metrics_listener_off_loopback_needs_metrics_public() {
    let mut cfg = erhai_gateway::ServerConfig::new(
        std::path::Path::new("."),
        "127.0.0.1:7443".parse().expect("addr"),
    );
    cfg.metrics_listen = Some("0.0.0.0:9464".parse().expect("addr"));
    let e = cfg.validate().expect_err("public without consent");
    assert!(e.to_string().contains("metrics_public"), "{e}");
    cfg.metrics_public = true;
    cfg.validate().expect("consented");
}

/// `erhai serve --dir dir` with its stdout and stderr piped, once it printed `ready <endpoint>`.
fn serve(dir: &std::path::Path, args: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_erhai"))
        .args(["serve", "--dir"])
        .arg(dir)
        .args(args)
        .env_remove("ERHAI_LOG")
        .env_remove("ERHAI_LOG_FORMAT")
        .env_remove("ERHAI_LISTEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn erhai serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read");
    let endpoint = line
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("erhai serve did not start: {line:?}"))
        .trim()
        .to_string();
    (child, endpoint)
}

/// SIGTERM (the graceful path), then everything the server wrote on stderr.
fn stop(child: std::process::Child) -> String {
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "erhai serve exited with {}",
        out.status
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn erhai_cli(identity: &std::path::Path, endpoint: Option<&str>) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_erhai"));
    cmd.arg("--identity").arg(identity).arg("whoami");
    match endpoint {
        Some(e) => cmd.env("ERHAI_ENDPOINT", e),
        None => cmd.env_remove("ERHAI_ENDPOINT"),
    };
    cmd.output().expect("run erhai")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_deployment_keeps_its_port_and_logs_each_call_as_json() {
    erhai::install_crypto_provider();
    let tmp = tempfile::tempdir().expect("dir");
    let dir = tmp.path().join("deployment");
    // A deployment started on port 0 writes the port it got into its erhai.toml.
    let p = Platform::start(Some(dir.clone()), |_| {})
        .await
        .expect("start");
    let endpoint = p.endpoint.clone();
    p.stop().await.expect("stop");
    let admin_bundle = dir.join("identities").join("admin");

    // `erhai serve --dir` serves the same endpoint the identity bundles name.
    let (server, served) = serve(&dir, &["--log-format", "json"]);
    assert_eq!(served, endpoint);
    let bundle_endpoint =
        std::fs::read_to_string(admin_bundle.join("endpoint")).expect("endpoint file");
    assert_eq!(bundle_endpoint.trim(), endpoint);
    let admin = Client::connect_dir(&admin_bundle).await.expect("connect");
    admin.whoami().await.expect("whoami after restart");
    let (c, _) = code(admin.check("SELECT 'needle-4711' AS x", "none").await);
    assert_eq!(c, Code::PermissionDenied);

    // A second server on the same port says so and exits non-zero.
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_erhai"))
        .args(["serve", "--dir"])
        .arg(&dir)
        .env_remove("ERHAI_LISTEN")
        .output()
        .expect("second serve");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    assert!(
        err.contains("is already in use (another erhai serve?)")
            && err.contains("change `listen` in")
            && err.contains("erhai.toml"),
        "{err}"
    );

    // ERHAI_ENDPOINT overrides the bundle's endpoint: a bundle naming a dead port works with
    // it and fails without it.
    let moved = tmp.path().join("moved-admin");
    std::fs::create_dir_all(&moved).expect("dir");
    for f in ["cert.pem", "key.pem", "ca.pem"] {
        std::fs::copy(admin_bundle.join(f), moved.join(f)).expect("copy");
    }
    std::fs::write(moved.join("endpoint"), "https://127.0.0.1:9\n").expect("endpoint");
    let out = erhai_cli(&moved, Some(&endpoint));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!erhai_cli(&moved, None).status.success());

    // One JSON line per call, with the call's fields and none of its SQL.
    let log = stop(server);
    assert!(!log.contains("needle-4711"), "{log}");
    let calls: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "erhai_gateway::calls")
        .collect();
    let find = |action: &str| {
        calls
            .iter()
            .find(|v| v["action"] == action)
            .unwrap_or_else(|| panic!("no {action} line in {log}"))
    };
    let who = find("who_am_i");
    assert_eq!(who["user"], "admin");
    assert_eq!(who["role"], "admin");
    assert_eq!(who["outcome"], "ok");
    assert!(who["duration_ms"].as_f64().is_some(), "{who}");
    let check = find("check_query");
    assert_eq!(check["outcome"], "denied");
    assert_eq!(check["code"], "PermissionDenied");
    // Every line of the log is JSON (no text or colour codes mixed in).
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{log}"
    );
}
