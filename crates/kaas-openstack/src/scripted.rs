//! A scripted OpenStack on a local port for unit tests: it answers each request with
//! the next reply pushed (500 when none is left) and records what it was asked, so a
//! test sees every call the session or the provider made.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{TimeDelta, Utc};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::config::{Auth, CloudConfig, Scope, Secret};
use crate::session::Session;

pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

pub(crate) fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: vec![("x-openstack-request-id".into(), format!("req-{status}"))],
        body: body.into(),
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: String,
}

/// Answers each request with the next scripted reply (500 when none is left), one
/// request per connection, and records what it was asked.
pub(crate) struct Fake {
    pub(crate) url: String,
    replies: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    pub(crate) async fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let replies: Arc<Mutex<VecDeque<Reply>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (r, s) = (replies.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, r.clone(), s.clone()));
            }
        });
        Fake { url, replies, seen }
    }

    pub(crate) fn push(&self, reply: Reply) {
        self.replies.lock().unwrap().push_back(reply);
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// A Keystone token answer whose catalog points at this server.
    pub(crate) fn token(&self, token: &str, expires_in: TimeDelta) -> Reply {
        let url = &self.url;
        let body = json!({"token": {
            "methods": ["password"],
            "expires_at": (Utc::now() + expires_in).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            "user": {"id": "u1", "name": "demo", "domain": {"id": "default"}},
            "project": {"id": "p1", "name": "demo", "domain": {"id": "default"}},
            "catalog": [
                {"type": "compute", "name": "nova", "endpoints": [
                    {"interface": "internal", "region_id": "RegionOne", "region": "RegionOne", "url": format!("{url}/internal/v2.1")},
                    {"interface": "public", "region_id": "RegionOne", "region": "RegionOne", "url": format!("{url}/compute/v2.1/")},
                ]},
                {"type": "network", "name": "neutron", "endpoints": [
                    {"interface": "public", "region_id": "RegionOne", "url": url},
                ]},
                {"type": "identity", "name": "keystone", "endpoints": [
                    {"interface": "public", "region_id": "RegionOne", "url": format!("{url}/identity/")},
                ]},
            ],
        }});
        Reply {
            status: 201,
            headers: vec![("x-subject-token".into(), token.into())],
            body: body.to_string(),
        }
    }

    pub(crate) fn config(&self) -> CloudConfig {
        CloudConfig {
            name: None,
            auth_url: format!("{}/identity/v3", self.url),
            auth: Auth::Password {
                username: None,
                user_id: Some("u1".into()),
                password: Secret::new("pw"),
                user_domain_name: None,
                user_domain_id: None,
                scope: Scope::project("p1"),
            },
            region_name: Some("RegionOne".into()),
            interface: "public".into(),
            verify: true,
            cacert: None,
            endpoint_override: BTreeMap::new(),
        }
    }

    pub(crate) async fn session(&self) -> Session {
        self.push(self.token("t1", TimeDelta::hours(1)));
        Session::new(self.config()).await.unwrap()
    }
}

async fn serve(
    mut stream: TcpStream,
    replies: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.unwrap();
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap().split(' ');
    let method = request_line.next().unwrap().to_owned();
    let path = request_line.next().unwrap().to_owned();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .map(|v| v.parse().unwrap())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap();
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
    seen.lock().unwrap().push(Seen {
        method,
        path,
        headers,
        body,
    });
    let reply = replies
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| reply(500, "no scripted reply"));
    let mut out = format!(
        "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&reply.body);
    let _ = stream.write_all(out.as_bytes()).await;
    let _ = stream.shutdown().await;
}
