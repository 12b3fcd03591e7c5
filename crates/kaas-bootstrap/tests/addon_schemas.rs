//! Every built-in stack's addons, rendered with every optional addon chosen, validate
//! against the Kubernetes OpenAPI schema of the stack's own Kubernetes minor, strictly
//! (no unknown fields), with `kubernetes-validate` (PyPI; the schemas of each release
//! are generated from Kubernetes' OpenAPI document). Objects of custom kinds
//! (cert-manager's ClusterIssuer) have no schema there and are checked by their CRDs
//! when applied.
//!
//! The project's test script installs the tool; without it the test fails, naming it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use kaas_bootstrap::KubernetesVersion;
use kaas_bootstrap::addons::{AddonRef, AddonValues, render_addons};
use kaas_core::cluster::{Addons, CertManagerAddon, IngressAddon};
use kaas_core::stack::StackCatalog;

#[test]
fn every_stacks_addons_validate_against_its_kubernetes_schema() {
    let catalog = StackCatalog::builtin().unwrap();
    let chosen = Addons {
        ingress: Some(IngressAddon {
            proxy_protocol: true,
        }),
        cert_manager: Some(CertManagerAddon {
            acme_email: "ops@example.org".to_owned(),
            issuer: "letsencrypt-staging".to_owned(),
        }),
        gateway: None,
        metrics_server: true,
        registry: false,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for stack in catalog.all() {
        let version = KubernetesVersion::parse(stack.kubernetes_version()).unwrap();
        let addons: Vec<AddonRef> = stack
            .addons_for(&chosen)
            .iter()
            .map(|a| AddonRef {
                name: a.name.clone(),
                version: a.version.clone(),
            })
            .collect();
        let values = AddonValues {
            cluster_name: "prod".to_owned(),
            cluster_uid: "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d".to_owned(),
            pod_cidr: "10.244.0.0/16".to_owned(),
            service_cidr: "10.96.0.0/12".to_owned(),
            node_cidr: "10.0.0.0/20".to_owned(),
            api_server_host: Some("10.0.0.10".to_owned()),
            kubernetes_version: version.clone(),
            auth_url: "https://keystone.example:5000/v3".to_owned(),
            region: "RegionOne".to_owned(),
            application_credential_id: "id".to_owned(),
            application_credential_secret: "secret".to_owned(),
            proxy_protocol: true,
            acme_email: Some("ops@example.org".to_owned()),
        };
        for addon in render_addons(&addons, &values).unwrap() {
            let builtin: Vec<String> = addon
                .objects
                .iter()
                .filter(|o| {
                    !o["apiVersion"]
                        .as_str()
                        .unwrap()
                        .contains("cert-manager.io")
                })
                .map(|o| serde_json::to_string(o).unwrap())
                .collect();
            let file = dir
                .path()
                .join(format!("{}-{}.yaml", stack.name(), addon.name));
            std::fs::write(&file, builtin.join("\n---\n")).unwrap();
            let minor = format!("1.{}.0", version.minor());
            let out = Command::new("kubernetes-validate")
                .args(["--strict", "--no-warn", "-k", &minor])
                .arg(&file)
                .output()
                .expect(
                    "`kubernetes-validate` is not on PATH: install it with \
                     `python3 -m pip install kubernetes-validate` (dev/test.sh does)",
                );
            assert!(
                out.status.success(),
                "{} / {} against Kubernetes {minor}:\n{}{}",
                stack.name(),
                addon.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += builtin.len();
        }
    }
    assert!(checked > 50, "only {checked} objects checked");
}
