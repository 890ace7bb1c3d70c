//! `mlgate ad sp ...`: service principals and their credentials.

use anyhow::{Result, bail};
use mlgate_proto::{
    AddMember, CreateRoleAssignment, CreateServicePrincipal, CreateTenant, CreateUser,
    ResetCredential, SdkAuth, UpdateUser,
};
use serde_json::json;

use super::{Session, confirm};
use crate::cli::{
    AdCommand, ClientOpts, CredentialCommand, SigninCommand, SpCommand, TenantCommand, UserCommand,
};
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
    // Changing one's own password needs no sign-in (it may be what stands in its way).
    if let AdCommand::User(UserCommand::ChangePassword { user_principal_name }) = cmd {
        return change_password(&c, user_principal_name).await;
    }
    let mut s = Session::open(&c)?;
    let token = s.api_token().await?;
    let c = &s.client;
    let cmd = match cmd {
        AdCommand::Sp(cmd) => cmd,
        AdCommand::User(UserCommand::Create {
            display_name,
            password,
            user_principal_name,
            force_change_password_next_sign_in,
        }) => {
            let req = CreateUser {
                user_principal_name,
                display_name,
                password,
                force_change_password_next_sign_in,
            };
            return output::print_table(out, &c.create_user(&token, &req).await?, USER_COLUMNS);
        }
        AdCommand::User(UserCommand::List) => {
            return output::print_table(out, &c.users(&token).await?, USER_COLUMNS);
        }
        AdCommand::User(UserCommand::Show { id }) => {
            return output::print_table(out, &c.user(&token, &id).await?, USER_COLUMNS);
        }
        AdCommand::User(UserCommand::Update {
            id,
            display_name,
            account_enabled,
            password,
            force_change_password_next_sign_in,
        }) => {
            let req = UpdateUser {
                display_name,
                account_enabled,
                password,
                force_change_password_next_sign_in,
            };
            if req == UpdateUser::default() {
                return Err(super::usage(
                    "nothing to change: pass --display-name, --account-enabled, --password or \
                     --force-change-password-next-sign-in",
                ));
            }
            return output::print_table(
                out,
                &c.update_user(&token, &id, &req).await?,
                USER_COLUMNS,
            );
        }
        AdCommand::User(UserCommand::Delete { id, yes }) => {
            confirm(yes.yes, &format!("Delete user '{id}'"))?;
            c.delete_user(&token, &id).await?;
            return Ok(());
        }
        AdCommand::User(UserCommand::ChangePassword { .. }) => unreachable!("handled above"),
        AdCommand::Signin(SigninCommand::List { user, app, failures_only, top }) => {
            let mut q = vec![("$top", top.clamp(1, 1000).to_string())];
            q.extend(user.map(|u| ("user", u)));
            q.extend(app.map(|a| ("app", a)));
            if failures_only {
                q.push(("failuresOnly", "true".into()));
            }
            let first = c.sign_ins(&token, &q).await?;
            let all = super::monitor::collect(&s, &token, first, top as usize).await?;
            return output::print_table(out, &all, super::monitor::SIGNIN_COLUMNS);
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
                return output::print(
                    out,
                    &SdkAuth::new(
                        created.app_id,
                        created.password,
                        subscription_id,
                        created.tenant,
                        c.base_url(),
                    ),
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

/// `ad user change-password`: the current password proves who is asking.
async fn change_password(c: &ClientOpts, upn: Option<String>) -> Result<()> {
    let upn = match upn {
        Some(u) => u,
        None => crate::profile::load_all()?
            .active()
            .filter(|p| p.user_type == "user")
            .map(|p| p.user_name.clone())
            .ok_or_else(|| super::usage("pass --user-principal-name (no account is signed in)"))?,
    };
    let current = secret("MLGATE_CURRENT_PASSWORD", "Current password: ")?;
    let new = secret("MLGATE_NEW_PASSWORD", "New password: ")?;
    let client = super::client_without_account(c)?;
    let req = mlgate_proto::ChangePassword {
        user_principal_name: upn.clone(),
        current_password: current,
        new_password: new,
    };
    client.change_password(&req).await?;
    eprintln!("The password of {upn} was changed; sign in again with the new one.");
    Ok(())
}

/// A password from the environment, else asked at the terminal without echo.
fn secret(var: &str, prompt: &str) -> Result<String> {
    if let Ok(v) = std::env::var(var)
        && !v.is_empty()
    {
        return Ok(v);
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(super::usage(format!(
            "standard input is not a terminal: set {var} to pass the password"
        )));
    }
    Ok(rpassword::prompt_password(prompt)?)
}
