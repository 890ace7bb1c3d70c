//! `mlgate keys rotate|list`: run on the server's machine, against its data directory. A
//! running server picks a rotation up at its next key reload (every 30 s).

use anyhow::Result;
use mlgate_core::authority::rotate_signing_keys;
use mlgate_core::clock::{Clock, SystemClock};
use mlgate_core::store::KeyStore;
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use crate::cli::KeysCommand;
use crate::output::{self, Output};
use crate::serve::default_data_dir;

/// Retired keys stay published this long after retirement: the longest access-token lifetime
/// the server accepts as configuration.
const MAX_TOKEN_LIFETIME: time::Duration = time::Duration::days(1);

pub async fn run(cmd: KeysCommand, out: &Output) -> Result<()> {
    let (rotate, data_dir, store) = match cmd {
        KeysCommand::Rotate { dir, store } => (true, dir.data_dir, store),
        KeysCommand::List { dir, store } => (false, dir.data_dir, store),
    };
    let data_dir = data_dir.unwrap_or_else(default_data_dir);
    let store = match store {
        // The master key still comes from the data directory (or MLGATE_MASTER_KEY).
        Some(url) => {
            let url = mlgate_store::StoreUrl::parse(&url).map_err(|e| anyhow::anyhow!("{e}"))?;
            mlgate_store::SqlStore::open(&url)
                .await
                .map_err(|e| anyhow::anyhow!("opening the store {url}: {e}"))?
        }
        None => mlgate_server::open_existing_store(&data_dir).await?,
    };
    if rotate {
        let master = mlgate_server::load_master_key(
            &data_dir,
            std::env::var("MLGATE_MASTER_KEY").ok().as_deref(),
            true,
        )?;
        rotate_signing_keys(&store, &master, SystemClock.now(), MAX_TOKEN_LIFETIME).await?;
    }
    let keys = store.signing_keys().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let rows: Vec<_> = keys
        .iter()
        .map(|k| {
            json!({
                "kid": k.kid.0,
                "state": k.state.as_str(),
                "createdAt": k.created_at.format(&Rfc3339).unwrap_or_default(),
                "retiredAt": k.retired_at.and_then(|t| t.format(&Rfc3339).ok()),
            })
        })
        .collect();
    output::print_table(
        out,
        &rows,
        &["Kid=kid", "State=state", "CreatedAt=createdAt", "RetiredAt=retiredAt"],
    )
}
