//! The API's one error type: a status and a reason, sent as `{"error": reason}`. Each
//! layer's typed error converts into it here, so the status for every refusal is
//! chosen in one place and never by reading the error's text.

use crate::actors::chat::ChatError;
use crate::actors::router::{QueueError, RouterError};
use crate::call::CallError;
use crate::centre::CentreError;
use crate::routing::engine::RouteError;
use crate::store::StoreError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    reason: String,
    /// Seconds to wait before trying again (a `Retry-After` header).
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, reason)
    }

    /// Asks the client to wait `secs` before trying again (`Retry-After`).
    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            r.insert_header((actix_web::http::header::RETRY_AFTER, secs.max(1)));
        }
        r.json(serde_json::json!({ "error": self.reason }))
    }
}

impl From<ApiError> for HttpResponse {
    fn from(e: ApiError) -> HttpResponse {
        e.error_response()
    }
}

/// An actor that has stopped (or whose mailbox is full).
impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("actor unavailable: {e}"),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::warn!(error = %e, "a request failed in the store");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl From<CentreError> for ApiError {
    fn from(e: CentreError) -> ApiError {
        let status = match &e {
            CentreError::BadLogin => StatusCode::UNAUTHORIZED,
            CentreError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            CentreError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            CentreError::Conflict(_) => StatusCode::CONFLICT,
            CentreError::NotFound(_) => StatusCode::NOT_FOUND,
            CentreError::Forbidden(_) => StatusCode::FORBIDDEN,
            CentreError::Store(_) | CentreError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut a = ApiError::new(status, e.to_string());
        if let CentreError::Throttled(wait) = e {
            a.retry_after = Some(wait.as_secs());
        }
        a
    }
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> ApiError {
        let status = match e {
            RouteError::Gone | RouteError::UnknownItem => StatusCode::GONE,
            RouteError::Offline | RouteError::UnknownAgent => StatusCode::UNAUTHORIZED,
            _ => StatusCode::CONFLICT,
        };
        ApiError::new(status, e.to_string())
    }
}

/// The router refused a transfer, a consult, a login: the work or the colleague is not
/// in a state for it.
impl From<RouterError> for ApiError {
    fn from(e: RouterError) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, e.to_string())
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> ApiError {
        let status = match e {
            QueueError::Exists(_) => StatusCode::CONFLICT,
            QueueError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> ApiError {
        match e {
            ChatError::NotYours => ApiError::new(StatusCode::FORBIDDEN, e.to_string()),
            ChatError::Refused(why) => ApiError::new(StatusCode::CONFLICT, why),
            ChatError::WindowClosed { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        }
    }
}

/// An agent's command on a call the call core refused.
impl From<CallError> for ApiError {
    fn from(e: CallError) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, e.to_string())
    }
}
