//! A small client of the kaas REST API.

use std::time::Duration;

use anyhow::{Result, anyhow};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// An error answer of the API, shown as the API worded it.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub details: Vec<(String, String)>,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.details.is_empty() {
            return write!(
                f,
                "{} ({}): {}",
                self.code,
                self.status.as_u16(),
                self.message
            );
        }
        write!(
            f,
            "{} ({}): the request was refused",
            self.code,
            self.status.as_u16()
        )?;
        for (field, reason) in &self.details {
            write!(f, "\n  {field}: {reason}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiFailure {}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    /// Sent as the `Kaas-Tenant` header: the tenant the operator acts in.
    tenant: Option<String>,
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            base: server.trim_end_matches('/').to_owned(),
            token,
            tenant: None,
        })
    }

    /// Acts in `tenant` (the operator's token only).
    pub fn tenant(mut self, tenant: Option<String>) -> Self {
        self.tenant = tenant;
        self
    }

    /// Sends `req` as this client: its token and the tenant it acts in.
    async fn send(&self, mut req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(tenant) = &self.tenant {
            req = req.header("kaas-tenant", tenant);
        }
        req.send()
            .await
            .map_err(|e| anyhow!("cannot reach the kaas server at {}: {e}", self.base))
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = self.send(req).await?;
        let status = resp.status();
        let text = resp.text().await?;
        if status.is_success() {
            if text.trim().is_empty() {
                return Ok(None);
            }
            return Ok(Some(serde_json::from_str(&text)?));
        }
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Err(failure(status, &parsed, &text).into())
    }

    /// A body that is not JSON (a kubeconfig, user data).
    pub async fn get_bytes(&self, path: &str) -> Result<Vec<u8>> {
        let url = format!("{}{path}", self.base);
        let req = self.http.get(&url);
        let resp = self.send(req).await?;
        let status = resp.status();
        let bytes = resp.bytes().await?.to_vec();
        if status.is_success() {
            return Ok(bytes);
        }
        let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Err(failure(status, &parsed, &String::from_utf8_lossy(&bytes)).into())
    }

    /// PUTs raw bytes (an artifact); uploads may take longer than other requests.
    pub async fn put_bytes(&self, path: &str, bytes: Vec<u8>) -> Result<Option<Value>> {
        let url = format!("{}{path}", self.base);
        let req = self
            .http
            .put(&url)
            .timeout(Duration::from_secs(600))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes);
        let resp = self.send(req).await?;
        let status = resp.status();
        let text = resp.text().await?;
        if status.is_success() {
            return Ok(serde_json::from_str(&text).ok());
        }
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Err(failure(status, &parsed, &text).into())
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        Ok(self
            .request(Method::GET, path, None)
            .await?
            .unwrap_or(Value::Null))
    }

    /// `None` on 404.
    pub async fn get_opt(&self, path: &str) -> Result<Option<Value>> {
        match self.request(Method::GET, path, None).await {
            Ok(v) => Ok(v),
            Err(e) if is_status(&e, StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

pub fn is_status(e: &anyhow::Error, status: StatusCode) -> bool {
    e.downcast_ref::<ApiFailure>()
        .is_some_and(|f| f.status == status)
}

/// The API's error answer, as the API worded it.
fn failure(status: StatusCode, parsed: &Value, text: &str) -> ApiFailure {
    let details = parsed["details"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|d| {
                    (
                        d["field"].as_str().unwrap_or("").to_owned(),
                        d["reason"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    ApiFailure {
        status,
        code: parsed["code"].as_str().unwrap_or("Error").to_owned(),
        message: parsed["message"]
            .as_str()
            .map_or_else(|| text.trim().to_owned(), str::to_owned),
        details,
    }
}
