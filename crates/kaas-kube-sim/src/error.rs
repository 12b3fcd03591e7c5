//! Errors as the Kubernetes API reports them: a `Status` object with a code, a reason and
//! a message worded like the real API server's.

use serde_json::{Value, json};

/// Why a request failed, as `Status.reason` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    BadRequest,
    NotFound,
    AlreadyExists,
    Conflict,
    Invalid,
    MethodNotAllowed,
    UnsupportedMediaType,
    TooManyRequests,
    /// A watch asked for a resource version the change log no longer holds.
    Expired,
    InternalError,
}

impl Reason {
    /// The HTTP status code that goes with the reason.
    pub fn code(self) -> u16 {
        match self {
            Reason::BadRequest => 400,
            Reason::NotFound => 404,
            Reason::MethodNotAllowed => 405,
            Reason::AlreadyExists | Reason::Conflict => 409,
            Reason::Expired => 410,
            Reason::UnsupportedMediaType => 415,
            Reason::Invalid => 422,
            Reason::TooManyRequests => 429,
            Reason::InternalError => 500,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::NotFound => "NotFound",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Invalid => "Invalid",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::Expired => "Expired",
            Reason::InternalError => "InternalError",
        }
    }
}

/// A failed request, rendered as a Kubernetes `Status` by [`ApiError::status`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} ({})", reason.as_str())]
pub struct ApiError {
    pub reason: Reason,
    pub message: String,
    /// `Status.details`: `name`, `group`, `kind` (the resource) and `causes`.
    pub details: Option<Value>,
}

/// The resource as error messages name it: `pods`, `deployments.apps`.
fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

fn details(group: &str, resource: &str, name: &str) -> Value {
    let mut details = json!({"name": name, "kind": resource});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    details
}

impl ApiError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn code(&self) -> u16 {
        self.reason.code()
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Reason::BadRequest, message)
    }

    /// `pods "web" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self {
            reason: Reason::NotFound,
            message: format!("{} \"{name}\" not found", qualified(group, resource)),
            details: Some(details(group, resource, name)),
        }
    }

    /// A path no resource answers to.
    pub fn no_such_path() -> Self {
        Self {
            reason: Reason::NotFound,
            message: "the server could not find the requested resource".to_owned(),
            details: Some(json!({})),
        }
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self {
            reason: Reason::AlreadyExists,
            message: format!("{} \"{name}\" already exists", qualified(group, resource)),
            details: Some(details(group, resource, name)),
        }
    }

    /// A write with a stale `resourceVersion`.
    pub fn stale(group: &str, resource: &str, name: &str) -> Self {
        Self {
            reason: Reason::Conflict,
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                qualified(group, resource)
            ),
            details: Some(details(group, resource, name)),
        }
    }

    /// A field that is not acceptable: `Kind.group "name" is invalid: field: reason`.
    pub fn invalid(group: &str, kind: &str, name: &str, field: &str, reason: &str) -> Self {
        let mut details = json!({
            "name": name,
            "kind": kind,
            "causes": [{"reason": "FieldValueInvalid", "message": reason, "field": field}],
        });
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Self {
            reason: Reason::Invalid,
            message: format!(
                "{} \"{name}\" is invalid: {field}: {reason}",
                qualified(group, kind)
            ),
            details: Some(details),
        }
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            Reason::MethodNotAllowed,
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            Reason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format ({content_type}) - accepted \
                 media types include: application/json-patch+json, \
                 application/merge-patch+json, application/apply-patch+yaml, \
                 application/strategic-merge-patch+json"
            ),
        )
    }

    /// The `Status` object the API server answers with.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.code(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_the_group_qualified_resource() {
        let status = ApiError::not_found("apps", "deployments", "web").status();
        assert_eq!(status["message"], "deployments.apps \"web\" not found");
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["code"], 404);
        assert_eq!(status["details"]["group"], "apps");
        let core = ApiError::not_found("", "pods", "web").status();
        assert_eq!(core["message"], "pods \"web\" not found");
        assert!(core["details"].get("group").is_none());
    }

    #[test]
    fn stale_writes_are_conflicts() {
        let status = ApiError::stale("", "configmaps", "c").status();
        assert_eq!(status["code"], 409);
        assert_eq!(status["reason"], "Conflict");
        assert!(
            status["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Operation cannot be fulfilled on configmaps \"c\""))
        );
    }
}
