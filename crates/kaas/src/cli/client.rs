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

    /// Every item of a list that pages, fetched `chunk` at a time (0: in one request),
    /// as one list: the first page's `apiVersion` and `kind` with every page's items.
    /// `params` are the list's other query parameters, sent with every page (a
    /// continue token is only taken with the filters that issued it).
    pub async fn get_all(
        &self,
        path: &str,
        params: &[(&str, String)],
        chunk: u32,
    ) -> Result<Value> {
        let mut items = Vec::new();
        let mut next: Option<String> = None;
        let mut list = Value::Null;
        // A server that keeps answering continue tokens must not keep the CLI forever.
        for _ in 0..1_000_000 {
            let mut query: Vec<(&str, String)> = params.to_vec();
            if chunk > 0 {
                query.push(("limit", chunk.to_string()));
            }
            if let Some(token) = &next {
                query.push(("continue", token.clone()));
            }
            let mut url = reqwest::Url::parse(&format!("{}{path}", self.base))
                .map_err(|e| anyhow!("{}{path} is not a URL: {e}", self.base))?;
            if !query.is_empty() {
                url.query_pairs_mut()
                    .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
            }
            let resp = self.send(self.http.get(url)).await?;
            let status = resp.status();
            let text = resp.text().await?;
            if !status.is_success() {
                let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                return Err(failure(status, &parsed, &text).into());
            }
            let mut page: Value = serde_json::from_str(&text)?;
            if let Some(page_items) = page["items"].as_array_mut() {
                items.append(page_items);
            }
            next = page["metadata"]["continue"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if list.is_null() {
                list = page;
            }
            if next.is_none() {
                break;
            }
        }
        if let Some(obj) = list.as_object_mut() {
            obj.insert("items".to_owned(), Value::Array(items));
            obj.insert("metadata".to_owned(), Value::Object(Default::default()));
        }
        Ok(list)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use axum::extract::{Query, State};
    use serde_json::json;

    use super::*;

    type Seen = Arc<Mutex<Vec<HashMap<String, String>>>>;

    /// A list of seven items that pages as the API does, its continue token the index
    /// of the next item; records every request's query.
    async fn paged_list(
        State(seen): State<Seen>,
        Query(query): Query<HashMap<String, String>>,
    ) -> axum::Json<Value> {
        seen.lock().unwrap().push(query.clone());
        let all: Vec<Value> = (0..7)
            .map(|i| json!({"metadata": {"name": format!("c-{i}")}}))
            .collect();
        let start: usize = query.get("continue").map_or(0, |c| c.parse().unwrap());
        let limit: usize = query.get("limit").map_or(all.len(), |l| l.parse().unwrap());
        let end = (start + limit).min(all.len());
        let metadata = if end < all.len() {
            json!({"continue": end.to_string()})
        } else {
            json!({})
        };
        axum::Json(
            json!({"apiVersion": "kaas.dev/v1alpha1", "kind": "ClusterList",
                          "metadata": metadata, "items": all[start..end]}),
        )
    }

    async fn serve() -> (String, Seen) {
        let seen: Seen = Arc::default();
        let app = axum::Router::new()
            .route("/v1/clusters", axum::routing::get(paged_list))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, seen)
    }

    fn names(list: &Value) -> Vec<&str> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn every_page_is_fetched_with_the_same_filters() {
        let (url, seen) = serve().await;
        let client = Client::new(&url, None).unwrap();
        let params = [("labelSelector", "env in (a,b)".to_owned())];
        let list = client.get_all("/v1/clusters", &params, 3).await.unwrap();
        assert_eq!(
            names(&list),
            ["c-0", "c-1", "c-2", "c-3", "c-4", "c-5", "c-6"]
        );
        assert_eq!(list["kind"], "ClusterList");
        assert_eq!(list["metadata"], json!({}));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3, "{seen:?}");
        let tokens = [None, Some("3"), Some("6")];
        for (query, token) in seen.iter().zip(tokens) {
            assert_eq!(query["limit"], "3");
            assert_eq!(query["labelSelector"], "env in (a,b)");
            assert_eq!(query.get("continue").map(String::as_str), token);
        }
    }

    #[tokio::test]
    async fn a_chunk_size_of_zero_asks_once_for_everything() {
        let (url, seen) = serve().await;
        let client = Client::new(&url, None).unwrap();
        let list = client.get_all("/v1/clusters", &[], 0).await.unwrap();
        assert_eq!(names(&list).len(), 7);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].is_empty(), "{seen:?}");
    }
}
