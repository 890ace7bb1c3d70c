//! Storage traits. `mlgate-store` implements them for SQLite (and later PostgreSQL); a single
//! conformance suite there runs against every implementation. Every method that changes more
//! than one row is one transaction.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::ids::{AppId, GrantFamilyId, ObjectId, TenantId};
use crate::model::{
    ClientSecret, RefreshGrant, ServicePrincipal, SigningKeyRecord, Subscription, Tenant, User,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What the first start writes, all at once or not at all.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub tenant: Tenant,
    pub subscription: Subscription,
    pub admin: User,
    pub cli_application: ServicePrincipal,
    pub keys: Vec<SigningKeyRecord>,
}

#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Writes the bootstrap records unless the store was already bootstrapped.
    /// Returns whether it wrote them.
    async fn bootstrap(&self, data: &Bootstrap) -> StoreResult<bool>;
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    async fn insert_tenant(&self, tenant: &Tenant) -> StoreResult<()>;
    async fn list_subscriptions(&self, tenant: TenantId) -> StoreResult<Vec<Subscription>>;
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    async fn user_by_upn(&self, tenant: TenantId, upn: &str) -> StoreResult<Option<User>>;
    async fn user(&self, tenant: TenantId, id: ObjectId) -> StoreResult<Option<User>>;
    async fn list_users(&self, tenant: TenantId) -> StoreResult<Vec<User>>;

    /// Inserts a principal together with its first secret.
    async fn insert_service_principal(
        &self,
        sp: &ServicePrincipal,
        secret: Option<&ClientSecret>,
    ) -> StoreResult<()>;
    async fn service_principal_by_app_id(
        &self,
        tenant: TenantId,
        app_id: AppId,
    ) -> StoreResult<Option<ServicePrincipal>>;
    async fn service_principal(
        &self,
        tenant: TenantId,
        id: ObjectId,
    ) -> StoreResult<Option<ServicePrincipal>>;
    async fn list_service_principals(&self, tenant: TenantId)
    -> StoreResult<Vec<ServicePrincipal>>;
    async fn set_service_principal_enabled(
        &self,
        tenant: TenantId,
        id: ObjectId,
        enabled: bool,
    ) -> StoreResult<()>;
    /// Deletes the principal and its secrets.
    async fn delete_service_principal(&self, tenant: TenantId, id: ObjectId) -> StoreResult<()>;
    async fn secrets_of(&self, principal: ObjectId) -> StoreResult<Vec<ClientSecret>>;
    /// Adds `secret`; unless `keep_existing`, removes the others in the same transaction.
    async fn add_secret(&self, secret: &ClientSecret, keep_existing: bool) -> StoreResult<()>;
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Retires the active key, activates the next one, inserts `new_next`, and deletes retired
    /// keys retired before `prune_retired_before`: one transaction.
    async fn rotate_signing_keys(
        &self,
        now: OffsetDateTime,
        new_next: &SigningKeyRecord,
        prune_retired_before: OffsetDateTime,
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait GrantStore: Send + Sync {
    async fn insert_refresh_grant(&self, grant: &RefreshGrant) -> StoreResult<()>;
    /// Marks the grant used and returns it as it was before; `None` if unknown.
    async fn use_refresh_grant(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
    ) -> StoreResult<Option<RefreshGrant>>;
    async fn revoke_grant_family(&self, family: GrantFamilyId) -> StoreResult<()>;
}

/// Everything the server needs from storage.
#[async_trait]
pub trait Store: DirectoryStore + KeyStore + GrantStore + Send + Sync + 'static {
    /// A cheap round trip, for readiness.
    async fn ping(&self) -> StoreResult<()>;
}
