//! Role-based access control, Azure style. Security-critical.
//!
//! - [`scope`]: ARM scopes (`/`, subscription, resource group, resource and its children),
//!   compared case-insensitively; an assignment reaches every scope below its own.
//! - [`action`]: action names and Azure's wildcard patterns.
//! - [`role`]: role definitions in Azure's JSON, the built-in roles, validation.
//! - [`engine`]: the in-memory index of assignments and the one [`engine::Engine::authorize`]
//!   function every management route calls; a denial names principal, action and scope.

pub mod action;
pub mod catalog;
pub mod engine;
pub mod role;
pub mod scope;

pub use action::{Action, ActionPattern};
pub use engine::{Allowed, Denied, Engine};
pub use role::{RoleDefinition, RoleDefinitionFile};
pub use scope::Scope;
