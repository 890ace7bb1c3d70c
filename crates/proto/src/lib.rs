//! Wire types shared by the mlgate server, the Rust SDK and the CLI.
//!
//! Only this crate knows the JSON shapes on the wire. It does no I/O, so the server, the SDK and
//! the CLI agree on every field and on every error code by construction.

use serde::{Deserialize, Serialize};

/// The OAuth error body in Azure AD's shape, which every Microsoft client library parses.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OAuthErrorBody {
    pub error: String,
    pub error_description: String,
    #[serde(default)]
    pub error_codes: Vec<u32>,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub trace_id: String,
    #[serde(default)]
    pub correlation_id: String,
}

/// A token endpoint's success body. v1 (ADAL) and v2 (MSAL) answers share this type; fields
/// that one version lacks are left out of the JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenResponse {
    pub token_type: String,
    pub access_token: String,
    /// Seconds; an integer, as azure-identity needs.
    pub expires_in: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_expires_in: Option<i64>,
    /// v1 only: unix seconds, as a string like Azure AD sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// v2 only: the granted scopes, space separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// MSAL's account key (base64url JSON of `uid` and `utid`), on user sign-ins it asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_info: Option<String>,
}

/// The device-authorization answer (RFC 8628 3.2); v1 names the URI `verification_url`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceCodeResponse {
    pub device_code: String,
    pub user_code: String,
    #[serde(alias = "verification_url")]
    pub verification_uri: String,
    pub expires_in: i64,
    pub interval: i64,
    pub message: String,
}

/// The body of every non-OAuth error, in ARM's shape: `{"error": {"code": .., "message": ..}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiErrorBody {
    pub error: ApiErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiErrorDetail {
    /// A stable code from [`codes`].
    pub code: String,
    pub message: String,
}

/// ARM resource ids, built in one place. The parts are used as given: callers that put an id
/// in a URL path percent-encode the parts first.
pub mod arm {
    /// Azure ML's resource provider namespace.
    pub const ML_PROVIDER: &str = "Microsoft.MachineLearningServices";

    /// `/subscriptions/{sub}/resourceGroups/{rg}`.
    pub fn resource_group_id(sub: &str, rg: &str) -> String {
        format!("/subscriptions/{sub}/resourceGroups/{rg}")
    }

    /// `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}`.
    pub fn workspace_id(sub: &str, rg: &str, ws: &str) -> String {
        format!("{}/providers/{ML_PROVIDER}/workspaces/{ws}", resource_group_id(sub, rg))
    }

    /// A workspace's child resource: `{workspace id}/{child}` (`services/{name}`,
    /// `models/{name}/versions/{v}`, ...).
    pub fn workspace_child_id(sub: &str, rg: &str, ws: &str, child: &str) -> String {
        format!("{}/{child}", workspace_id(sub, rg, ws))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn ids_have_azure_shape() {
            assert_eq!(super::resource_group_id("s", "g"), "/subscriptions/s/resourceGroups/g");
            assert_eq!(
                super::workspace_child_id("s", "g", "w", "services/x"),
                "/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices/workspaces/w/services/x"
            );
        }
    }
}

/// Stable error codes of the management API. Clients may match on these strings.
pub mod codes {
    pub const INVALID_AUTHENTICATION_TOKEN: &str = "InvalidAuthenticationToken";
    pub const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
    pub const AUTHORIZATION_FAILED: &str = "AuthorizationFailed";
    pub const NOT_FOUND: &str = "NotFound";
    pub const CONFLICT: &str = "Conflict";
    pub const INVALID_REQUEST: &str = "InvalidRequestContent";
    pub const PAYLOAD_TOO_LARGE: &str = "PayloadTooLarge";
    pub const METHOD_NOT_ALLOWED: &str = "MethodNotAllowed";
    pub const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";
    pub const INTERNAL_ERROR: &str = "InternalServerError";
}

/// Who the caller of the API is, as `GET /api/v1/me` answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    pub object_id: String,
    pub tenant_id: String,
    /// `User` or `ServicePrincipal`.
    #[serde(rename = "type")]
    pub kind: String,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_principal_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The application the token was issued to (for users, the client they signed in with).
    pub client_app_id: String,
    pub audience: String,
    /// Unix seconds.
    pub token_expires_on: i64,
}

/// A password credential's public metadata; the secret itself is shown only once, at creation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PasswordCredential {
    pub key_id: String,
    /// The first three characters of the secret, as Azure shows them.
    pub hint: String,
    pub display_name: String,
    /// RFC 3339.
    pub start_date_time: String,
    #[serde(default)]
    pub end_date_time: Option<String>,
}

/// A service principal as the directory API returns it (Microsoft Graph's field names).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipal {
    pub id: String,
    pub app_id: String,
    pub display_name: String,
    pub account_enabled: bool,
    pub app_owner_organization_id: String,
    /// `Application`.
    pub service_principal_type: String,
    pub public_client: bool,
    pub password_credentials: Vec<PasswordCredential>,
    /// RFC 3339.
    pub created_date_time: String,
}

/// A user as the directory API returns it (Microsoft Graph's field names). No password field.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: String,
    pub account_enabled: bool,
    /// The next sign-in must set a new password first (AADSTS50055 until then).
    #[serde(default)]
    pub force_change_password_next_sign_in: bool,
}

/// `PATCH /api/v1/users/{id}` (`az ad user update`): only the fields given change.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_enabled: Option<bool>,
    /// A new password set by an administrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_change_password_next_sign_in: Option<bool>,
}

/// `POST /api/v1/changePassword`: a user sets a new password by proving the current one (no
/// token needed, so a user whose password must change can).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangePassword {
    pub user_principal_name: String,
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CreateUser {
    pub user_principal_name: String,
    pub display_name: String,
    pub password: String,
    #[serde(default)]
    pub force_change_password_next_sign_in: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TenantInfo {
    pub tenant_id: String,
    pub domain: String,
    pub display_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CreateTenant {
    pub domain: String,
    pub display_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AddMember {
    /// User principal name or object id.
    pub user: String,
    #[serde(default)]
    pub admin: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModelFile {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// A registered model version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ModelVersion {
    /// `{workspace id}/models/{name}/versions/{version}`.
    pub id: String,
    pub name: String,
    pub version: i64,
    pub description: String,
    pub tags: std::collections::BTreeMap<String, String>,
    pub files: Vec<ModelFile>,
    pub created_time: String,
    pub created_by: String,
}

/// `POST .../models/{name}/versions`: files must have been uploaded to `.../blobs/{sha256}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct RegisterModel {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    pub files: Vec<ModelFile>,
}

/// A deployed web service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub id: String,
    pub name: String,
    /// Transitioning, Healthy, Unhealthy or Failed.
    pub state: String,
    /// `NAME:VERSION`.
    pub model: String,
    pub compute_type: String,
    pub scoring_uri: String,
    /// Key auth in force (Azure's field).
    #[serde(default)]
    pub auth_enabled: bool,
    /// Service-token auth in force (Azure's field).
    #[serde(default)]
    pub token_auth_enabled: bool,
    /// `none`, `key`, `token` or `aad_token`: what a scoring request must carry.
    #[serde(default)]
    pub auth_mode: String,
    #[serde(default)]
    pub error: Option<String>,
    pub inference_config: serde_json::Value,
    pub deployment_config: serde_json::Value,
    pub created_time: String,
    pub updated_time: String,
}

/// `POST .../services/{name}/listKeys` (and `regenerateKeys`'s answer).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceKeys {
    pub primary_key: String,
    pub secondary_key: String,
}

impl std::fmt::Debug for ServiceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceKeys(..)")
    }
}

/// `POST .../services/{name}/regenerateKeys`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RegenerateKey {
    /// `Primary` or `Secondary`.
    pub key_type: String,
}

/// `POST .../services/{name}/token`: Azure ML's service token answer.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceToken {
    pub access_token: String,
    pub token_type: String,
    /// Unix seconds.
    pub expiry_on: i64,
    /// Unix seconds after which a new token should be fetched.
    pub refresh_after: i64,
}

impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ServiceToken(expiry_on: {}, refresh_after: {})",
            self.expiry_on, self.refresh_after
        )
    }
}

/// `PUT .../services/{name}`: the deploy (or update) request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeployService {
    /// `NAME:VERSION` of a registered model.
    pub model: String,
    pub inference_config: serde_json::Value,
    #[serde(default = "empty_object")]
    pub deployment_config: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// A paged list, ARM and Graph style.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Page<T> {
    pub value: Vec<T>,
    #[serde(rename = "nextLink", default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CreateServicePrincipal {
    pub display_name: String,
    /// Lifetime of the first secret in years; `None` means the default (one year).
    #[serde(default)]
    pub years: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResetCredential {
    /// Keep the existing secrets and add one (rotation without downtime).
    #[serde(default)]
    pub append: bool,
    #[serde(default)]
    pub years: Option<u32>,
    /// RFC 3339 end date; wins over `years`.
    #[serde(default)]
    pub end_date: Option<String>,
}

/// The one answer that carries a secret in clear: `az ad sp create-for-rbac`'s shape, plus ids.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipalSecret {
    pub app_id: String,
    pub object_id: String,
    pub display_name: String,
    pub password: String,
    pub tenant: String,
    pub key_id: String,
    #[serde(default)]
    pub end_date_time: Option<String>,
}

/// `create-for-rbac --sdk-auth` output; the URLs point at the mlgate server itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SdkAuth {
    pub client_id: String,
    pub client_secret: String,
    pub subscription_id: String,
    pub tenant_id: String,
    pub active_directory_endpoint_url: String,
    pub resource_manager_endpoint_url: String,
    pub active_directory_graph_resource_id: String,
    pub sql_management_endpoint_url: String,
    pub gallery_endpoint_url: String,
    pub management_endpoint_url: String,
}

impl SdkAuth {
    /// The file for a principal of the server at `base` (no trailing slash): the sign-in
    /// endpoint is the server itself, and every management endpoint is `{base}/`.
    pub fn new(
        client_id: String,
        client_secret: String,
        subscription_id: String,
        tenant_id: String,
        base: &str,
    ) -> Self {
        let with_slash = format!("{base}/");
        Self {
            client_id,
            client_secret,
            subscription_id,
            tenant_id,
            active_directory_endpoint_url: base.to_string(),
            resource_manager_endpoint_url: with_slash.clone(),
            active_directory_graph_resource_id: with_slash.clone(),
            sql_management_endpoint_url: with_slash.clone(),
            gallery_endpoint_url: with_slash.clone(),
            management_endpoint_url: with_slash,
        }
    }
}

/// A subscription, as ARM's `GET /subscriptions` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// `/subscriptions/{subscriptionId}`.
    pub id: String,
    pub subscription_id: String,
    pub tenant_id: String,
    pub display_name: String,
    pub state: String,
}

/// The well-known application id of the Azure CLI, which the mlgate CLI signs in as, so that
/// `az`, azure-identity's developer credentials and `mlgate` share one public client.
pub const CLI_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

/// The application id of mlgate's web console (`/console`), a first-party public client
/// present in every tenant whose only redirect URI is the server's own `/console/callback`.
pub const CONSOLE_CLIENT_ID: &str = "6d1f3c0e-4a8b-4f5e-9c2d-7b3a1e0c5d91";

/// The resource the CLI asks for by default: ARM's identifier, which mlgate's API accepts.
pub const DEFAULT_RESOURCE: &str = "https://management.azure.com/";

/// A role definition as Azure writes it (`az role definition create --role-definition`);
/// camelCase spellings are accepted too.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RoleDefinitionFile {
    #[serde(alias = "name", alias = "roleName", alias = "RoleName")]
    pub name: String,
    #[serde(default, alias = "id", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, alias = "isCustom")]
    pub is_custom: Option<bool>,
    #[serde(default, alias = "description")]
    pub description: String,
    #[serde(default, alias = "actions")]
    pub actions: Vec<String>,
    #[serde(default, alias = "notActions")]
    pub not_actions: Vec<String>,
    #[serde(default, alias = "dataActions")]
    pub data_actions: Vec<String>,
    #[serde(default, alias = "notDataActions")]
    pub not_data_actions: Vec<String>,
    #[serde(default, alias = "assignableScopes")]
    pub assignable_scopes: Vec<String>,
}

/// A resource group, in ARM's shape.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResourceGroup {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub location: String,
    pub properties: ProvisioningProperties,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProvisioningProperties {
    pub provisioning_state: String,
}

/// `PUT` body of a resource group or workspace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct PutResource {
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub properties: Option<WorkspacePutProperties>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkspacePutProperties {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub friendly_name: Option<String>,
}

/// A workspace, in ARM's shape (`Microsoft.MachineLearningServices/workspaces`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub location: String,
    pub properties: WorkspaceProperties,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceProperties {
    pub workspace_id: String,
    pub description: String,
    pub friendly_name: String,
    pub creation_time: String,
    pub provisioning_state: String,
    /// The mlgate server that serves this workspace's API.
    pub discovery_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    pub id: String,
    pub name: String,
    pub principal_id: String,
    pub principal_type: String,
    pub role_definition_id: String,
    pub role_definition_name: String,
    pub scope: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CreateRoleAssignment {
    /// Object id, application id or user principal name.
    pub assignee: String,
    /// Role name or id.
    pub role: String,
    pub scope: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CheckAccess {
    pub assignee: String,
    pub action: String,
    pub scope: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CheckAccessResult {
    pub allowed: bool,
    pub principal_id: String,
    pub action: String,
    pub scope: String,
    #[serde(default)]
    pub decided_by: Option<RoleAssignment>,
    /// Each other assignment of the principal and why it did not grant the action.
    #[serde(default)]
    pub considered: Vec<ConsideredAssignment>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConsideredAssignment {
    pub assignment: RoleAssignment,
    pub reason: String,
}
