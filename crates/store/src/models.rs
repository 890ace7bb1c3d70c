//! The model registry: versions of named models in a workspace.

use async_trait::async_trait;
use mlgate_core::ids::{WorkspaceId, name_key};
use mlgate_core::records::ModelVersion;
use mlgate_core::store::{ModelStore, StoreError, StoreResult};

use crate::SqlStore;
use crate::db::{Row, args, to_json};

pub(crate) fn model_from(row: &Row) -> StoreResult<ModelVersion> {
    Ok(ModelVersion {
        workspace_id: row.parse("workspace_id")?,
        name: row.text("name")?,
        version: row.int("version")?,
        description: row.text("description")?,
        tags: row.json("tags")?,
        files: row.json("files")?,
        created_at: row.time("created_at")?,
        created_by: row.parse("created_by")?,
    })
}

pub(crate) const INSERT_MODEL: &str = "INSERT INTO models (workspace_id, name, name_key, version, \
     description, tags, files, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub(crate) fn model_args(m: &ModelVersion, version: i64) -> StoreResult<Vec<crate::db::Val>> {
    Ok(args![
        m.workspace_id,
        &m.name,
        name_key(&m.name),
        version,
        &m.description,
        to_json(&m.tags)?,
        to_json(&m.files)?,
        m.created_at,
        m.created_by
    ])
}

#[async_trait]
impl ModelStore for SqlStore {
    async fn insert_model_version(&self, m: &ModelVersion) -> StoreResult<i64> {
        let key = name_key(&m.name);
        let mut tx = self.db.begin().await?;
        // Registrations of one model queue here (on any node), so each reads the version the
        // one before it wrote: 1..N with no gap and no duplicate.
        tx.lock(&format!("model:{}:{key}", m.workspace_id)).await?;
        let next = tx
            .one(
                "SELECT COALESCE(MAX(version), 0) + 1 AS next FROM models \
                 WHERE workspace_id = $1 AND name_key = $2",
                args![m.workspace_id, &key],
            )
            .await?
            .int("next")?;
        tx.exec(INSERT_MODEL, model_args(m, next)?).await?;
        tx.commit().await?;
        Ok(next)
    }

    async fn model_versions(&self, ws: WorkspaceId, name: &str) -> StoreResult<Vec<ModelVersion>> {
        let rows = self
            .db
            .all(
                "SELECT * FROM models WHERE workspace_id = $1 AND name_key = $2 ORDER BY version",
                args![ws, name_key(name)],
            )
            .await?;
        rows.iter().map(model_from).collect()
    }

    async fn model_version(
        &self,
        ws: WorkspaceId,
        name: &str,
        version: i64,
    ) -> StoreResult<Option<ModelVersion>> {
        let row = self
            .db
            .opt(
                "SELECT * FROM models WHERE workspace_id = $1 AND name_key = $2 AND version = $3",
                args![ws, name_key(name), version],
            )
            .await?;
        row.as_ref().map(model_from).transpose()
    }

    async fn latest_models(&self, ws: WorkspaceId) -> StoreResult<Vec<ModelVersion>> {
        let rows = self
            .db
            .all(
                "SELECT m.* FROM models m WHERE m.workspace_id = $1 AND m.version = \
                 (SELECT MAX(version) FROM models x WHERE x.workspace_id = m.workspace_id \
                 AND x.name_key = m.name_key) ORDER BY m.name_key",
                args![ws],
            )
            .await?;
        rows.iter().map(model_from).collect()
    }

    async fn delete_model_version(
        &self,
        ws: WorkspaceId,
        name: &str,
        version: i64,
    ) -> StoreResult<()> {
        let done = self
            .db
            .exec(
                "DELETE FROM models WHERE workspace_id = $1 AND name_key = $2 AND version = $3",
                args![ws, name_key(name), version],
            )
            .await?;
        if done == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }
}
