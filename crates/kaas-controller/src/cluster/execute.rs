//! Executing the plan: each step's side effect on the cloud, the workload cluster or
//! the store. Every step is idempotent and may be interrupted at any line: what it
//! creates is named and tagged before it exists, so the next observation adopts it.

use chrono::Utc;
use futures::future::join_all;
use kaas_cloud::{
    Capacity, CloudProvider, DrainProgress, ResourceKind, ResourceSpec, ServerNeed,
    WorkloadClusterRef,
};
use kaas_core::cluster::CLUSTER_FINALIZER;
use kaas_core::machine::{CLUSTER_LABEL, POOL_LABEL};
use kaas_core::naming::{bootstrap_secret, machine_name};
use kaas_core::{Cluster, EventType, Machine, ObjectMeta, OwnerRef};
use kaas_store::{StoreError, StoreExt};
use rand::Rng;

use super::ClusterController;
use super::addons;
use super::error::StepError;
use super::plan::{MACHINE_FINALIZER, Plan, Step, member_strings};

/// What a step that succeeded is worth telling: an event's reason and message.
pub(super) type StepEvent = (String, String);

/// What one step came to: an event worth recording, if any, or why it failed.
pub(super) type StepResult = Result<Option<StepEvent>, StepError>;

impl ClusterController {
    /// Runs the plan's steps at once, each chain of them in order; their results in
    /// the plan's order, `None` for a chained step skipped because the one before it
    /// failed.
    pub(super) async fn execute(
        &self,
        cloud: &dyn CloudProvider,
        cluster: &Cluster,
        workload: Option<&WorkloadClusterRef>,
        plan: &Plan,
    ) -> Vec<Option<StepResult>> {
        let chains = plan.chains();
        let ran = join_all(chains.iter().map(|chain| async move {
            let mut results = Vec::with_capacity(chain.len());
            for &i in chain {
                let result = self
                    .execute_step(cloud, cluster, workload, &plan.steps[i])
                    .await;
                let failed = result.is_err();
                results.push((i, result));
                if failed {
                    break;
                }
            }
            results
        }))
        .await;
        let mut results: Vec<Option<StepResult>> = plan.steps.iter().map(|_| None).collect();
        for (i, result) in ran.into_iter().flatten() {
            results[i] = Some(result);
        }
        results
    }

    /// Runs one step; `workload` is the cluster's API as observed in this reconcile.
    /// `Ok(Some(event))` is an event worth recording.
    async fn execute_step(
        &self,
        cloud: &dyn CloudProvider,
        cluster: &Cluster,
        workload: Option<&WorkloadClusterRef>,
        step: &Step,
    ) -> Result<Option<StepEvent>, StepError> {
        let tenant = cluster.metadata.tenant.as_str();
        match step {
            Step::AddFinalizer => {
                let mut c = cluster.clone();
                c.metadata.finalizers.push(CLUSTER_FINALIZER.to_owned());
                self.store.update_obj(&c).await?;
                Ok(None)
            }
            Step::CreateResource { request, .. } | Step::CreateServer { request, .. } => {
                let mut request = request.clone();
                let mut join_token = None;
                if let Step::CreateServer {
                    machine,
                    endpoint,
                    api_sans,
                    ..
                } = step
                    && let ResourceSpec::Server { user_data, .. } = &mut request.spec
                {
                    *user_data = self
                        .bootstrap_data(cluster, machine, endpoint, api_sans)
                        .await?;
                    // Its token is in the cluster before the machine can boot with it.
                    join_token = self.register_join_token(cluster, workload, machine).await?;
                }
                if let ResourceSpec::ApplicationCredential { secret, .. } = &mut request.spec {
                    *secret = self.cloud_credential_secret(cluster).await?;
                }
                if request.kind() == ResourceKind::Network {
                    let needs = self.capacity(cluster);
                    let checked = cloud.preflight(&needs).await;
                    self.count_call(cloud, "preflight", checked.is_ok());
                    checked.map_err(|source| StepError::Preflight { source })?;
                }
                let request = &request;
                let created = cloud.create(request).await;
                self.count_call(cloud, "create", created.is_ok());
                let r = created.map_err(|source| StepError::CreateResource {
                    kind: request.kind(),
                    name: request.name.clone(),
                    source,
                })?;
                let mut text = format!("Created {} {} ({})", r.kind, r.name, r.id);
                if let Some(address) = &r.address {
                    text.push_str(&format!(" at {address}"));
                }
                if let Some(t) = &join_token {
                    text.push_str(&format!(
                        "; it joins with bootstrap token {} (registered until {})",
                        t.id,
                        t.expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ));
                }
                Ok(Some((format!("{}Created", pascal(r.kind)), text)))
            }
            Step::DeleteResource { kind, id, name } => {
                let deleted = cloud.delete(*kind, id).await;
                self.count_call(cloud, "delete", deleted.is_ok());
                deleted.map_err(|source| StepError::DeleteResource {
                    kind: *kind,
                    name: name.clone(),
                    source,
                })?;
                Ok(Some((
                    format!("{}Deleting", pascal(*kind)),
                    format!("Deleting {kind} {name} ({id})"),
                )))
            }
            Step::SetLoadBalancerMembers {
                load_balancer_id,
                members,
            } => {
                let set = cloud
                    .set_load_balancer_members(load_balancer_id, members)
                    .await;
                self.count_call(cloud, "set_members", set.is_ok());
                set.map_err(|source| StepError::SetLoadBalancerMembers { source })?;
                let list = member_strings(members).join(", ");
                Ok(Some((
                    "LoadBalancerMembersSet".to_owned(),
                    format!("The API load balancer forwards to {list}"),
                )))
            }
            Step::CreateMachine { spec } => {
                let suffix: String = {
                    let mut rng = rand::rng();
                    (0..5)
                        .map(|_| {
                            char::from(b"bcdfghjklmnpqrstvwxz2456789"[rng.random_range(0..27)])
                        })
                        .collect()
                };
                let name = machine_name(&cluster.metadata.name, &spec.pool, &suffix);
                let mut meta = ObjectMeta::named(&name);
                meta.labels
                    .insert(CLUSTER_LABEL.to_owned(), cluster.metadata.name.clone());
                meta.labels.insert(POOL_LABEL.to_owned(), spec.pool.clone());
                meta.finalizers.push(MACHINE_FINALIZER.to_owned());
                meta.owner = Some(OwnerRef {
                    kind: "Cluster".to_owned(),
                    name: cluster.metadata.name.clone(),
                    uid: cluster.metadata.uid.clone(),
                });
                let machine = Machine::new(meta, spec.clone());
                self.store.create_obj(tenant, &machine).await?;
                Ok(Some((
                    "MachineCreated".to_owned(),
                    format!(
                        "Machine {name} created ({}, {}, {})",
                        spec.role.as_str(),
                        spec.version,
                        spec.flavor
                    ),
                )))
            }
            Step::DeleteMachine {
                name,
                reason,
                remediation,
            } => {
                // Why first, so that the record says it while the machine is leaving.
                self.update_machine(tenant, name, |m| {
                    m.status.deletion_reason = Some(reason.clone());
                    m.status.remediation = *remediation;
                })
                .await?;
                match self.store.delete_obj::<Machine>(tenant, name).await {
                    Ok(_) | Err(StoreError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                if *remediation {
                    self.event(
                        cluster,
                        EventType::Warning,
                        "Remediating",
                        format!("Replacing machine {name}: {reason}"),
                    )
                    .await;
                    return Ok(None);
                }
                Ok(Some((
                    "MachineDeleting".to_owned(),
                    format!("Deleting machine {name}: {reason}"),
                )))
            }
            Step::DrainNode { machine, node } => {
                let target = workload.ok_or(StepError::NoApiEndpoint)?;
                let progress = self
                    .workloads
                    .drain(target, node)
                    .await
                    .map_err(|source| StepError::DrainNode {
                        node: node.clone(),
                        source,
                    })?;
                let Some(m) = self.store.get_obj::<Machine>(tenant, machine).await? else {
                    return Ok(None);
                };
                let first = m.status.drain_started_at.is_none();
                let (drained, message) = match &progress {
                    DrainProgress::Drained => (true, None),
                    DrainProgress::InProgress { .. } => (false, None),
                    DrainProgress::Blocked { message } => (false, Some(message.clone())),
                };
                let changed_message = message.is_some() && message != m.status.failure_message;
                self.update_machine(tenant, machine, |m| {
                    m.status.drain_started_at.get_or_insert_with(Utc::now);
                    m.status.drained = drained;
                    m.status.failure_message = message.clone();
                })
                .await?;
                if changed_message && let Some(text) = &message {
                    self.event(
                        cluster,
                        EventType::Warning,
                        "DrainBlocked",
                        format!("Draining node {node}: {text}"),
                    )
                    .await;
                }
                Ok(match (first, drained) {
                    (true, true) => Some((
                        "NodeDrained".to_owned(),
                        format!("Cordoned node {node}; it is drained"),
                    )),
                    (false, true) => {
                        Some(("NodeDrained".to_owned(), format!("Node {node} is drained")))
                    }
                    (true, false) => Some((
                        "DrainingNode".to_owned(),
                        format!(
                            "Cordoned node {node}; evicting its pods (drainTimeout {})",
                            cluster.spec.rollout.drain_timeout
                        ),
                    )),
                    (false, false) => None,
                })
            }
            Step::AbandonDrain {
                machine,
                node,
                timeout,
            } => {
                self.update_machine(tenant, machine, |m| m.status.drained = true)
                    .await?;
                self.event(
                    cluster,
                    EventType::Warning,
                    "DrainTimeout",
                    format!("Node {node} did not drain within drainTimeout ({timeout}); removing it anyway"),
                )
                .await;
                Ok(None)
            }
            Step::RemoveEtcdMember { node, .. } => {
                let target = workload.ok_or(StepError::NoApiEndpoint)?;
                self.workloads
                    .remove_etcd_member(target, node)
                    .await
                    .map_err(|source| StepError::RemoveEtcdMember {
                        node: node.clone(),
                        source,
                    })?;
                Ok(Some((
                    "EtcdMemberRemoved".to_owned(),
                    format!("Removed the etcd member of control-plane node {node}"),
                )))
            }
            Step::DeleteNode { machine, node } => {
                let target = workload.ok_or(StepError::NoApiEndpoint)?;
                self.workloads
                    .delete_node(target, node)
                    .await
                    .map_err(|source| StepError::DeleteNode {
                        node: node.clone(),
                        source,
                    })?;
                Ok(Some((
                    "NodeDeleted".to_owned(),
                    format!("Deleted node {node}: the server of machine {machine} is gone"),
                )))
            }
            Step::ReleaseMachine { name } => {
                let Some(mut m) = self.store.get_obj::<Machine>(tenant, name).await? else {
                    return Ok(None);
                };
                self.secrets()
                    .delete(tenant, &bootstrap_secret(name))
                    .await?;
                m.metadata.finalizers.retain(|f| f != MACHINE_FINALIZER);
                self.store.update_obj(&m).await?;
                Ok(Some((
                    "MachineDeleted".to_owned(),
                    format!("Machine {name} is gone with its server"),
                )))
            }
            Step::EnsurePki => Ok(self.ensure_pki(cluster).await?.then(|| {
                (
                    "PkiCreated".to_owned(),
                    "Generated the cluster's Kubernetes, etcd and front-proxy CAs (10 years) and service-account key; sealed at rest".to_owned(),
                )
            })),
            Step::RegisterJoinToken { machine, .. } => {
                let token = self.register_join_token(cluster, workload, machine).await?;
                Ok(token.map(|t| {
                    (
                        "JoinTokenRegistered".to_owned(),
                        format!(
                            "Registered bootstrap token {} for machine {machine}, valid until {}",
                            t.id,
                            t.expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        ),
                    )
                }))
            }
            Step::DeleteJoinToken { id, machine } => {
                let target = workload.ok_or(StepError::NoApiEndpoint)?;
                self.workloads
                    .delete_bootstrap_token(target, id)
                    .await
                    .map_err(|source| StepError::DeleteJoinToken {
                        id: id.clone(),
                        source,
                    })?;
                Ok(Some((
                    "JoinTokenDeleted".to_owned(),
                    format!("Deleted bootstrap token {id}: machine {machine} joined or is gone"),
                )))
            }
            Step::ApplyAddons { stack, objects, .. } => {
                let target = workload.ok_or(StepError::NoApiEndpoint)?;
                let applied = self
                    .workloads
                    .apply(target, addons::ADDON_SET, &objects.0)
                    .await
                    .map_err(|source| StepError::ApplyAddons {
                        stack: stack.clone(),
                        source,
                    })?;
                let mut text = format!(
                    "Applied the addons of stack {stack} ({} objects)",
                    applied.applied
                );
                if !applied.replaced.is_empty() {
                    text.push_str(&format!(
                        "; replaced {} (a changed field is immutable)",
                        applied.replaced.join(", ")
                    ));
                }
                if !applied.pruned.is_empty() {
                    text.push_str(&format!("; pruned {}", applied.pruned.join(", ")));
                }
                Ok(Some(("AddonsApplied".to_owned(), text)))
            }
            Step::IssuePullCredential => self.issue_pull_credential(cluster).await,
            Step::SyncPullSecrets { namespaces } => {
                let target = workload.ok_or(StepError::NoApiEndpoint)?;
                self.sync_pull_secrets(cluster, target, namespaces).await
            }
            Step::RevokePullCredential { from_cluster } => {
                let target = if *from_cluster { workload } else { None };
                self.revoke_pull_credential(cluster, target).await
            }
            Step::RemoveFinalizer => {
                // The cluster's registry credentials go with it.
                let owned: Vec<kaas_core::registry::RegistryCredential> = self
                    .store
                    .list_obj(&kaas_store::ListFilter {
                        tenant: Some(tenant.to_owned()),
                        owner_uid: Some(cluster.metadata.uid.clone()),
                        ..Default::default()
                    })
                    .await?;
                for credential in owned {
                    match self
                        .store
                        .delete_obj::<kaas_core::registry::RegistryCredential>(
                            tenant,
                            &credential.metadata.name,
                        )
                        .await
                    {
                        Ok(_) | Err(kaas_store::StoreError::NotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                // The cluster's secrets go with it: its CAs and any bootstrap data left.
                let secrets = self.secrets();
                for name in secrets
                    .list_names(tenant, Some(&cluster.metadata.uid))
                    .await?
                {
                    secrets.delete(tenant, &name).await?;
                }
                let mut c = cluster.clone();
                c.metadata.finalizers.retain(|f| f != CLUSTER_FINALIZER);
                self.store.update_obj(&c).await?;
                Ok(None)
            }
        }
    }

    async fn update_machine(
        &self,
        tenant: &str,
        name: &str,
        change: impl FnOnce(&mut Machine),
    ) -> Result<(), StepError> {
        let Some(mut m) = self.store.get_obj::<Machine>(tenant, name).await? else {
            return Ok(());
        };
        change(&mut m);
        self.store.update_obj(&m).await?;
        Ok(())
    }

    /// What the cluster's machines need from the cloud at their spec's sizes.
    fn capacity(&self, cluster: &Cluster) -> Capacity {
        let image = self
            .stacks
            .find(&cluster.spec.stack)
            .map(|s| s.image().to_owned())
            .unwrap_or_default();
        let spec = &cluster.spec;
        let parts = std::iter::once((&spec.control_plane.flavor, spec.control_plane.replicas))
            .chain(spec.node_pools.iter().map(|p| (&p.flavor, p.replicas)));
        let mut servers: Vec<ServerNeed> = Vec::new();
        for (flavor, count) in parts {
            match servers.iter_mut().find(|n| &n.flavor == flavor) {
                Some(need) => need.count += count,
                None => servers.push(ServerNeed {
                    flavor: flavor.clone(),
                    image: image.clone(),
                    count,
                }),
            }
        }
        Capacity { servers }
    }
}

fn pascal(kind: ResourceKind) -> String {
    let s = kind.as_str();
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}
