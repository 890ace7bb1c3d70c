//! `mlgate store migrate --from sqlite://... --to postgres://...`: a single node's store moved
//! into PostgreSQL (or any store into an empty one), verified by counting every table.

use anyhow::{Result, bail};
use mlgate_store::{SqlStore, StoreUrl};
use serde_json::json;

use crate::cli::StoreCommand;
use crate::output::{self, Output};

pub async fn run(cmd: StoreCommand, out: &Output) -> Result<()> {
    let StoreCommand::Migrate { from, to } = cmd;
    let from = StoreUrl::parse(&from).map_err(|e| anyhow::anyhow!("--from: {e}"))?;
    let to = StoreUrl::parse(&to).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    if from == to {
        bail!("--from and --to name the same store");
    }
    // Reading must not create an empty store where the operator mistyped a path.
    if let StoreUrl::Sqlite(path) = &from
        && !path.is_file()
    {
        bail!("{} holds no mlgate store", path.display());
    }
    let source = SqlStore::open(&from).await.map_err(|e| anyhow::anyhow!("opening {from}: {e}"))?;
    let target = SqlStore::open(&to).await.map_err(|e| anyhow::anyhow!("opening {to}: {e}"))?;
    let report = mlgate_store::copy::copy_all(&source, &target)
        .await
        .map_err(|e| anyhow::anyhow!("copying {from} into {to}: {e}"))?;
    source.close().await;
    target.close().await;
    eprintln!("copied {} rows from {from} into {to}; every table's count matches", report.total());
    let rows: Vec<_> = report.tables.iter().map(|(t, n)| json!({"table": t, "rows": n})).collect();
    output::print_table(out, &rows, &["Table=table", "Rows=rows"])
}
