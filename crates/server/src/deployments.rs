//! Deployment orchestration, below the HTTP layer: lay out a service's files, pick its
//! runtime, start its replicas (entry scripts confined, see `mlgate_serving::sandbox`),
//! record Healthy or Failed, restore every service at start, stop one. The routes of every
//! API face call [`Deployer`]; none of them starts a model itself.
//!
//! Where an entry-script service's files live:
//! - the model's files: `{data}/services/{name}/{model}-{version}/model` (the worker may read
//!   this folder and nothing else of the data directory: `AZUREML_MODEL_DIR`);
//! - the entry script (or the deployment's whole source folder, `sourceFiles`) and the worker
//!   program: `{run}/{name}/{deployment}/app`, the workers' working directory, read-only to
//!   them;
//! - a private scratch folder `{run}/{name}/{deployment}/tmp` (`HOME`, `TMPDIR`), the only
//!   place they may write;
//!
//! where `{run}` is a folder made for this server's lifetime under the system's temporary
//! directory (mode 0700, a random name), outside the data directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mlgate_core::model_registry::Models;
use mlgate_core::records::{ModelVersion, Service, ServiceState};
use mlgate_core::services::{Runtime, Services, deployment_config, runtime};
use mlgate_serving::ServingHost;
use mlgate_serving::host::Limits;
use mlgate_serving::onnx::OnnxModel;
use mlgate_serving::python::env::{EnvContext, ensure_env};
use mlgate_serving::python::{LogSink, PythonConfig, PythonService};
use mlgate_serving::sandbox::{Policy, Sandbox, which};

/// How long an old deployment's folders outlive its replacement: past the scoring timeout,
/// so requests still running on the old workers finish.
const OLD_DEPLOYMENT_GRACE: Duration = Duration::from_secs(90);

/// What the deployer needs to know about the machine it runs on.
#[derive(Debug, Clone)]
pub struct DeployerConfig {
    pub data_dir: PathBuf,
    /// The operator's interpreter for entry scripts (a name on `PATH` or a path).
    pub python: PathBuf,
    /// Files entry scripts must never read, beyond the data directory (the TLS key, say).
    pub protected: Vec<PathBuf>,
    /// Folders pip may read local wheels from (`--wheelhouse`).
    pub wheelhouses: Vec<PathBuf>,
}

pub struct Deployer {
    services: Arc<Services>,
    models: Arc<Models>,
    host: Arc<ServingHost>,
    sandbox: Arc<Sandbox>,
    config: DeployerConfig,
    /// The operator's interpreter, resolved once (a pyenv shim or a `PATH` name becomes the
    /// real executable, which a confined worker can run).
    python: OnceLock<PathBuf>,
    run_root: PathBuf,
    /// What this node last started for each service (lower-case name): the follower compares
    /// the store's record with it to decide whether another node's change needs a restart.
    loaded: Mutex<HashMap<String, Service>>,
}

/// Makes `{tmp}/mlgate-run-{random}` (0700); a fresh random name, so nobody can have
/// prepared it.
fn make_run_root() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let suffix: String = uuid::Uuid::new_v4().simple().to_string();
    let dir = std::env::temp_dir().join(format!("mlgate-run-{}", &suffix[..16]));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

fn mkdir_private(p: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .map_err(|e| format!("cannot create {}: {e}", p.display()))
}

impl Deployer {
    pub fn new(
        services: Arc<Services>,
        models: Arc<Models>,
        host: Arc<ServingHost>,
        sandbox: Arc<Sandbox>,
        config: DeployerConfig,
    ) -> std::io::Result<Self> {
        Ok(Self {
            services,
            models,
            host,
            sandbox,
            config,
            python: OnceLock::new(),
            run_root: make_run_root()?,
            loaded: Mutex::new(HashMap::new()),
        })
    }

    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Starts loading the service's model in the background (the caller has answered 202).
    pub fn roll_out(self: &Arc<Self>, service: Service, mv: ModelVersion) {
        let me = self.clone();
        tokio::spawn(async move { me.start(service, mv).await });
    }

    /// Loads the model of a service and puts it in service (or records why not).
    pub async fn start(&self, service: Service, mv: ModelVersion) {
        self.start_with(service, mv, true).await
    }

    /// [`Deployer::start`]; `record` says whether the outcome is this node's to record (the
    /// node that took the deployment records it; the others, following, only log theirs).
    async fn start_with(&self, service: Service, mv: ModelVersion, record: bool) {
        self.loaded().insert(service.name.to_ascii_lowercase(), service.clone());
        let name = service.name.clone();
        let host = &self.host;
        host.log(&name, format!("Deploying model {}:{}", mv.name, mv.version));
        let result = match runtime(&service.inference_config) {
            Ok(Runtime::Python {
                entry_script,
                sha256,
                requirements,
                interpreter,
                environment,
                source,
            }) => {
                let script = EntryScript {
                    name: &entry_script,
                    sha256: &sha256,
                    interpreter: interpreter.map(PathBuf::from),
                    requirements: &requirements,
                    environment,
                    source: &source,
                };
                self.start_python(&service, &mv, script).await
            }
            Ok(Runtime::Onnx) => self.start_onnx(&service, &mv).await,
            Err(e) => Err(e.to_string()),
        };
        let (new_state, error) = match &result {
            Ok(()) => (ServiceState::Healthy, None),
            Err(e) => {
                host.log(&name, format!("Deployment failed: {e}"));
                (ServiceState::Failed, Some(e.as_str()))
            }
        };
        host.log(&name, format!("Service state: {}", new_state.as_str()));
        if !record {
            tracing::info!(service = %name, state = new_state.as_str(), "loaded another node's deployment");
            return;
        }
        if let Err(e) = self.services.set_state(&name, new_state, error).await {
            tracing::error!(service = %name, error = %e, "could not record the service's state");
        }
        tracing::info!(service = %name, state = new_state.as_str(), "deployment finished");
    }

    /// Stops serving a service at once and removes its run folders.
    pub fn stop(&self, name: &str) {
        self.loaded().remove(&name.to_ascii_lowercase());
        self.host.stop(name);
        let dir = self.run_root.join(name.to_ascii_lowercase());
        tokio::spawn(async move {
            let _ = tokio::fs::remove_dir_all(dir).await;
        });
    }

    /// Starts again every service that was running (or starting) before the server restarted.
    pub fn restore(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let all = match me.services.all().await {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(error = %e, "could not list services to restore");
                    return;
                }
            };
            for s in &all {
                if let Err(e) = me.services.restore_gate(s).await {
                    tracing::error!(service = %s.name, error = %e, "cannot restore the service's authentication");
                }
            }
            for s in all.into_iter().filter(|s| s.state != ServiceState::Failed) {
                match me.services.model_of(&s).await {
                    Ok(mv) => me.start(s, mv).await,
                    Err(e) => {
                        tracing::error!(service = %s.name, error = %e, "cannot restore the service")
                    }
                }
            }
        });
    }

    fn loaded(&self) -> std::sync::MutexGuard<'_, HashMap<String, Service>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Another node changed the service `name` (or the reconciliation asks): put the stored
    /// record in force here. Gone from the store: stop serving it. Its model, code or
    /// replicas changed: load it again (in the background; the old replicas serve until the
    /// new ones are in). Only its auth mode or keys changed: the gate is enough.
    pub async fn sync(self: &Arc<Self>, name: &str) {
        let stored = match self.services.refresh_gate(name).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(service = %name, error = %e, "could not read a changed service");
                return;
            }
        };
        let key = name.to_ascii_lowercase();
        let Some(s) = stored else {
            if self.loaded().contains_key(&key) || self.host.is_running(name) {
                tracing::info!(service = %name, "stopping a service deleted on another node");
                self.stop(name);
            }
            return;
        };
        if s.state == ServiceState::Failed {
            return;
        }
        let current = self.loaded().get(&key).cloned();
        let same = current.is_some_and(|c| {
            c.model_name == s.model_name
                && c.model_version == s.model_version
                && c.inference_config == s.inference_config
                && match (
                    deployment_config(&c.deployment_config),
                    deployment_config(&s.deployment_config),
                ) {
                    (Ok(old), Ok(new)) => !old.needs_restart_for(&new),
                    _ => false,
                }
        });
        if same {
            return;
        }
        match self.services.model_of(&s).await {
            Ok(mv) => {
                // Marked as loaded before the task runs, so a second notice does not load twice.
                self.loaded().insert(key, s.clone());
                let me = self.clone();
                tokio::spawn(async move { me.start_with(s, mv, false).await });
            }
            Err(e) => tracing::warn!(service = %name, error = %e, "cannot load a changed service"),
        }
    }

    /// Brings every service in line with the store (the periodic reconciliation): each stored
    /// one is synced, each one running here but gone from the store is stopped.
    pub async fn reconcile(self: &Arc<Self>) {
        let all = match self.services.all().await {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(error = %e, "could not list services to reconcile");
                return;
            }
        };
        let stored: std::collections::HashSet<String> =
            all.iter().map(|s| s.name.to_ascii_lowercase()).collect();
        let mut here: Vec<String> = self.loaded().keys().cloned().collect();
        here.extend(self.services.gate().services());
        for name in here.into_iter().filter(|n| !stored.contains(n)) {
            self.sync(&name).await;
        }
        for s in all {
            self.sync(&s.name).await;
        }
    }

    fn log_sink(&self, name: &str) -> LogSink {
        let (host, name) = (self.host.clone(), name.to_string());
        Arc::new(move |line: &str| host.log(&name, line))
    }

    /// The operator's interpreter as a real executable: asked once, unconfined (the
    /// operator chose it), for `sys.executable`.
    async fn operator_python(&self) -> PathBuf {
        if let Some(p) = self.python.get() {
            return p.clone();
        }
        let given = &self.config.python;
        let asked = tokio::process::Command::new(given)
            .args(["-c", "import sys; print(sys.executable)"])
            .stdin(std::process::Stdio::null())
            .output()
            .await;
        let resolved = match asked {
            Ok(o) if o.status.success() => {
                let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
                if s.is_empty() { None } else { Some(PathBuf::from(s)) }
            }
            _ => None,
        };
        let p = resolved.or_else(|| which(given)).unwrap_or_else(|| given.clone());
        self.python.get_or_init(|| p).clone()
    }

    fn protected(&self) -> Vec<PathBuf> {
        let mut p = vec![self.config.data_dir.clone()];
        p.extend(self.config.protected.iter().cloned());
        p
    }

    async fn start_python(
        &self,
        service: &Service,
        mv: &ModelVersion,
        script: EntryScript<'_>,
    ) -> Result<(), String> {
        if let Sandbox::Unavailable { reason } = self.sandbox.as_ref() {
            return Err(reason.clone());
        }
        let EntryScript {
            name: entry_script,
            sha256,
            interpreter,
            requirements,
            environment,
            source,
        } = script;
        let log = self.log_sink(&service.name);
        // The model's files, in the data directory.
        let model_dir = self
            .config
            .data_dir
            .join("services")
            .join(&service.name)
            .join(format!("{}-{}", mv.name, mv.version))
            .join("model");
        for f in &mv.files {
            let out = model_dir.join(&f.path);
            if let Some(parent) = out.parent() {
                tokio::fs::create_dir_all(parent).await.map_err(|e| e.to_string())?;
            }
            self.models.copy_file(mv, &f.path, &out).await.map_err(|e| e.to_string())?;
        }
        // The program and a scratch folder, outside it.
        let deployment = self
            .run_root
            .join(service.name.to_ascii_lowercase())
            .join(uuid::Uuid::new_v4().simple().to_string());
        let (app, tmp) = (deployment.join("app"), deployment.join("tmp"));
        mkdir_private(&app)?;
        mkdir_private(&tmp)?;
        let entry = app.join(entry_script);
        if source.is_empty() {
            let code = self.models.blob(sha256).await.map_err(|e| e.to_string())?;
            tokio::fs::write(&entry, code).await.map_err(|e| e.to_string())?;
        } else {
            // The whole source folder, each file streamed from the blob store (paths were
            // checked relative: no `..`, no absolute path).
            for f in source {
                let out = app.join(&f.path);
                if let Some(parent) = out.parent() {
                    mkdir_private(parent)?;
                }
                self.models.copy_blob(&f.sha256, &out).await.map_err(|e| e.to_string())?;
            }
            log(&format!("Laid out {} source file(s)", source.len()));
        }
        let worker = app.join("mlgate_worker.py");
        tokio::fs::write(&worker, mlgate_serving::python::WORKER_PY)
            .await
            .map_err(|e| e.to_string())?;

        let base_python = match interpreter {
            Some(p) => p,
            None => self.operator_python().await,
        };
        if base_python.is_absolute() && !tokio::fs::try_exists(&base_python).await.unwrap_or(false)
        {
            return Err(format!("the interpreter {} does not exist", base_python.display()));
        }
        let protected = self.protected();
        let (python, venv) = if requirements.is_empty() {
            (base_python, None)
        } else {
            let ctx = EnvContext {
                sandbox: &self.sandbox,
                protected: &protected,
                wheelhouses: &self.config.wheelhouses,
                scratch: &tmp,
            };
            let envs = self.config.data_dir.join("envs");
            let (python, dir) = ensure_env(&base_python, &envs, requirements, &log, &ctx).await?;
            (python, Some(dir))
        };

        let mut allowed = vec![model_dir.clone()];
        allowed.extend(venv.iter().cloned());
        let mut read = vec![app.clone(), model_dir.clone()];
        read.extend(venv.iter().cloned());
        let policy = Policy::for_python(
            &python,
            &read,
            std::slice::from_ref(&tmp),
            &app,
            &protected,
            &allowed,
        )?;
        let mut env = base_environment(&python, &tmp);
        env.push(("AZUREML_MODEL_DIR".into(), model_dir.display().to_string()));
        if let Some(v) = &venv {
            env.push(("VIRTUAL_ENV".into(), v.display().to_string()));
        }
        env.extend(environment);

        let dc = deployment_config(&service.deployment_config).map_err(|e| e.to_string())?;
        let cfg = PythonConfig {
            python,
            worker_script: worker,
            entry_script: entry,
            memory_bytes: Some((dc.memory_gb * 1024.0 * 1024.0 * 1024.0) as u64),
            workers: dc.concurrency(),
            log,
            sandbox: self.sandbox.clone(),
            policy,
            env,
        };
        let mut replicas = Vec::new();
        for _ in 0..dc.replicas {
            replicas.push(PythonService::start(cfg.clone()).await?);
        }
        let how = if self.sandbox.is_confined() { "confined" } else { "UNCONFINED" };
        self.host.log(
            &service.name,
            format!(
                "{} replica(s) of {} {how} worker(s) ran init()",
                dc.replicas,
                dc.concurrency()
            ),
        );
        self.host.start_python(&service.name, replicas, limits(&dc));
        self.forget_older_deployments(&deployment);
        Ok(())
    }

    /// Removes the folders of a service's earlier deployments once their requests are done.
    fn forget_older_deployments(&self, current: &Path) {
        let Some(service_dir) = current.parent().map(Path::to_path_buf) else { return };
        let current = current.to_path_buf();
        tokio::spawn(async move {
            tokio::time::sleep(OLD_DEPLOYMENT_GRACE).await;
            let Ok(mut entries) = tokio::fs::read_dir(&service_dir).await else { return };
            while let Ok(Some(e)) = entries.next_entry().await {
                if e.path() != current {
                    let _ = tokio::fs::remove_dir_all(e.path()).await;
                }
            }
        });
    }

    async fn start_onnx(&self, service: &Service, mv: &ModelVersion) -> Result<(), String> {
        let name = &service.name;
        let file = mv
            .files
            .iter()
            .find(|f| f.path.to_ascii_lowercase().ends_with(".onnx"))
            .or(if mv.files.len() == 1 { mv.files.first() } else { None })
            .ok_or_else(|| "the model has no .onnx file".to_string())?;
        let bytes = self.models.file_bytes(mv, &file.path).await.map_err(|e| e.to_string())?;
        let dc = deployment_config(&service.deployment_config).map_err(|e| e.to_string())?;
        let model = tokio::task::spawn_blocking(move || OnnxModel::load(&bytes))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        // `input [?, 3]`: `?` for a symbolic dimension (any size), not Rust's `None`.
        let inputs: Vec<String> = model
            .inputs()
            .iter()
            .map(|i| {
                let dims: Vec<String> = i
                    .shape
                    .iter()
                    .map(|d| d.map_or_else(|| "?".to_string(), |n| n.to_string()))
                    .collect();
                format!("{} [{}]", i.name, dims.join(", "))
            })
            .collect();
        self.host.log(name, format!("Loaded {}: inputs {}", file.path, inputs.join(", ")));
        self.host.log(
            name,
            format!("{} replica(s), {} request(s) at once each", dc.replicas, dc.concurrency()),
        );
        self.host.start(name, model, dc.concurrency(), dc.replicas as usize, limits(&dc));
        Ok(())
    }
}

impl Drop for Deployer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.run_root);
    }
}

fn limits(dc: &mlgate_core::services::DeploymentConfig) -> Limits {
    Limits {
        queue_wait: Duration::from_millis(dc.max_queue_wait_ms),
        timeout: Duration::from_millis(dc.scoring_timeout_ms),
    }
}

struct EntryScript<'a> {
    name: &'a str,
    sha256: &'a str,
    interpreter: Option<PathBuf>,
    requirements: &'a [String],
    environment: Vec<(String, String)>,
    source: &'a [mlgate_core::records::ModelFile],
}

/// What every confined Python gets: `PATH` (its own `bin` first), the scratch folder as
/// `HOME` and `TMPDIR`, the server's locale. Nothing else of the server's environment.
fn base_environment(python: &Path, scratch: &Path) -> Vec<(String, String)> {
    let mut path = String::new();
    if let Some(bin) = python.parent() {
        path.push_str(&bin.display().to_string());
        path.push(':');
    }
    path.push_str("/usr/local/bin:/usr/bin:/bin");
    let mut env = vec![
        ("PATH".to_string(), path),
        ("HOME".to_string(), scratch.display().to_string()),
        ("TMPDIR".to_string(), scratch.display().to_string()),
        ("PYTHONDONTWRITEBYTECODE".to_string(), "1".to_string()),
    ];
    let mut has_locale = false;
    for var in ["LANG", "LC_ALL", "LC_CTYPE"] {
        if let Ok(v) = std::env::var(var) {
            has_locale = true;
            env.push((var.to_string(), v));
        }
    }
    if !has_locale {
        env.push(("LANG".into(), "C.UTF-8".into()));
    }
    env
}
