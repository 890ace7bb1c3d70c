//! The workspace handle every SDK call starts from, as in the Azure ML SDK:
//! `Workspace::from_config()` (reads `config.json`) or `Workspace::get(...)`, authenticated by a
//! service principal (`ServicePrincipalAuthentication`, also from the `AML_*` variables).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use mlgate_proto::DeviceCodeResponse;

use crate::{Client, ClientError, Result};

/// The scope the SDK asks for: ARM's, which mlgate's API accepts.
const API_SCOPE: &str = "https://management.azure.com/.default";

/// A service principal's credentials; tokens are fetched on demand and reused while they have
/// more than five minutes left.
pub struct ServicePrincipalAuthentication {
    pub tenant_id: String,
    pub service_principal_id: String,
    service_principal_password: String,
    cached: Mutex<Option<(String, time::OffsetDateTime)>>,
}

impl std::fmt::Debug for ServicePrincipalAuthentication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServicePrincipalAuthentication")
            .field("tenant_id", &self.tenant_id)
            .field("service_principal_id", &self.service_principal_id)
            .finish_non_exhaustive()
    }
}

impl ServicePrincipalAuthentication {
    pub fn new(
        tenant_id: &str,
        service_principal_id: &str,
        service_principal_password: &str,
    ) -> Self {
        Self {
            tenant_id: tenant_id.to_string(),
            service_principal_id: service_principal_id.to_string(),
            service_principal_password: service_principal_password.to_string(),
            cached: Mutex::new(None),
        }
    }

    /// From `AML_TENANT_ID`, `AML_PRINCIPAL_ID` and `AML_PRINCIPAL_PASS`, as the Azure ML
    /// documentation recommends for automation.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`Self::from_env`] over any lookup of the three variables.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |k: &str| {
            var(k).filter(|v| !v.is_empty()).ok_or_else(|| {
                ClientError::Config(format!("the environment variable {k} is not set"))
            })
        };
        Ok(Self::new(
            &get("AML_TENANT_ID")?,
            &get("AML_PRINCIPAL_ID")?,
            &get("AML_PRINCIPAL_PASS")?,
        ))
    }

    /// A token for another resource (`scope` ending in `/.default`), not cached.
    pub async fn token_for(&self, client: &Client, scope: &str) -> Result<String> {
        let resp = client
            .client_credentials(
                &self.tenant_id,
                &self.service_principal_id,
                &self.service_principal_password,
                scope,
            )
            .await?;
        Ok(resp.access_token)
    }

    #[allow(
        clippy::disallowed_methods,
        reason = "the SDK checks its cached token's expiry against the wall clock"
    )]
    pub async fn token(&self, client: &Client) -> Result<String> {
        let now = time::OffsetDateTime::now_utc();
        if let Ok(guard) = self.cached.lock()
            && let Some((t, exp)) = guard.as_ref()
            && *exp - now > time::Duration::minutes(5)
        {
            return Ok(t.clone());
        }
        let resp = client
            .client_credentials(
                &self.tenant_id,
                &self.service_principal_id,
                &self.service_principal_password,
                API_SCOPE,
            )
            .await?;
        if let Ok(mut guard) = self.cached.lock() {
            *guard =
                Some((resp.access_token.clone(), now + time::Duration::seconds(resp.expires_in)));
        }
        Ok(resp.access_token)
    }
}

type Prompt = Box<dyn Fn(&DeviceCodeResponse) + Send + Sync>;

/// A person signs in with a device code (the message goes to stderr, as in the Azure ML SDK);
/// the tokens are then renewed silently with the rotating refresh token.
pub struct InteractiveLoginAuthentication {
    pub tenant_id: String,
    prompt: Prompt,
    /// (access token, expiry, refresh token)
    state: tokio::sync::Mutex<Option<(String, time::OffsetDateTime, String)>>,
}

impl std::fmt::Debug for InteractiveLoginAuthentication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InteractiveLoginAuthentication({})", self.tenant_id)
    }
}

impl InteractiveLoginAuthentication {
    pub fn new(tenant_id: &str) -> Self {
        Self::with_prompt(tenant_id, |d| eprintln!("{}", d.message))
    }

    /// With a custom way of showing the code to the person.
    pub fn with_prompt(
        tenant_id: &str,
        prompt: impl Fn(&DeviceCodeResponse) + Send + Sync + 'static,
    ) -> Self {
        Self {
            tenant_id: tenant_id.to_string(),
            prompt: Box::new(prompt),
            state: tokio::sync::Mutex::new(None),
        }
    }

    #[allow(
        clippy::disallowed_methods,
        reason = "the SDK checks its cached token's expiry against the wall clock"
    )]
    pub async fn token(&self, client: &Client) -> Result<String> {
        let mut state = self.state.lock().await;
        let now = time::OffsetDateTime::now_utc();
        if let Some((t, exp, _)) = state.as_ref()
            && *exp - now > time::Duration::minutes(5)
        {
            return Ok(t.clone());
        }
        let scope = format!("{API_SCOPE} offline_access openid profile");
        let resp = match state.as_ref().map(|(_, _, rt)| rt.clone()) {
            Some(rt) => client.refresh(&self.tenant_id, &rt, API_SCOPE).await?,
            None => {
                let device = client.device_code(&self.tenant_id, &scope).await?;
                (self.prompt)(&device);
                client.wait_for_device_code(&self.tenant_id, &device).await?
            }
        };
        let rt = resp.refresh_token.clone().unwrap_or_default();
        *state =
            Some((resp.access_token.clone(), now + time::Duration::seconds(resp.expires_in), rt));
        Ok(resp.access_token)
    }
}

/// How a workspace handle authenticates.
#[derive(Debug)]
pub enum Authentication {
    ServicePrincipal(ServicePrincipalAuthentication),
    Interactive(InteractiveLoginAuthentication),
    /// A bearer token obtained elsewhere (e.g. `mlgate account get-access-token`).
    Token(String),
}

impl Authentication {
    /// A token for `scope`'s resource: a service principal asks for it; a person's refresh
    /// token is redeemed for it; a given token is used as it is.
    pub async fn token_for(&self, client: &Client, scope: &str) -> Result<String> {
        match self {
            Authentication::ServicePrincipal(sp) => sp.token_for(client, scope).await,
            Authentication::Interactive(i) => {
                self.token(client).await?;
                let rt = i.state.lock().await.as_ref().map(|(_, _, rt)| rt.clone());
                let rt = rt.ok_or_else(|| ClientError::Config("not signed in".into()))?;
                Ok(client.refresh(&i.tenant_id, &rt, scope).await?.access_token)
            }
            Authentication::Token(t) => Ok(t.clone()),
        }
    }

    pub async fn token(&self, client: &Client) -> Result<String> {
        match self {
            Authentication::ServicePrincipal(sp) => sp.token(client).await,
            Authentication::Interactive(i) => i.token(client).await,
            Authentication::Token(t) => Ok(t.clone()),
        }
    }
}

/// `config.json`, as `mlgate ml workspace show --write-config` and Azure ML write it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkspaceConfig {
    pub subscription_id: String,
    pub resource_group: String,
    pub workspace_name: String,
    /// The mlgate server (Azure ML's own config has none; then `MLGATE_SERVER` is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

const CONFIG_NAMES: &[&str] = &["config.json", ".mlgate/config.json", ".azureml/config.json"];

/// Looks for a config file in `start` and each of its parents.
pub fn find_config(start: &Path) -> Option<PathBuf> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        for name in CONFIG_NAMES {
            let p = d.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
        dir = d.parent();
    }
    None
}

pub struct Workspace {
    client: Client,
    auth: Authentication,
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
    details: mlgate_proto::Workspace,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Workspace({}/{}/{})", self.subscription_id, self.resource_group, self.name)
    }
}

impl Workspace {
    /// Reads the workspace by name; without a resource group, finds it in the subscription.
    pub async fn get(
        client: Client,
        name: &str,
        auth: Authentication,
        subscription_id: &str,
        resource_group: Option<&str>,
    ) -> Result<Self> {
        let token = auth.token(&client).await?;
        let details = match resource_group {
            Some(rg) => client.workspace(&token, subscription_id, rg, name).await?,
            None => {
                let mut found: Vec<_> = client
                    .workspaces(&token, subscription_id, None)
                    .await?
                    .into_iter()
                    .filter(|w| w.name.eq_ignore_ascii_case(name))
                    .collect();
                match found.len() {
                    1 => found.remove(0),
                    0 => {
                        return Err(ClientError::Config(format!(
                            "no workspace named '{name}' is visible in subscription '{subscription_id}'"
                        )));
                    }
                    _ => {
                        return Err(ClientError::Config(format!(
                            "several workspaces are named '{name}'; give the resource group"
                        )));
                    }
                }
            }
        };
        let resource_group = details.id.split('/').nth(4).unwrap_or_default().to_string();
        Ok(Self {
            client,
            auth,
            subscription_id: subscription_id.to_string(),
            resource_group,
            name: details.name.clone(),
            details,
        })
    }

    /// From `config.json` (or `.mlgate/config.json`, `.azureml/config.json`) in `path` or the
    /// current folder and its parents. The server comes from the file or `MLGATE_SERVER`, the
    /// CA from `MLGATE_CA_FILE`; without `auth`, the `AML_*` service-principal variables, or
    /// else an interactive (device-code) sign-in.
    pub async fn from_config(path: Option<&Path>, auth: Option<Authentication>) -> Result<Self> {
        let ca = match std::env::var_os("MLGATE_CA_FILE") {
            Some(p) => Some(
                std::fs::read(&p)
                    .map_err(|e| ClientError::Config(format!("MLGATE_CA_FILE: {e}")))?,
            ),
            None => None,
        };
        Self::from_config_with_ca(path, auth, ca.as_deref()).await
    }

    /// [`Self::from_config`] trusting the given CA (PEM) instead of `MLGATE_CA_FILE`.
    pub async fn from_config_with_ca(
        path: Option<&Path>,
        auth: Option<Authentication>,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self> {
        let start = match path {
            Some(p) => p.to_path_buf(),
            None => std::env::current_dir().map_err(|e| ClientError::Config(e.to_string()))?,
        };
        let file = if start.is_file() { Some(start.clone()) } else { find_config(&start) };
        let file = file.ok_or_else(|| {
            ClientError::Config(format!(
                "no config.json found in {} or its parents",
                start.display()
            ))
        })?;
        let text = std::fs::read_to_string(&file)
            .map_err(|e| ClientError::Config(format!("{}: {e}", file.display())))?;
        let cfg: WorkspaceConfig = serde_json::from_str(&text).map_err(|e| {
            ClientError::Config(format!("{} is not a workspace config: {e}", file.display()))
        })?;
        let server = cfg
            .server
            .clone()
            .or_else(|| std::env::var("MLGATE_SERVER").ok())
            .ok_or_else(|| {
                ClientError::Config("no server in the config and MLGATE_SERVER is not set".into())
            })?;
        let client = Client::new(&server, ca_pem)?;
        // As the Azure ML SDK: the AML_* service principal when set, else a person signs in.
        let auth = match auth {
            Some(a) => a,
            None => match ServicePrincipalAuthentication::from_env() {
                Ok(sp) => Authentication::ServicePrincipal(sp),
                Err(_) => Authentication::Interactive(InteractiveLoginAuthentication::new(
                    "organizations",
                )),
            },
        };
        Self::get(
            client,
            &cfg.workspace_name,
            auth,
            &cfg.subscription_id,
            Some(&cfg.resource_group),
        )
        .await
    }

    /// The workspace's ARM document.
    pub fn get_details(&self) -> &mlgate_proto::Workspace {
        &self.details
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A bearer token for this workspace's API calls.
    pub async fn token(&self) -> Result<String> {
        self.auth.token(&self.client).await
    }

    /// A bearer token for another resource, e.g. `https://ml.azure.com/.default` for services
    /// with `aad_token` auth.
    pub async fn token_for(&self, scope: &str) -> Result<String> {
        self.auth.token_for(&self.client, scope).await
    }

    pub fn config(&self) -> WorkspaceConfig {
        WorkspaceConfig {
            subscription_id: self.subscription_id.clone(),
            resource_group: self.resource_group.clone(),
            workspace_name: self.name.clone(),
            server: Some(self.client.base_url().to_string()),
        }
    }
}
