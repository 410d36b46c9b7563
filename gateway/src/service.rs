//! The gRPC services. Every handler resolves the caller from the certificate, asks the permission
//! matrix, applies object-level rules (own tenant, own unit, never one's own job) and appends an
//! audit event with the outcome before answering.

mod admin;
mod catalog;
pub(crate) use catalog::{record_whole_population, upgrade_dev_samples};
mod convert;
mod dataset_life;
mod differencing;
mod flight_sql;
pub use flight_sql::{
    ENV_HEADER as FLIGHT_ENV_HEADER, FlightSqlFront, RELEASE_SHA256 as FLIGHT_RELEASE_SHA256,
    SCENARIO_HEADER as FLIGHT_SCENARIO_HEADER, Tickets as FlightTickets,
};
mod governance;
mod lineage;
mod quality;
mod query;
mod release;
mod report;
mod review;
mod scenario;
mod tenant;
mod withhold;

use std::sync::Arc;

use erhai_engine::{Engine, EngineError};
use tonic::{Request, Status};

use crate::audit::{AuditLog, NewEvent};
use crate::authz::{Action, Role, permits, roles_for};
use crate::call_log::{self, Outcome};
use crate::config::ServerConfig;
use crate::identity;
use crate::pki::CertificateAuthority;
use crate::state::{Store, UserRecord, store_status};

/// Shared state of all services.
pub struct Inner {
    /// Metadata.
    pub store: Store,
    /// Audit chain.
    pub audit: AuditLog,
    /// The sandbox engine.
    pub engine: Engine,
    /// The populations behind every result row, per dataset, for differencing checks.
    pub ledger: crate::ledger::PopulationLedger,
    /// Held while a release is decided, so that each approval's differencing re-check sees
    /// every release approved before it.
    pub release_lock: std::sync::Mutex<()>,
    /// Scenarios and their privacy budgets.
    pub scenarios: crate::scenario::Scenarios,
    /// Tenants and their operating agreements.
    pub tenants: crate::tenant::Tenants,
    /// Data-quality requests.
    pub quality: crate::quality::QualityRequests,
    /// The platform's Ed25519 key: signs release receipts.
    pub signer: ring::signature::Ed25519KeyPair,
    /// Issues user certificates.
    pub ca: CertificateAuthority,
    /// Counters for the metrics listener.
    pub metrics: crate::metrics::Metrics,
    /// Held while a user record changes: the last-admin guard reads every admin and then
    /// writes one, which two concurrent changes must not interleave.
    pub users_lock: std::sync::Mutex<()>,
    /// Configuration.
    pub cfg: ServerConfig,
    /// Jobs executing at once are bounded, so that memory stays bounded: each has its own pool.
    pub job_slots: tokio::sync::Semaphore,
    /// The tasks of accepted jobs: shutdown lets them finish (for a while) before the store
    /// closes; one still running then is marked interrupted at the next start.
    pub running: std::sync::Mutex<tokio::task::JoinSet<()>>,
    /// Datasets (ids) whose next version is being uploaded: one at a time per dataset, since
    /// the version's files have one place.
    pub new_versions: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The handles behind Arrow Flight SQL tickets and prepared statements.
    pub flight_tickets: FlightTickets,
}

/// An authorized caller: the user record read at this call, and the digest of the request the
/// call's audit events carry.
pub struct Caller {
    /// The user.
    pub user: UserRecord,
    /// Hex SHA-256 of the request message ("" for streams).
    pub digest: String,
    /// When the call arrived (the call log's duration).
    pub started: std::time::Instant,
}

impl std::ops::Deref for Caller {
    type Target = UserRecord;
    fn deref(&self) -> &UserRecord {
        &self.user
    }
}

/// The service implementation (cheap to clone).
#[derive(Clone)]
pub struct Gateway(pub Arc<Inner>);

impl Gateway {
    /// Identity and permission check of a unary call; denials are audited here. The caller
    /// carries the digest of the request into its audit events.
    fn authorize<T: prost::Message>(
        &self,
        req: &Request<T>,
        action: Action,
        object: &str,
    ) -> Result<Caller, Status> {
        let started = std::time::Instant::now();
        let digest = hex::encode(
            ring::digest::digest(&ring::digest::SHA256, &req.get_ref().encode_to_vec()).as_ref(),
        );
        self.authorize_with(req, action, object, digest, started)
    }

    /// Identity and permission check of a streaming upload (its digest is not known up front).
    fn authorize_stream<T>(
        &self,
        req: &Request<T>,
        action: Action,
        object: &str,
    ) -> Result<Caller, Status> {
        self.authorize_with(
            req,
            action,
            object,
            String::new(),
            std::time::Instant::now(),
        )
    }

    fn authorize_with<T>(
        &self,
        req: &Request<T>,
        action: Action,
        object: &str,
        digest: String,
        started: std::time::Instant,
    ) -> Result<Caller, Status> {
        let (id, resolved) = identity::resolve(&self.0.store, req);
        let denied = |user: &str, role: &str, tenant: &str, status: Status| {
            self.observe(&call_log::Call {
                action,
                user,
                role,
                tenant,
                outcome: Outcome::Denied,
                code: status.code(),
                started,
                object,
            });
            self.record(NewEvent {
                user: user.into(),
                role: role.into(),
                tenant: tenant.into(),
                action: action.name().into(),
                object: object.into(),
                outcome: "denied".into(),
                reason: status.message().into(),
                digest: digest.clone(),
            });
            status
        };
        let user = resolved.map_err(|s| denied(&id, "", "", s))?;
        // A tenant's users act only while its operating agreement is in force.
        if let Some(t) = user.tenant.as_deref() {
            let today = chrono::Utc::now().date_naive();
            let gate = match self.0.tenants.get(t) {
                Ok(Some(record)) => record.admits(action, today).map_err(|why| why.to_string()),
                Ok(None) => Err(format!("tenant {t} is not registered")),
                Err(e) => Err(format!("the tenant record could not be read: {e}")),
            };
            if let Err(why) = gate {
                return Err(denied(
                    &user.id,
                    user.role.name(),
                    t,
                    Status::permission_denied(why),
                ));
            }
        }
        if !permits(user.role, action) {
            let roles: Vec<&str> = roles_for(action).iter().map(|r| r.name()).collect();
            let status = Status::permission_denied(format!(
                "role {} may not {}; it is reserved for: {}",
                user.role,
                action.name().replace('_', " "),
                roles.join(", ")
            ));
            return Err(denied(
                &user.id,
                user.role.name(),
                user.tenant.as_deref().unwrap_or(""),
                status,
            ));
        }
        Ok(Caller {
            user,
            digest,
            started,
        })
    }

    /// A unary call: authorized, answered by `handle`, its outcome audited.
    fn unary<Q: prost::Message, R>(
        &self,
        req: &Request<Q>,
        action: Action,
        object: &str,
        handle: impl FnOnce(&Caller, &Q) -> Result<R, Status>,
    ) -> Result<tonic::Response<R>, Status> {
        let caller = self.authorize(req, action, object)?;
        let result = handle(&caller, req.get_ref());
        self.finish(&caller, action, object, result)
            .map(tonic::Response::new)
    }

    /// The answer to a compare-and-swap change of a `what` record named `name`
    /// (`records::Records::update`): not found, refused with why, or the record once durable.
    pub(crate) fn changed<T>(
        &self,
        what: &str,
        name: &str,
        updated: Option<Result<T, impl std::fmt::Display>>,
    ) -> Result<T, Status> {
        match updated {
            None => Err(Status::not_found(format!("no {what} `{name}`"))),
            Some(Err(why)) => Err(Status::failed_precondition(why.to_string())),
            Some(Ok(record)) => {
                self.0.store.flush().map_err(internal)?;
                Ok(record)
            }
        }
    }

    /// A finished call, in the call log and the metrics.
    fn observe(&self, call: &call_log::Call<'_>) {
        call_log::log(call);
        self.0.metrics.call(call.action, call.outcome);
    }

    fn record(&self, e: NewEvent) {
        if let Err(err) = self.0.audit.append(e) {
            // An audit failure must not pass silently; the call itself has already been decided.
            tracing::error!(error = %err, "audit append failed");
        }
    }

    /// Audits that a call which plans or runs a query was received, before the work that could
    /// fail: even a call that never returns leaves its trace (the outcome follows in `finish`).
    fn received(&self, caller: &Caller, action: Action) {
        let user = &caller.user;
        self.record(NewEvent {
            user: user.id.clone(),
            role: user.role.name().into(),
            tenant: user.tenant.clone().unwrap_or_default(),
            action: format!("{}_received", action.name()),
            object: String::new(),
            outcome: "allowed".into(),
            reason: String::new(),
            digest: caller.digest.clone(),
        });
    }

    /// Audits the outcome of an authorized call and passes the result through.
    fn finish<T>(
        &self,
        caller: &Caller,
        action: Action,
        object: &str,
        result: Result<T, Status>,
    ) -> Result<T, Status> {
        let (outcome, reason) = match &result {
            Ok(_) => ("allowed", String::new()),
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::PermissionDenied | tonic::Code::Unauthenticated
                ) =>
            {
                ("denied", s.message().to_string())
            }
            Err(s) => ("failed", s.message().to_string()),
        };
        let user = &caller.user;
        self.record(NewEvent {
            user: user.id.clone(),
            role: user.role.name().into(),
            tenant: user.tenant.clone().unwrap_or_default(),
            action: action.name().into(),
            object: object.into(),
            outcome: outcome.into(),
            reason,
            digest: caller.digest.clone(),
        });
        let (logged, code) = Outcome::of(&result);
        self.observe(&call_log::Call {
            action,
            user: &user.id,
            role: user.role.name(),
            tenant: user.tenant.as_deref().unwrap_or(""),
            outcome: logged,
            code,
            started: caller.started,
            object,
        });
        result
    }

    /// The caller's tenant (analysts always have one).
    fn tenant_of(user: &UserRecord) -> Result<&str, Status> {
        user.tenant.as_deref().ok_or_else(|| {
            Status::failed_precondition(format!("user `{}` belongs to no tenant", user.id))
        })
    }

    /// Whether `user` may see objects of `tenant`: analysts their own tenant only; tenant-bound
    /// reviewers likewise; platform reviewers and auditors all.
    fn sees_tenant(user: &UserRecord, tenant: &str) -> bool {
        match (user.role, user.tenant.as_deref()) {
            (Role::Analyst, Some(own)) | (Role::Reviewer, Some(own)) => own == tenant,
            (Role::Reviewer, None)
            | (Role::Auditor, _)
            | (Role::Center, _)
            | (Role::Authority, _) => true,
            (Role::Analyst, None) | (Role::Admin, _) | (Role::Provider, _) => false,
        }
    }
}

/// The gRPC status for an engine error.
pub fn engine_status(e: &EngineError) -> Status {
    match e {
        EngineError::Plan(_)
        | EngineError::TooLong { .. }
        | EngineError::UnknownTable { .. }
        | EngineError::UnknownColumn { .. }
        | EngineError::BadData(_)
        | EngineError::Policy(_) => Status::invalid_argument(e.to_string()),
        EngineError::Forbidden(_) | EngineError::Refused(_) | EngineError::Unsupported(_) => {
            refusal(Status::permission_denied(e.to_string()))
        }
        EngineError::Timeout(_) => Status::deadline_exceeded(e.to_string()),
        EngineError::TooManyRows { .. } => Status::resource_exhausted(e.to_string()),
        EngineError::Execution(_) => Status::aborted(e.to_string()),
        EngineError::Crypto(_)
        | EngineError::Io { .. }
        | EngineError::Parquet(_)
        | EngineError::Releases(_) => {
            tracing::error!(error = %e, "engine storage failure");
            Status::internal(e.to_string())
        }
    }
}

/// `status` marked as a refusal by policy (`erhai_proto::refusal`), so that a client can tell
/// it from a role's missing permission or an overloaded server with the same code.
pub fn refusal(mut status: Status) -> Status {
    status.metadata_mut().insert(
        erhai_proto::refusal::KEY,
        tonic::metadata::MetadataValue::from_static(erhai_proto::refusal::POLICY),
    );
    status
}

pub(crate) fn internal(e: crate::error::GatewayError) -> Status {
    store_status(e)
}
