//! What every handler shares: the authority (and through it the directory and the store),
//! access control and the resource use cases.

use std::sync::Arc;

use mlgate_core::access::Access;
use mlgate_core::applications::Applications;
use mlgate_core::authority::Authority;
use mlgate_core::model_registry::Models;
use mlgate_core::resources::Resources;
use mlgate_core::services::Services;
use mlgate_core::store::Store;
use mlgate_serving::ServingHost;

/// Cloned for every extractor of every request: one reference count, not one per field
/// (with a score of `Arc`s, the clones and drops were 8 % of a token grant's CPU, their
/// counters bouncing between cores).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    pub authority: Arc<Authority>,
    pub access: Arc<Access>,
    pub resources: Arc<Resources>,
    pub models: Arc<Models>,
    pub services: Arc<Services>,
    /// Graph's application objects (`az ad`).
    pub applications: Arc<Applications>,
    /// Model-management operations (`Operation-Location`) the Azure ML SDK polls.
    pub operations: Arc<crate::routes::mms::Operations>,
    /// Online endpoints (the SDK v2's face of the same services) and code assets.
    pub endpoints: Arc<mlgate_core::endpoints::OnlineEndpoints>,
    pub code: Arc<mlgate_core::code::CodeAssets>,
    /// ARM long-running operations (deployments, key regeneration, deletes) clients poll.
    pub arm_operations: Arc<crate::routes::online::ArmOperations>,
    /// The services running in this process.
    pub serving: Arc<ServingHost>,
    /// Starts, restores and stops them.
    pub deployer: Arc<crate::deployments::Deployer>,
    pub store: Arc<dyn Store>,
    /// `https://host:port`, no trailing slash.
    pub public_url: Arc<str>,
    /// Mark the sign-in pages' cookies Secure (when served over HTTPS).
    pub secure_cookies: bool,
    /// Proxies whose `X-Forwarded-For` names the client (`--trusted-proxy`).
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// Reading the activity and sign-in logs.
    pub monitor: Arc<mlgate_core::monitor::Monitor>,
    /// The sign-in log's writer (batched, off the request path).
    pub signins: crate::audit::SignInLog,
    /// The web console's signed-in sessions (this process's).
    pub console: Arc<crate::web::console::session::Sessions>,
    /// What `/metrics` shows (requests, tokens, scoring, sign-in failures).
    pub metrics: Arc<crate::metrics::Metrics>,
}
