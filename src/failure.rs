//! How a failed command ends: which kind of failure it was, the exit code that kind has, and
//! how it is printed (`error: …`, or one JSON object on stderr under `--output json`). Scripts
//! branch on the exit code; the table in `erhai --help` and the README is this module's.

use erhai_client::ClientError;
use serde_json::json;

/// The kinds of failure a script may want to tell apart, each with its own exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Anything else: a server-side failure, a job that failed while running, a local I/O error.
    Other,
    /// The command line or its input is wrong: a bad argument, an unreadable file, SQL that
    /// does not parse or plan. Also clap's own usage errors, which exit 2 as well.
    Usage,
    /// Refused by policy: the plan check, a scenario's scope, a privacy budget.
    Refused,
    /// The job, dataset, tenant or scenario named does not exist (or is not visible to you).
    NotFound,
    /// The identity was not accepted: its certificate rejected, expired or revoked, the user
    /// disabled or expired.
    Unauthenticated,
    /// The server could not be reached.
    Unavailable,
    /// The caller's role or tenant may not do this (not a judgment on the data).
    Denied,
}

/// The exit codes, for `erhai --help` (kept beside [`Kind::exit_code`]).
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  other failure (server error, job failed while running, local I/O)
  2  invalid input or usage (bad arguments, unreadable file, SQL that does not plan)
  3  refused by policy (plan check, scenario scope, privacy budget)
  4  not found
  5  unauthenticated (certificate rejected, expired or revoked; user disabled)
  6  server unavailable (cannot connect)
  7  permission denied (the role or tenant may not do this)
With --output json a failure prints one object on stderr:
  {\"error\":{\"kind\":\"refused\",\"code\":\"PERMISSION_DENIED\",\"message\":\"…\",\"exit_code\":3}}";

impl Kind {
    /// The process exit code of this kind.
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Other => 1,
            Kind::Usage => 2,
            Kind::Refused => 3,
            Kind::NotFound => 4,
            Kind::Unauthenticated => 5,
            Kind::Unavailable => 6,
            Kind::Denied => 7,
        }
    }

    /// Its name in the JSON form.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Other => "other",
            Kind::Usage => "usage",
            Kind::Refused => "refused",
            Kind::NotFound => "not_found",
            Kind::Unauthenticated => "unauthenticated",
            Kind::Unavailable => "unavailable",
            Kind::Denied => "denied",
        }
    }
}

/// A failure the command itself recognised (the server's are [`ClientError`]s).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// Its kind.
    pub kind: Kind,
    /// What to print.
    pub message: String,
}

impl CliError {
    /// A wrong argument or unusable input.
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            kind: Kind::Usage,
            message: message.into(),
        }
    }

    /// A refusal by policy that the client decided on the server's answer.
    pub fn refused(message: impl Into<String>) -> Self {
        CliError {
            kind: Kind::Refused,
            message: message.into(),
        }
    }
}

/// A failure as it is reported: kind, the gRPC code if the server answered, the message.
#[derive(Debug)]
pub struct Report {
    /// Its kind.
    pub kind: Kind,
    /// The gRPC status code name (`INVALID_ARGUMENT`), when the server answered with one.
    pub code: Option<&'static str>,
    /// The message, as `error: …` prints it.
    pub message: String,
}

impl Report {
    /// Reads a command's error: [`CliError`] and [`ClientError`] by their kind, anything else
    /// is [`Kind::Other`].
    pub fn of(e: &(dyn std::error::Error + 'static)) -> Report {
        let message = e.to_string();
        if let Some(c) = e.downcast_ref::<CliError>() {
            return Report {
                kind: c.kind,
                code: None,
                message,
            };
        }
        let Some(c) = e.downcast_ref::<ClientError>() else {
            return Report {
                kind: Kind::Other,
                code: None,
                message,
            };
        };
        let (kind, code) = match c {
            ClientError::Identity { .. } | ClientError::Data(_) => (Kind::Usage, None),
            ClientError::Connect { .. } => (Kind::Unavailable, None),
            ClientError::CertificateRejected { .. } => (Kind::Unauthenticated, None),
            ClientError::Status(s) => (status_kind(s, c.is_refusal()), Some(code_name(s.code()))),
        };
        Report {
            kind,
            code,
            message,
        }
    }

    /// The one-object JSON form printed on stderr under `--output json`.
    pub fn json(&self) -> serde_json::Value {
        json!({"error": {
            "kind": self.kind.name(),
            "code": self.code,
            "message": self.message,
            "exit_code": self.kind.exit_code(),
        }})
    }
}

fn status_kind(s: &tonic::Status, refusal: bool) -> Kind {
    use tonic::Code as C;
    if refusal {
        return Kind::Refused;
    }
    match s.code() {
        C::InvalidArgument | C::OutOfRange | C::AlreadyExists => Kind::Usage,
        C::NotFound => Kind::NotFound,
        C::Unauthenticated => Kind::Unauthenticated,
        C::Unavailable => Kind::Unavailable,
        C::PermissionDenied => Kind::Denied,
        _ => Kind::Other,
    }
}

/// The canonical name of a gRPC code, as scripts know it from other gRPC tools.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_exit_code_listed_in_the_help() {
        let kinds = [
            Kind::Other,
            Kind::Usage,
            Kind::Refused,
            Kind::NotFound,
            Kind::Unauthenticated,
            Kind::Unavailable,
            Kind::Denied,
        ];
        let mut codes: Vec<u8> = kinds.iter().map(|k| k.exit_code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), kinds.len());
        for c in codes {
            assert!(
                EXIT_CODES.contains(&format!("\n  {c}  ")),
                "{c} undocumented"
            );
        }
    }

    #[test]
    fn a_not_found_status_reads_as_not_found_with_its_code() {
        let e: Box<dyn std::error::Error> =
            Box::new(ClientError::from(tonic::Status::not_found("no job `j-1`")));
        let r = Report::of(e.as_ref());
        assert_eq!((r.kind, r.code), (Kind::NotFound, Some("NOT_FOUND")));
        assert_eq!(r.json()["error"]["exit_code"], 4);
    }
}
