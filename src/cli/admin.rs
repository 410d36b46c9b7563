//! `erhai admin …` (deployment, users, the platform key) and `erhai whoami`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use erhai_proto::v1 as pb;
use serde_json::json;

use super::{Context, Result};
use crate::output::Render;

/// `erhai admin …`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a deployment: CA, server certificate, master key, erhai.toml, first admin.
    Init {
        /// Deployment directory (must be empty or absent).
        #[arg(long)]
        dir: PathBuf,
        /// Address the server will listen on.
        #[arg(long, default_value = "127.0.0.1:7443")]
        listen: SocketAddr,
    },
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// Print the platform's Ed25519 public key (hex), which verifies release receipts.
    PublicKey {
        /// Also write it to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `erhai admin user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Record a user and write their identity bundle.
    Add(UserAdd),
    /// List users.
    List,
    /// Set when a user expires (`now`, an RFC 3339 time, or `never`).
    Expire {
        /// User id.
        #[arg(long)]
        id: String,
        /// When.
        #[arg(long)]
        at: String,
    },
    /// Issue a user a new certificate (a key pair generated here) and write the new identity
    /// bundle; the user's previous certificate is refused from its next call.
    Reissue {
        /// User id.
        id: String,
        /// Where to write the new identity bundle.
        #[arg(long)]
        out: PathBuf,
        /// Certificate validity in days (default: the platform's).
        #[arg(long, default_value_t = 0)]
        valid_days: i64,
    },
    /// Disable a user: every call of theirs is refused until enabled.
    Disable {
        /// User id.
        id: String,
        /// Why (audited).
        #[arg(long)]
        reason: String,
    },
    /// Enable a disabled user.
    Enable {
        /// User id.
        id: String,
    },
}

/// Arguments of `admin user add`.
#[derive(Debug, Args)]
pub struct UserAdd {
    /// User id (the certificate's name).
    #[arg(long)]
    pub id: String,
    /// Real name.
    #[arg(long)]
    pub name: String,
    /// admin, provider, analyst, reviewer or auditor.
    #[arg(long)]
    pub role: String,
    /// Tenant (operating entity), for analysts.
    #[arg(long, default_value = "")]
    pub tenant: String,
    /// Provider unit, for providers.
    #[arg(long, default_value = "")]
    pub unit: String,
    /// Where to write the identity bundle.
    #[arg(long)]
    pub out: PathBuf,
    /// Certificate validity in days (default: the platform's).
    #[arg(long, default_value_t = 0)]
    pub valid_days: i64,
}

/// Runs `erhai admin …`.
pub(super) async fn run(ctx: &Context, cmd: AdminCommand) -> Result {
    match cmd {
        AdminCommand::Init { dir, listen } => {
            let d = erhai_gateway::deploy::init(&dir, listen)?;
            ctx.print(|| {
                    format!(
                        "deployment created in {}\nconfiguration: {}\nadmin identity: {}\nstart it with: erhai serve --dir {}",
                        dir.display(),
                        d.config_file.display(),
                        d.admin_identity.display(),
                        dir.display()
                    )
                },
                || json!({"config": d.config_file, "admin_identity": d.admin_identity}),
            );
            Ok(())
        }
        AdminCommand::PublicKey { out } => {
            let key = hex::encode(ctx.client().await?.platform_key().await?);
            if let Some(out) = &out {
                std::fs::write(out, format!("{key}\n"))
                    .map_err(|e| format!("{}: {e}", out.display()))?;
            }
            ctx.print(|| key.clone(), || json!({"public_key": key}));
            Ok(())
        }
        AdminCommand::User(cmd) => {
            let c = ctx.client().await?;
            match cmd {
                UserCommand::Add(a) => {
                    let u = c
                        .add_user(
                            pb::CreateUserRequest {
                                id: a.id,
                                name: a.name,
                                role: a.role,
                                tenant: a.tenant,
                                unit: a.unit,
                                public_key_pem: String::new(),
                                valid_days: a.valid_days,
                            },
                            &a.out,
                        )
                        .await?;
                    ctx.print(
                        || {
                            format!(
                                "user {} ({}) created; identity bundle in {}",
                                u.id,
                                u.role,
                                a.out.display()
                            )
                        },
                        || u.json(),
                    );
                }
                UserCommand::List => {
                    let us = c.list_users().await?;
                    ctx.show(us.as_slice());
                }
                UserCommand::Expire { id, at } => {
                    let ms = match at.as_str() {
                        "now" => chrono::Utc::now().timestamp_millis(),
                        "never" => 0,
                        t => chrono::DateTime::parse_from_rfc3339(t)
                            .map_err(|e| {
                                format!("--at `{t}`: {e}; use now, never or an RFC 3339 time")
                            })?
                            .timestamp_millis(),
                    };
                    let u = c.set_user_expiry(&id, ms).await?;
                    ctx.show(&u);
                }
                UserCommand::Reissue {
                    id,
                    out,
                    valid_days,
                } => {
                    let u = c.reissue_user(&id, valid_days, &out).await?;
                    ctx.print(
                        || {
                            format!(
                                "user {} has a new certificate; identity bundle in {} (the previous one is refused from now on)",
                                u.id,
                                out.display()
                            )
                        },
                        || u.json(),
                    );
                }
                UserCommand::Disable { id, reason } => {
                    let u = c.disable_user(&id, &reason).await?;
                    ctx.show(&u);
                }
                UserCommand::Enable { id } => {
                    let u = c.enable_user(&id).await?;
                    ctx.show(&u);
                }
            }
            Ok(())
        }
    }
}

/// Runs `erhai whoami`.
pub(super) async fn whoami(ctx: &Context) -> Result {
    let u = ctx.client().await?.whoami().await?;
    ctx.show(&u);
    Ok(())
}
