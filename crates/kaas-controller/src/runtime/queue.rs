//! A de-duplicating, delaying, fair work queue of object keys.
//!
//! A key is at most once in the queue; scheduling it again keeps the earlier due time.
//! A key being reconciled is never handed out again until [`WorkQueue::done`]; if it was
//! scheduled meanwhile, it becomes due again right after.
//!
//! Keys come in two priorities: a change (someone changed the object: [`WorkQueue::changed`])
//! goes before a routine look (a requeue, a resync: [`WorkQueue::schedule`]), so that a
//! wave of routine looks never delays a change. Within a priority, the tenants take turns:
//! each hand-out goes to the next tenant with a due key, so one tenant's thousands of due
//! keys cannot hold up another tenant's one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use kaas_store::ObjectKey;
use tokio::sync::Notify;

/// How urgent a key is: changes before routine looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Priority {
    Change = 0,
    Routine = 1,
}

/// Due keys of one tenant and priority, ordered by (due, tie-breaker).
type Lane = BTreeSet<(Instant, u64, ObjectKey)>;
/// Due keys of one priority, per tenant.
type Lanes = BTreeMap<String, Lane>;

#[derive(Default)]
struct State {
    /// By priority (index: `Priority as usize`).
    lanes: [Lanes; 2],
    /// Where each waiting key is: its due time, tie-breaker and priority.
    due: HashMap<ObjectKey, (Instant, u64, Priority)>,
    active: HashSet<ObjectKey>,
    failures: HashMap<ObjectKey, u32>,
    counter: u64,
    /// The tenant served last, per priority: the next hand-out starts after it.
    last_tenant: [Option<String>; 2],
}

impl State {
    fn insert(&mut self, key: ObjectKey, at: Instant, priority: Priority) {
        let (mut at, mut priority) = (at, priority);
        if let Some(&(due, n, p)) = self.due.get(&key) {
            if p <= priority && due <= at {
                return;
            }
            // The sooner time and the higher priority of both.
            (at, priority) = (at.min(due), priority.min(p));
            self.remove(&key, due, n, p);
        }
        self.counter += 1;
        let n = self.counter;
        self.lanes[priority as usize]
            .entry(key.tenant.clone())
            .or_default()
            .insert((at, n, key.clone()));
        self.due.insert(key, (at, n, priority));
    }

    fn remove(&mut self, key: &ObjectKey, due: Instant, n: u64, priority: Priority) {
        let lane = &mut self.lanes[priority as usize];
        if let Some(set) = lane.get_mut(&key.tenant) {
            set.remove(&(due, n, key.clone()));
            if set.is_empty() {
                lane.remove(&key.tenant);
            }
        }
        self.due.remove(key);
    }

    /// The first due key of `priority` that is not being reconciled, taking tenants in
    /// turn after the last one served; and the earliest time a key not yet due falls due.
    fn pick(&self, priority: Priority, now: Instant) -> (Option<ObjectKey>, Option<Instant>) {
        let lane = &self.lanes[priority as usize];
        let after = self.last_tenant[priority as usize].clone();
        let order: Box<dyn Iterator<Item = (&String, &Lane)>> = match &after {
            Some(t) => Box::new(
                lane.range::<String, _>((Bound::Excluded(t), Bound::Unbounded))
                    .chain(lane.range::<String, _>((Bound::Unbounded, Bound::Included(t)))),
            ),
            None => Box::new(lane.iter()),
        };
        let mut earliest: Option<Instant> = None;
        for (_, set) in order {
            for (due, _, key) in set {
                if self.active.contains(key) {
                    continue;
                }
                if *due <= now {
                    return (Some(key.clone()), None);
                }
                earliest = Some(earliest.map_or(*due, |e| e.min(*due)));
                break;
            }
        }
        (None, earliest)
    }
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

    /// Makes `key` due at `at` for a routine look, or earlier if it already is.
    pub fn schedule(&self, key: ObjectKey, at: Instant) {
        self.lock().insert(key, at, Priority::Routine);
        self.notify.notify_waiters();
    }

    /// Makes `key` due now, before every routine look: its object changed.
    pub fn changed(&self, key: ObjectKey) {
        self.lock().insert(key, Instant::now(), Priority::Change);
        self.notify.notify_waiters();
    }

    /// Keys waiting (due or not), not counting those being reconciled.
    pub fn len(&self) -> usize {
        self.lock().due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for the next due key that is not being reconciled and marks it active:
    /// changes first, each priority's tenants in turn.
    pub async fn next(&self) -> ObjectKey {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait_until = {
                let mut s = self.lock();
                let now = Instant::now();
                let mut earliest: Option<Instant> = None;
                let mut picked = None;
                for priority in [Priority::Change, Priority::Routine] {
                    let (key, next_due) = s.pick(priority, now);
                    if let Some(key) = key {
                        picked = Some((key, priority));
                        break;
                    }
                    if let Some(at) = next_due {
                        earliest = Some(earliest.map_or(at, |e| e.min(at)));
                    }
                }
                if let Some((key, priority)) = picked {
                    if let Some(&(due, n, p)) = s.due.get(&key) {
                        s.remove(&key, due, n, p);
                    }
                    s.last_tenant[priority as usize] = Some(key.tenant.clone());
                    s.active.insert(key.clone());
                    return key;
                }
                earliest
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

    /// Makes every key of `tenant` whose last reconcile failed due now, as a change.
    pub fn retry_failing(&self, tenant: &str) {
        let mut s = self.lock();
        let failing: Vec<ObjectKey> = s
            .failures
            .keys()
            .filter(|k| k.tenant == tenant)
            .cloned()
            .collect();
        let now = Instant::now();
        for key in failing {
            s.insert(key, now, Priority::Change);
        }
        drop(s);
        self.notify.notify_waiters();
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

    fn tenant_key(tenant: &str, name: &str) -> ObjectKey {
        ObjectKey::new("Cluster", tenant, name)
    }

    #[tokio::test]
    async fn tenants_take_turns() {
        let q = WorkQueue::new();
        let now = Instant::now();
        // One tenant's thousand due keys, each due before the other tenant's one.
        for i in 0..1000 {
            q.schedule(
                tenant_key("big", &format!("c{i:04}")),
                now - Duration::from_secs(10),
            );
        }
        q.schedule(tenant_key("small", "mine"), now);
        let first = q.next().await;
        let second = q.next().await;
        let handed: Vec<&str> = vec![first.tenant.as_str(), second.tenant.as_str()];
        assert!(handed.contains(&"small"), "handed out {handed:?}");
        assert_eq!(q.len(), 999);
    }

    #[tokio::test]
    async fn a_change_goes_before_routine_looks() {
        let q = WorkQueue::new();
        let now = Instant::now();
        for i in 0..100 {
            q.schedule(key(&format!("r{i:03}")), now - Duration::from_secs(1));
        }
        q.changed(key("changed"));
        assert_eq!(q.next().await, key("changed"));
        // A routine look of a key waiting as a change keeps it a change.
        q.changed(key("again"));
        q.schedule(key("again"), now - Duration::from_secs(5));
        assert_eq!(q.next().await, key("again"));
        assert_eq!(q.len(), 100);
        // A change of a key waiting for a later routine look makes it due now.
        q.schedule(key("later"), now + Duration::from_secs(3600));
        q.changed(key("later"));
        assert_eq!(q.next().await, key("later"));
    }

    #[tokio::test]
    async fn a_tenant_change_retries_its_failing_keys_only() {
        let q = WorkQueue::new();
        let later = Instant::now() + Duration::from_secs(3600);
        for (tenant, name) in [("a", "failing"), ("a", "fine"), ("b", "failing")] {
            q.record_failure(&tenant_key(tenant, name));
            q.schedule(tenant_key(tenant, name), later);
        }
        q.reset_failures(&tenant_key("a", "fine"));
        q.retry_failing("a");
        assert_eq!(q.next().await, tenant_key("a", "failing"));
        let next = tokio::time::timeout(Duration::from_millis(100), q.next()).await;
        assert!(next.is_err(), "handed out {next:?}, which is not due");
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
