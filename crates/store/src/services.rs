//! Web services and their keys.

use async_trait::async_trait;
use mlgate_core::ids::{WorkspaceId, name_key};
use mlgate_core::records::{SealedServiceKeys, Service, ServiceState};
use mlgate_core::store::{ServiceStore, StoreError, StoreResult};
use time::OffsetDateTime;

use crate::SqlStore;
use crate::db::{Row, Tx, args, to_json};

pub(crate) fn service_from(row: &Row) -> StoreResult<Service> {
    let state = row.text("state")?;
    Ok(Service {
        name: row.text("name")?,
        workspace_id: row.parse("workspace_id")?,
        model_name: row.text("model_name")?,
        model_version: row.int("model_version")?,
        inference_config: row.json("inference_config")?,
        deployment_config: row.json("deployment_config")?,
        state: ServiceState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt("service state".into()))?,
        error: row.opt_text("error")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        created_by: row.parse("created_by")?,
    })
}

pub(crate) fn keys_from(r: &Row) -> StoreResult<SealedServiceKeys> {
    Ok(SealedServiceKeys {
        primary: r.bytes("primary_sealed")?,
        secondary: r.bytes("secondary_sealed")?,
        updated_at: r.time("updated_at")?,
    })
}

/// Inserts or updates the service of that name, but only within the same workspace: the
/// upsert's condition is what keeps two workspaces from taking one name at once.
pub(crate) const UPSERT_SERVICE: &str = "INSERT INTO services (name_key, name, workspace_id, \
     model_name, model_version, inference_config, deployment_config, state, error, created_at, \
     updated_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
     ON CONFLICT (name_key) DO UPDATE SET name = excluded.name, model_name = excluded.model_name, \
     model_version = excluded.model_version, inference_config = excluded.inference_config, \
     deployment_config = excluded.deployment_config, state = excluded.state, \
     error = excluded.error, created_at = excluded.created_at, updated_at = excluded.updated_at, \
     created_by = excluded.created_by WHERE services.workspace_id = excluded.workspace_id";

pub(crate) fn service_args(s: &Service) -> StoreResult<Vec<crate::db::Val>> {
    Ok(args![
        name_key(&s.name),
        &s.name,
        s.workspace_id,
        &s.model_name,
        s.model_version,
        to_json(&s.inference_config)?,
        to_json(&s.deployment_config)?,
        s.state.as_str(),
        &s.error,
        s.created_at,
        s.updated_at,
        s.created_by
    ])
}

pub(crate) const UPSERT_KEYS: &str = "INSERT INTO service_keys (name_key, primary_sealed, \
     secondary_sealed, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name_key) DO UPDATE \
     SET primary_sealed = excluded.primary_sealed, secondary_sealed = excluded.secondary_sealed, \
     updated_at = excluded.updated_at";

const INSERT_KEYS_IF_ABSENT: &str = "INSERT INTO service_keys (name_key, primary_sealed, \
     secondary_sealed, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name_key) DO NOTHING";

pub(crate) fn keys_args(name: &str, k: &SealedServiceKeys) -> Vec<crate::db::Val> {
    args![name_key(name), &k.primary, &k.secondary, k.updated_at]
}

/// Services and online endpoints share one name space (the scoring URI names either): the
/// lock serialises every writer of one name, on any node.
pub(crate) async fn lock_name(tx: &mut Tx, name: &str) -> StoreResult<String> {
    let key = name_key(name);
    tx.lock(&format!("service-name:{key}")).await?;
    Ok(key)
}

/// Holds the workspace a service or endpoint goes into until the transaction ends (its
/// deletion locks the row first, then counts what it holds), and refuses one that is gone.
pub(crate) async fn hold_workspace(tx: &mut Tx, ws: WorkspaceId) -> StoreResult<()> {
    tx.lock_rows("SELECT id FROM workspaces WHERE id = $1 FOR SHARE", args![ws]).await?;
    match tx.opt("SELECT id FROM workspaces WHERE id = $1", args![ws]).await? {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound),
    }
}

#[async_trait]
impl ServiceStore for SqlStore {
    async fn put_service(&self, s: &Service, initial_keys: &SealedServiceKeys) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        let key = lock_name(&mut tx, &s.name).await?;
        hold_workspace(&mut tx, s.workspace_id).await?;
        let owner = tx
            .opt("SELECT workspace_id FROM online_endpoints WHERE name_key = $1", args![&key])
            .await?;
        if let Some(owner) = owner
            && owner.text("workspace_id")? != s.workspace_id.to_string()
        {
            return Err(StoreError::Conflict("the service name is taken".into()));
        }
        if tx.exec(UPSERT_SERVICE, service_args(s)?).await? == 0 {
            return Err(StoreError::Conflict("the service name is taken".into()));
        }
        tx.exec(INSERT_KEYS_IF_ABSENT, keys_args(&s.name, initial_keys)).await?;
        tx.commit().await
    }

    async fn service(&self, name: &str) -> StoreResult<Option<Service>> {
        let row = self
            .db
            .opt("SELECT * FROM services WHERE name_key = $1", args![name_key(name)])
            .await?;
        row.as_ref().map(service_from).transpose()
    }

    async fn services(&self, ws: mlgate_core::ids::WorkspaceId) -> StoreResult<Vec<Service>> {
        let rows = self
            .db
            .all("SELECT * FROM services WHERE workspace_id = $1 ORDER BY name_key", args![ws])
            .await?;
        rows.iter().map(service_from).collect()
    }

    async fn all_services(&self) -> StoreResult<Vec<Service>> {
        let rows = self.db.all("SELECT * FROM services ORDER BY name_key", args![]).await?;
        rows.iter().map(service_from).collect()
    }

    async fn set_service_state(
        &self,
        name: &str,
        state: ServiceState,
        error: Option<&str>,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.db
            .exec(
                "UPDATE services SET state = $1, error = $2, updated_at = $3 WHERE name_key = $4",
                args![state.as_str(), error, at, name_key(name)],
            )
            .await
            .map(drop)
    }

    async fn delete_service(&self, name: &str) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        let key = lock_name(&mut tx, name).await?;
        let done = tx.exec("DELETE FROM services WHERE name_key = $1", args![&key]).await?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        // An online endpoint keeps its keys when its deployment goes (as on Azure).
        tx.exec(
            "DELETE FROM service_keys WHERE name_key = $1 \
             AND NOT EXISTS (SELECT 1 FROM online_endpoints WHERE name_key = $1)",
            args![&key],
        )
        .await?;
        tx.commit().await
    }

    async fn service_keys(&self, name: &str) -> StoreResult<Option<SealedServiceKeys>> {
        let row = self
            .db
            .opt("SELECT * FROM service_keys WHERE name_key = $1", args![name_key(name)])
            .await?;
        row.as_ref().map(keys_from).transpose()
    }

    async fn put_service_keys(&self, name: &str, keys: &SealedServiceKeys) -> StoreResult<()> {
        self.db.exec(UPSERT_KEYS, keys_args(name, keys)).await.map(drop)
    }

    async fn insert_service_keys(&self, name: &str, keys: &SealedServiceKeys) -> StoreResult<bool> {
        Ok(self.db.exec(INSERT_KEYS_IF_ABSENT, keys_args(name, keys)).await? == 1)
    }
}
