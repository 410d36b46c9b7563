//! Tenants (authorized operating entities) and their operating agreements.
//!
//! A tenant's users act only while its agreement is in force: from its start date to its end
//! date, status active. A suspended tenant (a violation found) may only read its own case and
//! submit a rectification report; the authority then restores it or terminates the agreement.
//! Terminated is final. Every transition names who, when and why, and is kept on the record (and
//! audited by the call that made it). The gate runs at every call, from the record as it is then.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::authz::Action;
use crate::error::GatewayError;
use crate::records::Records;

/// Where a tenant's agreement stands; its names (serde, `Display`, [`TenantStatus::name`]) are
/// the API's.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, strum::Display, strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum TenantStatus {
    /// Created; no agreement dates yet.
    Pending,
    /// The agreement is in force (between its dates).
    Active,
    /// A violation was found: only the rectification case is open to the tenant.
    Suspended,
    /// The agreement ended early; final.
    Terminated,
}

impl TenantStatus {
    /// The lower-case name.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// One change of a tenant's agreement or status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// What was done: `agreement`, `suspend`, `restore`, `terminate`, `rectification`.
    pub what: String,
    /// Status after it.
    pub status: TenantStatus,
    /// Who.
    pub by: String,
    /// Why (or the rectification report).
    pub reason: String,
    /// When.
    pub at_ms: i64,
}

/// A tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// Unique name (users' `tenant`).
    pub name: String,
    /// The entity's name.
    pub title: String,
    /// Where its agreement stands.
    pub status: TenantStatus,
    /// First day of the agreement.
    #[serde(with = "ymd")]
    pub start: Option<NaiveDate>,
    /// Last day of the agreement.
    #[serde(with = "ymd")]
    pub end: Option<NaiveDate>,
    /// Every change, oldest first.
    pub history: Vec<Transition>,
    /// Admin who created it.
    pub created_by: String,
    /// When.
    pub created_at_ms: i64,
}

/// Dates as `YYYY-MM-DD` text in stored records.
pub(crate) mod ymd {
    use chrono::NaiveDate;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<NaiveDate>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| NaiveDate::parse_from_str(&t, "%Y-%m-%d").map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// What a suspended tenant's users may still do.
pub const WHILE_SUSPENDED: [Action; 3] = [
    Action::WhoAmI,
    Action::GetTenant,
    Action::SubmitRectification,
];

/// Why a tenant's users may not act, or why its record may not change as asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TenantRefusal {
    /// Created, not yet dated by the authority.
    #[error(
        "tenant {tenant} has no operating agreement in force yet; the authority sets its dates"
    )]
    NoAgreementYet {
        /// The tenant.
        tenant: String,
    },
    /// Terminated: final.
    #[error(
        "the operating agreement of tenant {tenant} was terminated{}: its users have no access; \
         jobs and releases stay in the audit",
        reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
    )]
    Terminated {
        /// The tenant.
        tenant: String,
        /// Why, as the termination recorded it.
        reason: Option<String>,
    },
    /// Suspended, and the action is not one a suspended tenant may still take.
    #[error(
        "tenant {tenant} is suspended ({reason}): only reading its case (`tenant show`) and \
         submitting a rectification report (`tenant rectify`) are allowed"
    )]
    Suspended {
        /// The tenant.
        tenant: String,
        /// Why, as the suspension recorded it.
        reason: String,
    },
    /// Active, but the day is outside the agreement's dates.
    #[error(
        "the operating agreement of tenant {tenant} runs from {start} to {end}; today is {today}"
    )]
    OutsideAgreement {
        /// The tenant.
        tenant: String,
        /// First day.
        start: NaiveDate,
        /// Last day.
        end: NaiveDate,
        /// The day of the call.
        today: NaiveDate,
    },
    /// Active without dates (a record from outside the API).
    #[error("tenant {tenant} has no agreement dates")]
    NoDates {
        /// The tenant.
        tenant: String,
    },
    /// The agreement's dates are set only while the tenant is pending or active.
    #[error("tenant {tenant} is {status}: its agreement dates cannot change now")]
    DatesFixed {
        /// The tenant.
        tenant: String,
        /// Where it stands.
        status: TenantStatus,
    },
    /// A status change (`suspend`, `restore`, `terminate`) that the status does not allow.
    #[error("tenant {tenant} is {status}: it cannot be {change}d")]
    StatusChange {
        /// The tenant.
        tenant: String,
        /// Where it stands.
        status: TenantStatus,
        /// The change asked for.
        change: String,
    },
    /// A rectification report from a tenant that is not suspended.
    #[error("tenant {tenant} is {status}: rectification reports answer a suspension")]
    NotSuspended {
        /// The tenant.
        tenant: String,
        /// Where it stands.
        status: TenantStatus,
    },
}

impl TenantRecord {
    /// Whether the tenant's users may perform `action` on `today`, else why not.
    pub fn admits(&self, action: Action, today: NaiveDate) -> Result<(), TenantRefusal> {
        let tenant = self.name.clone();
        let last = |status: TenantStatus, what: Option<&str>| {
            self.history
                .iter()
                .rev()
                .find(|h| h.status == status && what.is_none_or(|w| h.what == w))
                .map(|h| h.reason.clone())
        };
        match self.status {
            TenantStatus::Pending => Err(TenantRefusal::NoAgreementYet { tenant }),
            TenantStatus::Terminated => Err(TenantRefusal::Terminated {
                tenant,
                reason: last(TenantStatus::Terminated, None),
            }),
            TenantStatus::Suspended if !WHILE_SUSPENDED.contains(&action) => {
                Err(TenantRefusal::Suspended {
                    tenant,
                    reason: last(TenantStatus::Suspended, Some("suspend")).unwrap_or_default(),
                })
            }
            TenantStatus::Suspended => Ok(()),
            TenantStatus::Active => match (self.start, self.end) {
                (Some(s), Some(e)) if s <= today && today <= e => Ok(()),
                (Some(start), Some(end)) => Err(TenantRefusal::OutsideAgreement {
                    tenant,
                    start,
                    end,
                    today,
                }),
                _ => Err(TenantRefusal::NoDates { tenant }),
            },
        }
    }
}

/// The tenants tree.
#[derive(Clone)]
pub struct Tenants {
    records: Records<TenantRecord>,
}

impl Tenants {
    /// Opens the tree in `db`.
    pub fn open(db: &sled::Db) -> Result<Tenants, GatewayError> {
        Ok(Tenants {
            records: Records::open(db, "tenants", "tenant")?,
        })
    }

    /// Stores a new tenant; false if the name exists.
    pub fn create(&self, t: &TenantRecord) -> Result<bool, GatewayError> {
        self.records.create(&t.name, t)
    }

    /// A tenant by name.
    pub fn get(&self, name: &str) -> Result<Option<TenantRecord>, GatewayError> {
        self.records.get(name)
    }

    /// All tenants.
    pub fn all(&self) -> Result<Vec<TenantRecord>, GatewayError> {
        self.records.all()
    }

    /// Changes a tenant atomically: `change` returns the new record or why not. `Ok(None)`:
    /// no such tenant.
    pub fn update(
        &self,
        name: &str,
        change: impl Fn(&TenantRecord) -> Result<TenantRecord, TenantRefusal>,
    ) -> Result<Option<Result<TenantRecord, TenantRefusal>>, GatewayError> {
        self.records.update(name, change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(status: TenantStatus) -> TenantRecord {
        TenantRecord {
            name: "t".into(),
            title: "T".into(),
            status,
            start: NaiveDate::from_ymd_opt(2026, 1, 1),
            end: NaiveDate::from_ymd_opt(2026, 12, 31),
            history: Vec::new(),
            created_by: "admin".into(),
            created_at_ms: 0,
        }
    }

    #[test]
    fn the_gate_follows_status_and_dates() {
        let day = |m, d| NaiveDate::from_ymd_opt(2026, m, d).expect("date");
        let active = tenant(TenantStatus::Active);
        assert!(active.admits(Action::SubmitQuery, day(6, 1)).is_ok());
        assert!(active.admits(Action::SubmitQuery, day(12, 31)).is_ok());
        let late = NaiveDate::from_ymd_opt(2027, 1, 1).expect("date");
        assert!(active.admits(Action::SubmitQuery, late).is_err());
        let suspended = tenant(TenantStatus::Suspended);
        assert!(suspended.admits(Action::SubmitQuery, day(6, 1)).is_err());
        assert!(
            suspended
                .admits(Action::SubmitRectification, day(6, 1))
                .is_ok()
        );
        assert!(suspended.admits(Action::GetTenant, day(6, 1)).is_ok());
        assert!(
            tenant(TenantStatus::Terminated)
                .admits(Action::WhoAmI, day(6, 1))
                .is_err()
        );
        assert!(
            tenant(TenantStatus::Pending)
                .admits(Action::SubmitQuery, day(6, 1))
                .is_err()
        );
    }
}
