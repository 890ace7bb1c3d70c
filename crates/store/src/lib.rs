//! # mlgate-store: storage implementations
//!
//! [`sqlite::SqliteStore`] is the embedded default (WAL, versioned migrations). A PostgreSQL
//! implementation of the same traits is planned for multi-node deployments; `conformance`
//! tests in `tests/` are written against the traits so they can run on both.

pub mod blobs;
pub mod sqlite;

pub use blobs::FileBlobStore;
pub use sqlite::SqliteStore;
