//! Release rules: what an executed result must satisfy, row by row, before a reviewer sees it.
//!
//! The rules are the settled ones of statistical disclosure control, applied to every population
//! a released figure depends on: a threshold of distinct privacy units for each group, for each
//! side of every condition inside an aggregate and for every subquery; n-k and p% dominance over
//! the per-unit contributions to every term of a sum (positive and negative contributions apart);
//! zero sums; differencing against the other populations of the result and of every earlier
//! release over the same data. Each finding carries a verdict (`review` or `fail`), the rule's
//! name and a message that says what was measured against what. Arithmetic is never left to the
//! reviewer: a row that would let anyone compute one unit's value or membership fails and is
//! suppressed; review findings are for what needs judgment (single-value aggregates, one-category
//! groups, a large share of suppressed rows). The engine measures; this module decides, so the
//! decisions can be read and tested apart from any engine.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;

/// Platform defaults from statistical disclosure control practice.
pub const DEFAULT_K: u64 = 10;
/// Default n of the n-k dominance rule: the two largest contributors.
pub const DEFAULT_DOMINANCE_N: u32 = 2;
/// Default k of the n-k dominance rule, in basis points (0.90).
pub const DEFAULT_DOMINANCE_K_BP: u32 = 9_000;
/// Default p of the p% rule, in basis points (0.10).
pub const DEFAULT_P_BP: u32 = 1_000;
/// Default share of suppressed rows above which the whole result goes to review (0.50).
pub const DEFAULT_MAX_SUPPRESSED_BP: u32 = 5_000;

/// Basis points per unit: ratios are kept as integers so that boundaries (exactly 0.90) are
/// decided exactly, not by the rounding of a binary fraction.
const BP: f64 = 10_000.0;

/// The release rules of a deployment (per scenario, once scenarios exist).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRules {
    /// Minimum distinct privacy units behind every released row, per contributing dataset.
    pub k: u64,
    /// Maximum rows a result may hold.
    pub max_rows: u64,
    /// n of the n-k rule: how many of the largest contributors are added up.
    pub dominance_n: u32,
    /// k of the n-k rule in basis points: the n largest may hold at most this share of a sum.
    pub dominance_k_bp: u32,
    /// p of the p% rule in basis points: the remainder after the two largest must be at least
    /// this share of the largest.
    pub p_bp: u32,
    /// Share of suppressed rows (basis points) above which the whole result goes to review.
    pub max_suppressed_bp: u32,
}

impl Default for ReleaseRules {
    fn default() -> Self {
        ReleaseRules {
            k: DEFAULT_K,
            max_rows: 100_000,
            dominance_n: DEFAULT_DOMINANCE_N,
            dominance_k_bp: DEFAULT_DOMINANCE_K_BP,
            p_bp: DEFAULT_P_BP,
            max_suppressed_bp: DEFAULT_MAX_SUPPRESSED_BP,
        }
    }
}

/// How bad a finding is; a row and a job take the worst of theirs.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum Verdict {
    /// Releasable after review.
    #[default]
    Pass,
    /// Shown to the reviewer highlighted; released only if the reviewer approves.
    Review,
    /// Suppressed: never released.
    Fail,
}

impl Verdict {
    /// The lower-case name used in reports and the API.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Review => "review",
            Verdict::Fail => "fail",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One rule that fired on a row or a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What it does to the row.
    pub verdict: Verdict,
    /// The rule's name: `threshold`, `population`, `dominance-nk`, `dominance-p`, `zero`,
    /// `one-category`, `single-value`, `differencing`, `complementary`, `subquery`,
    /// `suppressed-share`, `differencing-incomplete`.
    pub rule: String,
    /// What was measured against what.
    pub message: String,
    /// The reason without this row's figures or values (`sector determines district`), so
    /// that a reviewer sees the rows one reason flagged together; empty: the message is it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub about: String,
}

impl Finding {
    /// A finding with its verdict, rule and message.
    pub fn new(verdict: Verdict, rule: &str, message: String) -> Finding {
        Finding {
            verdict,
            rule: rule.to_string(),
            message,
            about: String::new(),
        }
    }

    /// The same finding with its reason stated without the row's figures or values.
    pub fn about(mut self, about: impl Into<String>) -> Finding {
        self.about = about.into();
        self
    }

    /// What groups this finding with others of the same reason: the rule and its value-free
    /// reason (the message when it has none).
    pub fn reason(&self) -> &str {
        if self.about.is_empty() {
            &self.message
        } else {
            &self.about
        }
    }

    /// A finding that sends the row to the reviewer.
    pub fn review(rule: &str, message: String) -> Finding {
        Finding::new(Verdict::Review, rule, message)
    }

    /// A finding that suppresses the row.
    pub fn fail(rule: &str, message: String) -> Finding {
        Finding::new(Verdict::Fail, rule, message)
    }
}

/// The per-unit contributions of one sign to one term of a sum (or of the sum inside an
/// average) in one output row, as the engine measured them: magnitudes, largest first. Units
/// whose net contribution is positive and those whose net contribution is negative are judged
/// apart, so that contributions that cancel cannot hide a dominant one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Contributions {
    /// Sum of the magnitudes of the per-unit contributions of this sign.
    pub total: f64,
    /// The largest magnitudes, descending (at least as many as the rules need:
    /// `max(dominance_n, 2)`, fewer when fewer units contributed).
    pub largest: Vec<f64>,
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
        if !(1..=10).contains(&self.dominance_n) {
            return Err(PolicyError::Invalid(format!(
                "dominance n = {} must be between 1 and 10",
                self.dominance_n
            )));
        }
        for (name, bp) in [
            ("dominance k", self.dominance_k_bp),
            ("p%", self.p_bp),
            ("suppressed share", self.max_suppressed_bp),
        ] {
            if bp == 0 || bp > 10_000 {
                return Err(PolicyError::Invalid(format!(
                    "{name} = {bp} basis points must be between 1 and 10000"
                )));
            }
        }
        Ok(())
    }

    /// How many of the largest contributions the engine must report.
    pub fn largest_needed(&self) -> usize {
        self.dominance_n.max(2) as usize
    }

    /// The threshold rule for one contributing dataset: fewer than `k` distinct privacy units
    /// fail the row.
    pub fn threshold(&self, dataset: &str, units: u64) -> Option<Finding> {
        (units < self.k).then(|| {
            Finding::new(
                Verdict::Fail,
                "threshold",
                format!(
                    "{units} distinct privacy units of {dataset} behind this row; at least {} \
                     are required",
                    self.k
                ),
            )
            .about(format!("fewer than k = {} units of {dataset}", self.k))
        })
    }

    /// The dominance rules for one term of a sum (`what`, e.g. `sum(stays.nights)`) over the
    /// privacy units of `dataset`, one sign at a time. A cell is sensitive under n-k when its n
    /// largest contributions hold k of the total *or more* (the ACRO reference: exactly 0.90
    /// fails), and under p% when the total less the two largest is *less than* p of the largest.
    pub fn dominance(&self, what: &str, dataset: &str, c: &Contributions) -> Vec<Finding> {
        let mut out = Vec::new();
        if c.total <= 0.0 {
            return out;
        }
        let n = self.dominance_n as usize;
        let top_n: f64 = c.largest.iter().take(n).sum();
        if top_n * BP >= f64::from(self.dominance_k_bp) * c.total {
            out.push(Finding::new(
                Verdict::Fail,
                "dominance-nk",
                format!(
                    "the {n} largest units of {dataset} hold {:.1}% of {what}; less than {:.1}% \
                     is required (n-k rule {n}/{:.2})",
                    100.0 * top_n / c.total,
                    f64::from(self.dominance_k_bp) / 100.0,
                    f64::from(self.dominance_k_bp) / BP,
                ),
            )
            .about(format!("the {n} largest units of {dataset} dominate {what}")));
        }
        let x1 = c.largest.first().copied().unwrap_or(0.0);
        let x2 = c.largest.get(1).copied().unwrap_or(0.0);
        let rest = (c.total - x1 - x2).max(0.0);
        if rest * BP < f64::from(self.p_bp) * x1 {
            out.push(
                Finding::new(
                    Verdict::Fail,
                    "dominance-p",
                    format!(
                        "in {what}, the units of {dataset} other than the two largest contribute \
                     {:.1}% of the largest: the second largest could estimate it within less \
                     than {:.1}% (p% rule)",
                        100.0 * rest / x1,
                        f64::from(self.p_bp) / 100.0,
                    ),
                )
                .about(format!(
                    "the largest unit of {dataset} in {what} can be estimated (p%)"
                )),
            );
        }
        out
    }

    /// A population a released figure depends on: the units of `dataset` on one side of a
    /// condition inside an aggregate, or behind a subquery (`what` says which). Fewer than `k`
    /// fail the row, and so does none at all: an empty side tells as much as a side of one
    /// (which rows hold the person shows in which rows are missing). Only a side that exists
    /// because stored values may be null (`may_be_empty`) may be empty.
    pub fn population(
        &self,
        dataset: &str,
        what: &str,
        units: u64,
        may_be_empty: bool,
    ) -> Option<Finding> {
        if units >= self.k || (units == 0 && may_be_empty) {
            return None;
        }
        Some(Finding::new(
            Verdict::Fail,
            "population",
            format!(
                "{units} distinct privacy units of {dataset} in {what}; every population a released \
                 figure depends on needs at least {} (both sides of a condition count: the \
                 complement of a small branch discloses as much as the branch)",
                self.k
            ),
        )
        .about(format!("fewer than k = {} units of {dataset} in {what}", self.k)))
    }

    /// A population equal to one of an earlier release (`other`) but defined otherwise: the two
    /// definitions select the same units, which is a disclosure of its own — an oracle on
    /// whatever tells them apart (a condition that holds for one person or not).
    pub fn coincidence(&self, dataset: &str, other: &str) -> Finding {
        Finding::new(
            Verdict::Fail,
            "differencing",
            format!(
                "its units of {dataset} are exactly those of {other}, which was defined by other \
                 conditions: releasing it would tell that the difference of the two conditions \
                 selects nobody"
            ),
        )
        .about(format!(
            "its units of {dataset} equal those of a released population defined otherwise"
        ))
    }

    /// A sum whose every per-unit contribution is zero: the figure says that no unit of the
    /// population has what was summed.
    pub fn zero_sum(&self, what: &str) -> Finding {
        Finding::new(
            Verdict::Fail,
            "zero",
            format!(
                "every unit contributes 0 to {what}: a zero tells that no unit of this group has \
                 what was summed"
            ),
        )
    }

    /// Two populations (of this result, or one of an earlier release) whose units differ by
    /// fewer than `k` but not by none: the two figures together would disclose those units.
    pub fn differencing(&self, dataset: &str, difference: u64, other: &str) -> Option<Finding> {
        (difference > 0 && difference < self.k).then(|| {
            Finding::new(
                Verdict::Fail,
                "differencing",
                format!(
                    "its units of {dataset} differ from those of {other} by {difference} (fewer \
                     than k = {}): the two figures together would disclose those units",
                    self.k
                ),
            )
            .about(format!(
                "its units of {dataset} differ from another released population by fewer than \
                 k = {}",
                self.k
            ))
        })
    }

    /// The share-of-suppressed-rows rule for a whole result.
    pub fn suppressed_share(&self, suppressed: u64, computed: u64) -> Option<Finding> {
        if computed == 0 || suppressed == 0 {
            return None;
        }
        let share_bp = (suppressed as f64) * BP / (computed as f64);
        (share_bp > f64::from(self.max_suppressed_bp)).then(|| {
            Finding::review(
                "suppressed-share",
                format!(
                    "{suppressed} of {computed} rows ({:.1}%) were suppressed, more than {:.1}%: \
                     released rows and margins known elsewhere may let suppressed cells be \
                     recovered",
                    share_bp / 100.0,
                    f64::from(self.max_suppressed_bp) / 100.0
                ),
            )
        })
    }
}

/// The worst verdict of `findings` (pass when there are none).
pub fn worst(findings: &[Finding]) -> Verdict {
    findings
        .iter()
        .map(|f| f.verdict)
        .max()
        .unwrap_or(Verdict::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One sign's contributions from per-unit values (magnitudes).
    fn cell(values: &[f64]) -> Contributions {
        let mut largest: Vec<f64> = values.iter().map(|v| v.abs()).collect();
        largest.sort_by(|a, b| b.total_cmp(a));
        Contributions {
            total: largest.iter().sum(),
            largest,
        }
    }

    fn rules(r: &ReleaseRules, values: &[f64]) -> Vec<String> {
        r.dominance("sum(x)", "d", &cell(values))
            .into_iter()
            .map(|f| f.rule)
            .collect()
    }

    #[test]
    fn threshold_boundaries() {
        let r = ReleaseRules::default();
        assert_eq!(r.threshold("a", 10), None);
        assert_eq!(r.threshold("a", 9).map(|f| f.verdict), Some(Verdict::Fail));
        assert!(r.threshold("a", 0).is_some());
        let bad = ReleaseRules {
            k: 1,
            ..ReleaseRules::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn populations_need_k_on_every_side_and_only_null_sides_may_be_empty() {
        let r = ReleaseRules::default();
        assert_eq!(r.population("a", "branch", 10, false), None);
        assert!(r.population("a", "branch", 9, false).is_some());
        assert!(r.population("a", "branch", 1, false).is_some());
        // An empty branch fails: which rows are missing would show where the person is.
        assert!(r.population("a", "branch", 0, false).is_some());
        assert_eq!(r.population("a", "null values", 0, true), None);
        assert!(r.population("a", "null values", 1, true).is_some());
    }

    /// The reference table of crafted cells: each row's expected rules under the defaults
    /// (n-k 2/0.90 failing at 0.90 and above, as the ACRO reference does; p 0.10).
    #[test]
    fn dominance_reference_cells() {
        let r = ReleaseRules::default();
        let table: &[(&[f64], &[&str])] = &[
            // Ten equal contributors: nothing fires.
            (&[10.0; 10], &[]),
            // Two largest exactly 90% of the total: fails n-k (ACRO: (x1 + x2) / total >= 0.90);
            // the rest (10) is 22% of the largest (45): passes p%.
            (&[45.0, 45.0, 5.0, 5.0], &["dominance-nk"]),
            // Just under 90%: passes.
            (&[44.9, 45.0, 5.05, 5.05], &[]),
            // Two largest 90.1%: fails n-k.
            (&[451.0, 450.0, 50.0, 49.0], &["dominance-nk"]),
            // p% boundary: rest exactly 10% of the largest passes p% (n-k fires: 110/120).
            (&[100.0, 10.0, 5.0, 5.0], &["dominance-nk"]),
            // A remainder of 9 against a largest of 100 fails p%.
            (&[100.0, 100.0, 4.5, 4.5], &["dominance-nk", "dominance-p"]),
            // Large contributors that do not dominate.
            (&[100.0, 60.0, 20.0, 20.0, 20.0, 20.0, 20.0], &[]),
            (&[100.0, 60.0, 10.0], &["dominance-nk"]),
            // One contributor: both rules.
            (&[7.0], &["dominance-nk", "dominance-p"]),
            // A zero total: nothing to dominate (zero sums fail by their own rule).
            (&[0.0, 0.0], &[]),
        ];
        for (values, expected) in table {
            assert_eq!(&rules(&r, values), expected, "cell {values:?}");
        }
    }

    #[test]
    fn p_rule_boundary_is_exact() {
        let r = ReleaseRules::default();
        let c = Contributions {
            total: 200.0,
            largest: vec![100.0, 90.0],
        };
        // rest 10 = 10% of 100: passes p%; n-k 190/200 = 95% fails.
        let f: Vec<String> = r
            .dominance("s", "d", &c)
            .into_iter()
            .map(|f| f.rule)
            .collect();
        assert_eq!(f, vec!["dominance-nk"]);
        let c = Contributions {
            total: 199.9,
            largest: vec![100.0, 90.0],
        };
        assert!(
            r.dominance("s", "d", &c)
                .iter()
                .any(|f| f.rule == "dominance-p")
        );
    }

    #[test]
    fn differencing_fails_below_k_and_never_at_zero() {
        let r = ReleaseRules::default();
        assert_eq!(r.differencing("d", 0, "x"), None);
        assert_eq!(
            r.differencing("d", 1, "x").map(|f| f.verdict),
            Some(Verdict::Fail)
        );
        assert!(r.differencing("d", 9, "x").is_some());
        assert_eq!(r.differencing("d", 10, "x"), None);
        assert_eq!(r.zero_sum("sum(x)").verdict, Verdict::Fail);
    }

    #[test]
    fn suppressed_share_and_worst() {
        let r = ReleaseRules::default();
        assert_eq!(r.suppressed_share(5, 10), None);
        assert_eq!(
            r.suppressed_share(6, 10).map(|f| f.verdict),
            Some(Verdict::Review)
        );
        assert_eq!(worst(&[]), Verdict::Pass);
        let f = r.threshold("a", 1).into_iter().collect::<Vec<_>>();
        assert_eq!(worst(&f), Verdict::Fail);
    }
}
