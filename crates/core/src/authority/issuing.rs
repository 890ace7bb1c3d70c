//! Signing what a grant yields: the access token (one claims builder for applications and
//! users), the ID token and the refresh grant; and key rotation.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::{Duration, OffsetDateTime};

use super::{Authority, Endpoint, GrantError, Issued, IssuedTo, Subject, TokenRequest};
use crate::error::Error;
use crate::ids::{AppId, GrantFamilyId};
use crate::keys::{MasterKey, new_signing_key};
use crate::records::{KeyState, RefreshGrant, Tenant};
use crate::secrets::{new_opaque_token, random_bytes, sha256};
use crate::store::Store;
use crate::tokens::{AccessClaims, IdClaims};

impl Authority {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn issue(
        &self,
        tenant: &Tenant,
        subject: Subject<'_>,
        resource: &str,
        req: &TokenRequest,
        scope: Option<String>,
        family: Option<GrantFamilyId>,
    ) -> Result<Issued, GrantError> {
        self.issue_with_nonce(
            tenant,
            subject,
            resource,
            req.endpoint,
            req.client_info,
            scope,
            family,
            None,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn issue_with_nonce(
        &self,
        tenant: &Tenant,
        subject: Subject<'_>,
        resource: &str,
        endpoint: Endpoint,
        want_client_info: bool,
        scope: Option<String>,
        family: Option<GrantFamilyId>,
        nonce: Option<String>,
    ) -> Result<Issued, GrantError> {
        let now = self.clock.now();
        let iat = now.unix_timestamp();
        let exp = iat + self.cfg.access_token_lifetime.whole_seconds();
        let v1 = endpoint == Endpoint::V1;
        let issuer = if v1 { self.issuer_v1(tenant.id) } else { self.issuer_v2(tenant.id) };
        let (client_id, claims) = access_claims(&subject, tenant, &issuer, resource, iat, exp, v1);
        let to = match &subject {
            Subject::App(c) => IssuedTo {
                object_id: c.principal.object_id,
                user_principal_name: None,
                app_display_name: Some(c.principal.display_name.clone()),
            },
            Subject::User { user, .. } => IssuedTo {
                object_id: user.object_id,
                user_principal_name: Some(user.user_principal_name.clone()),
                app_display_name: None,
            },
        };
        let keys = self.keys.current();
        let sign_err = |_| GrantError::internal();
        let access_token = keys.signer.sign_jwt(&claims).map_err(sign_err)?;

        let (mut refresh_token, mut id_token, mut client_info) = (None, None, None);
        if let Subject::User { user, .. } = subject {
            let id_claims = IdClaims {
                aud: client_id.to_string(),
                iss: issuer,
                iat,
                nbf: iat,
                exp,
                sub: user.object_id.to_string(),
                oid: user.object_id.to_string(),
                tid: tenant.id.to_string(),
                ver: if v1 { "1.0" } else { "2.0" }.into(),
                name: user.display_name.clone(),
                preferred_username: user.user_principal_name.clone(),
                upn: v1.then(|| user.user_principal_name.clone()),
                unique_name: v1.then(|| user.user_principal_name.clone()),
                nonce,
            };
            id_token = Some(keys.signer.sign_jwt(&id_claims).map_err(sign_err)?);
            let rt = new_opaque_token();
            let grant = RefreshGrant {
                digest: sha256(rt.as_bytes()),
                family: family.unwrap_or_else(GrantFamilyId::new_random),
                tenant_id: tenant.id,
                subject: user.object_id,
                client_id,
                resource: resource.to_string(),
                scope: scope.clone().unwrap_or_default(),
                issued_at: now,
                expires_at: now + self.cfg.refresh_token_lifetime,
                used_at: None,
                revoked: false,
            };
            self.directory.store().insert_refresh_grant(&grant).await.map_err(Error::from)?;
            refresh_token = Some(rt);
            if want_client_info {
                let info = serde_json::json!({"uid": user.object_id.to_string(),
                                              "utid": tenant.id.to_string()});
                client_info = Some(URL_SAFE_NO_PAD.encode(info.to_string()));
            }
        }
        Ok(Issued {
            access_token,
            expires_in: exp - iat,
            expires_on: exp,
            not_before: iat,
            resource: resource.to_string(),
            scope,
            refresh_token,
            id_token,
            client_info,
            to,
        })
    }
}

/// `mlgate keys rotate`: the next key starts signing, a new next key is published, the active
/// one retires, and retired keys whose tokens have all expired are dropped. Servers pick the
/// change up on their next key reload.
pub async fn rotate_signing_keys(
    store: &dyn Store,
    master: &MasterKey,
    now: OffsetDateTime,
    max_token_lifetime: Duration,
) -> Result<(), Error> {
    let keys = store.signing_keys().await?;
    if !keys.iter().any(|k| k.state == KeyState::Next) {
        return Err(Error::Internal("no next key to promote".into()));
    }
    let next =
        new_signing_key(master, KeyState::Next, now).map_err(|e| Error::Internal(e.to_string()))?;
    // Keep a retired key while any token it signed may still be valid (plus clock skew).
    let prune_before = now - max_token_lifetime - Duration::minutes(5);
    store.rotate_signing_keys(now, &next, prune_before).await?;
    // Every running node (this data directory's, or any sharing the store) reloads its keys.
    let change = crate::changes::Change::SigningKeys;
    if let Err(e) = store.publish_change(change.kind(), &change.key(), now).await {
        tracing::warn!(error = %e, "could not publish the rotation; servers see it within 30 s");
    }
    Ok(())
}

/// The one access-token claims builder: applications and users differ only in who the token
/// names (`idtyp`, `oid`, the client's authentication strength, the user's names and scope).
fn access_claims(
    subject: &Subject<'_>,
    tenant: &Tenant,
    issuer: &str,
    resource: &str,
    iat: i64,
    exp: i64,
    v1: bool,
) -> (AppId, AccessClaims) {
    // `appidacr`/`azpacr`: 1 = the client authenticated with a secret, 0 = a public client.
    let (client, object_id, idtyp, acr, user) = match subject {
        Subject::App(c) => (c.principal.app_id, c.principal.object_id, "app", "1", None),
        Subject::User { user, client } => (*client, user.object_id, "user", "0", Some(*user)),
    };
    let app = client.to_string();
    let upn = user.map(|u| u.user_principal_name.clone());
    let claims = AccessClaims {
        aud: resource.to_string(),
        iss: issuer.to_string(),
        iat,
        nbf: iat,
        exp,
        appid: v1.then(|| app.clone()),
        appidacr: v1.then(|| acr.to_string()),
        azp: (!v1).then(|| app.clone()),
        azpacr: (!v1).then(|| acr.to_string()),
        idtyp: idtyp.into(),
        name: user.map(|u| u.display_name.clone()),
        app_displayname: match subject {
            Subject::App(c) => Some(c.principal.display_name.clone()),
            Subject::User { .. } => None,
        },
        oid: object_id.to_string(),
        sub: object_id.to_string(),
        tid: tenant.id.to_string(),
        uti: URL_SAFE_NO_PAD.encode(random_bytes::<16>()),
        ver: if v1 { "1.0" } else { "2.0" }.into(),
        scp: user.map(|_| "user_impersonation".into()),
        upn: upn.clone().filter(|_| v1),
        unique_name: upn.clone().filter(|_| v1),
        preferred_username: upn.filter(|_| !v1),
    };
    (client, claims)
}
