//! The user lifecycle, in `az ad user`'s words: show, update (display name, enable/disable,
//! password reset by an administrator, forced change at next sign-in), delete; and the
//! offline recovery of a lost administrator password (`mlgate admin reset-password`), which
//! works on the store directly and so needs filesystem access to the data directory.
//!
//! Rules: any member of the tenant may read its users (as `list_users`); only directory
//! administrators change or delete them; nobody disables or deletes themself (the last
//! administrator cannot lock the tenant out that way). A new password or a disabled account
//! revokes the user's refresh tokens at once; access tokens already issued run out (an hour),
//! as in Azure AD. A user changing their own password is the authority's business (it checks
//! the current password with the same limits as a sign-in).

use std::sync::Arc;

use crate::activity::{self, ActivityRecord, ActivityStatus, Pending};
use crate::changes::Change;
use crate::directory::Directory;
use crate::error::Error;
use crate::ids::ObjectId;
use crate::password::hash_password;
use crate::principal::Principal;
use crate::records::User;
use crate::store::Store;

/// Passwords are 8 to 256 characters (as `create_user` requires).
pub fn validate_password(password: &str) -> Result<(), Error> {
    if password.chars().count() < 8 || password.len() > 256 {
        return Err(Error::InvalidInput("the password must be 8 to 256 characters".into()));
    }
    Ok(())
}

/// argon2id on a blocking thread.
pub async fn hash(password: &str) -> Result<String, Error> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(Error::Internal)
}

/// What `az ad user update` may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub display_name: Option<String>,
    pub account_enabled: Option<bool>,
    pub password: Option<String>,
    pub force_change_password: Option<bool>,
}

impl Directory {
    /// A user of the caller's tenant by object id or principal name.
    pub async fn find_user(&self, caller: &Principal, id: &str) -> Result<User, Error> {
        let id = id.trim();
        let found = match id.parse::<uuid::Uuid>() {
            Ok(g) => self.member(caller.tenant_id, ObjectId(g)).await?,
            Err(_) => self.store().user_by_upn(caller.tenant_id, &id.to_ascii_lowercase()).await?,
        };
        found.ok_or_else(|| {
            Error::NotFound(format!(
                "user '{}' does not exist in this tenant",
                id.chars().take(100).collect::<String>()
            ))
        })
    }

    /// `az ad user show`: any member of the tenant.
    pub async fn show_user(&self, caller: &Principal, id: &str) -> Result<User, Error> {
        if caller.is_user() && self.member(caller.tenant_id, caller.object_id).await?.is_none() {
            return Err(Error::Forbidden("only members of the tenant may read its users".into()));
        }
        self.find_user(caller, id).await
    }

    /// `az ad user update`: directory administrators.
    pub async fn update_user(
        &self,
        caller: &Principal,
        id: &str,
        change: UserUpdate,
    ) -> Result<User, Error> {
        self.ensure_admin(caller).await?;
        let mut user = self.find_user(caller, id).await?;
        if user.tenant_id != caller.tenant_id {
            return Err(Error::Forbidden(
                "a member from another tenant is managed in its home tenant".into(),
            ));
        }
        if change.account_enabled == Some(false) && user.object_id == caller.object_id {
            return Err(Error::Conflict("you cannot disable your own account".into()));
        }
        if let Some(name) = change.display_name {
            let name = name.trim();
            if name.is_empty() || name.len() > 256 {
                return Err(Error::InvalidInput(
                    "the display name must be 1 to 256 characters".into(),
                ));
            }
            user.display_name = name.to_string();
        }
        let mut revoke = false;
        if let Some(enabled) = change.account_enabled {
            revoke |= user.account_enabled && !enabled;
            user.account_enabled = enabled;
        }
        if let Some(pw) = change.password {
            validate_password(&pw)?;
            user.password_hash = hash(&pw).await?;
            revoke = true;
        }
        if let Some(force) = change.force_change_password {
            user.force_change_password = force;
        }
        self.store().update_user(&user).await?;
        if revoke {
            self.store().revoke_user_grants(user.object_id).await?;
        }
        Ok(user)
    }

    /// `az ad user delete`: directory administrators; its memberships, role assignments and
    /// refresh tokens go with it.
    pub async fn delete_user(&self, caller: &Principal, id: &str) -> Result<ObjectId, Error> {
        self.ensure_admin(caller).await?;
        let user = self.find_user(caller, id).await?;
        if user.tenant_id != caller.tenant_id {
            return Err(Error::Forbidden(
                "a member from another tenant is deleted in its home tenant".into(),
            ));
        }
        if user.object_id == caller.object_id {
            return Err(Error::Conflict("you cannot delete your own account".into()));
        }
        self.store().delete_user(user.tenant_id, user.object_id).await?;
        self.publish(Change::Rbac).await;
        Ok(user.object_id)
    }

    /// Sets a new password for a user who proved the current one (the authority checks it),
    /// and clears a forced change.
    pub async fn set_own_password(&self, mut user: User, new_password: &str) -> Result<(), Error> {
        validate_password(new_password)?;
        user.password_hash = hash(new_password).await?;
        user.force_change_password = false;
        self.store().update_user(&user).await?;
        self.store().revoke_user_grants(user.object_id).await?;
        Ok(())
    }
}

/// `mlgate admin reset-password`: a new password for `user` (principal name or object id, in
/// any tenant) written straight to the store, the account enabled, refresh tokens revoked,
/// and an activity record (caller `System`) committed with the change.
pub async fn reset_offline(
    store: Arc<dyn Store>,
    user: &str,
    password: &str,
    force_change: bool,
    at: time::OffsetDateTime,
    operator: &str,
) -> Result<User, Error> {
    validate_password(password)?;
    let found = match user.trim().parse::<uuid::Uuid>() {
        Ok(g) => store.user_anywhere(ObjectId(g)).await?,
        Err(_) => store.user_by_upn_anywhere(&user.trim().to_ascii_lowercase()).await?,
    };
    let mut u = found.ok_or_else(|| {
        Error::NotFound(format!(
            "user '{}' does not exist",
            user.chars().take(100).collect::<String>()
        ))
    })?;
    u.password_hash = hash(password).await?;
    u.account_enabled = true;
    u.force_change_password = force_change;
    let mut record = ActivityRecord {
        id: uuid::Uuid::new_v4(),
        at,
        tenant_id: Some(u.tenant_id),
        subscription_id: None,
        resource_group: None,
        caller_id: None,
        caller_type: "System".into(),
        caller: operator.chars().take(128).collect(),
        caller_display_name: "mlgate admin reset-password (offline)".into(),
        operation: "microsoft.directory/users/password/update".into(),
        scope: String::new(),
        method: "OFFLINE".into(),
        status: ActivityStatus::Succeeded,
        sub_status: None,
        error_code: None,
        correlation_id: uuid::Uuid::new_v4().to_string(),
        client_address: None,
    };
    record.set_scope(&format!("/users/{}", u.object_id));
    let pending = Pending { record, caller_known: true, recorded: false };
    let target = u.clone();
    let (written, pending) =
        activity::scope(pending, async { store.update_user(&target).await }).await;
    written?;
    if !pending.recorded {
        return Err(Error::Internal("the activity record was not written".into()));
    }
    store.revoke_user_grants(u.object_id).await?;
    Ok(u)
}
