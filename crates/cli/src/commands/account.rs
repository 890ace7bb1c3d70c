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
