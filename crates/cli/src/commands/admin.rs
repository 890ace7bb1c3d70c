//! `mlgate admin reset-password`: the recovery of a lost administrator password. It works on
//! the store directly, so it needs what only the server's operator has: the data directory
//! (and, for a shared PostgreSQL store, the master key, which is checked against the store).

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::{Result, bail};
use mlgate_core::store::Store;
use serde_json::json;

use super::usage;
use crate::cli::AdminCommand;
use crate::output::{self, Output};
use crate::serve::default_data_dir;

pub async fn run(cmd: AdminCommand, out: &Output) -> Result<()> {
    let AdminCommand::ResetPassword {
        dir,
        store,
        user,
        generate,
        force_change_password_next_sign_in,
    } = cmd;
    let data_dir = dir.data_dir.unwrap_or_else(default_data_dir);
    let store: Arc<dyn Store> = match store {
        Some(url) => {
            if !data_dir.is_dir() {
                bail!("the data directory {} does not exist", data_dir.display());
            }
            let url = mlgate_store::StoreUrl::parse(&url).map_err(|e| anyhow::anyhow!("{e}"))?;
            let store = mlgate_store::SqlStore::open(&url)
                .await
                .map_err(|e| anyhow::anyhow!("opening the store {url}: {e}"))?;
            // Only the holder of the store's master key may reset through a shared store.
            let from_env = std::env::var("MLGATE_MASTER_KEY").ok();
            let master = mlgate_server::load_master_key(&data_dir, from_env.as_deref(), true)?;
            mlgate_server::follower::check_master_key(&store, &master, from_env.is_some()).await?;
            Arc::new(store)
        }
        None => Arc::new(mlgate_server::open_existing_store(&data_dir).await?),
    };
    let password =
        if generate { mlgate_core::secrets::new_client_secret() } else { ask_new_password()? };
    let operator = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let u = mlgate_core::users::reset_offline(
        store,
        &user,
        &password,
        force_change_password_next_sign_in,
        mlgate_core::clock::Clock::now(&mlgate_core::clock::SystemClock),
        &format!("{operator} (offline)"),
    )
    .await?;
    if generate {
        let path = data_dir.join(format!("reset-password-{}", u.object_id));
        crate::commands::write_secret_file(&path, &password)?;
        eprintln!(
            "the new password of {} was written to {} (mode 0600): read it, then delete the file",
            u.user_principal_name,
            path.display()
        );
    }
    output::print(
        out,
        &json!({
            "id": u.object_id.to_string(),
            "userPrincipalName": u.user_principal_name,
            "accountEnabled": u.account_enabled,
            "forceChangePasswordNextSignIn": u.force_change_password,
        }),
    )
}

/// Asked twice at the terminal, without echo; without a terminal, `--generate` is the way.
fn ask_new_password() -> Result<String> {
    if !std::io::stdin().is_terminal() {
        return Err(usage(
            "standard input is not a terminal to ask for the new password on; pass --generate \
             to have one generated and written to a 0600 file",
        ));
    }
    let first = rpassword::prompt_password("New password: ")?;
    let again = rpassword::prompt_password("New password again: ")?;
    if first != again {
        return Err(usage("the two passwords differ"));
    }
    Ok(first)
}
