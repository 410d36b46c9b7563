//! The differencing check's view of the release ledger, the rules a job is held to, and the
//! re-check at approval: everything that decides whether a result may join the earlier
//! releases, in one place.

use std::collections::HashMap;

use erhai_engine::{Releases, ReleasesError};
use tonic::Status;

use super::{Gateway, engine_status, internal};
use crate::job_rules::JobRules;
use crate::state::{JobRecord, JobState, UserRecord, now_ms};

/// The ledger as a job's differencing check sees it: the datasets its query names, by id, and
/// the jobs released at the time of the check.
pub(crate) struct LedgerReleases {
    gateway: Gateway,
    job: String,
    /// Dataset name as the query saw it → dataset id.
    ids: HashMap<String, String>,
}

impl LedgerReleases {
    /// The dataset id of a dataset as the job's query named it.
    pub(crate) fn id_of(&self, name: &str) -> Option<String> {
        self.ids.get(name).cloned()
    }
}

impl Releases for LedgerReleases {
    fn lookup(
        &self,
        dataset: &str,
        units: &[u32],
    ) -> Result<(Vec<erhai_engine::EarlierRow>, bool), ReleasesError> {
        let Some(id) = self.ids.get(dataset) else {
            return Ok((Vec::new(), true));
        };
        let store = &self.gateway.0.store;
        self.gateway
            .0
            .ledger
            .lookup(
                id,
                units,
                &self.job,
                |job| matches!(store.job(job), Ok(Some(j)) if j.state == JobState::Released),
            )
            .map_err(ReleasesError::from)
    }

    fn audit(&self, dataset: &str) -> Result<Option<erhai_engine::LinearAudit>, ReleasesError> {
        let Some(id) = self.ids.get(dataset) else {
            return Ok(None);
        };
        let store = &self.gateway.0.store;
        self.gateway
            .0
            .ledger
            .audit(
                id,
                |job| matches!(store.job(job), Ok(Some(j)) if j.state == JobState::Released),
            )
            .map(Some)
            .map_err(ReleasesError::from)
    }
}

impl Gateway {
    /// The earlier releases a job's differencing check looks up: the ledger of each dataset
    /// it reads (`ids`: name in the query → dataset id), over jobs released now.
    pub(crate) fn releases_for(&self, job: &str, ids: HashMap<String, String>) -> LedgerReleases {
        LedgerReleases {
            gateway: self.clone(),
            job: job.to_string(),
            ids,
        }
    }

    /// The rules `job` is held to: those fixed at its submission; for a record from before
    /// they were, its scenario's as they are now (the platform's without a scenario).
    pub(crate) fn job_rules(&self, job: &JobRecord) -> JobRules {
        if let Some(rules) = &job.rules {
            return rules.clone();
        }
        let platform = self.0.engine.rules();
        let scenario = job
            .scenario
            .as_ref()
            .and_then(|name| self.0.scenarios.get(name).ok().flatten());
        match scenario {
            Some(s) => JobRules::of(
                platform,
                &self.0.cfg.release,
                &s,
                job.epsilon.unwrap_or(0.0),
            ),
            None => JobRules {
                release: platform.clone(),
                dp: None,
                epsilon: None,
                second_reviewer: self.0.cfg.release.second_reviewer,
            },
        }
    }

    /// Jobs released while this one awaited review may now form a differencing pair with it:
    /// the check runs again against the ledger as it is now (under the release lock, so two
    /// approvals cannot each miss the other). A new finding withdraws the job: it fails, the
    /// reviewer is told why, and the analyst may submit the query again (the new run is
    /// checked against every release, and suppresses exactly what it must).
    pub(crate) fn recheck_differencing(
        &self,
        job: &JobRecord,
        reviewer: &UserRecord,
    ) -> Result<(), Status> {
        if job.report.is_none() {
            return Ok(());
        }
        let rules = self.job_rules(job).release;
        let mut ids = Vec::new();
        for id in &job.datasets {
            if let Some(d) = self.0.store.dataset(id).map_err(internal)? {
                ids.push((d.id.clone(), d.name.clone()));
            }
        }
        let units = self.0.ledger.rows_of(&job.id, &ids).map_err(internal)?;
        let releases = self.releases_for(
            &job.id,
            ids.into_iter().map(|(id, name)| (name, id)).collect(),
        );
        let any_released = units
            .iter()
            .any(|u| u.row < erhai_engine::SUBQUERY_ROWS && u.released_row.is_some());
        let flags = erhai_engine::differencing_findings(&units, &rules, &releases)
            .map_err(|e| engine_status(&e))?;
        let new: Vec<_> = flags
            .into_iter()
            .filter(|(row, _)| {
                if *row >= erhai_engine::SUBQUERY_ROWS {
                    return any_released;
                }
                units
                    .iter()
                    .any(|u| u.row == *row && u.released_row.is_some())
            })
            .collect();
        let Some((_, first)) = new.first() else {
            return Ok(());
        };
        let why = format!(
            "withdrawn before approval: results released since it ran make {} of its row(s) \
             disclose by subtraction ({}); the query may be submitted again",
            new.len(),
            first.message
        );
        self.0
            .store
            .transition_job(&job.id, JobState::AwaitingReview, |j| {
                j.state = JobState::Failed;
                j.error = Some(why.clone());
                j.reviewed_by = Some(reviewer.id.clone());
                j.review_reason = Some(why.clone());
                j.reviewed_at_ms = Some(now_ms());
                if let Some(r) = j.report.as_mut() {
                    r.job_findings.push(first.clone());
                }
            })
            .map_err(internal)?;
        Err(Status::failed_precondition(format!(
            "job `{}` was checked again before approval and {why}",
            job.id
        )))
    }
}
