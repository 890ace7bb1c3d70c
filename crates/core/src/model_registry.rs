//! The model registry: model files stored content-addressed (SHA-256) in a blob store, and
//! versions counted up per name and workspace. Every operation authorizes at the model's scope
//! (`{workspace}/models/{name}`) before looking anything up.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::access::Access;
use crate::clock::Clock;
use crate::directory::Directory;
use crate::error::Error;
use crate::principal::Principal;
use crate::rbac::Scope;
use crate::rbac::catalog::{MODEL_DELETE, MODEL_READ, MODEL_WRITE};
use crate::records::{ModelFile, ModelVersion, Workspace};
use crate::resources::{valid_workspace_name, workspace_scope};
use crate::secrets::sha256;
use crate::store::{BlobReader, BlobStore, BlobWrite, StoreError};

/// Where a model lives: subscription, resource group, workspace (as the caller named them).
#[derive(Debug, Clone, Copy)]
pub struct WorkspaceRef<'a> {
    pub subscription: &'a str,
    pub resource_group: &'a str,
    pub workspace: &'a str,
}

const MAX_FILES: usize = 10_000;
/// The largest single model file accepted.
pub const MAX_BLOB: u64 = 1024 * 1024 * 1024;

/// Model names as Azure ML allows them: letters, digits, `-`, `_` and `.`, up to 255.
pub fn valid_model_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// A relative path inside a model: no absolute paths, no `..`, no empty or odd segments.
pub fn valid_model_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 1024
        && !path.starts_with('/')
        && path.split('/').all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\\'))
        && !path.chars().any(char::is_control)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    sha256(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

pub struct Models {
    directory: Arc<Directory>,
    access: Arc<Access>,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
}

impl Models {
    pub fn new(
        directory: Arc<Directory>,
        access: Arc<Access>,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { directory, access, blobs, clock }
    }

    fn scope(ws: WorkspaceRef<'_>, name: Option<&str>) -> Result<Scope, Error> {
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
        match name {
            None => Ok(base),
            Some(n) => {
                if !valid_model_name(n) {
                    return Err(Error::InvalidInput(format!(
                        "'{n}' is not a valid model name: letters, digits, '-', '_' and '.', up to 255"
                    )));
                }
                Access::parse_scope(&format!("{}/models/{n}", base.as_str()))
            }
        }
    }

    /// Stores one file's bytes under their SHA-256, which must be `claimed_sha256`.
    /// Streams one file in under its SHA-256 (named in the URL): authorized before a byte is
    /// read, hashed while written to disk, kept only if the digest matches; at most
    /// [`MAX_BLOB`] bytes.
    pub async fn upload_blob(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        claimed_sha256: &str,
        body: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
    ) -> Result<(), Error> {
        self.access.authorize(caller, MODEL_WRITE, &Self::scope(ws, None)?)?;
        caller_workspace(&self.directory, caller, ws).await?;
        let claimed = claimed_sha256.to_ascii_lowercase();
        if claimed.len() != 64 || !claimed.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidInput(format!(
                "'{}' is not a SHA-256 in hex",
                claimed.chars().take(80).collect::<String>()
            )));
        }
        match self.blobs.write_blob(&claimed, body, MAX_BLOB).await? {
            BlobWrite::Stored => Ok(()),
            BlobWrite::TooLarge => Err(Error::TooLarge(format!(
                "A model file may hold at most {} MiB.",
                MAX_BLOB / (1024 * 1024)
            ))),
            BlobWrite::Mismatch { actual } => Err(Error::InvalidInput(format!(
                "the body's SHA-256 is {actual}, not the {claimed} named in the URL"
            ))),
        }
    }

    /// Registers the next version of a model from files already uploaded.
    pub async fn register(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
        description: &str,
        tags: BTreeMap<String, String>,
        files: Vec<ModelFile>,
    ) -> Result<ModelVersion, Error> {
        self.access.authorize(caller, MODEL_WRITE, &Self::scope(ws, Some(name))?)?;
        let workspace = caller_workspace(&self.directory, caller, ws).await?;
        if files.is_empty() || files.len() > MAX_FILES {
            return Err(Error::InvalidInput(format!("a model has 1 to {MAX_FILES} files")));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &files {
            if !valid_model_path(&f.path) {
                return Err(Error::InvalidInput(format!(
                    "'{}' is not a valid relative path inside a model",
                    f.path
                )));
            }
            if !seen.insert(f.path.as_str()) {
                return Err(Error::InvalidInput(format!("the path '{}' is listed twice", f.path)));
            }
            let present = match self.blobs.has_blob(&f.sha256).await {
                Ok(p) => p,
                Err(StoreError::Corrupt(_)) => false,
                Err(e) => return Err(e.into()),
            };
            if !present {
                return Err(Error::InvalidInput(format!(
                    "the content of '{}' ({}) was not uploaded",
                    f.path, f.sha256
                )));
            }
        }
        if tags.len() > 50
            || tags.iter().any(|(k, v)| k.is_empty() || k.len() > 128 || v.len() > 256)
        {
            return Err(Error::InvalidInput(
                "at most 50 tags, keys 1-128 and values up to 256 characters".into(),
            ));
        }
        let mut m = ModelVersion {
            workspace_id: workspace.id,
            name: name.to_string(),
            version: 0,
            description: description.chars().take(1024).collect(),
            tags,
            files,
            created_at: self.clock.now(),
            created_by: caller.object_id,
        };
        m.version = self.directory.store().insert_model_version(&m).await?;
        Ok(m)
    }

    /// The latest version of each model.
    pub async fn list(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
    ) -> Result<Vec<ModelVersion>, Error> {
        self.access.authorize(caller, MODEL_READ, &Self::scope(ws, None)?)?;
        let workspace = caller_workspace(&self.directory, caller, ws).await?;
        Ok(self.directory.store().latest_models(workspace.id).await?)
    }

    pub async fn versions(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
    ) -> Result<Vec<ModelVersion>, Error> {
        self.access.authorize(caller, MODEL_READ, &Self::scope(ws, Some(name))?)?;
        let workspace = caller_workspace(&self.directory, caller, ws).await?;
        let all = self.directory.store().model_versions(workspace.id, name).await?;
        if all.is_empty() {
            return Err(Error::NotFound(format!("Model '{name}' does not exist.")));
        }
        Ok(all)
    }

    /// A version by number, or the latest with `None`.
    pub async fn get(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
        version: Option<i64>,
    ) -> Result<ModelVersion, Error> {
        let all = self.versions(caller, ws, name).await?;
        let found = match version {
            None => all.into_iter().last(),
            Some(v) => all.into_iter().find(|m| m.version == v),
        };
        found.ok_or_else(|| {
            Error::NotFound(format!(
                "Model '{name}' has no version {}.",
                version.unwrap_or_default()
            ))
        })
    }

    /// One file's bytes.
    pub async fn download(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
        version: Option<i64>,
        path: &str,
    ) -> Result<(BlobReader, u64), Error> {
        let m = self.get(caller, ws, name, version).await?;
        let f = m.files.iter().find(|f| f.path == path).ok_or_else(|| {
            Error::NotFound(format!("Model '{name}' version {} has no file '{path}'.", m.version))
        })?;
        self.blobs
            .open_blob(&f.sha256)
            .await?
            .ok_or_else(|| Error::Internal(format!("blob {} is missing", f.sha256)))
    }

    /// Copies one file of a version to `dest`, streaming (authorization was checked when the
    /// deployment was requested).
    pub async fn copy_file(
        &self,
        m: &ModelVersion,
        path: &str,
        dest: &std::path::Path,
    ) -> Result<(), Error> {
        let f = m.files.iter().find(|f| f.path == path).ok_or_else(|| {
            Error::NotFound(format!("no file '{path}' in {}:{}", m.name, m.version))
        })?;
        let (mut reader, _) = self
            .blobs
            .open_blob(&f.sha256)
            .await?
            .ok_or_else(|| Error::Internal(format!("blob {} is missing", f.sha256)))?;
        let io = |e: std::io::Error| Error::Internal(format!("{}: {e}", dest.display()));
        let mut out = tokio::fs::File::create(dest).await.map_err(io)?;
        tokio::io::copy(&mut reader, &mut out).await.map_err(io)?;
        Ok(())
    }

    /// Copies a blob by digest to `dest`, streaming (the deployer's source folders; the
    /// deployment was authorized when requested).
    pub async fn copy_blob(&self, sha256: &str, dest: &std::path::Path) -> Result<(), Error> {
        let (mut reader, _) = self
            .blobs
            .open_blob(sha256)
            .await?
            .ok_or_else(|| Error::Internal(format!("blob {sha256} is missing")))?;
        let io = |e: std::io::Error| Error::Internal(format!("{}: {e}", dest.display()));
        let mut out = tokio::fs::File::create(dest).await.map_err(io)?;
        tokio::io::copy(&mut reader, &mut out).await.map_err(io)?;
        Ok(())
    }

    /// The bytes of one file of a version, for the deployer (authorization was checked when
    /// the deployment was requested).
    pub async fn file_bytes(&self, m: &ModelVersion, path: &str) -> Result<Vec<u8>, Error> {
        let f = m.files.iter().find(|f| f.path == path).ok_or_else(|| {
            Error::NotFound(format!("no file '{path}' in {}:{}", m.name, m.version))
        })?;
        self.blobs
            .get_blob(&f.sha256)
            .await?
            .ok_or_else(|| Error::Internal(format!("blob {} is missing", f.sha256)))
    }

    /// A blob by digest (the deployer's entry scripts).
    pub async fn blob(&self, sha256: &str) -> Result<Vec<u8>, Error> {
        self.blobs
            .get_blob(sha256)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no uploaded content has the digest {sha256}")))
    }

    /// Deletes one version. Its files stay in the blob store while other versions may share
    /// them (content addressing); nothing reclaims unreferenced blobs yet.
    pub async fn delete(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
        version: i64,
    ) -> Result<(), Error> {
        self.access.authorize(caller, MODEL_DELETE, &Self::scope(ws, Some(name))?)?;
        let workspace = caller_workspace(&self.directory, caller, ws).await?;
        self.directory.store().delete_model_version(workspace.id, name, version).await.map_err(
            |e| match e {
                StoreError::NotFound => {
                    Error::NotFound(format!("Model '{name}' has no version {version}."))
                }
                other => other.into(),
            },
        )
    }
}

/// The workspace `ws` names, if it lies in a subscription of the caller's tenant; otherwise
/// the same 404 as a workspace that does not exist.
pub(crate) async fn caller_workspace(
    directory: &Directory,
    caller: &Principal,
    ws: WorkspaceRef<'_>,
) -> Result<Workspace, Error> {
    let store = directory.store();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert!(valid_model_name("sklearn-regression.v2"));
        assert!(!valid_model_name("-x") && !valid_model_name("a/b") && !valid_model_name(""));
        assert!(valid_model_path("model.onnx") && valid_model_path("sub/dir/weights.bin"));
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "./a", "a\\b"] {
            assert!(!valid_model_path(bad), "{bad}");
        }
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
