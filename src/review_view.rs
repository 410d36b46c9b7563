//! What a reviewer reads: the queue of jobs awaiting review, and a job's findings grouped by
//! rule and reason (128 rows flagged for one reason read as one line, not 128).

use std::collections::BTreeMap;

use erhai_proto::v1 as pb;
use serde::Serialize;

use crate::output::table;

/// Row numbers a group shows before `--all`.
const FIRST_ROWS: usize = 5;

/// A duration for a queue: the largest unit that fits ("45s", "12m", "3h", "2d").
pub fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Who must still approve: one reviewer, or two and how many are in.
fn reviewers(j: &pb::Job) -> String {
    if j.approvals_needed <= 1 {
        return "one".into();
    }
    if j.approvals.is_empty() {
        return format!("{}: none in yet", j.approvals_needed);
    }
    format!(
        "{}: {} in ({}{})",
        j.approvals_needed,
        j.approvals.len(),
        j.approvals.join(", "),
        if j.suppress_flagged {
            ", rows to review withheld"
        } else {
            ""
        }
    )
}

/// The review queue: per job its scenario, tenant, age, rows to review, rows suppressed and the
/// reviewers it needs; `now_ms` is the time the ages count to.
pub fn pending_table(jobs: &[pb::Job], now_ms: i64) -> String {
    if jobs.is_empty() {
        return "no jobs await review".into();
    }
    table(
        &[
            "job",
            "scenario",
            "tenant",
            "analyst",
            "age",
            "to review",
            "suppressed",
            "reviewers needed",
        ],
        jobs.iter()
            .map(|j| {
                let (review, suppressed) = match (&j.report, j.state.as_str()) {
                    (_, "failed") => ("run failed".to_string(), "—".to_string()),
                    (Some(r), _) => (r.rows_review.to_string(), r.rows_suppressed.to_string()),
                    (None, _) => ("still running".to_string(), "—".to_string()),
                };
                vec![
                    j.id.clone(),
                    j.scenario.clone(),
                    j.tenant.clone(),
                    j.submitted_by.clone(),
                    age(now_ms - j.submitted_at_ms),
                    review,
                    suppressed,
                    reviewers(j),
                ]
            })
            .collect(),
    )
}

/// The rows a release withheld, by rule: "flagged: row 0, 1; complementary: row 6".
pub fn withheld_summary(rows: &[pb::WithheldRow]) -> String {
    let mut by_rule: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for w in rows {
        by_rule
            .entry(w.rule.as_str())
            .or_default()
            .push(w.reviewed_row.to_string());
    }
    by_rule
        .iter()
        .map(|(rule, rows)| format!("{rule}: row {}", rows.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The rows one reason flagged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FindingGroup {
    /// What happens to the rows: `review` or `fail` (suppressed).
    pub verdict: String,
    /// The rule.
    pub rule: String,
    /// The reason, without any row's figures or values.
    pub about: String,
    /// Positions in the computed result.
    pub rows: Vec<u64>,
    /// Positions in the result that would be released (the preview's `row`); suppressed rows
    /// have none.
    pub released_rows: Vec<u64>,
}

/// The report's listed rows grouped by verdict, rule and reason: rows to review first, then
/// suppressed ones, the larger groups first.
pub fn groups(r: &pb::CheckReport) -> Vec<FindingGroup> {
    let mut by: BTreeMap<(u8, String, String), FindingGroup> = BTreeMap::new();
    for x in &r.rows {
        for f in &x.findings {
            let about = if f.about.is_empty() {
                f.message.clone()
            } else {
                f.about.clone()
            };
            // Grouped by what happens to the row: a suppressed row's lesser findings are
            // reasons it is suppressed with, not rows to review.
            let order = u8::from(x.outcome != "review");
            let g = by
                .entry((order, f.rule.clone(), about.clone()))
                .or_insert_with(|| FindingGroup {
                    verdict: x.outcome.clone(),
                    rule: f.rule.clone(),
                    about,
                    rows: Vec::new(),
                    released_rows: Vec::new(),
                });
            if g.rows.last() != Some(&x.row) {
                g.rows.push(x.row);
                if let Ok(at) = u64::try_from(x.released_row) {
                    g.released_rows.push(at);
                }
            }
        }
    }
    let mut out: Vec<((u8, String, String), FindingGroup)> = by.into_iter().collect();
    out.sort_by(|(a, ga), (b, gb)| a.0.cmp(&b.0).then(gb.rows.len().cmp(&ga.rows.len())));
    out.into_iter().map(|(_, g)| g).collect()
}

fn numbers(rows: &[u64], all: bool) -> String {
    let shown: Vec<String> = rows
        .iter()
        .take(if all { usize::MAX } else { FIRST_ROWS })
        .map(u64::to_string)
        .collect();
    let more = rows.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{}, … ({more} more)", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// The findings for people: one line per group with its first row numbers (`all`: every row
/// number), the released-result positions for rows to review (the preview's `row` column).
pub fn grouped_text(r: &pb::CheckReport, all: bool) -> String {
    let groups = groups(r);
    if groups.is_empty() {
        return "  every row passed\n".into();
    }
    let mut s = String::new();
    for g in &groups {
        let n = g.rows.len();
        let rows = if n == 1 { "row" } else { "rows" };
        let (what, at) = if g.verdict == "review" {
            (
                "to review",
                format!("row {}", numbers(&g.released_rows, all)),
            )
        } else {
            (
                "suppressed",
                format!("computed row {}", numbers(&g.rows, all)),
            )
        };
        s += &format!("  {n} {rows} {what}: {} ({}) — {at}\n", g.rule, g.about);
    }
    let listed_review = r.rows.iter().filter(|x| x.outcome == "review").count() as u64;
    let listed_fail = r.rows.iter().filter(|x| x.outcome == "fail").count() as u64;
    if listed_review < r.rows_review || listed_fail < r.rows_suppressed {
        s += &format!(
            "  (listed: {listed_review} of {} rows to review, {listed_fail} of {} suppressed)\n",
            r.rows_review, r.rows_suppressed
        );
    }
    if !all && groups.iter().any(|g| g.rows.len() > FIRST_ROWS) {
        s += "  (--all lists every row)\n";
    }
    s
}

/// Every listed row on its own line with every reason (`review show --all`).
pub fn every_row(r: &pb::CheckReport) -> String {
    let mut s = String::new();
    for x in &r.rows {
        let at = if x.released_row >= 0 {
            format!(" (row {} of the preview)", x.released_row)
        } else {
            String::new()
        };
        let label = if x.outcome == "review" {
            "to review"
        } else {
            "suppressed"
        };
        s += &format!(
            "  computed row {}{at} {label}: {}\n",
            x.row,
            x.reasons.join("; ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(row: u64, released: i64, verdict: &str, rule: &str, about: &str) -> pb::RowCheck {
        pb::RowCheck {
            row,
            outcome: verdict.into(),
            reasons: vec![format!("{rule}: value of row {row}")],
            released_row: released,
            findings: vec![pb::Finding {
                verdict: verdict.into(),
                rule: rule.into(),
                message: format!("value of row {row}"),
                about: about.into(),
            }],
        }
    }

    #[test]
    fn rows_flagged_for_one_reason_read_as_one_line() {
        let mut rows: Vec<pb::RowCheck> = (0..128)
            .map(|i| {
                row(
                    i * 2,
                    i as i64 * 2,
                    "review",
                    "one-category",
                    "hotel determines district",
                )
            })
            .collect();
        rows.push(row(
            7,
            -1,
            "fail",
            "threshold",
            "fewer than k = 10 units of stays",
        ));
        let r = pb::CheckReport {
            rows_review: 128,
            rows_suppressed: 1,
            rows,
            ..Default::default()
        };
        let text = grouped_text(&r, false);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(
            text.contains(
                "128 rows to review: one-category (hotel determines district) — row 0, 2, 4, 6, \
                 8, … (123 more)"
            ),
            "{text}"
        );
        assert!(text.contains("1 row suppressed: threshold"), "{text}");
        assert!(
            grouped_text(&r, true).contains("254\n") || grouped_text(&r, true).contains("254 ")
        );
        let g = groups(&r);
        assert_eq!(g[0].rows.len(), 128);
        assert_eq!(every_row(&r).lines().count(), 129);
    }

    #[test]
    fn ages_read_in_their_largest_unit() {
        assert_eq!(age(45_000), "45s");
        assert_eq!(age(3 * 3_600_000 + 59_000), "3h");
        assert_eq!(age(2 * 86_400_000), "2d");
        assert_eq!(age(-5), "0s");
    }
}
