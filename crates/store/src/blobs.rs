//! Content-addressed files on disk: `{root}/sha256/{first two hex digits}/{hex}`. Writes go to
//! a temporary file renamed into place, so a reader never sees half a blob.

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use aws_lc_rs::digest;
use mlgate_core::store::{BlobReader, BlobStore, BlobWrite, StoreError, StoreResult};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

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

fn hex(d: digest::Digest) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Hashes what it reads; at the end of the file, fails unless the digest is the expected one.
struct Verifying<R> {
    inner: R,
    ctx: Option<digest::Context>,
    expected: String,
}

impl<R: AsyncRead + Unpin> AsyncRead for Verifying<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let read = &buf.filled()[before..];
            if read.is_empty() {
                if let Some(ctx) = self.ctx.take()
                    && hex(ctx.finish()) != self.expected
                {
                    return Poll::Ready(Err(std::io::Error::other("the blob is corrupt")));
                }
            } else if let Some(ctx) = self.ctx.as_mut() {
                ctx.update(read);
            }
        }
        polled
    }
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

    async fn write_blob(
        &self,
        sha256: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max: u64,
    ) -> StoreResult<BlobWrite> {
        let path = self.path(sha256)?;
        let dir = path.parent().ok_or_else(|| StoreError::Corrupt("blob path".into()))?;
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
        let tmp = dir.join(format!(".{sha256}.{}", uuid::Uuid::new_v4()));
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await.map_err(io)?;
            let mut ctx = digest::Context::new(&digest::SHA256);
            let mut buf = vec![0u8; 64 * 1024];
            let mut total: u64 = 0;
            loop {
                let n = body.read(&mut buf).await.map_err(io)?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                if total > max {
                    return Ok(BlobWrite::TooLarge);
                }
                ctx.update(&buf[..n]);
                file.write_all(&buf[..n]).await.map_err(io)?;
            }
            let actual = hex(ctx.finish());
            if actual != sha256 {
                return Ok(BlobWrite::Mismatch { actual });
            }
            file.sync_all().await.map_err(io)?;
            tokio::fs::rename(&tmp, &path).await.map_err(io)?;
            Ok(BlobWrite::Stored)
        }
        .await;
        if !matches!(result, Ok(BlobWrite::Stored)) {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    async fn open_blob(&self, sha256: &str) -> StoreResult<Option<(BlobReader, u64)>> {
        let path = self.path(sha256)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let size = file.metadata().await.map_err(io)?.len();
        let reader = Verifying {
            inner: tokio::io::BufReader::with_capacity(64 * 1024, file),
            ctx: Some(digest::Context::new(&digest::SHA256)),
            expected: sha256.to_string(),
        };
        Ok(Some((Box::new(reader), size)))
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

    async fn write_blob_unnamed(
        &self,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max: u64,
    ) -> StoreResult<Option<(String, u64)>> {
        // The same file system as the blobs, so the final rename is atomic.
        let dir = self.root.join("sha256").join("incoming");
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        let tmp = dir.join(uuid::Uuid::new_v4().simple().to_string());
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await.map_err(io)?;
            let mut ctx = digest::Context::new(&digest::SHA256);
            let mut buf = vec![0u8; 64 * 1024];
            let mut total: u64 = 0;
            loop {
                let n = body.read(&mut buf).await.map_err(io)?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                if total > max {
                    return Ok(None);
                }
                ctx.update(&buf[..n]);
                file.write_all(&buf[..n]).await.map_err(io)?;
            }
            let sha = hex(ctx.finish());
            file.sync_all().await.map_err(io)?;
            let path = self.path(&sha)?;
            let parent = path.parent().ok_or_else(|| StoreError::Corrupt("blob path".into()))?;
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
            tokio::fs::rename(&tmp, &path).await.map_err(io)?;
            Ok(Some((sha, total)))
        }
        .await;
        if !matches!(result, Ok(Some(_))) {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> String {
        hex(digest::digest(&digest::SHA256, bytes))
    }

    #[tokio::test]
    async fn streamed_blobs_are_kept_only_when_whole_and_true() {
        let root = std::env::temp_dir().join(format!("mlgate-blobs-{}", uuid::Uuid::new_v4()));
        let store = FileBlobStore::new(&root);
        let data = b"0123456789".to_vec();
        let good = sha(&data);
        // Over the limit: refused, and no temporary file stays behind.
        let r = store.write_blob(&good, &mut data.as_slice(), 9).await.unwrap();
        assert_eq!(r, BlobWrite::TooLarge);
        // Under another digest: refused with the actual one.
        let other = sha(b"other");
        let r = store.write_blob(&other, &mut data.as_slice(), 10).await.unwrap();
        assert_eq!(r, BlobWrite::Mismatch { actual: good.clone() });
        let dir = root.join("sha256").join(&good[..2]);
        let leftovers = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        let other_dir = root.join("sha256").join(&other[..2]);
        let more = std::fs::read_dir(&other_dir).map(|d| d.count()).unwrap_or(0);
        assert_eq!(leftovers + more, 0, "temporary files were left behind");
        // Whole and true: kept, and read back as a stream.
        assert_eq!(
            store.write_blob(&good, &mut data.as_slice(), 10).await.unwrap(),
            BlobWrite::Stored
        );
        let (mut reader, size) = store.open_blob(&good).await.unwrap().unwrap();
        let mut back = Vec::new();
        reader.read_to_end(&mut back).await.unwrap();
        assert_eq!((back, size), (data.clone(), 10));
        // Unnamed: hashed on the way in, kept under its digest, bounded.
        assert_eq!(store.write_blob_unnamed(&mut data.as_slice(), 9).await.unwrap(), None);
        assert_eq!(
            store.write_blob_unnamed(&mut data.as_slice(), 10).await.unwrap(),
            Some((good.clone(), 10))
        );
        assert!(store.has_blob(&good).await.unwrap());
        let incoming = std::fs::read_dir(root.join("sha256").join("incoming")).unwrap().count();
        assert_eq!(incoming, 0, "temporary files were left behind");
        // Changed on disk: the stream fails at its end instead of passing it on as true.
        std::fs::write(dir.join(&good), b"0123456788").unwrap();
        let (mut reader, _) = store.open_blob(&good).await.unwrap().unwrap();
        assert!(reader.read_to_end(&mut Vec::new()).await.is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
