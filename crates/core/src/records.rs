//! Directory records as the domain sees them. Secrets appear here only as hashes, private keys
//! only encrypted.

use time::OffsetDateTime;

use crate::ids::{
    AppId, GrantFamilyId, KeyId, ObjectId, RoleAssignmentId, RoleDefinitionId, SecretId,
    SubscriptionId, TenantId, WorkspaceId,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    /// Lower-case domain name, e.g. `mlgate.local`; accepted wherever a tenant id is.
    pub domain: String,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub tenant_id: TenantId,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub object_id: ObjectId,
    pub tenant_id: TenantId,
    /// Lower-case `name@domain`.
    pub user_principal_name: String,
    pub display_name: String,
    /// An argon2id PHC string.
    pub password_hash: String,
    pub account_enabled: bool,
    /// Directory administrators manage every service principal of their tenant.
    pub is_admin: bool,
    /// Sign-in is refused (AADSTS50055) until the user sets a new password.
    pub force_change_password: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePrincipal {
    pub object_id: ObjectId,
    pub app_id: AppId,
    pub tenant_id: TenantId,
    pub display_name: String,
    pub account_enabled: bool,
    /// A public client (like the CLI) has no secret and cannot use client credentials.
    pub public_client: bool,
    /// Who created it; the owner and directory administrators may manage it.
    pub owner: Option<ObjectId>,
    pub created_at: OffsetDateTime,
}

/// A client secret, stored only as a SHA-256 digest (see [`crate::secrets`] for why not argon2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSecret {
    pub id: SecretId,
    pub principal: ObjectId,
    pub digest: [u8; 32],
    /// The first three characters of the secret, as Azure shows them.
    pub hint: String,
    pub display_name: String,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published in JWKS, not yet signing: relying parties learn it before they meet it.
    Next,
    /// Signing, and published.
    Active,
    /// No longer signing; published until the last token it signed has expired.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "next" => Some(KeyState::Next),
            "active" => Some(KeyState::Active),
            "retired" => Some(KeyState::Retired),
            _ => None,
        }
    }
}

/// A token-signing key as stored: the PKCS#8 private key sealed under the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: KeyId,
    pub state: KeyState,
    /// `nonce || ciphertext || tag`, AES-256-GCM with the kid as associated data.
    pub sealed_private_key: Vec<u8>,
    /// The uncompressed P-256 public point (65 bytes).
    pub public_key: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub retired_at: Option<OffsetDateTime>,
}

/// A refresh token, stored as the SHA-256 digest of its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshGrant {
    pub digest: [u8; 32],
    pub family: GrantFamilyId,
    pub tenant_id: TenantId,
    pub subject: ObjectId,
    pub client_id: AppId,
    pub resource: String,
    pub scope: String,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// Set when the token was exchanged; a second exchange is reuse.
    pub used_at: Option<OffsetDateTime>,
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceGroup {
    pub subscription_id: SubscriptionId,
    /// As first spelled; looked up case-insensitively.
    pub name: String,
    pub location: String,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub subscription_id: SubscriptionId,
    pub resource_group: String,
    pub name: String,
    pub location: String,
    pub description: String,
    pub friendly_name: String,
    pub created_at: OffsetDateTime,
    pub created_by: ObjectId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalType {
    User,
    ServicePrincipal,
}

impl PrincipalType {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalType::User => "User",
            PrincipalType::ServicePrincipal => "ServicePrincipal",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "User" => Some(Self::User),
            "ServicePrincipal" => Some(Self::ServicePrincipal),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignmentRecord {
    pub id: RoleAssignmentId,
    pub tenant_id: TenantId,
    pub principal_id: ObjectId,
    pub principal_type: PrincipalType,
    pub role_id: RoleDefinitionId,
    /// As given (keywords normalised); compared lower-cased.
    pub scope: String,
    pub created_at: OffsetDateTime,
    pub created_by: Option<ObjectId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    Pending,
    Approved,
    Denied,
    /// Tokens were issued; the device code cannot be used again.
    Consumed,
}

impl DeviceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Consumed => "consumed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "approved" => Some(Self::Approved),
            "denied" => Some(Self::Denied),
            "consumed" => Some(Self::Consumed),
            _ => None,
        }
    }
}

/// A device authorization (RFC 8628): the device code is stored as a digest, the user code as
/// a keyed digest (HMAC under a key derived from the master key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuthorization {
    pub digest: [u8; 32],
    /// `MasterKey::user_code_digest` of the normalised code (upper case, no separator).
    pub user_code_digest: [u8; 32],
    pub tenant_id: TenantId,
    pub client_id: AppId,
    pub resource: String,
    /// The v2 scope to echo; `None` on the v1 endpoint.
    pub scope: Option<String>,
    pub v1: bool,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub interval_secs: i64,
    pub state: DeviceState,
    pub user_id: Option<ObjectId>,
    pub last_poll_at: Option<OffsetDateTime>,
}

/// An authorization code bound to its client, redirect URI and PKCE challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub digest: [u8; 32],
    pub tenant_id: TenantId,
    pub client_id: AppId,
    pub user_id: ObjectId,
    pub redirect_uri: String,
    /// base64url(SHA-256(code_verifier)).
    pub code_challenge: String,
    pub resource: String,
    pub scope: Option<String>,
    pub nonce: Option<String>,
    pub v1: bool,
    pub expires_at: OffsetDateTime,
    pub used: bool,
}

/// One file of a registered model: its path inside the model and its content address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelFile {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// A registered model version; versions count up from 1 per name and workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelVersion {
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub version: i64,
    pub description: String,
    pub tags: std::collections::BTreeMap<String, String>,
    pub files: Vec<ModelFile>,
    pub created_at: OffsetDateTime,
    pub created_by: ObjectId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    Transitioning,
    Healthy,
    Unhealthy,
    Failed,
}

impl ServiceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transitioning => "Transitioning",
            Self::Healthy => "Healthy",
            Self::Unhealthy => "Unhealthy",
            Self::Failed => "Failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Transitioning" => Some(Self::Transitioning),
            "Healthy" => Some(Self::Healthy),
            "Unhealthy" => Some(Self::Unhealthy),
            "Failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// A deployed web service: a model version, how to run it, and where it is in its life.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub workspace_id: WorkspaceId,
    pub model_name: String,
    pub model_version: i64,
    /// Azure's inference configuration, as given (validated by the service use case).
    pub inference_config: serde_json::Value,
    /// Azure's deployment configuration, as given.
    pub deployment_config: serde_json::Value,
    pub state: ServiceState,
    pub error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub created_by: ObjectId,
}

/// A web service's two keys, each sealed (AES-256-GCM under the master key, bound to the
/// service's name and the key's slot). They are sealed rather than hashed because callers
/// allowed `listKeys/action` read them back.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedServiceKeys {
    pub primary: Vec<u8>,
    pub secondary: Vec<u8>,
    pub updated_at: OffsetDateTime,
}

impl std::fmt::Debug for SealedServiceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedServiceKeys(..)")
    }
}

/// A custom role as stored: its Azure JSON, re-validated when loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomRoleRecord {
    pub id: RoleDefinitionId,
    pub tenant_id: TenantId,
    pub name: String,
    pub definition_json: String,
    pub created_at: OffsetDateTime,
}

/// An application registration, Graph's `application` object: its own object id, the appId
/// its service principal shares, and secrets of its own (`addPassword` on the application).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub object_id: ObjectId,
    pub app_id: AppId,
    pub tenant_id: TenantId,
    pub display_name: String,
    /// Who created it; the owner and directory administrators may manage it.
    pub owner: Option<ObjectId>,
    pub created_at: OffsetDateTime,
}

/// An online endpoint (the Azure ML SDK v2's name for a web service): the service of the same
/// name seen through Azure's newer API. It may exist before its one deployment, which is that
/// service; this record keeps what the service does not (the endpoint's own settings, the
/// deployment's name and the Azure settings it was given).
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineEndpoint {
    pub name: String,
    pub workspace_id: WorkspaceId,
    pub auth_mode: crate::services::AuthMode,
    pub description: String,
    pub tags: std::collections::BTreeMap<String, String>,
    /// The deployment's name while the endpoint has one.
    pub deployment: Option<String>,
    /// The deployment's Azure settings as given (instance type, environment, code), echoed back.
    pub deployment_spec: Option<serde_json::Value>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub created_by: ObjectId,
}

/// A version of a code asset: a source folder whose files sit in the blob store, uploaded
/// through a signed URL from `startPendingUpload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeVersion {
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub version: String,
    /// The client's content hash (azure-ai-ml's `hash_sha256`), so it can find an upload again.
    pub hash: Option<String>,
    /// Where the folder was uploaded (a URL of this server's blob face).
    pub code_uri: String,
    pub files: Vec<ModelFile>,
    pub is_anonymous: bool,
    pub description: String,
    pub tags: std::collections::BTreeMap<String, String>,
    pub created_at: OffsetDateTime,
    pub created_by: ObjectId,
}

/// A file put through a signed upload URL, waiting for a code version to claim it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedBlob {
    /// The upload area (the URL's container).
    pub upload: String,
    pub workspace_id: WorkspaceId,
    pub path: String,
    pub sha256: String,
    pub size: u64,
    /// `x-ms-meta-*` values.
    pub metadata: std::collections::BTreeMap<String, String>,
    pub created_at: OffsetDateTime,
}
