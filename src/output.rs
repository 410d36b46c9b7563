//! Printing results: pretty tables for people, JSON for programs. Each response type says how
//! it reads in both through [`Render`]; its JSON is the message's own serde form (see
//! `erhai_proto::json`).

use arrow::record_batch::RecordBatch;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use erhai_proto::json::utc as time;
use erhai_proto::v1 as pb;
use serde::Serialize;
use serde_json::Value;

pub use crate::report_doc::{report_html, report_markdown};

/// Output format chosen with `--output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Pretty tables.
    Table,
    /// JSON.
    Json,
}

/// A table of rows with headers.
pub(crate) fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(headers.to_vec());
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
}

/// Renders batches as a table (for previews and fetched releases).
pub fn batches_table(batches: &[RecordBatch]) -> String {
    arrow::util::pretty::pretty_format_batches(batches)
        .map(|d| d.to_string())
        .unwrap_or_else(|e| format!("(cannot display: {e})"))
}

/// Batches as JSON rows.
pub fn batches_json(batches: &[RecordBatch]) -> Value {
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::ArrayWriter::new(&mut buf);
        for b in batches {
            if w.write(b).is_err() {
                return Value::Null;
            }
        }
        if w.finish().is_err() {
            return Value::Null;
        }
    }
    serde_json::from_slice(&buf).unwrap_or(Value::Array(vec![]))
}

/// Users as a table.
fn users_table(users: &[pb::User]) -> String {
    table(
        &["id", "name", "role", "tenant", "unit", "expires"],
        users
            .iter()
            .map(|u| {
                vec![
                    u.id.clone(),
                    u.name.clone(),
                    u.role.clone(),
                    u.tenant.clone(),
                    u.unit.clone(),
                    time(u.expires_at_ms),
                ]
            })
            .collect(),
    )
}

/// Datasets as a table.
fn datasets_table(ds: &[pb::Dataset]) -> String {
    table(
        &[
            "id",
            "name",
            "provider unit",
            "version",
            "rows",
            "privacy unit",
            "status",
        ],
        ds.iter()
            .map(|d| {
                vec![
                    d.id.clone(),
                    d.name.clone(),
                    d.provider_unit.clone(),
                    d.version.to_string(),
                    d.rows.to_string(),
                    d.privacy_unit.clone(),
                    dataset_status(d),
                ]
            })
            .collect(),
    )
}

/// In use, retired (when, by whom), or social data awaiting its import approval.
fn dataset_status(d: &pb::Dataset) -> String {
    match &d.retired {
        Some(r) => format!("retired {} by {}", time(r.at_ms), r.by),
        None if d.import_status == "pending" => "import pending".into(),
        None => "in use".into(),
    }
}

/// A dataset's retirement and earlier versions, when it has them.
fn dataset_life(d: &pb::Dataset) -> String {
    let mut s = String::new();
    if let Some(r) = &d.retired {
        s += &format!(
            "RETIRED {} by {} ({}): no new queries, scenarios or versions\n",
            time(r.at_ms),
            r.by,
            r.reason
        );
    }
    if !d.earlier_versions.is_empty() {
        let earlier: Vec<String> = d
            .earlier_versions
            .iter()
            .map(|v| {
                format!(
                    "v{} ({} rows, {} by {})",
                    v.version,
                    v.rows,
                    time(v.created_at_ms),
                    v.registered_by
                )
            })
            .collect();
        s += &format!(
            "earlier versions (kept, not queried): {}\n",
            earlier.join(", ")
        );
    }
    s
}

/// One dataset's schema and policy as a table.
fn dataset_detail(d: &pb::Dataset) -> String {
    let head = dataset_life(d)
        + &format!(
            "{} ({}) — {} rows, version {}, provider {}, privacy unit {}, development sample {} rows\n{}\ndevelopment sample: {}\n",
            d.name,
            d.id,
            d.rows,
            d.version,
            d.provider_unit,
            d.privacy_unit,
            d.dev_sample_rows,
            d.description,
            d.dev_sample_rule
        );
    head + &table(
        &[
            "column",
            "type",
            "kind",
            "grade",
            "allowed uses",
            "in the sample",
        ],
        d.columns
            .iter()
            .map(|c| {
                let uses = c
                    .uses
                    .iter()
                    .map(|u| {
                        if u == "aggregate" {
                            format!("aggregate[{}]", c.aggregate_functions.join(", "))
                        } else if u == "output_masked" && !c.masks.is_empty() {
                            format!("output_masked[{}]", c.masks.join(", "))
                        } else {
                            u.clone()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                vec![
                    c.name.clone(),
                    c.data_type.clone(),
                    c.kind.clone(),
                    c.grade.clone(),
                    if uses.is_empty() { "none".into() } else { uses },
                    c.sample.clone(),
                ]
            })
            .collect(),
    )
}

/// Each output column's sources, lineage and rule, as a table.
fn verdict_columns(v: &pb::PlanVerdict) -> String {
    table(
        &["column", "sources", "lineage", "allowed", "rule"],
        v.columns
            .iter()
            .map(|c| {
                vec![
                    c.column.clone(),
                    c.sources.join(", "),
                    c.derivation.clone(),
                    c.allowed.to_string(),
                    c.rule.clone(),
                ]
            })
            .collect(),
    )
}

/// A plan verdict for people: per output column, then every refusal.
fn verdict_detail(v: &pb::PlanVerdict) -> String {
    let mut s = format!(
        "verdict: {}\n",
        if v.allowed { "allowed" } else { "refused" }
    );
    s += &verdict_columns(v);
    for r in &v.refusals {
        s += &format!("\n✗ {} [{} / {}]: {}", r.column, r.r#use, r.rule, r.message);
    }
    s
}

/// Jobs as a table.
fn jobs_table(jobs: &[pb::Job]) -> String {
    table(
        &[
            "id",
            "tenant",
            "submitted by",
            "state",
            "released rows",
            "suppressed",
            "submitted",
            "sql",
        ],
        jobs.iter()
            .map(|j| {
                let (rel, sup) = j
                    .report
                    .as_ref()
                    .map(|r| (r.rows_released.to_string(), r.rows_suppressed.to_string()))
                    .unwrap_or_default();
                let sql: String = j.sql.chars().take(60).collect();
                vec![
                    j.id.clone(),
                    j.tenant.clone(),
                    j.submitted_by.clone(),
                    j.state.clone(),
                    rel,
                    sup,
                    time(j.submitted_at_ms),
                    sql,
                ]
            })
            .collect(),
    )
}

/// One job in detail: SQL, verdict per column, check report.
fn job_detail(j: &pb::Job) -> String {
    job_text(j, &|r| {
        report_rows(r, "review", "to review", 50) + &report_rows(r, "fail", "suppressed", 10)
    })
}

/// One job in detail, its check report's rows as `rows` lays them out.
pub fn job_text(j: &pb::Job, rows: &dyn Fn(&pb::CheckReport) -> String) -> String {
    let mut s = format!(
        "job {} — {} ({})\ntenant {}, submitted by {} at {}\nSQL: {}\n",
        j.id,
        j.state,
        if j.env.is_empty() { "prod" } else { &j.env },
        j.tenant,
        j.submitted_by,
        time(j.submitted_at_ms),
        j.sql
    );
    if !j.promoted_from.is_empty() {
        s.push_str(&format!(
            "promoted from development job {}\n",
            j.promoted_from
        ));
    }
    if !j.scenario.is_empty() {
        s += &format!("scenario: {}", j.scenario);
        if j.epsilon > 0.0 {
            s += &format!(" (differential privacy, ε spent {})", j.epsilon);
        }
        s.push('\n');
    }
    if !j.dataset_versions.is_empty() {
        s += &format!("read: {}\n", j.dataset_versions.join(", "));
    }
    if j.approvals_needed > 1 || !j.approvals.is_empty() {
        s += &format!(
            "approvals: {} of {} needed ({})\n",
            j.approvals.len(),
            j.approvals_needed.max(1),
            j.approvals.join(", ")
        );
    }
    if !j.release_id.is_empty() {
        s += &format!(
            "release {} — rows SHA-256 {}\n",
            j.release_id, j.result_sha256
        );
    }
    if !j.withheld.is_empty() {
        s += &format!(
            "withheld at approval ({} row(s) of the reviewed result):\n",
            j.withheld.len()
        );
        for w in &j.withheld {
            s += &format!(
                "  row {} (computed row {}) [{}]: {}\n",
                w.reviewed_row, w.row, w.rule, w.reason
            );
        }
    } else if j.suppress_flagged {
        s += "approved so far with the rows to review withheld\n";
    }
    if !j.error.is_empty() {
        s += &format!("error: {}\n", j.error);
    }
    if let Some(v) = &j.verdict {
        s += "plan verdict per output column:\n";
        s += &verdict_columns(v);
        s.push('\n');
    }
    if let Some(r) = &j.report {
        s += &format!(
            "automatic checks: {} — {} rows computed, {} released ({} to review), {} suppressed\n",
            r.outcome, r.rows_computed, r.rows_released, r.rows_review, r.rows_suppressed
        );
        if !r.rules.is_empty() {
            s += &format!("  rules: {}\n", r.rules);
        }
        for f in &r.job_findings {
            s += &format!(
                "  ! whole result [{} / {}]: {}\n",
                f.verdict, f.rule, f.message
            );
        }
        for n in &r.notes {
            s += &format!("  note: {n}\n");
        }
        s += &rows(r);
    }
    if !j.reviewed_by.is_empty() {
        s += &format!(
            "reviewed by {} at {}: {}\n",
            j.reviewed_by,
            time(j.reviewed_at_ms),
            j.review_reason
        );
    }
    s
}

/// The listed rows of one outcome, at most `show` of them.
fn report_rows(r: &pb::CheckReport, outcome: &str, label: &str, show: usize) -> String {
    let rows: Vec<&pb::RowCheck> = r.rows.iter().filter(|x| x.outcome == outcome).collect();
    let mut s = String::new();
    for x in rows.iter().take(show) {
        let at = if x.released_row >= 0 {
            format!(" (released row {})", x.released_row)
        } else {
            String::new()
        };
        s += &format!("  row {}{at} {label}: {}\n", x.row, x.reasons.join("; "));
    }
    if rows.len() > show {
        s += &format!("  … and {} more rows {label}\n", rows.len() - show);
    }
    s
}

/// The reviewer's preview: the rows that would be released, numbered in a leading `row`
/// column (the positions the grouped findings name) and marked `pass` or `REVIEW (rules)` in
/// a `check` column.
pub fn review_preview(batches: &[RecordBatch], report: Option<&pb::CheckReport>) -> String {
    let marks: std::collections::HashMap<i64, String> = report
        .map(|r| {
            r.rows
                .iter()
                .filter(|x| x.outcome == "review" && x.released_row >= 0)
                .map(|x| {
                    let rules: Vec<&str> = x.findings.iter().map(|f| f.rule.as_str()).collect();
                    (x.released_row, format!("REVIEW ({})", rules.join(", ")))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut at = 0i64;
    let mut marked = Vec::with_capacity(batches.len());
    for b in batches {
        let check: arrow::array::StringArray = (0..b.num_rows())
            .map(|i| {
                Some(
                    marks
                        .get(&(at + i as i64))
                        .cloned()
                        .unwrap_or_else(|| "pass".into()),
                )
            })
            .collect();
        let row: arrow::array::UInt64Array = (0..b.num_rows() as i64)
            .map(|i| u64::try_from(at + i).unwrap_or(0))
            .collect();
        at += b.num_rows() as i64;
        let mut fields = vec![
            arrow::datatypes::Field::new("row", arrow::datatypes::DataType::UInt64, false),
            arrow::datatypes::Field::new("check", arrow::datatypes::DataType::Utf8, false),
        ];
        fields.extend(b.schema().fields().iter().map(|f| f.as_ref().clone()));
        let mut columns: Vec<arrow::array::ArrayRef> =
            vec![std::sync::Arc::new(row), std::sync::Arc::new(check)];
        columns.extend(b.columns().iter().cloned());
        match RecordBatch::try_new(
            std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
            columns,
        ) {
            Ok(m) => marked.push(m),
            Err(_) => return batches_table(batches),
        }
    }
    batches_table(&marked)
}

/// Data-quality requests as a table.
fn quality_table(list: &[pb::QualityRequest]) -> String {
    table(
        &[
            "id",
            "status",
            "age (days)",
            "dataset",
            "column",
            "issue",
            "filed by",
            "answer",
        ],
        list.iter()
            .map(|q| {
                vec![
                    q.id.clone(),
                    q.status.clone(),
                    q.age_days.to_string(),
                    q.dataset.clone(),
                    q.column.clone(),
                    q.issue.chars().take(60).collect(),
                    format!("{} ({})", q.filed_by, q.tenant),
                    q.answer.chars().take(60).collect(),
                ]
            })
            .collect(),
    )
}

/// A tenant's standing on `today`: its status, except that an active tenant whose agreement
/// has not started (or has ended) admits nobody, and is not shown as plainly active.
fn tenant_standing(t: &pb::Tenant, today: chrono::NaiveDate) -> String {
    let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
    if t.status == "active" {
        if let Some(start) = day(&t.start).filter(|d| *d > today) {
            return format!("pending until {start}");
        }
        if let Some(end) = day(&t.end).filter(|d| *d < today) {
            return format!("agreement ended {end}");
        }
    }
    t.status.clone()
}

/// A tenant for people: status, agreement, history.
fn tenant_text(t: &pb::Tenant) -> String {
    let mut s = format!(
        "tenant {} — {} ({}){}\n",
        t.name,
        t.title,
        tenant_standing(t, chrono::Utc::now().date_naive()),
        if t.start.is_empty() {
            String::new()
        } else {
            format!(", agreement {} to {}", t.start, t.end)
        }
    );
    for h in &t.history {
        s += &format!(
            "  {} {} by {} → {}: {}\n",
            time(h.at_ms),
            h.what,
            h.by,
            h.status,
            h.reason
        );
    }
    s
}

/// A scenario for people.
fn scenario_text(s: &pb::Scenario) -> String {
    let mut t = format!(
        "scenario {} — {} (tenant {})\n  threshold k: {}; second reviewer for rows to review: {}\n",
        s.name,
        s.title,
        s.tenant,
        if s.k == 0 {
            "platform default".to_string()
        } else {
            s.k.to_string()
        },
        if s.second_reviewer { "yes" } else { "no" }
    );
    if !s.status.is_empty() {
        t += &format!("  status: {}", s.status);
        if !s.deadline.is_empty() {
            t += &format!(" (step due {})", s.deadline);
        }
        if !s.pending_units.is_empty() {
            t += &format!("; awaiting {}", s.pending_units.join(", "));
        }
        t.push('\n');
    }
    if !s.domain.is_empty() {
        t += &format!(
            "  domain {}; valid {} to {}\n  purpose: {}\n  outputs: {}\n",
            s.domain, s.valid_from, s.valid_to, s.purpose, s.outputs
        );
    }
    for c in &s.columns {
        t += &format!(
            "  {} {}.{} — {}\n",
            if c.approved { "✓" } else { "✗" },
            c.dataset,
            c.column,
            c.justification
        );
    }
    for r in &s.reviews {
        t += &format!(
            "  {} {} by {}: {}{}\n",
            r.stage,
            if r.approve { "approved" } else { "rejected" },
            r.by,
            r.reason,
            if r.removed.is_empty() {
                String::new()
            } else {
                format!(" (removed {})", r.removed.join(", "))
            }
        );
    }
    if let Some(d) = &s.dp {
        t += &format!(
            "  differential privacy: ε {} in total, at most {} per query; δ {:e} in total, {:e} per query; a unit counts in at most {} group(s), {} row(s) each\n",
            d.epsilon_total,
            d.epsilon_per_query,
            d.delta_total,
            d.delta_per_query,
            d.max_groups_per_unit,
            d.max_rows_per_unit
        );
    }
    t
}

/// Audit events as a table.
fn audit_table(events: &[pb::AuditEvent]) -> String {
    table(
        &[
            "seq", "time", "user", "role", "tenant", "action", "object", "outcome", "reason",
        ],
        events
            .iter()
            .map(|e| {
                let reason: String = e.reason.chars().take(80).collect();
                vec![
                    e.seq.to_string(),
                    time(e.time_ms),
                    e.user.clone(),
                    e.role.clone(),
                    e.tenant.clone(),
                    e.action.clone(),
                    e.object.clone(),
                    e.outcome.clone(),
                    reason,
                ]
            })
            .collect(),
    )
}

/// Lineage for people: the jobs, their sources, the downloads.
fn lineage_text(l: &pb::LineageResponse) -> String {
    let jobs = table(
        &[
            "job",
            "state",
            "tenant",
            "analyst",
            "reviewed by",
            "review reason",
            "release",
            "rows released",
        ],
        l.jobs
            .iter()
            .map(|j| {
                let withheld = j.withheld.len() as u64;
                vec![
                    j.id.clone(),
                    j.state.clone(),
                    j.tenant.clone(),
                    j.submitted_by.clone(),
                    if j.approvals.is_empty() {
                        j.reviewed_by.clone()
                    } else {
                        j.approvals.join(", ")
                    },
                    j.review_reason.clone(),
                    j.release_id.clone(),
                    j.report
                        .as_ref()
                        .map(|r| {
                            let mut s = format!(
                                "{} of {} ({})",
                                r.rows_released.saturating_sub(withheld),
                                r.rows_computed,
                                r.outcome
                            );
                            if withheld > 0 {
                                s += &format!(", {withheld} withheld at approval");
                            }
                            s
                        })
                        .unwrap_or_default(),
                ]
            })
            .collect(),
    );
    let withheld: String = l
        .jobs
        .iter()
        .filter(|j| !j.withheld.is_empty())
        .map(|j| {
            format!(
                "withheld from {} at approval — {}\n",
                j.release_id,
                crate::review_view::withheld_summary(&j.withheld)
            )
        })
        .collect();
    let downloads = table(
        &["job", "downloaded by", "at"],
        l.downloads
            .iter()
            .map(|d| vec![d.job.clone(), d.user.clone(), time(d.time_ms)])
            .collect(),
    );
    format!(
        "datasets: {}\ncolumns: {}\n{jobs}\n{withheld}downloads:\n{downloads}",
        l.datasets.join(", "),
        l.columns.join(", ")
    )
}

/// A response as the command line shows it: text for people (`--output table`), JSON for
/// programs (`--output json`).
pub trait Render: Serialize {
    /// A table or a few lines of text.
    fn text(&self) -> String;

    /// The message's serde form, unless the type has more to say.
    fn json(&self) -> Value {
        // Serializing a message into a Value cannot fail: no maps with non-string keys.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl Render for pb::User {
    fn text(&self) -> String {
        users_table(std::slice::from_ref(self))
    }
}

impl Render for [pb::User] {
    fn text(&self) -> String {
        users_table(self)
    }
}

impl Render for pb::Dataset {
    fn text(&self) -> String {
        dataset_detail(self)
    }
}

impl Render for pb::DatasetDeleted {
    fn text(&self) -> String {
        format!(
            "deleted {} ({}): {} version(s), {} file(s) removed, data keys destroyed",
            self.name, self.id, self.versions, self.files_removed
        )
    }
}

impl Render for [pb::Dataset] {
    fn text(&self) -> String {
        datasets_table(self)
    }
}

impl Render for pb::PlanVerdict {
    fn text(&self) -> String {
        verdict_detail(self)
    }
}

impl Render for pb::Job {
    fn text(&self) -> String {
        job_detail(self)
    }
}

impl Render for [pb::Job] {
    fn text(&self) -> String {
        jobs_table(self)
    }
}

impl Render for [pb::QualityRequest] {
    fn text(&self) -> String {
        quality_table(self)
    }
}

impl Render for pb::Tenant {
    fn text(&self) -> String {
        tenant_text(self)
    }
}

impl Render for [pb::Tenant] {
    fn text(&self) -> String {
        self.iter().map(tenant_text).collect::<Vec<_>>().join("\n")
    }
}

impl Render for pb::Scenario {
    fn text(&self) -> String {
        scenario_text(self)
    }
}

impl Render for [pb::Scenario] {
    fn text(&self) -> String {
        self.iter()
            .map(scenario_text)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Render for pb::Budget {
    fn text(&self) -> String {
        format!(
            "scenario {}: ε spent {:.4} of {} ({:.4} left) over {} queries; δ spent {:e} of {:e}",
            self.scenario,
            self.epsilon_spent,
            self.epsilon_total,
            self.epsilon_left,
            self.queries,
            self.delta_spent,
            self.delta_total
        )
    }
}

impl Render for pb::Report {
    fn text(&self) -> String {
        report_markdown(self, crate::lang::Lang::current())
    }
}

impl Render for [pb::AuditEvent] {
    fn text(&self) -> String {
        audit_table(self)
    }
}

impl Render for pb::Checkpoint {
    /// The JSON itself: a checkpoint is kept outside the platform, whole.
    fn text(&self) -> String {
        serde_json::to_string_pretty(&self.json()).unwrap_or_default()
    }

    /// The signature covers `time_ms`, so the number stays; `time` is for people.
    fn json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("time".into(), Value::String(time(self.time_ms)));
        }
        v
    }
}

impl Render for pb::VerifyAuditResponse {
    fn text(&self) -> String {
        self.detail.clone()
    }
}

impl Render for pb::LineageResponse {
    fn text(&self) -> String {
        lineage_text(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_active_tenant_outside_its_agreement_is_not_shown_as_active() {
        let today = chrono::NaiveDate::from_ymd_opt(2025, 6, 1).unwrap_or_default();
        let t = |start: &str, end: &str| pb::Tenant {
            status: "active".into(),
            start: start.into(),
            end: end.into(),
            ..Default::default()
        };
        assert_eq!(
            tenant_standing(&t("2025-07-01", "2026-06-30"), today),
            "pending until 2025-07-01"
        );
        assert_eq!(
            tenant_standing(&t("2024-01-01", "2025-05-31"), today),
            "agreement ended 2025-05-31"
        );
        assert_eq!(
            tenant_standing(&t("2025-06-01", "2025-06-01"), today),
            "active"
        );
    }
}
