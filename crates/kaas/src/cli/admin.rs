//! Tenancy and operations: `kaas tenant`, `kaas token`, `kaas audit`, `kaas keys`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::output::{Format, print_list, print_value};
use super::{Client, Paging};

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant (operator only), bound to an OpenStack project.
    Create {
        name: String,
        /// The OpenStack project (id or name) its clusters are built in.
        #[arg(long)]
        project: Option<String>,
        #[arg(long, default_value = "")]
        display_name: String,
        /// Quotas: `clusters=N,machines=N,vcpus=N` (any of them; the others get the
        /// defaults).
        #[arg(long, value_name = "KEY=N,…", value_parser = kaas_core::tenant::parse_quota_change,
              conflicts_with_all = ["max_clusters", "max_machines", "max_vcpus"])]
        quota: Option<kaas_core::tenant::QuotaChange>,
        /// Quotas: at most this many clusters, machines and vCPUs.
        #[arg(long)]
        max_clusters: Option<u32>,
        #[arg(long)]
        max_machines: Option<u32>,
        #[arg(long)]
        max_vcpus: Option<u32>,
        /// An application credential of the project (the secret is read from
        /// KAAS_APPLICATION_CREDENTIAL_SECRET), sealed at rest, never shown again.
        #[arg(long)]
        application_credential_id: Option<String>,
    },
    /// Change a tenant's project, quotas or application credential (operator only).
    Update {
        name: String,
        #[arg(long)]
        project: Option<String>,
        /// New quotas: `clusters=N,machines=N,vcpus=N` (any of them; the others stay).
        /// Lowering a quota below what the tenant uses refuses new growth only.
        #[arg(long, value_name = "KEY=N,…", value_parser = kaas_core::tenant::parse_quota_change,
              conflicts_with_all = ["max_clusters", "max_machines", "max_vcpus"])]
        quota: Option<kaas_core::tenant::QuotaChange>,
        #[arg(long)]
        max_clusters: Option<u32>,
        #[arg(long)]
        max_machines: Option<u32>,
        #[arg(long)]
        max_vcpus: Option<u32>,
        /// A new application credential (the secret from
        /// KAAS_APPLICATION_CREDENTIAL_SECRET).
        #[arg(long)]
        application_credential_id: Option<String>,
    },
    /// List the tenants (the operator sees all; others their own).
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show one tenant.
    Get {
        name: String,
        #[arg(short, long, value_enum, default_value = "yaml")]
        output: Format,
    },
    /// Delete a tenant that has no clusters left, with its tokens and secrets.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make an API token; it is shown once.
    Create {
        /// The tenant (default: the caller's).
        #[arg(long)]
        tenant: Option<String>,
        /// viewer, editor or admin.
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "")]
        description: String,
        /// How long it is valid (e.g. 30d); default: until revoked.
        #[arg(long)]
        ttl: Option<String>,
    },
    /// List the tenant's tokens (never their secrets).
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
        #[command(flatten)]
        paging: Paging,
    },
    /// Revoke a token: it is refused from now on.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Every mutating request: who, tenant, what, when, result.
    List {
        /// The operator: only this tenant's entries.
        #[arg(long)]
        tenant: Option<String>,
        /// Only entries after this seq.
        #[arg(long, default_value_t = 0)]
        since: i64,
        #[arg(long, default_value_t = 500)]
        limit: u32,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new key-encryption key to DIR/secret-keys, make it current and re-wrap every
    /// sealed secret with it. Run it with the server stopped; the old keys stay (they
    /// still open backups) until you remove them.
    Rotate {
        #[arg(long, default_value = "./kaas-data")]
        data_dir: PathBuf,
    },
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// An application credential with the secret from the environment (never a flag: it
/// would stay in the shell's history).
fn credentials(id: &str) -> Result<Value> {
    let secret = std::env::var("KAAS_APPLICATION_CREDENTIAL_SECRET").context(
        "--application-credential-id needs the secret in KAAS_APPLICATION_CREDENTIAL_SECRET",
    )?;
    Ok(json!({
        "applicationCredentialId": id,
        "applicationCredentialSecret": secret,
    }))
}

pub async fn tenant(client: &Client, cmd: TenantCommand) -> Result<ExitCode> {
    match cmd {
        TenantCommand::Create {
            name,
            project,
            display_name,
            quota,
            max_clusters,
            max_machines,
            max_vcpus,
            application_credential_id,
        } => {
            let mut spec = json!({"displayName": display_name});
            if let Some(p) = project {
                spec["project"] = json!(p);
            }
            let change = quota.unwrap_or(kaas_core::tenant::QuotaChange {
                clusters: max_clusters,
                machines: max_machines,
                vcpus: max_vcpus,
            });
            spec["quotas"] = json!(change.applied_to(&kaas_core::tenant::Quotas::default()));
            if let Some(id) = application_credential_id {
                spec["credentials"] = credentials(&id)?;
            }
            let body = json!({
                "apiVersion": kaas_core::meta::API_VERSION,
                "kind": "Tenant",
                "metadata": {"name": name},
                "spec": spec,
            });
            client
                .request(Method::POST, "/v1/tenants", Some(&body))
                .await?;
            println!("tenant/{name} created");
            Ok(ExitCode::SUCCESS)
        }
        TenantCommand::Update {
            name,
            project,
            quota,
            max_clusters,
            max_machines,
            max_vcpus,
            application_credential_id,
        } => {
            let path = format!("/v1/tenants/{name}");
            let change = quota.unwrap_or(kaas_core::tenant::QuotaChange {
                clusters: max_clusters,
                machines: max_machines,
                vcpus: max_vcpus,
            });
            let mut tenant = client.get(&path).await?;
            if let Some(obj) = tenant.as_object_mut() {
                obj.remove("status");
            }
            let spec = &mut tenant["spec"];
            if let Some(p) = project {
                spec["project"] = json!(p);
            }
            for (field, value) in [
                ("clusters", change.clusters),
                ("machines", change.machines),
                ("vcpus", change.vcpus),
            ] {
                if let Some(v) = value {
                    spec["quotas"][field] = json!(v);
                }
            }
            if let Some(id) = application_credential_id {
                spec["credentials"] = credentials(&id)?;
            }
            client.request(Method::PUT, &path, Some(&tenant)).await?;
            println!("tenant/{name} updated");
            Ok(ExitCode::SUCCESS)
        }
        TenantCommand::List { output, paging } => {
            let list = client
                .get_all("/v1/tenants", &[], paging.chunk_size)
                .await?;
            print_list(
                &list,
                output,
                &[
                    "NAME",
                    "PROJECT",
                    "CLUSTERS",
                    "QUOTA (CLUSTERS/MACHINES/VCPUS)",
                    "CREDENTIALS",
                ],
                |t| {
                    let q = &t["spec"]["quotas"];
                    vec![
                        text(&t["metadata"]["name"]),
                        text(&t["spec"]["project"]),
                        text(&t["status"]["clusters"]),
                        format!(
                            "{}/{}/{}",
                            text(&q["clusters"]),
                            text(&q["machines"]),
                            text(&q["vcpus"])
                        ),
                        if t["status"]["credentialsStored"] == true {
                            "yes"
                        } else {
                            "no"
                        }
                        .to_owned(),
                    ]
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
        TenantCommand::Get { name, output } => {
            print_value(&client.get(&format!("/v1/tenants/{name}")).await?, output)?;
            Ok(ExitCode::SUCCESS)
        }
        TenantCommand::Delete { name } => {
            client
                .request(Method::DELETE, &format!("/v1/tenants/{name}"), None)
                .await?;
            println!("tenant/{name} deleted");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn token(client: &Client, cmd: TokenCommand) -> Result<ExitCode> {
    match cmd {
        TokenCommand::Create {
            tenant,
            role,
            description,
            ttl,
        } => {
            let mut body = json!({"role": role, "description": description});
            if let Some(t) = tenant {
                body["tenant"] = json!(t);
            }
            if let Some(t) = ttl {
                body["ttl"] = json!(t);
            }
            let created = client
                .request(Method::POST, "/v1/tokens", Some(&body))
                .await?
                .unwrap_or(Value::Null);
            let Some(token) = created["token"].as_str() else {
                bail!("the server's answer has no token");
            };
            eprintln!(
                "token {} ({} in tenant {}); it is shown only this once:",
                text(&created["metadata"]["name"]),
                text(&created["spec"]["role"]),
                text(&created["metadata"]["tenant"]),
            );
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::List { output, paging } => {
            let list = client.get_all("/v1/tokens", &[], paging.chunk_size).await?;
            print_list(
                &list,
                output,
                &["ID", "ROLE", "EXPIRES", "CREATED BY", "DESCRIPTION"],
                |t| {
                    vec![
                        text(&t["metadata"]["name"]),
                        text(&t["spec"]["role"]),
                        text(&t["spec"]["expiresAt"]),
                        text(&t["spec"]["createdBy"]),
                        text(&t["spec"]["description"]),
                    ]
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Revoke { id } => {
            client
                .request(Method::DELETE, &format!("/v1/tokens/{id}"), None)
                .await?;
            println!("token/{id} revoked");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn audit(client: &Client, cmd: AuditCommand) -> Result<ExitCode> {
    let AuditCommand::List {
        tenant,
        since,
        limit,
        output,
    } = cmd;
    let mut path = format!("/v1/audit?since={since}&limit={limit}");
    if let Some(t) = tenant {
        path.push_str(&format!("&tenant={t}"));
    }
    let list = client.get(&path).await?;
    print_list(
        &list,
        output,
        &["SEQ", "AT", "WHO", "TENANT", "REQUEST", "RESULT"],
        |e| {
            vec![
                text(&e["seq"]),
                text(&e["at"]),
                text(&e["who"]),
                text(&e["tenant"]),
                format!("{} {}", text(&e["method"]), text(&e["path"])),
                format!("{} {}", text(&e["status"]), text(&e["result"])),
            ]
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

pub async fn keys(cmd: KeysCommand) -> Result<ExitCode> {
    let KeysCommand::Rotate { data_dir } = cmd;
    if std::env::var_os(kaas_store::KEY_ENV_VAR).is_some() {
        bail!(
            "{} is set: its key cannot be rotated here. Unset it to use the key directory {}, or rotate by re-sealing under a new variable",
            kaas_store::KEY_ENV_VAR,
            data_dir.join("secret-keys").display()
        );
    }
    let store = kaas_store::SqliteStore::open(&data_dir.join("kaas.db"))
        .await
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    // Load first, so a missing key directory is created as the server would.
    kaas_store::SecretBox::load_dir(&data_dir)?;
    let id = kaas_store::add_key(&data_dir)?;
    let sealer = kaas_store::SecretBox::load_dir(&data_dir)?;
    let rewrapped = kaas_store::rewrap_all(&store, &sealer).await?;
    println!(
        "added key {id} (now current) and re-wrapped {rewrapped} secrets with it; the older keys in {} still open backups: remove them once none is needed",
        data_dir.join("secret-keys").display()
    );
    Ok(ExitCode::SUCCESS)
}
