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
            StoreError::DigestMismatch { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "DigestMismatch",
                e.to_string(),
            ),
            StoreError::Invalid(_) | StoreError::Backend(_) => {
                tracing::error!(error = %e, "store failed");
                Self::internal(e.to_string())
            }
        }
    }
}

/// What the caller's cloud said, as the API answers it: a setup it refuses (no or a
/// refused credential) is a conflict with the tenant's state, not a fault of the server.
impl From<kaas_cloud::CloudError> for ApiError {
    fn from(e: kaas_cloud::CloudError) -> Self {
        use kaas_cloud::CloudError as E;
        let message = format!("the tenant's cloud: {e}");
        match e {
            E::BadRequest { .. } | E::Conflict { .. } => Self::conflict(message),
            E::QuotaExceeded { .. } => Self::new(StatusCode::FORBIDDEN, "QuotaExceeded", message),
            E::NotFound { .. } | E::Unavailable { .. } | E::InProgress { .. } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", message)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

/// Gives the `{code, message, details}` shape to the errors axum answers by itself when
/// a request cannot be taken apart (a body over the size limit, a path that is not
/// UTF-8), which come as plain text.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::PAYLOAD_TOO_LARGE => "PayloadTooLarge",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
        s if s.is_server_error() => "Internal",
        _ => "BadRequest",
    };
    let (parts, body) = response.into_parts();
    let message = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_owned(),
    };
    let mut response = ApiError::new(status, code, message).into_response();
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn body_of(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn plain_text_errors_get_the_error_shape() {
        let plain = (
            StatusCode::PAYLOAD_TOO_LARGE,
            "Failed to buffer the request body: length limit exceeded",
        )
            .into_response();
        let response = json_errors(plain).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            response.headers()[axum::http::header::CONTENT_TYPE],
            "application/json"
        );
        let body = body_of(response).await;
        assert_eq!(body["code"], "PayloadTooLarge");
        assert_eq!(
            body["message"],
            "Failed to buffer the request body: length limit exceeded"
        );
        assert_eq!(body["details"], serde_json::json!([]));
    }

    #[tokio::test]
    async fn json_errors_and_successes_pass_unchanged() {
        let error = ApiError::not_found("cluster \"x\" not found");
        let response = json_errors(error.clone().into_response()).await;
        assert_eq!(body_of(response).await["message"], error.message);
        let yaml = (
            [(axum::http::header::CONTENT_TYPE, "application/yaml")],
            "kind: Config\n",
        )
            .into_response();
        let response = json_errors(yaml).await;
        assert_eq!(
            response.headers()[axum::http::header::CONTENT_TYPE],
            "application/yaml"
        );
    }
}
