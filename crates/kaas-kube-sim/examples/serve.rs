//! One simulated API server over plain HTTP with three Ready nodes, for trying clients by
//! hand:
//!
//! ```text
//! cargo run -p kaas-kube-sim --example serve -- 127.0.0.1:8080
//! kubectl --server http://127.0.0.1:8080 get nodes
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kaas_kube_sim::{ApiServer, NodeSpec, router};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let api = Arc::new(ApiServer::new());
    let nodes: Vec<NodeSpec> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, zone)| NodeSpec {
            name: format!("worker-{i}"),
            provider_id: format!("openstack:///server-{i}"),
            ready: true,
            labels: BTreeMap::from([
                (
                    "topology.kubernetes.io/zone".to_owned(),
                    format!("zone-{zone}"),
                ),
                (
                    "topology.kubernetes.io/region".to_owned(),
                    "region-1".to_owned(),
                ),
            ]),
            kubelet_version: "v1.33.0".to_owned(),
            internal_ip: Some(format!("10.0.0.{}", 10 + i)),
            taints: Vec::new(),
        })
        .collect();
    api.set_nodes(&nodes);
    let _controllers = api.spawn_controllers(Duration::from_secs(1));
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("serving on http://{}", listener.local_addr()?);
    axum::serve(listener, router(api)).await?;
    Ok(())
}
