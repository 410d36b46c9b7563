//! A dataset's life after registration: new versions (the policy carried over or replaced),
//! retirement (no new use, its history kept) and deletion of a registration made by mistake
//! (files, keys and ledger entries destroyed, only while nothing ever used it).

use arrow::datatypes::Schema;
use erhai_policies::policy_file::parse_policy;
use erhai_policies::versions::{policy_changes, schema_differences};
use erhai_proto::v1 as pb;
use tonic::{Status, Streaming};

use super::{Gateway, convert, engine_status, internal};
use crate::authz::Role;
use crate::scenario::ScenarioStatus;
use crate::state::{Approval, DatasetRecord, StoredField, UserRecord, VersionRecord, now_ms};

/// What a new version must keep of the current one: with a carried-over policy, the current
/// columns and types; always, the privacy unit and its type (unit sets of every version are
/// compared by it).
pub(super) struct Continues<'a> {
    pub name: &'a str,
    pub version: u32,
    pub fields: &'a [StoredField],
    pub carried: bool,
    pub privacy_unit: &'a str,
}

impl Continues<'_> {
    /// Whether the uploaded `schema` may continue the dataset; the refusal names the columns.
    pub(super) fn check(&self, schema: &Schema) -> Result<(), Status> {
        let new: Vec<(String, String)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().to_string()))
            .collect();
        let current: Vec<(String, String)> = self
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.data_type.clone()))
            .collect();
        if self.carried {
            let differences = schema_differences(&current, &new);
            if !differences.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "the file does not match version {} of {}, whose policy is carried over: {}. \
                     Give the new version a policy of its own (--policy), or fix the file; \
                     nothing was registered",
                    self.version,
                    self.name,
                    differences.join("; ")
                )));
            }
        }
        let unit = self.privacy_unit;
        let was = current.iter().find(|(n, _)| n == unit).map(|(_, t)| t);
        let now = new.iter().find(|(n, _)| n == unit).map(|(_, t)| t);
        if was != now {
            return Err(Status::invalid_argument(format!(
                "privacy unit {unit} of {} is {} in the file, was {}: releases of every \
                 version are compared by it, so a new version keeps it as it is; nothing was \
                 registered",
                self.name,
                now.map_or("missing", |t| t.as_str()),
                was.map_or("missing", |t| t.as_str()),
            )));
        }
        Ok(())
    }
}

/// Holds a dataset's next version for one upload; released when dropped, however it ends.
struct VersionSlot<'a> {
    gateway: &'a Gateway,
    id: String,
}

impl Drop for VersionSlot<'_> {
    fn drop(&mut self) {
        self.gateway
            .0
            .new_versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// "on <date> by <user> (<reason>)".
fn retired_text(r: &Approval) -> String {
    format!(
        "on {} by {} ({})",
        erhai_proto::json::utc(r.at_ms),
        r.by,
        r.reason
    )
}

/// The refusal of anything new on a retired dataset.
pub(crate) fn retired_refusal(d: &DatasetRecord, what: &str) -> Option<String> {
    d.retired.as_ref().map(|r| {
        format!(
            "dataset {} was retired {}: it takes no {what}",
            d.name,
            retired_text(r)
        )
    })
}

/// Whether `user` is a provider of the unit that owns `d` (public data only: social data
/// belongs to a tenant).
fn owns(user: &UserRecord, d: &DatasetRecord) -> bool {
    user.role == Role::Provider
        && d.social_tenant.is_none()
        && user.unit.as_deref() == Some(d.provider_unit.as_str())
}

fn reason_of(r: &pb::DatasetDecision, what: &str) -> Result<String, Status> {
    let reason = r.reason.trim();
    if reason.is_empty() || reason.chars().count() > 2000 {
        return Err(Status::invalid_argument(format!(
            "{what} needs a reason (--reason, at most 2000 characters)"
        )));
    }
    Ok(reason.to_string())
}

impl Gateway {
    fn dataset_named(&self, name: &str) -> Result<DatasetRecord, Status> {
        self.0
            .store
            .dataset(name)
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("no dataset `{name}`")))
    }

    /// Adds the next version of the dataset `header` names: its owning unit's provider only,
    /// never to a retired dataset, the policy carried over (empty `policy_toml`) or replaced.
    /// Nothing of a failed upload stays; the current version stays current until the new one
    /// is committed.
    pub(super) async fn new_version_inner(
        &self,
        user: &UserRecord,
        header: pb::RegisterHeader,
        stream: &mut Streaming<pb::RegisterChunk>,
        object: &mut String,
    ) -> Result<pb::Dataset, Status> {
        let current = self.dataset_named(&header.name).map_err(|_| {
            Status::not_found(format!(
                "no dataset `{}` to add a version to; register it first (without --new-version)",
                header.name
            ))
        })?;
        let version = current.version + 1;
        *object = format!("{} ({}) v{version}", current.id, current.name);
        if !owns(user, &current) {
            return Err(Status::permission_denied(format!(
                "only a provider of unit {}, which owns {}, may add a version of it",
                if current.provider_unit.is_empty() {
                    "(none: social data is not versioned)"
                } else {
                    current.provider_unit.as_str()
                },
                current.name
            )));
        }
        if let Some(why) = retired_refusal(&current, "new versions") {
            return Err(Status::failed_precondition(why));
        }
        let carried = header.policy_toml.trim().is_empty();
        let policy = if carried {
            current.policy.clone()
        } else {
            let p = parse_policy(&header.policy_toml)
                .map_err(|e| Status::invalid_argument(format!("policy: {e}")))?;
            if p.privacy_unit != current.policy.privacy_unit {
                return Err(Status::invalid_argument(format!(
                    "the new policy's privacy unit is {}, the dataset's is {}: releases of every \
                     version are compared by their privacy units, so a version keeps it; \
                     register the data under a new name instead",
                    p.privacy_unit, current.policy.privacy_unit
                )));
            }
            p
        };
        if !self
            .0
            .new_versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(current.id.clone())
        {
            return Err(Status::aborted(format!(
                "another version of {} is being uploaded; try again once it is done",
                current.name
            )));
        }
        let _slot = VersionSlot {
            gateway: self,
            id: current.id.clone(),
        };
        let continues = Continues {
            name: &current.name,
            version: current.version,
            fields: &current.fields,
            carried,
            privacy_unit: &current.policy.privacy_unit,
        };
        let committed = self
            .receive_version(user, &header, stream, &current, policy, &continues)
            .await;
        match committed {
            Ok(record) => {
                // The old sample is no longer read by anyone; the old version's own files stay.
                self.0
                    .engine
                    .discard_dev_sample(&current.id, current.version);
                let mut answer = convert::dataset(&record);
                if !carried {
                    answer.policy_changes = policy_changes(&current.policy, &record.policy);
                }
                Ok(answer)
            }
            Err(status) => {
                self.0.engine.discard_version(&current.id, version);
                Err(status)
            }
        }
    }

    /// Receives, samples, records and commits version `current.version + 1`.
    async fn receive_version(
        &self,
        user: &UserRecord,
        header: &pb::RegisterHeader,
        stream: &mut Streaming<pb::RegisterChunk>,
        current: &DatasetRecord,
        policy: erhai_policies::DatasetPolicy,
        continues: &Continues<'_>,
    ) -> Result<DatasetRecord, Status> {
        let version = current.version + 1;
        let (upload, rows) = self
            .receive(stream, &current.id, version, &policy, Some(continues))
            .await?;
        let schema = upload.schema.clone();
        let wrapped_key = upload.wrapped_key.clone();
        let bytes = upload.finish().map_err(|e| engine_status(&e))?;
        let mut earlier = current.earlier.clone();
        earlier.push(VersionRecord {
            version: current.version,
            rows: current.rows,
            bytes: current.bytes,
            fields: current.fields.clone(),
            policy: current.policy.clone(),
            wrapped_key: current.wrapped_key.clone(),
            registered_by: current.registered_by.clone(),
            created_at_ms: current.created_at_ms,
        });
        let record = DatasetRecord {
            version,
            description: if header.description.trim().is_empty() {
                current.description.clone()
            } else {
                header.description.clone()
            },
            registered_by: user.id.clone(),
            rows,
            bytes,
            fields: convert::stored_fields(&schema),
            policy,
            wrapped_key,
            created_at_ms: now_ms(),
            dev: None,
            earlier,
            ..current.clone()
        };
        // The sample is drawn again from the new rows, at the rate the provider asks for or the
        // one the previous version had.
        let mut sample_header = header.clone();
        if sample_header.dev_sample_rate == 0.0
            && let Some(dev) = &current.dev
        {
            sample_header.dev_sample_rate = dev.rate;
        }
        let record = self.build_dev_sample(record, &sample_header)?;
        // Its row count is public too: a release of its own, which later results over any
        // version are compared with.
        self.record_whole_population(&record).await?;
        let expected = current.version;
        let committed = self
            .0
            .store
            .update_dataset(&current.id, |now| {
                if now.version != expected {
                    return Err(format!(
                        "{} moved to version {} meanwhile; nothing was registered",
                        now.name, now.version
                    ));
                }
                if let Some(why) = retired_refusal(now, "new versions") {
                    return Err(why);
                }
                Ok(record.clone())
            })
            .map_err(internal)?;
        match committed {
            Some(Ok(r)) => Ok(r),
            Some(Err(why)) => Err(Status::failed_precondition(why)),
            None => Err(Status::not_found(format!(
                "{} was deleted while the version was uploaded; nothing was registered",
                current.name
            ))),
        }
    }

    /// Retires a dataset: the owning unit's provider or the authority.
    pub(super) fn retire_inner(
        &self,
        user: &UserRecord,
        r: &pb::DatasetDecision,
    ) -> Result<pb::Dataset, Status> {
        let d = self.dataset_named(&r.dataset)?;
        if user.role != Role::Authority && !owns(user, &d) {
            return Err(Status::permission_denied(format!(
                "only a provider of unit {}, which owns {}, or the authority may retire it",
                d.provider_unit, d.name
            )));
        }
        let reason = reason_of(r, "retiring a dataset")?;
        let retirement = Approval {
            by: user.id.clone(),
            reason,
            at_ms: now_ms(),
            suppress_flagged: false,
        };
        let changed = self
            .0
            .store
            .update_dataset(&d.id, |now| {
                if let Some(r) = &now.retired {
                    return Err(format!(
                        "{} was retired already {}",
                        now.name,
                        retired_text(r)
                    ));
                }
                let mut next = now.clone();
                next.retired = Some(retirement.clone());
                Ok(next)
            })
            .map_err(internal)?;
        self.changed("dataset", &r.dataset, changed)
            .map(|d| convert::dataset(&d))
    }

    /// Deletes a registration made by mistake: the owning unit's provider, only while no job
    /// read it and no scenario names it (but a rejected one). Its keys go first (with the
    /// catalog entry: what remains on disk can no longer be decrypted), then its files, then
    /// what the ledger derived from it.
    pub(super) fn delete_inner(
        &self,
        user: &UserRecord,
        r: &pb::DatasetDecision,
    ) -> Result<pb::DatasetDeleted, Status> {
        let d = self.dataset_named(&r.dataset)?;
        if !owns(user, &d) {
            return Err(Status::permission_denied(format!(
                "only a provider of unit {}, which owns {}, may delete it",
                d.provider_unit, d.name
            )));
        }
        reason_of(r, "deleting a dataset")?;
        let store = &self.0.store;
        let jobs = store
            .jobs()
            .map_err(internal)?
            .iter()
            .filter(|j| j.datasets.contains(&d.id))
            .count();
        let (mut approved, mut in_review) = (0, 0);
        for s in self.0.scenarios.all().map_err(internal)? {
            let names =
                s.approved.contains_key(&d.name) || s.requested.iter().any(|c| c.dataset == d.name);
            match s.status {
                _ if !names => {}
                ScenarioStatus::Rejected => {}
                ScenarioStatus::Active | ScenarioStatus::Revoked => approved += 1,
                ScenarioStatus::CenterReview
                | ScenarioStatus::AuthorityReview
                | ScenarioStatus::ProviderConfirmation => in_review += 1,
            }
        }
        if jobs + approved + in_review > 0 {
            return Err(Status::failed_precondition(format!(
                "{} cannot be deleted: {jobs} job(s) read it, {approved} scenario(s) were \
                 approved for it and {in_review} application(s) under review name it; what was \
                 done with it must stay traceable. Retire it instead: erhai dataset retire {} \
                 --reason \"…\"",
                d.name, d.name
            )));
        }
        if self
            .0
            .new_versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&d.id)
        {
            return Err(Status::aborted(format!(
                "a new version of {} is being uploaded; delete it once that is done",
                d.name
            )));
        }
        store.remove_dataset(&d).map_err(internal)?;
        let files = self.0.engine.delete_dataset(&d.id).map_err(|e| {
            tracing::error!(error = %e, dataset = %d.id, "files of a deleted dataset remain");
            Status::internal(format!(
                "{} is deleted and its keys destroyed, but its files could not all be \
                 removed ({e}); an operator should remove datasets/{} and dev/{} under the \
                 data directory",
                d.name, d.id, d.id
            ))
        })?;
        self.0.ledger.forget_dataset(&d.id).map_err(internal)?;
        store.flush().map_err(internal)?;
        Ok(pb::DatasetDeleted {
            id: d.id.clone(),
            name: d.name.clone(),
            versions: d.versions().count() as u32,
            files_removed: files,
        })
    }
}
