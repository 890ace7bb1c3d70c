//! The model registry: upload files content-addressed, register versions, list, download.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest::{SHA256, digest};
use mlgate_proto::{ModelFile, ModelVersion, Page, RegisterModel};
use reqwest::Method;

use crate::{Client, ClientError, Result, enc};

/// Where a model lives.
#[derive(Debug, Clone)]
pub struct WorkspaceAddress {
    pub subscription_id: String,
    pub resource_group: String,
    pub workspace: String,
}

impl WorkspaceAddress {
    fn path(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.MachineLearningServices/workspaces/{}",
            enc(&self.subscription_id),
            enc(&self.resource_group),
            enc(&self.workspace)
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    digest(&SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The files under `path` (a file, or a folder walked recursively), with `/`-separated
/// relative paths.
fn collect(path: &Path) -> Result<Vec<(String, PathBuf)>> {
    let io = |e: std::io::Error| ClientError::Config(format!("{}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ClientError::Config("bad file name".into()))?;
        return Ok(vec![(name.to_string(), path.to_path_buf())]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let p = entry.map_err(io)?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() {
                let rel = p.strip_prefix(path).map_err(|e| ClientError::Config(e.to_string()))?;
                let parts: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
                out.push((parts.join("/"), p));
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(ClientError::Config(format!("{} holds no files", path.display())));
    }
    Ok(out)
}

impl Client {
    pub async fn upload_blob(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        bytes: Vec<u8>,
    ) -> Result<String> {
        let sha = hex(&bytes);
        let path = format!("{}/blobs/{sha}", ws.path());
        self.send_empty(self.api(Method::PUT, &path, token).body(bytes)).await?;
        Ok(sha)
    }

    pub async fn register_model(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        name: &str,
        req: &RegisterModel,
    ) -> Result<ModelVersion> {
        let path = format!("{}/models/{}/versions", ws.path(), enc(name));
        self.send(self.api(Method::POST, &path, token).json(req)).await
    }

    /// `ml model register -p PATH`: uploads each file (once per content) and registers them.
    pub async fn register_model_from_path(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        name: &str,
        path: &Path,
        description: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<ModelVersion> {
        let mut files = Vec::new();
        for (rel, full) in collect(path)? {
            let bytes = std::fs::read(&full)
                .map_err(|e| ClientError::Config(format!("{}: {e}", full.display())))?;
            let size = bytes.len() as u64;
            let sha = self.upload_blob(token, ws, bytes).await?;
            files.push(ModelFile { path: rel, sha256: sha, size });
        }
        self.register_model(
            token,
            ws,
            name,
            &RegisterModel { description: description.into(), tags, files },
        )
        .await
    }

    pub async fn models(&self, token: &str, ws: &WorkspaceAddress) -> Result<Vec<ModelVersion>> {
        let page: Page<ModelVersion> =
            self.send(self.api(Method::GET, &format!("{}/models", ws.path()), token)).await?;
        Ok(page.value)
    }

    pub async fn model_versions(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        name: &str,
    ) -> Result<Vec<ModelVersion>> {
        let path = format!("{}/models/{}/versions", ws.path(), enc(name));
        let page: Page<ModelVersion> = self.send(self.api(Method::GET, &path, token)).await?;
        Ok(page.value)
    }

    /// A version, or the latest with `None`.
    pub async fn model(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        name: &str,
        version: Option<i64>,
    ) -> Result<ModelVersion> {
        let v = version.map_or("latest".to_string(), |v| v.to_string());
        let path = format!("{}/models/{}/versions/{v}", ws.path(), enc(name));
        self.send(self.api(Method::GET, &path, token)).await
    }

    pub async fn delete_model(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        name: &str,
        version: i64,
    ) -> Result<()> {
        let path = format!("{}/models/{}/versions/{version}", ws.path(), enc(name));
        self.send_empty(self.api(Method::DELETE, &path, token)).await
    }

    /// Downloads every file of a version under `target`, checking each against its digest.
    pub async fn download_model(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        name: &str,
        version: Option<i64>,
        target: &Path,
    ) -> Result<ModelVersion> {
        let m = self.model(token, ws, name, version).await?;
        for f in &m.files {
            if f.path.split('/').any(|s| s.is_empty() || s == "." || s == "..")
                || f.path.starts_with('/')
            {
                return Err(ClientError::Config(format!("refusing the unsafe path '{}'", f.path)));
            }
            let path =
                format!("{}/models/{}/versions/{}/download", ws.path(), enc(name), m.version);
            let resp = self
                .api(Method::GET, &path, token)
                .query(&[("path", f.path.as_str())])
                .send()
                .await
                .map_err(|e| ClientError::Transport(e.to_string()))?;
            let status = resp.status();
            if !status.is_success() {
                return Err(ClientError::Unexpected { status });
            }
            let bytes = resp.bytes().await.map_err(|e| ClientError::Transport(e.to_string()))?;
            if hex(&bytes) != f.sha256 {
                return Err(ClientError::Config(format!(
                    "'{}' arrived damaged (digest mismatch)",
                    f.path
                )));
            }
            let out = target.join(&f.path);
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent).map_err(|e| ClientError::Config(e.to_string()))?;
            }
            std::fs::write(&out, &bytes)
                .map_err(|e| ClientError::Config(format!("{}: {e}", out.display())))?;
        }
        Ok(m)
    }
}
