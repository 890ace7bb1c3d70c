//! The signed-in accounts and their token caches: `$MLGATE_CONFIG_DIR/profile.json` (default
//! `~/.mlgate`), created with mode 0600 in a 0700 folder, since it holds refresh tokens and
//! service principals' secrets, as `~/.azure` does for the Azure CLI.
//!
//! Like the Azure CLI, several accounts stay signed in at once: `login` adds one (or replaces
//! the same account on the same server) and makes it the active one; `account set -s` makes
//! the account holding a subscription active; `logout` forgets the active one. A file written
//! by an older mlgate (one account, no list) is read as a list of one.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Credential {
    #[serde(rename_all = "camelCase")]
    User { refresh_token: String },
    #[serde(rename_all = "camelCase")]
    ServicePrincipal { client_id: String, client_secret: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CachedToken {
    pub access_token: String,
    /// Unix seconds.
    pub expires_on: i64,
}

/// A subscription seen at sign-in (or by `account list`), as `az` keeps them in its profile.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KnownSubscription {
    pub id: String,
    pub name: String,
    pub tenant_id: String,
    pub state: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub server: String,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    pub tenant_id: String,
    /// `name@domain` or the application id.
    pub user_name: String,
    /// `user` or `servicePrincipal`, as `az account show` prints it.
    pub user_type: String,
    #[serde(default)]
    pub subscription_id: Option<String>,
    #[serde(default)]
    pub subscription_name: Option<String>,
    #[serde(default)]
    pub subscriptions: Vec<KnownSubscription>,
    pub credential: Credential,
    #[serde(default)]
    pub tokens: BTreeMap<String, CachedToken>,
}

impl Profile {
    /// Two sign-ins are the same account when server, user and kind match.
    pub fn same_account(&self, other: &Profile) -> bool {
        same_server(&self.server, &other.server)
            && self.user_name.eq_ignore_ascii_case(&other.user_name)
            && self.user_type == other.user_type
    }
}

pub fn same_server(a: &str, b: &str) -> bool {
    a.trim_end_matches('/').eq_ignore_ascii_case(b.trim_end_matches('/'))
}

/// Every signed-in account; `active` indexes the one commands use.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Profiles {
    pub accounts: Vec<Profile>,
    #[serde(default)]
    pub active: usize,
}

impl Profiles {
    pub fn active(&self) -> Option<&Profile> {
        self.accounts.get(self.active)
    }

    /// Adds the account (replacing the same account's old sign-in) and makes it active.
    pub fn add(&mut self, p: Profile) {
        match self.accounts.iter().position(|a| a.same_account(&p)) {
            Some(i) => {
                self.accounts[i] = p;
                self.active = i;
            }
            None => {
                self.accounts.push(p);
                self.active = self.accounts.len() - 1;
            }
        }
    }
}

pub fn config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MLGATE_CONFIG_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".mlgate")
}

fn path() -> PathBuf {
    config_dir().join("profile.json")
}

/// Every signed-in account (none when the file does not exist).
pub fn load_all() -> Result<Profiles> {
    let p = path();
    if !p.exists() {
        return Ok(Profiles::default());
    }
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    let damaged = || format!("{} is damaged; run 'mlgate login' again", p.display());
    let value: serde_json::Value = serde_json::from_str(&text).with_context(damaged)?;
    let mut all: Profiles = if value.get("accounts").is_some() {
        serde_json::from_value(value).with_context(damaged)?
    } else {
        Profiles { accounts: vec![serde_json::from_value(value).with_context(damaged)?], active: 0 }
    };
    if all.active >= all.accounts.len() {
        all.active = 0;
    }
    Ok(all)
}

/// Writes back one account's changes (new tokens, a rotated refresh token, another default
/// subscription), keeping whatever other commands wrote meanwhile. An account signed out
/// meanwhile stays signed out.
pub fn update(profile: &Profile) -> Result<()> {
    let mut all = load_all()?;
    if let Some(slot) = all.accounts.iter_mut().find(|a| a.same_account(profile)) {
        *slot = profile.clone();
        save_all(&all)?;
    }
    Ok(())
}

pub fn save_all(all: &Profiles) -> Result<()> {
    if all.accounts.is_empty() {
        let p = path();
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
        return Ok(());
    }
    let dir = config_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    // Write a new file and rename it over the old one, so a crash never leaves half a profile.
    let tmp = dir.join(format!("profile.json.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(serde_json::to_string_pretty(all)?.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(server: &str, user: &str) -> Profile {
        Profile {
            server: server.into(),
            ca_file: None,
            tenant_id: "t".into(),
            user_name: user.into(),
            user_type: "user".into(),
            subscription_id: None,
            subscription_name: None,
            subscriptions: vec![],
            credential: Credential::User { refresh_token: "r".into() },
            tokens: BTreeMap::new(),
        }
    }

    #[test]
    fn login_adds_accounts_and_replaces_the_same_one() {
        let mut all = Profiles::default();
        all.add(account("https://a", "admin@x"));
        all.add(account("https://a", "dana@x"));
        assert_eq!((all.accounts.len(), all.active), (2, 1));
        all.add(account("https://A/", "ADMIN@x"));
        assert_eq!((all.accounts.len(), all.active), (2, 0));
        all.add(account("https://b", "admin@x"));
        assert_eq!((all.accounts.len(), all.active), (3, 2));
    }

    #[test]
    fn a_single_profile_from_an_older_mlgate_reads_as_one_account() {
        let old = serde_json::to_value(account("https://a", "admin@x")).unwrap_or_default();
        assert!(old.get("accounts").is_none());
        let p: Profile = serde_json::from_value(old).unwrap_or_else(|_| account("", ""));
        assert_eq!(p.user_name, "admin@x");
    }
}
