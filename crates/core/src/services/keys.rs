//! A service's two keys (sealed at rest under the master key, opened to answer `get-keys`)
//! and its short-lived scoring tokens.

use super::{Services, deployment_config};
use crate::error::Error;
use crate::model_registry::WorkspaceRef;
use crate::principal::Principal;
use crate::rbac::catalog::{SERVICE_LIST_KEYS, SERVICE_READ, SERVICE_REGENERATE_KEYS};
use crate::records::{SealedServiceKeys, Service, Workspace};
use crate::scoring::AuthMode;
use crate::secrets::new_client_secret;

/// A service's two keys, in the clear (for `get-keys`); never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceKeys {
    pub primary: String,
    pub secondary: String,
}

impl std::fmt::Debug for ServiceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceKeys(..)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySlot {
    Primary,
    Secondary,
}

impl std::str::FromStr for KeySlot {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "primary" => Ok(KeySlot::Primary),
            "secondary" => Ok(KeySlot::Secondary),
            _ => Err(Error::InvalidInput(format!(
                "'{}' is not a key type: use Primary or Secondary",
                s.chars().take(32).collect::<String>()
            ))),
        }
    }
}

/// `Webservice.get_token()`'s answer.
pub struct ServiceToken {
    pub token: String,
    /// Unix seconds.
    pub expires_on: i64,
    /// Unix seconds: ask for a new token after this (half the lifetime).
    pub refresh_after: i64,
}

impl Services {
    /// Every service has two keys from its first deployment on, so switching key auth on
    /// later needs no new keys.
    pub(crate) async fn ensure_keys(&self, name: &str) -> Result<(), Error> {
        let store = self.directory.store();
        if store.service_keys(name).await?.is_none() {
            // Insert-if-absent: of two callers at once, one stores its keys and both use them.
            let keys = ServiceKeys { primary: new_client_secret(), secondary: new_client_secret() };
            store.insert_service_keys(name, &self.seal_keys(name, &keys)?).await?;
        }
        Ok(())
    }

    fn key_aad(name: &str, slot: KeySlot) -> String {
        format!("service-key:{}:{slot:?}", name.to_ascii_lowercase())
    }

    pub(super) fn seal_keys(
        &self,
        name: &str,
        keys: &ServiceKeys,
    ) -> Result<SealedServiceKeys, Error> {
        Ok(SealedServiceKeys {
            primary: self
                .authority
                .seal(&Self::key_aad(name, KeySlot::Primary), keys.primary.as_bytes())?,
            secondary: self
                .authority
                .seal(&Self::key_aad(name, KeySlot::Secondary), keys.secondary.as_bytes())?,
            updated_at: self.clock.now(),
        })
    }

    pub(crate) async fn open_keys(&self, name: &str) -> Result<ServiceKeys, Error> {
        let sealed = self
            .directory
            .store()
            .service_keys(name)
            .await?
            .ok_or_else(|| Error::Internal(format!("service '{name}' has no keys")))?;
        let open = |slot: KeySlot, bytes: &[u8]| -> Result<String, Error> {
            String::from_utf8(self.authority.open(&Self::key_aad(name, slot), bytes)?)
                .map_err(|_| Error::Internal("a sealed service key is not text".into()))
        };
        Ok(ServiceKeys {
            primary: open(KeySlot::Primary, &sealed.primary)?,
            secondary: open(KeySlot::Secondary, &sealed.secondary)?,
        })
    }

    /// `get-keys` (`listKeys/action`).
    pub async fn keys(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
    ) -> Result<ServiceKeys, Error> {
        self.access.authorize(
            caller,
            SERVICE_LIST_KEYS,
            &Self::scope(ws, &format!("services/{name}"))?,
        )?;
        self.find(caller, ws, name).await?;
        self.open_keys(name).await
    }

    /// `regen-key --key Primary|Secondary` (`regenerateKeys/action`): the old key fails from
    /// the next request on.
    pub async fn regenerate_key(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
        slot: KeySlot,
    ) -> Result<ServiceKeys, Error> {
        self.access.authorize(
            caller,
            SERVICE_REGENERATE_KEYS,
            &Self::scope(ws, &format!("services/{name}"))?,
        )?;
        let (service, workspace) = self.find(caller, ws, name).await?;
        self.regenerate_authorized(name, slot, Some((&service, &workspace))).await
    }

    /// Makes a new key in `slot` and, for a running service, puts it in force at once.
    pub(crate) async fn regenerate_authorized(
        &self,
        name: &str,
        slot: KeySlot,
        running: Option<(&Service, &Workspace)>,
    ) -> Result<ServiceKeys, Error> {
        self.ensure_keys(name).await?;
        let mut keys = self.open_keys(name).await?;
        match slot {
            KeySlot::Primary => keys.primary = new_client_secret(),
            KeySlot::Secondary => keys.secondary = new_client_secret(),
        }
        self.directory.store().put_service_keys(name, &self.seal_keys(name, &keys)?).await?;
        if let Some((service, workspace)) = running {
            self.install_gate(service, workspace).await?;
        }
        self.publish(name).await;
        Ok(keys)
    }

    /// `get-token`: a token for this one service. Reading the service is enough (Reader), as
    /// Azure ML's documentation advises for least privilege.
    pub async fn token(
        &self,
        caller: &Principal,
        ws: WorkspaceRef<'_>,
        name: &str,
    ) -> Result<ServiceToken, Error> {
        self.access.authorize(
            caller,
            SERVICE_READ,
            &Self::scope(ws, &format!("services/{name}"))?,
        )?;
        let (service, workspace) = self.find(caller, ws, name).await?;
        if deployment_config(&service.deployment_config)?.auth != AuthMode::Token {
            return Err(Error::InvalidInput(format!(
                "token auth is not enabled on '{name}'; update it with token_auth_enabled: true \
                 (a cluster deployment) to use tokens"
            )));
        }
        self.issue_token(caller, &workspace, name)
    }

    /// A service token for `name` (whose mode the caller checked), valid for its scoring URI.
    pub(crate) fn issue_token(
        &self,
        caller: &Principal,
        workspace: &Workspace,
        name: &str,
    ) -> Result<ServiceToken, Error> {
        let (token, claims) = self.authority.issue_service_token(
            caller,
            workspace.id,
            &self.scoring_uri(name),
            self.token_lifetime,
        )?;
        Ok(ServiceToken {
            token,
            expires_on: claims.exp,
            refresh_after: claims.iat + (claims.exp - claims.iat) / 2,
        })
    }
}
