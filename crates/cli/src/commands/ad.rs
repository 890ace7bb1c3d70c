//! `mlgate ad sp ...`: service principals and their credentials.

use anyhow::{Result, bail};
use mlgate_proto::{
    AddMember, CreateRoleAssignment, CreateServicePrincipal, CreateTenant, CreateUser,
    ResetCredential, SdkAuth,
};
use serde_json::json;

use super::{Session, confirm};
use crate::cli::{AdCommand, ClientOpts, CredentialCommand, SpCommand, TenantCommand, UserCommand};
use crate::output::{self, Columns, Output};

const SP_COLUMNS: Columns = &[
    "DisplayName=displayName",
    "AppId=appId",
    "ObjectId=id",
    "Enabled=accountEnabled",
    "Secrets=passwordCredentials|len",
];
const USER_COLUMNS: Columns = &[
    "UserPrincipalName=userPrincipalName",
    "DisplayName=displayName",
    "ObjectId=id",
    "Enabled=accountEnabled",
];
const TENANT_COLUMNS: Columns = &["Domain=domain", "DisplayName=displayName", "TenantId=tenantId"];

pub async fn run(c: ClientOpts, cmd: AdCommand) -> Result<()> {
    let out = &Output::from(&c.out);
    let mut s = Session::open(&c)?;
    let token = s.api_token().await?;
    let c = &s.client;
    let cmd = match cmd {
        AdCommand::Sp(cmd) => cmd,
        AdCommand::User(UserCommand::Create { display_name, password, user_principal_name }) => {
            let req = CreateUser { user_principal_name, display_name, password };
            return output::print_table(out, &c.create_user(&token, &req).await?, USER_COLUMNS);
        }
        AdCommand::User(UserCommand::List) => {
            return output::print_table(out, &c.users(&token).await?, USER_COLUMNS);
        }
        AdCommand::Tenant(TenantCommand::List) => {
            return output::print_table(out, &c.tenants(&token).await?, TENANT_COLUMNS);
        }
        AdCommand::Tenant(TenantCommand::Create { domain, display_name }) => {
            let req = CreateTenant {
                display_name: display_name.unwrap_or_else(|| domain.clone()),
                domain,
            };
            return output::print_table(out, &c.create_tenant(&token, &req).await?, TENANT_COLUMNS);
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
        SpCommand::Show { id } => {
            output::print_table(out, &c.service_principal(&token, &id).await?, SP_COLUMNS)
        }
        SpCommand::List => {
            output::print_table(out, &c.service_principals(&token).await?, SP_COLUMNS)
        }
        SpCommand::Update { id, set } => {
            let enabled = match set.replace(' ', "").to_ascii_lowercase().as_str() {
                "accountenabled=true" => true,
                "accountenabled=false" => false,
                _ => bail!("only '--set accountEnabled=true|false' is supported"),
            };
            let sp = c.set_service_principal_enabled(&token, &id, enabled).await?;
            output::print_table(out, &sp, SP_COLUMNS)
        }
        SpCommand::Delete { id, yes } => {
            confirm(
                yes.yes,
                &format!(
                    "The service principal '{id}' will be deleted, with its secrets and role \
                     assignments"
                ),
            )?;
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
