//! Interactive flows: device authorizations (RFC 8628) and authorization codes (RFC 6749
//! 4.1, with PKCE), and the refresh-token look-ups their clients make.

use async_trait::async_trait;
use mlgate_core::ids::ObjectId;
use mlgate_core::records::{AuthorizationCode, DeviceAuthorization, DeviceState, RefreshGrant};
use mlgate_core::store::{FlowStore, StoreError, StoreResult};
use time::OffsetDateTime;

use crate::SqlStore;
use crate::db::{Row, args};
use crate::keys::grant_from;

/// How long past its expiry a flow record is kept (then dropped as new ones arrive).
const KEEP_EXPIRED_SECS: i64 = 86_400;

pub(crate) fn device_from(row: &Row) -> StoreResult<DeviceAuthorization> {
    let state = row.text("state")?;
    Ok(DeviceAuthorization {
        digest: row.digest("digest")?,
        user_code_digest: row.digest("user_code_digest")?,
        tenant_id: row.parse("tenant_id")?,
        client_id: row.parse("client_id")?,
        resource: row.text("resource")?,
        scope: row.opt_text("scope")?,
        v1: row.bool("v1")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
        interval_secs: row.int("interval_secs")?,
        state: DeviceState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt("device state".into()))?,
        user_id: row.opt_parse("user_id")?,
        last_poll_at: row.opt_time("last_poll_at")?,
    })
}

pub(crate) fn code_from(row: &Row) -> StoreResult<AuthorizationCode> {
    Ok(AuthorizationCode {
        digest: row.digest("digest")?,
        tenant_id: row.parse("tenant_id")?,
        client_id: row.parse("client_id")?,
        user_id: row.parse("user_id")?,
        redirect_uri: row.text("redirect_uri")?,
        code_challenge: row.text("code_challenge")?,
        resource: row.text("resource")?,
        scope: row.opt_text("scope")?,
        nonce: row.opt_text("nonce")?,
        v1: row.bool("v1")?,
        expires_at: row.time("expires_at")?,
        used: row.bool("used")?,
    })
}

pub(crate) const INSERT_DEVICE: &str = "INSERT INTO device_authorizations (digest, \
     user_code_digest, tenant_id, client_id, resource, scope, v1, created_at, expires_at, \
     interval_secs, state, user_id, last_poll_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

pub(crate) fn device_args(d: &DeviceAuthorization) -> Vec<crate::db::Val> {
    args![
        &d.digest,
        &d.user_code_digest,
        d.tenant_id,
        d.client_id,
        &d.resource,
        &d.scope,
        d.v1,
        d.created_at,
        d.expires_at,
        d.interval_secs,
        d.state.as_str(),
        d.user_id,
        d.last_poll_at
    ]
}

pub(crate) const INSERT_CODE: &str = "INSERT INTO authorization_codes (digest, tenant_id, \
     client_id, user_id, redirect_uri, code_challenge, resource, scope, nonce, v1, expires_at, \
     used) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

pub(crate) fn code_args(c: &AuthorizationCode) -> Vec<crate::db::Val> {
    args![
        &c.digest,
        c.tenant_id,
        c.client_id,
        c.user_id,
        &c.redirect_uri,
        &c.code_challenge,
        &c.resource,
        &c.scope,
        &c.nonce,
        c.v1,
        c.expires_at,
        c.used
    ]
}

#[async_trait]
impl FlowStore for SqlStore {
    async fn insert_device_authorization(&self, d: &DeviceAuthorization) -> StoreResult<()> {
        self.db.exec(INSERT_DEVICE, device_args(d)).await?;
        self.db
            .exec(
                "DELETE FROM device_authorizations WHERE expires_at < $1",
                args![d.created_at.unix_timestamp() - KEEP_EXPIRED_SECS],
            )
            .await
            .map(drop)
    }

    async fn device_by_user_code(
        &self,
        user_code_digest: &[u8; 32],
    ) -> StoreResult<Option<DeviceAuthorization>> {
        let row = self
            .db
            .opt(
                "SELECT * FROM device_authorizations WHERE user_code_digest = $1",
                args![user_code_digest],
            )
            .await?;
        row.as_ref().map(device_from).transpose()
    }

    async fn poll_device(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
    ) -> StoreResult<Option<DeviceAuthorization>> {
        let mut tx = self.db.begin().await?;
        // Two polls at once read the same previous poll time in turn, not both the old one.
        tx.lock_rows(
            "SELECT digest FROM device_authorizations WHERE digest = $1 FOR UPDATE",
            args![digest],
        )
        .await?;
        let row =
            tx.opt("SELECT * FROM device_authorizations WHERE digest = $1", args![digest]).await?;
        let Some(row) = row else { return Ok(None) };
        let d = device_from(&row)?;
        tx.exec(
            "UPDATE device_authorizations SET last_poll_at = $1 WHERE digest = $2",
            args![now, digest],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(d))
    }

    async fn decide_device(
        &self,
        user_code_digest: &[u8; 32],
        state: DeviceState,
        user: ObjectId,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let done = self
            .db
            .exec(
                "UPDATE device_authorizations SET state = $1, user_id = $2 \
                 WHERE user_code_digest = $3 AND state = 'pending' AND expires_at > $4",
                args![state.as_str(), user, user_code_digest, now],
            )
            .await?;
        Ok(done == 1)
    }

    async fn consume_device(&self, digest: &[u8; 32]) -> StoreResult<bool> {
        // Conditional: of two polls that both saw `approved`, one moves it on.
        let done = self
            .db
            .exec(
                "UPDATE device_authorizations SET state = 'consumed' \
                 WHERE digest = $1 AND state = 'approved'",
                args![digest],
            )
            .await?;
        Ok(done == 1)
    }

    async fn insert_authorization_code(&self, c: &AuthorizationCode) -> StoreResult<()> {
        self.db.exec(INSERT_CODE, code_args(c)).await?;
        self.db
            .exec(
                "DELETE FROM authorization_codes WHERE expires_at < $1",
                args![c.expires_at.unix_timestamp() - KEEP_EXPIRED_SECS],
            )
            .await
            .map(drop)
    }

    async fn take_authorization_code(
        &self,
        digest: &[u8; 32],
    ) -> StoreResult<Option<AuthorizationCode>> {
        // The conditional UPDATE decides: one redemption gets the unused code back, any other
        // reads it used.
        let won = self
            .db
            .opt(
                "UPDATE authorization_codes SET used = TRUE WHERE digest = $1 AND used = FALSE \
                 RETURNING *",
                args![digest],
            )
            .await?;
        if let Some(row) = won {
            let mut c = code_from(&row)?;
            c.used = false; // as it was before this redemption
            return Ok(Some(c));
        }
        let row = self
            .db
            .opt("SELECT * FROM authorization_codes WHERE digest = $1", args![digest])
            .await?;
        row.as_ref().map(code_from).transpose()
    }

    async fn revoke_refresh_token(&self, digest: &[u8; 32]) -> StoreResult<bool> {
        let done = self
            .db
            .exec(
                "UPDATE refresh_grants SET revoked = TRUE WHERE family = \
                 (SELECT family FROM refresh_grants WHERE digest = $1)",
                args![digest],
            )
            .await?;
        Ok(done > 0)
    }

    async fn refresh_grant(&self, digest: &[u8; 32]) -> StoreResult<Option<RefreshGrant>> {
        let row =
            self.db.opt("SELECT * FROM refresh_grants WHERE digest = $1", args![digest]).await?;
        row.as_ref().map(grant_from).transpose()
    }
}
