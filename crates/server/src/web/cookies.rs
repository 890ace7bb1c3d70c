//! Signed cookies: the CSRF token (double submit, bound to a random cookie by HMAC) and the
//! short-lived "signed in" ticket of the device-login pages.

use aws_lc_rs::hmac;
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mlgate_core::ids::{ObjectId, TenantId};
use mlgate_core::secrets::random_bytes;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

pub const CSRF_COOKIE: &str = "mlgate_csrf";
pub const SIGNIN_COOKIE: &str = "mlgate_signin";
/// How long a device-login sign-in is remembered for the consent step.
pub const SIGNIN_SECONDS: i64 = 600;

pub fn get_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn set_cookie(headers: &mut HeaderMap, name: &str, value: &str, max_age: i64, secure: bool) {
    set_cookie_at(headers, "/", name, value, max_age, secure);
}

/// [`set_cookie`] for the paths under `path` only (the console's cookies stay under
/// `/console`, so the API and scoring requests never carry them).
pub fn set_cookie_at(
    headers: &mut HeaderMap,
    path: &str,
    name: &str,
    value: &str,
    max_age: i64,
    secure: bool,
) {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        headers.append(header::SET_COOKIE, v);
    }
}

fn mac(key: &hmac::Key, purpose: &str, data: &str) -> String {
    let tag = hmac::sign(key, format!("{purpose}|{data}").as_bytes());
    URL_SAFE_NO_PAD.encode(tag.as_ref())
}

/// The page's CSRF token, and the cookie to set when the browser has none yet.
pub fn csrf_token(key: &hmac::Key, headers: &HeaderMap) -> (String, Option<String>) {
    match get_cookie(headers, CSRF_COOKIE).filter(|c| c.len() >= 22) {
        Some(c) => (mac(key, "csrf", c), None),
        None => {
            let c = URL_SAFE_NO_PAD.encode(random_bytes::<16>());
            (mac(key, "csrf", &c), Some(c))
        }
    }
}

/// Does the form's token match the browser's CSRF cookie?
pub fn csrf_ok(key: &hmac::Key, headers: &HeaderMap, token: Option<&str>) -> bool {
    match (get_cookie(headers, CSRF_COOKIE), token) {
        (Some(c), Some(t)) => bool::from(mac(key, "csrf", c).as_bytes().ct_eq(t.as_bytes())),
        _ => false,
    }
}

/// Any small value as an HMAC-signed cookie value (`purpose` separates the kinds).
pub fn seal<T: Serialize>(key: &hmac::Key, purpose: &str, value: &T) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default());
    let tag = mac(key, purpose, &payload);
    format!("{payload}.{tag}")
}

/// The value [`seal`] made for `purpose`, if untampered.
pub fn open<T: serde::de::DeserializeOwned>(
    key: &hmac::Key,
    purpose: &str,
    value: &str,
) -> Option<T> {
    let (payload, tag) = value.split_once('.')?;
    if !bool::from(mac(key, purpose, payload).as_bytes().ct_eq(tag.as_bytes())) {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignedIn {
    pub oid: ObjectId,
    pub tid: TenantId,
    /// The user code this sign-in is for: a ticket cannot approve another device.
    pub code: String,
    pub exp: i64,
}

pub fn seal_signin(key: &hmac::Key, s: &SignedIn) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(s).unwrap_or_default());
    let tag = mac(key, "signin", &payload);
    format!("{payload}.{tag}")
}

pub fn open_signin(key: &hmac::Key, headers: &HeaderMap, now: i64) -> Option<SignedIn> {
    let value = get_cookie(headers, SIGNIN_COOKIE)?;
    let (payload, tag) = value.split_once('.')?;
    if !bool::from(mac(key, "signin", payload).as_bytes().ct_eq(tag.as_bytes())) {
        return None;
    }
    let s: SignedIn = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    (s.exp > now).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_and_signin_tickets_verify_only_untampered() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"k");
        let mut h = HeaderMap::new();
        let (token, cookie) = csrf_token(&key, &h);
        let cookie = cookie.unwrap();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {CSRF_COOKIE}={cookie}")).unwrap(),
        );
        assert!(csrf_ok(&key, &h, Some(&token)));
        assert!(!csrf_ok(&key, &h, Some("forged")));
        assert!(!csrf_ok(&key, &HeaderMap::new(), Some(&token)));

        let s = SignedIn {
            oid: ObjectId::new_random(),
            tid: TenantId::new_random(),
            code: "BCDFGHJK".into(),
            exp: 100,
        };
        let sealed = seal_signin(&key, &s);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{SIGNIN_COOKIE}={sealed}")).unwrap(),
        );
        assert_eq!(open_signin(&key, &h, 50), Some(s.clone()));
        assert_eq!(open_signin(&key, &h, 150), None, "expired");
        let mut tampered = sealed.clone();
        let first = if tampered.starts_with('A') { "B" } else { "A" };
        tampered.replace_range(0..1, first);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{SIGNIN_COOKIE}={tampered}")).unwrap(),
        );
        assert_eq!(open_signin(&key, &h, 50), None);
    }
}
