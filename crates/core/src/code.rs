//! Code assets: the source folders of online deployments (azure-ai-ml's
//! `CodeConfiguration(code="./src", scoring_script="score.py")`).
//!
//! The client asks for an upload area (`startPendingUpload`), gets a signed URL for it, puts
//! the folder's files there through the server's Azure-Blob-shaped face, then registers a code
//! version naming the uploaded folder. Files land in the content-addressed blob store at once;
//! the upload area only lists them (path, digest, size, metadata) until a version copies the
//! list. The URL's token is an HMAC (under a key derived from the master key) of the area, its
//! workspace and its expiry, so any node accepts it and nothing about it is stored.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;

use crate::access::Access;
use crate::authority::Authority;
use crate::clock::Clock;
use crate::directory::Directory;
use crate::error::Error;
use crate::ids::WorkspaceId;
use crate::model_registry::{WorkspaceRef, caller_workspace, valid_model_name, valid_model_path};
use crate::principal::Principal;
use crate::rbac::catalog::{CODE_READ, CODE_WRITE};
use crate::records::{CodeVersion, ModelFile, UploadedBlob, Workspace};
use crate::services::Services;
use crate::store::{BlobStore, StoreError};

/// How long an upload URL works.
pub const UPLOAD_URL_LIFETIME: time::Duration = time::Duration::hours(1);
/// The largest file one upload accepts.
pub const MAX_UPLOAD_FILE: u64 = 64 * 1024 * 1024;
/// What one upload area may hold.
pub const MAX_UPLOAD_FILES: u64 = 2_000;
pub const MAX_UPLOAD_BYTES: u64 = 256 * 1024 * 1024;
/// Upload areas are forgotten this long after their files came (their files stay while a
/// code version lists them).
const UPLOAD_AREA_LIFETIME: time::Duration = time::Duration::days(1);

/// An upload area and the token of its URL.
#[derive(Clone)]
pub struct PendingUpload {
    pub upload: String,
    pub expires_at: OffsetDateTime,
    /// The URL's query string: `sv`, `sr`, `sp`, `se`, `skoid` and `sig` (Azure's SAS names).
    pub query: String,
}

impl std::fmt::Debug for PendingUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingUpload").field("upload", &self.upload).finish_non_exhaustive()
    }
}

/// Why a blob request through an upload URL is refused (Azure Storage's error codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadDenied {
    #[error("the signature is missing, malformed or wrong")]
    BadSignature,
    #[error("the upload URL has expired")]
    Expired,
}

/// A blob's upload area and workspace, as its URL's verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadGrant {
    pub upload: String,
    pub workspace: WorkspaceId,
}

/// What a new code version is made of (the route parsed the Azure JSON and the URI).
#[derive(Debug, Clone, Default)]
pub struct NewCodeVersion {
    pub code_uri: String,
    /// The upload area and the folder inside it that `code_uri` names.
    pub upload: String,
    pub prefix: String,
    pub hash: Option<String>,
    pub is_anonymous: bool,
    pub description: String,
    pub tags: BTreeMap<String, String>,
}

pub struct CodeAssets {
    directory: Arc<Directory>,
    access: Arc<Access>,
    authority: Arc<Authority>,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
}

/// Code asset names and versions: letters, digits, `-`, `_`, `.`, up to 255.
pub fn valid_code_version(v: &str) -> bool {
    valid_model_name(v)
}

fn upload_id_ok(upload: &str) -> bool {
    upload.len() == 32 && upload.bytes().all(|b| b.is_ascii_hexdigit())
}

impl CodeAssets {
    pub fn new(
        directory: Arc<Directory>,
        access: Arc<Access>,
        authority: Arc<Authority>,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { directory, access, authority, blobs, clock }
    }

    fn scope(ws: WorkspaceRef<'_>, name: &str) -> Result<crate::rbac::Scope, Error> {
        if !valid_model_name(name) {
            return Err(Error::InvalidInput(format!(
                "'{}' is not a valid code asset name: letters, digits, '-', '_' and '.', up to 255",
                name.chars().take(64).collect::<String>()
            )));
        }
        Services::scope(ws, &format!("codes/{name}"))
    }

    fn mac(&self, upload: &str, workspace: WorkspaceId, expires: i64) -> hmac::Tag {
        hmac::sign(
            self.authority.upload_key(),
            format!("upload|{upload}|{workspace}|{expires}|cw").as_bytes(),
        )
    }

    /// `startPendingUpload`: a fresh upload area and its signed URL token, for a caller who may
    /// write the code asset.
    pub async fn start_pending_upload(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
    ) -> Result<PendingUpload, Error> {
        self.access.authorize(caller, CODE_WRITE, &Self::scope(ws, name)?)?;
        let workspace = caller_workspace(&self.directory, caller, ws).await?;
        let now = self.clock.now();
        // Areas are cheap rows; old ones are swept whenever a new one is handed out.
        let swept =
            self.directory.store().forget_uploads_before(now - UPLOAD_AREA_LIFETIME).await?;
        if swept > 0 {
            tracing::debug!(files = swept, "forgot old upload areas");
        }
        let upload = uuid::Uuid::new_v4().simple().to_string();
        let expires_at = now + UPLOAD_URL_LIFETIME;
        let se = expires_at.unix_timestamp();
        let sig = URL_SAFE_NO_PAD.encode(self.mac(&upload, workspace.id, se).as_ref());
        let query = format!("sv=2021-08-06&sr=c&sp=cw&se={se}&skoid={}&sig={sig}", workspace.id);
        Ok(PendingUpload { upload, expires_at, query })
    }

    /// Checks an upload URL's token (`se`, `skoid`, `sig` from its query) for `upload`.
    pub fn verify_upload(
        &self,
        upload: &str,
        query: &std::collections::HashMap<String, String>,
    ) -> Result<UploadGrant, UploadDenied> {
        let get = |k: &str| query.get(k).map(String::as_str);
        let (Some(se), Some(skoid), Some(sig)) = (get("se"), get("skoid"), get("sig")) else {
            return Err(UploadDenied::BadSignature);
        };
        let se: i64 = se.parse().map_err(|_| UploadDenied::BadSignature)?;
        let workspace: WorkspaceId = skoid.parse().map_err(|_| UploadDenied::BadSignature)?;
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| UploadDenied::BadSignature)?;
        if !upload_id_ok(upload) {
            return Err(UploadDenied::BadSignature);
        }
        hmac::verify(
            self.authority.upload_key(),
            format!("upload|{upload}|{workspace}|{se}|cw").as_bytes(),
            &sig,
        )
        .map_err(|_| UploadDenied::BadSignature)?;
        if self.clock.now().unix_timestamp() >= se {
            return Err(UploadDenied::Expired);
        }
        Ok(UploadGrant { upload: upload.to_string(), workspace })
    }

    /// Put Blob: streams one file into the blob store and lists it in the upload area.
    /// `if_none_match` refuses to replace a file already there (`If-None-Match: *`).
    pub async fn put_blob(
        &self,
        grant: &UploadGrant,
        path: &str,
        metadata: BTreeMap<String, String>,
        if_none_match: bool,
        body: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
    ) -> Result<UploadedBlob, Error> {
        if !valid_model_path(path) {
            return Err(Error::InvalidInput(format!(
                "'{}' is not a valid relative path",
                path.chars().take(128).collect::<String>()
            )));
        }
        check_metadata(&metadata)?;
        let store = self.directory.store();
        if if_none_match && store.uploaded_blob(&grant.upload, path).await?.is_some() {
            return Err(Error::Conflict("The specified blob already exists.".into()));
        }
        let (sha256, size) =
            self.blobs.write_blob_unnamed(body, MAX_UPLOAD_FILE).await?.ok_or_else(|| {
                Error::TooLarge(format!(
                    "A file may hold at most {} MiB.",
                    MAX_UPLOAD_FILE / (1024 * 1024)
                ))
            })?;
        let b = UploadedBlob {
            upload: grant.upload.clone(),
            workspace_id: grant.workspace,
            path: path.to_string(),
            sha256,
            size,
            metadata,
            created_at: self.clock.now(),
        };
        store.put_uploaded_blob(&b, MAX_UPLOAD_FILES, MAX_UPLOAD_BYTES).await.map_err(
            |e| match e {
                StoreError::Conflict(_) => Error::TooLarge(format!(
                    "An upload holds at most {MAX_UPLOAD_FILES} files and {} MiB.",
                    MAX_UPLOAD_BYTES / (1024 * 1024)
                )),
                other => other.into(),
            },
        )?;
        Ok(b)
    }

    /// Get Blob Properties.
    pub async fn blob(&self, grant: &UploadGrant, path: &str) -> Result<UploadedBlob, Error> {
        self.directory
            .store()
            .uploaded_blob(&grant.upload, path)
            .await?
            .filter(|b| b.workspace_id == grant.workspace)
            .ok_or_else(|| Error::NotFound("The specified blob does not exist.".into()))
    }

    /// A listed blob's bytes (Get Blob).
    pub async fn open_blob(
        &self,
        b: &UploadedBlob,
    ) -> Result<(crate::store::BlobReader, u64), Error> {
        self.blobs
            .open_blob(&b.sha256)
            .await?
            .ok_or_else(|| Error::Internal(format!("blob {} is missing", b.sha256)))
    }

    /// Set Blob Metadata.
    pub async fn set_metadata(
        &self,
        grant: &UploadGrant,
        path: &str,
        metadata: BTreeMap<String, String>,
    ) -> Result<(), Error> {
        check_metadata(&metadata)?;
        self.blob(grant, path).await?;
        self.directory
            .store()
            .set_uploaded_blob_metadata(&grant.upload, path, &metadata)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => {
                    Error::NotFound("The specified blob does not exist.".into())
                }
                other => other.into(),
            })
    }

    /// List Blobs: at most `limit` files of the area whose path starts with `prefix`.
    pub async fn list_blobs(
        &self,
        grant: &UploadGrant,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<UploadedBlob>, Error> {
        let all = self.directory.store().uploaded_blobs(&grant.upload, prefix, limit).await?;
        Ok(all.into_iter().filter(|b| b.workspace_id == grant.workspace).collect())
    }

    /// Registers a code version from an uploaded folder. The same name and version again with
    /// the same files is the version already there; with other files it is a conflict
    /// (versions do not change).
    pub async fn create_version(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
        version: &str,
        new: NewCodeVersion,
    ) -> Result<(CodeVersion, bool), Error> {
        self.access.authorize(caller, CODE_WRITE, &Self::scope(ws, name)?)?;
        if !valid_code_version(version) {
            return Err(Error::InvalidInput(format!(
                "'{}' is not a valid version",
                version.chars().take(64).collect::<String>()
            )));
        }
        let workspace = caller_workspace(&self.directory, caller, ws).await?;
        let store = self.directory.store();
        let folder = new.prefix.trim_matches('/');
        let prefix = if folder.is_empty() { String::new() } else { format!("{folder}/") };
        let listed = store
            .uploaded_blobs(&new.upload, &prefix, (MAX_UPLOAD_FILES + 1) as u32)
            .await?
            .into_iter()
            .filter(|b| b.workspace_id == workspace.id)
            .collect::<Vec<_>>();
        let single = if listed.is_empty() && !folder.is_empty() {
            store
                .uploaded_blob(&new.upload, folder)
                .await?
                .filter(|b| b.workspace_id == workspace.id)
        } else {
            None
        };
        let files: Vec<ModelFile> = match single {
            // A code URI naming one file: the folder holds that file alone.
            Some(b) => vec![ModelFile {
                path: b.path.rsplit('/').next().unwrap_or(&b.path).to_string(),
                sha256: b.sha256,
                size: b.size,
            }],
            None => listed
                .into_iter()
                .filter_map(|b| {
                    let rel = b.path.strip_prefix(&prefix)?.to_string();
                    Some(ModelFile { path: rel, sha256: b.sha256, size: b.size })
                })
                .filter(|f| valid_model_path(&f.path))
                .collect(),
        };
        if files.is_empty() {
            return Err(Error::InvalidInput(
                "codeUri names no uploaded file of this workspace: upload the folder through \
                 the URL from startPendingUpload first"
                    .into(),
            ));
        }
        if let Some(existing) = store.code_version(workspace.id, name, version).await? {
            return if existing.files == files {
                Ok((existing, false))
            } else {
                Err(Error::Conflict(format!(
                    "code '{name}' version '{version}' exists with other content; versions do \
                     not change"
                )))
            };
        }
        let c = CodeVersion {
            workspace_id: workspace.id,
            name: name.to_string(),
            version: version.to_string(),
            hash: new.hash.filter(|h| h.len() <= 128),
            code_uri: new.code_uri.chars().take(2048).collect(),
            files,
            is_anonymous: new.is_anonymous,
            description: new.description.chars().take(1024).collect(),
            tags: new.tags,
            created_at: self.clock.now(),
            created_by: caller.object_id,
        };
        store.insert_code_version(&c).await.map_err(|e| match e {
            StoreError::Conflict(_) => {
                Error::Conflict(format!("code '{name}' version '{version}' already exists"))
            }
            other => other.into(),
        })?;
        Ok((c, true))
    }

    pub async fn version(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
        version: &str,
    ) -> Result<CodeVersion, Error> {
        self.access.authorize(caller, CODE_READ, &Self::scope(ws, name)?)?;
        let workspace = caller_workspace(&self.directory, caller, ws).await?;
        self.version_in(&workspace, name, version).await
    }

    pub(crate) async fn version_in(
        &self,
        workspace: &Workspace,
        name: &str,
        version: &str,
    ) -> Result<CodeVersion, Error> {
        self.directory
            .store()
            .code_version(workspace.id, name, version)
            .await?
            .ok_or_else(|| Error::NotFound(format!("Code '{name}' has no version '{version}'.")))
    }

    /// A code asset's versions, oldest first; with `hash`, only those with that content hash.
    pub async fn versions(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
        hash: Option<&str>,
    ) -> Result<Vec<CodeVersion>, Error> {
        self.access.authorize(caller, CODE_READ, &Self::scope(ws, name)?)?;
        let workspace = caller_workspace(&self.directory, caller, ws).await?;
        let all = self.directory.store().code_versions(workspace.id, name).await?;
        Ok(all
            .into_iter()
            .filter(|c| hash.is_none_or(|h| c.hash.as_deref().is_some_and(|x| x == h)))
            .collect())
    }

    /// Checks a caller may write a code asset, before a face reads the request's body.
    pub fn authorize_write(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
    ) -> Result<(), Error> {
        self.access.authorize(caller, CODE_WRITE, &Self::scope(ws, name)?)
    }

    /// Checks a caller may read a code asset (a deployment naming it).
    pub(crate) fn authorize_read(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
    ) -> Result<(), Error> {
        self.access.authorize(caller, CODE_READ, &Self::scope(ws, name)?)
    }
}

/// Azure's metadata rules, bounded: at most 32 entries, C-identifier names, short values.
fn check_metadata(m: &BTreeMap<String, String>) -> Result<(), Error> {
    let ok = m.len() <= 32
        && m.iter().all(|(k, v)| {
            !k.is_empty()
                && k.len() <= 128
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && v.len() <= 1024
                && !v.chars().any(char::is_control)
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(
            "metadata: at most 32 names (letters, digits, '_') with values up to 1 KiB".into(),
        ))
    }
}
