//! Differential privacy, as a scenario runs it: the settings, the budget arithmetic and the
//! calibration of noise and group selection. Pure: the engine samples the noise, the gateway
//! keeps the ledger.
//!
//! Each privacy unit contributes to at most `max_groups_per_unit` groups (m) and, within a
//! group, at most `max_rows_per_unit` rows (c) with values clamped to the declared bounds. The
//! L1 sensitivity of a count over all groups is then m·c, of a sum m·c·max(|lo|, |hi|). A
//! query's ε is split evenly over its noisy statistics; a group is released only when its noisy
//! count clears a threshold τ chosen so that a group made by one unit appears with probability
//! at most δ (the query's δ).

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;

/// A scenario's differential-privacy settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpSettings {
    /// Total ε the scenario may ever spend.
    pub epsilon_total: f64,
    /// Total δ the scenario may ever spend.
    pub delta_total: f64,
    /// Largest ε one query may ask.
    pub epsilon_per_query: f64,
    /// δ each query spends (on group selection).
    pub delta_per_query: f64,
    /// Groups one unit may contribute to (m).
    pub max_groups_per_unit: u32,
    /// Rows one unit may contribute within a group (c).
    pub max_rows_per_unit: u32,
}

impl Eq for DpSettings {}

impl DpSettings {
    /// Checks the settings themselves.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let bad = |m: String| Err(PolicyError::Invalid(m));
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(self.epsilon_total) || !positive(self.epsilon_per_query) {
            return bad("ε budgets must be positive numbers".into());
        }
        if self.epsilon_per_query > self.epsilon_total {
            return bad(format!(
                "the per-query ε {} exceeds the total {}",
                self.epsilon_per_query, self.epsilon_total
            ));
        }
        if !(positive(self.delta_total) && self.delta_total < 1e-3) {
            return bad(format!(
                "δ total {} must be positive and below 0.001",
                self.delta_total
            ));
        }
        if !(positive(self.delta_per_query) && self.delta_per_query <= self.delta_total) {
            return bad(format!(
                "δ per query {} must be positive and at most the total {}",
                self.delta_per_query, self.delta_total
            ));
        }
        if !(1..=100).contains(&self.max_groups_per_unit)
            || !(1..=10_000).contains(&self.max_rows_per_unit)
        {
            return bad(format!(
                "a unit may count in 1 to 100 groups with 1 to 10000 rows each; got {} and {}",
                self.max_groups_per_unit, self.max_rows_per_unit
            ));
        }
        Ok(())
    }
}

/// What a scenario has spent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Spent {
    /// ε spent.
    pub epsilon: f64,
    /// δ spent.
    pub delta: f64,
    /// Queries charged.
    pub queries: u64,
}

/// Why a query may not spend its ε: the figures the analyst needs to ask for less, or to see
/// that the scenario's budget is gone.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BudgetError {
    /// ε must be a positive number.
    #[error("ε = {0} must be a positive number")]
    NotPositive(f64),
    /// More than one query may spend.
    #[error("ε = {asked} exceeds the scenario's per-query cap of {cap}")]
    OverPerQueryCap {
        /// ε asked.
        asked: f64,
        /// The scenario's cap.
        cap: f64,
    },
    /// Not enough ε left.
    #[error("the scenario has ε {left:.4} of {total} left; this query asks {asked}")]
    EpsilonSpent {
        /// ε left.
        left: f64,
        /// The scenario's total.
        total: f64,
        /// ε asked.
        asked: f64,
    },
    /// Not enough δ left.
    #[error("the scenario has δ {left:e} left; a query spends {per_query:e}")]
    DeltaSpent {
        /// δ left.
        left: f64,
        /// δ per query.
        per_query: f64,
    },
}

impl Spent {
    /// The ledger after charging one query of `epsilon`, or why it may not run.
    pub fn charge(&self, s: &DpSettings, epsilon: f64) -> Result<Spent, BudgetError> {
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return Err(BudgetError::NotPositive(epsilon));
        }
        if epsilon > s.epsilon_per_query {
            return Err(BudgetError::OverPerQueryCap {
                asked: epsilon,
                cap: s.epsilon_per_query,
            });
        }
        // A tolerance for the sums of decimal fractions (0.1 + 0.2): never more than 1e-9 ε.
        let left = s.epsilon_total - self.epsilon;
        if epsilon > left + 1e-9 {
            return Err(BudgetError::EpsilonSpent {
                left: left.max(0.0),
                total: s.epsilon_total,
                asked: epsilon,
            });
        }
        let delta_left = s.delta_total - self.delta;
        if s.delta_per_query > delta_left + 1e-15 {
            return Err(BudgetError::DeltaSpent {
                left: delta_left,
                per_query: s.delta_per_query,
            });
        }
        Ok(Spent {
            epsilon: self.epsilon + epsilon,
            delta: self.delta + s.delta_per_query,
            queries: self.queries + 1,
        })
    }
}

/// The noise calibration of one query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// ε of each noisy statistic.
    pub epsilon_each: f64,
    /// Discrete Laplace scale of the counts.
    pub count_scale: f64,
    /// Noisy count a group needs to be released.
    pub threshold: f64,
}

/// Calibrates a query of `epsilon`, `delta` with `statistics` noisy statistics (the count
/// included).
pub fn calibrate(s: &DpSettings, epsilon: f64, statistics: usize) -> Calibration {
    let m = f64::from(s.max_groups_per_unit);
    let c = f64::from(s.max_rows_per_unit);
    let epsilon_each = epsilon / statistics.max(1) as f64;
    let count_scale = m * c / epsilon_each;
    // One unit alone makes a group of count ≤ c; P(c + noise ≥ τ) ≤ ½·exp(−(τ − c)/b) per group,
    // over at most m groups: τ = c + b·ln(m / (2δ)).
    let threshold = c + count_scale * (m / (2.0 * s.delta_per_query)).ln();
    Calibration {
        epsilon_each,
        count_scale,
        threshold,
    }
}

/// The discrete Laplace scale of a sum whose values lie in `[lo, hi]`.
pub fn sum_scale(s: &DpSettings, epsilon_each: f64, lo: f64, hi: f64) -> f64 {
    f64::from(s.max_groups_per_unit) * f64::from(s.max_rows_per_unit) * lo.abs().max(hi.abs())
        / epsilon_each
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DpSettings {
        DpSettings {
            epsilon_total: 3.0,
            delta_total: 1e-5,
            epsilon_per_query: 1.0,
            delta_per_query: 1e-6,
            max_groups_per_unit: 1,
            max_rows_per_unit: 1,
        }
    }

    #[test]
    fn the_budget_is_spent_and_never_exceeded() {
        let s = settings();
        s.validate().expect("valid");
        let mut spent = Spent::default();
        for _ in 0..3 {
            spent = spent.charge(&s, 1.0).expect("within budget");
        }
        assert_eq!(spent.queries, 3);
        let e = spent.charge(&s, 0.1).expect_err("over budget");
        assert!(matches!(e, BudgetError::EpsilonSpent { .. }), "{e}");
        assert!(e.to_string().contains("left"), "{e}");
        assert!(Spent::default().charge(&s, 1.5).is_err());
        assert!(Spent::default().charge(&s, 0.0).is_err());
        assert!(Spent::default().charge(&s, f64::NAN).is_err());
        // Decimal fractions add up to the total without a false refusal.
        let fine = DpSettings {
            delta_per_query: 1e-7,
            ..s
        };
        let mut spent = Spent::default();
        for _ in 0..30 {
            spent = spent.charge(&fine, 0.1).expect("0.1 × 30 = 3");
        }
        // δ runs out too: ten queries of 1e-6 spend a total of 1e-5.
        let mut spent = Spent::default();
        for _ in 0..10 {
            spent = spent.charge(&s, 0.01).expect("within δ");
        }
        let e = spent.charge(&s, 0.01).expect_err("δ spent");
        assert!(matches!(e, BudgetError::DeltaSpent { .. }), "{e}");
        assert!(e.to_string().contains("δ"));
    }

    #[test]
    fn calibration_follows_the_bounds() {
        let s = settings();
        let c = calibrate(&s, 1.0, 2);
        assert_eq!(c.epsilon_each, 0.5);
        assert_eq!(c.count_scale, 2.0);
        // τ = 1 + 2·ln(1 / 2e-6) ≈ 27.2.
        assert!((c.threshold - 27.24).abs() < 0.01, "{}", c.threshold);
        assert_eq!(sum_scale(&s, 0.5, -3.0, 2.0), 6.0);
        let wide = DpSettings {
            max_groups_per_unit: 2,
            max_rows_per_unit: 5,
            ..s
        };
        assert_eq!(calibrate(&wide, 1.0, 1).count_scale, 10.0);
        assert!(
            DpSettings {
                epsilon_per_query: 5.0,
                ..s
            }
            .validate()
            .is_err()
        );
    }
}
