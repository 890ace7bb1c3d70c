//! Storage traits. `mlgate-store` implements them for SQLite and PostgreSQL; one conformance
//! suite there (`crates/store/tests/conformance`) runs against both. Every method that changes more
//! than one row is one transaction.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::ids::{
    AppId, GrantFamilyId, ObjectId, RoleAssignmentId, RoleDefinitionId, SubscriptionId, TenantId,
    WorkspaceId,
};
use crate::records::{
    Application, AuthorizationCode, ClientSecret, CodeVersion, CustomRoleRecord,
    DeviceAuthorization, DeviceState, ModelVersion, OnlineEndpoint, RefreshGrant, ResourceGroup,
    RoleAssignmentRecord, SealedServiceKeys, Service, ServicePrincipal, ServiceState,
    SigningKeyRecord, Subscription, Tenant, UploadedBlob, User, Workspace,
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
    /// A user by object id, whatever its home tenant.
    async fn user_anywhere(&self, id: ObjectId) -> StoreResult<Option<User>>;
    /// A user by principal name, whatever its home tenant (names carry their domain).
    async fn user_by_upn_anywhere(&self, upn: &str) -> StoreResult<Option<User>>;
    /// `Some(is_admin)` when the user is a member of `tenant` other than as its home.
    async fn membership(&self, tenant: TenantId, user: ObjectId) -> StoreResult<Option<bool>>;
    /// The tenants the user is a (non-home) member of.
    async fn memberships_of(&self, user: ObjectId) -> StoreResult<Vec<TenantId>>;
    async fn add_member(
        &self,
        tenant: TenantId,
        user: ObjectId,
        is_admin: bool,
        at: OffsetDateTime,
    ) -> StoreResult<()>;
    /// A new tenant with its first subscription, its creator as an administrator member, and
    /// the creator's Owner assignment on the subscription: one transaction.
    async fn create_tenant(
        &self,
        tenant: &Tenant,
        subscription: &Subscription,
        cli_application: &ServicePrincipal,
        creator: ObjectId,
        owner: &RoleAssignmentRecord,
    ) -> StoreResult<()>;
    async fn list_users(&self, tenant: TenantId) -> StoreResult<Vec<User>>;
    /// Rewrites a user's name, display name, password hash and flags; `NotFound` when absent.
    async fn update_user(&self, user: &User) -> StoreResult<()>;
    /// Deletes a user with its memberships, role assignments and refresh grants, in one
    /// transaction; `NotFound` when absent.
    async fn delete_user(&self, tenant: TenantId, id: ObjectId) -> StoreResult<()>;
    /// Revokes every refresh grant of a user (after a password change); returns how many.
    async fn revoke_user_grants(&self, user: ObjectId) -> StoreResult<u64>;

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
    /// Deletes the principal, its secrets and its role assignments: one transaction.
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

/// Refuse a deletion that would leave `scope_key` without an assignment of `role`.
#[derive(Debug, Clone)]
pub struct KeepOneAssignment {
    pub role: RoleDefinitionId,
    pub scope_key: String,
}

#[async_trait]
pub trait RbacStore: Send + Sync {
    async fn custom_roles(&self) -> StoreResult<Vec<CustomRoleRecord>>;
    /// `Conflict` when the tenant already has a role of that name (case-insensitive).
    async fn insert_custom_role(&self, role: &CustomRoleRecord) -> StoreResult<()>;
    async fn role_assignments(&self) -> StoreResult<Vec<RoleAssignmentRecord>>;
    /// `Conflict` when the same principal already has the same role at the same scope.
    async fn insert_role_assignment(&self, a: &RoleAssignmentRecord) -> StoreResult<()>;
    /// Many at once, in one transaction (bulk loads and benchmarks).
    async fn insert_role_assignments(&self, all: &[RoleAssignmentRecord]) -> StoreResult<()>;
    /// Deletes and returns the assignment; with `keep`, refuses (`Conflict`) in the same
    /// transaction when none of `keep.role` would remain at `keep.scope_key`.
    async fn delete_role_assignment(
        &self,
        id: RoleAssignmentId,
        keep: Option<&KeepOneAssignment>,
    ) -> StoreResult<RoleAssignmentRecord>;
}

#[async_trait]
pub trait ResourceStore: Send + Sync {
    async fn subscription(&self, id: SubscriptionId) -> StoreResult<Option<Subscription>>;
    /// Inserts, or returns the existing group unchanged; the bool says whether it was created.
    async fn put_resource_group(&self, rg: &ResourceGroup) -> StoreResult<(ResourceGroup, bool)>;
    async fn resource_group(
        &self,
        sub: SubscriptionId,
        name: &str,
    ) -> StoreResult<Option<ResourceGroup>>;
    /// Ordered by lower-cased name, strictly after `after`.
    async fn list_resource_groups(
        &self,
        sub: SubscriptionId,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<ResourceGroup>>;
    /// Deletes the group, its workspaces and every role assignment at or below `scope_key`
    /// (the group's scope, lower-cased): one transaction. `Conflict` while its workspaces
    /// hold web services or online endpoints.
    async fn delete_resource_group(
        &self,
        sub: SubscriptionId,
        name: &str,
        scope_key: &str,
    ) -> StoreResult<()>;
    /// Inserts, or updates description and friendly name; the bool says whether it was created.
    async fn put_workspace(&self, ws: &Workspace) -> StoreResult<(Workspace, bool)>;
    async fn workspace(
        &self,
        sub: SubscriptionId,
        rg: &str,
        name: &str,
    ) -> StoreResult<Option<Workspace>>;
    async fn workspace_by_id(&self, id: WorkspaceId) -> StoreResult<Option<Workspace>>;
    /// Ordered by (resource group, name) lower-cased, strictly after `after`.
    async fn list_workspaces(
        &self,
        sub: SubscriptionId,
        rg: Option<&str>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> StoreResult<Vec<Workspace>>;
    /// Deletes the workspace and every role assignment at or below `scope_key` (its scope,
    /// lower-cased): one transaction. `Conflict` while it holds web services or endpoints.
    async fn delete_workspace(
        &self,
        sub: SubscriptionId,
        rg: &str,
        name: &str,
        scope_key: &str,
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait FlowStore: Send + Sync {
    async fn insert_device_authorization(&self, d: &DeviceAuthorization) -> StoreResult<()>;
    async fn device_by_user_code(
        &self,
        user_code_digest: &[u8; 32],
    ) -> StoreResult<Option<DeviceAuthorization>>;
    /// Returns the record as it was and stamps `last_poll_at = now`.
    async fn poll_device(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
    ) -> StoreResult<Option<DeviceAuthorization>>;
    /// Moves a pending, unexpired authorization to `state` (approved or denied) for `user`;
    /// false when it was no longer pending.
    async fn decide_device(
        &self,
        user_code_digest: &[u8; 32],
        state: DeviceState,
        user: ObjectId,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Approved -> consumed, atomically; false if it was not approved.
    async fn consume_device(&self, digest: &[u8; 32]) -> StoreResult<bool>;
    async fn insert_authorization_code(&self, c: &AuthorizationCode) -> StoreResult<()>;
    /// Marks the code used and returns it as it was (so a second use is visible).
    async fn take_authorization_code(
        &self,
        digest: &[u8; 32],
    ) -> StoreResult<Option<AuthorizationCode>>;
    /// Revokes a refresh token's whole family; false if the token is unknown.
    async fn revoke_refresh_token(&self, digest: &[u8; 32]) -> StoreResult<bool>;
    async fn refresh_grant(&self, digest: &[u8; 32]) -> StoreResult<Option<RefreshGrant>>;
}

#[async_trait]
pub trait ModelStore: Send + Sync {
    /// Inserts the next version of `m.name` (the given `version` is ignored); returns it.
    async fn insert_model_version(&self, m: &ModelVersion) -> StoreResult<i64>;
    async fn model_versions(&self, ws: WorkspaceId, name: &str) -> StoreResult<Vec<ModelVersion>>;
    async fn model_version(
        &self,
        ws: WorkspaceId,
        name: &str,
        version: i64,
    ) -> StoreResult<Option<ModelVersion>>;
    /// The latest version of every model of the workspace.
    async fn latest_models(&self, ws: WorkspaceId) -> StoreResult<Vec<ModelVersion>>;
    async fn delete_model_version(
        &self,
        ws: WorkspaceId,
        name: &str,
        version: i64,
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait ServiceStore: Send + Sync {
    /// Inserts, or replaces the service of that name in the same workspace (an update), and
    /// gives it `initial_keys` unless it has keys already: one transaction, so a deployment
    /// never exists without keys. `Conflict` when another workspace uses the name (for a
    /// service or an online endpoint).
    async fn put_service(&self, s: &Service, initial_keys: &SealedServiceKeys) -> StoreResult<()>;
    async fn service(&self, name: &str) -> StoreResult<Option<Service>>;
    async fn services(&self, ws: WorkspaceId) -> StoreResult<Vec<Service>>;
    async fn all_services(&self) -> StoreResult<Vec<Service>>;
    async fn set_service_state(
        &self,
        name: &str,
        state: ServiceState,
        error: Option<&str>,
        at: OffsetDateTime,
    ) -> StoreResult<()>;
    /// Deletes the service and its keys.
    async fn delete_service(&self, name: &str) -> StoreResult<()>;
    /// The service's primary and secondary keys, sealed under the master key.
    async fn service_keys(&self, name: &str) -> StoreResult<Option<SealedServiceKeys>>;
    async fn put_service_keys(&self, name: &str, keys: &SealedServiceKeys) -> StoreResult<()>;
    /// Stores `keys` unless the service has keys already (atomically: of two callers, one
    /// stores and both then read the same keys); whether it stored them.
    async fn insert_service_keys(&self, name: &str, keys: &SealedServiceKeys) -> StoreResult<bool>;
}

/// Online endpoints: the records of the SDK v2's face of web services.
#[async_trait]
pub trait EndpointStore: Send + Sync {
    /// Inserts or replaces the endpoint of that name in the same workspace; `Conflict` when
    /// another workspace has an endpoint or a service of that name (one transaction).
    async fn put_endpoint(&self, e: &OnlineEndpoint) -> StoreResult<()>;
    async fn endpoint(&self, name: &str) -> StoreResult<Option<OnlineEndpoint>>;
    async fn endpoints(&self, ws: WorkspaceId) -> StoreResult<Vec<OnlineEndpoint>>;
    /// Deletes the endpoint, its service (if any) and its keys: one transaction.
    async fn delete_endpoint(&self, name: &str) -> StoreResult<()>;
    /// Deletes only the endpoint's record (a service of that name stays); no error if absent.
    async fn delete_endpoint_record(&self, name: &str) -> StoreResult<()>;
}

/// Code assets and the files uploaded for them.
#[async_trait]
pub trait CodeStore: Send + Sync {
    /// Inserts a code version; `Conflict` if that name and version exist.
    async fn insert_code_version(&self, c: &CodeVersion) -> StoreResult<()>;
    async fn code_version(
        &self,
        ws: WorkspaceId,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<CodeVersion>>;
    /// Every version of one code asset, oldest first.
    async fn code_versions(&self, ws: WorkspaceId, name: &str) -> StoreResult<Vec<CodeVersion>>;
    /// Records (or replaces) one uploaded file, unless its upload area already holds
    /// `max_files` other files or `max_bytes` with it: then `Conflict`. One transaction.
    async fn put_uploaded_blob(
        &self,
        b: &UploadedBlob,
        max_files: u64,
        max_bytes: u64,
    ) -> StoreResult<()>;
    async fn uploaded_blob(&self, upload: &str, path: &str) -> StoreResult<Option<UploadedBlob>>;
    /// The files of an upload area whose path starts with `prefix`, by path, at most `limit`.
    async fn uploaded_blobs(
        &self,
        upload: &str,
        prefix: &str,
        limit: u32,
    ) -> StoreResult<Vec<UploadedBlob>>;
    async fn set_uploaded_blob_metadata(
        &self,
        upload: &str,
        path: &str,
        metadata: &std::collections::BTreeMap<String, String>,
    ) -> StoreResult<()>;
    /// Forgets upload areas' files recorded before `before` (the files stay in the blob store
    /// while a code version uses them).
    async fn forget_uploads_before(&self, before: OffsetDateTime) -> StoreResult<u64>;
}

/// Graph's application objects, kept apart from their service principals (two object ids,
/// one appId) so that `az ad` can create, rename and delete each on its own.
#[async_trait]
pub trait ApplicationStore: Send + Sync {
    /// Inserts the application and, in the same transaction, its service principal and that
    /// principal's first secret. `Conflict` when the tenant already has the appId.
    async fn insert_application(
        &self,
        app: &Application,
        sp: Option<&ServicePrincipal>,
        sp_secret: Option<&ClientSecret>,
    ) -> StoreResult<()>;
    async fn application(&self, tenant: TenantId, id: ObjectId)
    -> StoreResult<Option<Application>>;
    async fn application_by_app_id(
        &self,
        tenant: TenantId,
        app_id: AppId,
    ) -> StoreResult<Option<Application>>;
    async fn list_applications(&self, tenant: TenantId) -> StoreResult<Vec<Application>>;
    async fn rename_application(
        &self,
        tenant: TenantId,
        id: ObjectId,
        display_name: &str,
    ) -> StoreResult<()>;
    /// Deletes the application, its secrets, its service principal (if any) with the
    /// principal's secrets and role assignments: one transaction. Returns the deleted
    /// principal's object id.
    async fn delete_application(
        &self,
        tenant: TenantId,
        id: ObjectId,
    ) -> StoreResult<Option<ObjectId>>;
    /// The application's own secrets (`ClientSecret::principal` is the application's id).
    async fn application_secrets(&self, application: ObjectId) -> StoreResult<Vec<ClientSecret>>;
    async fn add_application_secret(&self, secret: &ClientSecret) -> StoreResult<()>;
    /// Removes one secret of a principal or an application; `NotFound` if it has no such key.
    async fn remove_secret(&self, owner: ObjectId, key: crate::ids::SecretId) -> StoreResult<()>;
}

/// Content-addressed file storage (model files): the key is the SHA-256 of the bytes.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` under their SHA-256 (hex), which the caller has verified.
    async fn put_blob(&self, sha256: &str, bytes: &[u8]) -> StoreResult<()>;
    /// Streams a blob in: written to a temporary file while its SHA-256 is computed, and kept
    /// under `sha256` only if that is its digest and at most `max` bytes arrived. Memory
    /// stays bounded whatever the size.
    async fn write_blob(
        &self,
        sha256: &str,
        body: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
        max: u64,
    ) -> StoreResult<BlobWrite>;
    async fn get_blob(&self, sha256: &str) -> StoreResult<Option<Vec<u8>>>;
    /// A blob as a stream, and its size. The stream fails at its end if the content on disk
    /// no longer has the digest it is stored under.
    async fn open_blob(&self, sha256: &str) -> StoreResult<Option<(BlobReader, u64)>>;
    async fn has_blob(&self, sha256: &str) -> StoreResult<bool>;
    /// Streams in a blob whose digest is not known beforehand: hashed while written to a
    /// temporary file, then kept under its SHA-256. `None` when more than `max` bytes came.
    async fn write_blob_unnamed(
        &self,
        body: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
        max: u64,
    ) -> StoreResult<Option<(String, u64)>>;
}

pub type BlobReader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// How a streamed blob ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobWrite {
    Stored,
    TooLarge,
    /// The content's digest is not the one it was sent under.
    Mismatch {
        actual: String,
    },
}

/// The activity and sign-in logs.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Writes one activity record on its own (a denial, a failure, a read).
    async fn insert_activity(&self, record: &crate::activity::ActivityRecord) -> StoreResult<()>;
    async fn activity(
        &self,
        query: &crate::activity::ActivityQuery,
    ) -> StoreResult<Vec<crate::activity::ActivityRecord>>;
    /// Deletes activity records older than `before`; returns how many.
    async fn prune_activity(&self, before: OffsetDateTime) -> StoreResult<u64>;
    /// Writes a batch of sign-in records in one transaction.
    async fn insert_sign_ins(&self, records: &[crate::signins::SignInRecord]) -> StoreResult<()>;
    async fn sign_ins(
        &self,
        query: &crate::signins::SignInQuery,
    ) -> StoreResult<Vec<crate::signins::SignInRecord>>;
    /// Deletes sign-in records older than `before`; returns how many.
    async fn prune_sign_ins(&self, before: OffsetDateTime) -> StoreResult<u64>;
}

/// Everything the server needs from storage.
#[async_trait]
pub trait Store:
    DirectoryStore
    + KeyStore
    + GrantStore
    + RbacStore
    + ResourceStore
    + FlowStore
    + ModelStore
    + ServiceStore
    + ApplicationStore
    + EndpointStore
    + CodeStore
    + AuditStore
    + crate::changes::ChangeStore
    + crate::lockout::AttemptStore
    + Send
    + Sync
    + 'static
{
    /// A cheap round trip, for readiness.
    async fn ping(&self) -> StoreResult<()>;
}
