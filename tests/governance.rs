//! Governance end to end: tenants and their operating agreements, suspension, rectification,
//! restoration and termination, through the real server on 127.0.0.1 with TLS.

use erhai::client::ClientError;
use erhai::demo::{DEMO_USERS, Platform, TENANT, load_demo_data};
use erhai::demo_data::Sizes;
use tonic::Code;

fn code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (Code, String) {
    match r {
        Err(ClientError::Status(s)) => (s.code(), s.message().to_string()),
        other => panic!("expected a gRPC error, got {other:?}"),
    }
}

const SQL: &str = "SELECT district, count(*) AS stays FROM hotel_stays GROUP BY district";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agreement_governs_every_call_of_its_tenant() {
    erhai::install_crypto_provider();
    let p = Platform::start(None, |_| {}).await.expect("start");
    for (id, name, role, tenant, unit) in DEMO_USERS {
        p.add_user(id, name, role, tenant, unit)
            .await
            .expect("user");
    }
    load_demo_data(&p, 3, Sizes::with_stays(1_500))
        .await
        .expect("data");
    let admin = p.client("admin").await.expect("admin");
    let authority = p.client("authority").await.expect("authority");

    // A new tenant has no access until the authority dates its agreement; users of an
    // unregistered tenant cannot even be created.
    let (c, m) = code(
        admin
            .add_user(
                erhai_proto::v1::CreateUserRequest {
                    id: "ghost".into(),
                    name: "无主".into(),
                    role: "analyst".into(),
                    tenant: "nobody".into(),
                    ..Default::default()
                },
                &p.identity("ghost"),
            )
            .await,
    );
    assert_eq!(c, Code::InvalidArgument, "{m}");
    assert!(m.contains("not registered"), "{m}");
    admin
        .create_tenant("erhai-new", "新运营")
        .await
        .expect("tenant");
    admin
        .add_user(
            erhai_proto::v1::CreateUserRequest {
                id: "newcomer".into(),
                name: "新人".into(),
                role: "analyst".into(),
                tenant: "erhai-new".into(),
                ..Default::default()
            },
            &p.identity("newcomer"),
        )
        .await
        .expect("user");
    let newcomer = p.client("newcomer").await.expect("client");
    let (c, m) = code(newcomer.whoami().await);
    assert_eq!(c, Code::PermissionDenied);
    assert!(m.contains("no operating agreement"), "{m}");
    // At most three years, and only the authority dates it.
    let (c, _) = code(
        admin
            .set_agreement("erhai-new", "2026-01-01", "2026-12-31", "signed")
            .await,
    );
    assert_eq!(c, Code::PermissionDenied);
    let (c, m) = code(
        authority
            .set_agreement("erhai-new", "2026-01-01", "2029-01-01", "signed")
            .await,
    );
    assert_eq!(c, Code::InvalidArgument);
    assert!(m.contains("at most 3 years"), "{m}");
    // An agreement that has not started yet, then one in force.
    let (c, _) = code(
        authority
            .set_agreement("erhai-new", "2030-01-01", "2030-12-31", "")
            .await,
    );
    assert_eq!(c, Code::InvalidArgument, "a reason is required");
    authority
        .set_agreement("erhai-new", "2030-01-01", "2030-12-31", "signed in advance")
        .await
        .expect("future agreement");
    let (_, m) = code(newcomer.whoami().await);
    assert!(m.contains("runs from 2030-01-01"), "{m}");

    // The demo tenant: suspended mid-session, its analyst is blocked at the next call but may
    // read the case and submit a rectification report; restored, it works again.
    let analyst = p.client("analyst").await.expect("analyst");
    analyst.submit(SQL, true).await.expect("query before");
    authority
        .change_tenant_status(TENANT, "suspend", "released rows to a third party")
        .await
        .expect("suspend");
    let (c, m) = code(analyst.submit(SQL, true).await);
    assert_eq!(c, Code::PermissionDenied);
    assert!(
        m.contains("suspended (released rows to a third party)"),
        "{m}"
    );
    let (c, _) = code(analyst.jobs().await);
    assert_eq!(c, Code::PermissionDenied);
    let case = analyst.tenant("").await.expect("own case");
    assert_eq!(case.status, "suspended");
    analyst
        .rectify("access revoked for the employee; data deleted; training held")
        .await
        .expect("rectification");
    // Only the authority restores; the rectification is on the record.
    let (c, _) = code(admin.change_tenant_status(TENANT, "restore", "ok").await);
    assert_eq!(c, Code::PermissionDenied);
    let restored = authority
        .change_tenant_status(TENANT, "restore", "rectification accepted")
        .await
        .expect("restore");
    let whats: Vec<&str> = restored.history.iter().map(|h| h.what.as_str()).collect();
    assert_eq!(
        whats,
        vec!["agreement", "suspend", "rectification", "restore"]
    );
    analyst.submit(SQL, true).await.expect("query after");
    // Another tenant's case is not visible.
    let (c, _) = code(analyst.tenant("erhai-new").await);
    assert_eq!(c, Code::NotFound);

    // Termination is final: no call succeeds, and it cannot be restored.
    authority
        .change_tenant_status(TENANT, "terminate", "agreement breached again")
        .await
        .expect("terminate");
    let (c, m) = code(analyst.whoami().await);
    assert_eq!(c, Code::PermissionDenied);
    assert!(m.contains("terminated"), "{m}");
    let (c, _) = code(
        authority
            .change_tenant_status(TENANT, "restore", "second chance")
            .await,
    );
    assert_eq!(c, Code::FailedPrecondition);

    // Every transition is in the audit, with its reason.
    let auditor = p.client("auditor").await.expect("auditor");
    let events = auditor
        .audit_query(erhai_proto::v1::ListAuditRequest {
            all: true,
            ..Default::default()
        })
        .await
        .expect("audit");
    let transitions: Vec<&str> = events
        .iter()
        .filter(|e| e.action == "change_tenant_status" && e.outcome == "allowed")
        .map(|e| e.object.as_str())
        .collect();
    assert_eq!(transitions.len(), 3, "{transitions:?}");
    assert!(transitions[0].contains("suspend: released rows to a third party"));
    assert!(events.iter().any(|e| e.action == "submit_query"
        && e.outcome == "denied"
        && e.reason.contains("suspended")));
    p.stop().await.expect("stop");
}
