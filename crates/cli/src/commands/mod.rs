//! Command implementations, one module per group, and the [`Session`] they share: a client
//! bound to the signed-in profile that hands out fresh access tokens.

mod account;
mod ad;
mod interactive;
mod keys;
mod login;
mod ml;
mod role;
mod store;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mlgate_client::Client;
use serde_json::Value;

use crate::cli::{Cli, Command};
use crate::profile::{self, CachedToken, Credential, Profile};

pub async fn dispatch(cli: Cli) -> Result<()> {
    let out = cli.output;
    match cli.command {
        Command::Serve(args) => crate::serve::run(args).await,
        Command::Login(args) => login::login(cli.server, cli.ca_file, args, out).await,
        Command::Logout => login::logout().await,
        Command::Account(cmd) => account::run(cli.server, cli.ca_file, cmd, out).await,
        Command::Ad(cmd) => ad::run(cli.server, cli.ca_file, cmd, out).await,
        Command::Keys(cmd) => keys::run(cmd, out).await,
        Command::Store(cmd) => store::run(cmd, out).await,
        Command::Group(cmd) => ml::group(cli.server, cli.ca_file, cmd, out).await,
        Command::Ml(cmd) => ml::ml(cli.server, cli.ca_file, cmd, out).await,
        Command::Role(cmd) => role::run(cli.server, cli.ca_file, cmd, out).await,
    }
}

pub const DEFAULT_SERVER: &str = "https://127.0.0.1:8443";

/// The CA to trust: the flag, the profile's, else a local server's CA if there is one.
fn resolve_ca(flag: Option<PathBuf>, profile: Option<&Profile>) -> Option<PathBuf> {
    flag.or_else(|| profile.and_then(|p| p.ca_file.clone())).or_else(|| {
        let local = crate::serve::default_data_dir().join("tls/ca.pem");
        local.exists().then_some(local)
    })
}

fn connect(server: &str, ca: Option<&Path>) -> Result<Client> {
    let pem = match ca {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("reading the CA file {}", path.display()))?,
        ),
        None => None,
    };
    Ok(Client::new(server, pem.as_deref())?)
}

/// The claims of a token this CLI just received over TLS from its server (read, not verified:
/// the CLI is not the token's audience).
fn claims(token: &str) -> Result<Value> {
    let payload = token.split('.').nth(1).context("the server returned a malformed token")?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).context("the server returned a malformed token")?;
    Ok(serde_json::from_slice(&bytes)?)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Tokens with less than this left are renewed rather than used (MSAL's rule).
const RENEW_BEFORE_SECS: i64 = 300;

pub struct Session {
    pub client: Client,
    pub profile: Profile,
}

impl Session {
    pub fn open(server: Option<String>, ca: Option<PathBuf>) -> Result<Self> {
        let profile = profile::require()?;
        let server = server.unwrap_or_else(|| profile.server.clone());
        let ca = resolve_ca(ca, Some(&profile));
        let client = connect(&server, ca.as_deref())?;
        Ok(Self { client, profile })
    }

    /// An access token for `resource`, from the cache while it has five minutes left,
    /// otherwise renewed with the refresh token or the service principal's secret.
    pub async fn token(&mut self, resource: &str) -> Result<(String, i64)> {
        if let Some(t) = self.profile.tokens.get(resource)
            && t.expires_on - now() > RENEW_BEFORE_SECS
        {
            return Ok((t.access_token.clone(), t.expires_on));
        }
        let scope = format!("{}/.default", resource.trim_end_matches('/'));
        let tenant = self.profile.tenant_id.clone();
        let resp = match &self.profile.credential {
            Credential::User { refresh_token } => self
                .client
                .refresh(&tenant, refresh_token, &scope)
                .await
                .context("your sign-in has expired or was revoked; run 'mlgate login' again")?,
            Credential::ServicePrincipal { client_id, client_secret } => {
                self.client.client_credentials(&tenant, client_id, client_secret, &scope).await?
            }
        };
        if let (Some(rt), Credential::User { refresh_token }) =
            (resp.refresh_token.clone(), &mut self.profile.credential)
        {
            // Refresh tokens rotate on use: keep the new one or the next renewal fails.
            *refresh_token = rt;
        }
        let expires_on = now() + resp.expires_in;
        self.profile.tokens.insert(
            resource.to_string(),
            CachedToken { access_token: resp.access_token.clone(), expires_on },
        );
        profile::save(&self.profile)?;
        Ok((resp.access_token, expires_on))
    }

    /// The subscription to act in: the flag, else the profile's default.
    pub fn subscription(&self, flag: Option<String>) -> Result<String> {
        flag.or_else(|| self.profile.subscription_id.clone()).context(
            "no subscription: pass --subscription, or sign in with an account that has one",
        )
    }

    /// An API token for another tenant the account belongs to (not cached; a user's rotated
    /// refresh token is kept).
    pub async fn api_token_in(&mut self, tenant: &str) -> Result<String> {
        if tenant == self.profile.tenant_id {
            return self.api_token().await;
        }
        let scope = format!("{}/.default", mlgate_proto::DEFAULT_RESOURCE.trim_end_matches('/'));
        let resp = match &self.profile.credential {
            Credential::User { refresh_token } => {
                self.client.refresh(tenant, refresh_token, &scope).await?
            }
            Credential::ServicePrincipal { client_id, client_secret } => {
                self.client.client_credentials(tenant, client_id, client_secret, &scope).await?
            }
        };
        if let (Some(rt), Credential::User { refresh_token }) =
            (resp.refresh_token.clone(), &mut self.profile.credential)
        {
            *refresh_token = rt;
            profile::save(&self.profile)?;
        }
        Ok(resp.access_token)
    }

    /// A token for the mlgate API itself.
    pub async fn api_token(&mut self) -> Result<String> {
        Ok(self.token(mlgate_proto::DEFAULT_RESOURCE).await?.0)
    }
}
