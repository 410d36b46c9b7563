//! Conversions from records to the wire types.

use std::str::FromStr;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use erhai_engine::{CheckReport, Env, StoredTable};
use erhai_policies::PlanVerdict;
use erhai_proto::v1 as pb;
use tonic::Status;

use crate::state::{DatasetRecord, JobRecord, JobState, StoredField, UserRecord};

pub fn user(u: &UserRecord) -> pb::User {
    pb::User {
        id: u.id.clone(),
        name: u.name.clone(),
        role: u.role.name().into(),
        tenant: u.tenant.clone().unwrap_or_default(),
        unit: u.unit.clone().unwrap_or_default(),
        expires_at_ms: u.expires_at_ms.unwrap_or(0),
        disabled: u.disabled,
        cert_sha256: u.cert_sha256.clone(),
    }
}

pub fn dataset(d: &DatasetRecord) -> pb::Dataset {
    let import_status = match (&d.social_tenant, &d.import_approved) {
        (None, _) => "",
        (Some(_), None) => "pending",
        (Some(_), Some(_)) => "approved",
    };
    let columns = d
        .fields
        .iter()
        .map(|f| {
            let p = d.policy.column(&f.name);
            pb::ColumnInfo {
                name: f.name.clone(),
                data_type: f.data_type.clone(),
                nullable: f.nullable,
                kind: p.map(|p| p.kind.name().to_string()).unwrap_or_default(),
                grade: p.map(|p| p.grade.name().to_string()).unwrap_or_default(),
                uses: p
                    .map(|p| p.uses.iter().map(|u| u.name().to_string()).collect())
                    .unwrap_or_default(),
                aggregate_functions: p
                    .map(|p| p.aggregate_functions.iter().cloned().collect())
                    .unwrap_or_default(),
                personal: p.is_some_and(|p| p.personal),
                sensitive_personal: p.is_some_and(|p| p.sensitive_personal),
                masks: p
                    .map(|p| p.masks.iter().map(|m| m.to_string()).collect())
                    .unwrap_or_default(),
                sample: erhai_policies::dev_sample::treatment(&f.name, &f.data_type, &d.policy)
                    .describe(),
            }
        })
        .collect();
    let treated: Vec<(String, erhai_policies::dev_sample::Treatment)> = d
        .fields
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                erhai_policies::dev_sample::treatment(&f.name, &f.data_type, &d.policy),
            )
        })
        .collect();
    let quasi = erhai_policies::dev_sample::quasi_identifiers(&treated, &d.policy);
    let dev_sample_rule = format!(
        "a sample of at most {:.0}% of the rows (none for fewer than {}), desensitized column by \
         column; rows whose combination of {} is shared by fewer than {} sample rows are left out",
        erhai_policies::dev_sample::MAX_SHARE * 100.0,
        erhai_policies::dev_sample::MIN_ROWS,
        if quasi.is_empty() {
            "quasi-identifiers (none here)".to_string()
        } else {
            quasi.join(", ")
        },
        erhai_policies::dev_sample::SAMPLE_K
    );
    pb::Dataset {
        id: d.id.clone(),
        name: d.name.clone(),
        description: d.description.clone(),
        provider_unit: d.provider_unit.clone(),
        registered_by: d.registered_by.clone(),
        version: d.version,
        rows: d.rows,
        privacy_unit: d.policy.privacy_unit.clone(),
        columns,
        created_at_ms: d.created_at_ms,
        dev_sample_rows: d.dev.as_ref().map_or(0, |s| s.rows),
        social_tenant: d.social_tenant.clone().unwrap_or_default(),
        import_status: import_status.into(),
        dev_sample_rule,
        retired: d.retired.as_ref().map(|r| pb::Retirement {
            by: r.by.clone(),
            at_ms: r.at_ms,
            reason: r.reason.clone(),
        }),
        earlier_versions: d
            .earlier
            .iter()
            .map(|v| pb::DatasetVersion {
                version: v.version,
                rows: v.rows,
                registered_by: v.registered_by.clone(),
                created_at_ms: v.created_at_ms,
            })
            .collect(),
        policy_changes: Vec::new(),
    }
}

pub fn verdict(v: &PlanVerdict) -> pb::PlanVerdict {
    pb::PlanVerdict {
        allowed: v.allowed(),
        columns: v
            .columns
            .iter()
            .map(|c| pb::ColumnVerdict {
                column: c.column.clone(),
                sources: c.sources.clone(),
                derivation: c.derivation.clone(),
                allowed: c.allowed,
                rule: c.rule.clone(),
            })
            .collect(),
        refusals: v
            .refusals
            .iter()
            .map(|r| pb::Refusal {
                column: r.source.to_string(),
                r#use: r.use_.name().into(),
                rule: r.rule.clone(),
                message: r.message.clone(),
            })
            .collect(),
    }
}

fn finding(f: &erhai_policies::Finding) -> pb::Finding {
    pb::Finding {
        verdict: f.verdict.name().into(),
        rule: f.rule.clone(),
        message: f.message.clone(),
        about: f.reason().to_string(),
    }
}

pub fn report(r: &CheckReport) -> pb::CheckReport {
    pb::CheckReport {
        rows_computed: r.rows_computed,
        rows_released: r.rows_released,
        rows_suppressed: r.rows_suppressed,
        rows_review: r.rows_review,
        threshold_k: r.threshold_k,
        outcome: r.outcome().name().into(),
        rows: r
            .rows
            .iter()
            .map(|x| pb::RowCheck {
                row: x.row,
                outcome: x.verdict.name().into(),
                reasons: x
                    .findings
                    .iter()
                    .map(|f| format!("{}: {}", f.rule, f.message))
                    .collect(),
                released_row: x
                    .released_row
                    .and_then(|r| i64::try_from(r).ok())
                    .unwrap_or(-1),
                findings: x.findings.iter().map(finding).collect(),
            })
            .collect(),
        notes: r.notes.clone(),
        job_findings: r.job_findings.iter().map(finding).collect(),
        rules: r.rules.clone(),
    }
}

/// A job as `role` may see it. Before a reviewer has decided, nothing data-dependent reaches an
/// analyst (or a provider tracing its data's use): an accepted job is "awaiting review" from the
/// moment the plan check accepts it until a reviewer decides — whether it is still running,
/// failed, or had every row suppressed — and no check report, error text or finishing time is
/// shown at any point (counts of computed or suppressed rows, or an error that depends on the
/// values, would answer questions about the data; so would the time it took). After the
/// decision the analyst sees released, rejected or failed, and the reviewer's reason. In
/// differential-privacy mode nothing un-noised reaches anyone but the auditor: reviewers see no
/// exact counts. A run that failed shows, once a reviewer has closed it, as rejected. The
/// redaction is part of the only conversion of a job, so no handler can forget it.
pub fn job(j: &JobRecord, role: crate::authz::Role) -> pb::Job {
    redact_for(role, j, full_job(j))
}

/// Whether the plan check accepted `j` for execution in production: from then on its state
/// depends on the data.
pub fn accepted(j: &JobRecord) -> bool {
    !j.dev && j.state != JobState::Refused && j.verdict.as_ref().is_some_and(|v| v.allowed())
}

fn redact_for(role: crate::authz::Role, j: &JobRecord, mut job: pb::Job) -> pb::Job {
    use crate::authz::Role;
    match role {
        Role::Analyst | Role::Provider if accepted(j) => {
            job.report = None;
            // Which rows a release left out, and why, depends on the data.
            job.withheld.clear();
            job.suppress_flagged = false;
            job.finished_at_ms = 0;
            job.error.clear();
            if j.reviewed_by.is_none() {
                job.state = JobState::AwaitingReview.name().into();
            } else if j.state == JobState::Failed {
                // Closed by a reviewer: not released, like a rejection (whether the run failed
                // may depend on the values).
                job.state = JobState::Rejected.name().into();
            }
        }
        Role::Analyst | Role::Provider => job.report = None,
        Role::Reviewer | Role::Center | Role::Authority | Role::Admin if j.epsilon.is_some() => {
            if let Some(r) = job.report.as_mut() {
                r.rows_computed = 0;
                r.rows_suppressed = 0;
                r.notes.clear();
                r.rows.retain(|x| x.outcome != "fail");
            }
        }
        _ => {}
    }
    job
}

fn full_job(j: &JobRecord) -> pb::Job {
    pb::Job {
        id: j.id.clone(),
        tenant: j.tenant.clone(),
        submitted_by: j.submitted_by.clone(),
        sql: j.sql.clone(),
        state: j.state.name().into(),
        error: j.error.clone().unwrap_or_default(),
        verdict: j.verdict.as_ref().map(verdict),
        report: j.report.as_ref().map(report),
        submitted_at_ms: j.submitted_at_ms,
        finished_at_ms: j.finished_at_ms.unwrap_or(0),
        reviewed_by: j.reviewed_by.clone().unwrap_or_default(),
        review_reason: j.review_reason.clone().unwrap_or_default(),
        reviewed_at_ms: j.reviewed_at_ms.unwrap_or(0),
        release_id: j.release.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
        result_sha256: j
            .release
            .as_ref()
            .map(|r| r.result_sha256.clone())
            .unwrap_or_default(),
        approvals: j.approvals.iter().map(|a| a.by.clone()).collect(),
        approvals_needed: j.approvals_needed,
        scenario: j.scenario.clone().unwrap_or_default(),
        epsilon: j.epsilon.unwrap_or(0.0),
        datasets: j.datasets.clone(),
        env: if j.dev { "dev" } else { "prod" }.into(),
        promoted_from: j.promoted_from.clone().unwrap_or_default(),
        dataset_versions: j.dataset_versions.clone(),
        suppress_flagged: j.approvals.first().is_some_and(|a| a.suppress_flagged),
        withheld: j
            .release
            .iter()
            .flat_map(|r| r.withheld.iter())
            .map(|w| pb::WithheldRow {
                row: w.row,
                reviewed_row: w.reviewed_row,
                rule: w.rule.clone(),
                reason: w.reason.clone(),
            })
            .collect(),
    }
}

/// The table a job reads for dataset `d` in `env`: the data itself, or its development sample
/// (`None` when it has none).
pub fn stored_table(d: &DatasetRecord, env: Env) -> Result<Option<StoredTable>, Status> {
    let (wrapped_key, fields, policy) = match (env, &d.dev) {
        (Env::Prod, _) => (&d.wrapped_key, &d.fields, &d.policy),
        (Env::Dev, Some(s)) => (&s.wrapped_key, &s.fields, &s.policy),
        (Env::Dev, None) => return Ok(None),
    };
    Ok(Some(StoredTable {
        name: d.name.clone(),
        dataset_id: d.id.clone(),
        version: d.version,
        wrapped_key: wrapped_key.clone(),
        schema: schema(fields)?,
        policy: policy.clone(),
        env,
    }))
}

/// A schema as recorded in the store.
pub fn stored_fields(schema: &Schema) -> Vec<StoredField> {
    schema
        .fields()
        .iter()
        .map(|f| StoredField {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            nullable: f.is_nullable(),
        })
        .collect()
}

/// The Arrow schema recorded for a dataset.
pub fn schema(fields: &[StoredField]) -> Result<Arc<Schema>, Status> {
    let fields = fields
        .iter()
        .map(|f| {
            DataType::from_str(&f.data_type)
                .map(|t| Field::new(&f.name, t, f.nullable))
                .map_err(|e| {
                    Status::internal(format!(
                        "stored type of column {} is unreadable: {e}",
                        f.name
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// Encodes batches as one Arrow IPC stream.
pub fn ipc(schema: &Schema, batches: &[RecordBatch]) -> Result<Vec<u8>, Status> {
    let mut buf = Vec::new();
    {
        let mut w =
            StreamWriter::try_new(&mut buf, schema).map_err(|e| Status::internal(e.to_string()))?;
        for b in batches {
            w.write(b).map_err(|e| Status::internal(e.to_string()))?;
        }
        w.finish().map_err(|e| Status::internal(e.to_string()))?;
    }
    Ok(buf)
}
