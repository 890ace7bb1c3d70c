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
/// relative paths and the path each is read from. The whole list is validated before anything
/// is read or uploaded: a symbolic link is followed only to a regular file inside the folder
/// (links that leave it, links to directories and broken links are refused, naming the link),
/// and anything that is neither a file nor a folder (sockets, devices) is refused.
fn collect(path: &Path) -> Result<Vec<(String, PathBuf)>> {
    let err =
        |p: &Path, e: &dyn std::fmt::Display| ClientError::Config(format!("{}: {e}", p.display()));
    let root = std::fs::canonicalize(path).map_err(|e| err(path, &e))?;
    let meta = std::fs::metadata(&root).map_err(|e| err(path, &e))?;
    if meta.is_file() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ClientError::Config("bad file name".into()))?;
        return Ok(vec![(name.to_string(), root)]);
    }
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| err(&dir, &e))? {
            let entry = entry.map_err(|e| err(&dir, &e))?;
            let p = entry.path();
            let rel = p.strip_prefix(&root).map_err(|e| err(&p, &e))?;
            let rel_name: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
            let rel_name = rel_name.join("/");
            // file_type() does not follow links.
            let kind = entry.file_type().map_err(|e| err(&p, &e))?;
            if kind.is_dir() {
                stack.push(p);
            } else if kind.is_file() {
                out.push((rel_name, p));
            } else if kind.is_symlink() {
                let refuse = |why: String| {
                    ClientError::Config(format!(
                        "{} in {} is a symbolic link {why}; nothing was uploaded",
                        rel_name,
                        path.display()
                    ))
                };
                let target = std::fs::canonicalize(&p)
                    .map_err(|e| refuse(format!("that cannot be followed ({e})")))?;
                if !target.starts_with(&root) {
                    return Err(refuse(format!(
                        "to {}, outside the folder: links that leave the folder are refused",
                        target.display()
                    )));
                }
                if !target.is_file() {
                    return Err(refuse("to a folder: links to folders are refused".into()));
                }
                out.push((rel_name, target));
            } else {
                return Err(ClientError::Config(format!(
                    "{rel_name} in {} is not a regular file; nothing was uploaded",
                    path.display()
                )));
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
        // Every file is listed, checked and opened before the first byte is uploaded.
        let listed = collect(path)?;
        for (_, full) in &listed {
            std::fs::File::open(full)
                .map_err(|e| ClientError::Config(format!("{}: {e}", full.display())))?;
        }
        let mut files = Vec::new();
        for (rel, full) in listed {
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
