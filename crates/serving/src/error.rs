//! What a scoring request can fail with, shared by the host and the runtimes (its own module
//! so that the runtimes need not depend on the host that holds them).

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the service does not exist or is not running")]
    Unknown,
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Runtime(String),
    #[error("the request took longer than the service's timeout")]
    Timeout,
    /// The worker serving the request died; it is being replaced.
    #[error("the service's worker crashed while handling the request; retry")]
    Crashed,
    /// Every worker is busy and the queue is full, or the wait for a worker ran out.
    #[error("the service is busy: {0}")]
    Busy(&'static str),
}
