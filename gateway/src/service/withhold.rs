//! Approval with the rows to review withheld (`review approve --suppress-flagged`): which rows
//! the release leaves out (the flagged ones and whatever would give them back, decided by the
//! engine's complementary suppression against the ledger as it is at approval), the ledger
//! marked accordingly, and the released rows a release's hash, file and receipt cover.

use std::collections::{BTreeSet, HashSet};

use arrow::array::BooleanArray;
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use erhai_engine::{RowUnits, SUBQUERY_ROWS, WithholdError};
use erhai_policies::Verdict;
use tonic::Status;

use super::{Gateway, engine_status, internal};
use crate::state::{JobRecord, WithheldRecord};

/// What a release with rows withheld leaves out, decided under the release lock.
pub(crate) struct Withholding {
    /// The rows left out, by their position in the reviewed result.
    pub withheld: Vec<WithheldRecord>,
    /// The job's dataset ids.
    ids: Vec<String>,
}

impl Withholding {
    fn rows(&self) -> HashSet<u64> {
        self.withheld.iter().map(|w| w.row).collect()
    }
}

impl Gateway {
    /// The rows `job`'s release leaves out when its rows to review are withheld: those rows,
    /// then every row whose release would let them (or anything else withheld) be recomputed,
    /// and every row that the differencing checks against the releases made since it ran fail.
    pub(crate) fn plan_withholding(&self, job: &JobRecord) -> Result<Withholding, Status> {
        let refuse = |why: String| Status::failed_precondition(format!("job `{}`: {why}", job.id));
        if job.epsilon.is_some() {
            return Err(refuse(
                "it ran in differential-privacy mode, where rows are noised rather than checked \
                 one by one: approve it whole or reject it"
                    .into(),
            ));
        }
        let report = job
            .report
            .as_ref()
            .ok_or_else(|| refuse("it has no check report".into()))?;
        let flagged: Vec<u64> = report
            .rows
            .iter()
            .filter(|r| r.verdict == Verdict::Review && r.released_row.is_some())
            .map(|r| r.row)
            .collect();
        if flagged.is_empty() {
            return Err(refuse(
                "it has no rows to review: approve it without --suppress-flagged".into(),
            ));
        }
        if (flagged.len() as u64) < report.rows_review {
            return Err(refuse(format!(
                "only {} of its {} rows to review are listed, so they cannot all be withheld: \
                 reject it and ask for a narrower query",
                flagged.len(),
                report.rows_review
            )));
        }
        let mut named = Vec::new();
        for id in &job.datasets {
            if let Some(d) = self.0.store.dataset(id).map_err(internal)? {
                named.push((d.id, d.name));
            }
        }
        let mut units = self.0.ledger.rows_of(&job.id, &named).map_err(internal)?;
        // Positions in the reviewed result are counted over every computed row: the ledger
        // must hold each of them, as the run decided it.
        let main: Vec<&RowUnits> = units.iter().filter(|u| u.row < SUBQUERY_ROWS).collect();
        let released: Vec<u64> = main
            .iter()
            .filter(|u| u.released_row.is_some())
            .map(|u| u.row)
            .collect();
        if main.len() as u64 != report.rows_computed
            || released.len() as u64 != report.rows_released
        {
            return Err(refuse(format!(
                "the population ledger holds {} of its {} computed rows ({} of {} released), \
                 and withholding rows needs every one: approve it whole or reject it",
                main.len(),
                report.rows_computed,
                released.len(),
                report.rows_released
            )));
        }
        let rules = self.job_rules(job).release;
        let releases = self.releases_for(
            &job.id,
            named
                .iter()
                .map(|(id, name)| (name.clone(), id.clone()))
                .collect(),
        );
        let rows = erhai_engine::withhold(&mut units, &flagged, &rules, &releases).map_err(
            |e| match e {
                WithholdError::Engine(e) => engine_status(&e),
                other => refuse(other.to_string()),
            },
        )?;
        let mut withheld: Vec<WithheldRecord> = rows
            .into_iter()
            .map(|w| WithheldRecord {
                reviewed_row: released.partition_point(|r| *r < w.row) as u64,
                row: w.row,
                rule: w.finding.rule,
                reason: w.finding.message,
            })
            .collect();
        withheld.sort_by_key(|w| w.reviewed_row);
        Ok(Withholding {
            withheld,
            ids: named.into_iter().map(|(id, _)| id).collect(),
        })
    }

    /// Marks the withheld rows in the ledger as suppressed (`withheld`), or back as released
    /// when the approval did not go through.
    pub(crate) fn mark_withheld(
        &self,
        job: &str,
        w: &Withholding,
        withheld: bool,
    ) -> Result<(), Status> {
        self.0
            .ledger
            .mark_rows(job, &w.ids, &w.rows(), !withheld)
            .map_err(internal)?;
        self.0.store.flush().map_err(internal)
    }

    /// The rows a job releases: its quarantined result less the rows withheld at approval
    /// (before approval: the rows a plain approval would release).
    pub(crate) fn released_result(
        &self,
        job: &JobRecord,
        withheld: &[WithheldRecord],
    ) -> Result<(SchemaRef, Vec<RecordBatch>), Status> {
        let (schema, batches) = self.result_of(job)?;
        if withheld.is_empty() {
            return Ok((schema, batches));
        }
        let out: BTreeSet<u64> = withheld.iter().map(|w| w.reviewed_row).collect();
        let mut at = 0u64;
        let mut kept = Vec::with_capacity(batches.len());
        for b in &batches {
            let keep: BooleanArray = (0..b.num_rows() as u64)
                .map(|i| Some(!out.contains(&(at + i))))
                .collect();
            at += b.num_rows() as u64;
            let b = filter_record_batch(b, &keep).map_err(|e| Status::internal(e.to_string()))?;
            if b.num_rows() > 0 {
                kept.push(b);
            }
        }
        Ok((schema, kept))
    }
}
