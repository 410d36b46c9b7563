//! Lineage from the records and the audit chain: where a dataset went, where a release came from.

use std::collections::BTreeSet;

use erhai_proto::v1 as pb;
use tonic::Status;

use super::{Gateway, convert, internal};
use crate::audit::EventFilter;
use crate::authz::{Action, Role};
use crate::state::{JobRecord, UserRecord};

impl Gateway {
    pub(crate) fn lineage_inner(
        &self,
        user: &UserRecord,
        r: &pb::LineageRequest,
    ) -> Result<pb::LineageResponse, Status> {
        let store = &self.0.store;
        let jobs: Vec<JobRecord> = match (r.dataset.as_str(), r.release.as_str()) {
            (d, "") if !d.is_empty() => {
                // Only datasets the caller can see exist for them.
                let dataset = self
                    .visible_datasets(user)?
                    .into_iter()
                    .find(|x| x.id == d || x.name == d)
                    .ok_or_else(|| Status::not_found(format!("no dataset `{d}` visible to you")))?;
                store
                    .jobs()
                    .map_err(internal)?
                    .into_iter()
                    .filter(|j| j.datasets.contains(&dataset.id) && self.may_trace(user, j))
                    .collect()
            }
            ("", job) if !job.is_empty() => {
                let j = store
                    .job(job)
                    .map_err(internal)?
                    .filter(|j| self.may_trace(user, j))
                    .ok_or_else(|| Status::not_found(format!("no job `{job}` visible to you")))?;
                vec![j]
            }
            _ => {
                return Err(Status::invalid_argument(
                    "give exactly one of --dataset or --release",
                ));
            }
        };
        let mut datasets = BTreeSet::new();
        let mut columns = BTreeSet::new();
        for j in &jobs {
            for id in &j.datasets {
                if let Some(d) = store.dataset(id).map_err(internal)? {
                    datasets.insert(d.name);
                }
            }
            for c in j.verdict.iter().flat_map(|v| v.columns.iter()) {
                columns.extend(c.sources.iter().cloned());
            }
        }
        let fetches = self
            .0
            .audit
            .list(
                0,
                &EventFilter {
                    action: Some(Action::FetchRelease.name()),
                    ..Default::default()
                },
            )
            .map_err(internal)?;
        let downloads = fetches
            .into_iter()
            .filter(|e| e.outcome == "allowed" && jobs.iter().any(|j| j.id == e.object))
            .map(|e| pb::Download {
                job: e.object,
                user: e.user,
                time_ms: e.time_ms,
            })
            .collect();
        Ok(pb::LineageResponse {
            jobs: jobs.iter().map(convert::job).collect(),
            datasets: datasets.into_iter().collect(),
            columns: columns.into_iter().collect(),
            downloads,
        })
    }

    /// Whose jobs a caller may trace: auditors and admins all, analysts their tenant's,
    /// providers those that read one of their unit's datasets.
    fn may_trace(&self, user: &UserRecord, j: &JobRecord) -> bool {
        match user.role {
            Role::Auditor | Role::Admin => true,
            Role::Analyst => user.tenant.as_deref() == Some(j.tenant.as_str()),
            Role::Provider => j.datasets.iter().any(|id| {
                matches!(self.0.store.dataset(id), Ok(Some(d)) if Some(&d.provider_unit) == user.unit.as_ref())
            }),
            Role::Reviewer => false,
        }
    }
}
