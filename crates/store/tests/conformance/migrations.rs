//! Nodes that start together migrate once: the migrations run under a lock (PostgreSQL's
//! advisory lock; SQLite's write lock), and every node then sees the whole schema.

use mlgate_core::store::{DirectoryStore, Store};
use mlgate_store::SqlStore;
use sqlx::Connection;

use crate::support::*;

const NODES: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_together_on_postgres_migrate_once() {
    let Some(base) = mlgate_store::testing::postgres_url() else {
        eprintln!("skipped: {} is not set", mlgate_store::testing::POSTGRES_URL_VAR);
        return;
    };
    let url = mlgate_store::testing::fresh_postgres_database(&base).await.unwrap();
    let opens = (0..NODES).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { SqlStore::open_postgres(&url).await })
    });
    let stores: Vec<SqlStore> = futures_join(opens).await.into_iter().map(|r| r.unwrap()).collect();
    // Each migration recorded once, and every node works on the schema.
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let unique: std::collections::BTreeSet<_> = versions.iter().collect();
    assert_eq!(versions.len(), unique.len(), "{versions:?}");
    assert!(!versions.is_empty());
    assert!(stores[0].bootstrap(&bootstrap_data()).await.unwrap());
    for s in &stores {
        s.ping().await.unwrap();
        assert_eq!(s.list_tenants().await.unwrap().len(), 1);
    }
    // A node started later finds nothing to do.
    let late = SqlStore::open_postgres(&url).await.unwrap();
    let again: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(again as usize, versions.len());
    late.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_opening_one_sqlite_file_together_migrate_once() {
    let (_, guard) = sqlite().await;
    let file = guard.path().join("shared.db");
    let opens = (0..NODES).map(|_| {
        let file = file.clone();
        tokio::spawn(async move { SqlStore::open_sqlite(&file).await })
    });
    let stores: Vec<SqlStore> = futures_join(opens).await.into_iter().map(|r| r.unwrap()).collect();
    assert!(stores[0].bootstrap(&bootstrap_data()).await.unwrap());
    for s in &stores {
        assert_eq!(s.list_tenants().await.unwrap().len(), 1);
    }
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}
