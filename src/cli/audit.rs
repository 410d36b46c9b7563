//! `erhai audit …`: list, export, verify the chain, its checkpoint.

use std::path::PathBuf;

use clap::Subcommand;
use erhai_proto::v1 as pb;
use serde_json::json;

use super::{Context, Result};

/// `erhai audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Audit events, oldest first.
    List {
        #[command(flatten)]
        filter: AuditFilter,
        /// At most this many (the newest).
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Write every matching event to a JSON Lines file for external archiving.
    Export {
        #[command(flatten)]
        filter: AuditFilter,
        /// Output file (.jsonl).
        #[arg(long)]
        out: PathBuf,
    },
    /// Recompute the hash chain and check every signed checkpoint.
    Verify,
    /// The latest signed checkpoint (keep it outside the platform).
    Checkpoint,
}

/// Which audit events.
#[derive(Debug, clap::Args)]
pub struct AuditFilter {
    /// Only this user's.
    #[arg(long, default_value = "")]
    user: String,
    /// Only this tenant's.
    #[arg(long, default_value = "")]
    tenant: String,
    /// Only this action.
    #[arg(long, default_value = "")]
    action: String,
    /// Only events whose object ids contain this.
    #[arg(long, default_value = "")]
    object: String,
    /// From this time (RFC 3339, a date YYYY-MM-DD, or a day relative to today: `-7d`).
    #[arg(long, allow_hyphen_values = true)]
    since: Option<String>,
    /// Before this time (RFC 3339, a date YYYY-MM-DD, or a day relative to today: `today`).
    #[arg(long, allow_hyphen_values = true)]
    until: Option<String>,
}

impl AuditFilter {
    fn request(
        &self,
        limit: u64,
        all: bool,
    ) -> std::result::Result<pb::ListAuditRequest, crate::failure::CliError> {
        Ok(pb::ListAuditRequest {
            limit,
            all,
            user: self.user.clone(),
            tenant: self.tenant.clone(),
            action: self.action.clone(),
            object: self.object.clone(),
            since_ms: parse_instant(self.since.as_deref())?,
            until_ms: parse_instant(self.until.as_deref())?,
        })
    }
}

/// An RFC 3339 time or a day (midnight UTC; absolute or relative to today, as the server reads
/// days) as ms since the epoch; absent: 0.
fn parse_instant(s: Option<&str>) -> std::result::Result<i64, crate::failure::CliError> {
    let Some(s) = s else { return Ok(0) };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let day = erhai_gateway::dates::parse_day(s, chrono::Utc::now().date_naive())
        .map_err(|e| crate::failure::CliError::usage(format!("{e}, or an RFC 3339 time")))?;
    day.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or_else(|| crate::failure::CliError::usage(format!("`{s}` falls outside the calendar")))
}

/// Runs `erhai audit …`.
pub(super) async fn run(ctx: &Context, cmd: AuditCommand) -> Result {
    let c = ctx.client().await?;
    match cmd {
        AuditCommand::List { filter, limit } => {
            let es = c.audit_query(filter.request(limit, false)?).await?;
            ctx.show(es.as_slice());
        }
        AuditCommand::Export { filter, out } => {
            let es = c.audit_query(filter.request(0, true)?).await?;
            let mut text = String::new();
            for e in &es {
                text.push_str(&serde_json::to_string(e)?);
                text.push('\n');
            }
            std::fs::write(&out, text).map_err(|e| format!("{}: {e}", out.display()))?;
            ctx.print(
                || format!("wrote {} events to {}", es.len(), out.display()),
                || json!({"events": es.len(), "file": out}),
            );
        }
        AuditCommand::Checkpoint => {
            ctx.show(&c.audit_checkpoint().await?);
        }
        AuditCommand::Verify => {
            let v = c.audit_verify().await?;
            ctx.show(&v);
            if !v.ok {
                return Err(format!("audit chain broken: {}", v.detail).into());
            }
        }
    }
    Ok(())
}
