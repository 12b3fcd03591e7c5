//! The cluster controller, a pipeline per reconcile:
//! load (I/O) → observe (I/O) → [`plan`] (pure) → execute (I/O, idempotent steps) →
//! [`status`] (pure) → record status and events (I/O).

pub mod addons;
pub mod machines;
pub mod plan;
pub mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::join_all;
use kaas_bootstrap::{
    AddonRef, AddonValues, BootstrapToken, ClusterPki, KubernetesVersion, MachineBootstrap,
    NodeBootstrap, NodeRole, ca_cert_hash, issue_admin_client_cert, issue_etcd_client_cert,
    render_addons, render_user_data,
};
use kaas_cloud::{
    Capacity, ClientCredentials, CloudError, CloudProvider, CloudResource, Credential,
    DrainProgress, JoinToken, ResourceKind, ResourceSpec, ServerNeed, TenantClouds, UserData,
    WorkloadClusterRef, WorkloadClusters, WorkloadError,
};
use kaas_core::cluster::{CLUSTER_FINALIZER, ClusterPhase};
use kaas_core::machine::{CLUSTER_LABEL, POOL_LABEL};
use kaas_core::meta::set_condition;
use kaas_core::naming::{bootstrap_secret, cluster_tag, machine_name};
use kaas_core::stack::StackCatalog;
use kaas_core::{
    Cluster, Event, EventType, Machine, MachinePhase, ObjectMeta, ObjectReference, OwnerRef,
};
use kaas_store::{
    ListFilter, ObjectKey, SECRET_KIND, SecretBox, Secrets, Store, StoreError, StoreExt,
};
use rand::Rng;
use tracing::{debug, info, warn};

use crate::metrics::{CloudCallLabels, Metrics};
use crate::runtime::{Action, Reconciler};
use plan::{MACHINE_FINALIZER, Observed, Stage, Step, classify, member_strings};
use status::{StepFailure, cluster_status, machine_status};

#[derive(Debug, Clone)]
pub struct ClusterControllerConfig {
    /// How soon to look again while something is in progress.
    pub poll_interval: Duration,
    /// How soon to look again at a settled cluster (health).
    pub steady_interval: Duration,
    /// How much faster than real time the cloud runs (the simulation's speed; 1 for a
    /// real cloud). The spec's timeouts are divided by it.
    pub time_scale: f64,
    /// The cloud region, for the nodes' `topology.kubernetes.io/region` label.
    pub region: Option<String>,
}

impl Default for ClusterControllerConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(5),
            steady_interval: Duration::from_secs(60),
            time_scale: 1.0,
            region: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("failed to observe the cloud: {0}")]
    Observe(CloudError),
    #[error("{0}")]
    Steps(String),
}

pub struct ClusterController {
    store: Arc<dyn Store>,
    /// Seals the cluster's keys and each machine's bootstrap data at rest.
    sealer: Arc<SecretBox>,
    /// The cluster stacks kaas knows.
    stacks: Arc<StackCatalog>,
    /// The cloud of each tenant's clusters.
    clouds: Arc<dyn TenantClouds>,
    workloads: Arc<dyn WorkloadClusters>,
    config: ClusterControllerConfig,
    metrics: Metrics,
    /// Per cluster uid: the addons as last rendered, and from what.
    rendered: std::sync::Mutex<HashMap<String, (String, addons::DesiredAddons)>>,
    /// Per cluster uid: the addons' readiness as last read (when, for which digest).
    readiness: std::sync::Mutex<HashMap<String, ReadReadiness>>,
    /// Per cluster uid: the client certificate kaas uses on its API, until when.
    credentials: std::sync::Mutex<HashMap<String, IssuedCredentials>>,
}

/// The addons' readiness as read at a time, for a digest.
type ReadReadiness = (std::time::Instant, String, Vec<kaas_cloud::ObjectReadiness>);

/// A client certificate, and when to issue a new one.
type IssuedCredentials = (DateTime<Utc>, Arc<ClientCredentials>);

/// What executing the plan did that the status must reflect.
#[derive(Default)]
struct Outcome {
    failures: Vec<StepFailure>,
    members_set: Option<Vec<String>>,
    cluster_removed: bool,
    /// The stack and digest of the addons applied.
    addons_applied: Option<(String, String)>,
}

impl ClusterController {
    pub fn new(
        store: Arc<dyn Store>,
        sealer: Arc<SecretBox>,
        stacks: Arc<StackCatalog>,
        clouds: Arc<dyn TenantClouds>,
        workloads: Arc<dyn WorkloadClusters>,
        config: ClusterControllerConfig,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            sealer,
            stacks,
            clouds,
            workloads,
            config,
            metrics,
            credentials: std::sync::Mutex::new(HashMap::new()),
            readiness: std::sync::Mutex::new(HashMap::new()),
            rendered: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// How each of the addons' objects stands. Read at every reconcile while any is not
    /// ready; once all are, again only after the steady interval (a health check), so a
    /// settled cluster costs its API one discovery and a read per object a minute.
    async fn addons_readiness(
        &self,
        cluster: &Cluster,
        target: &WorkloadClusterRef,
        desired: &addons::DesiredAddons,
    ) -> Option<Vec<kaas_cloud::ObjectReadiness>> {
        let uid = &cluster.metadata.uid;
        {
            let cache = self.readiness.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, digest, readiness)) = cache.get(uid)
                && *digest == desired.digest
                && at.elapsed() < self.config.steady_interval
                && readiness.iter().all(|r| r.ready)
            {
                return Some(readiness.clone());
            }
        }
        match self.workloads.readiness(target, &desired.objects.0).await {
            Ok(readiness) => {
                self.readiness
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(
                        uid.clone(),
                        (
                            std::time::Instant::now(),
                            desired.digest.clone(),
                            readiness.clone(),
                        ),
                    );
                Some(readiness)
            }
            Err(e) => {
                debug!(error = %e, "cannot read the addons' readiness");
                None
            }
        }
    }

    fn count_call(&self, cloud: &dyn CloudProvider, operation: &str, ok: bool) {
        let labels = CloudCallLabels {
            provider: cloud.name().to_owned(),
            operation: operation.to_owned(),
            result: if ok { "ok" } else { "error" }.to_owned(),
        };
        self.metrics.cloud_calls.get_or_create(&labels).inc();
    }

    /// The cluster's machines, cloud resources and (when its API answers) nodes and
    /// addons; with how its API is reached, which the reconcile's steps use too.
    async fn observe(
        &self,
        cloud: &dyn CloudProvider,
        cluster: &Cluster,
    ) -> Result<(Observed, Option<WorkloadClusterRef>), ReconcileError> {
        let machines = self
            .store
            .list_obj::<Machine>(&ListFilter {
                tenant: Some(cluster.metadata.tenant.clone()),
                owner_uid: Some(cluster.metadata.uid.clone()),
            })
            .await?;
        let tag = cluster_tag(&cluster.metadata.uid);
        let finds = join_all(
            ResourceKind::ALL
                .iter()
                .map(|kind| self.find(cloud, *kind, &tag)),
        )
        .await;
        let mut resources: Vec<CloudResource> = Vec::new();
        for found in finds {
            resources.extend(found.map_err(ReconcileError::Observe)?);
        }
        if cluster.metadata.is_deleting() {
            let untagged = cloud.find_untagged(&tag).await;
            self.count_call(cloud, "find", untagged.is_ok());
            resources.extend(untagged.map_err(ReconcileError::Observe)?);
        }
        let mut observed = Observed {
            api_unreachable: None,
            join_tokens: None,
            machines,
            resources,
            nodes: None,
            etcd_members: None,
            stack: self.stacks.find(&cluster.spec.stack).cloned(),
            addons: None,
            pki_exists: self
                .store
                .get(&ObjectKey::new(
                    SECRET_KIND,
                    &cluster.metadata.tenant,
                    &pki_secret(cluster),
                ))
                .await?
                .is_some(),
            now: Utc::now(),
            time_scale: self.config.time_scale,
        };
        let workload = self.workload_ref(cluster, &observed).await;
        if let Some(target) = &workload {
            match self.workloads.nodes(target).await {
                Ok(nodes) => observed.nodes = Some(nodes),
                Err(e) => {
                    debug!(error = %e, "workload API not reachable");
                    observed.api_unreachable = Some(e.to_string());
                }
            }
            if observed.nodes.is_some() && !cluster.metadata.is_deleting() {
                match self.workloads.bootstrap_tokens(target).await {
                    Ok(tokens) => observed.join_tokens = Some(tokens),
                    Err(e) => debug!(error = %e, "cannot list the cluster's bootstrap tokens"),
                }
                let desired = self.desired_addons(cloud, cluster, &observed).await;
                let readiness = match &desired {
                    Ok(d) if !d.objects.0.is_empty() => {
                        self.addons_readiness(cluster, target, d).await
                    }
                    _ => Some(Vec::new()),
                };
                observed.addons = Some(addons::ObservedAddons { desired, readiness });
            }
            if observed.nodes.is_some()
                && observed.machines.iter().any(|m| m.metadata.is_deleting())
            {
                match self.workloads.etcd_members(target).await {
                    Ok(members) => observed.etcd_members = Some(members),
                    Err(e) => debug!(error = %e, "cannot list etcd members"),
                }
            }
        }
        Ok((observed, workload))
    }

    /// Lists are idempotent: a passing 5xx or timeout is retried at once, a few times,
    /// before the whole reconcile backs off.
    async fn find(
        &self,
        cloud: &dyn CloudProvider,
        kind: ResourceKind,
        tag: &str,
    ) -> Result<Vec<CloudResource>, CloudError> {
        let mut attempt = 0;
        loop {
            let found = cloud.find(kind, tag).await;
            self.count_call(cloud, "find", found.is_ok());
            match found {
                Err(e) if e.is_retryable() && attempt < 3 => {
                    attempt += 1;
                    let jitter = rand::rng().random_range(5..20) * attempt;
                    tokio::time::sleep(Duration::from_millis(jitter)).await;
                }
                other => return other,
            }
        }
    }

    async fn workload_ref(
        &self,
        cluster: &Cluster,
        observed: &Observed,
    ) -> Option<WorkloadClusterRef> {
        let infra = classify(cluster, observed);
        let endpoint = plan::api_endpoint(cluster, &infra)?;
        let credentials = if observed.pki_exists {
            match self.client_credentials(cluster).await {
                Ok(c) => Some(c),
                Err(e) => {
                    warn!(error = %e, "cannot issue a client certificate for the cluster");
                    None
                }
            }
        } else {
            None
        };
        Some(WorkloadClusterRef {
            cluster_uid: cluster.metadata.uid.clone(),
            tenant: cluster.metadata.tenant.clone(),
            cluster_name: cluster.metadata.name.clone(),
            api_endpoint: endpoint,
            credentials,
        })
    }

    /// The client certificate kaas presents to the cluster's API (group
    /// `kubeadm:cluster-admins`), issued from the cluster's CA and kept in memory for
    /// most of its day of validity.
    async fn client_credentials(
        &self,
        cluster: &Cluster,
    ) -> Result<Arc<ClientCredentials>, StepError> {
        let uid = &cluster.metadata.uid;
        let now = Utc::now();
        {
            let cache = self.credentials.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((renew_at, c)) = cache.get(uid)
                && *renew_at > now
            {
                return Ok(c.clone());
            }
        }
        let data = self
            .secrets()
            .get(&cluster.metadata.tenant, &pki_secret(cluster))
            .await?
            .ok_or_else(|| {
                StepError::Bootstrap("the cluster's PKI is not stored yet".to_owned())
            })?;
        let pki: ClusterPki = serde_json::from_value(data)
            .map_err(|e| StepError::Bootstrap(format!("the stored PKI: {e}")))?;
        let client = issue_admin_client_cert(&pki, CLIENT_USER, CLIENT_CERT_TTL, now)
            .map_err(|e| StepError::Bootstrap(e.to_string()))?;
        let etcd_client = issue_etcd_client_cert(&pki, CLIENT_USER, CLIENT_CERT_TTL, now)
            .map_err(|e| StepError::Bootstrap(e.to_string()))?;
        let credentials = Arc::new(ClientCredentials {
            ca_cert_pem: pki.kubernetes_ca.cert_pem,
            client_cert_pem: client.cert_pem,
            client_key_pem: client.key_pem,
            etcd_ca_cert_pem: pki.etcd_ca.cert_pem,
            etcd_client_cert_pem: etcd_client.cert_pem,
            etcd_client_key_pem: etcd_client.key_pem,
        });
        let renew_at = now + chrono::Duration::from_std(CLIENT_CERT_TTL / 2).unwrap_or_default();
        self.credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid.clone(), (renew_at, credentials.clone()));
        Ok(credentials)
    }

    /// The addons the cluster's stack and spec call for, rendered with its values, or
    /// why they cannot be.
    async fn desired_addons(
        &self,
        cloud: &dyn CloudProvider,
        cluster: &Cluster,
        observed: &Observed,
    ) -> Result<addons::DesiredAddons, String> {
        let stack = observed
            .stack
            .as_ref()
            .ok_or_else(|| format!("stack {} is not in the catalog", cluster.spec.stack))?;
        let refs: Vec<AddonRef> = stack
            .addons_for(&cluster.spec.addons)
            .into_iter()
            .map(|a| AddonRef {
                name: a.name.clone(),
                version: a.version.clone(),
            })
            .collect();
        if refs.is_empty() {
            return Ok(addons::DesiredAddons::new(stack.name(), Vec::new()));
        }
        let infra = classify(cluster, observed);
        let credential_id = infra
            .get("applicationCredential")
            .map(|r| r.id.clone())
            .ok_or("the cluster's application credential does not exist yet")?;
        let spec = &cluster.spec;
        // Everything the rendering depends on but the credential's secret, which is
        // chosen once per credential.
        let inputs = format!(
            "{}|{refs:?}|{credential_id}|{:?}|{}|{:?}|{:?}",
            stack.name(),
            spec.network,
            cloud.auth_url(),
            self.config.region,
            spec.addons,
        );
        let uid = &cluster.metadata.uid;
        if let Some((cached, desired)) = self
            .rendered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            && *cached == inputs
        {
            return Ok(desired.clone());
        }
        let secret = self
            .secrets()
            .get(&cluster.metadata.tenant, &cloud_credential_secret(cluster))
            .await
            .map_err(|e| e.to_string())?
            .and_then(|d| d["secret"].as_str().map(str::to_owned))
            .ok_or("the cluster's application credential secret is not stored")?;
        let values = AddonValues {
            cluster_name: cluster.metadata.name.clone(),
            cluster_uid: cluster.metadata.uid.clone(),
            pod_cidr: spec.network.pod_cidr.clone(),
            service_cidr: spec.network.service_cidr.clone(),
            kubernetes_version: KubernetesVersion::parse(&stack.spec.kubernetes_version)
                .map_err(|e| e.to_string())?,
            auth_url: cloud.auth_url(),
            region: self.config.region.clone().unwrap_or_default(),
            application_credential_id: credential_id,
            application_credential_secret: secret,
            proxy_protocol: spec
                .addons
                .ingress
                .as_ref()
                .is_some_and(|i| i.proxy_protocol),
            acme_email: spec
                .addons
                .cert_manager
                .as_ref()
                .map(|c| c.acme_email.clone()),
        };
        let rendered = render_addons(&refs, &values).map_err(|e| e.to_string())?;
        let desired = addons::DesiredAddons::new(stack.name(), rendered);
        self.rendered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid.clone(), (inputs, desired.clone()));
        Ok(desired)
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

    async fn event(&self, cluster: &Cluster, type_: EventType, reason: &str, message: String) {
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

    /// Runs one step; `Ok(Some(text))` is an event message worth recording.
    /// Runs one step; `workload` is the cluster's API as observed in this reconcile.
    async fn execute(
        &self,
        cloud: &dyn CloudProvider,
        cluster: &Cluster,
        workload: Option<&WorkloadClusterRef>,
        step: &Step,
    ) -> Result<Option<(String, String)>, StepError> {
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
                    checked.map_err(|e| {
                        StepError::Cloud("checking the cloud before building".to_owned(), e)
                    })?;
                }
                let request = &request;
                let created = cloud.create(request).await;
                self.count_call(cloud, "create", created.is_ok());
                let r = created.map_err(|e| {
                    StepError::Cloud(format!("creating {} {}", request.kind(), request.name), e)
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
                deleted.map_err(|e| StepError::Cloud(format!("deleting {kind} {name}"), e))?;
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
                set.map_err(|e| {
                    StepError::Cloud("updating the API load balancer's members".to_owned(), e)
                })?;
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
                let target = workload.ok_or_else(unreachable)?;
                let progress = self
                    .workloads
                    .drain(target, node)
                    .await
                    .map_err(StepError::Workload)?;
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
                let target = workload.ok_or_else(unreachable)?;
                self.workloads
                    .remove_etcd_member(target, node)
                    .await
                    .map_err(StepError::Workload)?;
                Ok(Some((
                    "EtcdMemberRemoved".to_owned(),
                    format!("Removed the etcd member of control-plane node {node}"),
                )))
            }
            Step::DeleteNode { machine, node } => {
                let target = workload.ok_or_else(unreachable)?;
                self.workloads
                    .delete_node(target, node)
                    .await
                    .map_err(StepError::Workload)?;
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
            Step::EnsurePki => {
                let pki = ClusterPki::generate(&cluster.metadata.name, Utc::now())
                    .map_err(|e| StepError::Bootstrap(e.to_string()))?;
                let data =
                    serde_json::to_value(&pki).map_err(|e| StepError::Bootstrap(e.to_string()))?;
                let owner = Some(owner_ref(cluster));
                match self.secrets().put(tenant, &pki_secret(cluster), owner, PKI_SECRET_TYPE, &data).await {
                    Ok(()) => Ok(Some((
                        "PkiCreated".to_owned(),
                        "Generated the cluster's Kubernetes, etcd and front-proxy CAs (10 years) and service-account key; sealed at rest".to_owned(),
                    ))),
                    // An earlier attempt stored it: keep that one.
                    Err(StoreError::AlreadyExists { .. }) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
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
                let target = workload.ok_or_else(unreachable)?;
                self.workloads
                    .delete_bootstrap_token(target, id)
                    .await
                    .map_err(StepError::Workload)?;
                Ok(Some((
                    "JoinTokenDeleted".to_owned(),
                    format!("Deleted bootstrap token {id}: machine {machine} joined or is gone"),
                )))
            }
            Step::ApplyAddons { stack, objects, .. } => {
                let target = workload.ok_or_else(unreachable)?;
                let applied = self
                    .workloads
                    .apply(target, addons::ADDON_SET, &objects.0)
                    .await
                    .map_err(StepError::Workload)?;
                let mut text = format!(
                    "Applied the addons of stack {stack} ({} objects)",
                    applied.applied
                );
                if !applied.pruned.is_empty() {
                    text.push_str(&format!("; pruned {}", applied.pruned.join(", ")));
                }
                Ok(Some(("AddonsApplied".to_owned(), text)))
            }
            Step::RemoveFinalizer => {
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
}

/// The type of the Secret that holds a cluster's CAs and service-account key.
pub const PKI_SECRET_TYPE: &str = "kaas.dev/cluster-pki";
/// The type of the Secret that holds a machine's bootstrap token and user data.
pub const BOOTSTRAP_SECRET_TYPE: &str = "kaas.dev/machine-bootstrap";
/// The user (CN) of the client certificate kaas uses on a cluster's API.
const CLIENT_USER: &str = "kaas";
/// How long that certificate is valid; it is renewed halfway.
const CLIENT_CERT_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a machine's bootstrap token is accepted.
const BOOTSTRAP_TOKEN_TTL: Duration = Duration::from_secs(30 * 60);
/// How long a joining machine's token is registered for, each time it is (re)registered.
const JOIN_TOKEN_TTL: chrono::Duration = chrono::Duration::hours(1);

fn pki_secret(cluster: &Cluster) -> String {
    kaas_core::naming::pki_secret(&cluster.metadata.name)
}

fn owner_ref(cluster: &Cluster) -> OwnerRef {
    OwnerRef {
        kind: "Cluster".to_owned(),
        name: cluster.metadata.name.clone(),
        uid: cluster.metadata.uid.clone(),
    }
}

impl ClusterController {
    fn secrets(&self) -> Secrets<'_> {
        Secrets::new(self.store.as_ref(), &self.sealer)
    }

    /// The user data of a machine, rendered once and sealed before its server is
    /// created, so that a retry boots with the same token and files.
    async fn bootstrap_data(
        &self,
        cluster: &Cluster,
        machine: &str,
        endpoint: &str,
        api_sans: &[String],
    ) -> Result<UserData, StepError> {
        let tenant = cluster.metadata.tenant.as_str();
        let secrets = self.secrets();
        let name = bootstrap_secret(machine);
        if let Some(data) = secrets.get(tenant, &name).await? {
            return sealed_user_data(&data);
        }
        let bootstrap_err = |e: kaas_bootstrap::BootstrapError| StepError::Bootstrap(e.to_string());
        let m = self
            .store
            .get_obj::<Machine>(tenant, machine)
            .await?
            .ok_or_else(|| StepError::Bootstrap(format!("machine {machine} is gone")))?;
        let pki_data = secrets
            .get(tenant, &pki_secret(cluster))
            .await?
            .ok_or_else(|| {
                StepError::Bootstrap("the cluster's PKI is not stored yet".to_owned())
            })?;
        let pki: ClusterPki = serde_json::from_value(pki_data)
            .map_err(|e| StepError::Bootstrap(format!("the stored PKI: {e}")))?;
        let now = Utc::now();
        let token = BootstrapToken::generate(now, BOOTSTRAP_TOKEN_TTL).map_err(bootstrap_err)?;
        let node = NodeBootstrap {
            cluster_name: cluster.metadata.name.clone(),
            kubernetes_version: KubernetesVersion::parse(&m.spec.version).map_err(bootstrap_err)?,
            control_plane_endpoint: endpoint.trim_start_matches("https://").to_owned(),
            pod_cidr: cluster.spec.network.pod_cidr.clone(),
            service_cidr: cluster.spec.network.service_cidr.clone(),
            node_name: machine.to_owned(),
            role: match m.spec.role {
                kaas_core::MachineRole::Init => NodeRole::Init,
                kaas_core::MachineRole::ControlPlane => NodeRole::JoinControlPlane,
                kaas_core::MachineRole::Worker => NodeRole::Worker,
            },
            zone: m.spec.zone.clone(),
            region: self.config.region.clone(),
            token: token.clone(),
            ca_cert_hash: ca_cert_hash(&pki.kubernetes_ca.cert_pem).map_err(bootstrap_err)?,
            cert_sans: api_sans.to_vec(),
        };
        let rendered = if m.is_control_plane() {
            // kubeadm issues each node's API server certificate from the CA and
            // certSANs: only the node knows its own address for sure.
            render_user_data(&MachineBootstrap::control_plane(&node, &pki, None))
        } else {
            render_user_data(&MachineBootstrap::worker(&node))
        }
        .map_err(bootstrap_err)?;
        let data = serde_json::json!({
            "token": token,
            "userData": rendered.nova_base64(),
            "compressed": rendered.compressed,
        });
        match secrets
            .put(
                tenant,
                &name,
                Some(owner_ref(cluster)),
                BOOTSTRAP_SECRET_TYPE,
                &data,
            )
            .await
        {
            Ok(()) => sealed_user_data(&data),
            Err(StoreError::AlreadyExists { .. }) => match secrets.get(tenant, &name).await? {
                Some(data) => sealed_user_data(&data),
                None => Err(StepError::Bootstrap(format!(
                    "the bootstrap data of {machine} vanished"
                ))),
            },
            Err(e) => Err(e.into()),
        }
    }
}

impl ClusterController {
    /// Registers (or extends) the bootstrap token of a machine that joins the cluster,
    /// valid for [`JOIN_TOKEN_TTL`] from now; the first control plane's is
    /// kubeadm init's own. `Ok(None)`: nothing to register.
    async fn register_join_token(
        &self,
        cluster: &Cluster,
        workload: Option<&WorkloadClusterRef>,
        machine: &str,
    ) -> Result<Option<JoinToken>, StepError> {
        let tenant = cluster.metadata.tenant.as_str();
        let Some(m) = self.store.get_obj::<Machine>(tenant, machine).await? else {
            return Ok(None);
        };
        if m.spec.role == kaas_core::MachineRole::Init {
            return Ok(None);
        }
        let Some(data) = self
            .secrets()
            .get(tenant, &bootstrap_secret(machine))
            .await?
        else {
            return Ok(None);
        };
        let token: BootstrapToken = serde_json::from_value(data["token"].clone())
            .map_err(|e| StepError::Bootstrap(format!("the stored token of {machine}: {e}")))?;
        let target = workload.ok_or_else(unreachable)?;
        let join = JoinToken {
            id: token.id,
            secret: token.secret,
            machine: machine.to_owned(),
            expires: Utc::now() + JOIN_TOKEN_TTL,
        };
        self.workloads
            .register_bootstrap_token(target, &join)
            .await
            .map_err(StepError::Workload)?;
        Ok(Some(join))
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

    /// The secret of the cluster's application credential: chosen by kaas and sealed
    /// in the store before the cloud sees it, so a retry after a crash uses the same.
    async fn cloud_credential_secret(&self, cluster: &Cluster) -> Result<Credential, StepError> {
        let tenant = cluster.metadata.tenant.as_str();
        let name = cloud_credential_secret(cluster);
        let secrets = self.secrets();
        let read = |data: serde_json::Value| {
            data["secret"]
                .as_str()
                .map(|s| Credential(s.to_owned()))
                .ok_or_else(|| StepError::Bootstrap(format!("secret {name} has no secret")))
        };
        if let Some(data) = secrets.get(tenant, &name).await? {
            return read(data);
        }
        let mut bytes = [0u8; 32];
        rand::rng().fill(&mut bytes[..]);
        let secret =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
        let data = serde_json::json!({ "secret": secret });
        match secrets
            .put(
                tenant,
                &name,
                Some(owner_ref(cluster)),
                CLOUD_CREDENTIAL_SECRET_TYPE,
                &data,
            )
            .await
        {
            Ok(()) => read(data),
            Err(StoreError::AlreadyExists { .. }) => match secrets.get(tenant, &name).await? {
                Some(data) => read(data),
                None => Err(StepError::Bootstrap(format!("secret {name} vanished"))),
            },
            Err(e) => Err(e.into()),
        }
    }
}

/// The Secret holding the secret of the cluster's application credential.
fn cloud_credential_secret(cluster: &Cluster) -> String {
    format!("{}-cloud-credential", cluster.metadata.name)
}

/// The type of the Secret that holds a cluster's application credential secret.
pub const CLOUD_CREDENTIAL_SECRET_TYPE: &str = "kaas.dev/cloud-credential";

fn sealed_user_data(data: &serde_json::Value) -> Result<UserData, StepError> {
    data["userData"]
        .as_str()
        .map(|s| UserData(s.to_owned()))
        .ok_or_else(|| StepError::Bootstrap("stored bootstrap data has no user data".to_owned()))
}

impl StepError {
    /// What a failed step means for the cluster's conditions.
    fn failure(&self, stage: Stage) -> StepFailure {
        let (reason, retryable) = match self {
            StepError::Bootstrap(_) => ("BootstrapFailed".to_owned(), true),
            StepError::Workload(_) => ("WorkloadClusterError".to_owned(), true),
            StepError::Cloud(_, e) => (e.reason().to_owned(), e.is_retryable()),
            StepError::Store(_) => ("StoreError".to_owned(), true),
        };
        StepFailure {
            stage,
            reason,
            message: self.to_string(),
            retryable,
        }
    }
}

fn unreachable() -> StepError {
    StepError::Workload(WorkloadError::Unreachable {
        endpoint: "-".to_owned(),
        message: "the cluster has no API endpoint yet".to_owned(),
    })
}

#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("bootstrap data: {0}")]
    Bootstrap(String),
    #[error("the workload cluster: {0}")]
    Workload(WorkloadError),
    #[error("{0}: {1}")]
    Cloud(String, CloudError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn pascal(kind: ResourceKind) -> String {
    let s = kind.as_str();
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

#[async_trait]
impl Reconciler for ClusterController {
    type Error = ReconcileError;

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let Some(cluster) = self
            .store
            .get_obj::<Cluster>(&key.tenant, &key.name)
            .await?
        else {
            return Ok(Action::await_change());
        };
        let cloud = match self.clouds.cloud(&cluster.metadata.tenant).await {
            Ok(cloud) => cloud,
            Err(e) => {
                let e = ReconcileError::Observe(e);
                self.event(
                    &cluster,
                    EventType::Warning,
                    "CloudUnavailable",
                    e.to_string(),
                )
                .await;
                self.observation_failed(&cluster, &e).await?;
                return Err(e);
            }
        };
        let cloud = cloud.as_ref();
        let (observed, workload) = match self.observe(cloud, &cluster).await {
            Ok(o) => o,
            Err(e) => {
                self.event(&cluster, EventType::Warning, "ObserveFailed", e.to_string())
                    .await;
                self.observation_failed(&cluster, &e).await?;
                return Err(e);
            }
        };
        let plan = plan::plan(&cluster, &observed);
        debug!(steps = plan.steps.len(), waiting = ?plan.waiting, "planned");

        let results = join_all(
            plan.steps
                .iter()
                .map(|s| self.execute(cloud, &cluster, workload.as_ref(), s)),
        )
        .await;
        let mut outcome = Outcome::default();
        let mut store_conflict = false;
        for (step, result) in plan.steps.iter().zip(results) {
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
                        self.event(&cluster, EventType::Normal, &reason, text).await;
                    }
                }
                Err(StepError::Store(StoreError::Conflict { .. })) => store_conflict = true,
                // Progress, not failure: come back at the next poll.
                Err(StepError::Cloud(what, CloudError::InProgress { message })) => {
                    debug!(%what, %message, "in progress");
                    store_conflict = true;
                }
                Err(StepError::Store(e)) => return Err(e.into()),
                Err(e) => {
                    let failure = e.failure(step.stage());
                    self.event(
                        &cluster,
                        EventType::Warning,
                        &failure.reason,
                        failure.message.clone(),
                    )
                    .await;
                    outcome.failures.push(failure);
                }
            }
        }
        if outcome.cluster_removed {
            let uid = &cluster.metadata.uid;
            self.readiness
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(uid);
            self.rendered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(uid);
            self.credentials
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(uid);
            self.event(
                &cluster,
                EventType::Normal,
                "Deleted",
                format!(
                    "Sweep found no cloud resource tagged {}: cluster {} is deleted",
                    cluster_tag(&cluster.metadata.uid),
                    cluster.metadata.name
                ),
            )
            .await;
            return Ok(Action::await_change());
        }

        let infra = classify(&cluster, &observed);
        let nodes = observed.nodes.as_deref();
        for m in &observed.machines {
            let st = machine_status(m, &infra, nodes);
            if st == m.status {
                continue;
            }
            if st.phase != m.status.phase {
                let (type_, text) = machine_transition(m, &st);
                self.event(&cluster, type_, &format!("Machine{}", st.phase), text)
                    .await;
            }
            let mut updated = m.clone();
            updated.status = st;
            match self.store.update_obj(&updated).await {
                Ok(_) | Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }

        let Some(mut fresh) = self
            .store
            .get_obj::<Cluster>(&key.tenant, &key.name)
            .await?
        else {
            return Ok(Action::await_change());
        };
        let mut new_status = cluster_status(
            &cluster,
            &observed,
            &infra,
            &plan,
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
        self.record_transitions(&cluster, &new_status).await;
        if fresh.status != new_status {
            fresh.status = new_status.clone();
            match self.store.update_obj(&fresh).await {
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(StoreError::Conflict { .. }) => store_conflict = true,
                Err(e) => return Err(e.into()),
            }
        }

        if let Some(f) = outcome.failures.first() {
            return Err(ReconcileError::Steps(f.message.clone()));
        }
        if store_conflict || !plan.is_settled() {
            return Ok(Action::requeue(self.config.poll_interval));
        }
        Ok(Action::requeue(self.config.steady_interval))
    }
}

impl ClusterController {
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
    async fn observation_failed(
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
