//! The API's errors and the HTTP status of each: precise bodies for 4xx, a
//! generic body for 5xx with the cause logged.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use vigil_index::{StoreError, StoreErrorKind};
use vigil_schema::{SinkError, SinkErrorKind};

/// An error answer.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    NotFound(String),
    PayloadTooLarge(String),
    /// The body did not arrive in time (408).
    RequestTimeout(String),
    UnsupportedMediaType(String),
    /// Try again later (503 with Retry-After).
    Unavailable(String),
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, "internal error answering a request");
                "internal error; see the server log".to_owned()
            }
            ApiError::BadRequest(message)
            | ApiError::NotFound(message)
            | ApiError::PayloadTooLarge(message)
            | ApiError::RequestTimeout(message)
            | ApiError::UnsupportedMediaType(message)
            | ApiError::Unavailable(message) => message,
        };
        let mut response = (status, Json(json!({ "error": message }))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error.kind() {
            StoreErrorKind::BadQuery => ApiError::BadRequest(error.to_string()),
            StoreErrorKind::Overloaded | StoreErrorKind::ShuttingDown => {
                ApiError::Unavailable(error.to_string())
            }
            StoreErrorKind::Storage => ApiError::Internal(error.to_string()),
        }
    }
}

impl From<SinkError> for ApiError {
    fn from(error: SinkError) -> ApiError {
        match error.kind() {
            SinkErrorKind::Overloaded | SinkErrorKind::ShuttingDown => {
                ApiError::Unavailable(error.to_string())
            }
            // Nothing was kept; a sender that retries later may succeed once
            // space is freed, and the audit webhook retries only on errors.
            SinkErrorKind::Storage => {
                tracing::error!(error = %error, "storage refused a batch");
                ApiError::Unavailable("storage cannot keep events right now; see the server log".into())
            }
        }
    }
}

impl From<vigil_rules::AlertError> for ApiError {
    fn from(error: vigil_rules::AlertError) -> ApiError {
        match error.kind() {
            vigil_rules::AlertErrorKind::NotFound => ApiError::NotFound(error.to_string()),
            vigil_rules::AlertErrorKind::Invalid => ApiError::BadRequest(error.to_string()),
            vigil_rules::AlertErrorKind::Storage => ApiError::Internal(error.to_string()),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(error: tokio::task::JoinError) -> ApiError {
        ApiError::Internal(format!("worker task failed: {error}"))
    }
}
