//! `mlgate account show|get-access-token`.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use super::Session;
use crate::cli::{AccountCommand, OutputFormat};
use crate::output;

pub async fn run(
    server: Option<String>,
    ca: Option<PathBuf>,
    cmd: AccountCommand,
    out: OutputFormat,
) -> Result<()> {
    let mut session = Session::open(server, ca)?;
    match cmd {
        AccountCommand::Show => {
            let p = &session.profile;
            output::print(
                out,
                &json!({
                    "environmentName": "mlgate",
                    "homeTenantId": p.tenant_id,
                    "id": p.subscription_id,
                    "isDefault": true,
                    "name": p.subscription_name,
                    "state": "Enabled",
                    "tenantId": p.tenant_id,
                    "server": p.server,
                    "user": {"name": p.user_name, "type": p.user_type},
                }),
            )
        }
        AccountCommand::List => {
            let subs = all_subscriptions(&mut session).await?;
            let p = &session.profile;
            let rows: Vec<_> = subs
                .iter()
                .map(|s| {
                    json!({
                        "cloudName": "mlgate",
                        "id": s.subscription_id,
                        "isDefault": p.subscription_id.as_deref() == Some(s.subscription_id.as_str()),
                        "name": s.display_name,
                        "state": s.state,
                        "tenantId": s.tenant_id,
                        "user": {"name": p.user_name, "type": p.user_type},
                    })
                })
                .collect();
            output::print(out, &rows)
        }
        AccountCommand::Set { subscription } => {
            let subs = all_subscriptions(&mut session).await?;
            let Some(s) = subs.iter().find(|s| {
                s.subscription_id.eq_ignore_ascii_case(&subscription)
                    || s.display_name == subscription
            }) else {
                anyhow::bail!(
                    "The subscription '{subscription}' doesn't exist or is not visible to this account."
                );
            };
            let p = &mut session.profile;
            if p.tenant_id != s.tenant_id {
                // Another tenant: tokens of the old one no longer apply.
                p.tenant_id = s.tenant_id.clone();
                p.tokens.clear();
            }
            p.subscription_id = Some(s.subscription_id.clone());
            p.subscription_name = Some(s.display_name.clone());
            crate::profile::save(&session.profile)
        }
        AccountCommand::GetAccessToken { resource } => {
            let resource = resource.unwrap_or_else(|| mlgate_proto::DEFAULT_RESOURCE.to_string());
            let (token, expires_on) = session.token(&resource).await?;
            let expires = time::OffsetDateTime::from_unix_timestamp(expires_on)?;
            output::print(
                out,
                &json!({
                    "accessToken": token,
                    "expiresOn": format!("{} {:02}:{:02}:{:02}.000000", expires.date(),
                                         expires.hour(), expires.minute(), expires.second()),
                    "expires_on": expires_on,
                    "subscription": session.profile.subscription_id,
                    "tenant": session.profile.tenant_id,
                    "tokenType": "Bearer",
                }),
            )
        }
    }
}

/// The subscriptions of every tenant the account belongs to.
async fn all_subscriptions(session: &mut Session) -> Result<Vec<mlgate_proto::Subscription>> {
    let token = session.api_token().await?;
    let tenants = session.client.tenants(&token).await?;
    let mut subs = Vec::new();
    for t in tenants {
        let token = session.api_token_in(&t.tenant_id).await?;
        subs.extend(session.client.subscriptions(&token).await?);
    }
    Ok(subs)
}
