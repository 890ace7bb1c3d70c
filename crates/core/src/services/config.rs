//! The inference and deployment configurations, in Azure's JSON: parsed, checked and
//! defaulted here (compute type, replicas, auth mode and its conflicts, runtime, source files,
//! environment), free of any use case.

use serde_json::Value;

use crate::error::Error;
use crate::model_registry::valid_model_path;
use crate::records::ModelFile;
use crate::scoring::AuthMode;

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

/// Azure ML's rules: an instance has key auth off by default and no token auth; a cluster has
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
