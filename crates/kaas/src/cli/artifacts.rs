//! `kaas stack pull|import|mirror` and `kaas artifact list`: the stacks' upstream
//! artifacts, got by this command (into a bundle, or into an operator's registry) or
//! by the server (into its cache), and bundles uploaded to a server without internet.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use kaas_artifacts::{Artifact, Credentials, Fetched, Fetcher, Limits, Mirror, OciLocation};
use kaas_core::stack::{ClusterStack, StackCatalog};
use reqwest::Method;
use serde_json::Value;

use super::Client;
use super::output::{Format, print_list};

/// The environment variable the registry password of `kaas stack mirror` is read from.
pub const REGISTRY_PASSWORD_ENV: &str = "KAAS_REGISTRY_PASSWORD";

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The stack, e.g. scs-1.36.
    pub name: String,
    /// Get the artifacts here, with this command, and write them to this tar bundle
    /// (for `kaas stack import` on a cloud without internet). Without it, the server
    /// gets them into its cache.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// The stack, e.g. scs-1.36.
    pub name: String,
    /// The registry to push the stack's charts to, e.g. oci://registry.example/kaas;
    /// a chart NAME goes to PATH/NAME:VERSION, where a server with
    /// `--artifact-mirror oci://registry.example/kaas` looks first.
    #[arg(long, value_parser = OciLocation::parse)]
    pub to: OciLocation,
    /// The user name for the registry of --to; the password is read from
    /// $KAAS_REGISTRY_PASSWORD.
    #[arg(long)]
    pub username: Option<String>,
    #[command(flatten)]
    pub source: SourceArgs,
}

/// Where the stack and its artifacts are read from.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Mirrors to try before upstream, in order: oci://HOST/PATH or http(s)://BASE
    /// (serving blobs/sha256/<hex>). Repeatable.
    #[arg(long = "mirror", value_name = "URL")]
    pub mirrors: Vec<Mirror>,
    /// The stack's stack.yaml instead of the built-in stack or the server's.
    #[arg(short = 'f', long = "filename")]
    pub file: Option<PathBuf>,
    /// Speak plain HTTP to every registry (else only to those on loopback).
    #[arg(long)]
    pub plain_http: bool,
}

#[derive(Debug, Subcommand)]
pub enum ChartCommand {
    /// Push a chart (a folder with Chart.yaml, or a packaged .tgz) to an OCI registry
    /// as PATH/NAME:VERSION, laid out as `helm push` does; prints its digest, the one
    /// a stack pins.
    Push {
        /// The chart's folder or .tgz.
        chart: PathBuf,
        /// The registry, e.g. oci://registry.example/charts.
        #[arg(long, value_parser = OciLocation::parse)]
        to: OciLocation,
        /// The user name for the registry; the password is read from
        /// $KAAS_REGISTRY_PASSWORD.
        #[arg(long)]
        username: Option<String>,
        /// Speak plain HTTP to the registry (else only to one on loopback).
        #[arg(long)]
        plain_http: bool,
    },
}

pub async fn chart(cmd: ChartCommand) -> Result<ExitCode> {
    let ChartCommand::Push {
        chart,
        to,
        username,
        plain_http,
    } = cmd;
    let tgz = if chart.is_dir() {
        kaas_helm::package(&chart).map_err(|e| anyhow::anyhow!(e.to_string()))?
    } else {
        std::fs::read(&chart).with_context(|| format!("cannot read {}", chart.display()))?
    };
    let mut fetcher = Fetcher::new(Limits::default())
        .map_err(anyhow::Error::msg)?
        .with_plain_http(plain_http);
    if let Some(username) = username {
        let password = std::env::var(REGISTRY_PASSWORD_ENV).with_context(|| {
            format!("--username needs the password in ${REGISTRY_PASSWORD_ENV}")
        })?;
        fetcher = fetcher.with_credentials(&to.host, Credentials { username, password });
    }
    let pushed = fetcher.push_chart(&to, &tgz).await?;
    println!("{} {}", pushed.reference, pushed.digest);
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub enum ArtifactCommand {
    /// List the artifacts the server has cached, by digest.
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
}

/// The stack named: from `--filename`, else built in, else the server's.
async fn stack(
    client: &dyn Fn() -> Result<Client>,
    name: &str,
    file: Option<&Path>,
) -> Result<ClusterStack> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let stack =
            ClusterStack::parse(&file.display().to_string(), &text).map_err(anyhow::Error::msg)?;
        if stack.name() != name {
            bail!(
                "{} holds stack {:?}, not {name:?}",
                file.display(),
                stack.name()
            );
        }
        return Ok(stack);
    }
    if let Some(stack) = StackCatalog::builtin()
        .map_err(anyhow::Error::msg)?
        .find(name)
    {
        return Ok(stack.clone());
    }
    let mut value = client()?.get(&format!("/v1/stacks/{name}")).await?;
    if let Some(object) = value.as_object_mut() {
        object.remove("status");
    }
    serde_json::from_value(value)
        .with_context(|| format!("the server's stack {name:?} cannot be read"))
}

fn fetcher(source: &SourceArgs) -> Result<Fetcher> {
    Ok(Fetcher::new(Limits::default())
        .map_err(anyhow::Error::msg)?
        .with_mirrors(source.mirrors.clone())
        .with_plain_http(source.plain_http))
}

/// Gets every artifact, saying each on stderr; fails naming every one not had.
async fn fetch_all(fetcher: &Fetcher, artifacts: &[Artifact]) -> Result<Vec<Fetched>> {
    let mut fetched = Vec::new();
    let mut failed = Vec::new();
    for artifact in artifacts {
        match fetcher.fetch(artifact).await {
            Ok(f) => {
                eprintln!("{}: got from {}", artifact.describe(), f.source);
                fetched.push(f);
            }
            Err(e) => {
                eprintln!("{e}");
                failed.push(artifact.describe());
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} artifacts cannot be had: {}",
            failed.len(),
            artifacts.len(),
            failed.join(", ")
        );
    }
    Ok(fetched)
}

pub async fn pull(client: &dyn Fn() -> Result<Client>, args: PullArgs) -> Result<ExitCode> {
    let Some(output) = args.output else {
        if args.source.file.is_some() || !args.source.mirrors.is_empty() || args.source.plain_http {
            bail!(
                "--filename, --mirror and --plain-http are for -o: the server uses its own stacks and --artifact-mirror"
            );
        }
        let answer = client()?
            .request(
                Method::POST,
                &format!("/v1/stacks/{}/pull", args.name),
                None,
            )
            .await?
            .unwrap_or_default();
        print_pull(&answer);
        return Ok(ExitCode::SUCCESS);
    };
    let stack = stack(client, &args.name, args.source.file.as_deref()).await?;
    let artifacts = Artifact::of_stack(&stack)?;
    if artifacts.is_empty() {
        eprintln!("stack {} names no upstream artifact", args.name);
    }
    let fetched = fetch_all(&fetcher(&args.source)?, &artifacts).await?;
    let partial = output.with_extension("tar.partial");
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    kaas_artifacts::bundle::write(std::io::BufWriter::new(file), stack.name(), &fetched)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &output)
        .with_context(|| format!("cannot write {}", output.display()))?;
    let blobs: usize = fetched.iter().map(|f| f.blobs.len()).sum();
    println!(
        "{}: {} artifacts of stack {} ({blobs} blobs)",
        output.display(),
        fetched.len(),
        stack.name()
    );
    Ok(ExitCode::SUCCESS)
}

fn print_pull(answer: &Value) {
    for item in answer["items"].as_array().into_iter().flatten() {
        let source = item["source"]
            .as_str()
            .map(|s| format!(" from {s}"))
            .unwrap_or_default();
        println!(
            "{} {}: {}{source}",
            item["addon"].as_str().unwrap_or(""),
            item["reference"].as_str().unwrap_or(""),
            item["status"].as_str().unwrap_or(""),
        );
    }
    if answer["items"].as_array().is_none_or(Vec::is_empty) {
        println!(
            "stack {} names no upstream artifact",
            answer["stack"].as_str().unwrap_or("")
        );
    }
}

pub async fn import(client: &Client, bundle: &Path) -> Result<ExitCode> {
    let file =
        std::fs::File::open(bundle).with_context(|| format!("cannot read {}", bundle.display()))?;
    let (index, blobs) =
        kaas_artifacts::bundle::read(std::io::BufReader::new(file), Limits::default().max_bytes)
            .map_err(|e| anyhow::anyhow!("{}: {e}", bundle.display()))?;
    for blob in &blobs {
        let path = format!(
            "/v1/artifacts/{}?kind={}&reference={}",
            blob.digest,
            blob.kind,
            query_escape(&blob.reference)
        );
        client.put_bytes(&path, blob.bytes.clone()).await?;
        println!(
            "{} {} ({} bytes)",
            blob.digest,
            blob.reference,
            blob.bytes.len()
        );
    }
    println!(
        "imported {} blobs of stack {} ({} artifacts)",
        blobs.len(),
        index.stack,
        index.artifacts.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn mirror(client: &dyn Fn() -> Result<Client>, args: MirrorArgs) -> Result<ExitCode> {
    let stack = stack(client, &args.name, args.source.file.as_deref()).await?;
    let artifacts: Vec<Artifact> = Artifact::of_stack(&stack)?
        .into_iter()
        .filter(|a| {
            let chart = a.kind != kaas_artifacts::ArtifactKind::Manifest;
            if !chart {
                eprintln!(
                    "{}: a plain manifest is not kept in a registry; bundle it with `kaas stack pull -o`",
                    a.describe()
                );
            }
            chart
        })
        .collect();
    let mut fetcher = fetcher(&args.source)?;
    if let Some(username) = args.username {
        let password = std::env::var(REGISTRY_PASSWORD_ENV).with_context(|| {
            format!("--username needs the password in ${REGISTRY_PASSWORD_ENV}")
        })?;
        fetcher = fetcher.with_credentials(&args.to.host, Credentials { username, password });
    }
    let fetched = fetch_all(&fetcher, &artifacts).await?;
    for f in &fetched {
        let pushed = fetcher.mirror_to(f, &args.to).await?;
        println!("{} {}", pushed.reference, pushed.digest);
    }
    println!(
        "mirrored {} charts of stack {} to {}",
        fetched.len(),
        stack.name(),
        args.to
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn artifacts(client: &Client, cmd: ArtifactCommand) -> Result<ExitCode> {
    match cmd {
        ArtifactCommand::List { output } => {
            let list = client.get("/v1/artifacts").await?;
            print_list(
                &list,
                output,
                &["DIGEST", "KIND", "SIZE", "CREATED", "REFERENCE"],
                |a| {
                    vec![
                        a["digest"].as_str().unwrap_or("").to_owned(),
                        a["kind"].as_str().unwrap_or("").to_owned(),
                        a["size"].as_u64().unwrap_or(0).to_string(),
                        a["createdAt"].as_str().unwrap_or("").to_owned(),
                        a["reference"].as_str().unwrap_or("").to_owned(),
                    ]
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Percent-encodes all but unreserved characters, for a query value.
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(
            query_escape("oci://r.example/c/hello:1.0 chart"),
            "oci%3A%2F%2Fr.example%2Fc%2Fhello%3A1.0%20chart"
        );
    }

    #[test]
    fn the_stack_commands_parse_their_sources() {
        let cli = super::super::Cli::try_parse_from([
            "kaas",
            "stack",
            "pull",
            "scs-1.36",
            "-o",
            "b.tar",
            "--mirror",
            "oci://127.0.0.1:5000/m",
            "--mirror",
            "http://10.0.0.5/kaas",
        ])
        .unwrap();
        let super::super::Command::Stack(super::super::StackCommand::Pull(args)) = cli.command
        else {
            panic!("not a pull");
        };
        assert_eq!(args.output, Some(PathBuf::from("b.tar")));
        assert_eq!(args.source.mirrors.len(), 2);
        assert!(
            super::super::Cli::try_parse_from([
                "kaas", "stack", "pull", "x", "--mirror", "ftp://x"
            ])
            .is_err()
        );
        let cli = super::super::Cli::try_parse_from([
            "kaas",
            "stack",
            "mirror",
            "scs-1.36",
            "--to",
            "oci://registry.example/kaas",
        ])
        .unwrap();
        let super::super::Command::Stack(super::super::StackCommand::Mirror(args)) = cli.command
        else {
            panic!("not a mirror");
        };
        assert_eq!(args.to.repository("cilium"), "kaas/cilium");
        assert!(
            super::super::Cli::try_parse_from([
                "kaas",
                "stack",
                "mirror",
                "x",
                "--to",
                "https://r"
            ])
            .is_err()
        );
    }
}
