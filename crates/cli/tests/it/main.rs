//! mlgate's integration suite: ONE test binary (each extra binary costs link time) that starts
//! real servers in-process on ephemeral loopback ports and drives them over HTTPS through the
//! SDK, raw HTTP, or the `mlgate` binary itself.
#![allow(
    clippy::disallowed_methods,
    reason = "the integration tests run real servers on the wall clock"
)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod activity;
mod at_rest;
mod azure;
mod bounded;
mod cli;
mod cli_conventions;
mod console;
mod forged_tokens;
mod hardening;
mod interactive;
mod keys;
mod lifecycle;
mod metrics;
mod models;
mod multinode;
mod oauth;
mod online;
mod operations;
mod rbac;
mod sandbox;
mod service_auth;
mod services;
mod store_migrate;
mod user_lifecycle;
