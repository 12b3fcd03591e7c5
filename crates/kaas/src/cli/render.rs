//! `kaas stack render STACK [--cluster NAME]`: what a cluster gets from a stack's
//! addons, rendered here as the controller renders them (the same code, the same
//! values), from the artifacts the server has cached or, where it has not, from the
//! stack's upstream references, checked against their pins. What only the server
//! and the cloud know (the Keystone URL and region, the cluster's application
//! credential's secret) is shown as a placeholder, never fetched.

use std::process::ExitCode;

use anyhow::{Context, Result};
use kaas_artifacts::{Artifact, Fetcher, Limits};
use kaas_bootstrap::{AddonValues, CloudValues, UpstreamArtifact, render_upstream_addon};
use kaas_core::Cluster;
use kaas_core::cluster::ClusterSpec;
use kaas_core::stack::{ClusterStack, StackAddon};
use reqwest::StatusCode;
use serde_json::json;

use super::client::is_status;
use super::{Client, apply_addon_flags};

/// A cluster's name and uid when no cluster is named (the uid is all zeros).
const EXAMPLE_NAME: &str = "example";
const EXAMPLE_UID: &str = "00000000-0000-0000-0000-000000000000";
/// The API's VIP of a cluster that has none yet: an address of TEST-NET-1.
const EXAMPLE_VIP: &str = "192.0.2.10";
/// Placeholders for what the server and the cloud keep.
const KEYSTONE: &str = "https://keystone.invalid/v3";
const REGION: &str = "<the cloud's region>";
const CREDENTIAL_ID: &str = "<the cluster's application credential>";
const CREDENTIAL_SECRET: &str = "<kept by kaas>";

pub struct RenderArgs {
    pub stack: String,
    pub cluster: Option<String>,
    pub addons: Vec<String>,
    pub acme_email: Option<String>,
}

pub async fn render(client: &Client, args: RenderArgs) -> Result<ExitCode> {
    let mut stack = client.get(&format!("/v1/stacks/{}", args.stack)).await?;
    if let Some(served) = stack.as_object_mut() {
        served.remove("status");
    }
    let stack: ClusterStack =
        serde_json::from_value(stack).context("the server's stack cannot be read")?;
    let (name, uid, spec, vip, credential_id) = match &args.cluster {
        Some(name) => {
            let cluster: Cluster =
                serde_json::from_value(client.get(&format!("/v1/clusters/{name}")).await?)
                    .context("the server's cluster cannot be read")?;
            let infra = &cluster.status.infrastructure;
            let vip = infra.get("loadBalancer").and_then(|r| r.address.clone());
            let credential = infra.get("applicationCredential").map(|r| r.id.clone());
            (
                cluster.metadata.name,
                cluster.metadata.uid,
                cluster.spec,
                vip,
                credential,
            )
        }
        None => {
            let mut spec = json!({});
            apply_addon_flags(&mut spec, &args.addons, args.acme_email.as_deref())?;
            let spec: ClusterSpec = serde_json::from_value(spec)?;
            (
                EXAMPLE_NAME.to_owned(),
                EXAMPLE_UID.to_owned(),
                spec,
                None,
                None,
            )
        }
    };
    let values = AddonValues::for_cluster(
        &name,
        &uid,
        &spec,
        &stack,
        Some(vip.unwrap_or_else(|| EXAMPLE_VIP.to_owned())),
        CloudValues {
            auth_url: KEYSTONE.to_owned(),
            region: REGION.to_owned(),
            application_credential_id: credential_id.unwrap_or_else(|| CREDENTIAL_ID.to_owned()),
            application_credential_secret: CREDENTIAL_SECRET.to_owned(),
        },
    )?;
    let mut out = format!(
        "# The addons of stack {} for cluster {name} (uid {uid}), as kaas applies them;\n\
         # the cloud's Keystone URL and region and the cluster's credential secret are\n\
         # placeholders.\n",
        stack.name()
    );
    let fetcher = Fetcher::new(Limits::default()).map_err(anyhow::Error::msg)?;
    for addon in stack.addons_for(&spec.addons) {
        let bytes = artifact_bytes(client, &fetcher, addon).await?;
        let artifact = UpstreamArtifact::load(addon, &bytes).map_err(anyhow::Error::msg)?;
        let rendered = render_upstream_addon(addon, &artifact, &values)?;
        out.push_str(&format!(
            "# --- addon {} {} from {}: {} objects\n",
            addon.name,
            addon.version,
            source(addon),
            rendered.objects.len()
        ));
        for object in &rendered.objects {
            out.push_str("---\n");
            out.push_str(&serde_saphyr::to_string(object)?);
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// Where an addon comes from, for people.
fn source(addon: &StackAddon) -> String {
    match (&addon.chart, &addon.manifest) {
        (Some(chart), _) => format!("{} {} {}", chart.repository, chart.name, chart.digest),
        (_, Some(manifest)) => format!("{} {}", manifest.url, manifest.digest),
        _ => String::new(),
    }
}

/// The addon's artifact: the server's cached copy, else fetched from upstream here
/// (and checked against its pin).
async fn artifact_bytes(client: &Client, fetcher: &Fetcher, addon: &StackAddon) -> Result<Vec<u8>> {
    let artifact = Artifact::of_addon(addon)?
        .with_context(|| format!("addon {} names no upstream artifact", addon.name))?;
    match client
        .get_bytes(&format!("/v1/artifacts/{}", artifact.digest))
        .await
    {
        Ok(bytes) => return Ok(bytes),
        Err(e) if is_status(&e, StatusCode::NOT_FOUND) => {}
        Err(e) => return Err(e),
    }
    let fetched = fetcher.fetch(&artifact).await.with_context(|| {
        format!(
            "the server has not cached addon {}'s artifact, nor could it be got here",
            addon.name
        )
    })?;
    let content = fetched
        .content()
        .with_context(|| format!("addon {}: nothing to install was got", addon.name))?;
    Ok(content.bytes.to_vec())
}
