//! Withholding rows at approval: a reviewer may release a result without its rows to review.
//! Removing a row is itself a suppression, so what remains is held to the same rules as the
//! run's own suppressions: a released total whose released parts leave exactly a withheld row
//! (or fewer than k units) would give the withheld figure back by subtraction, so it is
//! withheld too, and so on until nothing released recovers anything withheld
//! (complementary suppression to a fixed point). The differencing check and the linear audit
//! run against every release over the same data as they are at the approval; a remaining row
//! they fail is withheld with its finding.

use erhai_policies::{Finding, ReleaseRules};

use crate::checks::{RowUnits, SUBQUERY_ROWS};
use crate::error::EngineError;
use crate::{Releases, differencing_findings};

/// Why rows cannot be withheld: the reviewer approves the result whole or rejects it.
#[derive(Debug, thiserror::Error)]
pub enum WithholdError {
    /// Every row would be withheld.
    #[error("withholding the rows to review leaves nothing to release: reject the job instead")]
    NothingLeft,
    /// A finding on the whole result (a subquery, an incomplete check).
    #[error(
        "what would remain fails a check on the whole result ({rule}: {message}): reject the \
         job, or let the analyst submit the query again"
    )]
    WholeResult {
        /// The rule.
        rule: String,
        /// Its message.
        message: String,
    },
    /// The bound on rounds was reached.
    #[error("complementary suppression did not settle within {0} rounds: reject the job")]
    Unsettled(usize),
    /// The checks could not run.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// One row withheld at approval, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WithheldRow {
    /// Position in the computed result.
    pub row: u64,
    /// The rule that withheld it (`flagged` for a row to review the reviewer left out).
    pub finding: Finding,
}

/// Rounds of complementary suppression at most: each round withholds at least one more row,
/// so a result of n rows needs at most n; the bound keeps a hostile ledger from looping.
const MAX_ROUNDS: usize = 10_000;

/// Withholds the computed rows `flagged` from a result whose populations are `units` (their
/// `released_row` as the run decided), then every released row that the checks against
/// `releases` fail once they are withheld. `units` is left as released now; the answer lists
/// every withheld row in the order it was withheld. An error when a finding falls on the
/// whole result (a subquery, an incomplete check) or when nothing would remain.
pub fn withhold(
    units: &mut [RowUnits],
    flagged: &[u64],
    rules: &ReleaseRules,
    releases: &dyn Releases,
) -> Result<Vec<WithheldRow>, WithholdError> {
    let mut out = Vec::new();
    for u in units.iter_mut() {
        if u.row < SUBQUERY_ROWS && u.released_row.is_some() && flagged.contains(&u.row) {
            u.released_row = None;
            out.push(WithheldRow {
                row: u.row,
                finding: Finding::review(
                    "flagged",
                    "a row to review, withheld by the reviewer's approval".into(),
                )
                .about("a row to review, withheld at approval"),
            });
        }
    }
    for _ in 0..MAX_ROUNDS {
        let any_released = units
            .iter()
            .any(|u| u.row < SUBQUERY_ROWS && u.released_row.is_some());
        if !any_released {
            return Err(WithholdError::NothingLeft);
        }
        for u in units.iter_mut().filter(|u| u.row >= SUBQUERY_ROWS) {
            u.released_row = Some(u.row);
        }
        let findings = differencing_findings(units, rules, releases)?;
        if let Some((_, f)) = findings.iter().find(|(row, _)| *row >= SUBQUERY_ROWS) {
            return Err(WithholdError::WholeResult {
                rule: f.rule.clone(),
                message: f.message.clone(),
            });
        }
        let mut more = false;
        for (row, finding) in findings {
            if let Some(u) = units
                .iter_mut()
                .find(|u| u.row == row && u.released_row.is_some())
            {
                u.released_row = None;
                out.push(WithheldRow { row, finding });
                more = true;
            }
        }
        if !more {
            return Ok(out);
        }
    }
    Err(WithholdError::Unsettled(MAX_ROUNDS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoReleases;
    use crate::checks::RowPopulation;
    use crate::statistics::Source;
    use crate::unit_set::UnitSet;

    fn row(row: u64, units: std::ops::Range<u32>) -> RowUnits {
        RowUnits {
            row,
            released_row: Some(row),
            sets: vec![RowPopulation {
                dataset: "d".into(),
                source: Source::Group,
                figure: true,
                fingerprint: row,
                set: UnitSet::from_unsorted(units.collect()),
            }],
        }
    }

    fn withheld(units: &[RowUnits]) -> Vec<u64> {
        units
            .iter()
            .filter(|u| u.released_row.is_none())
            .map(|u| u.row)
            .collect()
    }

    #[test]
    fn a_total_that_would_give_a_withheld_part_back_is_withheld_too() {
        // Parts A, B, C (12 units each), their total, and a grand total over A..D.
        let mut units = vec![
            row(0, 0..12),
            row(1, 12..24),
            row(2, 24..36),
            row(3, 0..36),
            row(4, 36..60),
            row(5, 0..60),
        ];
        let w = withhold(&mut units, &[0], &ReleaseRules::default(), &NoReleases).expect("ok");
        // Row 3 less rows 1 and 2 is row 0; then row 5 less row 4 is row 3.
        assert_eq!(withheld(&units), vec![0, 3, 5]);
        let rules: Vec<&str> = w.iter().map(|x| x.finding.rule.as_str()).collect();
        assert_eq!(rules, vec!["flagged", "complementary", "complementary"]);
    }

    #[test]
    fn rows_apart_from_the_withheld_one_stay_released() {
        let mut units = vec![row(0, 0..12), row(1, 12..24), row(2, 24..36)];
        withhold(&mut units, &[1], &ReleaseRules::default(), &NoReleases).expect("ok");
        assert_eq!(withheld(&units), vec![1]);
    }

    #[test]
    fn withholding_every_row_is_refused() {
        let mut units = vec![row(0, 0..12)];
        let e = withhold(&mut units, &[0], &ReleaseRules::default(), &NoReleases)
            .expect_err("nothing remains");
        assert!(e.to_string().contains("reject"), "{e}");
    }
}
