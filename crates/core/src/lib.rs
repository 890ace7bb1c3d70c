//! # mlgate-core: the domain
//!
//! Everything mlgate decides lives here, free of HTTP and SQL:
//! - [`ids`]: typed identifiers (tenants, objects, applications, subscriptions, keys).
//! - [`clock`]: time as a parameter, so tests can move it.
//! - [`records`]: the records every store keeps (tenants, users, service principals, secrets,
//!   keys, grants, workspaces, models, services).
//! - [`store`]: the storage traits that `mlgate-store` implements, one impl per database.
//! - [`secrets`], [`password`], [`keys`]: the security-critical primitives: client-secret
//!   hashing, argon2id passwords (verified in a bounded pool), signing keys encrypted at rest
//!   under a master key.
//! - [`changes`]: the change log that lets every node sharing a store see each other's
//!   changes (what is published, and the store's part).
//! - [`lockout`]: limits on guessing passwords and user codes (smart lock-out, back-off).
//! - [`tokens`]: JWT issuing (cached ES256 key pair) and verification.
//! - [`directory`]: bootstrap and the directory's use cases (service principals, credentials).
//! - [`applications`]: Graph's application objects beside their service principals (`az ad`).
//! - [`endpoints`], [`code`]: the Azure ML SDK v2's online endpoints over the same web
//!   services, and the code assets (source folders) their deployments run.
//! - [`activity`], [`signins`]: the activity log (management writes, in the same transaction)
//!   and the sign-in log (every grant and sign-in, batched by the server); [`monitor`] reads
//!   them; [`users`]: the user lifecycle (update, delete, resets).
//! - [`authority`]: the OAuth 2.0 grants (client credentials, password, refresh token, device
//!   code, authorization code), the claims they sign, and their AADSTS errors.
//! - [`model_registry`], [`services`], [`scoring`], [`resources`], [`access`], [`rbac`]: the
//!   model registry, web services (their configurations, keys and tokens), the scoring gate,
//!   resource groups and workspaces, access control and its engine.
//! - [`error`]: the one error type of the management use cases.
//! - [`escrow`]: the master key wrapped under a passphrase (argon2id + AES-256-GCM) for backups.
//! - [`telemetry`]: lock-free latency histograms the layers record into for `/metrics`.
//!
//! Layering invariant: this crate never names axum, hyper or sqlx. The server maps its errors to
//! responses; the store crate fills its traits.

pub mod access;
pub mod activity;
pub mod applications;
pub mod authority;
pub mod changes;
pub mod clock;
pub mod code;
pub mod directory;
pub mod endpoints;
pub mod error;
pub mod escrow;
pub mod first_party;
pub mod ids;
pub mod keys;
pub mod lockout;
pub mod model_registry;
pub mod monitor;
pub mod password;
pub mod principal;
pub mod rbac;
pub mod records;
pub mod resources;
pub mod scoring;
pub mod secrets;
pub mod services;
pub mod signins;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod users;

pub use error::Error;
