//! The Azure ML SDK's deployment objects over a [`Workspace`]: [`Model::deploy`] and
//! [`Webservice`] (`wait_for_deployment`, `get_logs`, `scoring_uri`, `get_keys`, `regen_key`,
//! `get_token`, `run`), so code written against `azureml.core` reads the same in Rust.

use std::path::PathBuf;
use std::time::Duration;

use mlgate_proto::{DeployService, ModelVersion, Service};
use serde_json::Value;

use crate::models::WorkspaceAddress;
use crate::workspace::Workspace;
use crate::{ClientError, Result};

/// How the model runs (`az ml model deploy --ic`).
#[derive(Debug, Clone)]
pub enum InferenceConfig {
    /// The model's `.onnx` file, in process.
    Onnx,
    /// Azure ML's `score.py` contract; the script is uploaded on deploy.
    EntryScript(PathBuf),
    /// An inference configuration as JSON, sent as is.
    Json(Value),
    /// Azure ML's `source_directory`: the whole folder is uploaded (less what its
    /// `.amlignore`, else `.gitignore`, leaves out) and `entry_script`, a path inside it, runs
    /// there, so it can import the folder's modules.
    SourceDirectory { dir: PathBuf, entry_script: String },
}

impl Workspace {
    pub fn address(&self) -> WorkspaceAddress {
        WorkspaceAddress {
            subscription_id: self.subscription_id.clone(),
            resource_group: self.resource_group.clone(),
            workspace: self.name.clone(),
        }
    }
}

/// A registered model version (`azureml.core.Model`).
#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    pub version: i64,
    pub details: ModelVersion,
}

impl Model {
    /// `Model(ws, name, version=None)`: the given version, or the latest.
    pub async fn get(ws: &Workspace, name: &str, version: Option<i64>) -> Result<Self> {
        let token = ws.token().await?;
        let details = ws.client().model(&token, &ws.address(), name, version).await?;
        Ok(Self { name: details.name.clone(), version: details.version, details })
    }

    /// `Model.deploy(ws, name, models, inference_config, deployment_config)`: starts the
    /// deployment and answers at once; [`Webservice::wait_for_deployment`] waits for it. A
    /// service runs one model.
    pub async fn deploy<'w>(
        ws: &'w Workspace,
        name: &str,
        models: &[Model],
        inference_config: &InferenceConfig,
        deployment_config: Value,
    ) -> Result<Webservice<'w>> {
        let [model] = models else {
            return Err(ClientError::Config(format!(
                "a service runs exactly one model; {} were given",
                models.len()
            )));
        };
        let token = ws.token().await?;
        let address = ws.address();
        let ic = match inference_config {
            InferenceConfig::Onnx => serde_json::json!({"runtime": "onnx"}),
            InferenceConfig::Json(v) => v.clone(),
            InferenceConfig::SourceDirectory { dir, entry_script } => {
                let files = ws.client().upload_source_directory(&token, &address, dir).await?;
                let script = entry_script.trim_start_matches("./");
                if !files.iter().any(|f| f.path == script) {
                    return Err(ClientError::Config(format!(
                        "the entry script '{entry_script}' is not in the source directory {}",
                        dir.display()
                    )));
                }
                serde_json::json!({"runtime": "python", "entryScript": script, "sourceFiles": files})
            }
            InferenceConfig::EntryScript(path) => {
                let bytes = std::fs::read(path).map_err(|e| {
                    ClientError::Config(format!("reading the entry script {}: {e}", path.display()))
                })?;
                let script = path.file_name().and_then(|n| n.to_str()).unwrap_or("score.py");
                let sha = ws.client().upload_blob(&token, &address, bytes).await?;
                serde_json::json!({"runtime": "python", "entryScript": script, "entryScriptSha256": sha})
            }
        };
        let req = DeployService {
            model: format!("{}:{}", model.name, model.version),
            inference_config: ic,
            deployment_config,
        };
        let service = ws.client().deploy(&token, &address, name, &req).await?;
        Ok(Webservice { ws, address, service })
    }
}

/// A deployed web service (`azureml.core.Webservice`).
pub struct Webservice<'w> {
    ws: &'w Workspace,
    address: WorkspaceAddress,
    service: Service,
}

impl std::fmt::Debug for Webservice<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Webservice({}, {})", self.service.name, self.service.state)
    }
}

impl<'w> Webservice<'w> {
    /// `Webservice(ws, name)`.
    pub async fn get(ws: &'w Workspace, name: &str) -> Result<Self> {
        let token = ws.token().await?;
        let address = ws.address();
        let service = ws.client().service(&token, &address, name).await?;
        Ok(Self { ws, address, service })
    }

    pub fn name(&self) -> &str {
        &self.service.name
    }

    /// Transitioning, Healthy, Unhealthy or Failed, as of the last call.
    pub fn state(&self) -> &str {
        &self.service.state
    }

    pub fn scoring_uri(&self) -> &str {
        &self.service.scoring_uri
    }

    /// The service's document, as of the last call.
    pub fn details(&self) -> &Service {
        &self.service
    }

    /// `wait_for_deployment(show_output)`: polls until the deployment ends; with
    /// `show_output`, prints each state change as the Azure ML SDK does. A deployment that
    /// ends anything but Healthy is an error carrying the reason and the logs.
    pub async fn wait_for_deployment(&mut self, show_output: bool) -> Result<()> {
        let token = self.ws.token().await?;
        let done = self
            .ws
            .client()
            .wait_for_deployment(
                &token,
                &self.address,
                &self.service.name,
                Duration::from_secs(600),
                |s| {
                    if show_output {
                        eprintln!("{} service creation operation: {}", s.name, s.state);
                    }
                },
            )
            .await?;
        self.service = done;
        if self.service.state == "Healthy" {
            return Ok(());
        }
        let logs = self.get_logs().await.unwrap_or_default();
        Err(ClientError::Config(format!(
            "the deployment of '{}' ended {}: {}\n{}",
            self.service.name,
            self.service.state,
            self.service.error.clone().unwrap_or_default(),
            logs.join("\n")
        )))
    }

    pub async fn get_logs(&self) -> Result<Vec<String>> {
        let token = self.ws.token().await?;
        self.ws.client().service_logs(&token, &self.address, &self.service.name).await
    }

    /// `get_keys()`: (primary, secondary).
    pub async fn get_keys(&self) -> Result<(String, String)> {
        let token = self.ws.token().await?;
        let k = self.ws.client().service_keys(&token, &self.address, &self.service.name).await?;
        Ok((k.primary_key, k.secondary_key))
    }

    /// `regen_key("Primary" | "Secondary")`.
    pub async fn regen_key(&self, key: &str) -> Result<()> {
        let token = self.ws.token().await?;
        self.ws
            .client()
            .regenerate_service_key(&token, &self.address, &self.service.name, key)
            .await
            .map(|_| ())
    }

    /// `token, refresh_by = service.get_token()`; `refresh_by` in Unix seconds.
    pub async fn get_token(&self) -> Result<(String, i64)> {
        let token = self.ws.token().await?;
        let t = self.ws.client().service_token(&token, &self.address, &self.service.name).await?;
        Ok((t.access_token, t.refresh_after))
    }

    /// `run(input_data)`: scores with the credential the service's mode asks for (a key, a
    /// service token, or the workspace's own access token).
    pub async fn run(&self, input: &Value) -> Result<Value> {
        let client = self.ws.client();
        let uri = &self.service.scoring_uri;
        match self.service.auth_mode.as_str() {
            "key" => client.score_with(uri, &self.get_keys().await?.0, input).await,
            "token" => client.score_with(uri, &self.get_token().await?.0, input).await,
            "aad_token" => {
                let token = self.ws.token_for("https://ml.azure.com/.default").await?;
                client.score_with(uri, &token, input).await
            }
            _ => client.score(uri, input).await,
        }
    }

    pub async fn delete(self) -> Result<()> {
        let token = self.ws.token().await?;
        self.ws.client().delete_service(&token, &self.address, &self.service.name).await
    }
}
