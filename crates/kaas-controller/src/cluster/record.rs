//! Recording what a reconcile saw and did: an event per step that did something
//! worth telling, each machine's status, the cluster's status (computed purely in
//! [`super::status`]) with an event per transition, and the condition kaas cannot
//! vouch for when the cloud could not be observed. Writes to the store only.

use chrono::Utc;
use kaas_cloud::{CloudError, ResourceKind};
use kaas_core::cluster::ClusterPhase;
use kaas_core::meta::set_condition;
use kaas_core::naming::cluster_tag;
use kaas_core::{Cluster, Event, EventType, Machine, MachinePhase, Object, ObjectReference};
use kaas_store::{ObjectKey, StoreError, StoreExt};
use tracing::{debug, info, warn};

use super::error::{Category, StepError};
use super::execute::StepResult;
use super::plan::{Observed, Plan, Step, classify, member_strings};
use super::status::{StepFailure, cluster_status, machine_status};
use super::{ClusterController, ReconcileError};
use crate::metrics::StepFailureLabels;

/// What executing the plan did that the status must reflect.
#[derive(Default)]
pub(super) struct Outcome {
    pub(super) failures: Vec<StepFailure>,
    /// The first step that failed, for the reconcile's error.
    pub(super) first_error: Option<StepError>,
    pub(super) members_set: Option<Vec<String>>,
    pub(super) cluster_removed: bool,
    /// The stack and digest of the addons applied.
    pub(super) addons_applied: Option<(String, String)>,
    /// A step met a stale object in the store, or is still in progress: look again
    /// at the next poll.
    pub(super) store_conflict: bool,
}

impl ClusterController {
    pub(super) async fn event(
        &self,
        cluster: &Cluster,
        type_: EventType,
        reason: &str,
        message: String,
    ) {
        let involved = ObjectReference {
            kind: "Cluster".to_owned(),
            name: cluster.metadata.name.clone(),
            uid: cluster.metadata.uid.clone(),
        };
        match type_ {
            EventType::Normal => info!(cluster = %cluster.metadata.name, reason, "{message}"),
            EventType::Warning => warn!(cluster = %cluster.metadata.name, reason, "{message}"),
        }
        let event = Event::new(involved, type_, reason, message, Utc::now());
        let body = match serde_json::to_value(&event) {
            Ok(body) => body,
            Err(e) => return warn!(error = %e, "cannot encode event"),
        };
        if let Err(e) = self
            .store
            .append_event(&cluster.metadata.tenant, &cluster.metadata.uid, body)
            .await
        {
            warn!(error = %e, "cannot record event");
        }
    }

    /// An event per step that did something worth telling, and what the steps did
    /// that the status must reflect. A store failure other than a conflict ends the
    /// reconcile (after the events of the steps before it).
    pub(super) async fn record_steps(
        &self,
        cluster: &Cluster,
        steps: &[Step],
        results: Vec<Option<StepResult>>,
    ) -> Result<Outcome, ReconcileError> {
        let mut outcome = Outcome::default();
        for (step, result) in steps.iter().zip(results) {
            // A chained step that did not run: the failure before it is recorded.
            let Some(result) = result else { continue };
            match result {
                Ok(message) => {
                    if let Step::SetLoadBalancerMembers { members, .. } = step {
                        outcome.members_set = Some(member_strings(members));
                    }
                    if *step == Step::RemoveFinalizer {
                        outcome.cluster_removed = true;
                    }
                    if let Step::ApplyAddons { stack, digest, .. } = step {
                        outcome.addons_applied = Some((stack.clone(), digest.clone()));
                    }
                    if let Some((reason, text)) = message {
                        self.event(cluster, EventType::Normal, &reason, text).await;
                    }
                }
                Err(StepError::Store(StoreError::Conflict { .. })) => outcome.store_conflict = true,
                // Progress, not failure: come back at the next poll.
                Err(e) if matches!(e.cloud(), Some(CloudError::InProgress { .. })) => {
                    debug!(error = %e, "in progress");
                    outcome.store_conflict = true;
                }
                Err(StepError::Store(e)) => {
                    self.count_failure(step, Category::Internal);
                    return Err(e.into());
                }
                Err(e) => {
                    let failure = e.failure(step.stage());
                    self.count_failure(step, e.category());
                    self.event(
                        cluster,
                        EventType::Warning,
                        &failure.reason,
                        failure.message.clone(),
                    )
                    .await;
                    outcome.failures.push(failure);
                    outcome.first_error.get_or_insert(e);
                }
            }
        }
        Ok(outcome)
    }

    fn count_failure(&self, step: &Step, category: Category) {
        let labels = StepFailureLabels {
            controller: Cluster::KIND.to_owned(),
            step: step.operation().to_owned(),
            category: category.reason().to_owned(),
        };
        self.metrics.step_failures.get_or_create(&labels).inc();
    }

    /// The sweep found nothing left and the cluster's finalizer is gone.
    pub(super) async fn record_deleted(&self, cluster: &Cluster) {
        self.event(
            cluster,
            EventType::Normal,
            "Deleted",
            format!(
                "Sweep found no cloud resource tagged {}: cluster {} is deleted",
                cluster_tag(&cluster.metadata.uid),
                cluster.metadata.name
            ),
        )
        .await;
    }

    /// Each machine's status as observed, with an event per phase it enters.
    pub(super) async fn record_machines(
        &self,
        cluster: &Cluster,
        observed: &Observed,
    ) -> Result<(), ReconcileError> {
        let infra = classify(cluster, observed);
        let nodes = observed.nodes.as_deref();
        for m in &observed.machines {
            let st = machine_status(m, &infra, nodes, observed.now);
            if st == m.status {
                continue;
            }
            if st.phase != m.status.phase {
                let (type_, text) = machine_transition(m, &st);
                self.event(cluster, type_, &format!("Machine{}", st.phase), text)
                    .await;
            }
            let mut updated = m.clone();
            updated.status = st;
            match self.store.update_obj(&updated).await {
                Ok(_) | Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The cluster's status from what was observed and executed, written over the
    /// cluster as stored now, with an event per transition. `None`: the cluster is
    /// gone; `Some(true)`: it changed meanwhile (look again soon).
    pub(super) async fn record_status(
        &self,
        key: &ObjectKey,
        cluster: &Cluster,
        observed: &Observed,
        plan: &Plan,
        outcome: &mut Outcome,
    ) -> Result<Option<bool>, ReconcileError> {
        let Some(mut fresh) = self
            .store
            .get_obj::<Cluster>(&key.tenant, &key.name)
            .await?
        else {
            return Ok(None);
        };
        let infra = classify(cluster, observed);
        let mut new_status = cluster_status(
            cluster,
            observed,
            &infra,
            plan,
            &outcome.failures,
            outcome
                .addons_applied
                .as_ref()
                .map(|(stack, digest)| (stack.as_str(), digest.as_str())),
            Utc::now(),
        );
        if let Some(members) = outcome.members_set.take() {
            new_status.api_members = members;
        }
        self.record_transitions(cluster, &new_status).await;
        let mut conflict = false;
        if fresh.status != new_status {
            fresh.status = new_status.clone();
            match self.store.update_obj(&fresh).await {
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(StoreError::Conflict { .. }) => conflict = true,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(conflict))
    }

    async fn record_transitions(&self, cluster: &Cluster, new: &kaas_core::ClusterStatus) {
        let old = &cluster.status;
        for (role, r) in &new.infrastructure {
            let was = old.infrastructure.get(role).map(|o| o.status.as_str());
            if r.status == "ACTIVE" && was != Some("ACTIVE") {
                let kind = ResourceKind::ALL
                    .iter()
                    .find(|k| k.as_str() == r.kind)
                    .map_or("resource", |k| k.human());
                let mut text = format!("{kind} {} is ACTIVE", r.name);
                if let Some(a) = &r.address {
                    text.push_str(&format!(" at {a}"));
                }
                self.event(
                    cluster,
                    EventType::Normal,
                    "ResourceReady",
                    capitalize(&text),
                )
                .await;
            }
        }
        for c in &new.conditions {
            let before = old.conditions.iter().find(|o| o.type_ == c.type_);
            if before.map(|b| b.status) != Some(c.status) && (c.is_true() || before.is_some()) {
                let text = format!("{} is {:?}: {}", c.type_, c.status, c.message);
                self.event(cluster, EventType::Normal, &c.type_, text).await;
            }
        }
        if new.phase != old.phase {
            let text = match new.phase {
                ClusterPhase::Available => match &new.api_endpoint {
                    Some(e) => format!("Cluster {} is Available at {e}", cluster.metadata.name),
                    None => format!("Cluster {} is Available", cluster.metadata.name),
                },
                phase => format!("Cluster {} is {phase}", cluster.metadata.name),
            };
            let type_ = if new.phase == ClusterPhase::Failed {
                EventType::Warning
            } else {
                EventType::Normal
            };
            self.event(cluster, type_, &new.phase.to_string(), text)
                .await;
        }
    }

    /// What kaas cannot see, it cannot vouch for: the infrastructure's state becomes
    /// Unknown, with the cloud's own words.
    pub(super) async fn observation_failed(
        &self,
        cluster: &Cluster,
        e: &ReconcileError,
    ) -> Result<(), ReconcileError> {
        let reason = match e {
            ReconcileError::Observe(c) => c.reason(),
            _ => "ObserveFailed",
        };
        let mut fresh = cluster.clone();
        set_condition(
            &mut fresh.status.conditions,
            kaas_core::Condition::new(
                kaas_core::cluster::conditions::INFRASTRUCTURE_READY,
                kaas_core::ConditionStatus::Unknown,
                reason,
                e.to_string(),
            ),
            Utc::now(),
        );
        if fresh.status != cluster.status {
            match self.store.update_obj(&fresh).await {
                Ok(_) | Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    }
}

fn machine_transition(m: &Machine, new: &kaas_core::MachineStatus) -> (EventType, String) {
    let name = &m.metadata.name;
    let address = new
        .addresses
        .first()
        .map(String::as_str)
        .unwrap_or("no address yet");
    match new.phase {
        MachinePhase::Pending => (
            EventType::Normal,
            format!("Machine {name} waits for its server"),
        ),
        MachinePhase::Provisioning => (EventType::Normal, format!("Server {name} is building")),
        MachinePhase::Provisioned => (
            EventType::Normal,
            format!("Server {name} is ACTIVE at {address}; waiting for its node to join"),
        ),
        MachinePhase::Running => {
            let node = new.node_name.as_deref().unwrap_or(name);
            (
                EventType::Normal,
                format!(
                    "Node {node} joined and is Ready ({}, {})",
                    m.spec.role.as_str(),
                    m.spec.version
                ),
            )
        }
        MachinePhase::Deleting => (
            EventType::Normal,
            format!("Machine {name} is being deleted"),
        ),
        MachinePhase::Failed => (
            EventType::Warning,
            format!(
                "Server {name} failed: {}",
                new.failure_message.as_deref().unwrap_or("no reason given")
            ),
        ),
    }
}
