//! Errors of the sandbox. Each variant is one distinct failure, with a message a user can act on.

use erhai_policies::{PlanVerdict, PolicyError};

/// What went wrong inside the engine.
///
/// Planning, execution and Parquet failures keep their text, not the error they came from, on
/// purpose: DataFusion's and Arrow's messages can quote a value of the data ("cannot cast
/// '…'"), so they are redacted (`sandbox::redact_values`) into a string before they leave the
/// sandbox, and a source chain would carry the unredacted text past that. Errors that cannot
/// hold a data value (I/O, policy, the release ledger) keep their source.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The SQL could not be parsed or planned (syntax, unknown table or column, type errors).
    #[error("query could not be planned: {0}")]
    Plan(String),
    /// The query reads a table the sandbox does not hold (misspelt, or outside the job's
    /// scope): the gateway names the scenario when that is why.
    #[error("query could not be planned: table `{name}` not found")]
    UnknownTable {
        /// The name as written (without schema or catalog).
        name: String,
    },
    /// The query names a column no table in its scope has.
    #[error(
        "query could not be planned: no column named `{}`{}{}",
        qualified(.qualifier, .column),
        .suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default(),
        if .valid.is_empty() { String::new() } else { format!(" The columns here are: {}", .valid.join(", ")) }
    )]
    UnknownColumn {
        /// The column as written.
        column: String,
        /// Its table qualifier, if the query wrote one.
        qualifier: Option<String>,
        /// The columns the query could have named at that point.
        valid: Vec<String>,
        /// The one of them the name is a likely typo of.
        suggestion: Option<String>,
    },
    /// The SQL text is longer than the gate reads: a malformed request, not a refusal.
    #[error("SQL text is {bytes} bytes; the limit is {limit}")]
    TooLong {
        /// The text's length.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The SQL uses a statement kind the sandbox does not run.
    #[error("{0}")]
    Forbidden(String),
    /// The plan check refused the query; the verdict holds every reason.
    #[error("query refused by the column policies:\n{}", .0.explain())]
    Refused(Box<PlanVerdict>),
    /// A plan shape the lineage analysis or the statistics rewrite does not handle yet: refused
    /// rather than passed unchecked.
    #[error("query refused: {0}")]
    Unsupported(String),
    /// The query ran longer than the configured wall-clock limit.
    #[error("query exceeded its time limit of {0} s and was cancelled")]
    Timeout(u64),
    /// The result was larger than allowed.
    #[error("query result exceeds the limit of {limit} rows; aggregate further or filter")]
    TooManyRows {
        /// The configured limit.
        limit: u64,
    },
    /// Execution failed (including the memory limit being reached).
    #[error("query failed while running: {0}")]
    Execution(String),
    /// The uploaded data or its policy is not acceptable.
    #[error("{0}")]
    BadData(String),
    /// The policy file is not acceptable.
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
    /// Key material could not be created, wrapped or unwrapped.
    #[error("key handling failed: {0}")]
    Crypto(String),
    /// A file could not be read or written.
    #[error("storage: {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The earlier releases a differencing check compares with could not be read: the result
    /// is not released unchecked.
    #[error("the release ledger could not be read: {0}")]
    Releases(#[source] crate::ReleasesError),
    /// Parquet encoding or decoding failed.
    #[error("storage: {0}")]
    Parquet(String),
}

fn qualified(qualifier: &Option<String>, column: &str) -> String {
    match qualifier {
        Some(q) => format!("{q}.{column}"),
        None => column.to_string(),
    }
}

impl EngineError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EngineError {
        let context = context.into();
        move |source| EngineError::Io { context, source }
    }
}

impl From<parquet::errors::ParquetError> for EngineError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        EngineError::Parquet(e.to_string())
    }
}

impl From<arrow::error::ArrowError> for EngineError {
    fn from(e: arrow::error::ArrowError) -> Self {
        EngineError::BadData(e.to_string())
    }
}

/// Result alias for the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
