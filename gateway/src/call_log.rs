//! The operators' call log: one line per RPC call (target `erhai_gateway::calls`, level INFO)
//! with the action, who called, the outcome, the gRPC code, how long it took and the job it
//! concerned. It carries identifiers only: never SQL text, a data value, a reason text (which
//! may quote names an analyst chose), a key or a token. The audit chain stays the record; this
//! log is for watching a running server.

use std::time::Instant;

use tonic::{Code, Status};

use crate::authz::Action;

/// The tracing target of call lines (`ERHAI_LOG=warn,erhai_gateway::calls=info` shows just them).
pub const TARGET: &str = "erhai_gateway::calls";

/// How a call ended, as the call log and the metrics name it (a fixed set: a metrics label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Answered.
    Ok,
    /// Refused before its handler ran: identity, the tenant's agreement or the matrix.
    Denied,
    /// Refused by its handler: an object-level rule or a policy check.
    Refused,
    /// Any other error (invalid argument, not found, failed precondition, internal…).
    Failed,
}

impl Outcome {
    /// The outcome's name.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }

    /// The outcome of a handler's answer.
    pub fn of<T>(result: &Result<T, Status>) -> (Outcome, Code) {
        match result {
            Ok(_) => (Outcome::Ok, Code::Ok),
            Err(s) if matches!(s.code(), Code::PermissionDenied | Code::Unauthenticated) => {
                (Outcome::Refused, s.code())
            }
            Err(s) => (Outcome::Failed, s.code()),
        }
    }
}

/// One finished call, as logged.
pub struct Call<'a> {
    /// What was asked.
    pub action: Action,
    /// The certificate's user ("-" without one).
    pub user: &'a str,
    /// The user's role ("" when the user could not be resolved).
    pub role: &'a str,
    /// The user's tenant ("" for none).
    pub tenant: &'a str,
    /// How it ended.
    pub outcome: Outcome,
    /// The gRPC code answered.
    pub code: Code,
    /// When the call was received.
    pub started: Instant,
    /// The audited object (only a job id is logged from it).
    pub object: &'a str,
}

/// Writes the call's line.
pub fn log(c: &Call<'_>) {
    let duration_ms = c.started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        target: TARGET,
        action = c.action.name(),
        user = c.user,
        role = c.role,
        tenant = c.tenant,
        outcome = c.outcome.name(),
        code = ?c.code,
        duration_ms = (duration_ms * 1000.0).round() / 1000.0,
        job = job_of(c.action, c.object),
        "call"
    );
}

/// The job a call concerned, when its audited object is one. Only the server's own id shape
/// (`job-` and digits) is logged: a denied call's object is whatever the caller sent.
fn job_of(action: Action, object: &str) -> Option<&str> {
    let about_jobs = matches!(
        action,
        Action::SubmitQuery
            | Action::RunDevQuery
            | Action::PromoteJob
            | Action::GetJob
            | Action::ShowReview
            | Action::Decide
            | Action::FetchRelease
    );
    let shaped = object
        .strip_prefix("job-")
        .is_some_and(|n| !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit()));
    (about_jobs && shaped).then_some(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_job_ids_of_job_actions_are_logged() {
        assert_eq!(job_of(Action::GetJob, "job-000042"), Some("job-000042"));
        assert_eq!(job_of(Action::GetJob, "job-42\nforged line"), None);
        assert_eq!(job_of(Action::GetJob, "SELECT 1"), None);
        assert_eq!(job_of(Action::GetDataset, "job-000042"), None);
    }

    #[test]
    fn outcomes_follow_the_code() {
        let ok: Result<(), Status> = Ok(());
        assert_eq!(Outcome::of(&ok), (Outcome::Ok, Code::Ok));
        let refused: Result<(), Status> = Err(Status::permission_denied("no"));
        assert_eq!(Outcome::of(&refused).0, Outcome::Refused);
        let failed: Result<(), Status> = Err(Status::not_found("no"));
        assert_eq!(Outcome::of(&failed), (Outcome::Failed, Code::NotFound));
    }
}
