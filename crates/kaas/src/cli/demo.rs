//! `kaas demo`: an embedded server on the simulated cloud, a cluster created with live
//! progress, and a summary of what was made.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Result;
use reqwest::Method;
use serde_json::json;

use super::{Client, DemoArgs, wait};
use crate::server::{self, CloudKind, ServerConfig};

pub async fn run(args: DemoArgs, log: &str) -> Result<ExitCode> {
    // The demo talks to the user on stdout; the server only warns.
    let filter = if log == "info" { "warn" } else { log };
    super::init_logging(filter, false);
    let running = server::start(ServerConfig {
        data_dir: args.data_dir.clone(),
        listen: args.listen,
        cloud: CloudKind::Sim,
        sim_speed: args.sim_speed,
        sim_faults: Default::default(),
        sim_quotas: args.sim_quota.unwrap_or_default(),
        sim_latencies: None,
        stacks_dir: args.stacks_dir.clone(),
        default_stack: args.default_stack.clone(),
        registry: args
            .registry_url
            .clone()
            .map(crate::registry::RegistryOptions::new),
        ..ServerConfig::default()
    })
    .await?;
    let url = running.url();
    println!(
        "kaas server on {url} — cloud: SIMULATED (speed ×{}), data in {}",
        args.sim_speed,
        args.data_dir.display()
    );
    let client = Client::new(&url, Some(running.admin_token.clone()))?;
    let name = &args.name;
    if client
        .get_opt(&format!("/v1/clusters/{name}"))
        .await?
        .is_none()
    {
        let body = json!({
            "apiVersion": kaas_core::meta::API_VERSION,
            "kind": "Cluster",
            "metadata": {"name": name},
            "spec": {"controlPlane": {"replicas": 3}, "nodePools": [{"name": "workers", "replicas": 3}]}
        });
        client
            .request(Method::POST, "/v1/clusters", Some(&body))
            .await?;
        println!("Creating cluster {name}: 3 control-plane and 3 worker machines\n");
    } else {
        println!("Cluster {name} exists already; following it\n");
    }
    let code = wait::until_available(&client, name, std::time::Duration::from_secs(3600)).await?;

    let inventory = client.get("/v1/sim/inventory").await?;
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for item in inventory["items"].as_array().into_iter().flatten() {
        *kinds
            .entry(item["kind"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    let made: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!("\nIn the simulated cloud: {}", made.join(", "));
    println!("\nReach this server from another terminal:");
    if let Ok(exe) = std::env::current_exe() {
        println!("  alias kaas={}", exe.display());
    }
    println!("  export KAAS_SERVER={url}");
    println!(
        "  export KAAS_TOKEN=$(cat {}/admin.token)",
        args.data_dir.display()
    );
    println!("  kaas cluster list");
    println!("  kaas cluster get {name} -o yaml");
    println!("  kaas cluster events {name}");
    println!("  kaas machine list {name}");
    println!("  kaas cluster kubeconfig {name} > {name}.kubeconfig");
    println!("  kubectl --kubeconfig {name}.kubeconfig get nodes,pods -A");
    if let Some(registry) = &args.registry_url {
        let host = kaas_api::registry::RegistryService::host_of(registry)
            .unwrap_or_else(|| registry.clone());
        println!("  # the registry at {registry}, kaas its token service:");
        println!("  kaas registry credential create ci --access push   # the secret is shown once");
        println!(
            "  skopeo copy oci:DIR:TAG docker://{host}/default/app:1 --dest-tls-verify=false --dest-creds 'default+ci:SECRET'"
        );
        println!("  kaas registry list");
    }
    println!("  kaas sim inventory");
    println!("  kaas cluster delete {name} --wait");
    if args.exit {
        running.shutdown().await;
        return Ok(code);
    }
    println!("\nServing until Ctrl-C.");
    server::wait_for_signal().await;
    running.shutdown().await;
    Ok(code)
}
