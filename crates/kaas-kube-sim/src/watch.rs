//! Watches: which changes a watch reports, and the newline-delimited JSON stream of
//! `{"type": …, "object": …}` events a watch request answers with.
//!
//! Semantics, as the real API server's: without a `resourceVersion` (or with `"0"`) the
//! watch starts with an `ADDED` event per existing object, then reports changes; with a
//! resource version it reports the changes after it, from the change log, or, when the
//! log no longer reaches back that far, a single `ERROR` event with a `410 Expired`
//! status. `sendInitialEvents=true` sends the existing objects and then a `BOOKMARK`
//! annotated `k8s.io/initial-events-end`. An object that starts or stops matching the
//! selectors is reported `ADDED` or `DELETED`. A watch ends after `timeoutSeconds`, when
//! the client goes away, or (with an `ERROR` event) when it falls too far behind.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::error::{ApiError, Reason};
use crate::store::{Change, EventType, Selectors, Target, WatchStart};

/// The event `change` is for a watch of `target` with `selectors`, if any.
pub fn event_for(
    target: &Target,
    selectors: &Selectors,
    change: &Change,
) -> Option<(String, Value)> {
    if !target.contains(&change.key) {
        return None;
    }
    let matches_now = selectors.matches(&change.object);
    let event = match change.event {
        EventType::Added => matches_now.then_some(EventType::Added),
        EventType::Deleted => matches_now.then_some(EventType::Deleted),
        EventType::Modified => {
            let matched_before = change
                .previous
                .as_ref()
                .is_some_and(|p| selectors.matches(p));
            match (matched_before, matches_now) {
                (true, true) => Some(EventType::Modified),
                (false, true) => Some(EventType::Added),
                (true, false) => Some(EventType::Deleted),
                (false, false) => None,
            }
        }
    }?;
    Some((event.as_str().to_owned(), target.present(&change.object)))
}

/// How an event's object is shown: as it is, or as a one-row Table for `kubectl get -w`.
pub type Render = Box<dyn Fn(Value) -> Value + Send + Sync>;

struct Watching {
    pending: VecDeque<(String, Value)>,
    receiver: tokio::sync::broadcast::Receiver<std::sync::Arc<Change>>,
    target: Target,
    selectors: Selectors,
    deadline: Option<Instant>,
    render: Render,
    done: bool,
}

fn line(kind: &str, object: Value) -> Result<Bytes, Infallible> {
    let mut text = json!({"type": kind, "object": object}).to_string();
    text.push('\n');
    Ok(Bytes::from(text))
}

fn error_line(error: &ApiError) -> Result<Bytes, Infallible> {
    line("ERROR", error.status())
}

/// The body of a watch response.
pub fn stream(
    start: WatchStart,
    target: Target,
    selectors: Selectors,
    timeout: Option<Duration>,
    render: Render,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let expired = start.expired;
    let state = Watching {
        pending: start.initial.into(),
        receiver: start.receiver,
        target,
        selectors,
        deadline: timeout.map(|t| Instant::now() + t),
        render,
        done: false,
    };
    futures::stream::unfold((state, expired), |(mut w, expired)| async move {
        if w.done {
            return None;
        }
        if let Some(error) = expired {
            w.done = true;
            return Some((error_line(&error), (w, None)));
        }
        if let Some((kind, object)) = w.pending.pop_front() {
            let object = if kind == "BOOKMARK" {
                object
            } else {
                (w.render)(object)
            };
            return Some((line(&kind, object), (w, None)));
        }
        loop {
            let received = match w.deadline {
                Some(deadline) => tokio::select! {
                    r = w.receiver.recv() => r,
                    () = tokio::time::sleep_until(deadline) => return None,
                },
                None => w.receiver.recv().await,
            };
            match received {
                Ok(change) => {
                    if let Some((kind, object)) = event_for(&w.target, &w.selectors, &change) {
                        let object = (w.render)(object);
                        return Some((line(&kind, object), (w, None)));
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    w.done = true;
                    let error = ApiError::new(
                        Reason::Expired,
                        "the watch fell too far behind; list again and watch from there",
                    );
                    return Some((error_line(&error), (w, None)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::resources::Catalog;
    use crate::selector::LabelSelector;
    use crate::store::ObjectKey;

    fn change(event: EventType, previous: Option<Value>, object: Value) -> Change {
        Change {
            revision: 1,
            key: ObjectKey {
                group: String::new(),
                resource: "pods".to_owned(),
                namespace: "default".to_owned(),
                name: "p".to_owned(),
            },
            event,
            object,
            previous,
        }
    }

    fn pod(app: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default", "labels": {"app": app}}})
    }

    #[test]
    fn selectors_turn_modifications_into_additions_and_deletions() {
        let catalog = Catalog::new([]);
        let pods = catalog.by_resource("", "v1", "pods").unwrap().clone();
        let target = Target::new(pods, "v1", Some("default"));
        let selectors = Selectors {
            labels: LabelSelector::parse("app=web").unwrap(),
            ..Selectors::default()
        };
        let kind = |c: &Change| event_for(&target, &selectors, c).map(|(k, _)| k);
        assert_eq!(
            kind(&change(EventType::Added, None, pod("web"))).as_deref(),
            Some("ADDED")
        );
        assert_eq!(kind(&change(EventType::Added, None, pod("db"))), None);
        assert_eq!(
            kind(&change(EventType::Modified, Some(pod("db")), pod("web"))).as_deref(),
            Some("ADDED")
        );
        assert_eq!(
            kind(&change(EventType::Modified, Some(pod("web")), pod("db"))).as_deref(),
            Some("DELETED")
        );
        assert_eq!(
            kind(&change(EventType::Modified, Some(pod("web")), pod("web"))).as_deref(),
            Some("MODIFIED")
        );
        assert_eq!(
            kind(&change(EventType::Deleted, None, pod("web"))).as_deref(),
            Some("DELETED")
        );
        let elsewhere = Target::new(target.resource.clone(), "v1", Some("other"));
        assert!(
            event_for(
                &elsewhere,
                &selectors,
                &change(EventType::Added, None, pod("web"))
            )
            .is_none()
        );
    }
}
