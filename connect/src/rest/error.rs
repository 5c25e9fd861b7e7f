//! [`RestError`]: an error answer in Kafka Connect's shape,
//! `{"error_code": <HTTP status>, "message": "..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ConnectError;

/// An HTTP error status with a message naming the problem.
#[derive(Debug)]
pub(crate) struct RestError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl RestError {
    /// 400: a malformed or invalid request.
    pub(crate) fn bad_request(message: impl Into<String>) -> RestError {
        RestError { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    /// 404: no such resource.
    pub(crate) fn not_found(message: impl Into<String>) -> RestError {
        RestError { status: StatusCode::NOT_FOUND, message: message.into() }
    }

    /// 409: conflicts with the current state.
    pub(crate) fn conflict(message: impl Into<String>) -> RestError {
        RestError { status: StatusCode::CONFLICT, message: message.into() }
    }
}

impl From<ConnectError> for RestError {
    fn from(e: ConnectError) -> RestError {
        let status = match &e {
            ConnectError::UnknownConnector(_) | ConnectError::UnknownTask { .. } => StatusCode::NOT_FOUND,
            ConnectError::DuplicateConnector(_) => StatusCode::CONFLICT,
            ConnectError::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
            ConnectError::ConfigFile { .. }
            | ConnectError::WorkerConfig(_)
            | ConnectError::ConnectorConfig { .. }
            | ConnectError::UnknownClass { .. }
            | ConnectError::Converter { .. }
            | ConnectError::Transform { .. }
            | ConnectError::NotStopped(_)
            | ConnectError::InvalidOffsets { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        RestError { status, message: e.to_string() }
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.status.as_u16(), "message": self.message});
        super::json_response(self.status, &body)
    }
}
