//! Errors raised while reading and validating policy files.

/// A policy file or a policy value that cannot be accepted. Each variant says what to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// The TOML itself could not be parsed.
    #[error("policy file is not valid TOML: {0}")]
    Syntax(String),
    /// A kind, grade, use or preset name that does not exist.
    #[error("unknown {what} `{value}` for column `{column}`; expected one of: {expected}")]
    UnknownName {
        /// What was being named (kind, grade, use, preset).
        what: &'static str,
        /// The column whose entry holds it.
        column: String,
        /// The name given.
        value: String,
        /// The accepted names.
        expected: String,
    },
    /// Core data may not be registered at all.
    #[error(
        "column `{0}` is graded `core`: core data (GB/T 43697-2024) may not be registered in erhai"
    )]
    CoreData(String),
    /// A column of the data has no policy entry.
    #[error(
        "column `{0}` has no policy entry: every column must be classified (kind, grade, uses) before registration"
    )]
    MissingColumn(String),
    /// A policy entry names a column the data does not have.
    #[error("policy names column `{0}`, which the data does not have")]
    UnknownColumn(String),
    /// The privacy unit is missing or not a column.
    #[error("privacy_unit `{0}` is not a column of the data")]
    BadPrivacyUnit(String),
    /// The policy declares a type that the data does not have.
    #[error("column `{column}` is declared as `{declared}` but the data holds `{actual}`")]
    TypeMismatch {
        /// The column.
        column: String,
        /// The declared type.
        declared: String,
        /// The type found in the data.
        actual: String,
    },
    /// An aggregate function list names a function erhai does not know.
    #[error("column `{column}` allows aggregate function `{function}`, which erhai does not know")]
    UnknownFunction {
        /// The column.
        column: String,
        /// The function named.
        function: String,
    },
    /// A column's mask settings that do not fit its kind or uses.
    #[error("column `{column}`: {reason}")]
    BadMask {
        /// The column.
        column: String,
        /// What is wrong.
        reason: String,
    },
    /// A mask in a column's list that is unknown, unbounded or out of range.
    #[error("column `{column}`: {source}")]
    Mask {
        /// The column.
        column: String,
        /// What is wrong with the mask.
        #[source]
        source: crate::masks::MaskError,
    },
    /// A setting out of its allowed range.
    #[error("{0}")]
    Invalid(String),
}
