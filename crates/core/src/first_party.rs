//! First-party clients beyond the CLI: mlgate's web console, a public client present in every
//! tenant whose one redirect URI is the server's own `/console/callback`.
//!
//! The console is added to tenants when a server starts and before a sign-in to a tenant that
//! lacks it (tenants made later, stores bootstrapped before the console existed), rather than
//! in the bootstrap transaction, so no store schema or trait changes.

use time::OffsetDateTime;

use crate::directory::Directory;
use crate::error::Error;
use crate::ids::{AppId, ObjectId, TenantId};
use crate::records::ServicePrincipal;
use crate::store::StoreError;

/// The path of the console's redirect URI on this server.
pub const CONSOLE_CALLBACK_PATH: &str = "/console/callback";

pub fn console_app_id() -> AppId {
    // A constant that parses; a failure would be a programming error caught by the test below.
    mlgate_proto::CONSOLE_CLIENT_ID.parse().unwrap_or(AppId(uuid::Uuid::nil()))
}

/// The console's redirect URI for a server reached at `public_url` (no trailing slash).
pub fn console_redirect_uri(public_url: &str) -> String {
    format!("{}{CONSOLE_CALLBACK_PATH}", public_url.trim_end_matches('/'))
}

/// Whether `redirect_uri` is the one registered for `client` on this server: the console's
/// own callback, compared exactly. Every other client is limited to loopback URIs elsewhere.
pub fn is_first_party_redirect(client: AppId, redirect_uri: &str, public_url: &str) -> bool {
    client == console_app_id() && redirect_uri == console_redirect_uri(public_url)
}

pub fn console_application(tenant: TenantId, now: OffsetDateTime) -> ServicePrincipal {
    ServicePrincipal {
        object_id: ObjectId::new_random(),
        app_id: console_app_id(),
        tenant_id: tenant,
        display_name: "mlgate console".into(),
        account_enabled: true,
        public_client: true,
        owner: None,
        created_at: now,
    }
}

/// Registers the console in `tenant` unless it is there. Idempotent, and safe when several
/// nodes race (the loser's insert is a conflict, which means it is there).
pub async fn ensure_console(directory: &Directory, tenant: TenantId) -> Result<(), Error> {
    let store = directory.store();
    if store.service_principal_by_app_id(tenant, console_app_id()).await?.is_some() {
        return Ok(());
    }
    match store.insert_service_principal(&console_application(tenant, directory.now()), None).await
    {
        Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// [`ensure_console`] for every tenant: at server start.
pub async fn ensure_console_everywhere(directory: &Directory) -> Result<(), Error> {
    for t in directory.tenants().iter() {
        ensure_console(directory, t.id).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_console_and_only_its_exact_callback() {
        let url = "https://ml.example:8443";
        assert_ne!(console_app_id(), AppId(uuid::Uuid::nil()));
        assert!(is_first_party_redirect(
            console_app_id(),
            "https://ml.example:8443/console/callback",
            url
        ));
        assert!(!is_first_party_redirect(
            console_app_id(),
            "https://ml.example:8443/console/callback/",
            url
        ));
        assert!(!is_first_party_redirect(
            console_app_id(),
            "https://evil.example/console/callback",
            url
        ));
        assert!(!is_first_party_redirect(
            console_app_id(),
            "https://ml.example:8443/console/callback?x=1",
            url
        ));
        let cli: AppId = mlgate_proto::CLI_CLIENT_ID.parse().unwrap();
        assert!(!is_first_party_redirect(cli, "https://ml.example:8443/console/callback", url));
    }
}
