//! `kaas registry`: the integrated registry's robot credentials, repositories and tags,
//! and (`registry config`) the configuration of a Distribution registry whose token
//! service is kaas.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::Client;
use super::output::{Format, print_list, print_value};

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Robot credentials of the tenant for the registry.
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// The tenant's repositories with their tags, or one repository's tags with their
    /// digests and sizes.
    List {
        /// A repository (`<tenant>/<name>`).
        repository: Option<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Delete a tag (its manifest, and so every tag that points at it).
    Delete {
        /// `<tenant>/<name>:<tag>`.
        reference: String,
    },
    /// Make a repository public (anyone pulls it without credentials), or private again.
    Public {
        repository: String,
        /// Private again.
        #[arg(long)]
        off: bool,
    },
    /// Write the token service's CA certificate and print a configuration for
    /// Distribution's registry (`docker-registry`) whose token service is kaas. Run it
    /// against the server's data folder.
    Config {
        #[arg(long, default_value = "./kaas-data")]
        data_dir: PathBuf,
        /// Where the registry reaches kaas (the token realm is `<URL>/v2/token`).
        #[arg(long)]
        kaas_url: String,
        /// The registry's listen address.
        #[arg(long, default_value = "127.0.0.1:5000")]
        listen: String,
        /// Where the registry stores images.
        #[arg(long, default_value = "/var/lib/docker-registry")]
        storage: PathBuf,
        /// The registry's service name (kaas server's --registry-service).
        #[arg(long, default_value = crate::registry::DEFAULT_SERVICE)]
        service: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Make a robot credential; its secret is shown once.
    Create {
        name: String,
        /// pull or push (push includes pull).
        #[arg(long)]
        access: String,
        #[arg(long, default_value = "")]
        description: String,
        /// How long it is valid (e.g. 90d); default: until revoked.
        #[arg(long)]
        ttl: Option<String>,
    },
    /// List the tenant's credentials (never their secrets).
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
        #[command(flatten)]
        paging: super::Paging,
    },
    /// Revoke a credential: the registry refuses it from now on.
    Revoke { name: String },
    /// A new secret; the one before still works for the overlap.
    Rotate {
        name: String,
        /// How long the secret before still works (default 24h; 0s: not at all).
        #[arg(long)]
        overlap: Option<String>,
    },
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A repository name as one path segment (its `/` escaped).
fn segment(repository: &str) -> String {
    repository.replace('%', "%25").replace('/', "%2F")
}

pub async fn run(
    client: impl FnOnce() -> Result<Client>,
    cmd: RegistryCommand,
) -> Result<ExitCode> {
    match cmd {
        RegistryCommand::Config {
            data_dir,
            kaas_url,
            listen,
            storage,
            service,
        } => config(data_dir, &kaas_url, &listen, &storage, &service).await,
        RegistryCommand::Credential(cmd) => credential(&client()?, cmd).await,
        RegistryCommand::List { repository, output } => {
            let client = client()?;
            match repository {
                None => {
                    let list = client.get("/v1/registry/repositories").await?;
                    print_list(&list, output, &["REPOSITORY", "TAGS", "PUBLIC"], |r| {
                        let tags: Vec<String> = r["tags"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(text)
                            .collect();
                        vec![text(&r["name"]), tags.join(","), text(&r["public"])]
                    })?;
                }
                Some(repository) => {
                    let repo = client
                        .get(&format!(
                            "/v1/registry/repositories/{}",
                            segment(&repository)
                        ))
                        .await?;
                    if output != Format::Table {
                        print_value(&repo, output)?;
                        return Ok(ExitCode::SUCCESS);
                    }
                    let list = json!({"items": repo["tags"]});
                    print_list(&list, output, &["TAG", "DIGEST", "SIZE"], |t| {
                        vec![text(&t["tag"]), text(&t["digest"]), text(&t["size"])]
                    })?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RegistryCommand::Delete { reference } => {
            let Some((repository, tag)) = reference.rsplit_once(':') else {
                bail!("{reference:?} names no tag: use <tenant>/<name>:<tag>");
            };
            client()?
                .request(
                    Method::DELETE,
                    &format!(
                        "/v1/registry/repositories/{}/tags/{tag}",
                        segment(repository)
                    ),
                    None,
                )
                .await?;
            println!("{reference} deleted");
            Ok(ExitCode::SUCCESS)
        }
        RegistryCommand::Public { repository, off } => {
            client()?
                .request(
                    Method::PUT,
                    &format!("/v1/registry/repositories/{}", segment(&repository)),
                    Some(&json!({"public": !off})),
                )
                .await?;
            println!("{repository} is {}", if off { "private" } else { "public" });
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn credential(client: &Client, cmd: CredentialCommand) -> Result<ExitCode> {
    let shown = |created: &Value| -> Result<()> {
        let Some(secret) = created["secret"].as_str() else {
            bail!("the server's answer has no secret");
        };
        eprintln!(
            "registry credential {} ({}); log in as {} with the secret below, shown only this once:",
            text(&created["metadata"]["name"]),
            text(&created["spec"]["access"]),
            text(&created["username"]),
        );
        println!("{secret}");
        Ok(())
    };
    match cmd {
        CredentialCommand::Create {
            name,
            access,
            description,
            ttl,
        } => {
            let mut body = json!({"name": name, "access": access, "description": description});
            if let Some(t) = ttl {
                body["ttl"] = json!(t);
            }
            let created = client
                .request(Method::POST, "/v1/registry/credentials", Some(&body))
                .await?
                .unwrap_or(Value::Null);
            shown(&created)?;
        }
        CredentialCommand::List { output, paging } => {
            let list = client
                .get_all("/v1/registry/credentials", &[], paging.chunk_size)
                .await?;
            print_list(
                &list,
                output,
                &[
                    "NAME",
                    "USERNAME",
                    "ACCESS",
                    "EXPIRES",
                    "ROTATED",
                    "CREATED BY",
                    "DESCRIPTION",
                ],
                |c| {
                    vec![
                        text(&c["metadata"]["name"]),
                        text(&c["username"]),
                        text(&c["spec"]["access"]),
                        text(&c["spec"]["expiresAt"]),
                        text(&c["spec"]["rotatedAt"]),
                        text(&c["spec"]["createdBy"]),
                        text(&c["spec"]["description"]),
                    ]
                },
            )?;
        }
        CredentialCommand::Revoke { name } => {
            client
                .request(
                    Method::DELETE,
                    &format!("/v1/registry/credentials/{name}"),
                    None,
                )
                .await?;
            println!("registry credential {name} revoked");
        }
        CredentialCommand::Rotate { name, overlap } => {
            let body = match overlap {
                Some(o) => json!({"overlap": o}),
                None => json!({}),
            };
            let rotated = client
                .request(
                    Method::POST,
                    &format!("/v1/registry/credentials/{name}/rotate"),
                    Some(&body),
                )
                .await?
                .unwrap_or(Value::Null);
            shown(&rotated)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn config(
    data_dir: PathBuf,
    kaas_url: &str,
    listen: &str,
    storage: &std::path::Path,
    service: &str,
) -> Result<ExitCode> {
    crate::server::create_private_dir(&data_dir)?;
    let store = kaas_store::SqliteStore::open(&data_dir.join("kaas.db"))
        .await
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    let sealer = kaas_store::SecretBox::load(&data_dir)
        .context("cannot load the keys that seal secrets at rest")?;
    let pki = crate::registry::token_pki(&store, &sealer).await?;
    let ca = crate::registry::write_token_ca(&data_dir, &pki)?;
    let ca = std::fs::canonicalize(&ca).unwrap_or(ca);
    let config = crate::registry::distribution_config(kaas_url, service, listen, storage, &ca);
    print!("{}", serde_saphyr::to_string(&config)?);
    eprintln!(
        "wrote the token CA certificate the registry trusts to {}",
        ca.display()
    );
    Ok(ExitCode::SUCCESS)
}
