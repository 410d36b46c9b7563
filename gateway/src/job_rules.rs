//! The rules a production job is held to, fixed when it is submitted: the threshold and
//! dominance rules, differential privacy (settings and ε), and how many reviewers it needs.
//!
//! One value decides the check at submission, the run, the review and the re-check at approval,
//! so a scenario changed while a job waits neither loosens nor tightens the job (the scenario is
//! read once, at submission).

use erhai_engine::{CheckReport, Disclosure, DpRequest};
use erhai_policies::dp::DpSettings;
use erhai_policies::{ReleaseRules, Verdict};
use serde::{Deserialize, Serialize};

use crate::config::ReleaseConfig;
use crate::scenario::ScenarioRecord;

/// A job's rules, frozen at submission and stored with the job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRules {
    /// Threshold, dominance and result-size rules (the scenario's k when it sets one).
    pub release: ReleaseRules,
    /// Differential privacy: every query of a DP scenario is answered with noise.
    pub dp: Option<DpSettings>,
    /// ε this query spends (DP only; charged at submission).
    pub epsilon: Option<f64>,
    /// A result with rows to review needs a second reviewer.
    pub second_reviewer: bool,
}

impl JobRules {
    /// The rules of a query in `scenario` under the platform's `platform` rules and release
    /// configuration; `epsilon` is what the analyst asked (0: the scenario's per-query ε).
    pub fn of(
        platform: &ReleaseRules,
        config: &ReleaseConfig,
        scenario: &ScenarioRecord,
        epsilon: f64,
    ) -> JobRules {
        let mut release = platform.clone();
        // 0 means "the platform's": decoded here and nowhere else.
        if scenario.k > 0 {
            release.k = scenario.k;
        }
        JobRules {
            release,
            dp: scenario.dp,
            epsilon: scenario.dp.map(|dp| {
                if epsilon == 0.0 {
                    dp.epsilon_per_query
                } else {
                    epsilon
                }
            }),
            second_reviewer: config.second_reviewer || scenario.second_reviewer,
        }
    }

    /// What the engine protects the result with.
    pub fn disclosure(&self) -> Disclosure {
        match self.dp {
            Some(settings) => Disclosure::Noise(DpRequest {
                settings,
                epsilon: self.epsilon.unwrap_or(settings.epsilon_per_query),
            }),
            None => Disclosure::Checked(self.release.clone()),
        }
    }

    /// Approvals a result with `report` needs: two when it has rows to review and the rules ask
    /// a second reviewer for those, else one.
    pub fn approvals_needed(&self, report: Option<&CheckReport>) -> usize {
        let review = report.is_some_and(|r| r.rows_review > 0 || r.outcome() == Verdict::Review);
        if review && self.second_reviewer { 2 } else { 1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(k: u64, second: bool, dp: Option<DpSettings>) -> ScenarioRecord {
        serde_json::from_value(serde_json::json!({
            "name": "s", "tenant": "t", "title": "T", "k": k, "second_reviewer": second,
            "dp": dp, "created_by": "a", "created_at_ms": 0,
        }))
        .expect("a scenario record")
    }

    #[test]
    fn a_scenario_k_of_zero_takes_the_platform_s() {
        let platform = ReleaseRules::default();
        let config = ReleaseConfig::default();
        let r = JobRules::of(&platform, &config, &scenario(0, false, None), 0.0);
        assert_eq!(r.release.k, platform.k);
        let r = JobRules::of(&platform, &config, &scenario(25, false, None), 0.0);
        assert_eq!(r.release.k, 25);
        assert!(matches!(r.disclosure(), Disclosure::Checked(rules) if rules.k == 25));
    }

    #[test]
    fn dp_takes_the_asked_epsilon_or_the_scenario_s() {
        let dp = DpSettings {
            epsilon_total: 10.0,
            delta_total: 1e-5,
            epsilon_per_query: 0.5,
            delta_per_query: 1e-7,
            max_groups_per_unit: 1,
            max_rows_per_unit: 1,
        };
        let (platform, config) = (ReleaseRules::default(), ReleaseConfig::default());
        let r = JobRules::of(&platform, &config, &scenario(0, false, Some(dp)), 0.0);
        assert_eq!(r.epsilon, Some(0.5));
        let r = JobRules::of(&platform, &config, &scenario(0, false, Some(dp)), 0.25);
        assert!(matches!(r.disclosure(), Disclosure::Noise(q) if q.epsilon == 0.25));
    }

    #[test]
    fn a_second_reviewer_only_for_rows_to_review_when_asked() {
        let (platform, mut config) = (ReleaseRules::default(), ReleaseConfig::default());
        let mut report = CheckReport::default();
        let plain = JobRules::of(&platform, &config, &scenario(0, false, None), 0.0);
        let asked = JobRules::of(&platform, &config, &scenario(0, true, None), 0.0);
        assert_eq!(asked.approvals_needed(Some(&report)), 1);
        report.rows_review = 1;
        assert_eq!(plain.approvals_needed(Some(&report)), 1);
        assert_eq!(asked.approvals_needed(Some(&report)), 2);
        config.second_reviewer = true;
        let platform_asks = JobRules::of(&platform, &config, &scenario(0, false, None), 0.0);
        assert_eq!(platform_asks.approvals_needed(Some(&report)), 2);
        assert_eq!(platform_asks.approvals_needed(None), 1);
    }
}
