//! `kaas stack versions update`: the Kubernetes release data of the SCS version policy,
//! refreshed from upstream's release schedule (a URL, or a local copy on clouds without
//! internet access) and written for `kaas server --kubernetes-versions FILE`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use kaas_core::release_schedule::{Conversion, convert};
use kaas_core::stack::{KubernetesVersions, UPSTREAM_SCHEDULE_URL};

#[derive(Debug, Subcommand)]
pub enum VersionsCommand {
    /// Convert upstream's release schedule (data/releases/schedule.yaml of the
    /// Kubernetes website) into release data for `kaas server --kubernetes-versions`.
    Update(UpdateArgs),
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Upstream's schedule.yaml: an http(s) URL, or a local copy of it.
    #[arg(long, default_value = UPSTREAM_SCHEDULE_URL)]
    pub from: String,
    /// Write the release data to this file (replaced whole) instead of to stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The day the schedule was taken from upstream (default: today); for a local copy,
    /// the day it was downloaded.
    #[arg(long)]
    pub taken_on: Option<NaiveDate>,
    /// Where the schedule came from, recorded in the data (default: --from; for a local
    /// copy, give the URL it was downloaded from).
    #[arg(long)]
    pub source: Option<String>,
    /// Days a newer patch release may go unprovided (default: the built-in data's).
    #[arg(long)]
    pub patch_grace_days: Option<u32>,
}

/// Upstream's file is a few kilobytes; anything this large is not it.
const MAX_SCHEDULE_BYTES: usize = 1 << 20;

pub async fn run(cmd: VersionsCommand) -> Result<ExitCode> {
    match cmd {
        VersionsCommand::Update(args) => update(args).await,
    }
}

async fn update(args: UpdateArgs) -> Result<ExitCode> {
    let today = chrono::Utc::now().date_naive();
    let taken_on = args.taken_on.unwrap_or(today);
    if taken_on > today {
        bail!("--taken-on: {taken_on} is after today ({today})");
    }
    let patch_grace_days = match args.patch_grace_days {
        Some(days) => days,
        None => {
            KubernetesVersions::builtin()
                .map_err(anyhow::Error::msg)?
                .patch_grace_days
        }
    };
    let is_url = args.from.starts_with("https://") || args.from.starts_with("http://");
    let (text, from) = if is_url {
        (download(&args.from).await?, args.from.clone())
    } else {
        let path = Path::new(&args.from);
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--from: cannot read {}", path.display()))?;
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        (text, absolute.display().to_string())
    };
    let versions = convert(
        &args.from,
        &text,
        &Conversion {
            source: args.source.unwrap_or(from),
            taken_on,
            patch_grace_days,
        },
    )
    .map_err(anyhow::Error::msg)?;
    let yaml = versions.to_yaml();
    let summary = summary(&versions);
    match &args.out {
        Some(out) => {
            write_replacing(out, &yaml)?;
            println!("{}: {summary}", out.display());
        }
        None => {
            print!("{yaml}");
            eprintln!("{summary}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `GET url`, refusing what is not a successful answer of a plausible size.
async fn download(url: &str) -> Result<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build an HTTP client")?;
    let answer = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("--from: cannot get {url}"))?;
    let status = answer.status();
    if !status.is_success() {
        bail!("--from: {url} answered {status}");
    }
    let body = answer
        .bytes()
        .await
        .with_context(|| format!("--from: cannot read the answer of {url}"))?;
    if body.len() > MAX_SCHEDULE_BYTES {
        bail!(
            "--from: {url} sent {} bytes, more than a release schedule ({MAX_SCHEDULE_BYTES})",
            body.len()
        );
    }
    String::from_utf8(body.to_vec()).with_context(|| format!("--from: {url} did not send text"))
}

/// Writes `text` to `path` through a temporary file beside it, so that a server
/// restarting meanwhile reads the old data or the new, never half of it.
fn write_replacing(path: &Path, text: &str) -> Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, text)
        .with_context(|| format!("--out: cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("--out: cannot replace {}", path.display()))
}

/// One line on what was written: minors, the newest release, provenance.
fn summary(v: &KubernetesVersions) -> String {
    let minors: Vec<&str> = v.releases.iter().map(|r| r.minor.as_str()).collect();
    let newest = v
        .releases
        .iter()
        .flat_map(|r| &r.patches)
        .max_by_key(|p| p.released)
        .map(|p| format!("newest release {} of {}", p.version, p.released))
        .unwrap_or_else(|| "no patch release".to_owned());
    format!(
        "Kubernetes {} ({newest}), taken on {} from {}",
        minors.join(", "),
        v.taken_on.map(|d| d.to_string()).unwrap_or_default(),
        v.source.as_deref().unwrap_or_default()
    )
}
