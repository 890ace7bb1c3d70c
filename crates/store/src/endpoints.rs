//! Online endpoints: the Azure ML SDK v2's records over web services of the same name.

use async_trait::async_trait;
use mlgate_core::ids::{WorkspaceId, name_key};
use mlgate_core::records::OnlineEndpoint;
use mlgate_core::store::{EndpointStore, StoreError, StoreResult};

use crate::SqlStore;
use crate::db::{Row, args, to_json};
use crate::services::{hold_workspace, lock_name};

pub(crate) fn endpoint_from(row: &Row) -> StoreResult<OnlineEndpoint> {
    let auth = row.text("auth_mode")?;
    Ok(OnlineEndpoint {
        name: row.text("name")?,
        workspace_id: row.parse("workspace_id")?,
        auth_mode: mlgate_core::services::AuthMode::parse(&auth)
            .ok_or_else(|| StoreError::Corrupt("endpoint auth mode".into()))?,
        description: row.text("description")?,
        tags: row.json("tags")?,
        deployment: row.opt_text("deployment")?,
        deployment_spec: row
            .opt_text("deployment_spec")?
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        created_by: row.parse("created_by")?,
    })
}

pub(crate) const UPSERT_ENDPOINT: &str = "INSERT INTO online_endpoints (name_key, name, \
     workspace_id, auth_mode, description, tags, deployment, deployment_spec, created_at, \
     updated_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
     ON CONFLICT (name_key) DO UPDATE SET name = excluded.name, auth_mode = excluded.auth_mode, \
     description = excluded.description, tags = excluded.tags, \
     deployment = excluded.deployment, deployment_spec = excluded.deployment_spec, \
     created_at = excluded.created_at, updated_at = excluded.updated_at, \
     created_by = excluded.created_by WHERE online_endpoints.workspace_id = excluded.workspace_id";

pub(crate) fn endpoint_args(e: &OnlineEndpoint) -> StoreResult<Vec<crate::db::Val>> {
    let spec = e.deployment_spec.as_ref().map(to_json).transpose()?;
    Ok(args![
        name_key(&e.name),
        &e.name,
        e.workspace_id,
        e.auth_mode.as_str(),
        &e.description,
        to_json(&e.tags)?,
        &e.deployment,
        spec,
        e.created_at,
        e.updated_at,
        e.created_by
    ])
}

#[async_trait]
impl EndpointStore for SqlStore {
    async fn put_endpoint(&self, e: &OnlineEndpoint) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        let key = lock_name(&mut tx, &e.name).await?;
        hold_workspace(&mut tx, e.workspace_id).await?;
        let owner =
            tx.opt("SELECT workspace_id FROM services WHERE name_key = $1", args![&key]).await?;
        if let Some(owner) = owner
            && owner.text("workspace_id")? != e.workspace_id.to_string()
        {
            return Err(StoreError::Conflict("the endpoint name is taken".into()));
        }
        if tx.exec(UPSERT_ENDPOINT, endpoint_args(e)?).await? == 0 {
            return Err(StoreError::Conflict("the endpoint name is taken".into()));
        }
        tx.commit().await
    }

    async fn endpoint(&self, name: &str) -> StoreResult<Option<OnlineEndpoint>> {
        let row = self
            .db
            .opt("SELECT * FROM online_endpoints WHERE name_key = $1", args![name_key(name)])
            .await?;
        row.as_ref().map(endpoint_from).transpose()
    }

    async fn endpoints(&self, ws: WorkspaceId) -> StoreResult<Vec<OnlineEndpoint>> {
        let rows = self
            .db
            .all(
                "SELECT * FROM online_endpoints WHERE workspace_id = $1 ORDER BY name_key",
                args![ws],
            )
            .await?;
        rows.iter().map(endpoint_from).collect()
    }

    async fn delete_endpoint(&self, name: &str) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        let key = lock_name(&mut tx, name).await?;
        let endpoints =
            tx.exec("DELETE FROM online_endpoints WHERE name_key = $1", args![&key]).await?;
        let services = tx.exec("DELETE FROM services WHERE name_key = $1", args![&key]).await?;
        if endpoints + services == 0 {
            return Err(StoreError::NotFound);
        }
        tx.exec("DELETE FROM service_keys WHERE name_key = $1", args![&key]).await?;
        tx.commit().await
    }

    async fn delete_endpoint_record(&self, name: &str) -> StoreResult<()> {
        self.db
            .exec("DELETE FROM online_endpoints WHERE name_key = $1", args![name_key(name)])
            .await
            .map(drop)
    }
}
