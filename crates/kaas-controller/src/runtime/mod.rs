//! The controller runtime: follows the store's change feed, schedules keys in a
//! de-duplicating work queue, and runs reconciles with bounded concurrency, per-key
//! exponential backoff, periodic resync and graceful shutdown.
//!
//! The contract is kube-runtime's: `reconcile(key) -> Result<Action, Error>`; the
//! runtime guarantees one reconcile per key at a time.

mod queue;

pub use queue::WorkQueue;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kaas_store::{ListFilter, ObjectKey, Store};
use rand::Rng;
use tokio::sync::watch;
use tracing::{Instrument, debug, info_span, warn};

use crate::metrics::{ControllerLabels, Metrics, ReconcileLabels};

/// What to do after a successful reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    pub requeue_after: Option<Duration>,
}

impl Action {
    pub fn requeue(after: Duration) -> Self {
        Self {
            requeue_after: Some(after),
        }
    }

    /// Nothing to do until the object changes (or the next resync).
    pub fn await_change() -> Self {
        Self {
            requeue_after: None,
        }
    }
}

#[async_trait]
pub trait Reconciler: Send + Sync + 'static {
    type Error: std::fmt::Display + Send;

    /// Moves the object with `key` one step closer to its desired state.
    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, Self::Error>;

    /// How long to wait after `error`, the `failures`th in a row, before trying again;
    /// `None`: the runtime's exponential backoff. For errors that waiting alone will not
    /// mend (a quota used up), so they are not retried every few seconds.
    fn retry_after(&self, _error: &Self::Error, _failures: u32) -> Option<Duration> {
        None
    }
}

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Reconciles running at once (of different keys).
    pub concurrency: usize,
    /// Every key is reconciled at least this often.
    pub resync: Duration,
    /// First retry delay after an error; doubles per consecutive error.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Kinds whose change retries at once the failing keys of the same tenant (a
    /// tenant's quota raised: its clusters refused for quota try again).
    pub retry_on: &'static [&'static str],
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            concurrency: 8,
            resync: Duration::from_secs(300),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(300),
            retry_on: &[],
        }
    }
}

/// The retry delay after `failures` consecutive errors: exponential, capped, with
/// ±20% jitter so that many failing keys do not retry in lock-step.
pub fn backoff(config: &ControllerConfig, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    let base = config
        .backoff_base
        .saturating_mul(1u32 << exp)
        .min(config.backoff_max);
    let jitter = rand::rng().random_range(0.8..1.2);
    base.mul_f64(jitter)
}

/// Runs a controller for objects of `kind` until `shutdown` turns true; in-flight
/// reconciles finish first.
pub async fn run_controller<R: Reconciler>(
    kind: &'static str,
    store: Arc<dyn Store>,
    reconciler: Arc<R>,
    config: ControllerConfig,
    metrics: Metrics,
    shutdown: watch::Receiver<bool>,
) {
    let queue = Arc::new(WorkQueue::new());
    let feed = tokio::spawn(follow_feed(
        kind,
        store,
        queue.clone(),
        (config.resync, config.retry_on),
        shutdown.clone(),
    ));
    let mut workers = Vec::new();
    for _ in 0..config.concurrency.max(1) {
        let worker = Worker {
            kind,
            queue: queue.clone(),
            reconciler: reconciler.clone(),
            config: config.clone(),
            metrics: metrics.clone(),
        };
        workers.push(tokio::spawn(worker.run(shutdown.clone())));
    }
    for w in workers {
        if let Err(e) = w.await {
            warn!(kind, error = %e, "controller worker ended abnormally");
        }
    }
    feed.abort();
}

struct Worker<R> {
    kind: &'static str,
    queue: Arc<WorkQueue>,
    reconciler: Arc<R>,
    config: ControllerConfig,
    metrics: Metrics,
}

impl<R: Reconciler> Worker<R> {
    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let labels = ControllerLabels {
            controller: self.kind.to_owned(),
        };
        loop {
            let key = tokio::select! {
                key = self.queue.next() => key,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            self.metrics
                .queue_depth
                .get_or_create(&labels)
                .set(self.queue.len() as i64);
            let started = Instant::now();
            let span = info_span!("reconcile", kind = self.kind, key = %key);
            let result = self.reconciler.reconcile(&key).instrument(span).await;
            self.metrics
                .reconcile_seconds
                .get_or_create(&labels)
                .observe(started.elapsed().as_secs_f64());
            let next = match result {
                Ok(action) => {
                    self.count("ok");
                    self.queue.reset_failures(&key);
                    action.requeue_after
                }
                Err(e) => {
                    self.count("error");
                    let failures = self.queue.record_failure(&key);
                    let delay = self
                        .reconciler
                        .retry_after(&e, failures)
                        .unwrap_or_else(|| backoff(&self.config, failures));
                    debug!(key = %key, error = %e, failures, delay_ms = delay.as_millis() as u64, "reconcile failed; backing off");
                    Some(delay)
                }
            };
            self.queue.done(&key, next.map(|d| Instant::now() + d));
        }
    }

    fn count(&self, result: &str) {
        let labels = ReconcileLabels {
            controller: self.kind.to_owned(),
            result: result.to_owned(),
        };
        self.metrics.reconciles.get_or_create(&labels).inc();
    }
}

/// Schedules every key of `kind` at start and on each resync, and each key the change
/// feed reports in between.
async fn follow_feed(
    kind: &'static str,
    store: Arc<dyn Store>,
    queue: Arc<WorkQueue>,
    (resync, retry_on): (Duration, &'static [&'static str]),
    mut shutdown: watch::Receiver<bool>,
) {
    let mut latest = store.latest_change();
    let mut seen = *latest.borrow_and_update();
    let mut next_resync = Instant::now();
    let mut first_pass = true;
    loop {
        if Instant::now() >= next_resync {
            match store.list(kind, &ListFilter::default()).await {
                Ok(objects) => {
                    // Every key at once at the start; later, spread over the period, so
                    // that a resync is not a wave.
                    let now = Instant::now();
                    for o in objects {
                        if let Some(key) = key_of(kind, &o) {
                            let at = if first_pass {
                                now
                            } else {
                                now + resync.mul_f64(rand::rng().random_range(0.0..1.0))
                            };
                            queue.schedule(key, at);
                        }
                    }
                    first_pass = false;
                    next_resync = now + resync;
                }
                Err(e) => {
                    warn!(kind, error = %e, "resync failed; retrying");
                    next_resync = Instant::now() + Duration::from_secs(1);
                }
            }
        }
        match store.changes_since(seen, 1000).await {
            Ok(changes) => {
                for change in changes {
                    seen = seen.max(change.seq);
                    if change.key.kind == kind {
                        queue.changed(change.key);
                    } else if retry_on.contains(&change.key.kind.as_str()) {
                        queue.retry_failing(&change.key.tenant);
                    }
                }
            }
            Err(e) => warn!(kind, error = %e, "reading the change feed failed"),
        }
        let wake = tokio::time::Instant::from_std(next_resync);
        tokio::select! {
            changed = latest.changed() => { if changed.is_err() { return; } }
            _ = tokio::time::sleep_until(wake) => {}
            // Other replicas write too: look at the feed now and then even without a
            // local notification.
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

fn key_of(kind: &str, object: &serde_json::Value) -> Option<ObjectKey> {
    let meta = object.get("metadata")?;
    Some(ObjectKey::new(
        kind,
        meta.get("tenant")?.as_str()?,
        meta.get("name")?.as_str()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_and_is_capped() {
        let config = ControllerConfig {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            ..ControllerConfig::default()
        };
        let within = |d: Duration, expected: f64| {
            let s = d.as_secs_f64();
            s >= expected * 0.79 && s <= expected * 1.21
        };
        assert!(within(backoff(&config, 1), 0.1));
        assert!(within(backoff(&config, 2), 0.2));
        assert!(within(backoff(&config, 4), 0.8));
        assert!(within(backoff(&config, 30), 10.0));
    }
}
