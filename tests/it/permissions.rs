//! The permission matrix against the real server: every RPC, called by a user of every role,
//! is refused by the matrix exactly when `erhai_gateway::authz::permits` says so. Requests name
//! objects that do not exist, so an allowed call fails harmlessly further on (not found, invalid
//! argument) and nothing changes between calls. The match below is exhaustive: a new action
//! cannot be added without being tested here.

use crate::common::platform_with_users;

use erhai_client::{Client, ClientError};
use erhai_gateway::authz::{Action, MATRIX, Role, permits};
use erhai_proto::v1 as pb;
use tonic::Code;

async fn call(c: &Client, action: Action, dir: &std::path::Path) -> Result<(), ClientError> {
    use Action as A;
    let none = "no-such-object";
    match action {
        A::CreateUser => c
            .add_user(
                pb::CreateUserRequest {
                    id: "Not A Valid Id".into(),
                    role: "analyst".into(),
                    ..Default::default()
                },
                dir,
            )
            .await
            .map(drop),
        A::ListUsers => c.list_users().await.map(drop),
        A::SetUserExpiry => c.set_user_expiry(none, 0).await.map(drop),
        A::ReissueUser => c.reissue_user(none, 0, dir).await.map(drop),
        A::DisableUser => c.disable_user(none, "reason").await.map(drop),
        A::EnableUser => c.enable_user(none).await.map(drop),
        A::WhoAmI => c.whoami().await.map(drop),
        A::RegisterDataset => c.register_raw(Vec::new()).await.map(drop),
        A::ApproveImport => c.approve_import(none, "reason").await.map(drop),
        A::ListDatasets => c.list_datasets().await.map(drop),
        A::GetDataset => c.get_dataset(none).await.map(drop),
        A::RetireDataset => c.retire_dataset(none, "reason").await.map(drop),
        A::DeleteDataset => c.delete_dataset(none, "reason").await.map(drop),
        A::SubmitQuery => c.submit(none, "").await.map(drop),
        A::CheckQuery => c.check(none, "").await.map(drop),
        A::RunDevQuery => c.run_dev(none, "").await.map(drop),
        A::PromoteJob => c.promote(none).await.map(drop),
        A::GetJob => c.job(none).await.map(drop),
        A::ListJobs => c.jobs().await.map(drop),
        A::ListPending => c.pending().await.map(drop),
        A::ShowReview => c.show_review(none).await.map(drop),
        A::Decide => c.decide(none, false, "reason").await.map(drop),
        A::FetchRelease => c.fetch_file(none, "csv").await.map(drop),
        A::PlatformKey => c.platform_key().await.map(drop),
        A::ListScenarios => c.scenarios().await.map(drop),
        A::ScenarioBudget => c.budget(none).await.map(drop),
        A::ApplyScenario => c
            .apply_scenario(pb::Scenario {
                name: none.into(),
                ..Default::default()
            })
            .await
            .map(drop),
        A::ReviewScenario => c.review_scenario(none, true, "reason", &[]).await.map(drop),
        A::RevokeScenario => c.revoke_scenario(none, "reason").await.map(drop),
        A::OverdueScenarios => c.overdue_scenarios().await.map(drop),
        A::FileQuality => c.file_quality(none, "", "issue").await.map(drop),
        A::ListQuality => c.quality(true).await.map(drop),
        A::AnswerQuality => c.answer_quality(none, "answer").await.map(drop),
        A::TenantReport => c.report(none, "2026-01-01", "2026-01-31").await.map(drop),
        A::CreateTenant => c.create_tenant("Bad Tenant", "").await.map(drop),
        A::ListTenants => c.tenants().await.map(drop),
        A::GetTenant => c.tenant(none).await.map(drop),
        A::SetAgreement => c
            .set_agreement(none, "2026-01-01", "2026-12-31", "reason")
            .await
            .map(drop),
        A::ChangeTenantStatus => c
            .change_tenant_status(none, "suspend", "reason")
            .await
            .map(drop),
        A::SubmitRectification => c.rectify("").await.map(drop),
        A::ListAudit => c.audit(1, "", "").await.map(drop),
        A::VerifyAudit => c.audit_verify().await.map(drop),
        A::Lineage => c.lineage(none, "").await.map(drop),
    }
}

/// Whether `r` is the matrix's refusal (not some later, object-level one).
fn refused_by_matrix(r: &Result<(), ClientError>) -> bool {
    matches!(r, Err(ClientError::Status(s))
        if s.code() == Code::PermissionDenied && s.message().contains("may not"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_answers_every_role_as_the_matrix_says() {
    let p = platform_with_users(|_| {}).await;
    let user_of = |role: Role| match role {
        Role::Admin => "admin",
        Role::Provider => "provider",
        Role::Analyst => "analyst",
        Role::Reviewer => "reviewer",
        Role::Auditor => "auditor",
        Role::Center => "center",
        Role::Authority => "authority",
    };
    let dir = tempfile::tempdir().expect("dir");
    let mut checked = 0;
    for role in Role::ALL {
        let c = p.client(user_of(role)).await.expect("client");
        for (action, _) in MATRIX {
            let r = call(&c, *action, &dir.path().join("bundle")).await;
            let allowed = permits(role, *action);
            assert_eq!(
                refused_by_matrix(&r),
                !allowed,
                "{role} calling {}: the matrix says {}, the server answered {r:?}",
                action.name(),
                if allowed { "allowed" } else { "refused" }
            );
            checked += 1;
        }
    }
    assert_eq!(checked, Role::ALL.len() * MATRIX.len());
    // Every action is in the matrix once.
    let mut names: Vec<&str> = MATRIX.iter().map(|(a, _)| a.name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), MATRIX.len());
    p.stop().await.expect("stop");
}

/// Fails unless `r` is a refusal that reveals nothing: not found, or permission denied.
fn refused<T: std::fmt::Debug>(what: &str, r: Result<T, ClientError>) {
    match r {
        Err(ClientError::Status(s))
            if matches!(s.code(), Code::NotFound | Code::PermissionDenied) => {}
        other => panic!("{what}: a foreign tenant's object must not be reachable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_one_tenant_reaches_another() {
    use erhai_devkit::demo::{TENANT, authorize_demo_scenario, load_demo_data};

    let p = platform_with_users(|_| {}).await;
    load_demo_data(&p, 9, erhai_devkit::demo_data::Sizes::with_stays(1_500))
        .await
        .expect("data");
    authorize_demo_scenario(&p).await.expect("scenario");
    let analyst = p.client("analyst").await.expect("analyst");
    let reviewer = p.client("reviewer").await.expect("reviewer");
    // Tenant A's objects: a released job, a pending job, a data-quality request.
    let sql = "SELECT district, count(*) AS stays FROM hotel_stays GROUP BY district";
    let released = analyst
        .submit_in(sql, "demo-tourism", 0.0)
        .await
        .expect("job");
    reviewer
        .finished(&released.id, std::time::Duration::from_secs(120))
        .await
        .expect("run");
    reviewer
        .decide(&released.id, true, "district counts")
        .await
        .expect("approve");
    let pending = analyst
        .submit_in(sql, "demo-tourism", 0.0)
        .await
        .expect("job");
    let dq = analyst
        .file_quality("hotel_stays", "nights", "zero nights")
        .await
        .expect("quality");

    // Tenant B: an analyst and a reviewer bound to it.
    let outsider = p
        .add_user("outsider", "外部", "analyst", "erhai-insight", "")
        .await
        .expect("user");
    let foreign_reviewer = p
        .add_user(
            "outsider-reviewer",
            "外部审核",
            "reviewer",
            "erhai-insight",
            "",
        )
        .await
        .expect("user");
    refused("get job", outsider.job(&released.id).await);
    refused(
        "fetch release",
        outsider.fetch_file(&released.id, "csv").await,
    );
    refused("promote", outsider.promote(&pending.id).await);
    refused(
        "lineage of a release",
        outsider.lineage("", &released.id).await,
    );
    refused("scenario", outsider.scenario("demo-tourism").await);
    refused("budget", outsider.budget("demo-tourism").await);
    refused(
        "query in the scenario",
        outsider.submit_in(sql, "demo-tourism", 0.0).await,
    );
    refused("tenant case", outsider.tenant(TENANT).await);
    refused(
        "report",
        outsider.report(TENANT, "2026-01-01", "2030-12-31").await,
    );
    refused(
        "show review",
        foreign_reviewer.show_review(&pending.id).await,
    );
    refused(
        "decide",
        foreign_reviewer
            .decide(&pending.id, true, "looks fine")
            .await,
    );
    // Lists leave the other tenant out.
    assert!(outsider.jobs().await.expect("jobs").is_empty());
    assert!(outsider.scenarios().await.expect("scenarios").is_empty());
    assert!(outsider.quality(false).await.expect("quality").is_empty());
    assert!(
        foreign_reviewer
            .pending()
            .await
            .expect("pending")
            .iter()
            .all(|j| j.tenant != TENANT)
    );
    refused(
        "development query in the scenario",
        outsider.run_dev("demo-tourism", sql).await,
    );
    refused(
        "check in the scenario",
        outsider.check("demo-tourism", sql).await,
    );
    // The public catalog is visible (it is what an application names); its data is not.
    assert_eq!(outsider.list_datasets().await.expect("datasets").len(), 3);
    // The request stays the filing tenant's.
    assert_eq!(analyst.quality(false).await.expect("own")[0].id, dq.id);
    p.stop().await.expect("stop");
}
