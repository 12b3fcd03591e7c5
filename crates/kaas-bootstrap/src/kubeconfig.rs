//! Admin kubeconfigs: a cluster, a user with a client certificate, and a context
//! joining them, all embedded (no file references), so that the file stands alone.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;

use crate::BootstrapError;
use crate::kubeadm::yaml;
use crate::pki::CertAndKey;

/// Renders a kubeconfig for `client` (e.g. from [`crate::pki::issue_admin_client_cert`])
/// that talks to `server_url` and trusts `ca_cert_pem`. The cluster and the context are
/// named `kaas-<cluster_name>`, the user `kaas-<cluster_name>-admin`; the context is
/// current.
pub fn render_admin_kubeconfig(
    cluster_name: &str,
    server_url: &str,
    ca_cert_pem: &str,
    client: &CertAndKey,
) -> Result<String, BootstrapError> {
    let cluster = format!("kaas-{cluster_name}");
    let user = format!("kaas-{cluster_name}-admin");
    let config = Kubeconfig {
        api_version: "v1",
        kind: "Config",
        clusters: vec![Named {
            name: &cluster,
            cluster: ClusterEntry {
                server: server_url,
                certificate_authority_data: BASE64.encode(ca_cert_pem),
            },
        }],
        users: vec![NamedUser {
            name: &user,
            user: UserEntry {
                client_certificate_data: BASE64.encode(&client.cert_pem),
                client_key_data: BASE64.encode(&client.key_pem),
            },
        }],
        contexts: vec![NamedContext {
            name: &cluster,
            context: ContextEntry {
                cluster: &cluster,
                user: &user,
            },
        }],
        current_context: &cluster,
    };
    yaml("kubeconfig", &config)
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Kubeconfig<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    clusters: Vec<Named<'a>>,
    users: Vec<NamedUser<'a>>,
    contexts: Vec<NamedContext<'a>>,
    current_context: &'a str,
}

#[derive(Serialize)]
struct Named<'a> {
    name: &'a str,
    cluster: ClusterEntry<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterEntry<'a> {
    server: &'a str,
    certificate_authority_data: String,
}

#[derive(Serialize)]
struct NamedUser<'a> {
    name: &'a str,
    user: UserEntry,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct UserEntry {
    client_certificate_data: String,
    client_key_data: String,
}

#[derive(Serialize)]
struct NamedContext<'a> {
    name: &'a str,
    context: ContextEntry<'a>,
}

#[derive(Serialize)]
struct ContextEntry<'a> {
    cluster: &'a str,
    user: &'a str,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn client() -> CertAndKey {
        CertAndKey {
            cert_pem: "-----BEGIN CERTIFICATE-----\nclient\n-----END CERTIFICATE-----\n"
                .to_string(),
            key_pem: "-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n".to_string(),
        }
    }

    const CA: &str = "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n";

    #[test]
    fn snapshot_admin_kubeconfig() {
        let rendered =
            render_admin_kubeconfig("demo", "https://203.0.113.7:6443", CA, &client()).unwrap();
        insta::assert_snapshot!(rendered);
    }

    #[test]
    fn embeds_base64_pems_and_names_everything_after_the_cluster() {
        let rendered =
            render_admin_kubeconfig("demo", "https://203.0.113.7:6443", CA, &client()).unwrap();
        let config: Value = serde_saphyr::from_str(&rendered).unwrap();
        let decode =
            |v: &Value| String::from_utf8(BASE64.decode(v.as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(config["apiVersion"], "v1");
        assert_eq!(config["kind"], "Config");
        assert_eq!(config["current-context"], "kaas-demo");
        assert_eq!(config["clusters"][0]["name"], "kaas-demo");
        assert_eq!(
            config["clusters"][0]["cluster"]["server"],
            "https://203.0.113.7:6443"
        );
        assert_eq!(
            decode(&config["clusters"][0]["cluster"]["certificate-authority-data"]),
            CA
        );
        assert_eq!(config["users"][0]["name"], "kaas-demo-admin");
        assert_eq!(
            decode(&config["users"][0]["user"]["client-certificate-data"]),
            client().cert_pem
        );
        assert_eq!(
            decode(&config["users"][0]["user"]["client-key-data"]),
            client().key_pem
        );
        assert_eq!(
            config["contexts"][0],
            serde_json::json!({"name": "kaas-demo", "context": {"cluster": "kaas-demo", "user": "kaas-demo-admin"}})
        );
    }
}
