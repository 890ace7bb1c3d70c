//! Online endpoints: the Azure ML SDK v2's face of web services, over the same [`Services`].
//!
//! An endpoint is a web service seen through Azure's newer API: its one deployment *is* the
//! service of the endpoint's name (the same record, keys, scoring gate, scoring URI and
//! `Deployer`). What the service record does not hold, the endpoint record does: the
//! endpoint's auth mode and description before any deployment exists (the SDK creates the
//! endpoint first, then the deployment, then sets the traffic), the deployment's name and
//! the Azure settings it was given. A service deployed through another face has no endpoint
//! record until the endpoint face first writes it; it reads as an endpoint with one
//! deployment named `default`.
//!
//! RBAC uses Azure's names for endpoints (`workspaces/onlineEndpoints/...`) at the endpoint's
//! scope (`{workspace}/onlineEndpoints/{name}`); built-in roles grant them as they grant the
//! `services` actions. As for services, a scoring token needs only `onlineEndpoints/read` (or
//! Azure's `token/action`), so a Reader may get one, while keys need `listKeys/action`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::access::Access;
use crate::clock::Clock;
use crate::code::CodeAssets;
use crate::directory::Directory;
use crate::error::Error;
use crate::model_registry::{WorkspaceRef, caller_workspace};
use crate::principal::Principal;
use crate::rbac::Scope;
use crate::rbac::catalog::{
    DEPLOYMENT_DELETE, DEPLOYMENT_LOGS, DEPLOYMENT_READ, DEPLOYMENT_WRITE, ENDPOINT_DELETE,
    ENDPOINT_LIST_KEYS, ENDPOINT_READ, ENDPOINT_REGENERATE_KEYS, ENDPOINT_TOKEN, ENDPOINT_WRITE,
};
use crate::records::{ModelVersion, OnlineEndpoint, Service, ServiceState, Workspace};
use crate::services::{
    AuthMode, KeySlot, Rollout, ServiceKeys, ServiceToken, Services, deployment_config,
    valid_service_name,
};

/// The deployment name a service made through another face shows.
pub const DEFAULT_DEPLOYMENT: &str = "default";

/// An endpoint as the face shows it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: String,
    pub workspace: Workspace,
    pub auth: AuthMode,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    pub deployment: Option<Deployment>,
    pub created_at: time::OffsetDateTime,
    pub updated_at: time::OffsetDateTime,
    pub created_by: crate::ids::ObjectId,
}

/// An endpoint's one deployment: its name, the service that runs it, what it was given.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub name: String,
    pub service: Service,
    /// The Azure settings given with it (empty for a service made through another face).
    pub spec: Value,
}

impl Endpoint {
    /// Azure's `provisioningState`, from the service's state.
    pub fn provisioning_state(&self) -> &'static str {
        self.deployment.as_ref().map_or("Succeeded", |d| provisioning_state(d.service.state))
    }

    /// Azure's `traffic`: all of it to the one deployment.
    pub fn traffic(&self) -> BTreeMap<String, u32> {
        self.deployment.iter().map(|d| (d.name.clone(), 100)).collect()
    }
}

/// Azure's `provisioningState` of a deployment in mlgate's state.
pub fn provisioning_state(s: ServiceState) -> &'static str {
    match s {
        ServiceState::Transitioning => "Updating",
        ServiceState::Healthy => "Succeeded",
        ServiceState::Unhealthy | ServiceState::Failed => "Failed",
    }
}

/// An endpoint's settings, from `PUT .../onlineEndpoints/{name}`.
#[derive(Debug, Clone)]
pub struct EndpointSpec {
    pub auth: AuthMode,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    /// Percent per deployment name, as given.
    pub traffic: BTreeMap<String, u32>,
}

/// A deployment's settings, from `PUT .../deployments/{name}`, already in mlgate's terms.
#[derive(Debug, Clone, Default)]
pub struct DeploymentSpec {
    /// `name:version` of a registered model of the workspace.
    pub model: String,
    /// A code asset (name, version) and the scoring script's path inside it; without one the
    /// model must be ONNX.
    pub code: Option<(String, String, String)>,
    pub instance_count: u32,
    pub max_concurrent_requests: u32,
    pub request_timeout_ms: Option<u64>,
    pub max_queue_wait_ms: Option<u64>,
    pub environment_variables: BTreeMap<String, String>,
    /// What to echo back (instance type, environment, code and model ids, settings).
    pub echo: Value,
}

/// How `put_deployment` went.
pub struct PutDeployment {
    pub endpoint: Endpoint,
    pub model: ModelVersion,
    pub rollout: Rollout,
    pub created: bool,
}

pub struct OnlineEndpoints {
    directory: Arc<Directory>,
    access: Arc<Access>,
    services: Arc<Services>,
    code: Arc<CodeAssets>,
    clock: Arc<dyn Clock>,
}

/// What an ARM endpoint or deployment name may be here: a service name (3 to 32 lower-case
/// letters, digits and dashes, starting with a letter), since the endpoint is the service.
fn check_name(what: &str, name: &str) -> Result<(), Error> {
    if valid_service_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "'{}' is not a valid {what} name: 3 to 32 lower-case letters, digits and dashes, \
             starting with a letter",
            name.chars().take(64).collect::<String>()
        )))
    }
}

impl OnlineEndpoints {
    pub fn new(
        directory: Arc<Directory>,
        access: Arc<Access>,
        services: Arc<Services>,
        code: Arc<CodeAssets>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { directory, access, services, code, clock }
    }

    fn scope(ws: WorkspaceRef<'_>, name: &str) -> Result<Scope, Error> {
        if name.is_empty() {
            return Services::scope(ws, "");
        }
        check_name("endpoint", name)?;
        Services::scope(ws, &format!("onlineEndpoints/{name}"))
    }

    fn deployment_scope(ws: WorkspaceRef<'_>, name: &str, dep: &str) -> Result<Scope, Error> {
        check_name("endpoint", name)?;
        check_name("deployment", dep)?;
        Services::scope(ws, &format!("onlineEndpoints/{name}/deployments/{dep}"))
    }

    /// The endpoint of `name` in the caller's workspace, from its record and its service.
    async fn load(&self, workspace: &Workspace, name: &str) -> Result<Option<Endpoint>, Error> {
        let store = self.directory.store();
        let record = store.endpoint(name).await?.filter(|e| e.workspace_id == workspace.id);
        let service = store.service(name).await?.filter(|s| s.workspace_id == workspace.id);
        Ok(match (record, service) {
            (Some(r), service) => Some(Endpoint {
                name: r.name,
                workspace: workspace.clone(),
                auth: r.auth_mode,
                description: r.description,
                tags: r.tags,
                deployment: service.map(|s| Deployment {
                    name: r.deployment.unwrap_or_else(|| DEFAULT_DEPLOYMENT.into()),
                    service: s,
                    spec: r.deployment_spec.unwrap_or_else(|| json!({})),
                }),
                created_at: r.created_at,
                updated_at: r.updated_at,
                created_by: r.created_by,
            }),
            (None, Some(s)) => Some(Self::from_service(workspace, s)),
            (None, None) => None,
        })
    }

    fn from_service(workspace: &Workspace, s: Service) -> Endpoint {
        let auth = deployment_config(&s.deployment_config).map_or(AuthMode::None, |c| c.auth);
        Endpoint {
            name: s.name.clone(),
            workspace: workspace.clone(),
            auth,
            description: String::new(),
            tags: BTreeMap::new(),
            created_at: s.created_at,
            updated_at: s.updated_at,
            created_by: s.created_by,
            deployment: Some(Deployment {
                name: DEFAULT_DEPLOYMENT.into(),
                service: s,
                spec: json!({}),
            }),
        }
    }

    async fn find(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
    ) -> Result<Endpoint, Error> {
        let workspace = caller_workspace(&self.directory, caller, ws).await?;
        self.load(&workspace, name).await?.ok_or_else(|| {
            Error::NotFound(format!("Online endpoint '{name}' does not exist in this workspace."))
        })
    }

    /// Checks `action` on the endpoint (or its deployment) before a face reads the request's
    /// body, so a caller without access learns nothing from a validation error.
    pub fn authorize(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
        deployment: Option<&str>,
        action: &str,
    ) -> Result<(), Error> {
        let scope = match deployment {
            Some(d) => Self::deployment_scope(ws, name, d)?,
            None => Self::scope(ws, name)?,
        };
        self.access.authorize(caller, action, &scope)
    }

    pub async fn list(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
    ) -> Result<Vec<Endpoint>, Error> {
        self.access.authorize(caller, ENDPOINT_READ, &Self::scope(ws, "")?)?;
        let workspace = caller_workspace(&self.directory, caller, ws).await?;
        let store = self.directory.store();
        let mut names: Vec<String> =
            store.endpoints(workspace.id).await?.into_iter().map(|e| e.name).collect();
        names.extend(store.services(workspace.id).await?.into_iter().map(|s| s.name));
        names.sort_by_key(|n| n.to_ascii_lowercase());
        names.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            if let Some(e) = self.load(&workspace, &n).await? {
                out.push(e);
            }
        }
        Ok(out)
    }

    pub async fn get(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
    ) -> Result<Endpoint, Error> {
        self.access.authorize(caller, ENDPOINT_READ, &Self::scope(ws, name)?)?;
        self.find(caller, ws, name).await
    }

    /// Creates or updates an endpoint. A new auth mode applies at once to a running
    /// deployment (the model keeps running). Traffic may only name the one deployment, with
    /// 100 (or 0 before it exists): an mlgate endpoint sends all its requests there.
    /// Returns the endpoint and whether it was created.
    pub async fn put(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
        spec: EndpointSpec,
    ) -> Result<(Endpoint, bool), Error> {
        self.access.authorize(caller, ENDPOINT_WRITE, &Self::scope(ws, name)?)?;
        if spec.auth == AuthMode::None {
            return Err(Error::InvalidInput("authMode must be Key, AMLToken or AADToken".into()));
        }
        check_tags(&spec.tags)?;
        let workspace = caller_workspace(&self.directory, caller, ws).await?;
        let existing = self.load(&workspace, name).await?;
        let deployment = existing.as_ref().and_then(|e| e.deployment.as_ref());
        for (dep, pct) in &spec.traffic {
            let ours = deployment.is_some_and(|d| d.name.eq_ignore_ascii_case(dep));
            match (ours, *pct) {
                (true, 100) | (false, 0) => {}
                (true, _) => {
                    return Err(Error::InvalidInput(format!(
                        "an mlgate endpoint has one deployment, which takes all its traffic: \
                         give '{dep}' 100"
                    )));
                }
                (false, _) => {
                    return Err(Error::InvalidInput(format!(
                        "traffic names '{}', which is not a deployment of '{name}'",
                        dep.chars().take(64).collect::<String>()
                    )));
                }
            }
        }
        let now = self.clock.now();
        let record = OnlineEndpoint {
            name: name.to_string(),
            workspace_id: workspace.id,
            auth_mode: spec.auth,
            description: spec.description.chars().take(1024).collect(),
            tags: spec.tags,
            deployment: deployment.map(|d| d.name.clone()),
            deployment_spec: deployment.map(|d| d.spec.clone()),
            created_at: existing.as_ref().map_or(now, |e| e.created_at),
            updated_at: now,
            created_by: existing.as_ref().map_or(caller.object_id, |e| e.created_by),
        };
        let before = self.directory.store().endpoint(name).await?;
        self.put_record(&record).await?;
        self.services.ensure_keys(name).await?;
        let applied = match deployment {
            // A running deployment takes the new mode now (its model keeps running).
            Some(d) if deployment_config(&d.service.deployment_config)?.auth != spec.auth => {
                let mut dc = d.service.deployment_config.clone();
                set_auth(&mut dc, spec.auth);
                self.services
                    .deploy_authorized(
                        caller,
                        ws,
                        name,
                        &format!("{}:{}", d.service.model_name, d.service.model_version),
                        d.service.inference_config.clone(),
                        dc,
                    )
                    .await
                    .map(|_| ())
            }
            // The same mode: re-install the gate, so an adopted service scores with the
            // endpoint's RBAC action from now on.
            Some(d) => {
                let installed = self.services.install_gate(&d.service, &workspace).await;
                self.services.publish(name).await;
                installed
            }
            None => Ok(()),
        };
        if let Err(e) = applied {
            self.restore(name, before).await;
            return Err(e);
        }
        let endpoint = self.find(caller, ws, name).await?;
        Ok((endpoint, existing.is_none()))
    }

    /// Puts an endpoint record back as it was before a change that failed.
    async fn restore(&self, name: &str, before: Option<OnlineEndpoint>) {
        let store = self.directory.store();
        let restored = match before {
            Some(b) => store.put_endpoint(&b).await,
            // There was none: only the record goes (an adopted service stays).
            None => store.delete_endpoint_record(name).await,
        };
        if let Err(r) = restored {
            tracing::error!(endpoint = %name, error = %r, "could not restore the endpoint record");
        }
    }

    async fn put_record(&self, record: &OnlineEndpoint) -> Result<(), Error> {
        self.directory.store().put_endpoint(record).await.map_err(|e| match e {
            crate::store::StoreError::Conflict(_) => Error::Conflict(format!(
                "the name '{}' is taken on this server (scoring URIs are unique)",
                record.name
            )),
            other => other.into(),
        })
    }

    /// Deletes an endpoint with its deployment and keys. The caller stops the running model.
    pub async fn delete(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
    ) -> Result<(), Error> {
        self.access.authorize(caller, ENDPOINT_DELETE, &Self::scope(ws, name)?)?;
        self.find(caller, ws, name).await?;
        self.directory.store().delete_endpoint(name).await?;
        self.services.gate().remove(name);
        self.services.publish(name).await;
        Ok(())
    }

    /// `listKeys`.
    pub async fn keys(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
    ) -> Result<ServiceKeys, Error> {
        self.access.authorize(caller, ENDPOINT_LIST_KEYS, &Self::scope(ws, name)?)?;
        self.find(caller, ws, name).await?;
        self.services.ensure_keys(name).await?;
        self.services.open_keys(name).await
    }

    /// `regenerateKeys`: a new key in `slot`, in force from the next request. Azure's
    /// `keyValue` may only repeat the slot's current value (which azure-ai-ml sends): mlgate
    /// makes keys, a caller does not choose them.
    pub async fn regenerate_key(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
        slot: KeySlot,
        key_value: Option<&str>,
    ) -> Result<ServiceKeys, Error> {
        self.access.authorize(caller, ENDPOINT_REGENERATE_KEYS, &Self::scope(ws, name)?)?;
        let endpoint = self.find(caller, ws, name).await?;
        if let Some(given) = key_value {
            self.services.ensure_keys(name).await?;
            let current = self.services.open_keys(name).await?;
            let current = match slot {
                KeySlot::Primary => current.primary,
                KeySlot::Secondary => current.secondary,
            };
            use subtle::ConstantTimeEq;
            if !bool::from(given.as_bytes().ct_eq(current.as_bytes())) {
                return Err(Error::InvalidInput(
                    "keyValue may only name the key being replaced: mlgate makes new keys, a \
                     caller does not choose them"
                        .into(),
                ));
            }
        }
        let running = endpoint.deployment.as_ref().map(|d| (&d.service, &endpoint.workspace));
        self.services.regenerate_authorized(name, slot, running).await
    }

    /// `token`: a scoring token of an `AMLToken` endpoint. Azure names the action
    /// `onlineEndpoints/token/action`; reading the endpoint is enough here too, as for
    /// services, so a Reader may score with a token but not read keys.
    pub async fn token(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
    ) -> Result<ServiceToken, Error> {
        let scope = Self::scope(ws, name)?;
        if self.access.authorize(caller, ENDPOINT_TOKEN, &scope).is_err() {
            self.access.authorize(caller, ENDPOINT_READ, &scope)?;
        }
        let endpoint = self.find(caller, ws, name).await?;
        if endpoint.auth != AuthMode::Token {
            return Err(Error::InvalidInput(format!(
                "'{name}' does not use AMLToken authentication; its auth mode gives no token here"
            )));
        }
        self.services.issue_token(caller, &endpoint.workspace, name)
    }

    pub async fn deployments(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
    ) -> Result<Vec<Deployment>, Error> {
        self.access.authorize(caller, DEPLOYMENT_READ, &Self::scope(ws, name)?)?;
        Ok(self.find(caller, ws, name).await?.deployment.into_iter().collect())
    }

    pub async fn deployment(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
        dep: &str,
    ) -> Result<(Endpoint, Deployment), Error> {
        self.access.authorize(caller, DEPLOYMENT_READ, &Self::deployment_scope(ws, name, dep)?)?;
        let endpoint = self.find(caller, ws, name).await?;
        match endpoint.deployment.clone() {
            Some(d) if d.name.eq_ignore_ascii_case(dep) => Ok((endpoint, d)),
            _ => Err(Error::NotFound(format!(
                "Deployment '{dep}' does not exist on endpoint '{name}'."
            ))),
        }
    }

    /// Checks the caller may read a deployment's logs, and that it exists.
    pub async fn authorize_logs(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
        dep: &str,
    ) -> Result<Deployment, Error> {
        self.access.authorize(caller, DEPLOYMENT_LOGS, &Self::deployment_scope(ws, name, dep)?)?;
        let endpoint = self.find(caller, ws, name).await?;
        endpoint.deployment.filter(|d| d.name.eq_ignore_ascii_case(dep)).ok_or_else(|| {
            Error::NotFound(format!("Deployment '{dep}' does not exist on endpoint '{name}'."))
        })
    }

    /// Creates or updates the endpoint's deployment: the service of the endpoint's name, with
    /// the endpoint's auth mode, deployed through [`Services`] (the caller then starts it
    /// with the `Deployer` when the rollout says so). One deployment per endpoint: a second
    /// name is a conflict.
    pub async fn put_deployment(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
        dep: &str,
        spec: DeploymentSpec,
    ) -> Result<PutDeployment, Error> {
        self.access.authorize(caller, DEPLOYMENT_WRITE, &Self::deployment_scope(ws, name, dep)?)?;
        let endpoint = self.find(caller, ws, name).await?;
        if let Some(d) = &endpoint.deployment
            && !d.name.eq_ignore_ascii_case(dep)
        {
            return Err(Error::Conflict(format!(
                "endpoint '{name}' already has deployment '{}': an mlgate endpoint has one \
                 deployment (update it, or delete it first)",
                d.name
            )));
        }
        if !(1..=32).contains(&spec.instance_count) {
            return Err(Error::InvalidInput("instance_count must be 1 to 32".into()));
        }
        if !(1..=64).contains(&spec.max_concurrent_requests) {
            return Err(Error::InvalidInput(
                "max_concurrent_requests_per_instance must be 1 to 64".into(),
            ));
        }
        let mut env = serde_json::Map::new();
        for (k, v) in &spec.environment_variables {
            env.insert(k.clone(), Value::String(v.clone()));
        }
        let inference_config = match &spec.code {
            Some((code_name, code_version, script)) => {
                self.code.authorize_read(caller, ws, code_name)?;
                let code =
                    self.code.version_in(&endpoint.workspace, code_name, code_version).await?;
                json!({
                    "runtime": "python",
                    "entryScript": script,
                    "sourceFiles": code.files,
                    "environmentVariables": env,
                })
            }
            None if env.is_empty() => json!({"runtime": "onnx"}),
            None => {
                return Err(Error::InvalidInput(
                    "environment_variables need a code_configuration (a score.py); an ONNX \
                     model runs in the server"
                        .into(),
                ));
            }
        };
        let mut dc = json!({
            "computeType": "cluster",
            "replicas": spec.instance_count,
            "cpu_cores": spec.max_concurrent_requests,
        });
        if let Some(t) = spec.request_timeout_ms {
            dc["scoringTimeoutMs"] = json!(t);
        }
        if let Some(t) = spec.max_queue_wait_ms {
            dc["maxQueueWaitMs"] = json!(t);
        }
        set_auth(&mut dc, endpoint.auth);
        // The record first: the gate the deployment installs reads it (the endpoint's RBAC).
        let before = self.directory.store().endpoint(name).await?;
        let now = self.clock.now();
        let record = OnlineEndpoint {
            name: endpoint.name.clone(),
            workspace_id: endpoint.workspace.id,
            auth_mode: endpoint.auth,
            description: endpoint.description.clone(),
            tags: endpoint.tags.clone(),
            deployment: Some(dep.to_string()),
            deployment_spec: Some(spec.echo.clone()),
            created_at: endpoint.created_at,
            updated_at: now,
            created_by: endpoint.created_by,
        };
        self.put_record(&record).await?;
        let deployed = self
            .services
            .deploy_authorized(caller, ws, name, &spec.model, inference_config, dc)
            .await;
        let (_, model, rollout) = match deployed {
            Ok(d) => d,
            Err(e) => {
                self.restore(name, before).await;
                return Err(e);
            }
        };
        let created = endpoint.deployment.is_none();
        let endpoint = self.find(caller, ws, name).await?;
        Ok(PutDeployment { endpoint, model, rollout, created })
    }

    /// Deletes the endpoint's deployment (the service); the endpoint and its keys stay. The
    /// caller stops the running model.
    pub async fn delete_deployment(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
        dep: &str,
    ) -> Result<(), Error> {
        self.access.authorize(
            caller,
            DEPLOYMENT_DELETE,
            &Self::deployment_scope(ws, name, dep)?,
        )?;
        let endpoint = self.find(caller, ws, name).await?;
        let Some(d) = endpoint.deployment.filter(|d| d.name.eq_ignore_ascii_case(dep)) else {
            return Err(Error::NotFound(format!(
                "Deployment '{dep}' does not exist on endpoint '{name}'."
            )));
        };
        let store = self.directory.store();
        // An adopted service gets its endpoint record now, so the endpoint outlives it.
        let record = OnlineEndpoint {
            name: endpoint.name.clone(),
            workspace_id: endpoint.workspace.id,
            auth_mode: if endpoint.auth == AuthMode::None { AuthMode::Key } else { endpoint.auth },
            description: endpoint.description,
            tags: endpoint.tags,
            deployment: None,
            deployment_spec: None,
            created_at: endpoint.created_at,
            updated_at: self.clock.now(),
            created_by: endpoint.created_by,
        };
        self.put_record(&record).await?;
        store.delete_service(&d.service.name).await?;
        self.services.gate().remove(name);
        self.services.publish(name).await;
        Ok(())
    }
}

/// The deployment configuration's auth for an endpoint's mode.
fn set_auth(dc: &mut Value, auth: AuthMode) {
    if let Some(o) = dc.as_object_mut() {
        for k in
            ["auth_enabled", "authEnabled", "token_auth_enabled", "tokenAuthEnabled", "authMode"]
        {
            o.remove(k);
        }
        o.insert(
            "auth_mode".into(),
            json!(match auth {
                AuthMode::Token => "aml_token",
                other => other.as_str(),
            }),
        );
    }
}

fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), Error> {
    if tags.len() > 50 || tags.iter().any(|(k, v)| k.is_empty() || k.len() > 128 || v.len() > 256) {
        return Err(Error::InvalidInput(
            "at most 50 tags, keys 1-128 and values up to 256 characters".into(),
        ));
    }
    Ok(())
}
