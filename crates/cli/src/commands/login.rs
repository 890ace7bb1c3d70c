//! `mlgate login` and `mlgate logout`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Result, bail};
use serde_json::json;

use super::{DEFAULT_SERVER, claims, connect, interactive, now, resolve_ca, usage};
use crate::cli::{LoginArgs, LogoutArgs};
use crate::output::{self, Columns, Output};
use crate::profile::{self, CachedToken, Credential, KnownSubscription, Profile};

/// `az account list -o table`'s columns, and the account.
pub const ACCOUNT_COLUMNS: Columns = &[
    "Name=name",
    "SubscriptionId=id",
    "TenantId=tenantId",
    "User=user.name",
    "State=state",
    "IsDefault=isDefault",
];

pub async fn login(args: LoginArgs) -> Result<()> {
    let out = Output::from(&args.c.out);
    let all = profile::load_all()?;
    let server = args
        .c
        .server
        .clone()
        .or_else(|| all.active().map(|p| p.server.clone()))
        .unwrap_or_else(|| DEFAULT_SERVER.to_string());
    // An account already signed in to this server knows its CA.
    let same_server = all.accounts.iter().rev().find(|p| profile::same_server(&p.server, &server));
    let ca = resolve_ca(args.c.ca_file.clone(), &server, same_server);
    let client = connect(&server, ca.as_deref())?;
    let scope = format!("{}/.default", mlgate_proto::DEFAULT_RESOURCE.trim_end_matches('/'));
    let (user, secret) = match (args.username, args.password) {
        (Some(u), Some(p)) => (u, p),
        (Some(u), None) => (u, ask_secret(args.service_principal)?),
        (None, None) if !args.service_principal => {
            // Interactive: the browser when one can be opened, else (or on request) a code.
            let tenant = args.tenant.as_deref().unwrap_or("organizations");
            let user_scope = format!("{scope} offline_access openid profile");
            let resp = if args.use_device_code || !interactive::browser_available() {
                interactive::device_code(&client, tenant, &user_scope).await?
            } else {
                interactive::browser(&client, tenant, &user_scope).await?
            };
            let Some(rt) = resp.refresh_token.clone() else {
                bail!("the server did not return a refresh token");
            };
            let cred = Credential::User { refresh_token: rt };
            return finish(&client, ca, resp, cred, "user", None, &out).await;
        }
        (None, _) if args.service_principal => {
            return Err(usage(
                "--service-principal needs -u APP_ID, -p SECRET (asked for when left out on a \
                 terminal) and --tenant TENANT",
            ));
        }
        (None, _) => return Err(usage("-p needs -u: give the user name too")),
    };
    let (resp, credential, user_type) = if args.service_principal {
        let Some(tenant) = args.tenant.as_deref() else {
            return Err(usage("--tenant is required with --service-principal"));
        };
        let resp = client.client_credentials(tenant, &user, &secret, &scope).await?;
        let cred = Credential::ServicePrincipal { client_id: user.clone(), client_secret: secret };
        (resp, cred, "servicePrincipal")
    } else {
        let tenant = args.tenant.as_deref().unwrap_or("organizations");
        let resp = client.password(tenant, &user, &secret, &scope).await?;
        let Some(rt) = resp.refresh_token.clone() else {
            bail!("the server did not return a refresh token");
        };
        (resp, Credential::User { refresh_token: rt }, "user")
    };
    let sp_name = args.service_principal.then_some(user.as_str());
    finish(&client, ca, resp, credential, user_type, sp_name, &out).await
}

/// The password (or client secret) typed at the terminal without echo, as `az login -u`
/// asks for it; without a terminal there is nobody to ask.
fn ask_secret(service_principal: bool) -> Result<String> {
    let what = if service_principal { "Client secret" } else { "Password" };
    if !std::io::stdin().is_terminal() {
        return Err(usage(format!(
            "-p is missing and standard input is not a terminal to ask for the {} on; pass -p \
             (or run the command in a terminal)",
            what.to_lowercase()
        )));
    }
    let secret = rpassword::prompt_password(format!("{what}: "))?;
    if secret.is_empty() {
        return Err(usage(format!("no {} was typed", what.to_lowercase())));
    }
    Ok(secret)
}

/// Adds the account of a completed sign-in, makes it active and prints its subscriptions, as
/// `az login` does.
async fn finish(
    client: &mlgate_client::Client,
    ca: Option<PathBuf>,
    resp: mlgate_proto::TokenResponse,
    credential: Credential,
    user_type: &str,
    service_principal: Option<&str>,
    out: &Output,
) -> Result<()> {
    let c = claims(&resp.access_token)?;
    let tenant_id = c["tid"].as_str().unwrap_or_default().to_string();
    let user_name = match service_principal {
        Some(app) => app.to_string(),
        None => {
            c["preferred_username"].as_str().or(c["upn"].as_str()).unwrap_or_default().to_string()
        }
    };
    let subscriptions = client.subscriptions(&resp.access_token).await?;
    let default = subscriptions.first();
    let mut tokens = BTreeMap::new();
    tokens.insert(
        mlgate_proto::DEFAULT_RESOURCE.to_string(),
        CachedToken {
            access_token: resp.access_token.clone(),
            expires_on: now() + resp.expires_in,
        },
    );
    let profile = Profile {
        server: client.base_url().to_string(),
        ca_file: ca.map(|p| std::fs::canonicalize(&p).unwrap_or(p)),
        tenant_id: tenant_id.clone(),
        user_name: user_name.clone(),
        user_type: user_type.to_string(),
        subscription_id: default.map(|s| s.subscription_id.clone()),
        subscription_name: default.map(|s| s.display_name.clone()),
        subscriptions: subscriptions
            .iter()
            .map(|s| KnownSubscription {
                id: s.subscription_id.clone(),
                name: s.display_name.clone(),
                tenant_id: s.tenant_id.clone(),
                state: s.state.clone(),
            })
            .collect(),
        credential,
        tokens,
    };
    let mut all = profile::load_all()?;
    all.add(profile);
    let others = all.accounts.len() - 1;
    profile::save_all(&all)?;
    if subscriptions.is_empty() && others > 0 {
        eprintln!(
            "WARNING: {user_name} has no subscription (a service principal gets one once it is \
             given a role on it) and is now the active account; the other {others} signed-in \
             account(s) stay signed in: 'mlgate account set -s SUBSCRIPTION' switches back."
        );
    }
    let listing: Vec<_> = subscriptions
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({
                "cloudName": "mlgate",
                "homeTenantId": s.tenant_id,
                "id": s.subscription_id,
                "isDefault": i == 0,
                "name": s.display_name,
                "state": s.state,
                "tenantId": s.tenant_id,
                "user": {"name": user_name, "type": user_type},
            })
        })
        .collect();
    if listing.is_empty() {
        return output::print_table(
            out,
            &json!([{"tenantId": tenant_id, "user": {"name": user_name, "type": user_type}}]),
            ACCOUNT_COLUMNS,
        );
    }
    output::print_table(out, &listing, ACCOUNT_COLUMNS)
}

/// Forgets one account (the active one unless named), and first revokes its refresh token on
/// the server (best effort: a server that cannot be reached does not keep you signed in
/// locally).
pub async fn logout(args: LogoutArgs) -> Result<()> {
    let mut all = profile::load_all()?;
    let index = match &args.username {
        Some(u) => all.accounts.iter().position(|p| p.user_name.eq_ignore_ascii_case(u)),
        None => all.active().map(|_| all.active),
    };
    let Some(index) = index else {
        match args.username {
            Some(u) => bail!("The account '{u}' is not signed in ('mlgate account list')."),
            None => bail!("There are no active accounts."),
        }
    };
    let p = all.accounts.remove(index);
    revoke(&p).await;
    if all.active > index || all.active >= all.accounts.len() {
        all.active = all.active.saturating_sub(1);
    }
    profile::save_all(&all)
}

pub async fn revoke(p: &Profile) {
    if let Credential::User { refresh_token } = &p.credential
        && let Ok(c) = connect(&p.server, p.ca_file.as_deref())
        && let Err(e) = c.revoke(&p.tenant_id, refresh_token).await
    {
        eprintln!("WARNING: could not revoke the sign-in of {} on the server: {e}", p.user_name);
    }
}
