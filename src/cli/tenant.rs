//! `erhai tenant …`: tenants and their agreements.

use clap::Subcommand;

use super::{Context, Result};

/// `erhai tenant …`
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Register an operating entity (admin); it has no access until the authority dates its
    /// agreement.
    Create {
        /// Tenant name (users' --tenant).
        name: String,
        /// The entity's name.
        #[arg(long, default_value = "")]
        title: String,
    },
    /// Tenants (admin, authority, center, auditor).
    List,
    /// A tenant, its agreement and its history (yours if no name).
    Show {
        /// Tenant name.
        name: Option<String>,
    },
    /// Set the agreement's dates (authority; at most 3 years by default).
    Agreement {
        /// Tenant name.
        name: String,
        /// First day: YYYY-MM-DD, or relative to the server's today (`today`, `-30d`, `+1m`).
        #[arg(long, allow_hyphen_values = true)]
        start: String,
        /// Last day: YYYY-MM-DD, or relative to the server's today (`today`, `+3y-1d`).
        #[arg(long, allow_hyphen_values = true)]
        end: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Suspend a tenant after a violation (authority).
    Suspend {
        /// Tenant name.
        name: String,
        /// The violation.
        #[arg(long)]
        reason: String,
    },
    /// Restore a suspended tenant after its rectification (authority).
    Restore {
        /// Tenant name.
        name: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Terminate a tenant's agreement (authority); final.
    Terminate {
        /// Tenant name.
        name: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Submit your suspended tenant's rectification report.
    Rectify {
        /// The report.
        #[arg(long)]
        report: String,
    },
}

/// Runs `erhai tenant …`.
pub(super) async fn run(ctx: &Context, cmd: TenantCommand) -> Result {
    let c = ctx.client().await?;
    let t = match cmd {
        TenantCommand::Create { name, title } => c.create_tenant(&name, &title).await?,
        TenantCommand::List => {
            ctx.show(c.tenants().await?.as_slice());
            return Ok(());
        }
        TenantCommand::Show { name } => c.tenant(name.as_deref().unwrap_or("")).await?,
        TenantCommand::Agreement {
            name,
            start,
            end,
            reason,
        } => c.set_agreement(&name, &start, &end, &reason).await?,
        TenantCommand::Suspend { name, reason } => {
            c.change_tenant_status(&name, "suspend", &reason).await?
        }
        TenantCommand::Restore { name, reason } => {
            c.change_tenant_status(&name, "restore", &reason).await?
        }
        TenantCommand::Terminate { name, reason } => {
            c.change_tenant_status(&name, "terminate", &reason).await?
        }
        TenantCommand::Rectify { report } => c.rectify(&report).await?,
    };
    ctx.show(&t);
    Ok(())
}
