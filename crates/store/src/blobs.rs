//! Content-addressed files on disk: `{root}/sha256/{first two hex digits}/{hex}`. Writes go to
//! a temporary file renamed into place, so a reader never sees half a blob.

use std::path::PathBuf;

use async_trait::async_trait;
use mlgate_core::store::{BlobStore, StoreError, StoreResult};

#[derive(Debug, Clone)]
pub struct FileBlobStore {
    root: PathBuf,
}

fn valid(sha: &str) -> bool {
    sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl FileBlobStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, sha: &str) -> StoreResult<PathBuf> {
        if !valid(sha) {
            return Err(StoreError::Corrupt("not a sha256 hex digest".into()));
        }
        Ok(self.root.join("sha256").join(&sha[..2]).join(sha))
    }
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

#[async_trait]
impl BlobStore for FileBlobStore {
    async fn put_blob(&self, sha256: &str, bytes: &[u8]) -> StoreResult<()> {
        let path = self.path(sha256)?;
        if tokio::fs::try_exists(&path).await.map_err(io)? {
            return Ok(());
        }
        let dir = path.parent().ok_or_else(|| StoreError::Corrupt("blob path".into()))?;
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
        let tmp = dir.join(format!(".{sha256}.{}", uuid::Uuid::new_v4()));
        tokio::fs::write(&tmp, bytes).await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)?;
        Ok(())
    }

    async fn get_blob(&self, sha256: &str) -> StoreResult<Option<Vec<u8>>> {
        match tokio::fs::read(self.path(sha256)?).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn has_blob(&self, sha256: &str) -> StoreResult<bool> {
        tokio::fs::try_exists(self.path(sha256)?).await.map_err(io)
    }
}
