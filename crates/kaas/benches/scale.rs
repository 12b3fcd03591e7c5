//! How kaas fares with many clusters: a real server (the `kaas` binary, as its own
//! process) on the simulated cloud, measured from outside. The simulated cloud and its
//! workload clusters run as another process (`kaas sim serve`), which the server drives
//! with its OpenStack provider and reaches through the simulation's cluster proxy, as
//! it would a real cloud: the server's memory and CPU are its own.
//!
//! For each N it creates N clusters (1 or 3 control planes and a pool of workers, 10
//! machines on average) on a fast simulated cloud, restarts the server at real speed
//! and measures the steady state, then spec changes and the API under load:
//!
//! - the time to create all of them, and when each became Available (p50, p99);
//! - the server's RSS, its peak, and the store's size on disk;
//! - CPU per cluster-hour in the steady state at speed 1, the server's and the
//!   simulation's apart;
//! - OpenStack API requests per machine-hour in that steady state (goal: at most 0.1);
//! - from a spec change to its reconcile, p50 and p99, while the others sit idle;
//! - `GET /v1/clusters/NAME` and a page of `GET /v1/clusters` at a fixed request rate
//!   from a load generator in this process, p50 and p99.
//!
//! Run: `cargo bench -p kaas --bench scale -- [--quick] [--clusters 100,1000]
//! [--steady SECS] [--out FILE]`, after `dev/charts/publish.sh` has put the local
//! stacks' charts into the local registry. `--quick` is N = 100 with short windows.
//! This is a measurement: it reports, it does not judge,
//! and fails only when the server does.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use kaas::cli::Client;
use reqwest::Method;
use serde_json::{Value, json};

const KAAS: &str = env!("CARGO_BIN_EXE_kaas");
const LOCAL_STACKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dev/stacks");
const STACK: &str = "local-1.36";
/// The simulated cloud's speed while the clusters are created: fast, yet slow enough
/// for two cores to keep up with the simulated machines of every cluster (when they
/// cannot, nodes miss their startup timeout and are replaced).
const FAST: f64 = 20.0;
/// Machines per cluster on average: 1 + 9 and 3 + 7 alternate.
const MACHINES_PER_CLUSTER: u64 = 10;
/// The name of the tenant the clusters are created in.
const TENANT: &str = "default";

struct Options {
    sizes: Vec<usize>,
    steady: Duration,
    changes: usize,
    load_secs: u64,
    rate: u64,
    out: Option<PathBuf>,
}

fn options() -> Result<Options> {
    let mut o = Options {
        sizes: vec![100, 1000],
        steady: Duration::from_secs(300),
        changes: 50,
        load_secs: 10,
        rate: 1000,
        out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => {
                // Short windows: the figures that need long windows (steady-state CPU,
                // cloud calls at rest) read low in this mode.
                o.sizes = vec![100];
                o.steady = Duration::from_secs(30);
                o.changes = 10;
                o.load_secs = 1;
            }
            "--clusters" => {
                let list = args.next().context("--clusters needs N[,N…]")?;
                o.sizes = list
                    .split(',')
                    .map(|n| n.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("--clusters: not a list of numbers: {list}"))?;
            }
            "--steady" => {
                let secs = args.next().context("--steady needs seconds")?;
                o.steady = Duration::from_secs(secs.parse().context("--steady: seconds")?);
            }
            "--changes" => o.changes = args.next().context("--changes N")?.parse()?,
            "--rate" => o.rate = args.next().context("--rate N")?.parse()?,
            "--load" => o.load_secs = args.next().context("--load SECS")?.parse()?,
            "--out" => o.out = Some(args.next().context("--out FILE")?.into()),
            // What cargo passes to every bench.
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(o)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Quotas of the simulated project that hold `sizes` clusters with room to spare.
fn sim_quota(sizes: usize) -> String {
    let n = sizes as u64;
    let machines = n * MACHINES_PER_CLUSTER;
    format!(
        "networks={},subnets={},routers={},security-groups={},server-groups={},ports={},\
         load-balancers={},floating-ips={},servers={},application-credentials={}",
        n * 2 + 10,
        n * 2 + 10,
        n * 2 + 10,
        n * 4 + 10,
        n * 4 + 10,
        machines * 3 + 100,
        n * 2 + 10,
        n * 2 + 10,
        machines * 2 + 100,
        n * 2 + 10,
    )
}

/// Waits until `ready` gives a value, while `child` is starting: it fails when the child
/// exits first or has not got ready within 600 s.
async fn until_started<T>(
    child: &mut Child,
    what: &str,
    mut ready: impl AsyncFnMut() -> Option<T>,
) -> Result<T> {
    let started = Instant::now();
    loop {
        if let Some(value) = ready().await {
            return Ok(value);
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited while starting: {status}");
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("{what} did not start within 600 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops a child gracefully (SIGTERM) and waits for it.
fn terminate(child: &mut Child) -> Result<()> {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    if !status.success() {
        bail!("cannot signal process {}", child.id());
    }
    child.wait()?;
    Ok(())
}

/// A `kaas sim serve` of its own: the simulated cloud behind OpenStack's REST API, and
/// the workload clusters its servers boot, in a process apart from the server's, so
/// that each is measured alone (in production the workload clusters live elsewhere).
struct Sim {
    dir: PathBuf,
    proxy: String,
    child: Child,
}

/// Where a simulation listens: the cloud's API and the cluster proxy. The same across
/// a restart, as a real cloud's: the clusters' cloud configuration names the API's
/// address, and a new one would be a change kaas rolls out to every cluster.
#[derive(Debug, Clone, Copy)]
struct SimPorts {
    api: u16,
    proxy: u16,
}

impl SimPorts {
    fn free() -> Result<Self> {
        Ok(Self {
            api: free_port()?,
            proxy: free_port()?,
        })
    }
}

impl Sim {
    async fn start(dir: &Path, ports: SimPorts, speed: f64, sizes: usize) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let _ = std::fs::remove_file(dir.join("sim.addr"));
        let _ = std::fs::remove_file(dir.join("cluster-proxy.addr"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.with_extension("log"))?;
        let mut child = Command::new(KAAS)
            .args([
                "sim",
                "serve",
                "--listen",
                &format!("127.0.0.1:{}", ports.api),
            ])
            .args(["--proxy-listen", &format!("127.0.0.1:{}", ports.proxy)])
            .arg("--data-dir")
            .arg(dir)
            .args(["--speed", &speed.to_string()])
            .args(["--quota", &sim_quota(sizes)])
            // Thousands of simulated kubelets renew their leases every 15 minutes, not
            // every 10 s: what the simulation costs is not what is measured.
            .args(["--node-lease", "3600"])
            .env("KAAS_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start kaas sim serve")?;
        // Written last, once the cloud's API and the cluster proxy listen.
        let addr = dir.join("sim.addr");
        until_started(&mut child, "kaas sim serve", async || {
            std::fs::read_to_string(&addr)
                .ok()
                .filter(|text| !text.trim().is_empty())
        })
        .await?;
        let proxy = std::fs::read_to_string(dir.join("cluster-proxy.addr"))?;
        Ok(Self {
            dir: dir.to_owned(),
            proxy: proxy.trim().to_owned(),
            child,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) -> Result<()> {
        terminate(&mut self.child)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `kaas server` of its own, driving the served simulation with the OpenStack
/// provider and reaching its clusters through the simulation's cluster proxy, as it
/// would a real cloud behind a bastion.
struct Server {
    data_dir: PathBuf,
    port: u16,
    child: Child,
}

impl Server {
    async fn start(data_dir: &Path, sim: &Sim) -> Result<Self> {
        let port = free_port()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))?;
        let mut child = Command::new(KAAS)
            .arg("server")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--cloud", "openstack", "--os-cloud", "kaas-sim"])
            .args(["--cluster-proxy", &format!("http://{}", sim.proxy)])
            .args(["--stacks-dir", LOCAL_STACKS, "--default-stack", STACK])
            .env("OS_CLIENT_CONFIG_FILE", sim.dir.join("clouds.yaml"))
            .env("KAAS_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start kaas server")?;
        let readyz = format!("http://127.0.0.1:{port}/readyz");
        until_started(&mut child, "the server", async || {
            let answer = reqwest::get(&readyz).await.ok()?;
            answer.status().is_success().then_some(())
        })
        .await?;
        Ok(Self {
            data_dir: data_dir.to_owned(),
            port,
            child,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn client(&self) -> Result<Client> {
        let token = std::fs::read_to_string(self.data_dir.join("admin.token"))?;
        Ok(Client::new(&self.url(), Some(token.trim().to_owned()))?.tenant(Some(TENANT.into())))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A graceful stop (SIGTERM), waited for.
    fn stop(&mut self) -> Result<()> {
        terminate(&mut self.child)
    }
}

impl Drop for Server {
    /// A server left behind by a failed measurement is killed.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks() -> f64 {
    // Linux's USER_HZ; `getconf CLK_TCK` says the same on every platform kaas runs on.
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU seconds a process has used, its threads' user and system time.
fn cpu_of(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // `pid (comm) state …`: comm may hold spaces; the fields after it are fixed.
    let close = stat.rfind(')').context("stat")?;
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let (utime, stime): (f64, f64) = (fields[11].parse()?, fields[12].parse()?);
    Ok((utime + stime) / clock_ticks())
}

/// VmRSS and VmHWM, in MiB.
fn memory_of(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<f64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name}"))?;
        let kib: f64 = line.split_whitespace().nth(1).context("field")?.parse()?;
        Ok(kib / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

fn size_on_disk(dir: &Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in entries.flatten() {
        match e.metadata() {
            Ok(m) if m.is_dir() => total += size_on_disk(&e.path()),
            Ok(m) => total += m.len(),
            Err(_) => {}
        }
    }
    total
}

/// The samples of the metric `name` in the server's `/metrics`: each line as written,
/// and its value.
async fn samples(server: &Server, name: &str) -> Result<Vec<(String, f64)>> {
    let text = reqwest::get(format!("{}/metrics", server.url()))
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#') && l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| {
            let value = l.rsplit_once(' ')?.1.parse().ok()?;
            Some((l.to_owned(), value))
        })
        .collect())
}

/// A metric's samples, one per line.
async fn metric_lines(server: &Server, name: &str) -> Result<String> {
    Ok(samples(server, name)
        .await?
        .iter()
        .map(|(line, _)| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The sum of a counter's samples.
async fn metric_sum(server: &Server, name: &str) -> Result<f64> {
    Ok(samples(server, name).await?.iter().map(|(_, v)| v).sum())
}

fn cluster_body(i: usize) -> Value {
    let (control_planes, workers) = if i.is_multiple_of(2) { (1, 9) } else { (3, 7) };
    json!({"metadata": {"name": format!("c{i:05}")}, "spec": {
        "stack": STACK,
        "controlPlane": {"replicas": control_planes},
        "nodePools": [{"name": "workers", "replicas": workers}],
    }})
}

/// Every cluster's phase and whether it is settled, by name.
async fn phases(client: &Client) -> Result<HashMap<String, bool>> {
    let mut out = HashMap::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(token) => format!("/v1/clusters?limit=500&continue={token}"),
            None => "/v1/clusters?limit=500".to_owned(),
        };
        let page = client.get(&path).await?;
        for c in page["items"].as_array().into_iter().flatten() {
            if let Some(name) = c["metadata"]["name"].as_str() {
                out.insert(name.to_owned(), kaas::cli::settled(c));
            }
        }
        match page["metadata"]["continue"].as_str() {
            Some(token) if !token.is_empty() => next = Some(token.to_owned()),
            _ => return Ok(out),
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// What was measured for one N.
#[derive(Debug, Default, Clone)]
struct Figures {
    clusters: usize,
    create_all_s: f64,
    available_p50_s: f64,
    available_p99_s: f64,
    rss_mib: f64,
    peak_rss_mib: f64,
    steady_rss_mib: f64,
    sim_rss_mib: f64,
    store_mib: f64,
    startup_s: f64,
    startup_calls: f64,
    cpu_ms_per_cluster_hour: f64,
    sim_cpu_ms_per_cluster_hour: f64,
    calls_per_machine_hour: f64,
    change_p50_ms: f64,
    change_p99_ms: f64,
    get_p50_ms: f64,
    get_p99_ms: f64,
    list_p50_ms: f64,
    list_p99_ms: f64,
    achieved_rate: f64,
}

async fn create_all(client: &Client, n: usize, fig: &mut Figures) -> Result<()> {
    let started = Instant::now();
    // Creates, 16 at a time.
    let client = Arc::new(client.clone());
    let mut pending = futures::stream::iter((0..n).map(|i| {
        let client = client.clone();
        async move {
            let body = cluster_body(i);
            client
                .request(Method::POST, "/v1/clusters", Some(&body))
                .await
                .with_context(|| format!("creating cluster {i}"))
        }
    }))
    .buffer_unordered(16);
    use futures::StreamExt as _;
    while let Some(created) = pending.next().await {
        created?;
    }
    let created_in = started.elapsed();
    eprintln!("  {n} clusters stored in {:.1}s", created_in.as_secs_f64());
    let mut available: HashMap<String, f64> = HashMap::new();
    let mut last_report = Instant::now();
    while available.len() < n {
        let now = started.elapsed().as_secs_f64();
        for (name, settled) in phases(&client).await? {
            if settled {
                available.entry(name).or_insert(now);
            }
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            eprintln!("  {} of {n} Available after {now:.0}s", available.len());
            last_report = Instant::now();
        }
        if started.elapsed() > Duration::from_secs(n as u64 * 3 + 900) {
            bail!("only {} of {n} clusters became Available", available.len());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let times = sorted(available.into_values().collect());
    fig.create_all_s = times.last().copied().unwrap_or(0.0);
    fig.available_p50_s = percentile(&times, 50.0);
    fig.available_p99_s = percentile(&times, 99.0);
    Ok(())
}

/// Waits until the server has reconciled as many times as there are clusters since its
/// start, and then until fewer than one in ten clusters is reconciled in 5 s: the wave
/// a restart brings is over (a settled cluster is looked at again only minutes later).
async fn until_quiet(server: &Server, n: usize) -> Result<Duration> {
    let started = Instant::now();
    loop {
        let reconciles = metric_sum(server, "kaas_reconciles_total").await?;
        if reconciles >= n as f64 {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let after = metric_sum(server, "kaas_reconciles_total").await?;
            if after - reconciles < (n as f64 / 10.0).max(1.0) {
                return Ok(started.elapsed());
            }
            continue;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("the server stayed busy: {reconciles} reconciles");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn steady_state(
    server: &Server,
    sim: &Sim,
    n: usize,
    window: Duration,
    fig: &mut Figures,
) -> Result<()> {
    // Every HTTP request to the cloud's APIs, authentication and retries included.
    let calls = |s| metric_sum(s, "kaas_openstack_requests_total");
    fig.startup_s = until_quiet(server, n).await?.as_secs_f64();
    fig.startup_calls = calls(server).await?;
    eprintln!(
        "  the first pass after the restart took {:.1} s and sent the cloud:\n{}",
        fig.startup_s,
        metric_lines(server, "kaas_openstack_requests_total").await?
    );
    let cpu0 = (cpu_of(server.pid())?, cpu_of(sim.pid())?);
    let calls0 = calls(server).await?;
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let hours = t0.elapsed().as_secs_f64() / 3600.0;
    let cpu1 = (cpu_of(server.pid())?, cpu_of(sim.pid())?);
    let calls1 = calls(server).await?;
    let machines = n as f64 * MACHINES_PER_CLUSTER as f64;
    fig.cpu_ms_per_cluster_hour = (cpu1.0 - cpu0.0) * 1000.0 / n as f64 / hours;
    fig.sim_cpu_ms_per_cluster_hour = (cpu1.1 - cpu0.1) * 1000.0 / n as f64 / hours;
    fig.calls_per_machine_hour = (calls1 - calls0) / machines / hours;
    fig.steady_rss_mib = memory_of(server.pid())?.0;
    Ok(())
}

/// Changes the spec of `count` clusters one after another (the rollout's surge, which
/// replaces no machine), each time measuring until its reconcile has seen the change.
async fn spec_changes(client: &Client, n: usize, count: usize, fig: &mut Figures) -> Result<()> {
    let mut latencies = Vec::new();
    let step = (n / count.max(1)).max(1);
    for k in 0..count.min(n) {
        let name = format!("c{:05}", k * step);
        let mut c = client.get(&format!("/v1/clusters/{name}")).await?;
        let surge = c["spec"]["rollout"]["maxSurge"].as_u64().unwrap_or(1);
        c["spec"]["rollout"]["maxSurge"] = json!(if surge == 1 { 2 } else { 1 });
        let started = Instant::now();
        let stored = client
            .request(Method::PUT, &format!("/v1/clusters/{name}"), Some(&c))
            .await?
            .ok_or_else(|| anyhow!("no answer to the change of {name}"))?;
        let generation = stored["metadata"]["generation"].as_i64().unwrap_or(0);
        loop {
            let c = client.get(&format!("/v1/clusters/{name}")).await?;
            if c["status"]["observedGeneration"].as_i64().unwrap_or(0) >= generation {
                break;
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("the change of {name} was not reconciled within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let l = sorted(latencies);
    fig.change_p50_ms = percentile(&l, 50.0);
    fig.change_p99_ms = percentile(&l, 99.0);
    Ok(())
}

/// `rate` requests per second for `secs`, open-loop, half `GET /v1/clusters/NAME` and
/// half the first page of 100 clusters.
async fn api_load(
    client: &Client,
    n: usize,
    rate: u64,
    secs: u64,
    fig: &mut Figures,
) -> Result<()> {
    let total = rate * secs;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    // At most this many requests in flight, as a load generator's connection pool; a
    // request sent while all are busy waits, and its wait counts.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
    for i in 0..total {
        tokio::time::sleep_until(started + interval * i as u32).await;
        let client = client.clone();
        let in_flight = in_flight.clone();
        let pick = (i as usize * 7919) % n;
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let _slot = in_flight.acquire_owned().await;
            let get = i % 2 == 0;
            let path = if get {
                format!("/v1/clusters/c{pick:05}")
            } else {
                "/v1/clusters?limit=100".to_owned()
            };
            // The body is read whole but not parsed, as a load generator does.
            let error = client
                .get_bytes(&path)
                .await
                .err()
                .map(|e| format!("{e:#}"));
            (get, error, t.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let sent_in = started.elapsed().as_secs_f64();
    let (mut gets, mut lists, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for t in tasks {
        let (get, error, ms) = t.await?;
        if let Some(e) = error {
            failed.push(e);
        }
        if get { gets.push(ms) } else { lists.push(ms) }
    }
    if let Some(first) = failed.first() {
        bail!(
            "{} of {total} API requests failed under load; the first: {first}",
            failed.len()
        );
    }
    let (gets, lists) = (sorted(gets), sorted(lists));
    fig.get_p50_ms = percentile(&gets, 50.0);
    fig.get_p99_ms = percentile(&gets, 99.0);
    fig.list_p50_ms = percentile(&lists, 50.0);
    fig.list_p99_ms = percentile(&lists, 99.0);
    fig.achieved_rate = total as f64 / sent_in;
    Ok(())
}

/// Measures N clusters in a directory of their own; when that fails, the directory is
/// kept and the server log's end shown.
async fn measure(n: usize, o: &Options) -> Result<Figures> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let sim_dir = dir.path().join("sim");
    let measured = measure_in(&data, &sim_dir, n, o).await;
    if measured.is_err() {
        for (what, dir) in [("server", &data), ("simulation", &sim_dir)] {
            let log = std::fs::read_to_string(dir.with_extension("log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "the {what}'s log ends:\n{}",
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
        eprintln!("kept {}", dir.keep().display());
    }
    measured
}

async fn measure_in(data: &Path, sim_dir: &Path, n: usize, o: &Options) -> Result<Figures> {
    let mut fig = Figures {
        clusters: n,
        ..Figures::default()
    };

    eprintln!("N = {n}: creating on the fast simulated cloud (speed {FAST})");
    let ports = SimPorts::free()?;
    let mut sim = Sim::start(sim_dir, ports, FAST, n).await?;
    let mut server = Server::start(data, &sim).await?;
    let client = server.client()?;
    let machines = n as u64 * MACHINES_PER_CLUSTER;
    client
        .request(
            Method::PUT,
            &format!("/v1/tenants/{TENANT}"),
            Some(&tenant_with_quota(&client, n as u64, machines).await?),
        )
        .await
        .context("raising the tenant's quotas")?;
    create_all(&client, n, &mut fig).await?;
    (fig.rss_mib, fig.peak_rss_mib) = memory_of(server.pid())?;
    fig.sim_rss_mib = memory_of(sim.pid())?.0;
    server.stop()?;
    sim.stop()?;
    fig.store_mib = size_on_disk(data) as f64 / 1048576.0;

    eprintln!(
        "N = {n}: restarted at speed 1; steady state for {:?}",
        o.steady
    );
    let mut sim = Sim::start(sim_dir, ports, 1.0, n).await?;
    let mut server = Server::start(data, &sim).await?;
    let client = server.client()?;
    steady_state(&server, &sim, n, o.steady, &mut fig).await?;
    eprintln!(
        "N = {n}: API at {} requests/s for {} s",
        o.rate, o.load_secs
    );
    api_load(&client, n, o.rate, o.load_secs, &mut fig).await?;
    eprintln!("N = {n}: {} spec changes", o.changes);
    spec_changes(&client, n, o.changes, &mut fig).await?;
    server.stop()?;
    sim.stop()?;
    Ok(fig)
}

/// The tenant as stored, with quotas that hold `clusters` and `machines`.
async fn tenant_with_quota(client: &Client, clusters: u64, machines: u64) -> Result<Value> {
    let mut t = client.get(&format!("/v1/tenants/{TENANT}")).await?;
    if let Some(t) = t.as_object_mut() {
        t.remove("status");
    }
    t["spec"]["quotas"] = json!({
        "clusters": clusters,
        "machines": machines * 2,
        "vcpus": machines * 2 * 16,
    });
    Ok(t)
}

/// One row of the table: how it reads a figure.
type Figure = Box<dyn Fn(&Figures) -> f64>;

fn table(figs: &[Figures]) -> String {
    let mut out = String::new();
    let rows: Vec<(&str, Figure)> = vec![
        (
            "create all (s, fast simulated cloud)",
            Box::new(|f| f.create_all_s),
        ),
        ("each Available, p50 (s)", Box::new(|f| f.available_p50_s)),
        ("each Available, p99 (s)", Box::new(|f| f.available_p99_s)),
        ("server RSS after create (MiB)", Box::new(|f| f.rss_mib)),
        ("server peak RSS (MiB)", Box::new(|f| f.peak_rss_mib)),
        (
            "server RSS in steady state (MiB)",
            Box::new(|f| f.steady_rss_mib),
        ),
        ("store on disk (MiB)", Box::new(|f| f.store_mib)),
        (
            "simulation RSS after create (MiB)",
            Box::new(|f| f.sim_rss_mib),
        ),
        (
            "restart: first pass over all clusters (s)",
            Box::new(|f| f.startup_s),
        ),
        (
            "restart: cloud calls in the first pass",
            Box::new(|f| f.startup_calls),
        ),
        (
            "server CPU per cluster-hour (ms)",
            Box::new(|f| f.cpu_ms_per_cluster_hour),
        ),
        (
            "simulation CPU per cluster-hour (ms)",
            Box::new(|f| f.sim_cpu_ms_per_cluster_hour),
        ),
        (
            "cloud calls per machine-hour",
            Box::new(|f| f.calls_per_machine_hour),
        ),
        (
            "spec change → reconciled, p50 (ms)",
            Box::new(|f| f.change_p50_ms),
        ),
        (
            "spec change → reconciled, p99 (ms)",
            Box::new(|f| f.change_p99_ms),
        ),
        ("GET /v1/clusters/NAME p50 (ms)", Box::new(|f| f.get_p50_ms)),
        ("GET /v1/clusters/NAME p99 (ms)", Box::new(|f| f.get_p99_ms)),
        (
            "GET /v1/clusters?limit=100 p50 (ms)",
            Box::new(|f| f.list_p50_ms),
        ),
        (
            "GET /v1/clusters?limit=100 p99 (ms)",
            Box::new(|f| f.list_p99_ms),
        ),
        ("requests sent per second", Box::new(|f| f.achieved_rate)),
    ];
    let _ = write!(out, "| N clusters |");
    for f in figs {
        let _ = write!(out, " {} |", f.clusters);
    }
    let growth = figs.len() >= 2;
    if growth {
        let _ = write!(
            out,
            " growth ×{} |",
            figs[figs.len() - 1].clusters / figs[figs.len() - 2].clusters.max(1)
        );
    }
    let _ = writeln!(out);
    let _ = write!(out, "|---|");
    for _ in figs {
        let _ = write!(out, "---:|");
    }
    if growth {
        let _ = write!(out, "---:|");
    }
    let _ = writeln!(out);
    for (name, get) in &rows {
        let _ = write!(out, "| {name} |");
        for f in figs {
            let v = get(f);
            let _ = if v.abs() >= 100.0 || v == 0.0 {
                write!(out, " {v:.0} |")
            } else {
                write!(out, " {v:.3} |")
            };
        }
        if growth {
            let (a, b) = (get(&figs[figs.len() - 2]), get(&figs[figs.len() - 1]));
            let _ = if a > 0.0 {
                write!(out, " {:.2} |", b / a)
            } else {
                write!(out, " – |")
            };
        }
        let _ = writeln!(out);
    }
    out
}

#[tokio::main]
async fn main() -> Result<()> {
    let o = options()?;
    let mut figs = Vec::new();
    for &n in &o.sizes {
        let fig = measure(n, &o).await?;
        eprintln!("{fig:?}");
        figs.push(fig);
        let t = table(&figs);
        if let Some(out) = &o.out {
            std::fs::write(out, &t)?;
        }
    }
    println!("{}", table(&figs));
    Ok(())
}
