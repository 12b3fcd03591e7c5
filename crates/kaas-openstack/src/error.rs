//! A failed OpenStack call, with the service's own message taken out of whichever
//! error body shape that service uses, and its mapping onto [`CloudError`].

use std::fmt;

use kaas_cloud::{CloudError, ResourceKind};
use serde_json::Value;

/// A failed OpenStack call: the HTTP status (none when no answer came), the service's
/// own message, and what was called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsError {
    pub status: Option<u16>,
    pub message: String,
    /// The service's own name for the error where its body gives one: Neutron's
    /// `type` (`OverQuota`, `SecurityGroupRuleExists`, `RouterInUse`).
    pub code: Option<String>,
    pub request_id: Option<String>,
    /// The service type (`compute`, `network`, `identity`).
    pub service: String,
    pub method: String,
    /// The path as requested (with its query string), relative to the endpoint.
    pub path: String,
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.service)?;
        if !self.method.is_empty() {
            write!(f, " {} {}", self.method, self.path)?;
        }
        f.write_str(": ")?;
        if let Some(status) = self.status {
            write!(f, "{status} ")?;
        }
        f.write_str(&self.message)?;
        if let Some(id) = &self.request_id {
            write!(f, " (request {id})")?;
        }
        Ok(())
    }
}

impl std::error::Error for OsError {}

/// Words that say an error is about quota, in the messages of Nova ("Quota exceeded
/// for instances", "Maximum number of ports exceeded"), Neutron ("OverQuota"), Octavia
/// ("Quota has been met"), Cinder ("VolumeSizeExceedsAvailableQuota") and Keystone's
/// per-user limits ("Unable to create additional application credentials, maximum of
/// 5 already exceeded for user.").
fn mentions_quota(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("quota")
        || lower.contains("maximum number of")
        || (lower.contains("maximum of") && lower.contains("exceeded"))
}

impl OsError {
    /// An error for an HTTP answer with status `status` and body `body`.
    pub fn from_response(
        service: &str,
        method: &str,
        path: &str,
        status: u16,
        body: &[u8],
        request_id: Option<String>,
    ) -> Self {
        Self {
            status: Some(status),
            message: error_message(status, body),
            code: error_code(body),
            request_id,
            service: service.to_owned(),
            method: method.to_owned(),
            path: path.to_owned(),
        }
    }

    /// An error that has no HTTP answer (connection failed, no endpoint, bad answer).
    pub fn local(service: &str, method: &str, path: &str, message: impl Into<String>) -> Self {
        Self {
            status: None,
            message: message.into(),
            code: None,
            request_id: None,
            service: service.to_owned(),
            method: method.to_owned(),
            path: path.to_owned(),
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }

    /// Whether the service named the error `code` (Neutron's `type`).
    pub fn is_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// Whether the service said the project's quota does not allow this.
    pub fn is_quota(&self) -> bool {
        matches!(self.status, Some(403 | 409 | 413)) && mentions_quota(&self.message)
    }

    /// The [`CloudError`] for this failure of a call about the `kind` resource `id`.
    /// The message kept is the service's own, as it reaches users.
    ///
    /// Neutron reports quota (`OverQuota`) as 409, Nova, Octavia and Keystone (its
    /// limit on a user's application credentials) as 403, Nova's older releases and
    /// Cinder as 413; all of them become `QuotaExceeded`.
    pub fn to_cloud(&self, kind: ResourceKind, id: &str) -> CloudError {
        match self.status {
            Some(404) => CloudError::NotFound {
                kind,
                id: id.to_owned(),
            },
            _ if self.is_quota() => CloudError::QuotaExceeded {
                message: self.message.clone(),
            },
            Some(409) => CloudError::Conflict {
                message: self.message.clone(),
            },
            // Rate limited: the same call will pass later.
            Some(429) => CloudError::Unavailable {
                message: self.to_string(),
            },
            Some(400..=499) => CloudError::BadRequest {
                message: self.message.clone(),
            },
            _ => CloudError::Unavailable {
                message: self.to_string(),
            },
        }
    }
}

/// The longest message kept from a body that is not a known error shape.
const MAX_MESSAGE: usize = 500;

/// The service's own message from an error body, whatever shape the service uses;
/// the status line (`404 Not Found`) when the body says nothing.
pub fn error_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let found = match serde_json::from_str::<Value>(&text) {
        Ok(json) => json_message(&json),
        Err(_) => Some(text.into_owned()),
    };
    let cleaned = found.map(|m| clean(&m)).filter(|m| !m.is_empty());
    cleaned.unwrap_or_else(|| status_line(status))
}

/// The service's own name for the error, where its body gives one: Neutron's `type`.
pub fn error_code(body: &[u8]) -> Option<String> {
    let json: Value = serde_json::from_slice(body).ok()?;
    str_field(json.get("NeutronError")?, "type").map(str::to_owned)
}

fn status_line(status: u16) -> String {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    format!("{status} {reason}").trim_end().to_owned()
}

fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn json_message(json: &Value) -> Option<String> {
    // Neutron: {"NeutronError": {"type", "message", "detail"}} (older: a string).
    if let Some(neutron) = json.get("NeutronError") {
        if let Some(text) = neutron.as_str() {
            return Some(text.to_owned());
        }
        if let Some(message) = str_field(neutron, "message") {
            return Some(match str_field(neutron, "detail") {
                Some(detail) if detail != message => format!("{message} ({detail})"),
                _ => message.to_owned(),
            });
        }
    }
    // Octavia (and other Pecan/WSME services): {"faultstring", "faultcode", "debuginfo"}.
    if let Some(fault) = str_field(json, "faultstring") {
        return Some(fault.to_owned());
    }
    // Keystone: {"error": {"code", "title", "message"}}.
    if let Some(message) = json.get("error").and_then(|e| str_field(e, "message")) {
        return Some(message.to_owned());
    }
    // Glance and WebOb's JSON errors: {"code", "title", "message"}.
    if let Some(message) = str_field(json, "message") {
        return Some(message.to_owned());
    }
    // Placement, Ironic and the API-WG format: {"errors": [{"title", "detail"}]}.
    if let Some(errors) = json.get("errors").and_then(Value::as_array) {
        let parts: Vec<&str> = errors
            .iter()
            .filter_map(|e| str_field(e, "detail").or_else(|| str_field(e, "title")))
            .collect();
        if !parts.is_empty() {
            return Some(parts.join("; "));
        }
    }
    // Nova (and Cinder): {"itemNotFound" | "badRequest" | "forbidden" | ...: {"message", "code"}}.
    if let Some(message) = json
        .as_object()
        .and_then(|object| object.values().find_map(|v| str_field(v, "message")))
    {
        return Some(message.to_owned());
    }
    if let Some(text) = json.as_str() {
        return Some(text.to_owned());
    }
    None
}

/// A message fit for one line: HTML reduced to its text, whitespace collapsed,
/// length bounded.
fn clean(message: &str) -> String {
    let text = if looks_like_html(message) {
        strip_html(message)
    } else {
        message.to_owned()
    };
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() > MAX_MESSAGE {
        let cut: String = collapsed.chars().take(MAX_MESSAGE).collect();
        format!("{cut}…")
    } else {
        collapsed
    }
}

fn looks_like_html(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    ["<html", "<!doctype", "</", "<br", "<p>"]
        .iter()
        .any(|marker| lower.contains(marker))
}

/// The text of an HTML page: without `<head>`, `<script>` and `<style>`, tags
/// removed, the common entities decoded.
fn strip_html(html: &str) -> String {
    let mut text = html.to_owned();
    for element in ["head", "script", "style"] {
        text = remove_element(&text, element);
    }
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

/// `text` without every `<element ...> ... </element>` (ASCII case-insensitive).
fn remove_element(text: &str, element: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let open = format!("<{element}");
    let close = format!("</{element}>");
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(start) = lower[pos..].find(&open).map(|i| i + pos) {
        out.push_str(&text[pos..start]);
        match lower[start..].find(&close) {
            Some(end) => pos = start + end + close.len(),
            None => {
                pos = text.len();
                break;
            }
        }
    }
    out.push_str(&text[pos..]);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn check(status: u16, body: &str, expected: &str) {
        assert_eq!(error_message(status, body.as_bytes()), expected, "{body}");
    }

    #[test]
    fn nova_bodies() {
        check(
            403,
            r#"{"forbidden": {"code": 403, "message": "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"}}"#,
            "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances",
        );
        check(
            404,
            r#"{"itemNotFound": {"code": 404, "message": "Instance 5e1f could not be found."}}"#,
            "Instance 5e1f could not be found.",
        );
        check(
            400,
            r#"{"badRequest": {"code": 400, "message": "Invalid input for field/attribute flavorRef. Value: <None>."}}"#,
            "Invalid input for field/attribute flavorRef. Value: <None>.",
        );
        check(
            409,
            r#"{"conflictingRequest": {"code": 409, "message": "Cannot 'delete' instance x while it is in task_state deleting"}}"#,
            "Cannot 'delete' instance x while it is in task_state deleting",
        );
        check(
            413,
            r#"{"overLimit": {"code": 413, "message": "Maximum number of key pairs exceeded", "retryAfter": "0"}}"#,
            "Maximum number of key pairs exceeded",
        );
    }

    #[test]
    fn neutron_bodies() {
        check(
            409,
            r#"{"NeutronError": {"type": "OverQuota", "message": "Quota exceeded for resources: ['network'].", "detail": ""}}"#,
            "Quota exceeded for resources: ['network'].",
        );
        check(
            404,
            r#"{"NeutronError": {"type": "NetworkNotFound", "message": "Network abc could not be found.", "detail": ""}}"#,
            "Network abc could not be found.",
        );
        check(
            400,
            r#"{"NeutronError": {"type": "HTTPBadRequest", "message": "Invalid input", "detail": "cidr is wrong"}}"#,
            "Invalid input (cidr is wrong)",
        );
        check(
            404,
            r#"{"NeutronError": "Port p1 could not be found"}"#,
            "Port p1 could not be found",
        );
    }

    #[test]
    fn neutron_names_its_errors() {
        let code = |body: &str| error_code(body.as_bytes());
        assert_eq!(
            code(
                r#"{"NeutronError": {"type": "SecurityGroupRuleExists", "message": "Security group rule already exists. Rule id is r1.", "detail": ""}}"#
            )
            .as_deref(),
            Some("SecurityGroupRuleExists")
        );
        assert_eq!(
            code(r#"{"NeutronError": "Port p1 could not be found"}"#),
            None
        );
        assert_eq!(
            code(r#"{"forbidden": {"code": 403, "message": "Quota exceeded"}}"#),
            None
        );
        assert_eq!(code("<html>x</html>"), None);
    }

    #[test]
    fn octavia_bodies() {
        check(
            403,
            r#"{"faultcode": "Client", "faultstring": "Quota has been met for resources: Load Balancer", "debuginfo": null}"#,
            "Quota has been met for resources: Load Balancer",
        );
        check(
            409,
            r#"{"faultcode": "Client", "faultstring": "Load Balancer 1a2b is immutable and cannot be updated.", "debuginfo": null}"#,
            "Load Balancer 1a2b is immutable and cannot be updated.",
        );
    }

    #[test]
    fn keystone_bodies() {
        check(
            401,
            r#"{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}"#,
            "The request you have made requires authentication.",
        );
    }

    #[test]
    fn glance_and_plain_bodies() {
        check(
            404,
            "<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not Found</h1>\n  No image found with ID 42<br /><br />\n\n\n </body>\n</html>",
            "404 Not Found No image found with ID 42",
        );
        check(
            404,
            r#"{"code": 404, "title": "Not Found", "message": "The resource could not be found.<br /><br />\n\n\n"}"#,
            "The resource could not be found.",
        );
        check(
            400,
            "400 Bad Request\n\nProvided object does not match schema 'image': 'x' is not one of ['raw', 'qcow2']\n\n   ",
            "400 Bad Request Provided object does not match schema 'image': 'x' is not one of ['raw', 'qcow2']",
        );
        check(
            409,
            "<p>Rule &quot;x&quot; &amp; more</p>",
            "Rule \"x\" & more",
        );
        check(
            400,
            r#"{"errors": [{"status": 400, "title": "Bad Request", "detail": "JSON does not validate"}]}"#,
            "JSON does not validate",
        );
    }

    #[test]
    fn empty_or_unknown_bodies_give_the_status_line() {
        check(503, "", "503 Service Unavailable");
        check(502, "   \n", "502 Bad Gateway");
        check(500, r#"{"unexpected": 1}"#, "500 Internal Server Error");
        check(599, "", "599");
        let long = "x".repeat(2000);
        assert_eq!(
            error_message(500, long.as_bytes()).chars().count(),
            MAX_MESSAGE + 1
        );
    }

    fn error(status: Option<u16>, message: &str) -> OsError {
        OsError {
            status,
            message: message.into(),
            code: None,
            request_id: Some("req-1".into()),
            service: "compute".into(),
            method: "POST".into(),
            path: "/servers".into(),
        }
    }

    #[test]
    fn display_names_the_call() {
        assert_eq!(
            error(Some(403), "Quota exceeded").to_string(),
            "compute POST /servers: 403 Quota exceeded (request req-1)"
        );
        let local = OsError::local("load-balancer", "", "", "no endpoint");
        assert_eq!(local.to_string(), "load-balancer: no endpoint");
    }

    #[test]
    fn cloud_errors_keep_the_service_message() {
        let kind = ResourceKind::Server;
        let quota =
            "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances";
        let cases = [
            (
                Some(404),
                "gone",
                CloudError::NotFound {
                    kind,
                    id: "s1".into(),
                },
            ),
            (
                Some(403),
                quota,
                CloudError::QuotaExceeded {
                    message: quota.into(),
                },
            ),
            (
                Some(413),
                "Maximum number of ports exceeded",
                CloudError::QuotaExceeded {
                    message: "Maximum number of ports exceeded".into(),
                },
            ),
            (
                Some(409),
                "Quota exceeded for resources: ['port'].",
                CloudError::QuotaExceeded {
                    message: "Quota exceeded for resources: ['port'].".into(),
                },
            ),
            (
                Some(403),
                "Unable to create additional application credentials, maximum of 3 already \
                 exceeded for user.",
                CloudError::QuotaExceeded {
                    message: "Unable to create additional application credentials, maximum \
                              of 3 already exceeded for user."
                        .into(),
                },
            ),
            (
                Some(409),
                "busy",
                CloudError::Conflict {
                    message: "busy".into(),
                },
            ),
            (
                Some(403),
                "Policy doesn't allow x",
                CloudError::BadRequest {
                    message: "Policy doesn't allow x".into(),
                },
            ),
            (
                Some(400),
                "bad",
                CloudError::BadRequest {
                    message: "bad".into(),
                },
            ),
            (
                Some(401),
                "auth",
                CloudError::BadRequest {
                    message: "auth".into(),
                },
            ),
            (
                Some(429),
                "slow down",
                CloudError::Unavailable {
                    message: "compute POST /servers: 429 slow down (request req-1)".into(),
                },
            ),
            (
                Some(503),
                "down",
                CloudError::Unavailable {
                    message: "compute POST /servers: 503 down (request req-1)".into(),
                },
            ),
            (
                None,
                "connection refused",
                CloudError::Unavailable {
                    message: "compute POST /servers: connection refused (request req-1)".into(),
                },
            ),
        ];
        for (status, message, expected) in cases {
            assert_eq!(
                error(status, message).to_cloud(kind, "s1"),
                expected,
                "{status:?} {message}"
            );
        }
    }
}
