//! Signing keys and refresh-token grants.

use async_trait::async_trait;
use mlgate_core::ids::{GrantFamilyId, KeyId};
use mlgate_core::records::{KeyState, RefreshGrant, SigningKeyRecord};
use mlgate_core::store::{GrantStore, KeyStore, StoreError, StoreResult};
use time::OffsetDateTime;

use crate::SqlStore;
use crate::db::{Row, args};

pub(crate) fn key_from(row: &Row) -> StoreResult<SigningKeyRecord> {
    let state = row.text("state")?;
    Ok(SigningKeyRecord {
        kid: KeyId(row.text("kid")?),
        state: KeyState::parse(&state).ok_or_else(|| StoreError::Corrupt("key state".into()))?,
        sealed_private_key: row.bytes("sealed_private_key")?,
        public_key: row.bytes("public_key")?,
        created_at: row.time("created_at")?,
        retired_at: row.opt_time("retired_at")?,
    })
}

pub(crate) fn grant_from(row: &Row) -> StoreResult<RefreshGrant> {
    Ok(RefreshGrant {
        digest: row.digest("digest")?,
        family: row.parse::<GrantFamilyId>("family")?,
        tenant_id: row.parse("tenant_id")?,
        subject: row.parse("subject")?,
        client_id: row.parse("client_id")?,
        resource: row.text("resource")?,
        scope: row.text("scope")?,
        issued_at: row.time("issued_at")?,
        expires_at: row.time("expires_at")?,
        used_at: row.opt_time("used_at")?,
        revoked: row.bool("revoked")?,
    })
}

pub(crate) const INSERT_GRANT: &str = "INSERT INTO refresh_grants (digest, family, tenant_id, \
     subject, client_id, resource, scope, issued_at, expires_at, used_at, revoked) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

pub(crate) fn grant_args(g: &RefreshGrant) -> Vec<crate::db::Val> {
    args![
        &g.digest,
        g.family,
        g.tenant_id,
        g.subject,
        g.client_id,
        &g.resource,
        &g.scope,
        g.issued_at,
        g.expires_at,
        g.used_at,
        g.revoked
    ]
}

#[async_trait]
impl KeyStore for SqlStore {
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        let rows =
            self.db.all("SELECT * FROM signing_keys ORDER BY created_at, kid", args![]).await?;
        rows.iter().map(key_from).collect()
    }

    async fn rotate_signing_keys(
        &self,
        now: OffsetDateTime,
        new_next: &SigningKeyRecord,
        prune_retired_before: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        // Two nodes rotating at once must not both retire and promote.
        tx.lock("signing-keys").await?;
        let next = tx
            .one("SELECT COUNT(*) AS n FROM signing_keys WHERE state = 'next'", args![])
            .await?
            .int("n")?;
        if next == 0 {
            return Err(StoreError::Conflict("no next key to promote".into()));
        }
        tx.exec(
            "UPDATE signing_keys SET state = 'retired', retired_at = $1 WHERE state = 'active'",
            args![now],
        )
        .await?;
        tx.exec("UPDATE signing_keys SET state = 'active' WHERE state = 'next'", args![]).await?;
        crate::directory::insert_key(&mut tx, new_next).await?;
        tx.exec(
            "DELETE FROM signing_keys WHERE state = 'retired' AND retired_at < $1",
            args![prune_retired_before],
        )
        .await?;
        tx.commit().await
    }
}

#[async_trait]
impl GrantStore for SqlStore {
    async fn insert_refresh_grant(&self, g: &RefreshGrant) -> StoreResult<()> {
        self.db.exec(INSERT_GRANT, grant_args(g)).await.map(drop)
    }

    async fn use_refresh_grant(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
    ) -> StoreResult<Option<RefreshGrant>> {
        // The conditional UPDATE is the one atomic step, and its row says who won: of two
        // concurrent exchanges (on one node or two) exactly one gets the row back; the other
        // then reads it already used.
        let won = self
            .db
            .opt(
                "UPDATE refresh_grants SET used_at = $1 WHERE digest = $2 AND used_at IS NULL \
                 RETURNING *",
                args![now, digest],
            )
            .await?;
        if let Some(row) = won {
            let mut grant = grant_from(&row)?;
            grant.used_at = None; // as it was before this use
            return Ok(Some(grant));
        }
        let row =
            self.db.opt("SELECT * FROM refresh_grants WHERE digest = $1", args![digest]).await?;
        row.as_ref().map(grant_from).transpose()
    }

    async fn revoke_grant_family(&self, family: GrantFamilyId) -> StoreResult<()> {
        self.db
            .exec("UPDATE refresh_grants SET revoked = TRUE WHERE family = $1", args![family])
            .await
            .map(drop)
    }
}
