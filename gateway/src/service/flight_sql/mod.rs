//! Arrow Flight SQL (`arrow.flight.protocol.sql`) beside `erhai.v1`, on the same port and TLS
//! acceptor, for ADBC, JDBC and DBeaver-style clients.
//!
//! It is a second front door to the same rooms, not a new room: every call resolves the caller
//! from the client certificate, asks the same permission matrix and tenant gate
//! (`Gateway::authorize`) and leaves one audit event with the request digest
//! (`Gateway::finish`); statements go through the QueryService's own submission, dry run and
//! development paths, and a released result is read with the same checks as `release fetch`.
//!
//! | Flight SQL call | audited action |
//! | --- | --- |
//! | GetFlightInfo(statement or prepared statement), production | `submit_query` (a job; the answer is one status row) |
//! | the same with `x-erhai-env: dev` | `run_dev_query` (rows of the samples) |
//! | the same with `FETCH RELEASE 'job-…'` | authorized as `fetch_release`, audited as `get_job` (it describes the result) |
//! | DoGet(ticket) | `get_job` (status row), `run_dev_query` (development rows), `fetch_release` (a release: a download) |
//! | CreatePreparedStatement, ClosePreparedStatement | `check_query` (a dry run: the schema or the refusal) |
//! | catalogs, schemas, tables, table types, SQL info | `list_datasets` |
//! | anything else | refused in `front.rs`, audited under the closest action |
//!
//! The scenario comes from the call header `x-erhai-scenario`, the environment from
//! `x-erhai-env` (`prod` unless `dev`). Tickets are server-side handles (`tickets.rs`).

mod catalog;
mod front;
mod statement;
mod tickets;

pub use front::FlightSqlFront;
pub use tickets::Tickets;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow::record_batch::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action as FlightAction, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, IpcMessage,
    SchemaAsIpc, Ticket,
};
use bytes::Bytes;
use erhai_engine::{EngineError, Env, StoredTable};
use erhai_proto::v1 as pb;
use futures::Stream;
use prost::Message;
use tonic::{Request, Response, Status};

use super::query::guarded;
use super::{Caller, Gateway, convert, engine_status};
use crate::authz::Action;
use crate::job_rules::JobRules;
use catalog::{CATALOG, SQL_INFO, TABLE_TYPE, table_schema};
use statement::{Statement, status_row, status_schema};
use tickets::{Full, Held, Lookup, PreparedStatement, Readable};

/// The call header naming the scenario.
pub const SCENARIO_HEADER: &str = "x-erhai-scenario";
/// The call header naming the environment (`dev` or `prod`).
pub const ENV_HEADER: &str = "x-erhai-env";
/// Schema metadata keys of a released result read through Flight SQL.
pub const RELEASE_ID: &str = "erhai.release";
/// The job whose release it is.
pub const RELEASE_JOB: &str = "erhai.job";
/// The SHA-256 the signed receipt covers (the Arrow IPC stream of the rows as stored, schema
/// without these keys).
pub const RELEASE_SHA256: &str = "erhai.result_sha256";

type DoGetStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// The Flight SQL handlers over the gateway. Reached only through [`FlightSqlFront`], which
/// refuses (and audits) every call these do not answer.
#[derive(Clone)]
pub struct FlightSqlGateway(Gateway);

/// The call headers a statement or catalog call reads.
struct CallHeaders {
    scenario: Option<String>,
    env: Env,
}

fn headers<T>(req: &Request<T>) -> Result<CallHeaders, Status> {
    let text = |name: &str| -> Result<Option<String>, Status> {
        match req.metadata().get(name) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(|s| Some(s.trim().to_string()).filter(|s| !s.is_empty()))
                .map_err(|_| Status::invalid_argument(format!("header {name} must be ASCII"))),
        }
    };
    let env = match text(ENV_HEADER)?.map(|e| e.to_ascii_lowercase()).as_deref() {
        None | Some("prod") => Env::Prod,
        Some("dev") => Env::Dev,
        Some(_) => {
            return Err(Status::invalid_argument(format!(
                "header {ENV_HEADER} is dev or prod (prod when absent)"
            )));
        }
    };
    Ok(CallHeaders {
        scenario: text(SCENARIO_HEADER)?,
        env,
    })
}

/// The scenario a data call names, or how to name it.
fn required_scenario(scenario: Option<String>) -> Result<String, Status> {
    scenario.ok_or_else(|| {
        Status::invalid_argument(format!(
            "every query and catalog call names its scenario in the call header \
             {SCENARIO_HEADER}; with ADBC set \
             adbc.flight.sql.rpc.call_header.{SCENARIO_HEADER} (`erhai scenario list` shows yours)"
        ))
    })
}

/// The schema the encoder sends for `schema` (dictionaries hydrated): what a FlightInfo must
/// announce, since clients compare it with the stream.
fn flight_schema(schema: &SchemaRef) -> SchemaRef {
    FlightDataEncoderBuilder::new()
        .with_schema(schema.clone())
        .build(futures::stream::empty())
        .known_schema()
        .unwrap_or_else(|| schema.clone())
}

fn stream(schema: SchemaRef, batches: Vec<RecordBatch>) -> DoGetStream {
    use futures::TryStreamExt;
    let s = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::iter(batches.into_iter().map(Ok)))
        .map_err(Status::from);
    Box::pin(s)
}

fn info(
    schema: &SchemaRef,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
    total_records: Option<i64>,
) -> Result<FlightInfo, Status> {
    let mut info = FlightInfo::new()
        .try_with_schema(&flight_schema(schema))
        .map_err(|e| Status::internal(format!("the result schema could not be encoded: {e}")))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor);
    if let Some(n) = total_records {
        info = info.with_total_records(n);
    }
    Ok(info)
}

fn statement_ticket(handle: &str) -> Vec<u8> {
    TicketStatementQuery {
        statement_handle: Bytes::copy_from_slice(handle.as_bytes()),
    }
    .as_any()
    .encode_to_vec()
}

fn full(e: Full) -> Status {
    Status::resource_exhausted(e.to_string())
}

/// A released result's schema, naming the release and the hash its receipt covers.
fn release_schema(
    schema: &SchemaRef,
    release: &crate::state::ReleaseRecord,
    job: &str,
) -> SchemaRef {
    let mut meta = schema.metadata().clone();
    meta.insert(RELEASE_ID.into(), release.id.clone());
    meta.insert(RELEASE_JOB.into(), job.into());
    meta.insert(RELEASE_SHA256.into(), release.result_sha256.clone());
    Arc::new(Schema::new_with_metadata(schema.fields().clone(), meta))
}

impl FlightSqlGateway {
    /// The handlers over `gateway`.
    pub fn new(gateway: Gateway) -> FlightSqlGateway {
        FlightSqlGateway(gateway)
    }

    fn tickets(&self) -> &Tickets {
        &self.0.0.flight_tickets
    }

    /// A call refused before any work: authorized (a denial is audited there), then the refusal
    /// audited as the call's outcome.
    fn refuse<T: Message, R>(
        &self,
        req: &Request<T>,
        action: Action,
        object: &str,
        why: Status,
    ) -> Result<R, Status> {
        let caller = self.0.authorize(req, action, object)?;
        self.0.finish(&caller, action, object, Err(why))
    }

    /// Runs a statement (from GetFlightInfo, or a prepared statement's execution when `prepared`
    /// is its handle, which must be the caller's).
    async fn run_statement(
        &self,
        req: &Request<FlightDescriptor>,
        statement: Statement,
        scenario: Option<String>,
        env: Env,
        prepared: Option<&[u8]>,
    ) -> Result<Response<FlightInfo>, Status> {
        let g = &self.0;
        let descriptor = req.get_ref().clone();
        let owned = |caller: &Caller| -> Result<(), Status> {
            match prepared.map(|h| self.tickets().prepared(h, &caller.id, Instant::now())) {
                None | Some(Ok(_)) => Ok(()),
                Some(Err(e)) => Err(self.lookup_status(e, "prepared statement")),
            }
        };
        let info = match statement {
            Statement::FetchRelease(job) => {
                let caller = g.authorize(req, Action::FetchRelease, &job)?;
                let r = owned(&caller).and_then(|()| {
                    let (job, release, schema, _) = g.downloadable_release(&caller, &job)?;
                    let schema = release_schema(&schema, &release, &job.id);
                    let held = Held::Ticket(Readable::Release {
                        job: job.id.clone(),
                    });
                    let handle = self
                        .tickets()
                        .issue(&caller.id, held, Instant::now())
                        .map_err(full)?;
                    let meta = serde_json::json!({
                        "job": job.id,
                        "release": release.id,
                        "result_sha256": release.result_sha256,
                        "rows": release.rows,
                    });
                    Ok(info(
                        &schema,
                        statement_ticket(&handle),
                        descriptor,
                        i64::try_from(release.rows).ok(),
                    )?
                    .with_app_metadata(meta.to_string()))
                });
                // Describing a released result is not yet a download: the DoGet is.
                g.finish(&caller, Action::GetJob, &job, r)?
            }
            Statement::Sql(sql) if env == Env::Dev => {
                let caller = g.authorize(req, Action::RunDevQuery, "")?;
                g.received(&caller, Action::RunDevQuery);
                let mut object = String::new();
                let r = async {
                    owned(&caller)?;
                    let request = pb::SubmitQueryRequest {
                        sql,
                        wait: false,
                        scenario: required_scenario(scenario)?,
                        epsilon: 0.0,
                    };
                    let (job, schema, batches) =
                        g.run_dev_rows(&caller, request, &mut object).await?;
                    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                    let held = Held::Ticket(Readable::Rows {
                        job: job.id.clone(),
                        schema: schema.clone(),
                        batches,
                    });
                    let handle = self
                        .tickets()
                        .issue(&caller.id, held, Instant::now())
                        .map_err(full)?;
                    info(
                        &schema,
                        statement_ticket(&handle),
                        descriptor,
                        i64::try_from(rows).ok(),
                    )
                }
                .await;
                g.finish(&caller, Action::RunDevQuery, &object, r)?
            }
            Statement::Sql(sql) => {
                let caller = g.authorize(req, Action::SubmitQuery, "")?;
                g.received(&caller, Action::SubmitQuery);
                let mut object = String::new();
                let r = async {
                    owned(&caller)?;
                    let scenario = required_scenario(scenario)?;
                    let request = pb::SubmitQueryRequest {
                        sql,
                        wait: false,
                        scenario: scenario.clone(),
                        epsilon: 0.0,
                    };
                    let job = g.submit_inner(&caller, request, &mut object, None).await?;
                    let state = convert::job(&job, caller.role).state;
                    let held = Held::Ticket(Readable::Status {
                        job: job.id.clone(),
                    });
                    let handle = self
                        .tickets()
                        .issue(&caller.id, held, Instant::now())
                        .map_err(full)?;
                    let meta = serde_json::json!({
                        "job": job.id,
                        "state": state,
                        "scenario": scenario,
                    });
                    Ok(info(
                        &status_schema(),
                        statement_ticket(&handle),
                        descriptor,
                        Some(1),
                    )?
                    .with_app_metadata(meta.to_string()))
                }
                .await;
                g.finish(&caller, Action::SubmitQuery, &object, r)?
            }
        };
        Ok(Response::new(info))
    }

    fn lookup_status(&self, e: Lookup, what: &str) -> Status {
        let again = if what == "ticket" {
            "execute the statement again"
        } else {
            "prepare it again (in Python: a new cursor)"
        };
        match e {
            Lookup::Unknown => Status::not_found(format!(
                "no such {what}: it was never issued to you, was already read or closed; {again}"
            )),
            Lookup::Expired => Status::not_found(format!(
                "this {what} expired ({} s after it was last used); {again}",
                self.tickets().ttl().as_secs()
            )),
        }
    }

    /// The result schema of `sql` in `scenario` and `env`, from the plan check alone; a refusal
    /// is an error naming column, use and rule, as `query check` prints it.
    async fn dry_run(
        &self,
        caller: &Caller,
        sql: &str,
        scenario: &str,
        env: Env,
    ) -> Result<SchemaRef, Status> {
        let g = &self.0;
        let s = g.query_scenario(caller, scenario)?;
        let tables = g.tables_of_scenario(&s, env)?;
        let refused = |verdict| engine_status(&EngineError::Refused(Box::new(verdict)));
        match env {
            Env::Dev => {
                let (verdict, schema) =
                    guarded(g.0.engine.check_dev_query(sql.trim(), &tables, &s.scope()))
                        .await
                        .map_err(|e| engine_status(&g.outside_scenario(&s, e)))?;
                if !verdict.allowed() {
                    return Err(refused(verdict));
                }
                Ok(schema)
            }
            Env::Prod => {
                let rules = JobRules::of(g.0.engine.rules(), &g.0.cfg.release, &s, 0.0);
                let prepared = guarded(g.0.engine.prepare(
                    sql.trim(),
                    &tables,
                    &s.scope(),
                    rules.disclosure(),
                ))
                .await
                .map_err(|e| engine_status(&g.outside_scenario(&s, e)))?;
                match prepared.result_schema() {
                    Some(schema) => Ok(schema),
                    None => Err(refused(prepared.verdict().clone())),
                }
            }
        }
    }

    /// The scenario a catalog call names, and its tables as `caller` may see them in `env`.
    fn scenario_tables(
        &self,
        caller: &Caller,
        h: CallHeaders,
    ) -> Result<(String, Vec<StoredTable>), Status> {
        let g = &self.0;
        let name = required_scenario(h.scenario)?;
        let s = g.visible_scenario(caller, &name)?;
        let visible: Vec<String> = g
            .visible_datasets(caller)?
            .into_iter()
            .map(|d| d.id)
            .collect();
        let tables = g
            .tables_of_scenario(&s, h.env)?
            .into_iter()
            .filter(|t| visible.contains(&t.dataset_id))
            .collect();
        Ok((s.name, tables))
    }

    /// A catalog GetFlightInfo: authorized as `list_datasets`, the command itself as ticket
    /// (it carries only filters; DoGet decides again what the caller sees).
    fn catalog_info<C: ProstMessageExt>(
        &self,
        req: &Request<FlightDescriptor>,
        command: &C,
        schema: SchemaRef,
        needs_scenario: bool,
    ) -> Result<Response<FlightInfo>, Status> {
        let g = &self.0;
        let caller = g.authorize(req, Action::ListDatasets, "")?;
        let r = headers(req).and_then(|h| {
            if needs_scenario {
                self.scenario_tables(&caller, h)?;
            }
            info(
                &schema,
                command.as_any().encode_to_vec(),
                req.get_ref().clone(),
                None,
            )
        });
        g.finish(&caller, Action::ListDatasets, "", r)
            .map(Response::new)
    }

    /// A catalog DoGet: `build` answers for the caller, audited as `list_datasets`.
    fn catalog_rows(
        &self,
        req: &Request<Ticket>,
        build: impl FnOnce(&Caller) -> Result<(SchemaRef, RecordBatch), Status>,
    ) -> Result<Response<DoGetStream>, Status> {
        let g = &self.0;
        let caller = g.authorize(req, Action::ListDatasets, "")?;
        let r = build(&caller);
        let (schema, batch) = g.finish(&caller, Action::ListDatasets, "", r)?;
        Ok(Response::new(stream(schema, vec![batch])))
    }
}

fn flight_status(e: FlightError) -> Status {
    Status::internal(format!("the catalog answer could not be built: {e}"))
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlGateway {
    type FlightService = FlightSqlGateway;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let parsed = headers(&request).and_then(|h| Ok((Statement::parse(&query.query)?, h)));
        match parsed {
            Err(why) => self.refuse(&request, Action::SubmitQuery, "", why),
            Ok((statement, h)) => {
                self.run_statement(&request, statement, h.scenario, h.env, None)
                    .await
            }
        }
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let handle = cmd.prepared_statement_handle;
        // The statement's own action authorizes it; whose handle it is is checked after.
        match self.tickets().describe(&handle) {
            Some(Held::Prepared(p)) => {
                let scenario = Some(p.scenario).filter(|s| !s.is_empty());
                self.run_statement(&request, p.statement, scenario, p.env, Some(&handle))
                    .await
            }
            _ => {
                let why = self.lookup_status(Lookup::Unknown, "prepared statement");
                self.refuse(&request, Action::SubmitQuery, "", why)
            }
        }
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.catalog_info(&request, &query, schema, false)
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.catalog_info(&request, &query, schema, true)
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.catalog_info(&request, &query, schema, true)
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.catalog_info(&request, &query, schema, false)
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&SQL_INFO).schema();
        self.catalog_info(&request, &query, schema, false)
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let g = &self.0;
        let handle = ticket.statement_handle;
        // Named in the audit log by what the handle stands for; the caller learns nothing from
        // it (another user's handle is refused like one that never existed).
        let (action, object) = match self.tickets().describe(&handle) {
            Some(Held::Ticket(Readable::Release { job })) => (Action::FetchRelease, job),
            Some(Held::Ticket(Readable::Rows { job, .. })) => (Action::RunDevQuery, job),
            Some(Held::Ticket(Readable::Status { job })) => (Action::GetJob, job),
            _ => (Action::GetJob, String::new()),
        };
        let caller = g.authorize(&request, action, &object)?;
        let r = match self.tickets().take(&handle, &caller.id, Instant::now()) {
            Err(e) => Err(self.lookup_status(e, "ticket")),
            Ok(Readable::Status { job }) => g.visible_job(&caller, &job).and_then(|job| {
                let state = convert::job(&job, caller.role).state;
                let row = status_row(&job.id, &state, job.scenario.as_deref().unwrap_or(""))?;
                Ok((status_schema(), vec![row]))
            }),
            Ok(Readable::Rows {
                schema, batches, ..
            }) => Ok((schema, batches)),
            // Read again with every check `release fetch` makes: still the caller's tenant's,
            // still released, still the rows the reviewers approved.
            Ok(Readable::Release { job }) => {
                g.downloadable_release(&caller, &job)
                    .map(|(job, release, schema, batches)| {
                        (release_schema(&schema, &release, &job.id), batches)
                    })
            }
        };
        let (schema, batches) = g.finish(&caller, action, &object, r)?;
        Ok(Response::new(stream(schema, batches)))
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.catalog_rows(&request, |_| {
            let mut b = query.into_builder();
            b.append(CATALOG);
            let schema = b.schema();
            Ok((schema, b.build().map_err(flight_status)?))
        })
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let h = headers(&request);
        self.catalog_rows(&request, |caller| {
            let (scenario, _) = self.scenario_tables(caller, h?)?;
            let mut b = query.into_builder();
            b.append(CATALOG, scenario);
            let schema = b.schema();
            Ok((schema, b.build().map_err(flight_status)?))
        })
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let h = headers(&request);
        self.catalog_rows(&request, |caller| {
            let (scenario, tables) = self.scenario_tables(caller, h?)?;
            let mut b = query.into_builder();
            for t in &tables {
                b.append(CATALOG, &scenario, &t.name, TABLE_TYPE, &table_schema(t))
                    .map_err(flight_status)?;
            }
            let schema = b.schema();
            Ok((schema, b.build().map_err(flight_status)?))
        })
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.catalog_rows(&request, |_| {
            let mut b = query.into_builder();
            b.append(TABLE_TYPE);
            let schema = b.schema();
            Ok((schema, b.build().map_err(flight_status)?))
        })
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.catalog_rows(&request, |_| {
            let b = query.into_builder(&SQL_INFO);
            let schema = b.schema();
            Ok((schema, b.build().map_err(flight_status)?))
        })
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<FlightAction>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let g = &self.0;
        let caller = g.authorize(&request, Action::CheckQuery, "")?;
        g.received(&caller, Action::CheckQuery);
        let r = async {
            let h = headers(&request)?;
            let statement = Statement::parse(&query.query)?;
            let (schema, scenario) = match &statement {
                Statement::FetchRelease(job) => {
                    let (job, release, schema, _) = g.downloadable_release(&caller, job)?;
                    (release_schema(&schema, &release, &job.id), String::new())
                }
                Statement::Sql(sql) => {
                    let scenario = required_scenario(h.scenario)?;
                    (
                        self.dry_run(&caller, sql, &scenario, h.env).await?,
                        scenario,
                    )
                }
            };
            let held = Held::Prepared(PreparedStatement {
                statement,
                scenario,
                env: h.env,
            });
            let handle = self
                .tickets()
                .issue(&caller.id, held, Instant::now())
                .map_err(full)?;
            let IpcMessage(dataset_schema) =
                SchemaAsIpc::new(&flight_schema(&schema), &IpcWriteOptions::default())
                    .try_into()
                    .map_err(|e: arrow::error::ArrowError| {
                        Status::internal(format!("the result schema could not be encoded: {e}"))
                    })?;
            Ok(ActionCreatePreparedStatementResult {
                prepared_statement_handle: Bytes::from(handle.into_bytes()),
                dataset_schema,
                parameter_schema: Bytes::new(),
            })
        }
        .await;
        g.finish(&caller, Action::CheckQuery, "", r)
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<FlightAction>,
    ) -> Result<(), Status> {
        let g = &self.0;
        let caller = g.authorize(&request, Action::CheckQuery, "")?;
        // Lenient: clients close after every execution, also handles that expired meanwhile.
        self.tickets()
            .close(&query.prepared_statement_handle, &caller.id);
        g.finish(&caller, Action::CheckQuery, "", Ok(()))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
