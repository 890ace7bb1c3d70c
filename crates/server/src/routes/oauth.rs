//! The token endpoints (v1 and v2). This module owns the wire format: form parsing, client
//! authentication by HTTP Basic or form fields, size limits, and the shape of the answer.

use axum::Json;
use axum::body::to_bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mlgate_core::authority::{Aadsts, Endpoint, Grant, GrantError, OAuthErrorKind, TokenRequest};
use mlgate_proto::TokenResponse;

use crate::client_addr::ClientAddr;
use crate::error::{OAuthFailure, no_store_headers};
use crate::state::AppState;

/// Token requests are a few hundred bytes; anything past this is refused unread.
pub const MAX_TOKEN_BODY: usize = 64 * 1024;

pub async fn token_v1(
    state: State<AppState>,
    tenant: Path<String>,
    addr: ClientAddr,
    req: Request,
) -> Response {
    Box::pin(token(state, tenant, addr, req, Endpoint::V1)).await
}

pub async fn token_v2(
    state: State<AppState>,
    tenant: Path<String>,
    addr: ClientAddr,
    req: Request,
) -> Response {
    Box::pin(token(state, tenant, addr, req, Endpoint::V2)).await
}

/// Reads a form body with the OAuth endpoints' size limit and content-type rule.
async fn read_body(req: Request) -> Result<axum::body::Bytes, OAuthFailure> {
    let form_ok = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
        .unwrap_or(false);
    let bytes = to_bytes(req.into_body(), MAX_TOKEN_BODY).await.map_err(|_| {
        OAuthFailure::new(GrantError::invalid_request("The request body is too large."))
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    })?;
    if !form_ok {
        return Err(OAuthFailure::new(GrantError::invalid_request(
            "The request body must be 'application/x-www-form-urlencoded'.",
        )));
    }
    Ok(bytes)
}

async fn read_form(req: Request) -> Result<Vec<(String, String)>, OAuthFailure> {
    let bytes = read_body(req).await?;
    Ok(form_urlencoded::parse(&bytes).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
}

fn field(form: &[(String, String)], name: &str) -> Option<String> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty())
}

pub async fn devicecode_v1(state: State<AppState>, tenant: Path<String>, req: Request) -> Response {
    devicecode(state, tenant, req, Endpoint::V1).await
}

pub async fn devicecode_v2(state: State<AppState>, tenant: Path<String>, req: Request) -> Response {
    devicecode(state, tenant, req, Endpoint::V2).await
}

/// RFC 8628 3.1-3.2, with the field names each client version expects.
async fn devicecode(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    req: Request,
    endpoint: Endpoint,
) -> Response {
    let result = async {
        let form = read_form(req).await?;
        let issued = state
            .authority
            .start_device_flow(
                &tenant,
                endpoint,
                field(&form, "client_id").as_deref(),
                field(&form, "resource"),
                field(&form, "scope"),
            )
            .await
            .map_err(OAuthFailure::new)?;
        let uri_field =
            if endpoint == Endpoint::V1 { "verification_url" } else { "verification_uri" };
        Ok::<_, OAuthFailure>(serde_json::json!({
            "device_code": issued.device_code,
            "user_code": issued.user_code,
            uri_field: issued.verification_uri,
            "expires_in": issued.expires_in,
            "interval": issued.interval,
            "message": issued.message,
        }))
    }
    .await;
    match result {
        Ok(body) => (no_store_headers(), Json(body)).into_response(),
        Err(f) => f.into_response(),
    }
}

/// RFC 7009: always 200 for a well-formed request, whether or not the token was known.
pub async fn revoke(State(state): State<AppState>, req: Request) -> Response {
    let result = async {
        let form = read_form(req).await?;
        let token = field(&form, "token").ok_or_else(|| {
            OAuthFailure::new(GrantError::invalid_request(
                "The request body must contain the following parameter: 'token'.",
            ))
        })?;
        state.authority.revoke(&token).await.map_err(OAuthFailure::new)
    }
    .await;
    match result {
        Ok(()) => (no_store_headers(), StatusCode::OK).into_response(),
        Err(f) => f.into_response(),
    }
}

/// RFC 7662, for confidential clients (client_secret_post or HTTP Basic).
pub async fn introspect(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    req: Request,
) -> Response {
    let basic =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let result = async {
        let form = read_form(req).await?;
        let token = field(&form, "token").ok_or_else(|| {
            OAuthFailure::new(GrantError::invalid_request(
                "The request body must contain the following parameter: 'token'.",
            ))
        })?;
        let (mut id, mut secret) = (field(&form, "client_id"), field(&form, "client_secret"));
        if let Some((i, s)) = basic.as_deref().and_then(parse_basic) {
            id = Some(i);
            secret = Some(s);
        }
        let creds = TokenRequest {
            endpoint: Endpoint::V2,
            grant: Grant::ClientCredentials,
            client_id: id,
            client_secret: secret,
            resource: None,
            scope: None,
            client_info: false,
        };
        state.authority.introspect(&tenant, &creds, &token).await.map_err(OAuthFailure::new)
    }
    .await;
    match result {
        Ok(i) => {
            let mut body = serde_json::json!({ "active": i.active });
            if i.active
                && let Some(obj) = body.as_object_mut()
            {
                let fields: [(&str, Option<serde_json::Value>); 10] = [
                    ("token_type", i.token_type.map(Into::into)),
                    ("client_id", i.client_id.map(Into::into)),
                    ("sub", i.sub.map(Into::into)),
                    ("tid", i.tid.map(Into::into)),
                    ("aud", i.aud.map(Into::into)),
                    ("iss", i.iss.map(Into::into)),
                    ("scope", i.scope.map(Into::into)),
                    ("username", i.username.map(Into::into)),
                    ("exp", i.exp.map(Into::into)),
                    ("iat", i.iat.map(Into::into)),
                ];
                for (k, v) in fields {
                    if let Some(v) = v {
                        obj.insert(k.into(), v);
                    }
                }
            }
            (no_store_headers(), Json(body)).into_response()
        }
        Err(f) => f.into_response(),
    }
}

fn correlation_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| uuid::Uuid::parse_str(v).ok())
        .map(|u| u.to_string())
}

/// Boxed by its two routes: its future is some 5 KiB, and axum's handler, the middleware and
/// the router above it would each move it; boxed, they move a pointer (issue 15).
async fn token(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    ClientAddr(source): ClientAddr,
    req: Request,
    endpoint: Endpoint,
) -> Response {
    let correlation = correlation_id(req.headers());
    let basic =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let used_basic = basic.is_some();
    // An index into `metrics::GRANTS`; "unknown" until the form names a grant.
    let mut grant = crate::metrics::GRANTS.len() - 1;
    let mut attempt = None;
    let result = async {
        let bytes = read_body(req).await?;
        let request = parse_form(&bytes, basic.as_deref(), endpoint).map_err(OAuthFailure::new)?;
        grant = match request.grant {
            Grant::ClientCredentials => 0,
            Grant::Password { .. } => 1,
            Grant::RefreshToken { .. } => 2,
            Grant::DeviceCode { .. } => 3,
            Grant::AuthorizationCode { .. } => 4,
        };
        if state.signins.enabled() {
            attempt = Some(sign_in_attempt(&state, &tenant, &request));
        }
        state.authority.token(&tenant, request, source).await.map_err(OAuthFailure::new)
    }
    .await;
    record_token_metrics(&state, grant, &result);
    if let Some(mut a) = attempt {
        if let Ok(issued) = &result {
            let to = &issued.to;
            match &to.user_principal_name {
                Some(upn) => {
                    a.user_id = Some(to.object_id.to_string());
                    a.username = Some(upn.clone());
                }
                None => {
                    a.service_principal_id = Some(to.object_id.to_string());
                    a.app_display_name = to.app_display_name.clone();
                }
            }
        }
        let error =
            result.as_ref().err().map(|f| (f.error.code.number(), f.error.description.as_str()));
        // A device-code poll before the person signed in is not a sign-in.
        if !matches!(
            result.as_ref().err().map(|f| f.error.kind),
            Some(OAuthErrorKind::AuthorizationPending)
        ) {
            let now = state.authority.clock().now();
            state.signins.record_grant(a, now, source, correlation.clone(), error);
        }
    }
    match result {
        Ok(issued) => {
            let v1 = endpoint == Endpoint::V1;
            let body = TokenResponse {
                token_type: "Bearer".into(),
                access_token: issued.access_token,
                expires_in: issued.expires_in,
                ext_expires_in: Some(issued.expires_in),
                expires_on: v1.then(|| issued.expires_on.to_string()),
                not_before: v1.then(|| issued.not_before.to_string()),
                resource: v1.then_some(issued.resource),
                scope: issued.scope,
                refresh_token: issued.refresh_token,
                id_token: issued.id_token,
                client_info: issued.client_info,
            };
            (no_store_headers(), Json(body)).into_response()
        }
        Err(mut failure) => {
            failure.correlation_id = correlation;
            failure.basic_challenge = used_basic;
            failure.into_response()
        }
    }
}

/// Counts the request by grant and result, and a failed client secret or password as a
/// failed sign-in (AADSTS50053, refused before any password check, as locked).
fn record_token_metrics<T>(state: &AppState, grant: usize, result: &Result<T, OAuthFailure>) {
    use crate::metrics::SignInFailure;
    let m = &state.metrics;
    match result {
        Ok(_) => m.token(grant, "success"),
        Err(f) => {
            m.token(grant, f.error.kind.as_str());
            match f.error.kind {
                OAuthErrorKind::InvalidClient => m.sign_in_failure(SignInFailure::ClientSecret),
                OAuthErrorKind::InvalidGrant if grant == 1 && f.error.is_locked() => {
                    m.sign_in_failure(SignInFailure::Locked)
                }
                OAuthErrorKind::InvalidGrant if grant == 1 => {
                    m.sign_in_failure(SignInFailure::Password)
                }
                _ => {}
            }
        }
    }
}

/// What the sign-in log records of a token request (never its secrets).
fn sign_in_attempt(state: &AppState, tenant: &str, r: &TokenRequest) -> crate::audit::Attempt {
    let (grant, username) = match &r.grant {
        Grant::ClientCredentials => ("client_credentials", None),
        Grant::Password { username, .. } => ("password", Some(username.clone())),
        Grant::RefreshToken { .. } => ("refresh_token", None),
        Grant::DeviceCode { .. } => ("device_code", None),
        Grant::AuthorizationCode { .. } => ("authorization_code", None),
    };
    crate::audit::Attempt {
        tenant: state.authority.directory().resolve_tenant_id(tenant),
        grant,
        interactive: false,
        client_id: r.client_id.clone(),
        username,
        resource: r.resource.clone().or_else(|| r.scope.clone()),
        ..Default::default()
    }
}

/// Parses a token request. Unknown fields (telemetry, `api-version`, `x-client-*`) are
/// ignored; a repeated known field is an error (RFC 6749 3.2).
fn parse_form(
    body: &[u8],
    basic: Option<&str>,
    endpoint: Endpoint,
) -> Result<TokenRequest, GrantError> {
    const KNOWN: &[&str] = &[
        "grant_type",
        "client_id",
        "client_secret",
        "resource",
        "scope",
        "username",
        "password",
        "refresh_token",
        "client_info",
        "client_assertion",
        "client_assertion_type",
        "device_code",
        "code",
        "redirect_uri",
        "code_verifier",
    ];
    let mut fields: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(body) {
        if KNOWN.contains(&k.as_ref()) {
            if fields.iter().any(|(seen, _)| seen == k.as_ref()) {
                return Err(GrantError::invalid_request(format!(
                    "The parameter '{k}' was sent more than once."
                )));
            }
            fields.push((k.into_owned(), v.into_owned()));
        }
    }
    let get = |name: &str| {
        fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty())
    };
    let required = |name: &str| {
        get(name).ok_or_else(|| {
            GrantError::invalid_request(format!(
                "The request body must contain the following parameter: '{name}'."
            ))
        })
    };
    if get("client_assertion").is_some() {
        return Err(GrantError::new(
            OAuthErrorKind::InvalidClient,
            Aadsts::ClientAssertionUnsupported,
            "Certificate credentials (client_assertion) are not supported; use a client secret.",
        ));
    }
    let grant = match required("grant_type")?.as_str() {
        "client_credentials" => Grant::ClientCredentials,
        "password" => {
            Grant::Password { username: required("username")?, password: required("password")? }
        }
        "refresh_token" => Grant::RefreshToken { refresh_token: required("refresh_token")? },
        // RFC 8628's URN, Azure's short form; ADAL sends the code as `code`.
        "urn:ietf:params:oauth:grant-type:device_code" | "device_code" => Grant::DeviceCode {
            device_code: get("device_code").or_else(|| get("code")).ok_or_else(|| {
                GrantError::invalid_request(
                    "The request body must contain the following parameter: 'device_code'.",
                )
            })?,
        },
        "authorization_code" => Grant::AuthorizationCode {
            code: required("code")?,
            redirect_uri: get("redirect_uri"),
            code_verifier: get("code_verifier"),
        },
        other => {
            let shown: String = other.chars().take(100).filter(|c| !c.is_control()).collect();
            return Err(GrantError::new(
                OAuthErrorKind::UnsupportedGrantType,
                Aadsts::UnsupportedGrantType,
                format!("The app requested an unsupported grant type '{shown}'."),
            ));
        }
    };
    let (mut client_id, mut client_secret) = (get("client_id"), get("client_secret"));
    if let Some(header) = basic {
        let (id, secret) = parse_basic(header).ok_or_else(|| {
            GrantError::new(
                OAuthErrorKind::InvalidClient,
                Aadsts::InvalidClientSecret,
                "The Authorization header is malformed.",
            )
        })?;
        if client_id.as_ref().is_some_and(|c| *c != id) {
            return Err(GrantError::invalid_request(
                "The client_id in the body differs from the one in the Authorization header.",
            ));
        }
        client_id = Some(id);
        client_secret = Some(secret);
    }
    Ok(TokenRequest {
        endpoint,
        grant,
        client_id,
        client_secret,
        resource: get("resource"),
        scope: get("scope"),
        client_info: get("client_info").as_deref() == Some("1"),
    })
}

/// `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 2.3.1).
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        form_urlencoded::parse(format!("v={s}").as_bytes()).next().map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_parse_and_reject_what_they_should() {
        let ok = parse_form(
            b"grant_type=client_credentials&client_id=a&client_secret=b&x-client-SKU=py&resource=r",
            None,
            Endpoint::V1,
        )
        .unwrap();
        assert_eq!(ok.grant, Grant::ClientCredentials);
        assert_eq!(ok.client_secret.as_deref(), Some("b"));
        let dup =
            parse_form(b"grant_type=password&grant_type=client_credentials", None, Endpoint::V2);
        assert_eq!(dup.unwrap_err().kind, OAuthErrorKind::InvalidRequest);
        let missing = parse_form(b"client_id=a", None, Endpoint::V2).unwrap_err();
        assert_eq!(missing.kind, OAuthErrorKind::InvalidRequest);
        let odd = parse_form(b"grant_type=implicit", None, Endpoint::V2).unwrap_err();
        assert_eq!(odd.kind, OAuthErrorKind::UnsupportedGrantType);
        let basic = format!("Basic {}", STANDARD.encode("app%3A1:s%2Fcret"));
        let viaheader =
            parse_form(b"grant_type=client_credentials", Some(&basic), Endpoint::V2).unwrap();
        assert_eq!(viaheader.client_id.as_deref(), Some("app:1"));
        assert_eq!(viaheader.client_secret.as_deref(), Some("s/cret"));
    }
}
