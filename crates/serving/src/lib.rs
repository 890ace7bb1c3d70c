//! # mlgate-serving: model runtimes and the scoring path
//!
//! - [`onnx`]: ONNX models run in process with tract (pure Rust, from crates.io alone):
//!   parsed and optimised once at deploy time, then each request is one plan run. JSON in
//!   (`{"data": [[...]]}` or named inputs), JSON out.
//!
//! The entry-script (`score.py`) runtime, deployment states and per-service authentication
//! come next (see the issues); the scoring path is shaped so that a credential check slots in
//! front of [`onnx::OnnxModel::score`] without copying the request.

pub mod host;
pub mod onnx;
pub mod python;

pub use host::{ServeError, ServingHost};
