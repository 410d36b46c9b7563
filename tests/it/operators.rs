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
