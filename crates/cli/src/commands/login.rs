//! `mlgate login` and `mlgate logout`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use serde_json::json;

use super::{DEFAULT_SERVER, claims, connect, now, resolve_ca};
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
    let (Some(user), Some(secret)) = (args.username, args.password) else {
        bail!(
            "interactive sign-in is not available yet: pass -u and -p (a user's password, or \
             --service-principal with an application id and secret)"
        );
    };
    let scope = format!("{}/.default", mlgate_proto::DEFAULT_RESOURCE.trim_end_matches('/'));
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
    let c = claims(&resp.access_token)?;
    let tenant_id = c["tid"].as_str().unwrap_or_default().to_string();
    let user_name = if args.service_principal {
        user.clone()
    } else {
        c["preferred_username"].as_str().or(c["upn"].as_str()).unwrap_or(&user).to_string()
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

pub async fn logout() -> Result<()> {
    if !profile::remove()? {
        bail!("There are no active accounts.");
    }
    Ok(())
}
