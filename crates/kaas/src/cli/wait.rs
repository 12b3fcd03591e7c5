//! `--wait`: follow a cluster's events and status until it is Available (or gone).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Local, Utc};
use serde_json::Value;

use super::Client;

const POLL: Duration = Duration::from_millis(300);

pub fn clock(time: &str) -> String {
    time.parse::<DateTime<Utc>>()
        .map(|t| t.with_timezone(&Local).format("%H:%M:%S").to_string())
        .unwrap_or_else(|_| time.to_owned())
}

/// Prints events after `since`; returns the newest seq.
async fn print_events(client: &Client, name: &str, since: i64) -> Result<i64> {
    let Some(list) = client
        .get_opt(&format!("/v1/clusters/{name}/events?since={since}"))
        .await?
    else {
        return Ok(since);
    };
    let mut last = since;
    for e in list["items"].as_array().into_iter().flatten() {
        last = last.max(e["seq"].as_i64().unwrap_or(last));
        let mark = if e["type"] == "Warning" { "!" } else { " " };
        println!(
            "{} {mark} {:<24} {}",
            e["time"].as_str().map(clock).unwrap_or_default(),
            e["reason"].as_str().unwrap_or(""),
            e["message"].as_str().unwrap_or("")
        );
    }
    Ok(last)
}

/// One line that says where the cluster stands.
pub fn summary(c: &Value) -> String {
    let s = &c["status"];
    let mut parts = vec![format!(
        "phase {}",
        s["phase"].as_str().unwrap_or("Pending")
    )];
    let busy = [
        "RollingOut",
        "ScalingUp",
        "ScalingDown",
        "Remediating",
        "Deleting",
    ];
    for cond in s["conditions"].as_array().into_iter().flatten() {
        let type_ = cond["type"].as_str().unwrap_or("");
        let on = cond["status"] == "True";
        if busy.contains(&type_) {
            if on {
                parts.push(format!(
                    "{type_}: {}",
                    cond["message"].as_str().unwrap_or("")
                ));
            }
        } else {
            parts.push(format!("{} {type_}", if on { "✓" } else { "…" }));
        }
    }
    let cp = &s["controlPlane"];
    parts.push(format!(
        "control plane {}/{}",
        cp["readyReplicas"].as_u64().unwrap_or(0),
        c["spec"]["controlPlane"]["replicas"].as_u64().unwrap_or(0)
    ));
    for p in c["spec"]["nodePools"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or("");
        let st = s["nodePools"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|st| st["name"] == name);
        let field = |k: &str| st.and_then(|st| st[k].as_u64()).unwrap_or(0);
        let mut text = format!(
            "{name} {}/{}",
            field("readyReplicas"),
            p["replicas"].as_u64().unwrap_or(0)
        );
        if field("updatedReplicas") < field("replicas") {
            text.push_str(&format!(" ({} updated)", field("updatedReplicas")));
        }
        parts.push(text);
    }
    parts.join(" · ")
}

/// Available, with every change of the spec carried out. The controller calls a
/// cluster Available only when nothing rolls out, scales or is being replaced, so
/// this is its phase for the current generation.
pub fn settled(c: &Value) -> bool {
    c["status"]["phase"] == "Available"
        && c["metadata"]["generation"] == c["status"]["observedGeneration"]
}

/// Follows one cluster: prints its new events and, when it changes, a line that says
/// where it stands.
struct Follow<'a> {
    client: &'a Client,
    name: &'a str,
    seq: i64,
    last_summary: String,
}

impl<'a> Follow<'a> {
    fn new(client: &'a Client, name: &'a str, from: i64) -> Self {
        Self {
            client,
            name,
            seq: from,
            last_summary: String::new(),
        }
    }

    /// One look: the cluster as it is now, `None` when it is gone.
    async fn poll(&mut self) -> Result<Option<Value>> {
        self.seq = print_events(self.client, self.name, self.seq).await?;
        let cluster = self
            .client
            .get_opt(&format!("/v1/clusters/{}", self.name))
            .await?;
        if let Some(c) = &cluster {
            let line = summary(c);
            if line != self.last_summary {
                println!("  ── {line}");
                self.last_summary = line;
            }
        }
        Ok(cluster)
    }
}

/// Follows a cluster until Ctrl-C, or until it is gone.
pub async fn watch(client: &Client, name: &str) -> Result<ExitCode> {
    let mut follow = Follow::new(client, name, 0);
    loop {
        if follow.poll().await?.is_none() {
            println!("cluster/{name} is gone");
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

fn failure_reason(c: &Value) -> String {
    c["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|k| k["status"] != "True" && k["type"] != "Available")
        .map(|k| {
            format!(
                "{}: {} ({})",
                k["type"].as_str().unwrap_or(""),
                k["message"].as_str().unwrap_or(""),
                k["reason"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The newest event's seq, so that following starts from now.
pub async fn latest_seq(client: &Client, name: &str) -> Result<i64> {
    let mut seq = 0;
    loop {
        let Some(list) = client
            .get_opt(&format!(
                "/v1/clusters/{name}/events?since={seq}&limit=5000"
            ))
            .await?
        else {
            return Ok(seq);
        };
        let items = list["items"].as_array().cloned().unwrap_or_default();
        match items.last().and_then(|e| e["seq"].as_i64()) {
            Some(last) if items.len() == 5000 => seq = last,
            Some(last) => return Ok(last),
            None => return Ok(seq),
        }
    }
}

/// Follows a cluster from event `seq` on until it is Available.
pub async fn until_available(client: &Client, name: &str, timeout: Duration) -> Result<ExitCode> {
    until_available_from(client, name, 0, timeout).await
}

pub async fn until_available_from(
    client: &Client,
    name: &str,
    from: i64,
    timeout: Duration,
) -> Result<ExitCode> {
    let started = Instant::now();
    let mut follow = Follow::new(client, name, from);
    loop {
        let Some(c) = follow.poll().await? else {
            eprintln!("error: cluster {name} does not exist (any more)");
            return Ok(ExitCode::FAILURE);
        };
        match c["status"]["phase"].as_str() {
            Some("Available") if settled(&c) => {
                println!(
                    "cluster/{name} is Available at {} after {:.1}s",
                    c["status"]["apiEndpoint"].as_str().unwrap_or("-"),
                    started.elapsed().as_secs_f64()
                );
                return Ok(ExitCode::SUCCESS);
            }
            Some("Failed") => {
                eprintln!("error: cluster {name} failed: {}", failure_reason(&c));
                return Ok(ExitCode::FAILURE);
            }
            Some("Deleting") => {
                eprintln!("error: cluster {name} is being deleted");
                return Ok(ExitCode::FAILURE);
            }
            _ => {}
        }
        if started.elapsed() > timeout {
            eprintln!(
                "error: timed out after {}s waiting for cluster {name} to become Available; {}",
                timeout.as_secs(),
                failure_reason(&c)
            );
            return Ok(ExitCode::FAILURE);
        }
        tokio::time::sleep(POLL).await;
    }
}

pub async fn until_gone(
    client: &Client,
    name: &str,
    from: i64,
    timeout: Duration,
) -> Result<ExitCode> {
    let started = Instant::now();
    let mut follow = Follow::new(client, name, from);
    loop {
        let Some(c) = follow.poll().await? else {
            println!(
                "cluster/{name} deleted after {:.1}s",
                started.elapsed().as_secs_f64()
            );
            return Ok(ExitCode::SUCCESS);
        };
        if started.elapsed() > timeout {
            eprintln!(
                "error: timed out after {}s waiting for cluster {name} to be deleted; {}",
                timeout.as_secs(),
                failure_reason(&c)
            );
            return Ok(ExitCode::FAILURE);
        }
        tokio::time::sleep(POLL).await;
    }
}
