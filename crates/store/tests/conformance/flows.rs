//! Refresh grants, device authorizations and authorization codes, one caller at a time.

use std::sync::Arc;

use mlgate_core::ids::{AppId, ObjectId, TenantId};
use mlgate_core::records::{AuthorizationCode, DeviceAuthorization, DeviceState, RefreshGrant};
use mlgate_core::store::Store;

use crate::conformance;
use crate::support::*;

conformance!(refresh_grants, device_authorizations, authorization_codes);

pub fn grant(digest: u8, family: mlgate_core::ids::GrantFamilyId) -> RefreshGrant {
    RefreshGrant {
        digest: [digest; 32],
        family,
        tenant_id: TenantId(guid()),
        subject: ObjectId(guid()),
        client_id: AppId(guid()),
        resource: "https://management.azure.com/".into(),
        scope: "openid offline_access".into(),
        issued_at: t(0),
        expires_at: t(3600),
        used_at: None,
        revoked: false,
    }
}

pub fn device(digest: u8) -> DeviceAuthorization {
    DeviceAuthorization {
        digest: [digest; 32],
        user_code_digest: [digest.wrapping_add(100); 32],
        tenant_id: TenantId(guid()),
        client_id: AppId(guid()),
        resource: "https://management.azure.com/".into(),
        scope: Some("openid".into()),
        v1: false,
        created_at: t(0),
        expires_at: t(900),
        interval_secs: 5,
        state: DeviceState::Pending,
        user_id: None,
        last_poll_at: None,
    }
}

pub fn code(digest: u8) -> AuthorizationCode {
    AuthorizationCode {
        digest: [digest; 32],
        tenant_id: TenantId(guid()),
        client_id: AppId(guid()),
        user_id: ObjectId(guid()),
        redirect_uri: "http://localhost:8400".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        resource: "https://management.azure.com/".into(),
        scope: None,
        nonce: Some("n-0S6_WzA2Mj".into()),
        v1: true,
        expires_at: t(600),
        used: false,
    }
}

async fn refresh_grants(s: Arc<dyn Store>) {
    let fam = family();
    let g = grant(1, fam);
    s.insert_refresh_grant(&g).await.unwrap();
    assert!(s.insert_refresh_grant(&g).await.is_err(), "a digest is stored once");
    assert_eq!(s.refresh_grant(&g.digest).await.unwrap(), Some(g.clone()));
    // First use: the grant as it was; second: already used.
    assert_eq!(s.use_refresh_grant(&g.digest, t(10)).await.unwrap(), Some(g.clone()));
    let used = s.use_refresh_grant(&g.digest, t(20)).await.unwrap().unwrap();
    assert_eq!(used.used_at, Some(t(10)), "the first use's time stays");
    assert_eq!(s.use_refresh_grant(&[9; 32], t(10)).await.unwrap(), None);

    let child = grant(2, fam);
    s.insert_refresh_grant(&child).await.unwrap();
    let other = grant(3, family());
    s.insert_refresh_grant(&other).await.unwrap();
    s.revoke_grant_family(fam).await.unwrap();
    assert!(s.refresh_grant(&child.digest).await.unwrap().unwrap().revoked);
    assert!(!s.refresh_grant(&other.digest).await.unwrap().unwrap().revoked);
    assert!(s.revoke_refresh_token(&other.digest).await.unwrap());
    assert!(s.refresh_grant(&other.digest).await.unwrap().unwrap().revoked);
    assert!(!s.revoke_refresh_token(&[42; 32]).await.unwrap());
}

async fn device_authorizations(s: Arc<dyn Store>) {
    let d = device(1);
    s.insert_device_authorization(&d).await.unwrap();
    assert_eq!(s.device_by_user_code(&d.user_code_digest).await.unwrap(), Some(d.clone()));
    assert_eq!(s.device_by_user_code(&[0; 32]).await.unwrap(), None);
    // A poll answers the record as it was and stamps the time.
    assert_eq!(s.poll_device(&d.digest, t(5)).await.unwrap(), Some(d.clone()));
    assert_eq!(s.poll_device(&d.digest, t(10)).await.unwrap().unwrap().last_poll_at, Some(t(5)));
    assert_eq!(s.poll_device(&[0; 32], t(10)).await.unwrap(), None);

    let user = ObjectId(guid());
    assert!(
        !s.decide_device(&d.user_code_digest, DeviceState::Approved, user, t(901)).await.unwrap(),
        "expired"
    );
    assert!(!s.consume_device(&d.digest).await.unwrap(), "not approved yet");
    assert!(
        s.decide_device(&d.user_code_digest, DeviceState::Approved, user, t(20)).await.unwrap()
    );
    assert!(!s.decide_device(&d.user_code_digest, DeviceState::Denied, user, t(21)).await.unwrap());
    let approved = s.poll_device(&d.digest, t(22)).await.unwrap().unwrap();
    assert_eq!((approved.state, approved.user_id), (DeviceState::Approved, Some(user)));
    assert!(s.consume_device(&d.digest).await.unwrap());
    assert!(!s.consume_device(&d.digest).await.unwrap());

    // Authorizations long expired are dropped as new ones arrive.
    let mut later = device(2);
    later.created_at = t(900 + 86_400 + 1);
    later.expires_at = t(900 + 86_400 + 901);
    s.insert_device_authorization(&later).await.unwrap();
    assert_eq!(s.device_by_user_code(&d.user_code_digest).await.unwrap(), None);
    assert!(s.device_by_user_code(&later.user_code_digest).await.unwrap().is_some());
}

async fn authorization_codes(s: Arc<dyn Store>) {
    let c = code(1);
    s.insert_authorization_code(&c).await.unwrap();
    assert_eq!(s.take_authorization_code(&c.digest).await.unwrap(), Some(c.clone()));
    assert!(s.take_authorization_code(&c.digest).await.unwrap().unwrap().used);
    assert_eq!(s.take_authorization_code(&[0; 32]).await.unwrap(), None);
    let mut later = code(2);
    later.expires_at = t(600 + 86_400 + 1);
    s.insert_authorization_code(&later).await.unwrap();
    assert_eq!(s.take_authorization_code(&c.digest).await.unwrap(), None, "dropped");
}
