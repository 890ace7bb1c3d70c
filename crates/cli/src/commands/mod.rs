//! Command implementations, one module per group, and the [`Session`] they share: a client
//! bound to the signed-in profile that hands out fresh access tokens.

mod account;
mod ad;
mod admin;
mod backup;
mod interactive;
mod keys;
mod login;
mod ml;
mod monitor;
mod role;
mod store;
pub mod tls;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mlgate_client::{Client, ClientError};
use serde_json::Value;

use crate::cli::{Cli, ClientOpts, Command, DocsCommand};
use crate::output::Output;
use crate::profile::{self, CachedToken, Credential, Profile};

pub async fn dispatch(cli: Cli) -> Result<()> {
    let b = &cli.before;
    match cli.command {
        Command::Serve(args) => crate::serve::run(args).await,
        Command::Login(mut args) => {
            args.c = args.c.merged(b);
            login::login(args).await
        }
        Command::Logout(args) => login::logout(args).await,
        Command::Account { c, cmd } => account::run(c.merged(b), cmd).await,
        Command::Ad { c, cmd } => ad::run(c.merged(b), cmd).await,
        Command::Keys { out, cmd } => keys::run(cmd, &Output::from(&out.merged(b))).await,
        Command::Tls(cmd) => tls::run(cmd),
        Command::Store { out, cmd } => store::run(cmd, &Output::from(&out.merged(b))).await,
        Command::Group { c, cmd } => ml::group(c.merged(b), cmd).await,
        Command::Ml { c, cmd } => ml::ml(c.merged(b), cmd).await,
        Command::Role { c, cmd } => role::run(c.merged(b), cmd).await,
        Command::Backup(args) => backup::backup(args).await,
        Command::Restore(args) => backup::restore(args).await,
        Command::Monitor { c, cmd } => monitor::run(c.merged(b), cmd).await,
        Command::Admin { out, cmd } => admin::run(cmd, &Output::from(&out.merged(b))).await,
        Command::Docs(DocsCommand::Cli) => {
            print!("{}", crate::docs::cli_markdown());
            Ok(())
        }
    }
}

pub const DEFAULT_SERVER: &str = "https://127.0.0.1:8443";

/// A mistake in how the command was called (exit code 2, as clap's own usage errors).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Writes a secret (a generated password) to a file only its owner may read (mode 0600, set
/// at creation and again in case the file already existed with looser bits).
pub fn write_secret_file(path: &Path, secret: &str) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    writeln!(f, "{secret}")?;
    Ok(())
}

pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// Asks before a destructive command, as `az` does; `--yes` skips the question, and without
/// a terminal to ask on, the command is refused rather than run unasked.
pub fn confirm(yes: bool, what: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(usage(format!(
            "{what}: unable to prompt for confirmation as no tty is available. Use --yes."
        )));
    }
    eprint!("{what}.\nAre you sure you want to perform this operation? (y/n): ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        anyhow::bail!("Operation cancelled.")
    }
}

/// The CA file in use and where it came from, for the hint when the server's certificate is
/// refused.
static CA_IN_USE: OnceLock<String> = OnceLock::new();

/// The CA to trust: the flag, an account's for that server, else a local server's CA if
/// there is one.
fn resolve_ca(flag: Option<PathBuf>, server: &str, profile: Option<&Profile>) -> Option<PathBuf> {
    let (ca, source) = if let Some(f) = flag {
        (Some(f), "given with --ca-file or MLGATE_CA_FILE")
    } else if let Some(f) =
        profile.filter(|p| profile::same_server(&p.server, server)).and_then(|p| p.ca_file.clone())
    {
        (Some(f), "saved with the account at 'mlgate login'")
    } else {
        let local = crate::serve::default_data_dir().join("tls/ca.pem");
        if local.exists() {
            (Some(local), "the local server's CA, from its default data directory")
        } else {
            (None, "")
        }
    };
    let text = match &ca {
        Some(p) => format!("{} ({source})", p.display()),
        None => "the system's trusted CAs (no CA file given, none found in the default data \
                 directory)"
            .to_string(),
    };
    let _ = CA_IN_USE.set(text);
    ca
}

/// What to add to an error: for a refused server certificate, which CA was used and how to
/// pass another; for a usage error, nothing.
pub fn hint(e: &anyhow::Error) -> Option<String> {
    let transport = e.chain().any(|c| {
        matches!(c.downcast_ref::<ClientError>(), Some(ClientError::Transport(m))
            if m.contains("certificate") || m.contains("UnknownIssuer") || m.contains("BadSignature"))
    });
    if !transport {
        return None;
    }
    let ca = CA_IN_USE.get().cloned().unwrap_or_default();
    Some(format!(
        "The server's certificate was checked against {ca}, and that CA did not sign it. \
         Pass the CA of the server you are talking to with --ca-file FILE (or MLGATE_CA_FILE): \
         a server prints its CA file when it starts ('clients must trust the CA at: ...'), by \
         default {{data-dir}}/tls/ca.pem. 'mlgate tls trust' installs it for every program."
    ))
}

/// A client for `--server` (else the active account's server, else the default) without
/// needing a signed-in account, as `login` makes one.
pub fn client_without_account(c: &ClientOpts) -> Result<Client> {
    let all = profile::load_all()?;
    let server = c
        .server
        .clone()
        .or_else(|| all.active().map(|p| p.server.clone()))
        .unwrap_or_else(|| DEFAULT_SERVER.to_string());
    let same_server = all.accounts.iter().rev().find(|p| profile::same_server(&p.server, &server));
    let ca = resolve_ca(c.ca_file.clone(), &server, same_server);
    connect(&server, ca.as_deref())
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

#[allow(
    clippy::disallowed_methods,
    reason = "the CLI checks its cached tokens' expiry against the wall clock"
)]
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
    /// The active account, or with `--server` the account signed in to that server.
    pub fn open(c: &ClientOpts) -> Result<Self> {
        let all = profile::load_all()?;
        let profile = match (&c.server, all.active()) {
            (_, None) => anyhow::bail!("Please run 'mlgate login' to set up an account."),
            (Some(server), Some(active)) if !profile::same_server(&active.server, server) => all
                .accounts
                .iter()
                .rev()
                .find(|p| profile::same_server(&p.server, server))
                .cloned()
                .with_context(|| {
                    format!(
                        "no account is signed in to {server}; run 'mlgate login --server \
                             {server}' (the active account is on {})",
                        active.server
                    )
                })?,
            (_, Some(active)) => active.clone(),
        };
        Self::for_profile(profile, c.ca_file.clone())
    }

    pub fn for_profile(profile: Profile, ca_flag: Option<PathBuf>) -> Result<Self> {
        let ca = resolve_ca(ca_flag, &profile.server, Some(&profile));
        let client = connect(&profile.server, ca.as_deref())?;
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
            Credential::User { refresh_token } => {
                self.client.refresh(&tenant, refresh_token, &scope).await
            }
            Credential::ServicePrincipal { client_id, client_secret } => {
                self.client.client_credentials(&tenant, client_id, client_secret, &scope).await
            }
        }
        .map_err(|e| token_error(e, resource, &self.profile))?;
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
        profile::update(&self.profile)?;
        Ok((resp.access_token, expires_on))
    }

    /// The subscription to act in: the flag (an id, or a name the account knows), else the
    /// account's default.
    pub fn subscription(&self, flag: Option<String>) -> Result<String> {
        if let Some(f) = flag {
            let known = self.profile.subscriptions.iter().find(|s| s.name == f);
            return Ok(known.map(|s| s.id.clone()).unwrap_or(f));
        }
        self.profile.subscription_id.clone().with_context(|| {
            let what = if self.profile.user_type == "servicePrincipal" {
                "a service principal has one once it is given a role on it"
            } else {
                "its tenant has none"
            };
            format!(
                "the active account ({}) has no subscription ({what}). Pass --subscription, or \
                 switch to another signed-in account: 'mlgate account list' shows every \
                 account's subscriptions, 'mlgate account set -s SUBSCRIPTION' picks one",
                self.profile.user_name
            )
        })
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
                self.client.refresh(tenant, refresh_token, &scope).await
            }
            Credential::ServicePrincipal { client_id, client_secret } => {
                self.client.client_credentials(tenant, client_id, client_secret, &scope).await
            }
        }
        .map_err(|e| token_error(e, mlgate_proto::DEFAULT_RESOURCE, &self.profile))?;
        if let (Some(rt), Credential::User { refresh_token }) =
            (resp.refresh_token.clone(), &mut self.profile.credential)
        {
            *refresh_token = rt;
            profile::update(&self.profile)?;
        }
        Ok(resp.access_token)
    }

    /// A token for the mlgate API itself.
    pub async fn api_token(&mut self) -> Result<String> {
        Ok(self.token(mlgate_proto::DEFAULT_RESOURCE).await?.0)
    }
}

/// Says why a token could not be had: an unknown resource is not an expired sign-in.
fn token_error(e: ClientError, resource: &str, p: &Profile) -> anyhow::Error {
    let (code, description) = match &e {
        ClientError::OAuth { body, .. } => (body.error.as_str(), body.error_description.clone()),
        _ => return e.into(),
    };
    let msg = match (code, &p.credential) {
        ("invalid_resource" | "invalid_scope", _) => format!(
            "the server {} does not know the resource '{resource}' ({description}). It accepts \
             https://management.azure.com/ (the default), https://ml.azure.com, its own URL and \
             the resources given to 'mlgate serve --resource'",
            p.server
        ),
        ("invalid_grant" | "interaction_required", Credential::User { .. }) => format!(
            "the sign-in of {} has expired or was revoked ({description}); run 'mlgate login' \
             again",
            p.user_name
        ),
        ("invalid_client" | "unauthorized_client", Credential::ServicePrincipal { .. }) => {
            format!(
                "the service principal {} was refused ({description}): its secret may have \
                 expired or been reset, or it was disabled; sign in again with 'mlgate login \
                 --service-principal'",
                p.user_name
            )
        }
        _ => return e.into(),
    };
    anyhow::anyhow!(msg)
}
