//! Bounded HTTP: every answer read with a size cap, every request with timeouts, every
//! failure named after the place tried.

use std::time::Duration;

use crate::error::ArtifactError;

/// How much and how long kaas waits for an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The largest artifact (a chart, a manifest, an index) taken.
    pub max_bytes: u64,
    /// The longest a whole request may take, body included.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// The most redirects followed.
    pub max_redirects: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 50 << 20,
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            max_redirects: 5,
        }
    }
}

/// Manifests and tokens are small: a registry answering more is refused early.
pub const MAX_SMALL_BYTES: u64 = 4 << 20;

/// An attempt at one artifact in one place: makes the errors that name both.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub artifact: String,
    pub place: String,
}

impl Attempt {
    pub fn new(artifact: impl Into<String>, place: impl Into<String>) -> Self {
        Self {
            artifact: artifact.into(),
            place: place.into(),
        }
    }

    pub fn at(&self, place: impl Into<String>) -> Self {
        Self::new(self.artifact.clone(), place)
    }

    pub fn not_found(&self) -> ArtifactError {
        ArtifactError::NotFound {
            artifact: self.artifact.clone(),
            place: self.place.clone(),
        }
    }

    pub fn mismatch(&self, expected: &str, actual: &str) -> ArtifactError {
        ArtifactError::DigestMismatch {
            artifact: self.artifact.clone(),
            place: self.place.clone(),
            expected: expected.to_owned(),
            actual: actual.to_owned(),
        }
    }

    pub fn status(&self, status: u16, message: String) -> ArtifactError {
        ArtifactError::Status {
            artifact: self.artifact.clone(),
            place: self.place.clone(),
            status,
            message,
        }
    }

    pub fn too_large(&self, limit: u64) -> ArtifactError {
        ArtifactError::TooLarge {
            artifact: self.artifact.clone(),
            place: self.place.clone(),
            limit,
        }
    }

    pub fn unreachable(&self, reason: impl std::fmt::Display) -> ArtifactError {
        ArtifactError::Unreachable {
            artifact: self.artifact.clone(),
            place: self.place.clone(),
            reason: reason.to_string(),
        }
    }

    pub fn invalid(&self, reason: impl Into<String>) -> ArtifactError {
        ArtifactError::Invalid {
            artifact: self.artifact.clone(),
            place: self.place.clone(),
            reason: reason.into(),
        }
    }

    /// A failed send: the cause chain, which says timeout, refused connection, DNS.
    pub fn send_failed(&self, e: &reqwest::Error) -> ArtifactError {
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            reason.push_str(": ");
            reason.push_str(&s.to_string());
            source = s.source();
        }
        if e.is_redirect() {
            reason = format!("too many redirects ({reason})");
        }
        self.unreachable(reason)
    }

    /// The body of a successful answer, at most `limit` bytes.
    pub async fn body(
        &self,
        mut response: reqwest::Response,
        limit: u64,
    ) -> Result<Vec<u8>, ArtifactError> {
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(self.too_large(limit));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.unreachable(format!("the answer broke off: {e}")))?
        {
            if bytes.len() as u64 + chunk.len() as u64 > limit {
                return Err(self.too_large(limit));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// The error for a failed answer: 404 is not found, anything else its status and
    /// the start of what the server said.
    pub async fn failure(&self, response: reqwest::Response) -> ArtifactError {
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return self.not_found();
        }
        let text = self
            .body(response, 64 << 10)
            .await
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
            .unwrap_or_default();
        let message: String = text.chars().take(300).collect();
        self.status(status.as_u16(), message)
    }
}

/// The client every request goes through.
pub(crate) fn client(limits: &Limits) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(limits.timeout)
        .connect_timeout(limits.connect_timeout)
        .redirect(reqwest::redirect::Policy::limited(limits.max_redirects))
        .user_agent(concat!("kaas/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}
