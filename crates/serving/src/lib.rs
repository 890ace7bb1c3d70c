//! # mlgate-serving: model runtimes and the scoring path
//!
//! - [`onnx`]: ONNX models run in process with tract (pure Rust, from crates.io alone):
//!   parsed and optimised once at deploy time, then each request is one plan run. JSON in
//!   (`{"data": [[...]]}` or named inputs), JSON out.
//! - [`python`]: Azure ML's `score.py` contract in long-lived worker processes.
//! - [`sandbox`]: the confinement entry scripts and pip run in (Landlock, no capabilities,
//!   a cleared environment), and the `mlgate sandbox-exec` launcher that applies it.
//! - [`error`]: [`ServeError`], what a scoring request can fail with.
//! - [`host`]: the running services of this process: replicas, concurrency permits,
//!   deadlines, swaps that fail no request, and each service's logs.
//!
//! Who may score is not this crate's business: the server asks the core's scoring gate first,
//! and hands the parsed request here.

pub mod error;
pub mod host;
pub mod onnx;
pub mod python;
pub mod sandbox;

pub use error::ServeError;
pub use host::ServingHost;
