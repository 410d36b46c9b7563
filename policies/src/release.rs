//! Release rules: what an executed result must satisfy, row by row, before a reviewer sees it.

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;

/// Platform defaults from statistical disclosure control practice.
pub const DEFAULT_K: u64 = 10;

/// The release rules of a deployment (per scenario, once scenarios exist).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRules {
    /// Minimum distinct privacy units behind every released row, per contributing dataset.
    pub k: u64,
    /// Maximum rows a result may hold.
    pub max_rows: u64,
}

impl Default for ReleaseRules {
    fn default() -> Self {
        ReleaseRules {
            k: DEFAULT_K,
            max_rows: 100_000,
        }
    }
}

impl ReleaseRules {
    /// Checks the settings themselves.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.k < 2 {
            return Err(PolicyError::Invalid(format!(
                "threshold k = {} would release single persons; it must be at least 2",
                self.k
            )));
        }
        if self.max_rows == 0 {
            return Err(PolicyError::Invalid("max_rows must be at least 1".into()));
        }
        Ok(())
    }

    /// Decides one row from the distinct privacy units behind it, one count per contributing
    /// dataset (`(dataset, units)`).
    pub fn check_row(&self, units: &[(String, u64)]) -> RowOutcome {
        let reasons: Vec<String> = units
            .iter()
            .filter(|(_, n)| *n < self.k)
            .map(|(d, n)| {
                format!(
                    "{n} distinct privacy units of {d} behind this row; at least {} are required",
                    self.k
                )
            })
            .collect();
        if reasons.is_empty() {
            RowOutcome::Pass
        } else {
            RowOutcome::Fail(reasons)
        }
    }
}

/// The outcome of the automatic checks for one row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RowOutcome {
    /// Releasable (subject to review).
    Pass,
    /// Suppressed, with reasons.
    Fail(Vec<String>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_boundaries() {
        let r = ReleaseRules::default();
        assert_eq!(r.check_row(&[("a".into(), 10)]), RowOutcome::Pass);
        assert!(matches!(
            r.check_row(&[("a".into(), 9)]),
            RowOutcome::Fail(_)
        ));
        assert!(matches!(
            r.check_row(&[("a".into(), 0)]),
            RowOutcome::Fail(_)
        ));
        // Across a join, every dataset must meet its own threshold.
        assert!(matches!(
            r.check_row(&[("a".into(), 50), ("b".into(), 3)]),
            RowOutcome::Fail(_)
        ));
        assert!(ReleaseRules { k: 1, max_rows: 1 }.validate().is_err());
    }
}
