//! # mlgate-client: the Rust SDK
//!
//! A thin, typed client over `mlgate-proto`: token requests (OAuth v2 endpoint), the directory
//! API, subscriptions, resource groups and workspaces, RBAC, models (`models`) and web
//! services; [`workspace`] (config.json, service-principal and interactive authentication)
//! and [`webservice`] (`Model::deploy`, `Webservice`) mirror the Azure ML SDK. Errors decode the server's own error bodies, so callers can match on
//! the OAuth error or the API's stable code.

pub mod models;
pub use monitor::LogPage;
mod monitor;
mod rbac;
mod resources;
mod services;
pub mod webservice;
pub mod workspace;

use std::time::Duration;

use mlgate_proto::{
    AddMember, ApiErrorBody, CreateServicePrincipal, CreateTenant, CreateUser, DeviceCodeResponse,
    Me, OAuthErrorBody, Page, ResetCredential, ServicePrincipal, ServicePrincipalSecret,
    Subscription, TenantInfo, TokenResponse, User,
};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the server: {0}")]
    Transport(String),
    #[error("{} ({status}): {}", body.error, body.error_description)]
    OAuth { status: StatusCode, body: Box<OAuthErrorBody> },
    #[error("{} ({status}): {}", body.error.code, body.error.message)]
    Api { status: StatusCode, body: Box<ApiErrorBody> },
    #[error("unexpected answer ({status})")]
    Unexpected { status: StatusCode },
    #[error("{0}")]
    Config(String),
}

impl ClientError {
    /// The HTTP status of a server-side error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::OAuth { status, .. }
            | ClientError::Api { status, .. }
            | ClientError::Unexpected { status } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// `base_url` is the server (`https://host:port`); `ca_pem`, when given, is the only trust
    /// anchor (mlgate's local CA).
    pub fn new(base_url: &str, ca_pem: Option<&[u8]>) -> Result<Self> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("mlgate-client/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ClientError::Config(format!("the CA file is not PEM: {e}")))?;
            builder = builder.tls_certs_only(certs);
        }
        let http = builder.build().map_err(|e| ClientError::Config(e.to_string()))?;
        Ok(Self { http, base: base_url.trim_end_matches('/').to_string() })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub(crate) async fn send_empty(&self, req: RequestBuilder) -> Result<()> {
        let resp = req.send().await.map_err(|e| ClientError::Transport(describe(&e)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let bytes = resp.bytes().await.unwrap_or_default();
        if let Ok(body) = serde_json::from_slice::<OAuthErrorBody>(&bytes) {
            return Err(ClientError::OAuth { status, body: Box::new(body) });
        }
        match serde_json::from_slice::<ApiErrorBody>(&bytes) {
            Ok(body) => Err(ClientError::Api { status, body: Box::new(body) }),
            Err(_) => Err(ClientError::Unexpected { status }),
        }
    }

    pub(crate) async fn send<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T> {
        let resp = req.send().await.map_err(|e| ClientError::Transport(describe(&e)))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ClientError::Transport(describe(&e)))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|_| ClientError::Unexpected { status });
        }
        if let Ok(body) = serde_json::from_slice::<OAuthErrorBody>(&bytes) {
            return Err(ClientError::OAuth { status, body: Box::new(body) });
        }
        if let Ok(body) = serde_json::from_slice::<ApiErrorBody>(&bytes) {
            return Err(ClientError::Api { status, body: Box::new(body) });
        }
        Err(ClientError::Unexpected { status })
    }

    pub(crate) fn api(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(token)
    }

    /// A raw v2 token request with the given form fields.
    pub async fn token(&self, tenant: &str, form: &[(&str, &str)]) -> Result<TokenResponse> {
        let url = format!("{}/{tenant}/oauth2/v2.0/token", self.base);
        self.send(self.http.post(url).form(form)).await
    }

    pub async fn client_credentials(
        &self,
        tenant: &str,
        client_id: &str,
        secret: &str,
        scope: &str,
    ) -> Result<TokenResponse> {
        self.token(
            tenant,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("scope", scope),
            ],
        )
        .await
    }

    /// Resource-owner password grant as the public CLI client (`az login -u -p`).
    pub async fn password(
        &self,
        tenant: &str,
        username: &str,
        password: &str,
        scope: &str,
    ) -> Result<TokenResponse> {
        let scope = format!("{scope} offline_access openid profile");
        self.token(
            tenant,
            &[
                ("grant_type", "password"),
                ("client_id", mlgate_proto::CLI_CLIENT_ID),
                ("username", username),
                ("password", password),
                ("scope", &scope),
            ],
        )
        .await
    }

    pub async fn refresh(
        &self,
        tenant: &str,
        refresh_token: &str,
        scope: &str,
    ) -> Result<TokenResponse> {
        let scope = format!("{scope} offline_access");
        self.token(
            tenant,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", mlgate_proto::CLI_CLIENT_ID),
                ("refresh_token", refresh_token),
                ("scope", &scope),
            ],
        )
        .await
    }

    /// Starts a device-code sign-in as the CLI's public client.
    pub async fn device_code(&self, tenant: &str, scope: &str) -> Result<DeviceCodeResponse> {
        let url = format!("{}/{tenant}/oauth2/v2.0/devicecode", self.base);
        let form = [("client_id", mlgate_proto::CLI_CLIENT_ID), ("scope", scope)];
        self.send(self.http.post(url).form(&form)).await
    }

    /// Polls until the person approves or denies, the code expires, or `deadline` passes;
    /// `authorization_pending` means "wait `interval` and ask again".
    pub async fn wait_for_device_code(
        &self,
        tenant: &str,
        device: &DeviceCodeResponse,
    ) -> Result<TokenResponse> {
        let interval = Duration::from_secs(device.interval.clamp(1, 60) as u64);
        let deadline =
            std::time::Instant::now() + Duration::from_secs(device.expires_in.max(1) as u64);
        loop {
            tokio::time::sleep(interval).await;
            let r = self
                .token(
                    tenant,
                    &[
                        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                        ("client_id", mlgate_proto::CLI_CLIENT_ID),
                        ("device_code", &device.device_code),
                    ],
                )
                .await;
            match r {
                Err(ClientError::OAuth { body, .. })
                    if body.error == "authorization_pending"
                        && std::time::Instant::now() < deadline => {}
                other => return other,
            }
        }
    }

    /// Redeems an authorization code with its PKCE verifier (the CLI's browser sign-in).
    pub async fn authorization_code(
        &self,
        tenant: &str,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
        scope: &str,
    ) -> Result<TokenResponse> {
        self.token(
            tenant,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", mlgate_proto::CLI_CLIENT_ID),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", code_verifier),
                ("scope", scope),
            ],
        )
        .await
    }

    /// RFC 7009 revocation of a refresh token (sign-out).
    pub async fn revoke(&self, tenant: &str, token: &str) -> Result<()> {
        let url = format!("{}/{tenant}/oauth2/v2.0/revoke", self.base);
        self.send_empty(
            self.http
                .post(url)
                .form(&[("token", token), ("client_id", mlgate_proto::CLI_CLIENT_ID)]),
        )
        .await
    }

    pub async fn me(&self, token: &str) -> Result<Me> {
        self.send(self.api(Method::GET, "/api/v1/me", token)).await
    }

    pub async fn subscriptions(&self, token: &str) -> Result<Vec<Subscription>> {
        let page: Page<Subscription> =
            self.send(self.api(Method::GET, "/subscriptions", token)).await?;
        Ok(page.value)
    }

    pub async fn create_service_principal(
        &self,
        token: &str,
        req: &CreateServicePrincipal,
    ) -> Result<ServicePrincipalSecret> {
        self.send(self.api(Method::POST, "/api/v1/servicePrincipals", token).json(req)).await
    }

    pub async fn service_principal(&self, token: &str, id: &str) -> Result<ServicePrincipal> {
        let path = format!("/api/v1/servicePrincipals/{}", enc(id));
        self.send(self.api(Method::GET, &path, token)).await
    }

    pub async fn service_principals(&self, token: &str) -> Result<Vec<ServicePrincipal>> {
        let page: Page<ServicePrincipal> =
            self.send(self.api(Method::GET, "/api/v1/servicePrincipals", token)).await?;
        Ok(page.value)
    }

    pub async fn set_service_principal_enabled(
        &self,
        token: &str,
        id: &str,
        enabled: bool,
    ) -> Result<ServicePrincipal> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Patch {
            account_enabled: bool,
        }
        let path = format!("/api/v1/servicePrincipals/{}", enc(id));
        self.send(self.api(Method::PATCH, &path, token).json(&Patch { account_enabled: enabled }))
            .await
    }

    pub async fn reset_credential(
        &self,
        token: &str,
        id: &str,
        req: &ResetCredential,
    ) -> Result<ServicePrincipalSecret> {
        let path = format!("/api/v1/servicePrincipals/{}/credentials/reset", enc(id));
        self.send(self.api(Method::POST, &path, token).json(req)).await
    }

    pub async fn create_user(&self, token: &str, req: &CreateUser) -> Result<User> {
        self.send(self.api(Method::POST, "/api/v1/users", token).json(req)).await
    }

    pub async fn users(&self, token: &str) -> Result<Vec<User>> {
        let page: Page<User> = self.send(self.api(Method::GET, "/api/v1/users", token)).await?;
        Ok(page.value)
    }

    pub async fn tenants(&self, token: &str) -> Result<Vec<TenantInfo>> {
        let page: Page<TenantInfo> =
            self.send(self.api(Method::GET, "/api/v1/tenants", token)).await?;
        Ok(page.value)
    }

    pub async fn create_tenant(&self, token: &str, req: &CreateTenant) -> Result<TenantInfo> {
        self.send(self.api(Method::POST, "/api/v1/tenants", token).json(req)).await
    }

    /// Adds a user to the tenant the token was issued for.
    pub async fn add_member(&self, token: &str, req: &AddMember) -> Result<User> {
        self.send(self.api(Method::POST, "/api/v1/tenants/members", token).json(req)).await
    }

    pub async fn delete_service_principal(&self, token: &str, id: &str) -> Result<()> {
        let path = format!("/api/v1/servicePrincipals/{}", enc(id));
        self.send_empty(self.api(Method::DELETE, &path, token)).await
    }
}

/// Path segments are ids; anything else is percent-encoded rather than trusted.
pub(crate) fn enc(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The chain of causes is what explains a TLS or connection failure; the URL holds no secret.
fn describe(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
