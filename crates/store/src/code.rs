//! Code assets and the files uploaded for them through signed URLs.

use std::collections::BTreeMap;

use async_trait::async_trait;
use mlgate_core::ids::{WorkspaceId, name_key};
use mlgate_core::records::{CodeVersion, UploadedBlob};
use mlgate_core::store::{CodeStore, StoreError, StoreResult};
use time::OffsetDateTime;

use crate::SqlStore;
use crate::db::{Row, args, to_json};

pub(crate) fn code_version_from(row: &Row) -> StoreResult<CodeVersion> {
    Ok(CodeVersion {
        workspace_id: row.parse("workspace_id")?,
        name: row.text("name")?,
        version: row.text("version")?,
        hash: row.opt_text("hash")?,
        code_uri: row.text("code_uri")?,
        files: row.json("files")?,
        is_anonymous: row.bool("is_anonymous")?,
        description: row.text("description")?,
        tags: row.json("tags")?,
        created_at: row.time("created_at")?,
        created_by: row.parse("created_by")?,
    })
}

pub(crate) fn uploaded_from(row: &Row) -> StoreResult<UploadedBlob> {
    Ok(UploadedBlob {
        upload: row.text("upload")?,
        workspace_id: row.parse("workspace_id")?,
        path: row.text("path")?,
        sha256: row.text("sha256")?,
        size: row.int("size")?.max(0) as u64,
        metadata: row.json("metadata")?,
        created_at: row.time("created_at")?,
    })
}

pub(crate) const INSERT_CODE_VERSION: &str = "INSERT INTO code_versions (workspace_id, name_key, \
     name, version, hash, code_uri, files, is_anonymous, description, tags, created_at, \
     created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

pub(crate) fn code_version_args(c: &CodeVersion) -> StoreResult<Vec<crate::db::Val>> {
    Ok(args![
        c.workspace_id,
        name_key(&c.name),
        &c.name,
        &c.version,
        &c.hash,
        &c.code_uri,
        to_json(&c.files)?,
        c.is_anonymous,
        &c.description,
        to_json(&c.tags)?,
        c.created_at,
        c.created_by
    ])
}

pub(crate) const UPSERT_UPLOADED: &str = "INSERT INTO uploaded_blobs (upload, path, workspace_id, \
     sha256, size, metadata, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (upload, path) DO UPDATE SET workspace_id = excluded.workspace_id, \
     sha256 = excluded.sha256, size = excluded.size, metadata = excluded.metadata, \
     created_at = excluded.created_at";

pub(crate) fn uploaded_args(b: &UploadedBlob) -> StoreResult<Vec<crate::db::Val>> {
    Ok(args![
        &b.upload,
        &b.path,
        b.workspace_id,
        &b.sha256,
        i64::try_from(b.size).unwrap_or(i64::MAX),
        to_json(&b.metadata)?,
        b.created_at
    ])
}

#[async_trait]
impl CodeStore for SqlStore {
    async fn insert_code_version(&self, c: &CodeVersion) -> StoreResult<()> {
        self.db.exec(INSERT_CODE_VERSION, code_version_args(c)?).await.map(drop)
    }

    async fn code_version(
        &self,
        ws: WorkspaceId,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<CodeVersion>> {
        let row = self
            .db
            .opt(
                "SELECT * FROM code_versions WHERE workspace_id = $1 AND name_key = $2 \
                 AND version = $3",
                args![ws, name_key(name), version],
            )
            .await?;
        row.as_ref().map(code_version_from).transpose()
    }

    async fn code_versions(&self, ws: WorkspaceId, name: &str) -> StoreResult<Vec<CodeVersion>> {
        let rows = self
            .db
            .all(
                "SELECT * FROM code_versions WHERE workspace_id = $1 AND name_key = $2 \
                 ORDER BY created_at, version",
                args![ws, name_key(name)],
            )
            .await?;
        rows.iter().map(code_version_from).collect()
    }

    async fn put_uploaded_blob(
        &self,
        b: &UploadedBlob,
        max_files: u64,
        max_bytes: u64,
    ) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        // Files of one area arriving at once (at several nodes) count in turn.
        tx.lock(&format!("upload:{}", b.upload)).await?;
        let row = tx
            .one(
                "SELECT COUNT(*) AS files, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes \
                 FROM uploaded_blobs WHERE upload = $1 AND path != $2",
                args![&b.upload, &b.path],
            )
            .await?;
        let (files, bytes) = (row.int("files")?, row.int("bytes")?);
        if files.max(0) as u64 >= max_files
            || (bytes.max(0) as u64).saturating_add(b.size) > max_bytes
        {
            return Err(StoreError::Conflict("the upload area is full".into()));
        }
        tx.exec(UPSERT_UPLOADED, uploaded_args(b)?).await?;
        tx.commit().await
    }

    async fn uploaded_blob(&self, upload: &str, path: &str) -> StoreResult<Option<UploadedBlob>> {
        let row = self
            .db
            .opt(
                "SELECT * FROM uploaded_blobs WHERE upload = $1 AND path = $2",
                args![upload, path],
            )
            .await?;
        row.as_ref().map(uploaded_from).transpose()
    }

    async fn uploaded_blobs(
        &self,
        upload: &str,
        prefix: &str,
        limit: u32,
    ) -> StoreResult<Vec<UploadedBlob>> {
        // A prefix match without LIKE, whose wildcards a path may contain.
        let rows = self
            .db
            .all(
                "SELECT * FROM uploaded_blobs WHERE upload = $1 \
                 AND substr(path, 1, length($2)) = $2 ORDER BY path LIMIT $3",
                args![upload, prefix, i64::from(limit)],
            )
            .await?;
        rows.iter().map(uploaded_from).collect()
    }

    async fn set_uploaded_blob_metadata(
        &self,
        upload: &str,
        path: &str,
        metadata: &BTreeMap<String, String>,
    ) -> StoreResult<()> {
        let done = self
            .db
            .exec(
                "UPDATE uploaded_blobs SET metadata = $1 WHERE upload = $2 AND path = $3",
                args![to_json(metadata)?, upload, path],
            )
            .await?;
        if done == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn forget_uploads_before(&self, before: OffsetDateTime) -> StoreResult<u64> {
        self.db.exec("DELETE FROM uploaded_blobs WHERE created_at < $1", args![before]).await
    }
}
