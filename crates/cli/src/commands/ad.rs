//! `mlgate ad sp ...`: service principals and their credentials.

use std::path::PathBuf;

use anyhow::{Result, bail};
use mlgate_proto::{
    AddMember, CreateRoleAssignment, CreateServicePrincipal, CreateTenant, CreateUser,
    ResetCredential, SdkAuth,
};
use serde_json::json;

use super::Session;
use crate::cli::{
    AdCommand, CredentialCommand, OutputFormat, SpCommand, TenantCommand, UserCommand,
};
use crate::output;

pub async fn run(
    server: Option<String>,
    ca: Option<PathBuf>,
    cmd: AdCommand,
    out: OutputFormat,
) -> Result<()> {
    let mut s = Session::open(server, ca)?;
    let token = s.api_token().await?;
    let c = &s.client;
    let cmd = match cmd {
        AdCommand::Sp(cmd) => cmd,
        AdCommand::User(UserCommand::Create { display_name, password, user_principal_name }) => {
            let req = CreateUser { user_principal_name, display_name, password };
            return output::print(out, &c.create_user(&token, &req).await?);
        }
        AdCommand::User(UserCommand::List) => return output::print(out, &c.users(&token).await?),
        AdCommand::Tenant(TenantCommand::List) => {
            return output::print(out, &c.tenants(&token).await?);
        }
        AdCommand::Tenant(TenantCommand::Create { domain, display_name }) => {
            let req = CreateTenant {
                display_name: display_name.unwrap_or_else(|| domain.clone()),
                domain,
            };
            return output::print(out, &c.create_tenant(&token, &req).await?);
        }
        AdCommand::Tenant(TenantCommand::AddMember { user, admin }) => {
            return output::print(out, &c.add_member(&token, &AddMember { user, admin }).await?);
        }
    };
    match cmd {
        SpCommand::CreateForRbac { name, sdk_auth, years, role, scopes } => {
            let created = c
                .create_service_principal(
                    &token,
                    &CreateServicePrincipal { display_name: name, years },
                )
                .await?;
            if let Some(role) = role {
                for scope in &scopes {
                    let req = CreateRoleAssignment {
                        assignee: created.object_id.clone(),
                        role: role.clone(),
                        scope: scope.clone(),
                    };
                    if let Err(e) = c.create_role_assignment(&token, &req).await {
                        // Leave nothing half-made: the principal goes with its failed role.
                        let _ = c.delete_service_principal(&token, &created.object_id).await;
                        return Err(anyhow::anyhow!(e).context(format!(
                            "assigning '{role}' at '{scope}' failed; the service principal was removed"
                        )));
                    }
                }
            }
            if sdk_auth {
                let Some(subscription_id) = s.profile.subscription_id.clone() else {
                    bail!("--sdk-auth needs a subscription, and the signed-in account has none");
                };
                let base = c.base_url().to_string();
                let with_slash = format!("{base}/");
                return output::print(
                    out,
                    &SdkAuth {
                        client_id: created.app_id,
                        client_secret: created.password,
                        subscription_id,
                        tenant_id: created.tenant,
                        active_directory_endpoint_url: base,
                        resource_manager_endpoint_url: with_slash.clone(),
                        active_directory_graph_resource_id: with_slash.clone(),
                        sql_management_endpoint_url: with_slash.clone(),
                        gallery_endpoint_url: with_slash.clone(),
                        management_endpoint_url: with_slash,
                    },
                );
            }
            output::print(
                out,
                &json!({
                    "appId": created.app_id,
                    "displayName": created.display_name,
                    "password": created.password,
                    "tenant": created.tenant,
                }),
            )
        }
        SpCommand::Show { id } => output::print(out, &c.service_principal(&token, &id).await?),
        SpCommand::List => output::print(out, &c.service_principals(&token).await?),
        SpCommand::Update { id, set } => {
            let enabled = match set.replace(' ', "").to_ascii_lowercase().as_str() {
                "accountenabled=true" => true,
                "accountenabled=false" => false,
                _ => bail!("only '--set accountEnabled=true|false' is supported"),
            };
            output::print(out, &c.set_service_principal_enabled(&token, &id, enabled).await?)
        }
        SpCommand::Delete { id } => {
            c.delete_service_principal(&token, &id).await.map_err(Into::into)
        }
        SpCommand::Credential(CredentialCommand::Reset { id, append, years, end_date }) => {
            let reset = c
                .reset_credential(&token, &id, &ResetCredential { append, years, end_date })
                .await?;
            output::print(
                out,
                &json!({"appId": reset.app_id, "password": reset.password, "tenant": reset.tenant}),
            )
        }
    }
}
