//! Lineage from the records and the audit chain: where a dataset went, where a release came from.

use std::collections::{BTreeSet, HashSet};

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
        // Providers trace the jobs that read one of their unit's datasets, and see of those
        // jobs only their own datasets and columns (another unit's are not theirs to see).
        let own_datasets: Vec<(String, String)> = match user.role {
            Role::Provider => store
                .datasets()
                .map_err(internal)?
                .into_iter()
                .filter(|d| Some(&d.provider_unit) == user.unit.as_ref())
                .map(|d| (d.id, d.name))
                .collect(),
            _ => Vec::new(),
        };
        let own: HashSet<&String> = own_datasets.iter().map(|(id, _)| id).collect();
        let own_names: HashSet<&str> = own_datasets.iter().map(|(_, n)| n.as_str()).collect();
        let shown = |dataset: &str| user.role != Role::Provider || own_names.contains(dataset);
        let may_trace = |j: &JobRecord| match user.role {
            Role::Auditor | Role::Admin => true,
            Role::Analyst => user.tenant.as_deref() == Some(j.tenant.as_str()),
            Role::Provider => j.datasets.iter().any(|id| own.contains(id)),
            Role::Reviewer | Role::Center | Role::Authority => false,
        };
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
                    .filter(|j| j.datasets.contains(&dataset.id) && may_trace(j))
                    .collect()
            }
            ("", release) if release.starts_with("rel-") => {
                // A release is named after its job; only a released job is a release.
                let job = format!("job-{}", &release["rel-".len()..]);
                let j = store
                    .job(&job)
                    .map_err(internal)?
                    .filter(|j| may_trace(j) && j.release.as_ref().is_some_and(|r| r.id == release))
                    .ok_or_else(|| {
                        Status::not_found(format!(
                            "no release `{release}` visible to you (a release id is what its \
                             receipt names, rel-…; a job id works too)"
                        ))
                    })?;
                vec![j]
            }
            ("", job) if !job.is_empty() => {
                let j = store
                    .job(job)
                    .map_err(internal)?
                    .filter(|j| may_trace(j))
                    .ok_or_else(|| Status::not_found(format!("no job `{job}` visible to you")))?;
                vec![j]
            }
            _ => {
                return Err(Status::invalid_argument(
                    "give exactly one of --dataset or --release",
                ));
            }
        };
        // The versions the jobs read, `name@vN`; jobs recorded before versions read version 1.
        let mut datasets = BTreeSet::new();
        for j in &jobs {
            if !j.dataset_versions.is_empty() {
                datasets.extend(
                    j.dataset_versions
                        .iter()
                        .filter(|label| shown(label.split('@').next().unwrap_or(label)))
                        .cloned(),
                );
                continue;
            }
            for id in &j.datasets {
                if let Some(d) = store.dataset(id).map_err(internal)?
                    && shown(&d.name)
                {
                    datasets.insert(format!("{}@v1", d.name));
                }
            }
        }
        let columns: BTreeSet<String> = jobs
            .iter()
            .flat_map(|j| j.verdict.iter().flat_map(|v| v.columns.iter()))
            .flat_map(|c| c.sources.iter())
            .filter(|source| source.split_once('.').is_some_and(|(d, _)| shown(d)))
            .cloned()
            .collect();
        let fetches = self
            .0
            .audit
            .list(
                0,
                &EventFilter {
                    action: Some(Action::FetchRelease.name().into()),
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
            jobs: jobs
                .iter()
                .map(|j| {
                    let mut job = convert::job(j, user.role);
                    job.dataset_versions
                        .retain(|label| shown(label.split('@').next().unwrap_or(label)));
                    job
                })
                .collect(),
            datasets: datasets.into_iter().collect(),
            columns: columns.into_iter().collect(),
            downloads,
        })
    }
}
