//! `mlgate account show|list|set|get-access-token|clear`.

use anyhow::{Context, Result};
use serde_json::json;

use super::Session;
use super::login::{ACCOUNT_COLUMNS, revoke};
use crate::cli::{AccountCommand, ClientOpts};
use crate::output::{self, Output};
use crate::profile::{self, KnownSubscription, Profile};

pub async fn run(c: ClientOpts, cmd: AccountCommand) -> Result<()> {
    let out = Output::from(&c.out);
    match cmd {
        AccountCommand::Show => {
            let session = Session::open(&c)?;
            let p = &session.profile;
            output::print_table(
                &out,
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
                ACCOUNT_COLUMNS,
            )
        }
        AccountCommand::List => {
            let all = profile::load_all()?;
            if all.accounts.is_empty() {
                anyhow::bail!("Please run 'mlgate login' to set up an account.");
            }
            let mut rows = Vec::new();
            for (i, p) in all.accounts.iter().enumerate() {
                let subs = refreshed(p, &c).await;
                if subs.is_empty() {
                    // As az lists an account without subscriptions: a tenant-level row.
                    rows.push(json!({
                        "cloudName": "mlgate",
                        "id": p.tenant_id,
                        "isDefault": i == all.active,
                        "name": "N/A(tenant level account)",
                        "state": "Enabled",
                        "tenantId": p.tenant_id,
                        "server": p.server,
                        "user": {"name": p.user_name, "type": p.user_type},
                    }));
                }
                for s in &subs {
                    rows.push(json!({
                        "cloudName": "mlgate",
                        "id": s.id,
                        "isDefault": i == all.active
                            && p.subscription_id.as_deref() == Some(s.id.as_str()),
                        "name": s.name,
                        "state": s.state,
                        "tenantId": s.tenant_id,
                        "server": p.server,
                        "user": {"name": p.user_name, "type": p.user_type},
                    }));
                }
            }
            output::print_table(&out, &rows, ACCOUNT_COLUMNS)
        }
        AccountCommand::Set { subscription } => set(&c, &subscription).await,
        AccountCommand::GetAccessToken { resource } => {
            let mut session = Session::open(&c)?;
            let resource = resource.unwrap_or_else(|| mlgate_proto::DEFAULT_RESOURCE.to_string());
            let (token, expires_on) = session.token(&resource).await?;
            let expires = time::OffsetDateTime::from_unix_timestamp(expires_on)?;
            output::print(
                &out,
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
        AccountCommand::Clear => {
            let all = profile::load_all()?;
            for p in &all.accounts {
                revoke(p).await;
            }
            profile::save_all(&profile::Profiles::default())
        }
    }
}

/// An account's subscriptions as the server sees them now (every tenant it belongs to), kept
/// in the profile; what was recorded at sign-in when the server cannot be asked.
async fn refreshed(p: &Profile, c: &ClientOpts) -> Vec<KnownSubscription> {
    let ca = if c.server.is_none() { c.ca_file.clone() } else { None };
    let live = async {
        let mut session = Session::for_profile(p.clone(), ca)?;
        let subs = all_subscriptions(&mut session).await?;
        session.profile.subscriptions = subs.clone();
        profile::update(&session.profile)?;
        anyhow::Ok(subs)
    };
    match live.await {
        Ok(subs) => subs,
        Err(e) => {
            eprintln!(
                "WARNING: the subscriptions of {} on {} could not be read now ({e:#}); showing \
                 those seen at sign-in",
                p.user_name, p.server
            );
            p.subscriptions.clone()
        }
    }
}

/// Makes a subscription the default: the active account's if it has it, else the signed-in
/// account that does becomes active.
async fn set(c: &ClientOpts, wanted: &str) -> Result<()> {
    let matches = |s: &KnownSubscription| s.id.eq_ignore_ascii_case(wanted) || s.name == wanted;
    let mut all = profile::load_all()?;
    let active =
        all.active().cloned().context("Please run 'mlgate login' to set up an account.")?;
    let mut session = Session::for_profile(active, c.ca_file.clone())?;
    let live = all_subscriptions(&mut session).await.unwrap_or_default();
    let (index, sub) = if let Some(s) = live.iter().find(|s| matches(s)) {
        session.profile.subscriptions = live.clone();
        // Keep what the token renewal wrote, with the fresh listing.
        profile::update(&session.profile)?;
        all = profile::load_all()?;
        (all.active, s.clone())
    } else {
        let found =
            all.accounts.iter().enumerate().find_map(|(i, p)| {
                p.subscriptions.iter().find(|s| matches(s)).map(|s| (i, s.clone()))
            });
        found.with_context(|| {
            format!(
                "The subscription '{wanted}' doesn't exist or is not visible to any signed-in \
                 account ('mlgate account list' shows them)."
            )
        })?
    };
    all.active = index;
    let p = &mut all.accounts[index];
    if p.tenant_id != sub.tenant_id {
        // Another tenant: tokens of the old one no longer apply.
        p.tenant_id = sub.tenant_id.clone();
        p.tokens.clear();
    }
    p.subscription_id = Some(sub.id.clone());
    p.subscription_name = Some(sub.name.clone());
    profile::save_all(&all)
}

/// The subscriptions of every tenant the account belongs to.
async fn all_subscriptions(session: &mut Session) -> Result<Vec<KnownSubscription>> {
    let token = session.api_token().await?;
    let tenants = session.client.tenants(&token).await?;
    let mut subs = Vec::new();
    for t in tenants {
        let token = session.api_token_in(&t.tenant_id).await?;
        subs.extend(session.client.subscriptions(&token).await?.into_iter().map(|s| {
            KnownSubscription {
                id: s.subscription_id,
                name: s.display_name,
                tenant_id: s.tenant_id,
                state: s.state,
            }
        }));
    }
    Ok(subs)
}
