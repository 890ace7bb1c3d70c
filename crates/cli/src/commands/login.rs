//! `mlgate login` and `mlgate logout`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use serde_json::json;

use super::{DEFAULT_SERVER, claims, connect, interactive, now, resolve_ca};
use crate::cli::{LoginArgs, OutputFormat};
use crate::output;
use crate::profile::{self, CachedToken, Credential, Profile};

pub async fn login(
    server: Option<String>,
    ca: Option<PathBuf>,
    args: LoginArgs,
    out: OutputFormat,
) -> Result<()> {
    let previous = profile::load()?;
    let server = server
        .or_else(|| previous.as_ref().map(|p| p.server.clone()))
        .unwrap_or_else(|| DEFAULT_SERVER.to_string());
    let ca = resolve_ca(ca, previous.as_ref());
    let client = connect(&server, ca.as_deref())?;
    let scope = format!("{}/.default", mlgate_proto::DEFAULT_RESOURCE.trim_end_matches('/'));
    let (user, secret) = match (args.username, args.password) {
        (Some(u), Some(p)) => (u, p),
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
            return finish(
                &client,
                ca,
                resp,
                Credential::User { refresh_token: rt },
                "user",
                None,
                out,
            )
            .await;
        }
        _ => bail!("give both -u and -p, or neither to sign in interactively"),
    };
    let (resp, credential, user_type) = if args.service_principal {
        let Some(tenant) = args.tenant.as_deref() else {
            bail!("--tenant is required with --service-principal");
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
    finish(&client, ca, resp, credential, user_type, sp_name, out).await
}

/// Saves the profile of a completed sign-in and prints its subscriptions, as `az login` does.
async fn finish(
    client: &mlgate_client::Client,
    ca: Option<PathBuf>,
    resp: mlgate_proto::TokenResponse,
    credential: Credential,
    user_type: &str,
    service_principal: Option<&str>,
    out: OutputFormat,
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
        credential,
        tokens,
    };
    profile::save(&profile)?;
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
        return output::print(
            out,
            &json!([{"tenantId": tenant_id, "user": {"name": user_name, "type": user_type}}]),
        );
    }
    output::print(out, &listing)
}

/// Forgets the profile, and first revokes its refresh token on the server (best effort: a
/// server that cannot be reached does not keep you signed in locally).
pub async fn logout() -> Result<()> {
    let Some(p) = profile::load()? else {
        bail!("There are no active accounts.");
    };
    if let Credential::User { refresh_token } = &p.credential
        && let Ok(c) = connect(&p.server, p.ca_file.as_deref())
        && let Err(e) = c.revoke(&p.tenant_id, refresh_token).await
    {
        eprintln!("WARNING: could not revoke the sign-in on the server: {e}");
    }
    profile::remove()?;
    Ok(())
}
