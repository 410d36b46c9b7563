//! QueryService: submit a production query, show and list jobs.

use std::collections::HashMap;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use erhai_engine::{EngineError, Env, Prepared, StoredTable};
use erhai_proto::v1 as pb;
use erhai_proto::v1::query_service_server::QueryService;
use tonic::{Request, Response, Status};

use super::{Gateway, convert, engine_status, internal};
use crate::authz::Action;
use crate::job_rules::JobRules;
use crate::metrics::JobEnv;
use crate::scenario::ScenarioRecord;
use crate::state::{JobRecord, JobState, UserRecord, now_ms};

impl Gateway {
    /// The scenario a query names, if `user` may run queries in it today. Every query names one:
    /// a scenario is the only authorization to read data.
    pub(super) fn query_scenario(
        &self,
        user: &UserRecord,
        name: &str,
    ) -> Result<ScenarioRecord, Status> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Status::invalid_argument(
                "every query names its scenario (--scenario S): only an approved, active \
                 scenario authorizes data (`erhai scenario list` shows yours)",
            ));
        }
        let s = self.visible_scenario(user, name)?;
        s.admits_queries(chrono::Utc::now().date_naive())
            .map_err(|why| Status::failed_precondition(why.to_string()))?;
        Ok(s)
    }

    /// The tables a scenario authorizes in `env`: each approved dataset (or its development
    /// sample) with only its approved columns, plus its privacy unit, which the statistics need
    /// and its policy still governs.
    pub(super) fn tables_of_scenario(
        &self,
        s: &ScenarioRecord,
        env: Env,
    ) -> Result<Vec<StoredTable>, Status> {
        let mut tables = Vec::new();
        for (dataset, columns) in &s.approved {
            let Some(d) = self.0.store.dataset(dataset).map_err(internal)? else {
                continue;
            };
            // A retired dataset is in no sandbox: a query naming it is refused as such
            // (`outside_scenario`).
            if d.usable_by(&s.tenant).is_err() || d.retired.is_some() {
                continue;
            }
            let Some(mut t) = convert::stored_table(&d, env)? else {
                continue;
            };
            let keep = |name: &str| columns.contains(name) || name == t.policy.privacy_unit;
            let fields: Vec<_> = t
                .schema
                .fields()
                .iter()
                .filter(|f| keep(f.name()))
                .cloned()
                .collect();
            t.policy.columns.retain(|name, _| keep(name));
            t.schema = std::sync::Arc::new(arrow::datatypes::Schema::new(fields));
            tables.push(t);
        }
        Ok(tables)
    }

    /// A planning error that is really a reference to data outside scenario `s` (a column it did
    /// not approve, a dataset it does not list), restated as the refusal it is: which column or
    /// dataset, and which scenario. Other errors pass unchanged.
    pub(super) fn outside_scenario(&self, s: &ScenarioRecord, e: EngineError) -> EngineError {
        let Ok(datasets) = self.0.store.datasets() else {
            return e;
        };
        match &e {
            EngineError::UnknownColumn {
                column, qualifier, ..
            } => {
                for (name, approved) in &s.approved {
                    let Some(d) = datasets.iter().find(|d| &d.name == name) else {
                        continue;
                    };
                    let qualified_elsewhere = qualifier.as_ref().is_some_and(|q| q != name);
                    if qualified_elsewhere || !d.fields.iter().any(|f| &f.name == column) {
                        continue;
                    }
                    return EngineError::Forbidden(format!(
                        "column {name}.{column} is not among the columns scenario {} approved; of \
                         {name} it approved: {}. A query reads only what its scenario approved: \
                         apply for a scenario that includes it",
                        s.name,
                        approved.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
                e
            }
            EngineError::UnknownTable { name } if s.approved.contains_key(name) => datasets
                .iter()
                .find(|d| &d.name == name)
                .and_then(|d| {
                    super::dataset_life::retired_refusal(
                        d,
                        "new queries (production, checks or development); its releases can \
                         still be fetched and traced",
                    )
                })
                .map_or(e, EngineError::Forbidden),
            EngineError::UnknownTable { name }
                if !s.approved.contains_key(name)
                    && datasets
                        .iter()
                        .any(|d| &d.name == name && d.usable_by(&s.tenant).is_ok()) =>
            {
                EngineError::Forbidden(format!(
                    "dataset {name} is not in scenario {}, which approved: {}. A query reads only \
                     what its scenario approved: apply for a scenario that includes it",
                    s.name,
                    s.approved.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            }
            _ => e,
        }
    }

    /// A new job record; its datasets are filled in once its plan says what it reads.
    fn new_job(&self, user: &UserRecord, sql: &str) -> Result<JobRecord, Status> {
        let tenant = Self::tenant_of(user)?.to_string();
        if sql.is_empty() {
            return Err(Status::invalid_argument("empty SQL"));
        }
        Ok(JobRecord {
            id: self.0.store.new_id("job").map_err(internal)?,
            tenant,
            submitted_by: user.id.clone(),
            sql: sql.to_string(),
            state: JobState::Running,
            error: None,
            verdict: None,
            report: None,
            datasets: Vec::new(),
            submitted_at_ms: now_ms(),
            finished_at_ms: None,
            reviewed_by: None,
            review_reason: None,
            reviewed_at_ms: None,
            approvals: Vec::new(),
            release: None,
            approvals_needed: 1,
            scenario: None,
            epsilon: None,
            rules: None,
            dataset_versions: Vec::new(),
            result_key: None,
            dev: false,
            promoted_from: None,
        })
    }

    /// Runs a development query: samples only, rows returned, nothing stored but the job.
    async fn run_dev_inner(
        &self,
        user: &UserRecord,
        r: pb::SubmitQueryRequest,
        object: &mut String,
    ) -> Result<pb::DevQueryResult, Status> {
        let (job, schema, batches) = self.run_dev_rows(user, r, object).await?;
        Ok(pb::DevQueryResult {
            job: Some(convert::job(&job, user.role)),
            arrow_ipc: convert::ipc(&schema, &batches)?,
        })
    }

    /// A development query's completed job and its rows (`object` names the job once there is
    /// one).
    pub(super) async fn run_dev_rows(
        &self,
        user: &UserRecord,
        r: pb::SubmitQueryRequest,
        object: &mut String,
    ) -> Result<(JobRecord, SchemaRef, Vec<RecordBatch>), Status> {
        let scenario = self.query_scenario(user, &r.scenario)?;
        let tables = self.tables_of_scenario(&scenario, Env::Dev)?;
        let mut job = self.new_job(user, r.sql.trim())?;
        job.dev = true;
        job.scenario = Some(scenario.name.clone());
        *object = job.id.clone();
        let slot = self
            .0
            .metrics
            .job_slot(&self.0.job_slots, JobEnv::Development)
            .await;
        let outcome = match slot {
            Ok(_slot) => {
                self.job_event(
                    &job,
                    "key_use",
                    "allowed",
                    format!(
                        "development-sample keys of {} unwrapped for the job's sandbox",
                        dataset_ids(&tables).join(", ")
                    ),
                );
                guarded(
                    self.0
                        .engine
                        .run_dev_query(&job.sql, &tables, &scope_of(&job)),
                )
                .await
            }
            Err(_) => Err(EngineError::Execution("the server is shutting down".into())),
        };
        let run = match outcome {
            Ok(run) => run,
            Err(e) => {
                let e = self.outside_scenario(&scenario, e);
                return Err(self.end_early(job, failure_state(&e), &e));
            }
        };
        let read = read_by(&tables, &run.lineage);
        job.datasets = dataset_ids(read.iter().copied());
        job.dataset_versions = version_labels(&read);
        job.verdict = Some(run.verdict.clone());
        let Some((schema, batches)) = run.rows else {
            let e = EngineError::Refused(Box::new(run.verdict));
            return Err(self.end_early(job, JobState::Refused, &e));
        };
        job.state = JobState::Completed;
        job.finished_at_ms = Some(now_ms());
        self.0.store.put_job(&job).map_err(internal)?;
        Ok((job, schema, batches))
    }

    pub(super) async fn submit_inner(
        &self,
        user: &UserRecord,
        r: pb::SubmitQueryRequest,
        object: &mut String,
        promoted_from: Option<String>,
    ) -> Result<JobRecord, Status> {
        let scenario = self.query_scenario(user, &r.scenario)?;
        let tables = self.tables_of_scenario(&scenario, Env::Prod)?;
        if scenario.dp.is_none() && r.epsilon != 0.0 {
            return Err(Status::invalid_argument(
                "--epsilon applies only to queries in a differential-privacy scenario",
            ));
        }
        // The scenario is read once: the job keeps these rules whatever happens to it later.
        let rules = JobRules::of(
            self.0.engine.rules(),
            &self.0.cfg.release,
            &scenario,
            r.epsilon,
        );
        let mut job = self.new_job(user, r.sql.trim())?;
        job.promoted_from = promoted_from;
        job.scenario = Some(scenario.name.clone());
        *object = job.id.clone();

        // Checked once: the plan the analyst's answer reports is the plan the job runs.
        let prepared = guarded(self.0.engine.prepare(
            &job.sql,
            &tables,
            &scope_of(&job),
            rules.disclosure(),
        ))
        .await;
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => {
                let e = self.outside_scenario(&scenario, e);
                return Err(self.end_early(job, failure_state(&e), &e));
            }
        };
        // The job reads what its plan scans, not every table it could have (a refused plan
        // too: lineage shows the attempt to the datasets' providers, and to nobody else).
        let read = read_by(&tables, prepared.lineage());
        job.datasets = dataset_ids(read.iter().copied());
        job.dataset_versions = version_labels(&read);
        job.verdict = Some(prepared.verdict().clone());
        if !prepared.allowed() {
            let e = EngineError::Refused(Box::new(prepared.verdict().clone()));
            return Err(self.end_early(job, JobState::Refused, &e));
        }
        // The names the query gave the datasets it reads, for the differencing check.
        let read: HashMap<String, String> = read
            .into_iter()
            .map(|t| (t.name.clone(), t.dataset_id.clone()))
            .collect();
        // A DP query is charged before it runs; beyond the budget it never runs.
        if let (Some(dp), Some(epsilon)) = (rules.dp, rules.epsilon) {
            let s = &scenario;
            match self
                .0
                .scenarios
                .charge(&s.name, &dp, epsilon)
                .map_err(internal)?
            {
                Ok(_) => job.epsilon = Some(epsilon),
                Err(why) => {
                    let why = format!("scenario `{}`: {why}", s.name);
                    job.state = JobState::Refused;
                    job.error = Some(why.clone());
                    job.finished_at_ms = Some(now_ms());
                    self.0.store.put_job(&job).map_err(internal)?;
                    return Err(super::refusal(Status::resource_exhausted(why)));
                }
            }
        }
        job.rules = Some(rules);
        self.0.store.put_job(&job).map_err(internal)?;
        // The prepared sandbox holds the data keys of every table of the scenario from now
        // until the job ends.
        self.job_event(
            &job,
            "key_use",
            "allowed",
            format!(
                "data keys of {} unwrapped for the job's sandbox",
                dataset_ids(&tables).join(", ")
            ),
        );

        // The analyst's answer does not wait for the run, whatever `wait` asks: how long a job
        // takes, and how it ends, depend on the data (a reviewer sees them).
        let gw = self.clone();
        let running = job.clone();
        {
            let mut set = self.0.running.lock().unwrap_or_else(|p| p.into_inner());
            // Finished tasks are reaped as new ones start.
            while set.try_join_next().is_some() {}
            set.spawn(async move {
                gw.run_job(running, prepared, read).await;
            });
        }
        Ok(job)
    }

    fn end_early(&self, mut job: JobRecord, state: JobState, e: &EngineError) -> Status {
        job.state = state;
        job.error = Some(e.to_string());
        job.finished_at_ms = Some(now_ms());
        if let Err(err) = self.0.store.put_job(&job) {
            return internal(err);
        }
        engine_status(e)
    }

    /// Runs an accepted job to awaiting_review or failed, and audits the end; `read` maps the
    /// names its query gave the datasets it reads to their ids.
    async fn run_job(
        &self,
        mut job: JobRecord,
        prepared: Prepared,
        read: HashMap<String, String>,
    ) -> JobRecord {
        let releases = self.releases_for(&job.id, read);
        let slot = self
            .0
            .metrics
            .job_slot(&self.0.job_slots, JobEnv::Production)
            .await;
        let outcome = match slot {
            Ok(_slot) => {
                self.job_event(&job, "job_started", "allowed", String::new());
                guarded(self.0.engine.run(&job.id, prepared, &releases)).await
            }
            Err(_) => Err(EngineError::Execution("the server is shutting down".into())),
        };
        job.finished_at_ms = Some(now_ms());
        let (audit_outcome, reason) = match outcome {
            Ok(o) => {
                match self
                    .0
                    .ledger
                    .record(&job.id, &o.units, &|name| releases.id_of(name))
                {
                    Ok(()) => {
                        job.state = JobState::AwaitingReview;
                        job.verdict = Some(o.verdict);
                        job.report = Some(o.report);
                        job.result_key = Some(o.result_wrapped_key);
                        job.approvals_needed =
                            self.job_rules(&job).approvals_needed(job.report.as_ref()) as u32;
                        ("allowed", String::new())
                    }
                    Err(e) => {
                        job.state = JobState::Failed;
                        job.error =
                            Some(format!("the population ledger could not be written: {e}"));
                        ("failed", e.to_string())
                    }
                }
            }
            Err(e) => {
                job.state = JobState::Failed;
                job.error = Some(e.to_string());
                ("failed", e.to_string())
            }
        };
        if let Err(e) = self.0.store.put_job(&job) {
            tracing::error!(error = %e, job = %job.id, "could not record the end of a job");
        }
        let report = job
            .report
            .as_ref()
            .map(|r| {
                format!(
                    "checks: {} of {} rows released ({})",
                    r.rows_released,
                    r.rows_computed,
                    r.outcome()
                )
            })
            .unwrap_or(reason);
        self.job_event(&job, "job_finished", audit_outcome, report);
        job
    }

    /// An internal event of a job, attributed to its analyst.
    fn job_event(&self, job: &JobRecord, action: &str, outcome: &str, reason: String) {
        self.record(crate::audit::NewEvent {
            user: job.submitted_by.clone(),
            role: "analyst".into(),
            tenant: job.tenant.clone(),
            action: action.into(),
            object: job.id.clone(),
            outcome: outcome.into(),
            reason,
            digest: String::new(),
        });
    }

    /// The jobs `user` may see that also satisfy `keep`.
    pub(crate) fn jobs_visible_to(
        &self,
        user: &UserRecord,
        keep: impl Fn(&JobRecord) -> bool,
    ) -> Result<pb::ListJobsResponse, Status> {
        let jobs = self.0.store.jobs().map_err(internal)?;
        Ok(pb::ListJobsResponse {
            jobs: jobs
                .iter()
                .filter(|j| Self::sees_tenant(user, &j.tenant) && keep(j))
                .map(|j| convert::job(j, user.role))
                .collect(),
        })
    }

    /// A job `user` may see, or NotFound (other tenants' jobs do not exist for them).
    pub(crate) fn visible_job(&self, user: &UserRecord, id: &str) -> Result<JobRecord, Status> {
        self.0
            .store
            .job(id)
            .map_err(internal)?
            .filter(|j| Self::sees_tenant(user, &j.tenant))
            .ok_or_else(|| Status::not_found(format!("no job `{id}` visible to you")))
    }
}

#[tonic::async_trait]
impl QueryService for Gateway {
    async fn submit_query(
        &self,
        req: Request<pb::SubmitQueryRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let user = self.authorize(&req, Action::SubmitQuery, "")?;
        self.received(&user, Action::SubmitQuery);
        let mut object = String::new();
        let r = self
            .submit_inner(&user, req.into_inner(), &mut object, None)
            .await
            .map(|j| convert::job(&j, user.role));
        self.finish(&user, Action::SubmitQuery, &object, r)
            .map(Response::new)
    }

    async fn check_query(
        &self,
        req: Request<pb::SubmitQueryRequest>,
    ) -> Result<Response<pb::PlanVerdict>, Status> {
        let user = self.authorize(&req, Action::CheckQuery, "")?;
        self.received(&user, Action::CheckQuery);
        let r = async {
            let r = req.get_ref();
            let scenario = self.query_scenario(&user, &r.scenario)?;
            let tables = self.tables_of_scenario(&scenario, Env::Prod)?;
            let rules = JobRules::of(
                self.0.engine.rules(),
                &self.0.cfg.release,
                &scenario,
                r.epsilon,
            );
            let prepared = guarded(self.0.engine.prepare(
                r.sql.trim(),
                &tables,
                &scenario.scope(),
                rules.disclosure(),
            ))
            .await
            .map_err(|e| engine_status(&self.outside_scenario(&scenario, e)))?;
            Ok(convert::verdict(prepared.verdict()))
        }
        .await;
        self.finish(&user, Action::CheckQuery, "", r)
            .map(Response::new)
    }

    async fn get_job(&self, req: Request<pb::JobRef>) -> Result<Response<pb::Job>, Status> {
        let object = req.get_ref().job.clone();
        let user = self.authorize(&req, Action::GetJob, &object)?;
        let r = self
            .visible_job(&user, &object)
            .map(|j| convert::job(&j, user.role));
        self.finish(&user, Action::GetJob, &object, r)
            .map(Response::new)
    }

    async fn run_dev_query(
        &self,
        req: Request<pb::SubmitQueryRequest>,
    ) -> Result<Response<pb::DevQueryResult>, Status> {
        let user = self.authorize(&req, Action::RunDevQuery, "")?;
        self.received(&user, Action::RunDevQuery);
        let mut object = String::new();
        let r = self
            .run_dev_inner(&user, req.into_inner(), &mut object)
            .await;
        self.finish(&user, Action::RunDevQuery, &object, r)
            .map(Response::new)
    }

    async fn promote_job(&self, req: Request<pb::JobRef>) -> Result<Response<pb::Job>, Status> {
        let from = req.get_ref().job.clone();
        let user = self.authorize(&req, Action::PromoteJob, &from)?;
        let r = async {
            let dev = self.visible_job(&user, &from)?;
            if !dev.dev {
                return Err(Status::failed_precondition(format!(
                    "job {from} already ran in production; only development jobs are promoted"
                )));
            }
            let mut object = String::new();
            let request = pb::SubmitQueryRequest {
                sql: dev.sql,
                wait: false,
                scenario: dev.scenario.unwrap_or_default(),
                epsilon: 0.0,
            };
            self.submit_inner(&user, request, &mut object, Some(from.clone()))
                .await
        }
        .await
        .map(|j| convert::job(&j, user.role));
        self.finish(&user, Action::PromoteJob, &from, r)
            .map(Response::new)
    }

    async fn list_jobs(
        &self,
        req: Request<pb::Empty>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let user = self.authorize(&req, Action::ListJobs, "")?;
        let r = self.jobs_visible_to(&user, |_| true);
        self.finish(&user, Action::ListJobs, "", r)
            .map(Response::new)
    }
}

/// Engine work with a panic turned into an error: the call (or job) fails and is audited, the
/// server lives, and no panic text reaches anyone but the operators' log.
pub(super) async fn guarded<T>(
    work: impl std::future::Future<Output = Result<T, EngineError>>,
) -> Result<T, EngineError> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(r) => r,
        Err(_) => {
            tracing::error!("query planning or execution panicked; the call fails");
            Err(EngineError::Execution(
                "the query stopped on an internal error (recorded for the operators)".into(),
            ))
        }
    }
}

/// The ids of the datasets behind `tables`.
fn dataset_ids<'a>(tables: impl IntoIterator<Item = &'a StoredTable>) -> Vec<String> {
    tables.into_iter().map(|t| t.dataset_id.clone()).collect()
}

/// How a job names the versions it reads: `name@vN`.
fn version_labels(tables: &[&StoredTable]) -> Vec<String> {
    tables
        .iter()
        .map(|t| format!("{}@v{}", t.name, t.version))
        .collect()
}

/// The tables among `tables` that a plan with `lineage` scans.
fn read_by<'a>(
    tables: &'a [StoredTable],
    lineage: &erhai_policies::PlanLineage,
) -> Vec<&'a StoredTable> {
    tables
        .iter()
        .filter(|t| lineage.datasets.contains(&t.name))
        .collect()
}

/// The state of a job that ended before producing a result.
fn failure_state(e: &EngineError) -> JobState {
    if matches!(engine_status(e).code(), tonic::Code::PermissionDenied) {
        JobState::Refused
    } else {
        JobState::Failed
    }
}

/// The scope of a job: its scenario's, or its tenant's when it names no scenario.
pub(crate) fn scope_of(job: &JobRecord) -> String {
    match &job.scenario {
        Some(s) => crate::scenario::scenario_scope(s),
        None => pseudonym_scope(&job.tenant),
    }
}

/// Whose pseudonyms a job's `pseudonym()` produces and which earlier releases its differencing
/// check compares against: one scenario's (tokens join within it and with nobody else's). Jobs
/// recorded before every query named a scenario keep their tenant's scope.
pub(crate) fn pseudonym_scope(tenant: &str) -> String {
    format!("tenant/{tenant}")
}
