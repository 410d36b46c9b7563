//! ReviewService: pending jobs, the reviewer's view with a preview, and the decision.

use erhai_proto::v1 as pb;
use erhai_proto::v1::review_service_server::ReviewService;
use tonic::{Request, Response, Status};

use super::withhold::Withholding;
use super::{Gateway, convert, engine_status, internal};
use crate::audit::NewEvent;
use crate::authz::Action;
use crate::state::{
    Approval, JobRecord, JobState, ReleaseRecord, UserRecord, WithheldRecord, now_ms,
};

/// Rows shown to a reviewer in the preview.
pub const PREVIEW_ROWS: usize = 200;

impl Gateway {
    /// Decrypts a job's quarantined result.
    pub(crate) fn result_of(
        &self,
        job: &JobRecord,
    ) -> Result<
        (
            arrow::datatypes::SchemaRef,
            Vec<arrow::record_batch::RecordBatch>,
        ),
        Status,
    > {
        let key = job.result_key.as_ref().ok_or_else(|| {
            Status::failed_precondition(format!("job `{}` has no result", job.id))
        })?;
        self.0
            .engine
            .read_result(&job.id, key)
            .map_err(|e| engine_status(&e))
    }

    fn show_inner(&self, user: &UserRecord, id: &str) -> Result<pb::ReviewDetail, Status> {
        let job = self.visible_job(user, id)?;
        let (preview_ipc, preview_rows) = if job.result_key.is_some() {
            let (schema, batches) = self.result_of(&job)?;
            let mut left = PREVIEW_ROWS;
            let mut preview = Vec::new();
            for b in &batches {
                if left == 0 {
                    break;
                }
                let n = b.num_rows().min(left);
                preview.push(b.slice(0, n));
                left -= n;
            }
            let rows = preview.iter().map(|b| b.num_rows() as u64).sum();
            (convert::ipc(&schema, &preview)?, rows)
        } else {
            (Vec::new(), 0)
        };
        Ok(pb::ReviewDetail {
            job: Some(convert::job(&job, user.role)),
            preview_ipc,
            preview_rows,
        })
    }

    /// A reviewer's decision on a run that failed: there is nothing to release, so it can only
    /// be rejected; from then on the analyst sees it as failed (without the error, which may
    /// depend on the values), with the reviewer's reason.
    fn acknowledge_failure(
        &self,
        user: &UserRecord,
        job: &JobRecord,
        approve: bool,
        reason: &str,
    ) -> Result<pb::Job, Status> {
        if approve {
            return Err(Status::failed_precondition(format!(
                "job `{}` failed while running ({}); there is nothing to release: reject it to \
                 close it",
                job.id,
                job.error.as_deref().unwrap_or("no detail")
            )));
        }
        let now = now_ms();
        self.0
            .store
            .transition_job(&job.id, JobState::Failed, |j| {
                j.reviewed_by = Some(user.id.clone());
                j.review_reason = Some(reason.to_string());
                j.reviewed_at_ms = Some(now);
            })
            .map_err(internal)?
            .map(|j| convert::job(&j, user.role))
            .ok_or_else(|| Status::failed_precondition(format!("job `{}` changed", job.id)))
    }

    /// The release a job becomes if approved now, without the rows `withheld`: its id and the
    /// hash of exactly the rows it releases.
    fn release_record(
        &self,
        job: &JobRecord,
        at_ms: i64,
        withheld: Vec<WithheldRecord>,
    ) -> Result<ReleaseRecord, Status> {
        let (schema, batches) = self.released_result(job, &withheld)?;
        let bytes =
            erhai_engine::export::canonical(&schema, &batches).map_err(|e| engine_status(&e))?;
        Ok(ReleaseRecord {
            id: release_id(&job.id),
            result_sha256: crate::receipt::sha256_hex(&bytes),
            rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
            approved_at_ms: at_ms,
            withheld,
        })
    }

    /// An approval: with the rows to review withheld (`suppress_flagged`), the rows the release
    /// leaves out are decided now, against the ledger as it is under the release lock;
    /// otherwise the differencing check runs again. Every approval of a job must agree on the
    /// mode: the first one fixes it.
    fn approve(
        &self,
        user: &UserRecord,
        job: &JobRecord,
        reason: &str,
        suppress_flagged: bool,
        now: i64,
    ) -> Result<(Option<JobRecord>, Option<Withholding>), Status> {
        if let Some(first) = job.approvals.first()
            && first.suppress_flagged != suppress_flagged
        {
            let (theirs, yours) = if first.suppress_flagged {
                ("with its rows to review withheld", "whole")
            } else {
                ("whole", "with its rows to review withheld")
            };
            return Err(Status::failed_precondition(format!(
                "job `{}` was approved by {} {theirs}; a second approval must agree, not release                  it {yours}: approve it {} or reject it",
                job.id,
                first.by,
                if first.suppress_flagged {
                    "with --suppress-flagged"
                } else {
                    "without --suppress-flagged"
                }
            )));
        }
        let needed = self.job_rules(job).approvals_needed(job.report.as_ref());
        let (release, withholding) = if suppress_flagged {
            let w = self.plan_withholding(job)?;
            (self.release_record(job, now, w.withheld.clone())?, Some(w))
        } else {
            self.recheck_differencing(job, user)?;
            (self.release_record(job, now, Vec::new())?, None)
        };
        let last = job.approvals.len() + 1 >= needed;
        // The ledger learns of the withheld rows before the job is released, so that no
        // check ever sees them as released parts of it.
        if let (true, Some(w)) = (last, &withholding) {
            self.mark_withheld(&job.id, w, true)?;
        }
        let approval = Approval {
            by: user.id.clone(),
            reason: reason.to_string(),
            at_ms: now,
            suppress_flagged,
        };
        let updated = self
            .0
            .store
            .transition_job(&job.id, JobState::AwaitingReview, |j| {
                if j.approvals.iter().all(|a| a.by != approval.by) {
                    j.approvals.push(approval.clone());
                }
                if j.approvals.len() >= needed {
                    j.state = JobState::Released;
                    j.release = Some(release.clone());
                    j.reviewed_by = Some(user.id.clone());
                    j.review_reason = Some(reason.to_string());
                    j.reviewed_at_ms = Some(now);
                }
            })
            .map_err(internal);
        let released = matches!(&updated, Ok(Some(j)) if j.state == JobState::Released);
        if let (true, false, Some(w)) = (last, released, &withholding) {
            self.mark_withheld(&job.id, w, false)?;
        }
        Ok((updated?, withholding.filter(|_| released)))
    }

    /// Audits what a release withheld: positions and rules, never values.
    fn audit_withheld(&self, user: &UserRecord, job: &JobRecord, w: &Withholding) {
        let mut by_rule: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for r in &w.withheld {
            by_rule
                .entry(r.rule.as_str())
                .or_default()
                .push(r.reviewed_row.to_string());
        }
        let parts: Vec<String> = by_rule
            .iter()
            .map(|(rule, rows)| format!("{rule}: rows {}", rows.join(", ")))
            .collect();
        self.record(NewEvent {
            user: user.id.clone(),
            role: user.role.name().into(),
            tenant: user.tenant.clone().unwrap_or_default(),
            action: "release_withheld".into(),
            object: job.id.clone(),
            outcome: "allowed".into(),
            reason: format!(
                "release {} withholds {} row(s) of the reviewed result ({})",
                release_id(&job.id),
                w.withheld.len(),
                parts.join("; ")
            ),
            digest: String::new(),
        });
    }

    fn decide_inner(&self, user: &UserRecord, r: &pb::DecisionRequest) -> Result<pb::Job, Status> {
        let reason = r.reason.trim();
        if reason.is_empty() {
            return Err(Status::invalid_argument(
                "a decision needs a reason (--reason)",
            ));
        }
        if reason.chars().count() > 2000 {
            return Err(Status::invalid_argument(
                "the reason is longer than 2000 characters",
            ));
        }
        let job = self.visible_job(user, &r.job)?;
        if job.submitted_by == user.id {
            return Err(Status::permission_denied(format!(
                "you submitted job `{}`: a reviewer may never decide on their own job",
                job.id
            )));
        }
        if job.state == JobState::Failed && convert::accepted(&job) && job.reviewed_by.is_none() {
            return self.acknowledge_failure(user, &job, r.approve, reason);
        }
        if job.state != JobState::AwaitingReview {
            return Err(not_pending(&job));
        }
        if r.suppress_flagged && !r.approve {
            return Err(Status::invalid_argument(
                "--suppress-flagged applies to an approval only: a rejection releases nothing",
            ));
        }
        let now = now_ms();
        // Approvals are serialized: each re-check sees every release approved before it.
        let _releasing = self
            .0
            .release_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Read again under the lock: another approval may have landed since.
        let job = self.visible_job(user, &r.job)?;
        if job.state != JobState::AwaitingReview {
            return Err(not_pending(&job));
        }
        if job.approvals.iter().any(|a| a.by == user.id) {
            return Err(Status::failed_precondition(format!(
                "you already approved job `{}`: it waits for a second reviewer",
                job.id
            )));
        }
        let (updated, withheld) = if r.approve {
            self.approve(user, &job, reason, r.suppress_flagged, now)?
        } else {
            let rejected = self
                .0
                .store
                .transition_job(&job.id, JobState::AwaitingReview, |j| {
                    j.state = JobState::Rejected;
                    j.reviewed_by = Some(user.id.clone());
                    j.review_reason = Some(reason.to_string());
                    j.reviewed_at_ms = Some(now);
                })
                .map_err(internal)?;
            (rejected, None)
        };
        match updated {
            Some(j) => {
                if let Some(w) = &withheld {
                    self.audit_withheld(user, &j, w);
                }
                if j.state == JobState::Released {
                    // Its figures are out: later results are audited against them.
                    let mut ids = Vec::new();
                    for id in &j.datasets {
                        if let Some(d) = self.0.store.dataset(id).map_err(internal)? {
                            ids.push((d.id, d.name));
                        }
                    }
                    let store = &self.0.store;
                    self.0
                        .ledger
                        .record_release(&j.id, &ids, |other| {
                            matches!(store.job(other), Ok(Some(o)) if o.state == JobState::Released)
                        })
                        .map_err(internal)?;
                }
                Ok(convert::job(&j, user.role))
            }
            None => Err(not_pending(&self.visible_job(user, &r.job)?)),
        }
    }
}

/// The id of the release a job becomes (what its receipt names).
pub(crate) fn release_id(job: &str) -> String {
    format!("rel-{}", job.trim_start_matches("job-"))
}

/// The refusal to decide on a job that no longer awaits review.
fn not_pending(job: &JobRecord) -> Status {
    let by = job
        .reviewed_by
        .as_ref()
        .map(|b| format!(" by {b}"))
        .unwrap_or_default();
    Status::failed_precondition(format!(
        "job `{}` is {}{by}: only a job awaiting review can be decided, once",
        job.id,
        job.state.name()
    ))
}

#[tonic::async_trait]
impl ReviewService for Gateway {
    async fn list_pending(
        &self,
        req: Request<pb::Empty>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let user = self.authorize(&req, Action::ListPending, "")?;
        // Failed runs wait for a reviewer too: until one has looked, the analyst sees the job
        // as awaiting review (an error may depend on the values).
        let r = self.jobs_visible_to(&user, |j| {
            j.state == JobState::AwaitingReview
                || (j.state == JobState::Failed && convert::accepted(j) && j.reviewed_by.is_none())
        });
        self.finish(&user, Action::ListPending, "", r)
            .map(Response::new)
    }

    async fn show_review(
        &self,
        req: Request<pb::JobRef>,
    ) -> Result<Response<pb::ReviewDetail>, Status> {
        let object = req.get_ref().job.clone();
        let user = self.authorize(&req, Action::ShowReview, &object)?;
        let r = self.show_inner(&user, &object);
        self.finish(&user, Action::ShowReview, &object, r)
            .map(Response::new)
    }

    async fn decide(&self, req: Request<pb::DecisionRequest>) -> Result<Response<pb::Job>, Status> {
        let object = req.get_ref().job.clone();
        let user = self.authorize(&req, Action::Decide, &object)?;
        let r = self.decide_inner(&user, req.get_ref());
        let object = format!(
            "{object} ({})",
            if req.get_ref().approve {
                "approve"
            } else {
                "reject"
            }
        );
        self.finish(&user, Action::Decide, &object, r)
            .map(Response::new)
    }
}
