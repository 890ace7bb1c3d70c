//! The store conformance suite: every test runs against SQLite (always) and PostgreSQL (when
//! `MLGATE_TEST_POSTGRES_URL` names a cluster; `scripts/postgres.sh` starts one), each on a
//! fresh database, through `Arc<dyn Store>` only. The races run many tasks at once on a
//! multi-threaded runtime.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod audit;
mod directory;
mod flows;
mod migrations;
mod races;
mod records;
mod resources;

/// `conformance!(name)` runs `name(store)` once per backend: `name::sqlite` and
/// `name::postgres` (which says it was skipped when no cluster is given).
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let (store, _guard) = crate::support::sqlite().await;
                super::$name(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let Some(store) = crate::support::postgres().await else {
                    eprintln!("skipped: {} is not set", mlgate_store::testing::POSTGRES_URL_VAR);
                    return;
                };
                super::$name(store).await;
            }
        }
    )*};
}
pub(crate) use conformance;
