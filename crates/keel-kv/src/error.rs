//! What a request can fail with, and the HTTP answer each failure gets.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A failed request. Every variant maps to one status code and a JSON body
/// `{"error": <kind>, "message": <text>}`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// No leader is known, even after waiting for one.
    #[error("no leader: the cluster has not elected one within the request timeout")]
    NoLeader,
    /// The request was accepted by raft but not applied in time; a write may
    /// or may not take effect later.
    #[error("timed out after {0} ms; a write may or may not have been applied")]
    Timeout(u64),
    /// Only the leader can serve this request (it alone knows how far each
    /// member has caught up); the payload is the leader, 0 if unknown.
    #[error("this member is not the leader; send the request to the leader (member {0})")]
    NotLeader(u64),
    /// The member is shutting down.
    #[error("this member is stopping")]
    Stopping,
    /// The member is no longer part of the cluster.
    #[error("this member has been removed from the cluster")]
    Removed,
    /// Too many uncommitted proposals.
    #[error("too many uncommitted proposals; retry later")]
    Overloaded,
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The body is larger than the configured limit.
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// What was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The client took longer than the limit to send its request (or the
    /// request took longer than it to serve), in ms.
    #[error("request not completed within {0} ms")]
    RequestTimeout(u64),
    /// The method is not one the route serves.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// Something failed inside the member.
    #[error("internal error: {0}")]
    Internal(String),
}

impl KvError {
    fn status(&self) -> StatusCode {
        match self {
            KvError::NoLeader | KvError::Timeout(_) | KvError::Stopping => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            KvError::Removed => StatusCode::GONE,
            KvError::NotLeader(_) => StatusCode::MISDIRECTED_REQUEST,
            KvError::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            KvError::BadRequest(_) => StatusCode::BAD_REQUEST,
            KvError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            KvError::NotFound(_) => StatusCode::NOT_FOUND,
            KvError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            KvError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            KvError::Conflict(_) => StatusCode::CONFLICT,
            KvError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            KvError::NoLeader => "no_leader",
            KvError::Timeout(_) => "timeout",
            KvError::Stopping => "stopping",
            KvError::NotLeader(_) => "not_leader",
            KvError::Removed => "removed",
            KvError::Overloaded => "overloaded",
            KvError::BadRequest(_) => "bad_request",
            KvError::TooLarge(_) => "too_large",
            KvError::NotFound(_) => "not_found",
            KvError::RequestTimeout(_) => "request_timeout",
            KvError::MethodNotAllowed => "method_not_allowed",
            KvError::Conflict(_) => "conflict",
            KvError::Internal(_) => "internal",
        }
    }

    /// Maps an error of the raft node.
    pub fn from_raft(e: &keel::Error) -> KvError {
        use keel::DropReason;
        match e {
            keel::Error::ProposalDropped(DropReason::NoLeader | DropReason::Transferring) => {
                KvError::NoLeader
            }
            keel::Error::ProposalDropped(DropReason::QuotaExceeded) => KvError::Overloaded,
            keel::Error::ProposalDropped(DropReason::NotMember) => KvError::Removed,
            keel::Error::ProposalDropped(DropReason::InvalidConfChange) => {
                KvError::BadRequest("raft refused the configuration change".into())
            }
            keel::Error::Stopped => KvError::Stopping,
            keel::Error::Timeout => KvError::Timeout(0),
            other => KvError::Internal(other.to_string()),
        }
    }
}

impl From<crate::state::ChangeRefused> for KvError {
    fn from(why: crate::state::ChangeRefused) -> KvError {
        match why {
            crate::state::ChangeRefused::NotFound(_) | crate::state::ChangeRefused::Gone(_) => {
                KvError::NotFound(why.to_string())
            }
            _ => KvError::Conflict(why.to_string()),
        }
    }
}

/// What a client is told of an internal error.
pub const INTERNAL_MESSAGE: &str = "internal error; the member's log has the detail";

impl IntoResponse for KvError {
    fn into_response(self) -> Response {
        // Raft's own text names internals: the log gets it, the client the kind.
        if let KvError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error answering a request");
            let body = serde_json::json!({ "error": self.kind(), "message": INTERNAL_MESSAGE });
            return (self.status(), Json(body)).into_response();
        }
        let body = serde_json::json!({ "error": self.kind(), "message": self.to_string() });
        (self.status(), Json(body)).into_response()
    }
}
