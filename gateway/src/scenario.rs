//! Scenarios and their privacy budgets, in sled.
//!
//! A scenario holds the release settings of one tenant's line of work: the threshold k, whether
//! rows to review need a second reviewer, and, optionally, differential privacy. Its ε/δ ledger
//! is keyed by the scenario's name, which is never reused: no policy change, restart or
//! re-registration resets it, and a query is charged (by compare-and-swap, so concurrent
//! queries cannot overspend) before it runs.

use erhai_policies::dp::{DpSettings, Spent};
use serde::{Deserialize, Serialize};

use crate::error::GatewayError;

/// A scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioRecord {
    /// Unique name.
    pub name: String,
    /// The tenant whose analysts work in it.
    pub tenant: String,
    /// Title.
    pub title: String,
    /// Threshold k; 0 takes the platform's.
    pub k: u64,
    /// Rows to review need a second reviewer.
    pub second_reviewer: bool,
    /// Differential privacy: every query of the scenario runs in DP mode.
    pub dp: Option<DpSettings>,
    /// Admin who created it.
    pub created_by: String,
    /// When.
    pub created_at_ms: i64,
}

impl ScenarioRecord {
    /// Checks the record before it is stored.
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(format!(
                "scenario name `{}` must be 1–64 ASCII letters, digits, `-` or `_`",
                self.name
            ));
        }
        if self.tenant.is_empty() {
            return Err("a scenario belongs to a tenant".into());
        }
        if self.k == 1 {
            return Err("k = 1 would release single persons; use at least 2".into());
        }
        if let Some(dp) = &self.dp {
            dp.validate().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The scope of the scenario's pseudonyms and differencing checks.
    pub fn scope(&self) -> String {
        scenario_scope(&self.name)
    }
}

/// The scope of scenario `name`'s pseudonyms and differencing checks.
pub fn scenario_scope(name: &str) -> String {
    format!("scenario/{name}")
}

/// The scenario trees.
#[derive(Clone)]
pub struct Scenarios {
    scenarios: sled::Tree,
    budget: sled::Tree,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Store(format!("corrupt {what}: {e}"))
}

impl Scenarios {
    /// Opens the trees in `db`.
    pub fn open(db: &sled::Db) -> Result<Scenarios, GatewayError> {
        Ok(Scenarios {
            scenarios: db.open_tree("scenarios")?,
            budget: db.open_tree("dp_budget")?,
        })
    }

    /// Stores a new scenario; false if the name is taken (names are never reused).
    pub fn create(&self, s: &ScenarioRecord) -> Result<bool, GatewayError> {
        let bytes = serde_json::to_vec(s).map_err(|e| GatewayError::Store(e.to_string()))?;
        let fresh = self
            .scenarios
            .compare_and_swap(s.name.as_bytes(), None as Option<&[u8]>, Some(bytes))?
            .is_ok();
        Ok(fresh)
    }

    /// A scenario by name.
    pub fn get(&self, name: &str) -> Result<Option<ScenarioRecord>, GatewayError> {
        self.scenarios
            .get(name.as_bytes())?
            .map(|v| serde_json::from_slice(&v).map_err(|e| corrupt("scenario", e)))
            .transpose()
    }

    /// All scenarios.
    pub fn all(&self) -> Result<Vec<ScenarioRecord>, GatewayError> {
        self.scenarios
            .iter()
            .values()
            .map(|v| serde_json::from_slice(&v?).map_err(|e| corrupt("scenario", e)))
            .collect()
    }

    /// What a scenario has spent.
    pub fn spent(&self, name: &str) -> Result<Spent, GatewayError> {
        Ok(match self.budget.get(name.as_bytes())? {
            Some(v) => serde_json::from_slice(&v).map_err(|e| corrupt("budget", e))?,
            None => Spent::default(),
        })
    }

    /// Charges one query of `epsilon` to the scenario, atomically; `Ok(Err(why))` when the
    /// budget or the per-query cap refuses it.
    pub fn charge(
        &self,
        name: &str,
        settings: &DpSettings,
        epsilon: f64,
    ) -> Result<Result<Spent, String>, GatewayError> {
        loop {
            let old = self.budget.get(name.as_bytes())?;
            let spent: Spent = match &old {
                Some(v) => serde_json::from_slice(v).map_err(|e| corrupt("budget", e))?,
                None => Spent::default(),
            };
            let next = match spent.charge(settings, epsilon) {
                Ok(n) => n,
                Err(why) => return Ok(Err(why)),
            };
            let bytes =
                serde_json::to_vec(&next).map_err(|e| GatewayError::Store(e.to_string()))?;
            if self
                .budget
                .compare_and_swap(name.as_bytes(), old, Some(bytes))?
                .is_ok()
            {
                return Ok(Ok(next));
            }
        }
    }
}
