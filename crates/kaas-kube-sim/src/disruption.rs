//! PodDisruptionBudgets (`policy/v1`): how many of the pods they select may be disrupted,
//! and whether an eviction would break one.

use serde_json::{Value, json};

use crate::error::{ApiError, Reason};
use crate::object::{self, condition_true, is_deleting};
use crate::selector::LabelSelector;
use crate::store::State;

/// A pod counts as healthy when it is Ready and not being deleted.
pub fn pod_healthy(pod: &Value) -> bool {
    !is_deleting(pod) && condition_true(pod, "Ready")
}

fn terminal(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// A budget's arithmetic, as its `status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetStatus {
    pub expected_pods: i64,
    pub current_healthy: i64,
    pub desired_healthy: i64,
    pub disruptions_allowed: i64,
}

/// An int-or-percent of `total`; percentages round up.
fn scaled(value: &Value, total: i64) -> Option<i64> {
    if let Some(n) = value.as_i64() {
        return Some(n);
    }
    let percent: i64 = value.as_str()?.strip_suffix('%')?.trim().parse().ok()?;
    Some((percent * total + 99) / 100)
}

/// The pods `pdb` selects: in its namespace, matching its selector (a missing selector
/// selects none), not finished.
fn selected<'a>(state: &'a State, pdb: &Value) -> Vec<&'a Value> {
    let Some(selector) = pdb
        .pointer("/spec/selector")
        .and_then(LabelSelector::from_object)
    else {
        return Vec::new();
    };
    let namespace = object::namespace(pdb);
    state
        .of_resource("", "pods")
        .filter(|(k, p)| k.namespace == namespace && !terminal(p) && selector.matches(p))
        .map(|(_, p)| p)
        .collect()
}

pub fn budget_status(state: &State, pdb: &Value) -> BudgetStatus {
    let pods = selected(state, pdb);
    let expected = i64::try_from(pods.len()).unwrap_or(i64::MAX);
    let healthy = i64::try_from(pods.iter().filter(|p| pod_healthy(p)).count()).unwrap_or(0);
    let spec = pdb.get("spec");
    let desired = if let Some(min) = spec.and_then(|s| s.get("minAvailable")) {
        scaled(min, expected).unwrap_or(0)
    } else if let Some(max) = spec.and_then(|s| s.get("maxUnavailable")) {
        (expected - scaled(max, expected).unwrap_or(0)).max(0)
    } else {
        0
    };
    BudgetStatus {
        expected_pods: expected,
        current_healthy: healthy,
        desired_healthy: desired,
        disruptions_allowed: (healthy - desired).max(0),
    }
}

/// The budgets in the pod's namespace that select it.
fn budgets_of<'a>(state: &'a State, pod: &Value) -> Vec<&'a Value> {
    let namespace = object::namespace(pod);
    state
        .of_resource("policy", "poddisruptionbudgets")
        .filter(|(k, pdb)| {
            k.namespace == namespace
                && pdb
                    .pointer("/spec/selector")
                    .and_then(LabelSelector::from_object)
                    .is_some_and(|s| s.matches(pod))
        })
        .map(|(_, pdb)| pdb)
        .collect()
}

/// Whether `pod` may be evicted: `429 TooManyRequests` when a budget forbids it, as the
/// real eviction subresource answers.
pub fn check_eviction(state: &State, pod: &Value) -> Result<(), ApiError> {
    if is_deleting(pod) || terminal(pod) {
        return Ok(());
    }
    let budgets = budgets_of(state, pod);
    let pdb = match budgets.as_slice() {
        [] => return Ok(()),
        [pdb] => *pdb,
        _ => {
            return Err(ApiError::new(
                Reason::InternalError,
                "This pod has more than one PodDisruptionBudget, which the eviction subresource \
                 does not support.",
            ));
        }
    };
    let status = budget_status(state, pdb);
    let always_allow_unhealthy = pdb
        .pointer("/spec/unhealthyPodEvictionPolicy")
        .and_then(Value::as_str)
        == Some("AlwaysAllow");
    let allowed = if pod_healthy(pod) {
        status.disruptions_allowed > 0
    } else {
        always_allow_unhealthy || status.current_healthy >= status.desired_healthy
    };
    if allowed {
        return Ok(());
    }
    Err(ApiError {
        reason: Reason::TooManyRequests,
        message: "Cannot evict pod as it would violate the pod's disruption budget.".to_owned(),
        details: Some(json!({
            "causes": [{
                "reason": "DisruptionBudget",
                "message": format!(
                    "The disruption budget {} needs {} healthy pods and has {} currently",
                    object::name(pdb),
                    status.desired_healthy,
                    status.current_healthy
                ),
            }],
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_or_percent_rounds_percentages_up() {
        assert_eq!(scaled(&json!(2), 10), Some(2));
        assert_eq!(scaled(&json!("50%"), 3), Some(2));
        assert_eq!(scaled(&json!("100%"), 3), Some(3));
        assert_eq!(scaled(&json!("x"), 3), None);
    }
}
