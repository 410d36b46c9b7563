//! Governance end to end: tenants and their operating agreements, suspension, rectification,
//! restoration and termination, through the real server on 127.0.0.1 with TLS.

use crate::common::{code, platform_with_users};

use erhai_devkit::demo::{Platform, TENANT, authorize_datasets, load_demo_data};
use erhai_devkit::demo_data::Sizes;
use tonic::Code;

const SQL: &str = "SELECT district, count(*) AS stays FROM hotel_stays GROUP BY district";

/// A platform with the demo users and data, and scenario `name` over all of hotel_stays.
async fn platform_with_scenario(seed: u64, name: &str) -> Platform {
    let p = platform_with_users(|_| {}).await;
    load_demo_data(&p, seed, Sizes::with_stays(1_500))
        .await
        .expect("data");
    authorize_datasets(&p, name, &["hotel_stays"])
        .await
        .expect("scenario");
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agreement_governs_every_call_of_its_tenant() {
    let p = platform_with_scenario(3, "agreement").await;
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
    analyst
        .submit("agreement", SQL)
        .await
        .expect("query before");
    authority
        .change_tenant_status(TENANT, "suspend", "released rows to a third party")
        .await
        .expect("suspend");
    let (c, m) = code(analyst.submit("agreement", SQL).await);
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
    analyst.submit("agreement", SQL).await.expect("query after");
    // Another tenant's case is not visible.
    let (c, _) = code(analyst.tenant("erhai-new").await);
    assert_eq!(c, Code::NotFound);

    // The periodic report: its figures match the audited events of the period.
    let today = chrono::Utc::now().date_naive().to_string();
    let report = authority
        .report(TENANT, &today, &today)
        .await
        .expect("report");
    let auditor = p.client("auditor").await.expect("auditor");
    let events = auditor
        .audit_query(erhai_proto::v1::ListAuditRequest {
            tenant: TENANT.into(),
            all: true,
            ..Default::default()
        })
        .await
        .expect("audit");
    let count = |action: &str, outcome: &str| {
        events
            .iter()
            .filter(|e| e.action == action && e.outcome == outcome)
            .count() as u64
    };
    // Accepted by the plan check (how each run ended depends on the data: not reported).
    assert_eq!(report.production_run, count("submit_query", "allowed"));
    assert_eq!(report.production_queries, count("submit_query", "allowed"));
    assert_eq!(report.production_queries, 2);
    let whats: Vec<&str> = report.violations.iter().map(|v| v.what.as_str()).collect();
    assert_eq!(whats, vec!["suspend", "rectification", "restore"]);
    let md = erhai::output::report_markdown(&report, erhai::lang::Lang::En);
    assert!(md.contains("Periodic report — cangshan-data"), "{md}");
    assert!(
        erhai::output::report_html(&report, erhai::lang::Lang::En)
            .contains("<td class=\"n\">2</td>")
    );
    // Every total is the sum of its parts.
    assert_eq!(
        report.production_queries,
        report.production_refused + report.production_invalid + report.production_run
    );
    assert_eq!(
        report.production_run,
        report.run_released + report.rejected + report.run_awaiting
    );
    assert_eq!(
        report.production_refused,
        report.refusals_by_rule.iter().map(|r| r.count).sum::<u64>()
    );
    assert_eq!(
        report.weeks.iter().map(|w| w.production).sum::<u64>(),
        report.production_queries
    );
    // The tenant reports on itself, never on another.
    assert_eq!(
        analyst
            .report("", &today, &today)
            .await
            .expect("own")
            .tenant,
        TENANT
    );
    let (c, _) = code(analyst.report("erhai-new", &today, &today).await);
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

fn column(dataset: &str, column: &str) -> erhai_proto::v1::ScenarioColumn {
    erhai_proto::v1::ScenarioColumn {
        dataset: dataset.into(),
        column: column.into(),
        justification: format!("{column} is needed for the tourism flow statistics"),
        approved: true,
    }
}

fn application(name: &str) -> erhai_proto::v1::Scenario {
    let today = chrono::Utc::now().date_naive();
    erhai_proto::v1::Scenario {
        name: name.into(),
        title: "旅游客流统计".into(),
        purpose: "district visitor flows for the tourism bureau's planning".into(),
        domain: "文旅".into(),
        outputs: "visitors and nights per district, monthly".into(),
        valid_from: today.to_string(),
        valid_to: (today + chrono::Days::new(90)).to_string(),
        columns: vec![
            column("hotel_stays", "district"),
            column("hotel_stays", "nights"),
            column("scenic_entries", "district"),
            column("enterprises", "industry"),
        ],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_is_authorized_step_by_step_and_bounds_its_queries() {
    let p = platform_with_users(|_| {}).await;
    load_demo_data(&p, 4, Sizes::with_stays(2_000))
        .await
        .expect("data");
    let analyst = p.client("analyst").await.expect("analyst");
    let center = p.client("center").await.expect("center");
    let authority = p.client("authority").await.expect("authority");
    let tourism = p.client("provider").await.expect("provider");
    let scenic = p.client("provider-scenic").await.expect("provider");
    let market = p.client("provider-market").await.expect("provider");

    // Applications are checked: every column justified and real, a known domain.
    let mut bad = application("flows");
    bad.columns[0].justification = " ".into();
    let (c, m) = code(analyst.apply_scenario(bad).await);
    assert_eq!(c, Code::InvalidArgument, "{m}");
    let mut bad = application("flows");
    bad.columns.push(column("hotel_stays", "no_such_column"));
    let (c, m) = code(analyst.apply_scenario(bad).await);
    assert!(
        c == Code::InvalidArgument && m.contains("no_such_column"),
        "{m}"
    );
    let mut bad = application("flows");
    bad.domain = "博彩".into();
    let (c, _) = code(analyst.apply_scenario(bad).await);
    assert_eq!(c, Code::InvalidArgument);

    let s = analyst
        .apply_scenario(application("flows"))
        .await
        .expect("apply");
    assert_eq!(s.status, "center_review");
    let sql = "SELECT district, sum(nights) AS nights FROM hotel_stays GROUP BY district";
    let (c, m) = code(analyst.submit_in(sql, "flows", 0.0).await);
    assert_eq!(c, Code::FailedPrecondition);
    assert!(m.contains("center_review"), "{m}");

    // Each step in its turn: the authority cannot go first.
    let (c, m) = code(authority.review_scenario("flows", true, "ok", &[]).await);
    assert_eq!(c, Code::FailedPrecondition);
    assert!(m.contains("the center's review"), "{m}");
    let (c, _) = code(center.review_scenario("flows", true, "", &[]).await);
    assert_eq!(c, Code::InvalidArgument, "a reason is required");
    let s = center
        .review_scenario("flows", true, "purpose and columns consistent", &[])
        .await
        .expect("center");
    assert_eq!(s.status, "authority_review");
    assert!(!s.deadline.is_empty());
    // The authority narrows: the market regulator's data is not necessary.
    let narrow = [
        "hotel_stays.district".to_string(),
        "hotel_stays.nights".to_string(),
        "scenic_entries.district".to_string(),
    ];
    let s = authority
        .review_scenario(
            "flows",
            true,
            "minimum necessary: no enterprise data",
            &narrow,
        )
        .await
        .expect("authority");
    assert_eq!(s.status, "provider_confirmation");
    assert_eq!(
        s.pending_units,
        vec!["dali-scenic-operator", "dali-tourism-bureau"]
    );
    let industry = s
        .columns
        .iter()
        .find(|c| c.column == "industry")
        .expect("requested");
    assert!(!industry.approved);
    let (c, _) = code(market.review_scenario("flows", true, "ok", &[]).await);
    assert_eq!(c, Code::FailedPrecondition, "the market unit is not asked");
    let s = tourism
        .review_scenario("flows", true, "confirmed", &[])
        .await
        .expect("tourism");
    assert_eq!(s.pending_units, vec!["dali-scenic-operator"]);
    let s = scenic
        .review_scenario("flows", true, "confirmed", &[])
        .await
        .expect("scenic");
    assert_eq!(s.status, "active");

    // The scenario's sandbox holds its approved columns only.
    let job = analyst
        .submit_in(sql, "flows", 0.0)
        .await
        .expect("in scope");
    assert_eq!(job.state, "awaiting_review", "{job:?}");
    assert_eq!(job.scenario, "flows");
    let (c, m) = code(
        analyst
            .submit_in(
                "SELECT hotel_name, count(*) AS n FROM hotel_stays GROUP BY hotel_name",
                "flows",
                0.0,
            )
            .await,
    );
    assert_eq!(c, Code::PermissionDenied, "{m}");
    assert!(
        m.contains(
            "column hotel_stays.hotel_name is not among the columns scenario flows approved"
        ),
        "{m}"
    );
    // The same for a dry run and on the development samples.
    let (c, m) = code(
        analyst
            .check(
                "flows",
                "SELECT count(*) FROM hotel_stays WHERE hotel_name = 'x'",
            )
            .await,
    );
    assert!(
        c == Code::PermissionDenied && m.contains("hotel_stays.hotel_name"),
        "{m}"
    );
    let (c, m) = code(
        analyst
            .run_dev("flows", "SELECT hotel_name FROM hotel_stays")
            .await,
    );
    assert!(
        c == Code::PermissionDenied && m.contains("hotel_stays.hotel_name"),
        "{m}"
    );
    let (c, m) = code(
        analyst
            .submit_in(
                "SELECT industry, count(*) AS n FROM enterprises GROUP BY industry",
                "flows",
                0.0,
            )
            .await,
    );
    assert!(
        c == Code::PermissionDenied && m.contains("dataset enterprises is not in scenario flows"),
        "{m}"
    );
    // Another tenant's analyst does not see it.
    p.add_user("outsider", "外部", "analyst", "erhai-insight", "")
        .await
        .expect("user");
    let outsider = p.client("outsider").await.expect("outsider");
    let (c, _) = code(outsider.submit_in(sql, "flows", 0.0).await);
    assert_eq!(c, Code::NotFound);

    // Revoked by the authority: no more queries.
    let (c, _) = code(analyst.revoke_scenario("flows", "mine").await);
    assert_eq!(c, Code::PermissionDenied);
    authority
        .revoke_scenario("flows", "purpose fulfilled")
        .await
        .expect("revoke");
    let (c, m) = code(analyst.submit_in(sql, "flows", 0.0).await);
    assert_eq!(c, Code::FailedPrecondition);
    assert!(m.contains("revoked"), "{m}");

    // A rejection ends an application at any step.
    analyst
        .apply_scenario(application("flows-2"))
        .await
        .expect("apply");
    let s = center
        .review_scenario("flows-2", false, "purpose too broad", &[])
        .await
        .expect("reject");
    assert_eq!(s.status, "rejected");
    let (c, _) = code(authority.review_scenario("flows-2", true, "ok", &[]).await);
    assert_eq!(c, Code::FailedPrecondition);
    // At the authority's step, and at a provider's (the others' confirmations don't matter).
    analyst
        .apply_scenario(application("flows-3"))
        .await
        .expect("apply");
    center
        .review_scenario("flows-3", true, "ok", &[])
        .await
        .expect("center");
    let s = authority
        .review_scenario("flows-3", false, "not minimum necessary", &[])
        .await
        .expect("reject");
    assert_eq!((s.status.as_str(), s.reviews.len()), ("rejected", 2));
    analyst
        .apply_scenario(application("flows-4"))
        .await
        .expect("apply");
    center
        .review_scenario("flows-4", true, "ok", &[])
        .await
        .expect("center");
    authority
        .review_scenario("flows-4", true, "ok", &[])
        .await
        .expect("authority");
    tourism
        .review_scenario("flows-4", true, "confirmed", &[])
        .await
        .expect("tourism");
    let s = scenic
        .review_scenario(
            "flows-4",
            false,
            "entries are not to be fused with stays",
            &[],
        )
        .await
        .expect("reject");
    assert_eq!(s.status, "rejected");
    assert!(s.pending_units.is_empty(), "{s:?}");
    let (c, _) = code(market.review_scenario("flows-4", true, "ok", &[]).await);
    assert_eq!(c, Code::FailedPrecondition);
    for name in ["flows-2", "flows-3", "flows-4"] {
        let (c, m) = code(analyst.submit_in(sql, name, 0.0).await);
        assert!(
            c == Code::FailedPrecondition && m.contains("rejected"),
            "{m}"
        );
    }
    assert!(
        authority
            .overdue_scenarios()
            .await
            .expect("overdue")
            .is_empty()
    );
    p.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_passes_scenarios_expire_and_late_steps_are_listed() {
    let p = platform_with_scenario(6, "ending").await;
    let analyst = p.client("analyst").await.expect("analyst");
    analyst
        .apply_scenario(application("waiting"))
        .await
        .expect("apply");
    let center = p.client("center").await.expect("center");
    let s = center
        .review_scenario("waiting", true, "consistent", &[])
        .await
        .expect("center");
    assert_eq!(s.status, "authority_review");
    analyst.submit("ending", SQL).await.expect("valid today");

    // Three weeks pass: "ending" was valid until yesterday; the authority's step of "waiting"
    // started 21 days ago. The server is stopped while its records are moved back in time.
    let today = chrono::Utc::now().date_naive();
    let yesterday = today - chrono::Days::new(1);
    let p = p
        .restart_after(|cfg| {
            let store = erhai_gateway::state::Store::open(&cfg.meta_dir())?;
            let scenarios = erhai_gateway::scenario::Scenarios::open(store.db())?;
            let back = |name: &str, edit: fn(&mut erhai_gateway::scenario::ScenarioRecord)| {
                scenarios.update(name, |s| {
                    let mut s = s.clone();
                    edit(&mut s);
                    Ok(s)
                })
            };
            back("ending", |s| {
                let today = chrono::Utc::now().date_naive();
                s.valid_from = Some(today - chrono::Days::new(30));
                s.valid_to = Some(today - chrono::Days::new(1));
            })?;
            back("waiting", |s| {
                s.stage_since = Some(chrono::Utc::now().date_naive() - chrono::Days::new(21));
            })?;
            store.flush()?;
            Ok(())
        })
        .await
        .expect("restart");

    // An expired scenario admits no query of any kind.
    let analyst = p.client("analyst").await.expect("analyst");
    let expired = format!("expired on {yesterday}");
    let (c, m) = code(analyst.submit("ending", SQL).await);
    assert!(c == Code::FailedPrecondition && m.contains(&expired), "{m}");
    let (c, m) = code(analyst.check("ending", SQL).await);
    assert!(c == Code::FailedPrecondition && m.contains(&expired), "{m}");
    let (c, m) = code(analyst.run_dev("ending", SQL).await);
    assert!(c == Code::FailedPrecondition && m.contains(&expired), "{m}");

    // The late step is listed for the authority, with its deadline, which was in the past.
    let authority = p.client("authority").await.expect("authority");
    let late = authority.overdue_scenarios().await.expect("overdue");
    assert_eq!(
        late.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        vec!["waiting"]
    );
    assert_eq!(late[0].status, "authority_review");
    assert!(late[0].deadline < today.to_string(), "{:?}", late[0]);
    // Only the authority reads the list.
    let (c, _) = code(analyst.overdue_scenarios().await);
    assert_eq!(c, Code::PermissionDenied);
    p.stop().await.expect("stop");
}

const SURVEY_POLICY: &str = r#"
privacy_unit = "respondent"

[columns.respondent]
kind = "other"
grade = "general"
uses = "identifier"

[columns.district]
kind = "dimension"
grade = "general"
uses = "dimension"

[columns.satisfaction]
kind = "measure"
grade = "general"
uses = "measure"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn social_data_is_usable_only_after_import_approval_and_only_by_its_tenant() {
    use std::sync::Arc;

    use arrow::array::{Float64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    let p = platform_with_users(|_| {}).await;
    p.add_user("outsider", "外部", "analyst", "erhai-insight", "")
        .await
        .expect("user");
    let analyst = p.client("analyst").await.expect("analyst");
    let outsider = p.client("outsider").await.expect("outsider");
    let authority = p.client("authority").await.expect("authority");
    let center = p.client("center").await.expect("center");

    // The tenant's own survey: 240 respondents in 12 districts.
    let n = 240;
    let schema = Arc::new(Schema::new(vec![
        Field::new("respondent", DataType::Utf8, false),
        Field::new("district", DataType::Utf8, false),
        Field::new("satisfaction", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("r{i:04}")),
            )),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("district-{}", i % 12)),
            )),
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|i| (i % 5) as f64),
            )),
        ],
    )
    .expect("batch");
    let d = analyst
        .register(
            "guest_survey",
            "our own survey",
            SURVEY_POLICY,
            schema,
            vec![batch],
        )
        .await
        .expect("upload");
    assert_eq!(d.import_status, "pending");
    // Not visible to another tenant.
    assert!(
        outsider
            .list_datasets()
            .await
            .expect("list")
            .iter()
            .all(|d| d.name != "guest_survey")
    );

    let mut app = application("survey");
    app.columns = vec![
        column("guest_survey", "district"),
        column("guest_survey", "satisfaction"),
    ];
    // Before the import is approved, no scenario may list it.
    let (c, m) = code(analyst.apply_scenario(app.clone()).await);
    assert_eq!(c, Code::FailedPrecondition);
    assert!(m.contains("import approval"), "{m}");
    let (c, _) = code(analyst.approve_import("guest_survey", "mine").await);
    assert_eq!(c, Code::PermissionDenied);
    authority
        .approve_import(
            "guest_survey",
            "collected with consent; no identifiers beyond ids",
        )
        .await
        .expect("approve import");
    // Another tenant still cannot list it in a scenario.
    let mut foreign = app.clone();
    foreign.name = "foreign".into();
    let (c, _) = code(outsider.apply_scenario(foreign).await);
    assert_eq!(c, Code::NotFound);

    analyst.apply_scenario(app).await.expect("apply");
    center
        .review_scenario("survey", true, "ok", &[])
        .await
        .expect("center");
    let s = authority
        .review_scenario("survey", true, "ok", &[])
        .await
        .expect("authority");
    // No provider unit owns social data: the authority's approval completes the chain.
    assert_eq!(s.status, "active", "{s:?}");
    let sql = "SELECT district, avg(satisfaction) AS score FROM guest_survey GROUP BY district";
    let job = analyst
        .submit_in(sql, "survey", 0.0)
        .await
        .expect("in its scenario");
    assert_eq!(job.state, "awaiting_review", "{job:?}");
    // Outside a scenario nothing runs at all.
    let (c, m) = code(analyst.submit("", sql).await);
    assert!(
        c == Code::InvalidArgument && m.contains("names its scenario"),
        "{m}"
    );
    // A development query on the sample, and one refused by the plan check.
    let (dev, _, _) = analyst
        .run_dev(
            "survey",
            "SELECT district, count(*) AS n FROM guest_survey GROUP BY district",
        )
        .await
        .expect("development query");
    assert_eq!(dev.env, "dev");
    let (c, _) = code(
        analyst
            .submit_in("SELECT respondent FROM guest_survey", "survey", 0.0)
            .await,
    );
    assert_eq!(c, Code::PermissionDenied);

    // The periodic report counts development apart, adds up, and states the social data.
    let today = chrono::Utc::now().date_naive().to_string();
    let report = authority
        .report(TENANT, &today, &today)
        .await
        .expect("report");
    assert_eq!(
        (report.production_queries, report.dev_queries),
        (2, 1),
        "{report:?}"
    );
    assert_eq!(report.production_refused, 1);
    assert_eq!(
        report.production_queries,
        report.production_refused + report.production_invalid + report.production_run
    );
    assert_eq!(
        report.production_run,
        report.run_released + report.rejected + report.run_awaiting
    );
    let week = report.weeks.last().expect("this week");
    assert_eq!((week.production, week.dev), (2, 1));
    assert_eq!(report.refusals_by_rule.len(), 1, "{report:?}");
    assert!(report.social_queries >= 2, "{report:?}");
    assert!(
        !report.social_data.contains("not available"),
        "{}",
        report.social_data
    );
    assert!(
        report.social_data.contains("1 approved"),
        "{}",
        report.social_data
    );
    let survey = &report.social_datasets[0];
    assert_eq!(
        (
            survey.name.as_str(),
            survey.rows,
            survey.import_status.as_str()
        ),
        ("guest_survey", 240, "approved")
    );
    assert_eq!(survey.scenarios, vec!["survey"]);
    let html = erhai::output::report_html(&report, erhai::lang::Lang::En);
    assert!(
        html.contains("guest_survey") && html.contains("<svg"),
        "{html}"
    );
    p.stop().await.expect("stop");
}
