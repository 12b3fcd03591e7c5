//! A de-duplicating, delaying work queue of object keys.
//!
//! A key is at most once in the queue; scheduling it again keeps the earlier due time.
//! A key being reconciled is never handed out again until [`WorkQueue::done`]; if it was
//! scheduled meanwhile, it becomes due again right after.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use kaas_store::ObjectKey;
use tokio::sync::Notify;

#[derive(Default)]
struct State {
    /// Due keys ordered by (due, tie-breaker).
    by_due: BTreeSet<(Instant, u64, ObjectKey)>,
    due: HashMap<ObjectKey, (Instant, u64)>,
    active: HashSet<ObjectKey>,
    failures: HashMap<ObjectKey, u32>,
    counter: u64,
}

#[derive(Default)]
pub struct WorkQueue {
    state: Mutex<State>,
    notify: Notify,
}

impl WorkQueue {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State inconsistent in a way that
        // matters more than stopping the controller would.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes `key` due at `at`, or earlier if it already is.
    pub fn schedule(&self, key: ObjectKey, at: Instant) {
        let mut s = self.lock();
        if let Some(&(due, n)) = s.due.get(&key) {
            if due <= at {
                return;
            }
            s.by_due.remove(&(due, n, key.clone()));
        }
        s.counter += 1;
        let n = s.counter;
        s.by_due.insert((at, n, key.clone()));
        s.due.insert(key, (at, n));
        drop(s);
        self.notify.notify_waiters();
    }

    /// Keys waiting (due or not), not counting those being reconciled.
    pub fn len(&self) -> usize {
        self.lock().due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for the earliest due key that is not being reconciled and marks it active.
    pub async fn next(&self) -> ObjectKey {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait_until = {
                let mut s = self.lock();
                let now = Instant::now();
                let mut pick = None;
                let mut earliest_future = None;
                for (due, n, key) in s.by_due.iter() {
                    if s.active.contains(key) {
                        continue;
                    }
                    if *due <= now {
                        pick = Some((*due, *n, key.clone()));
                    } else {
                        earliest_future = Some(*due);
                    }
                    break;
                }
                if let Some(entry) = pick {
                    s.by_due.remove(&entry);
                    s.due.remove(&entry.2);
                    s.active.insert(entry.2.clone());
                    return entry.2;
                }
                earliest_future
            };
            match wait_until {
                Some(at) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Ends the reconcile of `key`, scheduling it again at `requeue_at` if given.
    pub fn done(&self, key: &ObjectKey, requeue_at: Option<Instant>) {
        self.lock().active.remove(key);
        if let Some(at) = requeue_at {
            self.schedule(key.clone(), at);
        } else {
            self.notify.notify_waiters();
        }
    }

    /// Counts a failed reconcile; returns the number of consecutive failures.
    pub fn record_failure(&self, key: &ObjectKey) -> u32 {
        let mut s = self.lock();
        let n = s.failures.entry(key.clone()).or_insert(0);
        *n += 1;
        *n
    }

    pub fn reset_failures(&self, key: &ObjectKey) {
        self.lock().failures.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("Cluster", "default", name)
    }

    #[tokio::test]
    async fn deduplicates_and_orders_by_due_time() {
        let q = WorkQueue::new();
        let now = Instant::now();
        q.schedule(key("b"), now);
        q.schedule(key("a"), now - Duration::from_millis(5));
        q.schedule(key("b"), now + Duration::from_secs(60)); // later: ignored
        assert_eq!(q.len(), 2);
        assert_eq!(q.next().await, key("a"));
        assert_eq!(q.next().await, key("b"));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn an_active_key_is_not_handed_out_twice() {
        let q = Arc::new(WorkQueue::new());
        q.schedule(key("a"), Instant::now());
        let first = q.next().await;
        q.schedule(key("a"), Instant::now()); // changed while being reconciled
        let q2 = q.clone();
        let second = tokio::spawn(async move { q2.next().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "handed out while still active");
        q.done(&first, None);
        let got = tokio::time::timeout(Duration::from_secs(2), second).await;
        assert!(matches!(got, Ok(Ok(k)) if k == key("a")));
    }

    #[tokio::test]
    async fn delayed_keys_wait_for_their_time() {
        let q = WorkQueue::new();
        let started = Instant::now();
        q.schedule(key("a"), started + Duration::from_millis(80));
        let k = q.next().await;
        assert_eq!(k, key("a"));
        assert!(started.elapsed() >= Duration::from_millis(80));
    }

    #[test]
    fn failures_are_counted_per_key() {
        let q = WorkQueue::new();
        assert_eq!(q.record_failure(&key("a")), 1);
        assert_eq!(q.record_failure(&key("a")), 2);
        assert_eq!(q.record_failure(&key("b")), 1);
        q.reset_failures(&key("a"));
        assert_eq!(q.record_failure(&key("a")), 1);
    }
}
