//! Microsoft Graph's directory objects, as `az ad` manages them: an application registration
//! and its service principal are two objects (two object ids) sharing one appId, each with its
//! own password credentials. mlgate's own `/api/v1/servicePrincipals` shows the pair as one
//! principal; both faces read and write the same records through the same store.
//!
//! Who may do what follows mlgate's directory rules: every member of a tenant may register an
//! application and becomes its owner; every member may list and read objects (secret metadata
//! only); the owner and directory administrators change, reset and delete them.

use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::clock::Clock;
use crate::directory::Directory;
use crate::error::Error;
use crate::ids::{AppId, ObjectId, SecretId};
use crate::principal::Principal;
use crate::records::{Application, ClientSecret, ServicePrincipal, User};
use crate::secrets::{hint, new_client_secret, sha256};
use crate::store::StoreError;

const MAX_DISPLAY_NAME: usize = 120;
const MAX_CREDENTIAL_NAME: usize = 120;
/// Graph's default lifetime of a password credential without `endDateTime`.
const DEFAULT_PASSWORD_LIFETIME: Duration = Duration::days(2 * 365);
const MAX_PASSWORD_LIFETIME: Duration = Duration::days(100 * 365);
/// An object may hold this many password credentials (Graph allows a few dozen).
const MAX_PASSWORDS: usize = 20;

/// Which object a password credential belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialOwner {
    Application(ObjectId),
    ServicePrincipal(ObjectId),
}

/// A password credential just made: the only moment its text exists on the server.
#[derive(Clone)]
pub struct NewPassword {
    pub secret_text: String,
    pub record: ClientSecret,
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPassword").field("key_id", &self.record.id).finish_non_exhaustive()
    }
}

/// A directory object found by id (`directoryObjects/getByIds`).
#[derive(Debug, Clone)]
pub enum DirectoryObject {
    User(User),
    ServicePrincipal(ServicePrincipal, Vec<ClientSecret>),
    Application(Application, Vec<ClientSecret>),
}

pub struct Applications {
    directory: Arc<Directory>,
    clock: Arc<dyn Clock>,
}

fn valid_display_name(name: &str) -> Result<&str, Error> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_DISPLAY_NAME || name.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!(
            "the display name must be 1 to {MAX_DISPLAY_NAME} printable characters"
        )));
    }
    Ok(name)
}

fn parse_object_id(id: &str, what: &str) -> Result<ObjectId, Error> {
    id.trim().parse().map_err(|_| {
        Error::NotFound(format!(
            "Resource '{}' does not exist or one of its queried reference-property objects are \
             not present ({what}).",
            id.chars().take(64).filter(|c| !c.is_control()).collect::<String>()
        ))
    })
}

fn not_found(id: impl std::fmt::Display) -> Error {
    Error::NotFound(format!(
        "Resource '{id}' does not exist or one of its queried reference-property objects are not \
         present."
    ))
}

impl Applications {
    pub fn new(directory: Arc<Directory>, clock: Arc<dyn Clock>) -> Self {
        Self { directory, clock }
    }

    /// The owner and directory administrators manage an application.
    async fn ensure_can_manage(&self, caller: &Principal, app: &Application) -> Result<(), Error> {
        if app.owner == Some(caller.object_id) {
            return Ok(());
        }
        self.directory.ensure_admin(caller).await.map_err(|_| {
            Error::Forbidden(format!(
                "'{}' may not manage application '{}': only its owner or a directory \
                 administrator may",
                caller.object_id, app.app_id
            ))
        })
    }

    /// `POST /applications`: a new registration owned by the caller, without a principal yet.
    pub async fn create_application(
        &self,
        caller: &Principal,
        display_name: &str,
    ) -> Result<Application, Error> {
        let app = Application {
            object_id: ObjectId::new_random(),
            app_id: AppId::new_random(),
            tenant_id: caller.tenant_id,
            display_name: valid_display_name(display_name)?.to_string(),
            owner: Some(caller.object_id),
            created_at: self.clock.now(),
        };
        self.directory.store().insert_application(&app, None, None).await?;
        Ok(app)
    }

    pub async fn applications(
        &self,
        caller: &Principal,
    ) -> Result<Vec<(Application, Vec<ClientSecret>)>, Error> {
        let store = self.directory.store();
        let mut out = Vec::new();
        for app in store.list_applications(caller.tenant_id).await? {
            let secrets = store.application_secrets(app.object_id).await?;
            out.push((app, secrets));
        }
        Ok(out)
    }

    /// An application by object id (Graph's path) or appId (`applications(appId='...')`).
    pub async fn application(
        &self,
        caller: &Principal,
        id: &str,
    ) -> Result<(Application, Vec<ClientSecret>), Error> {
        let store = self.directory.store();
        let guid = parse_object_id(id, "application")?;
        let app = match store.application(caller.tenant_id, guid).await? {
            Some(a) => a,
            None => store
                .application_by_app_id(caller.tenant_id, AppId(guid.0))
                .await?
                .ok_or_else(|| not_found(guid))?,
        };
        let secrets = store.application_secrets(app.object_id).await?;
        Ok((app, secrets))
    }

    /// `PATCH /applications/{id}`: only the display name can change.
    pub async fn rename_application(
        &self,
        caller: &Principal,
        id: &str,
        display_name: &str,
    ) -> Result<(), Error> {
        let (app, _) = self.application(caller, id).await?;
        self.ensure_can_manage(caller, &app).await?;
        let name = valid_display_name(display_name)?;
        Ok(self.directory.store().rename_application(app.tenant_id, app.object_id, name).await?)
    }

    /// Deletes the application with its principal (as Graph does); returns the principal's
    /// object id, whose role assignments went with it.
    pub async fn delete_application(
        &self,
        caller: &Principal,
        id: &str,
    ) -> Result<Option<ObjectId>, Error> {
        let (app, _) = self.application(caller, id).await?;
        self.ensure_can_manage(caller, &app).await?;
        let sp = self.directory.store().delete_application(app.tenant_id, app.object_id).await?;
        self.directory.client_changed(app.tenant_id, app.app_id).await;
        if sp.is_some() {
            self.directory.publish(crate::changes::Change::Rbac).await;
        }
        Ok(sp)
    }

    /// `POST /servicePrincipals {"appId"}`: the principal of an application of this tenant,
    /// made by the application's owner or an administrator. 409 when it already has one.
    pub async fn create_service_principal(
        &self,
        caller: &Principal,
        app_id: &str,
        account_enabled: bool,
    ) -> Result<ServicePrincipal, Error> {
        let store = self.directory.store();
        let missing = || {
            Error::InvalidInput(format!(
                "The appId '{}' of the service principal does not reference a valid application \
                 object.",
                app_id.chars().take(64).filter(|c| !c.is_control()).collect::<String>()
            ))
        };
        let app_id: AppId = app_id.trim().parse().map_err(|_| missing())?;
        let app =
            store.application_by_app_id(caller.tenant_id, app_id).await?.ok_or_else(missing)?;
        self.ensure_can_manage(caller, &app).await?;
        if store.service_principal_by_app_id(caller.tenant_id, app_id).await?.is_some() {
            return Err(Error::Conflict(
                "Another object with the same value for property servicePrincipalNames already \
                 exists."
                    .into(),
            ));
        }
        let sp = ServicePrincipal {
            object_id: ObjectId::new_random(),
            app_id,
            tenant_id: caller.tenant_id,
            display_name: app.display_name.clone(),
            account_enabled,
            public_client: false,
            owner: app.owner,
            created_at: self.clock.now(),
        };
        store.insert_service_principal(&sp, None).await.map_err(|e| match e {
            StoreError::Conflict(_) => Error::Conflict(
                "Another object with the same value for property servicePrincipalNames already \
                 exists."
                    .into(),
            ),
            other => other.into(),
        })?;
        self.directory.client_changed(sp.tenant_id, sp.app_id).await;
        Ok(sp)
    }

    /// `DELETE /servicePrincipals/{id}`: the principal, its secrets and its role assignments;
    /// the application stays (as in Graph).
    pub async fn delete_service_principal(
        &self,
        caller: &Principal,
        id: &str,
    ) -> Result<ObjectId, Error> {
        let (sp, _) = self.directory.find_service_principal(caller, id).await?;
        self.directory.ensure_can_manage(caller, &sp).await?;
        self.directory.store().delete_service_principal(sp.tenant_id, sp.object_id).await?;
        self.directory.client_changed(sp.tenant_id, sp.app_id).await;
        self.directory.publish(crate::changes::Change::Rbac).await;
        Ok(sp.object_id)
    }

    /// The object and the appId whose cached client must be forgotten when its secrets change.
    async fn credential_target(
        &self,
        caller: &Principal,
        owner: CredentialOwner,
    ) -> Result<(ObjectId, AppId, Vec<ClientSecret>), Error> {
        match owner {
            CredentialOwner::Application(id) => {
                let (app, secrets) = self.application(caller, &id.to_string()).await?;
                self.ensure_can_manage(caller, &app).await?;
                Ok((app.object_id, app.app_id, secrets))
            }
            CredentialOwner::ServicePrincipal(id) => {
                let (sp, secrets) =
                    self.directory.find_service_principal(caller, &id.to_string()).await?;
                self.directory.ensure_can_manage(caller, &sp).await?;
                Ok((sp.object_id, sp.app_id, secrets))
            }
        }
    }

    /// `addPassword`: a new secret beside the existing ones, valid until `end` (Graph's
    /// default: two years).
    pub async fn add_password(
        &self,
        caller: &Principal,
        owner: CredentialOwner,
        display_name: Option<&str>,
        end: Option<OffsetDateTime>,
    ) -> Result<NewPassword, Error> {
        let (object, app_id, existing) = self.credential_target(caller, owner).await?;
        if existing.len() >= MAX_PASSWORDS {
            return Err(Error::InvalidInput(format!(
                "an object holds at most {MAX_PASSWORDS} password credentials; remove one first"
            )));
        }
        let now = self.clock.now();
        let end = end.unwrap_or(now + DEFAULT_PASSWORD_LIFETIME);
        if end <= now || end > now + MAX_PASSWORD_LIFETIME {
            return Err(Error::InvalidInput(
                "endDateTime must lie in the future and at most 100 years ahead".into(),
            ));
        }
        let display_name = display_name.map(str::trim).unwrap_or_default();
        if display_name.len() > MAX_CREDENTIAL_NAME || display_name.chars().any(char::is_control) {
            return Err(Error::InvalidInput(format!(
                "the credential's display name must be at most {MAX_CREDENTIAL_NAME} printable \
                 characters"
            )));
        }
        let secret_text = new_client_secret();
        let record = ClientSecret {
            id: SecretId::new_random(),
            principal: object,
            digest: sha256(secret_text.as_bytes()),
            hint: hint(&secret_text),
            display_name: display_name.to_string(),
            created_at: now,
            expires_at: Some(end),
        };
        let store = self.directory.store();
        match owner {
            CredentialOwner::Application(_) => store.add_application_secret(&record).await?,
            CredentialOwner::ServicePrincipal(_) => store.add_secret(&record, true).await?,
        }
        self.directory.client_changed(caller.tenant_id, app_id).await;
        Ok(NewPassword { secret_text, record })
    }

    /// `removePassword`: the secret stops working at once.
    pub async fn remove_password(
        &self,
        caller: &Principal,
        owner: CredentialOwner,
        key_id: &str,
    ) -> Result<(), Error> {
        let (object, app_id, _) = self.credential_target(caller, owner).await?;
        let missing = || {
            Error::InvalidInput(format!(
                "No password credential with keyId '{}' was found.",
                key_id.chars().take(64).filter(|c| !c.is_control()).collect::<String>()
            ))
        };
        let key: SecretId = key_id.trim().parse().map_err(|_| missing())?;
        self.directory.store().remove_secret(object, key).await.map_err(|e| match e {
            StoreError::NotFound => missing(),
            other => other.into(),
        })?;
        self.directory.client_changed(caller.tenant_id, app_id).await;
        Ok(())
    }

    /// Users of the caller's tenant (its own and members added to it).
    pub async fn users(&self, caller: &Principal) -> Result<Vec<User>, Error> {
        self.directory.list_users(caller).await
    }

    /// The signed-in user (`GET /me`); an application has no `/me`.
    pub async fn me(&self, caller: &Principal) -> Result<User, Error> {
        if !caller.is_user() {
            return Err(Error::InvalidInput(
                "/me request is only valid with delegated authentication flow.".into(),
            ));
        }
        self.directory
            .member(caller.tenant_id, caller.object_id)
            .await?
            .ok_or_else(|| not_found(caller.object_id))
    }

    /// Users, service principals and applications of the caller's tenant by object id;
    /// unknown ids are left out (as `getByIds` does).
    pub async fn objects_by_ids(
        &self,
        caller: &Principal,
        ids: &[String],
    ) -> Result<Vec<DirectoryObject>, Error> {
        let store = self.directory.store();
        let t = caller.tenant_id;
        let mut out = Vec::new();
        for id in ids {
            let Ok(guid) = id.trim().parse::<ObjectId>() else { continue };
            if let Some(u) = self.directory.member(t, guid).await? {
                out.push(DirectoryObject::User(u));
            } else if let Some(sp) = store.service_principal(t, guid).await? {
                let secrets = store.secrets_of(sp.object_id).await?;
                out.push(DirectoryObject::ServicePrincipal(sp, secrets));
            } else if let Some(app) = store.application(t, guid).await? {
                let secrets = store.application_secrets(app.object_id).await?;
                out.push(DirectoryObject::Application(app, secrets));
            }
        }
        Ok(out)
    }
}
