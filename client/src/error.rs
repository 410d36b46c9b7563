//! Client-side failures.

use std::path::PathBuf;

/// Client-side failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The identity bundle is missing or unreadable.
    #[error("identity {dir}: {what}")]
    Identity {
        /// The bundle directory.
        dir: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// No connection could be made (including TLS failures).
    #[error("cannot connect to {endpoint}: {detail}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// Why.
        detail: String,
    },
    /// The server answered with an error.
    #[error("{}: {}", code_name(.0.code()), .0.message())]
    Status(#[from] tonic::Status),
    /// Local data could not be read or written.
    #[error("{0}")]
    Data(String),
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::InvalidArgument => "invalid argument",
        C::PermissionDenied => "permission denied",
        C::Unauthenticated => "unauthenticated",
        C::NotFound => "not found",
        C::AlreadyExists => "already exists",
        C::FailedPrecondition => "failed precondition",
        C::DataLoss => "data loss",
        C::DeadlineExceeded => "deadline exceeded",
        C::ResourceExhausted => "resource exhausted",
        C::Unavailable => "unavailable",
        C::Aborted => "aborted",
        C::Internal => "internal error",
        _ => "error",
    }
}

impl From<arrow::error::ArrowError> for ClientError {
    fn from(e: arrow::error::ArrowError) -> Self {
        ClientError::Data(e.to_string())
    }
}
