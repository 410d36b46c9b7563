//! The Flight service as clients reach it: the calls erhai answers pass to the Flight SQL
//! handlers; everything else — updates, ingestion, bound parameters (DoPut), transactions,
//! savepoints, cancellation, Substrait plans, DoExchange, handshakes, custom actions, keys and
//! type-info commands, any DoGet that is not a ticket this server issued, and requests that do
//! not decode — is refused here, each refusal audited with the caller and the request digest.
//!
//! arrow-flight's own dispatch answers several of these with an unaudited `Unimplemented` (and
//! malformed ones with an unaudited error), so no request reaches it unchecked.

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::{Any, Command};
use arrow_flight::{
    Action as FlightAction, ActionType, Criteria, Empty, FlightDescriptor, FlightInfo,
    HandshakeRequest, PollInfo, SchemaResult, Ticket,
};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::FlightSqlGateway;
use crate::authz::Action;
use crate::service::Gateway;

/// The prepared-statement actions erhai answers.
const CREATE_PREPARED_STATEMENT: &str = "CreatePreparedStatement";
const CLOSE_PREPARED_STATEMENT: &str = "ClosePreparedStatement";

/// The Flight service (`arrow.flight.protocol.FlightService`) served beside `erhai.v1`.
#[derive(Clone)]
pub struct FlightSqlFront(FlightSqlGateway);

impl FlightSqlFront {
    /// The front over `gateway`.
    pub fn new(gateway: Gateway) -> FlightSqlFront {
        FlightSqlFront(FlightSqlGateway::new(gateway))
    }

    fn gateway(&self) -> &Gateway {
        &(self.0).0
    }

    /// A unary call refused: authorized (a denial is audited there), the refusal audited.
    fn refuse<T: Message, R>(
        &self,
        req: &Request<T>,
        action: Action,
        object: &str,
        why: Status,
    ) -> Result<R, Status> {
        let g = self.gateway();
        let caller = g.authorize(req, action, object)?;
        g.finish(&caller, action, object, Err(why))
    }

    /// A streaming call refused (its digest is not known up front).
    fn refuse_stream<T, R>(
        &self,
        req: &Request<T>,
        action: Action,
        object: &str,
        why: Status,
    ) -> Result<R, Status> {
        let g = self.gateway();
        let caller = g.authorize_stream(req, action, object)?;
        g.finish(&caller, action, object, Err(why))
    }
}

/// The command in a descriptor or ticket, or why it is not one.
fn command(bytes: &[u8]) -> Result<Command, Status> {
    let any = Any::decode(bytes).map_err(|_| {
        Status::invalid_argument("the request does not hold a Flight SQL command (protobuf Any)")
    })?;
    Command::try_from(any)
        .map_err(|_| Status::invalid_argument("the Flight SQL command in the request is malformed"))
}

/// The short name of a command, for the audit log.
fn object_of(cmd: &Command) -> String {
    let url = cmd.type_url();
    let name = url.rsplit('.').next().unwrap_or(url);
    format!("flight_sql/{}", name.chars().take(64).collect::<String>())
}

const READ_ONLY: &str = "erhai is read-only over Flight SQL: no updates, ingestion or bound \
                         parameters; datasets are registered with `erhai dataset register`";

/// How an unsupported GetFlightInfo command is refused, and under which action it is audited.
fn unsupported(cmd: &Command) -> (Action, Status) {
    match cmd {
        Command::CommandStatementUpdate(_)
        | Command::CommandPreparedStatementUpdate(_)
        | Command::CommandStatementIngest(_) => {
            (Action::RegisterDataset, Status::unimplemented(READ_ONLY))
        }
        Command::CommandStatementSubstraitPlan(_) => (
            Action::SubmitQuery,
            Status::unimplemented(
                "Substrait plans are not accepted (yet): send the query as SQL text",
            ),
        ),
        Command::CommandGetPrimaryKeys(_)
        | Command::CommandGetExportedKeys(_)
        | Command::CommandGetImportedKeys(_)
        | Command::CommandGetCrossReference(_)
        | Command::CommandGetXdbcTypeInfo(_) => (
            Action::ListDatasets,
            Status::unimplemented(
                "erhai's catalog has catalogs, schemas (one per scenario), tables and table \
                 types; keys and type information are not served",
            ),
        ),
        _ => (
            Action::SubmitQuery,
            Status::unimplemented(format!(
                "{} is not a Flight SQL command erhai serves",
                object_of(cmd)
            )),
        ),
    }
}

#[tonic::async_trait]
impl FlightService for FlightSqlFront {
    type HandshakeStream = <FlightSqlGateway as FlightService>::HandshakeStream;
    type ListFlightsStream = <FlightSqlGateway as FlightService>::ListFlightsStream;
    type DoGetStream = <FlightSqlGateway as FlightService>::DoGetStream;
    type DoPutStream = <FlightSqlGateway as FlightService>::DoPutStream;
    type DoExchangeStream = <FlightSqlGateway as FlightService>::DoExchangeStream;
    type DoActionStream = <FlightSqlGateway as FlightService>::DoActionStream;
    type ListActionsStream = <FlightSqlGateway as FlightService>::ListActionsStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        self.refuse_stream(
            &request,
            Action::WhoAmI,
            "flight_sql/Handshake",
            Status::unimplemented(
                "erhai knows you by the client certificate of mutual TLS: no handshake, \
                 password or token is needed",
            ),
        )
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        self.refuse(
            &request,
            Action::ListJobs,
            "flight_sql/ListFlights",
            Status::unimplemented(
                "results are not listed as flights: `erhai job list` lists your jobs, and \
                 FETCH RELEASE 'job-…' reads a released one",
            ),
        )
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        match command(&request.get_ref().cmd) {
            Err(why) => self.refuse(&request, Action::SubmitQuery, "flight_sql", why),
            Ok(
                Command::CommandStatementQuery(_)
                | Command::CommandPreparedStatementQuery(_)
                | Command::CommandGetCatalogs(_)
                | Command::CommandGetDbSchemas(_)
                | Command::CommandGetTables(_)
                | Command::CommandGetTableTypes(_)
                | Command::CommandGetSqlInfo(_),
            ) => self.0.get_flight_info(request).await,
            Ok(cmd) => {
                let (action, why) = unsupported(&cmd);
                self.refuse(&request, action, &object_of(&cmd), why)
            }
        }
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        self.refuse(
            &request,
            Action::SubmitQuery,
            "flight_sql/PollFlightInfo",
            Status::unimplemented(
                "statements are answered by GetFlightInfo at once (a production job's status \
                 row); poll the job with `erhai job show`",
            ),
        )
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        self.refuse(
            &request,
            Action::CheckQuery,
            "flight_sql/GetSchema",
            Status::unimplemented(
                "prepare the statement (CreatePreparedStatement) to learn its result schema",
            ),
        )
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let not_issued = || {
            Status::not_found(
                "no such ticket: DoGet reads only the tickets this server's GetFlightInfo \
                 issued to you",
            )
        };
        match command(&request.get_ref().ticket) {
            Err(_) => self.refuse(&request, Action::GetJob, "flight_sql", not_issued()),
            Ok(
                Command::TicketStatementQuery(_)
                | Command::CommandGetCatalogs(_)
                | Command::CommandGetDbSchemas(_)
                | Command::CommandGetTables(_)
                | Command::CommandGetTableTypes(_)
                | Command::CommandGetSqlInfo(_),
            ) => self.0.do_get(request).await,
            // A statement or prepared statement is never a ticket: it would run without the
            // checks GetFlightInfo makes.
            Ok(cmd) => {
                let object = object_of(&cmd);
                self.refuse(
                    &request,
                    Action::GetJob,
                    &object,
                    Status::permission_denied(
                        "a ticket is never a statement: execute it with GetFlightInfo and read \
                         the ticket that returns",
                    ),
                )
            }
        }
    }

    async fn do_put(
        &self,
        request: Request<Streaming<arrow_flight::FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        self.refuse_stream(
            &request,
            Action::RegisterDataset,
            "flight_sql/DoPut",
            Status::unimplemented(READ_ONLY),
        )
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<arrow_flight::FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        self.refuse_stream(
            &request,
            Action::SubmitQuery,
            "flight_sql/DoExchange",
            Status::unimplemented("DoExchange is not served: run SQL with GetFlightInfo"),
        )
    }

    async fn do_action(
        &self,
        request: Request<FlightAction>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let kind = request.get_ref().r#type.clone();
        let object = format!(
            "flight_sql/{}",
            kind.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(64)
                .collect::<String>()
        );
        let decodes = |kind: &str| -> bool {
            let Ok(any) = Any::decode(&*request.get_ref().body) else {
                return false;
            };
            match kind {
                CREATE_PREPARED_STATEMENT => matches!(
                    any.unpack::<arrow_flight::sql::ActionCreatePreparedStatementRequest>(),
                    Ok(Some(_))
                ),
                _ => matches!(
                    any.unpack::<arrow_flight::sql::ActionClosePreparedStatementRequest>(),
                    Ok(Some(_))
                ),
            }
        };
        match kind.as_str() {
            CREATE_PREPARED_STATEMENT | CLOSE_PREPARED_STATEMENT if decodes(&kind) => {
                self.0.do_action(request).await
            }
            CREATE_PREPARED_STATEMENT | CLOSE_PREPARED_STATEMENT => self.refuse(
                &request,
                Action::CheckQuery,
                &object,
                Status::invalid_argument(format!("the body of {kind} is malformed")),
            ),
            "BeginTransaction" | "EndTransaction" | "BeginSavepoint" | "EndSavepoint" => self
                .refuse(
                    &request,
                    Action::SubmitQuery,
                    &object,
                    Status::unimplemented(
                        "erhai has no transactions: every statement is a read on its own \
                         (connect with autocommit=True)",
                    ),
                ),
            "CreatePreparedSubstraitPlan" => self.refuse(
                &request,
                Action::SubmitQuery,
                &object,
                Status::unimplemented(
                    "Substrait plans are not accepted (yet): send the query as SQL text",
                ),
            ),
            "CancelQuery" | "CancelFlightInfo" => self.refuse(
                &request,
                Action::SubmitQuery,
                &object,
                Status::unimplemented(
                    "a submitted job cannot be cancelled: it runs to review under its limits",
                ),
            ),
            _ => self.refuse(
                &request,
                Action::WhoAmI,
                &object,
                Status::unimplemented(
                    "erhai answers the actions CreatePreparedStatement and \
                     ClosePreparedStatement only",
                ),
            ),
        }
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let g = self.gateway();
        let caller = g.authorize(&request, Action::WhoAmI, "flight_sql/ListActions")?;
        let actions = [
            (
                CREATE_PREPARED_STATEMENT,
                "Checks a statement without running it: its result schema, or the refusal",
            ),
            (CLOSE_PREPARED_STATEMENT, "Forgets a prepared statement"),
        ]
        .map(|(kind, description)| {
            Ok(ActionType {
                r#type: kind.into(),
                description: description.into(),
            })
        });
        let r = Ok(futures::stream::iter(actions));
        let s = g.finish(&caller, Action::WhoAmI, "flight_sql/ListActions", r)?;
        Ok(Response::new(Box::pin(s)))
    }
}
