//! Web services: a registered model version deployed with Azure's inference and deployment
//! configurations. This module owns the records, their validation and their RBAC; the
//! serving crate runs them.

use std::sync::Arc;

use serde_json::Value;

use crate::access::Access;
use crate::clock::Clock;
use crate::directory::Directory;
use crate::error::Error;
use crate::model::{ModelVersion, Service, ServiceState, Workspace};
use crate::models::{WorkspaceRef, valid_model_name};
use crate::principal::Principal;
use crate::rbac::Scope;
use crate::rbac::catalog::{MODEL_READ, SERVICE_DELETE, SERVICE_READ, SERVICE_WRITE};
use crate::resources::{valid_workspace_name, workspace_scope};
use crate::store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputeType {
    /// One replica (Azure's ACI).
    Instance,
    /// N replicas behind a balancer (Azure's AKS).
    Cluster,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentConfig {
    pub compute_type: ComputeType,
    pub cpu_cores: f64,
    pub memory_gb: f64,
    pub replicas: u32,
}

impl DeploymentConfig {
    /// Requests one replica may run at once.
    pub fn concurrency(&self) -> usize {
        (self.cpu_cores.ceil() as usize).max(1)
    }
}

fn get<'a>(v: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|n| v.get(*n))
}

/// Reads Azure's deployment configuration (`az ml model deploy --dc`), snake or camel case.
pub fn deployment_config(v: &Value) -> Result<DeploymentConfig, Error> {
    let bad = |m: String| Error::InvalidInput(format!("deployment configuration: {m}"));
    if !v.is_object() {
        return Err(bad("must be a JSON object".into()));
    }
    let compute =
        get(v, &["computeType", "compute_type"]).and_then(Value::as_str).unwrap_or("instance");
    let compute_type = match compute.to_ascii_lowercase().as_str() {
        "instance" | "aci" => ComputeType::Instance,
        "cluster" | "aks" => ComputeType::Cluster,
        other => return Err(bad(format!("computeType '{other}' is not 'instance' or 'cluster'"))),
    };
    let num = |names: &[&str], default: f64, max: f64| -> Result<f64, Error> {
        match get(v, names) {
            None => Ok(default),
            Some(x) => match x.as_f64() {
                Some(n) if n > 0.0 && n <= max => Ok(n),
                _ => Err(bad(format!("{} must be a number above 0 and at most {max}", names[0]))),
            },
        }
    };
    let cpu_cores =
        num(&["cpu_cores", "cpuCores", "containerResourceRequirements.cpu"], 1.0, 64.0)?;
    let memory_gb = num(&["memory_gb", "memoryGb", "memoryInGB"], 0.5, 256.0)?;
    let replicas = match get(v, &["replicas", "num_replicas", "numReplicas"]) {
        None => 1,
        Some(x) => match x.as_u64() {
            Some(n) if (1..=32).contains(&n) => n as u32,
            _ => return Err(bad("replicas must be 1 to 32".into())),
        },
    };
    if compute_type == ComputeType::Instance && replicas != 1 {
        return Err(bad(
            "an instance has exactly one replica; use computeType 'cluster' for more".into()
        ));
    }
    Ok(DeploymentConfig { compute_type, cpu_cores, memory_gb, replicas })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    Onnx,
    /// Azure ML's `score.py` contract; the script's content was uploaded as a blob.
    Python {
        entry_script: String,
        sha256: String,
    },
}

/// Reads the inference configuration (`--ic`): `{"runtime": "onnx"}`, or
/// `{"runtime": "python", "entryScript": "score.py", "entryScriptSha256": "<hex>"}` (the CLI
/// uploads the script and fills in the digest).
pub fn runtime(v: &Value) -> Result<Runtime, Error> {
    let bad = |m: &str| Error::InvalidInput(format!("inference configuration: {m}"));
    let r = get(v, &["runtime", "Runtime"]).and_then(Value::as_str).unwrap_or_default();
    let script = get(v, &["entryScript", "entry_script"]).and_then(Value::as_str);
    match (r.to_ascii_lowercase().as_str(), script) {
        ("onnx", _) => Ok(Runtime::Onnx),
        ("python" | "", Some(script)) => {
            let sha = get(v, &["entryScriptSha256"]).and_then(Value::as_str).unwrap_or_default();
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad("entryScriptSha256 must name the uploaded script's SHA-256"));
            }
            let name = script.rsplit('/').next().unwrap_or(script);
            if !name.ends_with(".py") || name.len() > 255 || name.contains('\\') {
                return Err(bad("entryScript must be a .py file"));
            }
            let reqs = get(v, &["requirements", "condaDependencies", "pipPackages"]);
            if reqs.is_some_and(|r| !r.is_null() && r.as_array().is_none_or(|a| !a.is_empty())) {
                return Err(bad(
                    "installing requirements at deploy time is not supported yet; use an interpreter that has them",
                ));
            }
            Ok(Runtime::Python { entry_script: name.to_string(), sha256: sha.to_ascii_lowercase() })
        }
        (other, _) => Err(bad(&format!(
            "runtime '{other}' is not supported; use \"onnx\" or \"python\" with an entryScript"
        ))),
    }
}

/// Service names as Azure ML allows them: 3 to 32 lower-case letters, digits and dashes,
/// starting with a letter, not ending with a dash.
pub fn valid_service_name(name: &str) -> bool {
    (3..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

pub struct Services {
    directory: Arc<Directory>,
    access: Arc<Access>,
    clock: Arc<dyn Clock>,
}

impl Services {
    pub fn new(directory: Arc<Directory>, access: Arc<Access>, clock: Arc<dyn Clock>) -> Self {
        Self { directory, access, clock }
    }

    fn scope(ws: WorkspaceRef<'_>, child: &str) -> Result<Scope, Error> {
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

    async fn workspace(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
    ) -> Result<Workspace, Error> {
        let store = self.directory.store();
        let not_found = || {
            Error::NotFound(format!(
                "Workspace '{}' could not be found in resource group '{}'.",
                ws.workspace, ws.resource_group
            ))
        };
        let sub = ws.subscription.parse().map_err(|_| not_found())?;
        match store.subscription(sub).await? {
            Some(s) if s.tenant_id == caller.tenant_id => {}
            _ => return Err(not_found()),
        }
        store.workspace(sub, ws.resource_group, ws.workspace).await?.ok_or_else(not_found)
    }

    /// Creates or updates a service (state Transitioning); the caller then starts it.
    pub async fn deploy(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
        model: &str,
        inference_config: Value,
        deployment_config_json: Value,
    ) -> Result<(Service, ModelVersion), Error> {
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
        deployment_config(&deployment_config_json)?;
        let workspace = self.workspace(caller, ws).await?;
        let store = self.directory.store();
        let mv =
            store.model_version(workspace.id, model_name, version).await?.ok_or_else(|| {
                Error::InvalidInput(format!("model '{model_name}' has no version {version}"))
            })?;
        let now = self.clock.now();
        let created_at = match store.service(name).await? {
            Some(existing) if existing.workspace_id == workspace.id => existing.created_at,
            _ => now,
        };
        let service = Service {
            name: name.to_string(),
            workspace_id: workspace.id,
            model_name: mv.name.clone(),
            model_version: mv.version,
            inference_config,
            deployment_config: deployment_config_json,
            state: ServiceState::Transitioning,
            error: None,
            created_at,
            updated_at: now,
            created_by: caller.object_id,
        };
        store.put_service(&service).await.map_err(|e| match e {
            StoreError::Conflict(_) => {
                Error::Conflict(format!("the service name '{name}' is taken"))
            }
            other => other.into(),
        })?;
        Ok((service, mv))
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
        let workspace = self.workspace(caller, ws).await?;
        match self.directory.store().service(name).await? {
            Some(s) if s.workspace_id == workspace.id => Ok(s),
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
        let workspace = self.workspace(caller, ws).await?;
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
        self.get(caller, ws, name).await?;
        Ok(self.directory.store().delete_service(name).await?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn configurations_are_read_and_checked() {
        let c = deployment_config(&json!({"computeType": "ACI", "cpu_cores": 2, "memory_gb": 1}))
            .unwrap();
        assert_eq!((c.compute_type, c.concurrency(), c.replicas), (ComputeType::Instance, 2, 1));
        let c = deployment_config(&json!({"compute_type": "cluster", "replicas": 3})).unwrap();
        assert_eq!((c.compute_type, c.replicas), (ComputeType::Cluster, 3));
        assert!(deployment_config(&json!({"computeType": "instance", "replicas": 2})).is_err());
        assert!(deployment_config(&json!({"cpu_cores": -1})).is_err());
        assert!(deployment_config(&json!({"computeType": "mainframe"})).is_err());
        assert_eq!(runtime(&json!({"runtime": "onnx"})).unwrap(), Runtime::Onnx);
        assert!(runtime(&json!({"entryScript": "score.py"})).is_err(), "no uploaded digest");
        let sha = "a".repeat(64);
        assert!(matches!(
            runtime(&json!({"entryScript": "src/score.py", "entryScriptSha256": sha})),
            Ok(Runtime::Python { .. })
        ));
        assert!(runtime(&json!({"entryScript": "score.sh", "entryScriptSha256": sha})).is_err());
        assert!(runtime(&json!({"entryScript": "score.py", "entryScriptSha256": sha, "requirements": ["numpy"]})).is_err());
        assert!(
            valid_service_name("my-svc-1")
                && !valid_service_name("My-svc")
                && !valid_service_name("ab")
        );
    }
}
