//! Web services: a registered model version deployed with Azure's inference and deployment
//! configurations. This module owns the records, their validation and their RBAC; the
//! serving crate runs them.

use std::sync::Arc;

use serde_json::Value;

use crate::access::Access;
use crate::authority::Authority;
use crate::clock::Clock;
use crate::directory::Directory;
use crate::error::Error;
use crate::model::SealedServiceKeys;
use crate::model::{ModelFile, ModelVersion, Service, ServiceState, Workspace};
use crate::models::{WorkspaceRef, caller_workspace, valid_model_name, valid_model_path};
use crate::principal::Principal;
use crate::rbac::Scope;
use crate::rbac::catalog::{
    ENDPOINT_SCORE, MODEL_READ, SERVICE_DELETE, SERVICE_LIST_KEYS, SERVICE_READ,
    SERVICE_REGENERATE_KEYS, SERVICE_SCORE, SERVICE_WRITE,
};
use crate::resources::{valid_workspace_name, workspace_scope};
use crate::scoring::{GateConfig, ScoringGate};
use crate::secrets::new_client_secret;
use crate::store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputeType {
    /// One replica (Azure's ACI).
    Instance,
    /// N replicas behind a balancer (Azure's AKS).
    Cluster,
}

/// Who may score a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Anyone who can reach the scoring URI (an instance's default).
    None,
    /// `Authorization: Bearer <primary or secondary key>` (a cluster's default).
    Key,
    /// `Authorization: Bearer <token from get-token>`: a short-lived JWT for this one service.
    Token,
    /// `Authorization: Bearer <access token from the authority>` for the workspace audience,
    /// and the RBAC action `services/score/action` on the service (newer Azure ML's
    /// `aad_token`).
    Identity,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::Key => "key",
            AuthMode::Token => "token",
            AuthMode::Identity => "aad_token",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(AuthMode::None),
            "key" => Some(AuthMode::Key),
            "token" | "aml_token" => Some(AuthMode::Token),
            "aad_token" => Some(AuthMode::Identity),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentConfig {
    pub compute_type: ComputeType,
    pub cpu_cores: f64,
    pub memory_gb: f64,
    pub replicas: u32,
    pub auth: AuthMode,
    /// How long a request may wait for a free worker before 503 (Azure's `maxQueueWaitMs`).
    pub max_queue_wait_ms: u64,
    /// How long one scoring request may run (Azure's `scoringTimeoutMs`).
    pub scoring_timeout_ms: u64,
}

impl DeploymentConfig {
    /// Requests one replica may run at once.
    pub fn concurrency(&self) -> usize {
        (self.cpu_cores.ceil() as usize).max(1)
    }

    /// Whether going from `self` to `next` needs the model reloaded: everything but the
    /// authentication mode shapes the running replicas.
    pub fn needs_restart_for(&self, next: &DeploymentConfig) -> bool {
        DeploymentConfig { auth: next.auth, ..self.clone() } != *next
    }
}

/// The seed's rules: an instance has key auth off by default and no token auth; a cluster has
/// key auth on by default and token auth off; key and token auth never together.
fn auth_mode(v: &Value, compute_type: ComputeType) -> Result<AuthMode, String> {
    let flag = |names: &[&str]| -> Result<Option<bool>, String> {
        match get(v, names) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(format!("{} must be true or false", names[0])),
        }
    };
    let key = flag(&["auth_enabled", "authEnabled"])?;
    let token = flag(&["token_auth_enabled", "tokenAuthEnabled"])?;
    let token_on_instance = "token auth is not supported on an instance (ACI) deployment; \
                             deploy with computeType 'cluster' to use it";
    if let Some(mode) = get(v, &["auth_mode", "authMode"]) {
        if key.is_some() || token.is_some() {
            return Err("give either auth_mode or auth_enabled/token_auth_enabled, not both".into());
        }
        return match mode.as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("none") => Ok(AuthMode::None),
            Some("key") => Ok(AuthMode::Key),
            Some("aml_token" | "amltoken" | "token") if compute_type == ComputeType::Instance => {
                Err(token_on_instance.into())
            }
            Some("aml_token" | "amltoken" | "token") => Ok(AuthMode::Token),
            Some("aad_token" | "aadtoken") => Ok(AuthMode::Identity),
            _ => Err("auth_mode must be 'none', 'key', 'aml_token' or 'aad_token'".into()),
        };
    }
    match (compute_type, key, token) {
        (_, Some(true), Some(true)) => {
            Err("key and token auth cannot be enabled at the same time".into())
        }
        (ComputeType::Instance, _, Some(true)) => Err(token_on_instance.into()),
        (ComputeType::Instance, Some(true), _) => Ok(AuthMode::Key),
        (ComputeType::Instance, _, _) => Ok(AuthMode::None),
        (ComputeType::Cluster, _, Some(true)) => Ok(AuthMode::Token),
        (ComputeType::Cluster, Some(false), _) => Ok(AuthMode::None),
        (ComputeType::Cluster, _, _) => Ok(AuthMode::Key),
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
    let auth = auth_mode(v, compute_type).map_err(bad)?;
    let millis = |names: &[&str], default: u64, max: u64| -> Result<u64, Error> {
        match get(v, names) {
            None | Some(Value::Null) => Ok(default),
            Some(x) => match x.as_u64() {
                Some(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(bad(format!("{} must be 1 to {max} milliseconds", names[0]))),
            },
        }
    };
    let max_queue_wait_ms =
        millis(&["maxQueueWaitMs", "max_queue_wait_ms", "max_request_wait_time"], 500, 60_000)?;
    let scoring_timeout_ms = millis(&["scoringTimeoutMs", "scoring_timeout_ms"], 60_000, 300_000)?;
    Ok(DeploymentConfig {
        compute_type,
        cpu_cores,
        memory_gb,
        replicas,
        auth,
        max_queue_wait_ms,
        scoring_timeout_ms,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    Onnx,
    /// Azure ML's `score.py` contract; the script's content was uploaded as a blob.
    Python {
        entry_script: String,
        sha256: String,
        /// pip requirement specifiers installed into a virtualenv at deploy time.
        requirements: Vec<String>,
        /// An interpreter (or a virtualenv's `bin/python`) for this service instead of the
        /// server's `--python`.
        interpreter: Option<String>,
        /// Variables the deployment declares for its workers (Azure's
        /// `environment_variables`); the only ones beyond the entry-script contract's.
        environment: Vec<(String, String)>,
        /// The source folder the entry script runs in (`sourceFiles`: uploaded files laid out
        /// in the app folder; `entry_script` is then a path inside it). Empty: the entry
        /// script alone.
        source: Vec<ModelFile>,
    },
}

/// Files a deployment's source folder may hold.
pub const MAX_SOURCE_FILES: usize = 2_000;

fn source_files(v: Option<&Value>) -> Result<Vec<ModelFile>, String> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let files: Vec<ModelFile> = serde_json::from_value(v.clone())
        .map_err(|_| "sourceFiles must be a list of {path, sha256, size}".to_string())?;
    if files.len() > MAX_SOURCE_FILES {
        return Err(format!("sourceFiles: at most {MAX_SOURCE_FILES} files"));
    }
    let mut seen = std::collections::HashSet::new();
    for f in &files {
        let sha_ok = f.sha256.len() == 64 && f.sha256.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid_model_path(&f.path) || !sha_ok || !seen.insert(f.path.as_str()) {
            return Err(format!(
                "sourceFiles: '{}' is not a unique relative path with a SHA-256",
                truncate(&f.path)
            ));
        }
    }
    Ok(files)
}

/// Variables the server sets for every entry-script worker; a deployment cannot override them.
pub const RESERVED_VARIABLES: &[&str] =
    &["AZUREML_MODEL_DIR", "PATH", "HOME", "TMPDIR", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE"];

fn environment(v: Option<&Value>) -> Result<Vec<(String, String)>, String> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let map = v.as_object().ok_or("environmentVariables must be an object of strings")?;
    if map.len() > 100 {
        return Err("environmentVariables: at most 100 variables".into());
    }
    let mut out = Vec::new();
    for (k, v) in map {
        let valid_name = !k.is_empty()
            && k.len() <= 128
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(format!("environmentVariables: '{}' is not a variable name", truncate(k)));
        }
        if RESERVED_VARIABLES.iter().any(|r| r.eq_ignore_ascii_case(k)) || k.starts_with("MLGATE_")
        {
            return Err(format!("environmentVariables: {k} is set by the server"));
        }
        let value =
            v.as_str().ok_or_else(|| format!("environmentVariables: {k} must be a string"))?;
        if value.len() > 32 * 1024 || value.contains('\0') {
            return Err(format!("environmentVariables: {k} is too long or holds a NUL"));
        }
        out.push((k.clone(), value.to_string()));
    }
    Ok(out)
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A pip requirement as mlgate passes it on: a specifier, URL or path, never an option (no
/// `--index-url` or `-e` smuggled in), one line, bounded.
fn valid_requirement(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 300
        && !r.starts_with('-')
        && r.chars().all(|c| !c.is_control() && !c.is_whitespace() || c == ' ')
        && !r.trim().is_empty()
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
            let source =
                source_files(get(v, &["sourceFiles", "source_files"])).map_err(|e| bad(&e))?;
            let (name, sha) = if source.is_empty() {
                let sha =
                    get(v, &["entryScriptSha256"]).and_then(Value::as_str).unwrap_or_default();
                if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad("entryScriptSha256 must name the uploaded script's SHA-256"));
                }
                (script.rsplit('/').next().unwrap_or(script), sha.to_string())
            } else {
                // The entry script is a file of the source folder, by its path there.
                let script = script.trim_start_matches("./");
                let file = source.iter().find(|f| f.path == script).ok_or_else(|| {
                    bad(&format!("entryScript '{}' is not in sourceFiles", truncate(script)))
                })?;
                (script, file.sha256.clone())
            };
            if !name.ends_with(".py") || name.len() > 1024 || name.contains('\\') {
                return Err(bad("entryScript must be a .py file"));
            }
            if get(v, &["condaDependencies", "condaFile", "environment"]).is_some() {
                return Err(bad(
                    "conda environments are not supported; list pip requirements in \"requirements\"",
                ));
            }
            let requirements = match get(v, &["requirements", "pipPackages", "pip_packages"]) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) if items.len() <= 100 => items
                    .iter()
                    .map(|i| match i.as_str().map(str::trim) {
                        Some(r) if valid_requirement(r) => Ok(r.to_string()),
                        _ => Err(bad(
                            "each requirement must be a pip specifier, URL or path (no options)",
                        )),
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(bad("requirements must be a list of at most 100 strings")),
            };
            let interpreter = match get(v, &["pythonInterpreter", "python_interpreter", "python"]) {
                None | Some(Value::Null) => None,
                Some(Value::String(p))
                    if p.starts_with('/') && p.len() <= 4096 && !p.contains(char::is_control) =>
                {
                    Some(p.clone())
                }
                Some(_) => return Err(bad("pythonInterpreter must be an absolute path")),
            };
            let environment =
                environment(get(v, &["environmentVariables", "environment_variables"]))
                    .map_err(|e| bad(&e))?;
            Ok(Runtime::Python {
                entry_script: name.to_string(),
                sha256: sha.to_ascii_lowercase(),
                requirements,
                interpreter,
                environment,
                source,
            })
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

/// A service's two keys, in the clear (for `get-keys`); never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceKeys {
    pub primary: String,
    pub secondary: String,
}

impl std::fmt::Debug for ServiceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceKeys(..)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySlot {
    Primary,
    Secondary,
}

impl std::str::FromStr for KeySlot {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "primary" => Ok(KeySlot::Primary),
            "secondary" => Ok(KeySlot::Secondary),
            _ => Err(Error::InvalidInput(format!(
                "'{}' is not a key type: use Primary or Secondary",
                s.chars().take(32).collect::<String>()
            ))),
        }
    }
}

/// `Webservice.get_token()`'s answer.
pub struct ServiceToken {
    pub token: String,
    /// Unix seconds.
    pub expires_on: i64,
    /// Unix seconds: ask for a new token after this (half the lifetime).
    pub refresh_after: i64,
}

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

    /// Every service has two keys from its first deployment on, so switching key auth on
    /// later needs no new keys.
    pub(crate) async fn ensure_keys(&self, name: &str) -> Result<(), Error> {
        let store = self.directory.store();
        if store.service_keys(name).await?.is_none() {
            // Insert-if-absent: of two callers at once, one stores its keys and both use them.
            let keys = ServiceKeys { primary: new_client_secret(), secondary: new_client_secret() };
            store.insert_service_keys(name, &self.seal_keys(name, &keys)?).await?;
        }
        Ok(())
    }

    fn key_aad(name: &str, slot: KeySlot) -> String {
        format!("service-key:{}:{slot:?}", name.to_ascii_lowercase())
    }

    fn seal_keys(&self, name: &str, keys: &ServiceKeys) -> Result<SealedServiceKeys, Error> {
        Ok(SealedServiceKeys {
            primary: self
                .authority
                .seal(&Self::key_aad(name, KeySlot::Primary), keys.primary.as_bytes())?,
            secondary: self
                .authority
                .seal(&Self::key_aad(name, KeySlot::Secondary), keys.secondary.as_bytes())?,
            updated_at: self.clock.now(),
        })
    }

    pub(crate) async fn open_keys(&self, name: &str) -> Result<ServiceKeys, Error> {
        let sealed = self
            .directory
            .store()
            .service_keys(name)
            .await?
            .ok_or_else(|| Error::Internal(format!("service '{name}' has no keys")))?;
        let open = |slot: KeySlot, bytes: &[u8]| -> Result<String, Error> {
            String::from_utf8(self.authority.open(&Self::key_aad(name, slot), bytes)?)
                .map_err(|_| Error::Internal("a sealed service key is not text".into()))
        };
        Ok(ServiceKeys {
            primary: open(KeySlot::Primary, &sealed.primary)?,
            secondary: open(KeySlot::Secondary, &sealed.secondary)?,
        })
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

    /// `get-keys` (`listKeys/action`).
    pub async fn keys(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
    ) -> Result<ServiceKeys, Error> {
        self.access.authorize(
            caller,
            SERVICE_LIST_KEYS,
            &Self::scope(ws, &format!("services/{name}"))?,
        )?;
        self.find(caller, ws, name).await?;
        self.open_keys(name).await
    }

    /// `regen-key --key Primary|Secondary` (`regenerateKeys/action`): the old key fails from
    /// the next request on.
    pub async fn regenerate_key(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
        slot: KeySlot,
    ) -> Result<ServiceKeys, Error> {
        self.access.authorize(
            caller,
            SERVICE_REGENERATE_KEYS,
            &Self::scope(ws, &format!("services/{name}"))?,
        )?;
        let (service, workspace) = self.find(caller, ws, name).await?;
        self.regenerate_authorized(name, slot, Some((&service, &workspace))).await
    }

    /// Makes a new key in `slot` and, for a running service, puts it in force at once.
    pub(crate) async fn regenerate_authorized(
        &self,
        name: &str,
        slot: KeySlot,
        running: Option<(&Service, &Workspace)>,
    ) -> Result<ServiceKeys, Error> {
        self.ensure_keys(name).await?;
        let mut keys = self.open_keys(name).await?;
        match slot {
            KeySlot::Primary => keys.primary = new_client_secret(),
            KeySlot::Secondary => keys.secondary = new_client_secret(),
        }
        self.directory.store().put_service_keys(name, &self.seal_keys(name, &keys)?).await?;
        if let Some((service, workspace)) = running {
            self.install_gate(service, workspace).await?;
        }
        self.publish(name).await;
        Ok(keys)
    }

    /// `get-token`: a token for this one service. Reading the service is enough (Reader), as
    /// the seed advises for least privilege.
    pub async fn token(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
    ) -> Result<ServiceToken, Error> {
        self.access.authorize(
            caller,
            SERVICE_READ,
            &Self::scope(ws, &format!("services/{name}"))?,
        )?;
        let (service, workspace) = self.find(caller, ws, name).await?;
        if deployment_config(&service.deployment_config)?.auth != AuthMode::Token {
            return Err(Error::InvalidInput(format!(
                "token auth is not enabled on '{name}'; update it with token_auth_enabled: true \
                 (a cluster deployment) to use tokens"
            )));
        }
        self.issue_token(caller, &workspace, name)
    }

    /// A service token for `name` (whose mode the caller checked), valid for its scoring URI.
    pub(crate) fn issue_token(
        &self,
        caller: &Principal,
        workspace: &Workspace,
        name: &str,
    ) -> Result<ServiceToken, Error> {
        let (token, claims) = self.authority.issue_service_token(
            caller,
            workspace.id,
            &self.scoring_uri(name),
            self.token_lifetime,
        )?;
        Ok(ServiceToken {
            token,
            expires_on: claims.exp,
            refresh_after: claims.iat + (claims.exp - claims.iat) / 2,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queue_and_timeout_limits_and_declared_variables() {
        let c = deployment_config(&json!({})).unwrap();
        assert_eq!((c.max_queue_wait_ms, c.scoring_timeout_ms), (500, 60_000), "Azure's defaults");
        let c =
            deployment_config(&json!({"maxQueueWaitMs": 2000, "scoringTimeoutMs": 5000})).unwrap();
        assert_eq!((c.max_queue_wait_ms, c.scoring_timeout_ms), (2000, 5000));
        for bad in [
            json!({"maxQueueWaitMs": 0}),
            json!({"maxQueueWaitMs": 600_000}),
            json!({
                "scoringTimeoutMs": "soon"
            }),
        ] {
            assert!(deployment_config(&bad).is_err(), "{bad}");
        }
        let sha = "a".repeat(64);
        let ic = |env: serde_json::Value| {
            runtime(&json!({"entryScript": "score.py", "entryScriptSha256": sha,
                            "environmentVariables": env}))
        };
        match ic(json!({"GREETING": "hi", "_X1": ""})).unwrap() {
            Runtime::Python { environment, .. } => assert_eq!(environment.len(), 2),
            Runtime::Onnx => panic!("python expected"),
        }
        for bad in [
            json!({"PATH": "/evil"}),
            json!({"azureml_model_dir": "/"}),
            json!({"MLGATE_X": "1"}),
            json!({"1ABC": "x"}),
            json!({"A-B": "x"}),
            json!({"A": 1}),
            json!(["A=1"]),
        ] {
            assert!(ic(bad.clone()).is_err(), "{bad}");
        }
    }

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
        let reqs = |r: serde_json::Value| {
            runtime(
                &json!({"entryScript": "score.py", "entryScriptSha256": sha, "requirements": r}),
            )
        };
        assert!(matches!(
            reqs(json!(["numpy==2.0", "/opt/wheels/x-1.0-py3-none-any.whl"])),
            Ok(Runtime::Python { requirements, .. }) if requirements.len() == 2
        ));
        assert!(reqs(json!(["--index-url=https://evil"])).is_err(), "no pip options");
        assert!(reqs(json!(["-e ."])).is_err());
        assert!(reqs(json!(["numpy\n--pre"])).is_err());
        assert!(reqs(json!("numpy")).is_err());
        let auth = |v: serde_json::Value| deployment_config(&v).map(|c| c.auth);
        assert_eq!(auth(json!({})).unwrap(), AuthMode::None, "an instance is open by default");
        assert_eq!(auth(json!({"auth_enabled": true})).unwrap(), AuthMode::Key);
        assert!(auth(json!({"token_auth_enabled": true})).is_err(), "no tokens on an instance");
        assert_eq!(auth(json!({"computeType": "cluster"})).unwrap(), AuthMode::Key);
        assert_eq!(
            auth(json!({"computeType": "AKS", "tokenAuthEnabled": true, "authEnabled": false}))
                .unwrap(),
            AuthMode::Token
        );
        assert_eq!(
            auth(json!({"computeType": "cluster", "auth_enabled": false})).unwrap(),
            AuthMode::None
        );
        assert!(
            auth(
                json!({"computeType": "cluster", "auth_enabled": true, "token_auth_enabled": true})
            )
            .is_err()
        );
        assert_eq!(auth(json!({"auth_mode": "aad_token"})).unwrap(), AuthMode::Identity);
        assert!(auth(json!({"auth_mode": "key", "auth_enabled": true})).is_err());
        assert!(auth(json!({"auth_enabled": "yes"})).is_err());
        let a = deployment_config(&json!({"computeType": "cluster", "replicas": 2})).unwrap();
        let b = deployment_config(
            &json!({"computeType": "cluster", "replicas": 2, "token_auth_enabled": true}),
        )
        .unwrap();
        assert!(!a.needs_restart_for(&b), "an auth change alone keeps the model running");
        let c = deployment_config(&json!({"computeType": "cluster", "replicas": 3})).unwrap();
        assert!(a.needs_restart_for(&c));
        assert!(
            valid_service_name("my-svc-1")
                && !valid_service_name("My-svc")
                && !valid_service_name("ab")
        );
    }
}
