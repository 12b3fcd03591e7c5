//! From kube's errors to [`WorkloadError`]: whether the cluster could not be reached or
//! answered with an error, with the API server's own message.

use kaas_cloud::WorkloadError;
use kube::core::Status;

/// HTTP codes that mean the API server (or what stands in front of it) is not serving.
const UNAVAILABLE: [u16; 3] = [502, 503, 504];

/// Maps a failed request to `endpoint`: connection, TLS and timeout failures and 502, 503
/// and 504 answers are [`WorkloadError::Unreachable`]; other answers are
/// [`WorkloadError::Api`] with the `Status` message.
pub(crate) fn from_kube(endpoint: &str, error: kube::Error) -> WorkloadError {
    match error {
        kube::Error::Api(status) if UNAVAILABLE.contains(&status.code) => {
            WorkloadError::Unreachable {
                endpoint: endpoint.to_owned(),
                message: status_message(&status),
            }
        }
        kube::Error::Api(status) => WorkloadError::Api {
            message: status_message(&status),
        },
        error @ (kube::Error::HyperError(_) | kube::Error::Service(_)) => {
            WorkloadError::Unreachable {
                endpoint: endpoint.to_owned(),
                message: chain(&error),
            }
        }
        error => WorkloadError::Api {
            message: chain(&error),
        },
    }
}

/// The `Status` message, or its reason and code when it has none.
pub(crate) fn status_message(status: &Status) -> String {
    if !status.message.is_empty() {
        status.message.clone()
    } else if !status.reason.is_empty() {
        format!("{} ({})", status.reason, status.code)
    } else {
        format!("HTTP {}", status.code)
    }
}

/// The code of an API answer, if the error is one.
pub(crate) fn api_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// An error and its sources, `outer: inner: innermost`, without repeats (some errors
/// print their source in their own message).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// A caller's mistake found before any request.
pub(crate) fn invalid(message: impl Into<String>) -> WorkloadError {
    WorkloadError::Api {
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Status::failure(message, reason).with_code(code).boxed())
    }

    #[test]
    fn unavailable_answers_are_unreachable_with_the_status_message() {
        for code in UNAVAILABLE {
            let error = from_kube(
                "https://10.0.0.1:6443",
                status(code, "ServiceUnavailable", "etcd is down"),
            );
            assert_eq!(
                error,
                WorkloadError::Unreachable {
                    endpoint: "https://10.0.0.1:6443".to_owned(),
                    message: "etcd is down".to_owned()
                }
            );
        }
    }

    #[test]
    fn other_answers_are_api_errors_with_the_status_message() {
        let error = from_kube(
            "https://x",
            status(404, "NotFound", "nodes \"n\" not found"),
        );
        assert_eq!(
            error,
            WorkloadError::Api {
                message: "nodes \"n\" not found".to_owned()
            }
        );
        let error = from_kube("https://x", status(500, "InternalError", ""));
        assert_eq!(
            error,
            WorkloadError::Api {
                message: "InternalError (500)".to_owned()
            }
        );
    }
}
