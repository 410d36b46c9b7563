//! One production job's query, parsed, planned, checked and rewritten once: what the analyst's
//! immediate answer reports and what the run executes are the same value, so a query can never
//! be checked in one form and run in another.

use std::sync::Arc;

use arrow::datatypes::Schema;
use erhai_policies::{PlanLineage, PlanVerdict, ReleaseRules};

use crate::checks::{self, ResultShape};
use crate::dp::{DpPlan, DpRequest, Gatherer};
use crate::error::{EngineError, Result};
use crate::harden::harden;
use crate::sandbox::{CheckedQuery, Sandbox};
use crate::{Engine, QueryOutcome, Releases, StoredTable, differencing_findings, subqueries};

/// How a production job's result is protected; fixed before the query is checked, since the
/// statistics the rewrite adds depend on it.
#[derive(Clone, Debug, PartialEq)]
pub enum Disclosure {
    /// Thresholds, dominance, differencing and the result checks under these rules.
    Checked(ReleaseRules),
    /// Differential privacy: noise under the scenario's settings and this query's ε, which
    /// the caller charges to the budget before running it.
    Noise(DpRequest),
}

impl Disclosure {
    /// Checks the rules or settings themselves.
    pub fn validate(&self) -> Result<()> {
        match self {
            Disclosure::Checked(rules) => rules.validate()?,
            Disclosure::Noise(req) => req.settings.validate()?,
        }
        Ok(())
    }
}

/// A checked query ready to run: its sandbox (the data keys of the tables it may read,
/// unwrapped), the plan check's lineage and verdict, and, when allowed, the rewritten plan.
pub struct Prepared {
    sandbox: Sandbox,
    lineage: PlanLineage,
    verdict: PlanVerdict,
    work: Work,
}

enum Work {
    /// The plan check refused the query: nothing to run.
    Refused,
    /// The statistics rewrite of the plan and the rules its result is checked under.
    Checked {
        query: Box<CheckedQuery>,
        rules: ReleaseRules,
    },
    /// The per-unit plan DP mode answers, and the request it answers under.
    Noise {
        plan: Box<DpPlan>,
        visible: Arc<Schema>,
        req: DpRequest,
    },
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("verdict", &self.verdict)
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// The plan check's verdict: allowed, or refused with the columns, uses and rules.
    pub fn verdict(&self) -> &PlanVerdict {
        &self.verdict
    }

    /// Where each output column comes from, and the datasets the plan reads.
    pub fn lineage(&self) -> &PlanLineage {
        &self.lineage
    }

    /// Whether the plan check allowed the query (only then does it run).
    pub fn allowed(&self) -> bool {
        !matches!(self.work, Work::Refused)
    }

    /// The columns an allowed query's result will have (the statistics the rewrite adds are
    /// not among them); none for a refused one.
    pub fn result_schema(&self) -> Option<Arc<Schema>> {
        match &self.work {
            Work::Refused => None,
            Work::Checked { query, .. } => Some(query.visible_schema()),
            Work::Noise { visible, .. } => Some(visible.clone()),
        }
    }
}

impl Engine {
    /// Parses, plans and checks `sql` over `tables` once, and rewrites an allowed plan for
    /// `disclosure` (a shape the rewrite or DP mode cannot follow is an error here, before
    /// anything runs or any budget is spent). A refusal of the plan check is not an error: the
    /// result holds its verdict. `scope` keys the job's pseudonyms.
    pub async fn prepare(
        &self,
        sql: &str,
        tables: &[StoredTable],
        scope: &str,
        disclosure: Disclosure,
    ) -> Result<Prepared> {
        disclosure.validate()?;
        let sandbox = self.sandbox_for(tables, scope).await?;
        let (lineage, verdict, plan) = sandbox.check(sql, true).await?;
        let work = if !verdict.allowed() {
            Work::Refused
        } else {
            match disclosure {
                Disclosure::Checked(rules) => Work::Checked {
                    query: Box::new(sandbox.rewrite(&plan, rules.largest_needed())?),
                    rules,
                },
                Disclosure::Noise(req) => Work::Noise {
                    plan: Box::new(sandbox.dp_plan(&plan)?),
                    visible: Arc::new(plan.schema().as_arrow().clone()),
                    req,
                },
            }
        };
        Ok(Prepared {
            sandbox,
            lineage,
            verdict,
            work,
        })
    }

    /// Runs a prepared query: executes the checked plan, applies the automatic checks —
    /// differencing against `releases` included — or the noise, and quarantines what may go
    /// to review under the key of `job_id`.
    pub async fn run(
        &self,
        job_id: &str,
        prepared: Prepared,
        releases: &dyn Releases,
    ) -> Result<QueryOutcome> {
        let Prepared {
            sandbox,
            lineage,
            verdict,
            work,
        } = prepared;
        let (visible, released, report, units) = match work {
            Work::Refused => return Err(EngineError::Refused(Box::new(verdict))),
            Work::Checked { query, rules } => {
                let executed = sandbox.execute(&query).await?;
                let subqueries = executed
                    .sides
                    .iter()
                    .map(|(side, rows)| subqueries::outcome(side, rows, &rules))
                    .collect::<Result<Vec<_>>>()?;
                let (released, report, units) = checks::apply_checks(
                    &executed.batches,
                    executed.schema.clone(),
                    &executed.hidden,
                    &ResultShape::of(&lineage),
                    &rules,
                    &subqueries,
                    |units| differencing_findings(units, &rules, releases),
                )?;
                (executed.schema, released, report, units)
            }
            Work::Noise { plan, visible, req } => {
                let mut gatherer = Gatherer::new(&plan, &req.settings)?;
                sandbox
                    .for_each_batch(harden(plan.plan().clone())?, |b| gatherer.add(b))
                    .await?;
                let (released, report) = gatherer.release(&req)?;
                (visible, released, report, Vec::new())
            }
        };
        let result_wrapped_key = self.quarantine(job_id, visible, &released)?;
        Ok(QueryOutcome {
            verdict,
            lineage,
            report,
            result_wrapped_key,
            units,
        })
    }
}
