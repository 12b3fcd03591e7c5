use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kaas_core::ValidationErrors;
use kaas_store::StoreError;
use serde::Serialize;
use serde_json::Value;

/// Every error the API returns: `{code, message, details}` with the fitting status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    /// CamelCase, stable: `Invalid`, `NotFound`, `Conflict`, `AlreadyExists`, `Unauthorized`.
    pub code: &'static str,
    pub message: String,
    /// For `Invalid`: `[{field, reason}]`.
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Value::Array(Vec::new()),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal", message)
    }

    pub fn invalid(errors: ValidationErrors) -> Self {
        let details = serde_json::to_value(&errors.0).unwrap_or(Value::Null);
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "Invalid",
            message: format!("invalid: {errors}"),
            details,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound { .. } => Self::not_found(e.to_string()),
            StoreError::AlreadyExists { .. } => {
                Self::new(StatusCode::CONFLICT, "AlreadyExists", e.to_string())
            }
            StoreError::Conflict { .. } => Self::conflict(e.to_string()),
            StoreError::Invalid(_) | StoreError::Backend(_) => {
                tracing::error!(error = %e, "store failed");
                Self::internal(e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}
