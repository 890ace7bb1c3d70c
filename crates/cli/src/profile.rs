//! The signed-in profile and token cache: `$MLGATE_CONFIG_DIR/profile.json` (default
//! `~/.mlgate`), created with mode 0600 in a 0700 folder, since it holds a refresh token or a
//! service principal's secret, as `~/.azure` does for the Azure CLI.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
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
    pub credential: Credential,
    #[serde(default)]
    pub tokens: BTreeMap<String, CachedToken>,
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

pub fn load() -> Result<Option<Profile>> {
    let p = path();
    if !p.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    let profile = serde_json::from_str(&text)
        .with_context(|| format!("{} is damaged; run 'mlgate login' again", p.display()))?;
    Ok(Some(profile))
}

pub fn require() -> Result<Profile> {
    match load()? {
        Some(p) => Ok(p),
        None => bail!("Please run 'mlgate login' to set up an account."),
    }
}

pub fn save(profile: &Profile) -> Result<()> {
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
    f.write_all(serde_json::to_string_pretty(profile)?.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path())?;
    Ok(())
}

pub fn remove() -> Result<bool> {
    let p = path();
    if p.exists() {
        std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        return Ok(true);
    }
    Ok(false)
}
