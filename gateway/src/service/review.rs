//! ReviewService: pending jobs, the reviewer's view with a preview, and the decision.

use erhai_proto::v1 as pb;
use erhai_proto::v1::review_service_server::ReviewService;
use tonic::{Request, Response, Status};

use super::query::pseudonym_scope;
use super::{Gateway, convert, engine_status, internal};
use crate::authz::Action;
use crate::state::{JobRecord, JobState, UserRecord, now_ms};

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
            job: Some(convert::job(&job)),
            preview_ipc,
            preview_rows,
        })
    }

    /// Jobs released while this one awaited review may now form a differencing pair with it:
    /// the check runs again against the ledger as it is now. New findings go into the job's
    /// report and the approval is refused, so the reviewer decides on what they saw.
    fn recheck_differencing(&self, job: &JobRecord) -> Result<(), Status> {
        let Some(report) = &job.report else {
            return Ok(());
        };
        let scope = pseudonym_scope(&job.tenant);
        // Jobs record dataset ids; the ledger knows datasets by the name the query used.
        let mut names = Vec::new();
        for id in &job.datasets {
            if let Some(d) = self.0.store.dataset(id).map_err(internal)? {
                names.push(d.name);
            }
        }
        let units = self
            .0
            .ledger
            .rows_of(&scope, &names, &job.id)
            .map_err(internal)?;
        let (rows, whole) = self
            .differencing_findings(&scope, &job.id, &units)
            .map_err(internal)?;
        let known = |row: u64, f: &erhai_policies::Finding| {
            report
                .rows
                .iter()
                .any(|x| x.row == row && x.findings.contains(f))
        };
        let new_rows: Vec<_> = rows.into_iter().filter(|(r, f)| !known(*r, f)).collect();
        let new_whole: Vec<_> = whole
            .into_iter()
            .filter(|f| !report.job_findings.contains(f))
            .collect();
        if new_rows.is_empty() && new_whole.is_empty() {
            return Ok(());
        }
        let count = new_rows.len() + new_whole.len();
        self.0
            .store
            .transition_job(&job.id, JobState::AwaitingReview, |j| {
                if let Some(rep) = j.report.as_mut() {
                    for (row, f) in &new_rows {
                        let released_row = units
                            .iter()
                            .find(|u| u.row == *row)
                            .and_then(|u| u.released_row);
                        rep.flag(*row, released_row, vec![f.clone()]);
                    }
                    rep.job_findings.extend(new_whole.iter().cloned());
                }
            })
            .map_err(internal)?;
        Err(Status::failed_precondition(format!(
            "job `{}` was checked again before approval: {count} new differencing finding(s) \
             against results released since it ran; the rows are marked for review — read the \
             report again (`review show {}`) and decide",
            job.id, job.id
        )))
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
        if r.approve {
            self.recheck_differencing(&job)?;
        }
        let to = if r.approve {
            JobState::Released
        } else {
            JobState::Rejected
        };
        let updated = self
            .0
            .store
            .transition_job(&job.id, JobState::AwaitingReview, |j| {
                j.state = to;
                j.reviewed_by = Some(user.id.clone());
                j.review_reason = Some(reason.to_string());
                j.reviewed_at_ms = Some(now_ms());
            })
            .map_err(internal)?;
        match updated {
            Some(j) => Ok(convert::job(&j)),
            None => {
                let now = self.visible_job(user, &r.job)?;
                let by = now
                    .reviewed_by
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default();
                Err(Status::failed_precondition(format!(
                    "job `{}` is {}{by}: only a job awaiting review can be decided, once",
                    now.id,
                    now.state.name()
                )))
            }
        }
    }
}

#[tonic::async_trait]
impl ReviewService for Gateway {
    async fn list_pending(
        &self,
        req: Request<pb::Empty>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let user = self.authorize(&req, Action::ListPending, "")?;
        let r = self.jobs_visible_to(&user, |j| j.state == JobState::AwaitingReview);
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
