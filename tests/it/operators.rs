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
