//! Printing results: pretty tables for people, JSON for programs.

use arrow::record_batch::RecordBatch;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use erhai_proto::v1 as pb;

/// Output format chosen with `--output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Pretty tables.
    Table,
    /// JSON.
    Json,
}

/// A table of rows with headers.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
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

/// A time for people (UTC, `YYYY-MM-DD HH:MM:SS`); empty for 0.
pub fn time(ms: i64) -> String {
    if ms == 0 {
        return String::new();
    }
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// A user as JSON.
pub fn user_json(u: &pb::User) -> Value {
    json!({"id": u.id, "name": u.name, "role": u.role, "tenant": u.tenant, "unit": u.unit, "expires_at": time(u.expires_at_ms), "disabled": u.disabled})
}

/// Users as a table.
pub fn users_table(users: &[pb::User]) -> String {
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

/// A dataset as JSON.
pub fn dataset_json(d: &pb::Dataset) -> Value {
    json!({
        "id": d.id, "name": d.name, "description": d.description, "provider_unit": d.provider_unit,
        "registered_by": d.registered_by, "version": d.version, "rows": d.rows, "privacy_unit": d.privacy_unit,
        "created_at": time(d.created_at_ms), "dev_sample_rows": d.dev_sample_rows,
        "dev_sample_rule": d.dev_sample_rule,
        "columns": d.columns.iter().map(|c| json!({
            "name": c.name, "type": c.data_type, "kind": c.kind, "grade": c.grade, "uses": c.uses,
            "aggregate_functions": c.aggregate_functions, "masks": c.masks, "personal": c.personal, "sensitive_personal": c.sensitive_personal,
            "sample": c.sample,
        })).collect::<Vec<_>>(),
    })
}

/// Datasets as a table.
pub fn datasets_table(ds: &[pb::Dataset]) -> String {
    table(
        &[
            "id",
            "name",
            "provider unit",
            "version",
            "rows",
            "privacy unit",
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
                ]
            })
            .collect(),
    )
}

/// One dataset's schema and policy as a table.
pub fn dataset_detail(d: &pb::Dataset) -> String {
    let head = format!(
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

/// A plan verdict as JSON.
pub fn verdict_json(v: &pb::PlanVerdict) -> Value {
    json!({
        "allowed": v.allowed,
        "columns": v.columns.iter().map(|c| json!({"column": c.column, "sources": c.sources, "derivation": c.derivation, "allowed": c.allowed, "rule": c.rule})).collect::<Vec<_>>(),
        "refusals": v.refusals.iter().map(|r| json!({"column": r.column, "use": r.r#use, "rule": r.rule, "message": r.message})).collect::<Vec<_>>(),
    })
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
pub fn verdict_detail(v: &pb::PlanVerdict) -> String {
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

/// A job as JSON.
pub fn job_json(j: &pb::Job) -> Value {
    json!({
        "id": j.id, "tenant": j.tenant, "submitted_by": j.submitted_by, "sql": j.sql, "state": j.state,
        "error": j.error, "submitted_at": time(j.submitted_at_ms), "finished_at": time(j.finished_at_ms),
        "reviewed_by": j.reviewed_by, "review_reason": j.review_reason, "reviewed_at": time(j.reviewed_at_ms),
        "datasets": j.datasets, "env": j.env, "promoted_from": j.promoted_from,
        "scenario": j.scenario, "epsilon": j.epsilon, "release_id": j.release_id, "result_sha256": j.result_sha256,
        "approvals": j.approvals, "approvals_needed": j.approvals_needed,
        "verdict": j.verdict.as_ref().map(verdict_json),
        "report": j.report.as_ref().map(|r| json!({
            "outcome": r.outcome, "rows_computed": r.rows_computed, "rows_released": r.rows_released,
            "rows_suppressed": r.rows_suppressed, "rows_review": r.rows_review, "threshold_k": r.threshold_k,
            "rules": r.rules, "notes": r.notes,
            "job_findings": r.job_findings.iter().map(finding_json).collect::<Vec<_>>(),
            "rows": r.rows.iter().map(|x| json!({
                "row": x.row, "outcome": x.outcome,
                "released_row": (x.released_row >= 0).then_some(x.released_row),
                "findings": x.findings.iter().map(finding_json).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })),
    })
}

fn finding_json(f: &pb::Finding) -> Value {
    json!({"verdict": f.verdict, "rule": f.rule, "message": f.message})
}

/// Jobs as a table.
pub fn jobs_table(jobs: &[pb::Job]) -> String {
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
pub fn job_detail(j: &pb::Job) -> String {
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
        s += &report_rows(r, "review", "to review", 50);
        s += &report_rows(r, "fail", "suppressed", 10);
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

/// The reviewer's preview: the rows that would be released, each marked `pass` or
/// `REVIEW (rules)` in a leading `check` column.
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
        at += b.num_rows() as i64;
        let mut fields = vec![arrow::datatypes::Field::new(
            "check",
            arrow::datatypes::DataType::Utf8,
            false,
        )];
        fields.extend(b.schema().fields().iter().map(|f| f.as_ref().clone()));
        let mut columns: Vec<arrow::array::ArrayRef> = vec![std::sync::Arc::new(check)];
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

/// The rows of a report: (label, value), in order.
fn report_figures(r: &pb::Report) -> Vec<(&'static str, String)> {
    vec![
        (
            "production queries submitted",
            r.production_queries.to_string(),
        ),
        ("  refused before running", r.production_refused.to_string()),
        ("  run (checked, to review)", r.production_run.to_string()),
        ("development queries (samples)", r.dev_queries.to_string()),
        ("results released", r.releases.to_string()),
        ("rows released", r.rows_released.to_string()),
        ("results rejected by review", r.rejected.to_string()),
        ("data-quality requests filed", r.quality_filed.to_string()),
        ("data-quality requests closed", r.quality_closed.to_string()),
        ("social data fused", r.social_data.clone()),
    ]
}

/// A tenant's report as Markdown.
pub fn report_markdown(r: &pb::Report) -> String {
    let mut s = format!(
        "# Periodic report — {}\n\nPeriod {} to {}. Agreement: {} (status {}). Generated {} by {}.\n\n## Figures\n\n| | |\n| --- | ---: |\n",
        r.tenant,
        r.from,
        r.to,
        r.agreement,
        r.status,
        time(r.generated_at_ms),
        r.generated_by.join(", ")
    );
    for (k, v) in report_figures(r) {
        s += &format!("| {k} | {v} |\n");
    }
    s += "\n## Data authorized\n\n";
    for d in &r.datasets_authorized {
        s += &format!("- {d}\n");
    }
    s += "\n## Scenarios\n\n| scenario | domain | status | valid | title |\n| --- | --- | --- | --- | --- |\n";
    for sc in &r.scenarios {
        s += &format!(
            "| {} | {} | {} | {} to {} | {} |\n",
            sc.name, sc.domain, sc.status, sc.valid_from, sc.valid_to, sc.title
        );
    }
    s += "\n## Violations and rectifications\n\n";
    if r.violations.is_empty() {
        s += "None in the period.\n";
    }
    for v in &r.violations {
        s += &format!("- {} {} by {}: {}\n", time(v.at_ms), v.what, v.by, v.reason);
    }
    s
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A tenant's report as a standalone HTML document.
pub fn report_html(r: &pb::Report) -> String {
    let e = |s: &str| html_escape(s);
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"zh\"><head><meta charset=\"utf-8\"><title>Periodic report — {}</title></head><body>\n<h1>Periodic report — {}</h1>\n<p>Period {} to {}. Agreement: {} (status {}). Generated {} by {}.</p>\n<h2>Figures</h2>\n<table>\n",
        e(&r.tenant),
        e(&r.tenant),
        e(&r.from),
        e(&r.to),
        e(&r.agreement),
        e(&r.status),
        e(&time(r.generated_at_ms)),
        e(&r.generated_by.join(", "))
    );
    for (k, v) in report_figures(r) {
        s += &format!("<tr><th>{}</th><td>{}</td></tr>\n", e(k.trim()), e(&v));
    }
    s += "</table>\n<h2>Data authorized</h2>\n<ul>\n";
    for d in &r.datasets_authorized {
        s += &format!("<li>{}</li>\n", e(d));
    }
    s += "</ul>\n<h2>Scenarios</h2>\n<table>\n<tr><th>scenario</th><th>domain</th><th>status</th><th>valid</th><th>title</th></tr>\n";
    for sc in &r.scenarios {
        s += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} to {}</td><td>{}</td></tr>\n",
            e(&sc.name),
            e(&sc.domain),
            e(&sc.status),
            e(&sc.valid_from),
            e(&sc.valid_to),
            e(&sc.title)
        );
    }
    s += "</table>\n<h2>Violations and rectifications</h2>\n<ul>\n";
    for v in &r.violations {
        s += &format!(
            "<li>{} {} by {}: {}</li>\n",
            e(&time(v.at_ms)),
            e(&v.what),
            e(&v.by),
            e(&v.reason)
        );
    }
    s + "</ul>\n</body></html>\n"
}

/// A tenant's report as JSON.
pub fn report_json(r: &pb::Report) -> Value {
    json!({
        "tenant": r.tenant, "from": r.from, "to": r.to, "status": r.status, "agreement": r.agreement,
        "datasets_authorized": r.datasets_authorized,
        "scenarios": r.scenarios.iter().map(scenario_json).collect::<Vec<_>>(),
        "production_queries": r.production_queries, "production_refused": r.production_refused,
        "production_run": r.production_run, "dev_queries": r.dev_queries, "releases": r.releases,
        "rows_released": r.rows_released, "rejected": r.rejected,
        "quality_filed": r.quality_filed, "quality_closed": r.quality_closed,
        "violations": r.violations.iter().map(|v| json!({"what": v.what, "by": v.by, "reason": v.reason, "at": time(v.at_ms)})).collect::<Vec<_>>(),
        "social_data": r.social_data, "generated_at": time(r.generated_at_ms), "generated_by": r.generated_by,
    })
}

/// Data-quality requests as a table.
pub fn quality_table(list: &[pb::QualityRequest]) -> String {
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

/// A data-quality request as JSON.
pub fn quality_json(q: &pb::QualityRequest) -> Value {
    json!({
        "id": q.id, "status": q.status, "age_days": q.age_days, "dataset": q.dataset, "unit": q.unit,
        "column": q.column, "issue": q.issue, "filed_by": q.filed_by, "tenant": q.tenant,
        "filed_at": time(q.filed_at_ms), "answer": q.answer, "answered_by": q.answered_by,
        "closed_at": time(q.closed_at_ms),
    })
}

/// A tenant for people: status, agreement, history.
pub fn tenant_text(t: &pb::Tenant) -> String {
    let mut s = format!(
        "tenant {} — {} ({}){}\n",
        t.name,
        t.title,
        t.status,
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

/// A tenant as JSON.
pub fn tenant_json(t: &pb::Tenant) -> Value {
    json!({
        "name": t.name, "title": t.title, "status": t.status, "start": t.start, "end": t.end,
        "created_by": t.created_by, "created_at": time(t.created_at_ms),
        "history": t.history.iter().map(|h| json!({"what": h.what, "status": h.status, "by": h.by, "reason": h.reason, "at": time(h.at_ms)})).collect::<Vec<_>>(),
    })
}

/// A scenario for people.
pub fn scenario_text(s: &pb::Scenario) -> String {
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

/// A scenario as JSON.
pub fn scenario_json(s: &pb::Scenario) -> Value {
    json!({
        "name": s.name, "tenant": s.tenant, "title": s.title, "k": s.k,
        "second_reviewer": s.second_reviewer, "created_by": s.created_by, "created_at": time(s.created_at_ms),
        "status": s.status, "purpose": s.purpose, "domain": s.domain, "outputs": s.outputs,
        "valid_from": s.valid_from, "valid_to": s.valid_to, "deadline": s.deadline, "pending_units": s.pending_units,
        "columns": s.columns.iter().map(|c| json!({"dataset": c.dataset, "column": c.column, "justification": c.justification, "approved": c.approved})).collect::<Vec<_>>(),
        "reviews": s.reviews.iter().map(|r| json!({"stage": r.stage, "by": r.by, "approve": r.approve, "reason": r.reason, "at": time(r.at_ms), "removed": r.removed})).collect::<Vec<_>>(),
        "dp": s.dp.as_ref().map(|d| json!({
            "epsilon_total": d.epsilon_total, "delta_total": d.delta_total,
            "epsilon_per_query": d.epsilon_per_query, "delta_per_query": d.delta_per_query,
            "max_groups_per_unit": d.max_groups_per_unit, "max_rows_per_unit": d.max_rows_per_unit,
        })),
    })
}

/// Audit events as JSON.
pub fn audit_json(events: &[pb::AuditEvent]) -> Value {
    Value::Array(
        events
            .iter()
            .map(|e| json!({"seq": e.seq, "time": time(e.time_ms), "user": e.user, "role": e.role, "tenant": e.tenant, "action": e.action, "object": e.object, "outcome": e.outcome, "reason": e.reason, "digest": e.digest, "prev_hash": e.prev_hash, "hash": e.hash}))
            .collect(),
    )
}

/// Audit events as a table.
pub fn audit_table(events: &[pb::AuditEvent]) -> String {
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

/// Lineage as JSON.
pub fn lineage_json(l: &pb::LineageResponse) -> Value {
    json!({
        "jobs": l.jobs.iter().map(job_json).collect::<Vec<_>>(),
        "datasets": l.datasets,
        "columns": l.columns,
        "downloads": l.downloads.iter().map(|d| json!({"job": d.job, "user": d.user, "time": time(d.time_ms)})).collect::<Vec<_>>(),
    })
}

/// Lineage for people: the jobs, their sources, the downloads.
pub fn lineage_text(l: &pb::LineageResponse) -> String {
    let jobs = table(
        &[
            "job",
            "state",
            "tenant",
            "analyst",
            "reviewed by",
            "review reason",
            "rows released",
        ],
        l.jobs
            .iter()
            .map(|j| {
                vec![
                    j.id.clone(),
                    j.state.clone(),
                    j.tenant.clone(),
                    j.submitted_by.clone(),
                    j.reviewed_by.clone(),
                    j.review_reason.clone(),
                    j.report
                        .as_ref()
                        .map(|r| {
                            format!("{} of {} ({})", r.rows_released, r.rows_computed, r.outcome)
                        })
                        .unwrap_or_default(),
                ]
            })
            .collect(),
    );
    let downloads = table(
        &["job", "downloaded by", "at"],
        l.downloads
            .iter()
            .map(|d| vec![d.job.clone(), d.user.clone(), time(d.time_ms)])
            .collect(),
    );
    format!(
        "datasets: {}\ncolumns: {}\n{jobs}\ndownloads:\n{downloads}",
        l.datasets.join(", "),
        l.columns.join(", ")
    )
}
