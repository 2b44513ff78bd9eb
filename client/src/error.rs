//! Client errors.

/// Why a client call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server refused the request as malformed; retrying will not help.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The deadline passed while the outcome is unknown: the write may or may not have
    /// happened.
    #[error("timed out; outcome unknown")]
    Unknown,
    /// No store answered before the deadline, and nothing was sent that could have applied.
    #[error("unavailable: {0}")]
    Unavailable(String),
}
