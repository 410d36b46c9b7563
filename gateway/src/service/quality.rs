//! Data-quality requests: filed by analysts on datasets they may use, answered by the unit that
//! owns the dataset, watched by the authority.

use erhai_proto::v1 as pb;
use tonic::Status;

use super::{Gateway, internal};
use crate::authz::Role;
use crate::quality::QualityRecord;
use crate::state::{UserRecord, now_ms};

const DAY_MS: i64 = 24 * 3600 * 1000;

fn to_pb(r: &QualityRecord, now: i64) -> pb::QualityRequest {
    let until = r.closed_at_ms.unwrap_or(now);
    pb::QualityRequest {
        id: r.id.clone(),
        dataset: r.dataset.clone(),
        column: r.column.clone(),
        issue: r.issue.clone(),
        filed_by: r.filed_by.clone(),
        tenant: r.tenant.clone(),
        filed_at_ms: r.filed_at_ms,
        unit: r.unit.clone(),
        answer: r.answer.clone().unwrap_or_default(),
        answered_by: r.answered_by.clone().unwrap_or_default(),
        closed_at_ms: r.closed_at_ms.unwrap_or(0),
        status: if r.open() { "open" } else { "closed" }.into(),
        age_days: u32::try_from(((until - r.filed_at_ms).max(0)) / DAY_MS).unwrap_or(u32::MAX),
    }
}

fn text(s: &str, what: &str) -> Result<String, Status> {
    let t = s.trim();
    if t.is_empty() {
        return Err(Status::invalid_argument(format!("{what} is required")));
    }
    if t.chars().count() > 4000 {
        return Err(Status::invalid_argument(format!(
            "{what} is longer than 4000 characters"
        )));
    }
    Ok(t.to_string())
}

impl Gateway {
    pub(crate) fn file_quality_inner(
        &self,
        user: &UserRecord,
        r: &pb::QualityRequest,
    ) -> Result<pb::QualityRequest, Status> {
        let tenant = Self::tenant_of(user)?.to_string();
        let issue = text(&r.issue, "a description of the issue")?;
        let d = self
            .visible_datasets(user)?
            .into_iter()
            .find(|d| d.name == r.dataset || d.id == r.dataset)
            .ok_or_else(|| {
                Status::not_found(format!("no dataset `{}` visible to you", r.dataset))
            })?;
        // Feedback comes from use: the dataset is requested in one of the tenant's scenarios.
        let in_scenario = self
            .0
            .scenarios
            .all()
            .map_err(internal)?
            .iter()
            .filter(|s| s.tenant == tenant)
            .any(|s| s.requested.iter().any(|c| c.dataset == d.name));
        if !in_scenario {
            return Err(Status::failed_precondition(format!(
                "{} is in none of your tenant's scenarios: data-quality requests come from use",
                d.name
            )));
        }
        let column = r.column.trim().to_string();
        if !column.is_empty() && !d.fields.iter().any(|f| f.name == column) {
            return Err(Status::invalid_argument(format!(
                "dataset {} has no column `{column}`",
                d.name
            )));
        }
        let record = QualityRecord {
            id: self.0.store.new_id("dq").map_err(internal)?,
            dataset_id: d.id.clone(),
            dataset: d.name.clone(),
            unit: d.provider_unit.clone(),
            column,
            issue,
            filed_by: user.id.clone(),
            tenant,
            filed_at_ms: now_ms(),
            answer: None,
            answered_by: None,
            closed_at_ms: None,
        };
        self.0.quality.put(&record).map_err(internal)?;
        self.0.store.flush().map_err(internal)?;
        Ok(to_pb(&record, now_ms()))
    }

    /// Requests `user` may see: analysts their tenant's, providers their unit's, the
    /// authority, the center and auditors all.
    fn sees_quality(user: &UserRecord, r: &QualityRecord) -> bool {
        match user.role {
            Role::Analyst => user.tenant.as_deref() == Some(r.tenant.as_str()),
            Role::Provider => user.unit.as_deref() == Some(r.unit.as_str()),
            Role::Authority | Role::Center | Role::Auditor => true,
            Role::Admin | Role::Reviewer => false,
        }
    }

    pub(crate) fn list_quality_inner(
        &self,
        user: &UserRecord,
        open_only: bool,
    ) -> Result<pb::ListQualityResponse, Status> {
        let now = now_ms();
        let mut all: Vec<QualityRecord> = self
            .0
            .quality
            .all()
            .map_err(internal)?
            .into_iter()
            .filter(|r| Self::sees_quality(user, r) && (!open_only || r.open()))
            .collect();
        // Oldest open first: what waits longest comes first.
        all.sort_by_key(|r| (!r.open(), r.filed_at_ms));
        Ok(pb::ListQualityResponse {
            requests: all.iter().map(|r| to_pb(r, now)).collect(),
        })
    }

    pub(crate) fn answer_quality_inner(
        &self,
        user: &UserRecord,
        r: &pb::QualityAnswer,
    ) -> Result<pb::QualityRequest, Status> {
        let answer = text(&r.answer, "an answer")?;
        let existing = self
            .0
            .quality
            .get(&r.id)
            .map_err(internal)?
            .filter(|q| Self::sees_quality(user, q))
            .ok_or_else(|| {
                Status::not_found(format!("no data-quality request `{}` for your unit", r.id))
            })?;
        let updated = self
            .0
            .quality
            .close(&existing.id, &answer, &user.id, now_ms())
            .map_err(internal)?;
        self.changed("data-quality request", &r.id, updated)
            .map(|q| to_pb(&q, now_ms()))
    }
}
