//! What a Flight SQL statement text asks for, and the one-row answer of a production statement.
//!
//! `FETCH RELEASE 'job-…'` reads a released result later, by its job id. It is recognized here,
//! exactly and before anything is planned, so it never reaches the SQL planner (which would refuse
//! it anyway) and no SQL can be dressed up as one: anything that starts like it but is not
//! exactly it is refused with the form to write.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use tonic::Status;

/// A statement as a client sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    /// SQL for the sandbox, as the QueryService receives it.
    Sql(String),
    /// Read the released result of a job.
    FetchRelease(String),
}

impl Statement {
    /// Tells `FETCH RELEASE 'job-…'` (case-insensitive keywords, an optional `;`) from SQL.
    pub fn parse(text: &str) -> Result<Statement, Status> {
        let trimmed = text.trim();
        let body = trimmed.strip_suffix(';').unwrap_or(trimmed).trim_end();
        let words: Vec<&str> = body.split_whitespace().collect();
        let is_fetch = words.len() >= 2
            && words[0].eq_ignore_ascii_case("fetch")
            && words[1].eq_ignore_ascii_case("release");
        if !is_fetch {
            return Ok(Statement::Sql(text.to_string()));
        }
        let malformed = || {
            Status::invalid_argument(
                "a released result is read with exactly FETCH RELEASE 'job-…' (the job id in \
                 single quotes, as `erhai job list` shows it); nothing else may follow",
            )
        };
        let [_, _, quoted] = words.as_slice() else {
            return Err(malformed());
        };
        let job = quoted
            .strip_prefix('\'')
            .and_then(|q| q.strip_suffix('\''))
            .ok_or_else(malformed)?;
        let valid = !job.is_empty()
            && job.len() <= 128
            && job
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(malformed());
        }
        Ok(Statement::FetchRelease(job.to_string()))
    }
}

/// The columns of a production statement's answer.
pub fn status_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("job_id", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("scenario", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
    ]))
}

/// What the analyst reads instead of rows: the job, its state, and how to read the result once
/// a reviewer released it.
pub fn status_message(job: &str, state: &str) -> String {
    match state {
        "released" => format!(
            "job {job} is released: read it with FETCH RELEASE '{job}' (or `erhai release fetch \
             {job}` for a file with a signed receipt)"
        ),
        "refused" | "rejected" | "failed" => {
            format!("job {job} is {state}: nothing will be released (`erhai job show {job}`)")
        }
        _ => format!(
            "job {job} is {state}: rows leave only after a reviewer approves them; once released, \
             read them with FETCH RELEASE '{job}' (or `erhai release fetch {job}`)"
        ),
    }
}

/// The one status row.
pub fn status_row(job: &str, state: &str, scenario: &str) -> Result<RecordBatch, Status> {
    let column = |v: String| Arc::new(StringArray::from(vec![v])) as arrow::array::ArrayRef;
    RecordBatch::try_new(
        status_schema(),
        vec![
            column(job.to_string()),
            column(state.to_string()),
            column(scenario.to_string()),
            column(status_message(job, state)),
        ],
    )
    .map_err(|e| Status::internal(format!("the status row could not be built: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_release_is_recognized_exactly() {
        for text in [
            "FETCH RELEASE 'job-0001'",
            "  fetch   release\n'job-0001' ; ",
            "Fetch Release 'job-0001';",
        ] {
            assert_eq!(
                Statement::parse(text).expect(text),
                Statement::FetchRelease("job-0001".into()),
                "{text}"
            );
        }
        for text in [
            "FETCH RELEASE job-0001",
            "FETCH RELEASE 'job-0001' UNION SELECT 1",
            "FETCH RELEASE 'job 0001'",
            "FETCH RELEASE ''",
            "FETCH RELEASE 'job-1'' OR ''a'",
            "FETCH RELEASE",
            "FETCH RELEASE;",
        ] {
            let e = Statement::parse(text).expect_err(text);
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{text}");
            assert!(e.message().contains("FETCH RELEASE 'job-…'"), "{text}");
        }
        for text in [
            "SELECT 1",
            "FETCH NEXT FROM c",
            "fetched release",
            "SELECT 'FETCH RELEASE'",
        ] {
            assert_eq!(
                Statement::parse(text).expect(text),
                Statement::Sql(text.into())
            );
        }
    }

    #[test]
    fn the_status_row_says_how_to_read_the_result_later() {
        let row = status_row("job-7", "awaiting_review", "demo").expect("row");
        assert_eq!(row.num_rows(), 1);
        assert_eq!(row.schema(), status_schema());
        assert!(status_message("job-7", "awaiting_review").contains("FETCH RELEASE 'job-7'"));
    }
}
