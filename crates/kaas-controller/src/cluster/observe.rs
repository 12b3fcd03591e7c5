//! Observing the world at the start of a reconcile: the cluster's machines in the
//! store, every cloud resource tagged with its uid, and — once its API answers — its
//! nodes, join tokens, etcd members and how its addons stand. Reads only: nothing
//! here changes the cloud or the workload cluster.

use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use kaas_bootstrap::{AddonValues, CloudValues, UpstreamArtifact, render_upstream_addon};
use kaas_cloud::{CloudError, CloudProvider, CloudResource, ResourceKind, WorkloadClusterRef};
use kaas_core::naming::cluster_tag;
use kaas_core::stack::StackAddon;
use kaas_core::{Cluster, ClusterPhase, Machine};
use kaas_store::{ListFilter, ObjectKey, SECRET_KIND, StoreExt};
use rand::Rng;
use tracing::{debug, warn};

use super::credentials::{cloud_credential_secret, pki_secret};
use super::plan::{self, Observed, classify};
use super::{ClusterController, ReconcileError, addons};

impl ClusterController {
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
        match self.workloads.readiness(target, &desired.refs).await {
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

    /// The cluster's machines, cloud resources and (when its API answers) nodes and
    /// addons; with how its API is reached, which the reconcile's steps use too.
    pub(super) async fn observe(
        &self,
        cloud: &dyn CloudProvider,
        cluster: &Cluster,
    ) -> Result<(Observed, Option<WorkloadClusterRef>), ReconcileError> {
        let machines = self
            .store
            .list_obj::<Machine>(&ListFilter {
                tenant: Some(cluster.metadata.tenant.clone()),
                owner_uid: Some(cluster.metadata.uid.clone()),
                ..Default::default()
            })
            .await?;
        let tag = cluster_tag(&cluster.metadata.uid);
        let mut resources = match self.listed(cloud, cluster, &tag).await? {
            Some(listed) => listed,
            None => {
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
                resources
            }
        };
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
            registry: None,
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
                let mut desired = self.desired_addons(cloud, cluster, &observed, false).await;
                let readiness = match &desired {
                    Ok(d) if !d.refs.is_empty() => self.addons_readiness(cluster, target, d).await,
                    _ => Some(Vec::new()),
                };
                // The objects themselves are kept only while an apply is due.
                if let Ok(d) = &desired {
                    let due = d.apply_due(
                        cluster.status.addons.digest.as_deref(),
                        readiness.as_deref(),
                    );
                    if due && d.objects.is_none() {
                        desired = self.desired_addons(cloud, cluster, &observed, true).await;
                    } else if !due && d.objects.is_some() {
                        self.keep_addons_outline(&cluster.metadata.uid);
                    }
                }
                observed.addons = Some(addons::ObservedAddons { desired, readiness });
            }
            // etcd is asked only once a leaving control plane is past its drain: nothing
            // else needs it. (A status one reconcile old at worst means one more wait,
            // never a server deleted unread.)
            if observed.nodes.is_some()
                && observed.machines.iter().any(|m| {
                    m.metadata.is_deleting()
                        && m.is_control_plane()
                        && (m.status.drained || !m.status.ready)
                })
            {
                match self.workloads.etcd_members(target).await {
                    Ok(members) => observed.etcd_members = Some(members),
                    Err(e) => debug!(error = %e, "cannot list etcd members"),
                }
            }
        }
        if !cluster.metadata.is_deleting() {
            match self
                .observe_pull(cluster, workload.as_ref(), observed.nodes.is_some())
                .await
            {
                Ok(pull) => observed.registry = Some(pull),
                Err(e) => warn!(error = %e, "cannot read the cluster's registry pull credential"),
            }
        }
        Ok((observed, workload))
    }

    /// The cluster's resources from the bulk listing of its tenant's project, when it
    /// may be observed that way: it is settled (as stored and as last planned), not
    /// being deleted, and the listing was taken after the last steps executed on it.
    /// `None`: observe it afresh.
    async fn listed(
        &self,
        cloud: &dyn CloudProvider,
        cluster: &Cluster,
        tag: &str,
    ) -> Result<Option<Vec<CloudResource>>, ReconcileError> {
        let uid = &cluster.metadata.uid;
        let settled = !cluster.metadata.is_deleting()
            && cluster.status.phase == ClusterPhase::Available
            && cluster.status.observed_generation == cluster.metadata.generation
            && !self
                .moving
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(uid);
        if !settled {
            return Ok(None);
        }
        let acted_at = self
            .acted_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            .copied()
            .unwrap_or(self.started);
        let tenant = &cluster.metadata.tenant;
        let tags = async || match self
            .store
            .list_obj::<Cluster>(&ListFilter::tenant(tenant))
            .await
        {
            Ok(clusters) => clusters
                .iter()
                .filter(|c| !c.metadata.is_deleting())
                .map(|c| cluster_tag(&c.metadata.uid))
                .collect(),
            Err(e) => {
                warn!(error = %e, "cannot list the tenant's clusters for a listing of its project");
                Vec::new()
            }
        };
        let mut max_age = self.config.cloud_resync;
        if max_age > Duration::from_secs(1) {
            // Listings of many tenants do not fall due together.
            max_age = max_age.mul_f64(rand::rng().random_range(0.9..1.0));
        }
        let listing = self
            .inventory
            .listing(tenant, cloud, max_age, tag, tags, |ok| {
                self.count_call(cloud, "list", ok)
            })
            .await
            .map_err(ReconcileError::Observe)?;
        if listing.taken_at <= acted_at {
            return Ok(None);
        }
        Ok(listing.of(tag))
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
            api_vip: infra
                .get("loadBalancer")
                .and_then(|r| r.address.clone())
                .map(|a| format!("https://{a}:{}", plan::API_PORT)),
            credentials,
        })
    }

    /// An upstream addon's chart or manifest, loaded once per digest.
    async fn upstream_artifact(&self, addon: &StackAddon) -> Result<UpstreamArtifact, String> {
        let digest = match (&addon.chart, &addon.manifest) {
            (Some(chart), _) => &chart.digest,
            (None, Some(manifest)) => &manifest.digest,
            (None, None) => return Err(format!("addon {} names no upstream artifact", addon.name)),
        };
        if let Some(loaded) = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
        {
            return Ok(loaded.clone());
        }
        let bytes = self.artifacts.artifact(addon).await?;
        let loaded = UpstreamArtifact::load(addon, &bytes)?;
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest.clone(), loaded.clone());
        Ok(loaded)
    }

    /// The addons the cluster's stack and spec call for, rendered with its values, or
    /// why they cannot be: from the last rendering when nothing it depends on changed and
    /// it has what is asked for (the objects themselves, with `objects`, or only their
    /// outline).
    async fn desired_addons(
        &self,
        cloud: &dyn CloudProvider,
        cluster: &Cluster,
        observed: &Observed,
        objects: bool,
    ) -> Result<addons::DesiredAddons, String> {
        let stack = observed
            .stack
            .as_ref()
            .ok_or_else(|| format!("stack {} is not in the catalog", cluster.spec.stack))?;
        let chosen = stack.addons_for(&cluster.spec.addons);
        if chosen.is_empty() {
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
        let api_server_host = infra.get("loadBalancer").and_then(|r| r.address.clone());
        let inputs = format!(
            "{}|{chosen:?}|{credential_id}|{:?}|{}|{:?}|{:?}|{api_server_host:?}",
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
            && (!objects || desired.objects.is_some())
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
        let values = AddonValues::for_cluster(
            &cluster.metadata.name,
            &cluster.metadata.uid,
            spec,
            stack,
            api_server_host,
            CloudValues {
                auth_url: cloud.auth_url(),
                region: self.config.region.clone().unwrap_or_default(),
                application_credential_id: credential_id,
                application_credential_secret: secret,
            },
        )
        .map_err(|e| e.to_string())?;
        let mut rendered = Vec::with_capacity(chosen.len());
        for addon in &chosen {
            let artifact = self.upstream_artifact(addon).await?;
            rendered
                .push(render_upstream_addon(addon, &artifact, &values).map_err(|e| e.to_string())?);
        }
        self.metrics.addon_renders.inc();
        let desired = addons::DesiredAddons::new(stack.name(), rendered);
        self.rendered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid.clone(), (inputs, desired.clone()));
        Ok(desired)
    }

    /// Drops the objects of the cluster's rendered addons, keeping their outline: they
    /// are applied, and a cluster's charts run to megabytes (CRDs above all), more than
    /// ten thousand settled clusters can keep. They are rendered again when an apply is
    /// due once more.
    fn keep_addons_outline(&self, uid: &str) {
        if let Some((_, desired)) = self
            .rendered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(uid)
        {
            *desired = desired.outline();
        }
    }
}
