//! An analyst's SQL error without DataFusion's internals: the parser's `ParserError("…")`
//! wrapper, "Error during planning:" and "Schema error:" prefixes, the `datafusion.public.`
//! qualifiers of the sandbox's catalog. What stays is what the analyst wrote and what DataFusion
//! suggests ("Did you mean …"), and a syntax error's line and column.

/// `msg` (a DataFusion planning or parsing error's text) as the analyst reads it.
pub(crate) fn clean(msg: &str) -> String {
    let mut text = msg.trim().to_string();
    // Wrappers nest ("SQL error: ParserError(\"…\")", "Error during planning: Schema error: …"):
    // peel them until none is left.
    loop {
        let before = text.clone();
        for prefix in [
            "Error during planning:",
            "Schema error:",
            "SQL error:",
            "Optimizer rule",
            "External error:",
            "Arrow error:",
            "Internal error:",
        ] {
            if prefix == "Optimizer rule" {
                // "Optimizer rule 'x' failed\ncaused by\n…": the cause is the message.
                if text.starts_with(prefix)
                    && let Some((_, cause)) = text.split_once("caused by")
                {
                    text = cause.trim().to_string();
                }
                continue;
            }
            if let Some(rest) = text.strip_prefix(prefix) {
                text = rest.trim_start().to_string();
            }
        }
        if let Some(inner) = parser_error(&text) {
            text = inner;
        }
        if text == before {
            break;
        }
    }
    if let Some(rest) = text.strip_prefix("This feature is not implemented:") {
        text = format!("not supported: {}", rest.trim_start());
    }
    // One line: DataFusion puts its hints ("Did you mean …") on lines of their own.
    text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    // The sandbox's tables live in `datafusion.public`; the analyst never wrote that.
    for qualifier in ["datafusion.public.", "public."] {
        text = text.replace(qualifier, "");
    }
    text
}

/// The message inside `ParserError("…")` / `TokenizerError("…")`, with its position as
/// "line L, column C" in front, if `text` is one.
fn parser_error(text: &str) -> Option<String> {
    let (kind, rest) = ["ParserError(", "TokenizerError("]
        .into_iter()
        .find_map(|k| text.strip_prefix(k).map(|r| (k, r)))?;
    let inner = rest.strip_suffix(')')?.trim();
    let inner = inner
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(inner)
        .replace("\\\"", "\"");
    let what = if kind == "ParserError(" {
        "syntax error"
    } else {
        "cannot read the SQL text"
    };
    let (message, position) = split_position(&inner);
    let message = message.trim().trim_end_matches('.');
    let message = message.strip_prefix("Expected: ").map_or_else(
        || message.to_string(),
        |expected| format!("expected {expected}"),
    );
    Some(match position {
        Some((line, column)) => format!("{what} at line {line}, column {column}: {message}"),
        None => format!("{what}: {message}"),
    })
}

/// sqlparser's " at Line: L, Column: C" suffix, taken off the message.
fn split_position(text: &str) -> (&str, Option<(u64, u64)>) {
    let Some(at) = text.rfind(" at Line: ") else {
        return (text, None);
    };
    let tail = &text[at + " at Line: ".len()..];
    let parsed = tail.split_once(", Column: ").and_then(|(line, column)| {
        let column: String = column.chars().take_while(|c| c.is_ascii_digit()).collect();
        Some((line.trim().parse().ok()?, column.parse().ok()?))
    });
    match parsed {
        Some(position) => (&text[..at], Some(position)),
        None => (text, None),
    }
}

/// Of `candidates`, the one closest to `name` if it is close enough to be a typo (at most one
/// edit in four characters), for "did you mean".
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let name = name.to_lowercase();
    let limit = (name.chars().count() / 4).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&name, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance with adjacent transpositions counted as one edit ("nigths").
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    use super::*;

    /// The text of the error DataFusion itself gives for `sql` over a `hotel_stays` table.
    async fn datafusion_error(sql: &str) -> String {
        let ctx = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![
            Field::new("district", DataType::Utf8, true),
            Field::new("nights", DataType::Int64, true),
        ]));
        let table = MemTable::try_new(schema, vec![vec![]]).expect("table");
        ctx.register_table("hotel_stays", Arc::new(table))
            .expect("register");
        match ctx.sql(sql).await {
            Ok(_) => panic!("{sql} planned"),
            Err(e) => e.to_string(),
        }
    }

    #[tokio::test]
    async fn syntax_errors_lose_the_wrapper_and_keep_the_position() {
        let raw = datafusion_error("SELECT district\nFROM hotel_stays WHER nights > 2").await;
        assert!(raw.contains("ParserError"), "{raw}");
        let clean = clean(&raw);
        assert!(
            clean.starts_with("syntax error at line 2, column ") && clean.contains("nights"),
            "{clean}"
        );
        assert!(
            !clean.contains("ParserError") && !clean.contains("SQL error"),
            "{clean}"
        );
    }

    #[tokio::test]
    async fn planning_errors_lose_the_prefixes_and_the_catalog() {
        for sql in [
            "SELECT district FROM hotel_stays JOIN nope ON true",
            "SELECT cont(*) FROM hotel_stays",
            "SELECT district, sum(nights) FROM hotel_stays",
            "SELECT hotel_stays.nigths FROM hotel_stays",
        ] {
            let raw = datafusion_error(sql).await;
            let clean = clean(&raw);
            for internal in [
                "Error during planning",
                "Schema error",
                "datafusion.public",
                "SQL error",
            ] {
                assert!(
                    !clean.contains(internal),
                    "{sql}: {internal} in {clean} (was {raw})"
                );
            }
            assert!(!clean.is_empty(), "{sql}: {raw}");
        }
        // DataFusion's own suggestion stays, on one line.
        let clean = clean(&datafusion_error("SELECT sume(nights) FROM hotel_stays").await);
        assert!(
            clean.contains("Did you mean 'sum'?") && !clean.contains('\n'),
            "{clean}"
        );
    }

    #[test]
    fn a_typo_is_close_and_another_word_is_not() {
        let columns = ["district", "nights", "check_in"];
        assert_eq!(closest("nigths", columns), Some("nights"));
        assert_eq!(closest("distrct", columns), Some("district"));
        assert_eq!(closest("revenue", columns), None);
    }
}
