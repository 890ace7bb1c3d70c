//! What every handler shares: the authority (and through it the directory and the store).

use std::sync::Arc;

use mlgate_core::authority::Authority;
use mlgate_core::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub authority: Arc<Authority>,
    pub store: Arc<dyn Store>,
    /// `https://host:port`, no trailing slash.
    pub public_url: Arc<str>,
}
