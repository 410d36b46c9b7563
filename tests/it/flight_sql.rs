//! Arrow Flight SQL on the erhai endpoint, driven by arrow-flight's own `FlightSqlServiceClient`
//! over real mutual TLS: the same identity, permission matrix, scenario, review and audit as
//! `erhai.v1`, and tickets that are never a way to run SQL or to read what `release fetch`
//! would not give.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, CommandGetDbSchemas,
    CommandGetTables, CommandPreparedStatementQuery, CommandStatementQuery,
    CommandStatementSubstraitPlan, ProstMessageExt, SqlInfo, SubstraitPlan, TicketStatementQuery,
};
use arrow_flight::{FlightDescriptor, FlightInfo, Ticket};
use erhai_client::Client;
use erhai_devkit::demo::{DEMO_SCENARIO as S, Platform, authorize_demo_scenario, load_demo_data};
use erhai_devkit::demo_data::Sizes;
use erhai_proto::bundle;
use erhai_proto::v1 as pb;
use futures::TryStreamExt;
use prost::Message;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::common::platform_with_users;

type Flight = FlightSqlServiceClient<Channel>;

const LIMIT: std::time::Duration = std::time::Duration::from_secs(120);
const BY_DISTRICT: &str = "SELECT district, count(*) AS stays FROM hotel_stays GROUP BY district";

/// The demo users and data, the demo scenario, and an analyst of another tenant.
async fn platform(edit: impl FnOnce(&mut erhai_gateway::ServerConfig)) -> Platform {
    let p = platform_with_users(edit).await;
    p.add_user("other-analyst", "外部分析", "analyst", "erhai-insight", "")
        .await
        .expect("user");
    load_demo_data(&p, 5, Sizes::with_stays(1_500))
        .await
        .expect("data");
    authorize_demo_scenario(&p).await.expect("scenario");
    p
}

/// A Flight SQL client of `user` over mutual TLS with their identity bundle, naming `scenario`
/// in the call header when given.
async fn flight(p: &Platform, user: &str, scenario: Option<&str>) -> Flight {
    let dir = p.identity(user);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect(f);
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(bundle::CA)))
        .identity(Identity::from_pem(read(bundle::CERT), read(bundle::KEY)))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(p.endpoint.clone())
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls")
        .connect()
        .await
        .expect("connect");
    let mut client = FlightSqlServiceClient::new(channel);
    if let Some(s) = scenario {
        client.set_header("x-erhai-scenario", s);
    }
    client
}

/// The gRPC code and message of a Flight call that must fail.
fn code<T: std::fmt::Debug>(r: Result<T, FlightError>) -> (Code, String) {
    match r {
        Err(FlightError::Tonic(s)) => (s.code(), s.message().to_string()),
        other => panic!("expected a gRPC error, got {other:?}"),
    }
}

fn refused<T: std::fmt::Debug>(r: Result<T, FlightError>, want: Code, fragment: &str) {
    let (c, m) = code(r);
    assert_eq!(c, want, "{m}");
    assert!(m.contains(fragment), "`{m}` should contain `{fragment}`");
}

/// Reads every endpoint of `info`.
async fn read(client: &mut Flight, info: &FlightInfo) -> Result<Vec<RecordBatch>, FlightError> {
    let mut out = Vec::new();
    for ep in &info.endpoint {
        let ticket = ep.ticket.clone().expect("an endpoint carries a ticket");
        let stream = client.do_get(ticket).await?;
        out.extend(stream.try_collect::<Vec<_>>().await?);
    }
    Ok(out)
}

fn ticket_of(info: &FlightInfo) -> Ticket {
    info.endpoint[0].ticket.clone().expect("ticket")
}

fn text(batch: &RecordBatch, column: &str) -> String {
    use arrow::array::AsArray;
    batch
        .column_by_name(column)
        .expect(column)
        .as_string::<i32>()
        .value(0)
        .to_string()
}

fn schema_of(info: &FlightInfo) -> Schema {
    info.clone().try_decode_schema().expect("schema")
}

/// The statement's job id, from its status row.
async fn submit(client: &mut Flight, sql: &str) -> String {
    let info = client.execute(sql.into(), None).await.expect("execute");
    let rows = read(client, &info).await.expect("status row");
    assert_eq!(rows.len(), 1);
    text(&rows[0], "job_id")
}

async fn events(auditor: &Client, user: &str) -> Vec<pb::AuditEvent> {
    auditor.audit(100_000, user, "").await.expect("audit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_become_jobs_and_releases_are_read_by_job_id() {
    let p = platform(|_| {}).await;
    let mut ana = flight(&p, "analyst", Some(S)).await;
    let analyst = p.client("analyst").await.expect("analyst");
    let reviewer = p.client("reviewer").await.expect("reviewer");
    let auditor = p.client("auditor").await.expect("auditor");

    // A production statement is a job: the answer is one status row, never rows of data.
    let info = ana
        .execute(BY_DISTRICT.into(), None)
        .await
        .expect("execute");
    assert_eq!(info.total_records, 1);
    let meta: serde_json::Value = serde_json::from_slice(&info.app_metadata).expect("json");
    let rows = read(&mut ana, &info).await.expect("status row");
    assert_eq!(
        rows[0].schema().as_ref(),
        &schema_of(&info),
        "announced = sent"
    );
    let job = text(&rows[0], "job_id");
    assert_eq!(meta["job"], job.as_str());
    assert_eq!(text(&rows[0], "state"), "awaiting_review");
    assert_eq!(text(&rows[0], "scenario"), S);
    assert!(text(&rows[0], "message").contains(&format!("FETCH RELEASE '{job}'")));
    let record = analyst.job(&job).await.expect("the job exists");
    assert_eq!(record.sql, BY_DISTRICT);
    // A ticket is read once.
    refused(
        read(&mut ana, &info).await,
        Code::NotFound,
        "no such ticket",
    );

    // Not before a reviewer approves it.
    let early = format!("FETCH RELEASE '{job}'");
    refused(
        ana.execute(early.clone(), None).await,
        Code::FailedPrecondition,
        "only results a reviewer approved",
    );
    reviewer.finished(&job, LIMIT).await.expect("finished");
    reviewer
        .decide(&job, true, "district counts")
        .await
        .expect("approve");

    // Days later, by job id: the released rows, the hash the signed receipt covers.
    let info = ana
        .execute(format!("fetch release '{job}';"), None)
        .await
        .expect("fetch release");
    let meta: serde_json::Value = serde_json::from_slice(&info.app_metadata).expect("json");
    let batches = read(&mut ana, &info).await.expect("released rows");
    let schema = batches[0].schema();
    let (file, receipt) = analyst.fetch_file(&job, "arrow").await.expect("fetch");
    let key = analyst.platform_key().await.expect("key");
    let receipt = erhai_client::receipt::verify(&receipt, &file, &key).expect("receipt");
    let sha = schema.metadata().get("erhai.result_sha256").expect("hash");
    assert_eq!(sha, &receipt.result_sha256);
    assert_eq!(meta["result_sha256"], receipt.result_sha256.as_str());
    assert_eq!(
        schema.metadata().get("erhai.release"),
        Some(&receipt.release)
    );
    let plain: SchemaRef = Arc::new(Schema::new(schema.fields().clone()));
    let plain_batches: Vec<RecordBatch> = batches
        .iter()
        .map(|b| RecordBatch::try_new(plain.clone(), b.columns().to_vec()).expect("batch"))
        .collect();
    let canonical = erhai_engine::export::canonical(&plain, &plain_batches).expect("canonical");
    assert_eq!(
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &canonical)),
        receipt.result_sha256,
        "the rows read through Flight SQL are the rows the receipt covers"
    );
    assert_eq!(
        plain_batches
            .iter()
            .map(|b| b.num_rows() as u64)
            .sum::<u64>(),
        receipt.rows
    );
    // The read is a download, as release fetch's is.
    let lineage = auditor.lineage("", &job).await.expect("lineage");
    assert_eq!(
        lineage
            .downloads
            .iter()
            .filter(|d| d.user == "analyst")
            .count(),
        2,
        "one Flight SQL read and one release fetch"
    );

    // Python's cursor.execute prepares first: FETCH RELEASE prepares to the release's schema.
    let mut stmt = ana.prepare(early.clone(), None).await.expect("prepare");
    assert_eq!(
        stmt.dataset_schema().expect("schema").fields(),
        schema.fields()
    );
    let info = stmt.execute().await.expect("execute prepared");
    assert_eq!(read(&mut ana, &info).await.expect("rows"), batches);
    stmt.close().await.expect("close");

    // Another tenant's analyst: the job does not exist for them; nor does its ticket.
    let mut other = flight(&p, "other-analyst", Some(S)).await;
    refused(
        other.execute(early.clone(), None).await,
        Code::NotFound,
        "no job",
    );
    let info = ana
        .execute(early.clone(), None)
        .await
        .expect("fetch release");
    refused(
        other.do_get(ticket_of(&info)).await.map(drop),
        Code::NotFound,
        "no such ticket",
    );
    // A colleague of the same tenant replaying the ticket: refused, and the owner's ticket
    // still works.
    let mut colleague = flight(&p, "analyst2", Some(S)).await;
    refused(
        colleague.do_get(ticket_of(&info)).await.map(drop),
        Code::NotFound,
        "no such ticket",
    );
    assert_eq!(read(&mut ana, &info).await.expect("own ticket"), batches);

    // Forged tickets: a made-up handle, bytes that are no command, and a statement.
    let forged = TicketStatementQuery {
        statement_handle: hex::encode([7u8; 32]).into_bytes().into(),
    };
    refused(
        ana.do_get(Ticket::new(forged.as_any().encode_to_vec()))
            .await
            .map(drop),
        Code::NotFound,
        "no such ticket",
    );
    refused(
        ana.do_get(Ticket::new(b"SELECT * FROM hotel_stays".to_vec()))
            .await
            .map(drop),
        Code::NotFound,
        "no such ticket",
    );
    let statement = CommandStatementQuery {
        query: "SELECT * FROM hotel_stays".into(),
        transaction_id: None,
    };
    refused(
        ana.do_get(Ticket::new(statement.as_any().encode_to_vec()))
            .await
            .map(drop),
        Code::PermissionDenied,
        "a ticket is never a statement",
    );

    // Refusals read as the CLI prints them: column, use and rule.
    let sql = "SELECT id_number, district FROM hotel_stays";
    let (c, m) = code(ana.execute(sql.into(), None).await);
    let (cli_code, cli_message) = crate::common::code(analyst.submit(S, sql).await);
    assert_eq!((c, m.as_str()), (cli_code, cli_message.as_str()));
    assert!(m.contains("hotel_stays.id_number"), "{m}");
    let unreleased = submit(&mut ana, BY_DISTRICT).await;
    refused(
        ana.execute(format!("FETCH RELEASE '{unreleased}'"), None)
            .await,
        Code::FailedPrecondition,
        "only results a reviewer approved",
    );
    refused(
        ana.execute(format!("FETCH RELEASE {unreleased}"), None)
            .await,
        Code::InvalidArgument,
        "FETCH RELEASE 'job-…'",
    );

    // Every query names its scenario in a call header.
    let mut bare = flight(&p, "analyst", None).await;
    refused(
        bare.execute(BY_DISTRICT.into(), None).await,
        Code::InvalidArgument,
        "adbc.flight.sql.rpc.call_header.x-erhai-scenario",
    );

    // The permission matrix: providers and reviewers run no statements, read no release.
    for user in ["provider", "reviewer"] {
        let mut c = flight(&p, user, Some(S)).await;
        refused(
            c.execute(BY_DISTRICT.into(), None).await,
            Code::PermissionDenied,
            &format!("role {user} may not submit query"),
        );
        refused(
            c.execute(early.clone(), None).await,
            Code::PermissionDenied,
            "reserved for: analyst",
        );
        refused(
            c.prepare(BY_DISTRICT.into(), None).await.map(drop),
            Code::PermissionDenied,
            "may not check query",
        );
    }

    // Nothing but reads: updates, ingestion, transactions, Substrait, handshakes.
    refused(
        ana.execute_update("DELETE FROM hotel_stays".into(), None)
            .await,
        Code::Unimplemented,
        "read-only",
    );
    refused(
        ana.begin_transaction().await,
        Code::Unimplemented,
        "no transactions",
    );
    // (The client wraps a refused handshake in an error of its own.)
    let e = ana
        .handshake("analyst", "password")
        .await
        .expect_err("handshake");
    assert!(
        e.to_string().contains("not implemented") && e.to_string().contains("client certificate"),
        "{e}"
    );
    let substrait = CommandStatementSubstraitPlan {
        plan: Some(SubstraitPlan {
            plan: vec![1, 2, 3].into(),
            version: String::new(),
        }),
        transaction_id: None,
    };
    let r = ana
        .inner_mut()
        .get_flight_info(FlightDescriptor::new_cmd(
            substrait.as_any().encode_to_vec(),
        ))
        .await;
    assert_eq!(r.expect_err("substrait").code(), Code::Unimplemented);

    // Each call, refused or not, left one audit event with the request's digest.
    let analyst_events = events(&auditor, "analyst").await;
    let find = |action: &str, object: &str, outcome: &str| {
        analyst_events
            .iter()
            .filter(|e| e.action == action && e.object == object && e.outcome == outcome)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        find("register_dataset", "flight_sql/DoPut", "failed").len(),
        1
    );
    assert_eq!(find("who_am_i", "flight_sql/Handshake", "failed").len(), 1);
    assert_eq!(
        find("submit_query", "flight_sql/BeginTransaction", "failed").len(),
        1
    );
    assert_eq!(
        find(
            "submit_query",
            "flight_sql/CommandStatementSubstraitPlan",
            "failed"
        )
        .len(),
        1
    );
    // The made-up handle and the status ticket read a second time.
    let forged_reads = find("get_job", "", "failed");
    assert_eq!(forged_reads.len(), 2, "{forged_reads:?}");
    assert_eq!(
        find("get_job", "flight_sql", "failed").len(),
        1,
        "the bytes"
    );
    assert!(forged_reads.iter().all(|e| !e.digest.is_empty()));
    assert_eq!(
        find("get_job", "flight_sql/CommandStatementQuery", "denied").len(),
        1
    );
    let colleague_events = events(&auditor, "analyst2").await;
    assert!(
        colleague_events
            .iter()
            .any(|e| e.action == "fetch_release" && e.object == job && e.outcome == "failed"),
        "the replay is audited, not counted as a download"
    );
    let other_events = events(&auditor, "other-analyst").await;
    assert!(
        other_events
            .iter()
            .any(|e| e.action == "fetch_release" && e.object == job && e.outcome == "failed")
    );
    let provider_events = events(&auditor, "provider").await;
    assert!(
        provider_events
            .iter()
            .any(|e| e.action == "submit_query" && e.outcome == "denied" && !e.digest.is_empty())
    );
    assert!(auditor.audit_verify().await.expect("verify").ok);
    p.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_rows_catalog_and_dry_runs() {
    use arrow::array::{AsArray, BinaryArray};
    let p = platform(|_| {}).await;
    let analyst = p.client("analyst").await.expect("analyst");
    let mut ana = flight(&p, "analyst", Some(S)).await;

    // Development: rows of the desensitized samples at once.
    let mut dev = flight(&p, "analyst", Some(S)).await;
    dev.set_header("x-erhai-env", "dev");
    let info = dev
        .execute(
            "SELECT district, id_number, nights FROM hotel_stays".into(),
            None,
        )
        .await
        .expect("dev");
    let rows = read(&mut dev, &info).await.expect("dev rows");
    let n: usize = rows.iter().map(|b| b.num_rows()).sum();
    assert!(n > 0);
    assert_eq!(info.total_records, n as i64);
    assert_eq!(rows[0].schema().as_ref(), &schema_of(&info));
    let ids = rows[0].column(1).as_string::<i32>();
    assert!(ids.iter().flatten().all(|t| t.len() == 32), "pseudonyms");
    // Not in production: a production result must aggregate.
    refused(
        ana.execute("SELECT district FROM hotel_stays".into(), None)
            .await,
        Code::PermissionDenied,
        "production results must be aggregated",
    );

    // The catalog: the scenario's approved tables and columns, kinds and uses in the metadata.
    let info = ana.get_catalogs().await.expect("catalogs");
    let cats = read(&mut ana, &info).await.expect("catalogs");
    assert_eq!(text(&cats[0], "catalog_name"), "erhai");
    let info = ana
        .get_db_schemas(CommandGetDbSchemas {
            catalog: None,
            db_schema_filter_pattern: None,
        })
        .await
        .expect("schemas");
    let schemas = read(&mut ana, &info).await.expect("schemas");
    assert_eq!(schemas[0].num_rows(), 1);
    assert_eq!(text(&schemas[0], "db_schema_name"), S);
    let all_tables = CommandGetTables {
        catalog: None,
        db_schema_filter_pattern: None,
        table_name_filter_pattern: None,
        table_types: vec![],
        include_schema: true,
    };
    let info = ana.get_tables(all_tables.clone()).await.expect("tables");
    let tables = read(&mut ana, &info).await.expect("tables");
    let t = &tables[0];
    assert_eq!(t.schema().as_ref(), &schema_of(&info), "announced = sent");
    let names: Vec<&str> = t
        .column_by_name("table_name")
        .expect("names")
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(names, ["enterprises", "hotel_stays", "scenic_entries"]);
    let schemas = t
        .column_by_name("table_schema")
        .expect("schemas")
        .as_any()
        .downcast_ref::<BinaryArray>()
        .expect("binary");
    let hotel = arrow::ipc::convert::try_schema_from_ipc_buffer(schemas.value(1)).expect("ipc");
    let columns: Vec<&str> = hotel.fields().iter().map(|f| f.name().as_str()).collect();
    let mut sorted = columns.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "checkin_date",
            "district",
            "hotel_name",
            "id_number",
            "nights",
            "spend_yuan"
        ],
        "approved columns only: the authority struck phone"
    );
    let id = hotel.field_with_name("id_number").expect("id");
    assert_eq!(
        id.metadata().get("erhai.kind").map(String::as_str),
        Some("id_card")
    );
    assert_eq!(
        id.metadata().get("erhai.privacy_unit").map(String::as_str),
        Some("true")
    );
    let district = hotel.field_with_name("district").expect("district");
    assert!(
        district.metadata()["erhai.uses"].contains("group_by"),
        "{:?}",
        district.metadata()
    );
    let info = ana.get_table_types().await.expect("types");
    let types = read(&mut ana, &info).await.expect("types");
    assert_eq!(text(&types[0], "table_type"), "TABLE");
    let info = ana
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
        ])
        .await
        .expect("sql info");
    assert_eq!(read(&mut ana, &info).await.expect("info")[0].num_rows(), 2);
    // Nothing of another tenant's scenario, and the catalog needs a scenario.
    let mut other = flight(&p, "other-analyst", Some(S)).await;
    refused(
        other.get_tables(all_tables.clone()).await,
        Code::NotFound,
        "no scenario",
    );
    // A catalog ticket is only a filter: DoGet decides again who sees what.
    let tables_ticket = ana.get_tables(all_tables.clone()).await.expect("tables");
    refused(
        other.do_get(ticket_of(&tables_ticket)).await.map(drop),
        Code::NotFound,
        "no scenario",
    );
    let mut bare = flight(&p, "analyst", None).await;
    refused(
        bare.get_tables(all_tables).await,
        Code::InvalidArgument,
        "x-erhai-scenario",
    );

    // A prepared statement is a dry run: the result schema, no job.
    let before = analyst.jobs().await.expect("jobs").len();
    let stmt = ana
        .prepare(BY_DISTRICT.into(), None)
        .await
        .expect("prepare");
    let fields: Vec<String> = stmt
        .dataset_schema()
        .expect("schema")
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(fields, ["district", "stays"]);
    assert_eq!(
        analyst.jobs().await.expect("jobs").len(),
        before,
        "nothing ran"
    );
    refused(
        ana.prepare("SELECT id_number, district FROM hotel_stays".into(), None)
            .await
            .map(drop),
        Code::PermissionDenied,
        "hotel_stays.id_number",
    );
    // Executing it submits the job, checked again.
    let mut stmt = stmt;
    let info = stmt.execute().await.expect("execute");
    let rows = read(&mut ana, &info).await.expect("status");
    let job = text(&rows[0], "job_id");
    assert_eq!(analyst.job(&job).await.expect("job").sql, BY_DISTRICT);
    stmt.close().await.expect("close");

    // A prepared statement's handle is the preparer's: a colleague holding it gets nothing,
    // and it is never a ticket.
    let action = arrow_flight::Action {
        r#type: "CreatePreparedStatement".into(),
        body: ActionCreatePreparedStatementRequest {
            query: BY_DISTRICT.into(),
            transaction_id: None,
        }
        .as_any()
        .encode_to_vec()
        .into(),
    };
    let results: Vec<arrow_flight::Result> = ana
        .do_action(action)
        .await
        .expect("prepare")
        .try_collect()
        .await
        .expect("result");
    let prepared: ActionCreatePreparedStatementResult =
        arrow_flight::sql::Any::decode(&*results[0].body)
            .expect("any")
            .unpack()
            .expect("unpack")
            .expect("result");
    let command = CommandPreparedStatementQuery {
        prepared_statement_handle: prepared.prepared_statement_handle,
    };
    let mut colleague = flight(&p, "analyst2", Some(S)).await;
    let r = colleague
        .inner_mut()
        .get_flight_info(FlightDescriptor::new_cmd(command.as_any().encode_to_vec()))
        .await;
    let status = r.expect_err("another user's prepared statement");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    refused(
        ana.do_get(Ticket::new(command.as_any().encode_to_vec()))
            .await
            .map(drop),
        Code::PermissionDenied,
        "a ticket is never a statement",
    );
    p.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tickets_and_prepared_statements_are_not_found() {
    let p = platform(|c| c.limits.flight_ticket_secs = 0).await;
    let mut dev = flight(&p, "analyst", Some(S)).await;
    dev.set_header("x-erhai-env", "dev");
    let info = dev
        .execute("SELECT district FROM hotel_stays".into(), None)
        .await
        .expect("dev");
    refused(read(&mut dev, &info).await, Code::NotFound, "expired");
    let mut stmt = dev
        .prepare("SELECT district FROM hotel_stays".into(), None)
        .await
        .expect("prepare");
    refused(stmt.execute().await, Code::NotFound, "expired");
    stmt.close()
        .await
        .expect("closing an expired statement is fine");
    let auditor = p.client("auditor").await.expect("auditor");
    let expired = events(&auditor, "analyst")
        .await
        .into_iter()
        .filter(|e| e.outcome == "failed" && e.reason.contains("expired"))
        .count();
    assert_eq!(expired, 2, "both refusals are audited");
    p.stop().await.expect("stop");
}
