//! Web services: a registered model version deployed with Azure's inference and deployment
//! configurations. This module owns the use cases and their RBAC (`config` parses and checks
//! the configurations, `keys` holds the keys and tokens); the serving crate runs them.

use std::sync::Arc;

use serde_json::Value;

use crate::access::Access;
use crate::authority::Authority;
use crate::clock::Clock;
use crate::directory::Directory;
use crate::error::Error;
use crate::model_registry::{WorkspaceRef, caller_workspace, valid_model_name};
use crate::principal::Principal;
use crate::rbac::Scope;
use crate::rbac::catalog::{
    ENDPOINT_SCORE, MODEL_READ, SERVICE_DELETE, SERVICE_READ, SERVICE_SCORE, SERVICE_WRITE,
};
use crate::records::{ModelVersion, Service, ServiceState, Workspace};
use crate::resources::{valid_workspace_name, workspace_scope};
use crate::scoring::{GateConfig, ScoringGate};
use crate::secrets::new_client_secret;
use crate::store::StoreError;

mod config;
mod keys;

pub use crate::scoring::AuthMode;
pub use config::{
    ComputeType, DeploymentConfig, MAX_SOURCE_FILES, RESERVED_VARIABLES, Runtime,
    deployment_config, runtime, valid_service_name,
};
pub use keys::{KeySlot, ServiceKeys, ServiceToken};

/// How a deployment request is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// Load the model (again) and swap it in.
    Start,
    /// Only the authentication changed: it is already in force, the model keeps running.
    AuthOnly,
}

pub struct Services {
    directory: Arc<Directory>,
    access: Arc<Access>,
    authority: Arc<Authority>,
    gate: Arc<ScoringGate>,
    clock: Arc<dyn Clock>,
    token_lifetime: time::Duration,
}

impl Services {
    pub fn new(
        directory: Arc<Directory>,
        access: Arc<Access>,
        authority: Arc<Authority>,
        clock: Arc<dyn Clock>,
        token_lifetime: time::Duration,
    ) -> Result<Self, Error> {
        let gate = Arc::new(ScoringGate::new(authority.clone(), access.clone())?);
        Ok(Self { directory, access, authority, gate, clock, token_lifetime })
    }

    /// The scoring path's authentication, in memory.
    pub fn gate(&self) -> &Arc<ScoringGate> {
        &self.gate
    }

    /// `{public url}/api/v1/service/{name}/score`.
    pub fn scoring_uri(&self, name: &str) -> String {
        format!("{}/api/v1/service/{name}/score", self.authority.config().public_url)
    }

    pub(crate) fn scope(ws: WorkspaceRef<'_>, child: &str) -> Result<Scope, Error> {
        let sub = ws.subscription.parse().map_err(|_| {
            Error::NotFound(format!("The subscription '{}' could not be found.", ws.subscription))
        })?;
        if !valid_workspace_name(ws.workspace) {
            return Err(Error::NotFound(format!(
                "Workspace '{}' could not be found.",
                ws.workspace
            )));
        }
        let base = workspace_scope(sub, ws.resource_group, ws.workspace)?;
        if child.is_empty() {
            return Ok(base);
        }
        Access::parse_scope(&format!("{}/{child}", base.as_str()))
    }

    /// Creates or updates a service and puts its authentication in force. With
    /// [`Rollout::Start`] the service is Transitioning and the caller starts it; an update that
    /// changes only the authentication mode of a Healthy service keeps it running.
    pub async fn deploy(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
        model: &str,
        inference_config: Value,
        deployment_config_json: Value,
    ) -> Result<(Service, ModelVersion, Rollout), Error> {
        if !valid_service_name(name) {
            return Err(Error::InvalidInput(format!(
                "'{name}' is not a valid service name: 3 to 32 lower-case letters, digits and \
                 dashes, starting with a letter"
            )));
        }
        self.access.authorize(
            caller,
            SERVICE_WRITE,
            &Self::scope(ws, &format!("services/{name}"))?,
        )?;
        self.deploy_authorized(caller, ws, name, model, inference_config, deployment_config_json)
            .await
    }

    /// [`Services::deploy`] once the face has authorized writing the service (each face
    /// checks its own action); reading the model is still checked here.
    pub(crate) async fn deploy_authorized(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
        model: &str,
        inference_config: Value,
        deployment_config_json: Value,
    ) -> Result<(Service, ModelVersion, Rollout), Error> {
        let (model_name, version) = model
            .split_once(':')
            .and_then(|(n, v)| v.parse::<i64>().ok().map(|v| (n, v)))
            .filter(|(n, _)| valid_model_name(n))
            .ok_or_else(|| Error::InvalidInput(format!("'{model}' is not NAME:VERSION")))?;
        self.access.authorize(
            caller,
            MODEL_READ,
            &Self::scope(ws, &format!("models/{model_name}"))?,
        )?;
        runtime(&inference_config)?;
        let dc = deployment_config(&deployment_config_json)?;
        let workspace = caller_workspace(&self.directory, caller, ws).await?;
        let store = self.directory.store();
        let mv =
            store.model_version(workspace.id, model_name, version).await?.ok_or_else(|| {
                Error::InvalidInput(format!("model '{model_name}' has no version {version}"))
            })?;
        let now = self.clock.now();
        let existing =
            store.service(name).await?.filter(|existing| existing.workspace_id == workspace.id);
        let rollout = match &existing {
            Some(old)
                if old.state == ServiceState::Healthy
                    && old.model_name == mv.name
                    && old.model_version == mv.version
                    && old.inference_config == inference_config
                    && deployment_config(&old.deployment_config)
                        .is_ok_and(|old_dc| !old_dc.needs_restart_for(&dc)) =>
            {
                Rollout::AuthOnly
            }
            _ => Rollout::Start,
        };
        let service = Service {
            name: name.to_string(),
            workspace_id: workspace.id,
            model_name: mv.name.clone(),
            model_version: mv.version,
            inference_config,
            deployment_config: deployment_config_json,
            state: match rollout {
                Rollout::AuthOnly => ServiceState::Healthy,
                Rollout::Start => ServiceState::Transitioning,
            },
            error: None,
            created_at: existing.as_ref().map_or(now, |e| e.created_at),
            updated_at: now,
            created_by: caller.object_id,
        };
        // A first deployment gets its two keys in the same transaction as its record, so a
        // service never exists without keys (an update keeps the keys it has).
        let keys = ServiceKeys { primary: new_client_secret(), secondary: new_client_secret() };
        store.put_service(&service, &self.seal_keys(name, &keys)?).await.map_err(|e| match e {
            StoreError::Conflict(_) => {
                Error::Conflict(format!("the service name '{name}' is taken"))
            }
            other => other.into(),
        })?;
        self.install_gate(&service, &workspace).await?;
        self.publish(name).await;
        Ok((service, mv, rollout))
    }

    /// Puts the service's mode and keys (as read from the store) in the scoring gate. An
    /// identity scores a service made as an online endpoint with Azure's
    /// `onlineEndpoints/score/action` on the endpoint, any other with `services/score/action`.
    pub(crate) async fn install_gate(&self, s: &Service, ws: &Workspace) -> Result<(), Error> {
        let dc = deployment_config(&s.deployment_config)?;
        let keys = self.open_keys(&s.name).await?;
        let endpoint = self.directory.store().endpoint(&s.name).await?.is_some();
        let (segment, score_action) = if endpoint {
            ("onlineEndpoints", ENDPOINT_SCORE)
        } else {
            ("services", SERVICE_SCORE)
        };
        let scope = Access::parse_scope(&format!(
            "{}/{segment}/{}",
            workspace_scope(ws.subscription_id, &ws.resource_group, &ws.name)?.as_str(),
            s.name
        ))?;
        self.gate.install(
            &s.name,
            GateConfig {
                mode: dc.auth,
                workspace: ws.id,
                scope,
                score_action,
                scoring_uri: self.scoring_uri(&s.name),
                keys: [&keys.primary, &keys.secondary],
            },
        );
        Ok(())
    }

    /// Puts a stored service's authentication in force (after a restart of the server).
    pub async fn restore_gate(&self, s: &Service) -> Result<(), Error> {
        let ws = self
            .directory
            .store()
            .workspace_by_id(s.workspace_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("the workspace of '{}' is gone", s.name)))?;
        self.ensure_keys(&s.name).await?;
        self.install_gate(s, &ws).await
    }

    pub async fn get(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
    ) -> Result<Service, Error> {
        self.access.authorize(
            caller,
            SERVICE_READ,
            &Self::scope(ws, &format!("services/{name}"))?,
        )?;
        Ok(self.find(caller, ws, name).await?.0)
    }

    /// The service and its workspace, without an authorization check (the caller's job).
    async fn find(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
    ) -> Result<(Service, Workspace), Error> {
        let workspace = caller_workspace(&self.directory, caller, ws).await?;
        match self.directory.store().service(name).await? {
            Some(s) if s.workspace_id == workspace.id => Ok((s, workspace)),
            _ => {
                Err(Error::NotFound(format!("Service '{name}' does not exist in this workspace.")))
            }
        }
    }

    pub async fn list(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
    ) -> Result<Vec<Service>, Error> {
        self.access.authorize(caller, SERVICE_READ, &Self::scope(ws, "")?)?;
        let workspace = caller_workspace(&self.directory, caller, ws).await?;
        Ok(self.directory.store().services(workspace.id).await?)
    }

    pub async fn delete(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
    ) -> Result<(), Error> {
        self.access.authorize(
            caller,
            SERVICE_DELETE,
            &Self::scope(ws, &format!("services/{name}"))?,
        )?;
        self.find(caller, ws, name).await?;
        self.directory.store().delete_service(name).await?;
        self.gate.remove(name);
        self.publish(name).await;
        Ok(())
    }

    /// Tells the other nodes that the service `name` changed (deployed, updated, deleted, its
    /// keys): each re-reads it, puts its gate entry in force and starts or stops its replicas.
    pub async fn publish(&self, name: &str) {
        self.directory.publish(crate::changes::Change::Service { name: name.to_string() }).await;
    }

    /// Puts the stored state of `name` in force in the gate, or removes it when the service
    /// is gone (another node changed it). Returns the service, if any.
    pub async fn refresh_gate(&self, name: &str) -> Result<Option<Service>, Error> {
        match self.directory.store().service(name).await? {
            Some(s) => {
                self.restore_gate(&s).await?;
                Ok(Some(s))
            }
            None => {
                self.gate.remove(name);
                Ok(None)
            }
        }
    }

    /// Records how a start or restart went.
    pub async fn set_state(
        &self,
        name: &str,
        state: ServiceState,
        error: Option<&str>,
    ) -> Result<(), Error> {
        Ok(self.directory.store().set_service_state(name, state, error, self.clock.now()).await?)
    }

    /// Every service on this server (for restarting them after a restart of the server).
    pub async fn all(&self) -> Result<Vec<Service>, Error> {
        Ok(self.directory.store().all_services().await?)
    }

    pub async fn model_of(&self, s: &Service) -> Result<ModelVersion, Error> {
        self.directory
            .store()
            .model_version(s.workspace_id, &s.model_name, s.model_version)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "model {}:{} no longer exists",
                    s.model_name, s.model_version
                ))
            })
    }
}
