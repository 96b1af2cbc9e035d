//! `vigil load`: the project's load tool. Sends an audit log (from `vigil
//! gen`) to a running server through `POST /api/v1/ingest/k8s-audit` and
//! measures what the search issue's targets name: sustained ingest rate,
//! freshness of search and alerts, query latency, bytes on disk and memory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::generate::{NAMESPACES, PEOPLE, READ_RESOURCES};
use anyhow::Context as _;
use clap::Args;
use serde_json::{Value, json};
use vigil_web::percent_encode;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An audit log to send (one Event per line), e.g. from `vigil gen`, or
    /// other JSON lines for `--path`.
    #[arg(long, value_name = "FILE")]
    events: PathBuf,
    /// The ingest endpoint the lines are posted to (e.g. /api/v1/ingest/logs?dataset=app).
    #[arg(long, default_value = "/api/v1/ingest/k8s-audit")]
    path: String,
    /// Events per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Freshness probes to send after the load.
    #[arg(long, default_value_t = 20)]
    probes: usize,
    /// Send at most this many events per second (paced by batch; a batch
    /// held up by the server moves the schedule, it is not made up for), to
    /// measure a sustained rate below what the server can take.
    #[arg(long, value_name = "EVENTS")]
    rate: Option<f64>,
    /// Also send a freshness probe every this many seconds while the load
    /// runs (one at a time), to measure freshness under load.
    #[arg(long, value_name = "SECONDS")]
    probe_every: Option<f64>,
    /// Times each query is run for its latency figures.
    #[arg(long, default_value_t = 50)]
    query_runs: usize,
    /// The server's data directory, to report bytes per event.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The server's process id, to report its peak memory, its CPU time per
    /// event until all are searchable and its CPU time per search.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
}

fn new_agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .max_response_header_size(64 * 1024)
            .build(),
    )
}

fn percentile(samples: &mut [Duration], fraction: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * fraction).round() as usize;
    samples[index]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn get_json(agent: &ureq::Agent, url: &str) -> anyhow::Result<Value> {
    let mut response = agent.get(url).call().with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    let body = response.body_mut().with_config().limit(256 * 1024 * 1024).read_to_string()?;
    anyhow::ensure!(status == 200, "GET {url}: {status} {body}");
    Ok(serde_json::from_str(&body)?)
}

/// GETs a URL and reads the whole answer, without parsing it: query
/// latency is the server's, not the JSON parser's of this tool.
fn fetch(agent: &ureq::Agent, url: &str) -> anyhow::Result<()> {
    let mut response = agent.get(url).call().with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    let body = response.body_mut().with_config().limit(256 * 1024 * 1024).read_to_vec()?;
    anyhow::ensure!(status == 200, "GET {url}: {status} {}", String::from_utf8_lossy(&body));
    Ok(())
}

/// Posts one body until it is accepted, waiting out 503s; returns the time
/// of the accepted request and how many 503s it met.
fn post_until_accepted(agent: &ureq::Agent, url: &str, body: &[u8]) -> anyhow::Result<(Duration, u64)> {
    let mut refusals = 0;
    loop {
        let started = Instant::now();
        let mut response = agent.post(url).header("content-type", "application/json").send(body)?;
        let status = response.status().as_u16();
        match status {
            200 => return Ok((started.elapsed(), refusals)),
            503 => {
                refusals += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            _ => anyhow::bail!(
                "ingest answered {status}: {}",
                response.body_mut().read_to_string().unwrap_or_default()
            ),
        }
    }
}

fn directory_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => directory_bytes(&entry.path()),
            Ok(metadata) => metadata.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The CPU time a process has used, user and system, in milliseconds
/// (`/proc/PID/stat`, fields 14 and 15, in clock ticks of 1/100 s: the
/// kernel's `USER_HZ` on Linux).
fn cpu_millis(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: count from after it.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 * 10.0)
}

fn memory_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// How long a probe may take to be searchable and alerted.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends one probe, an audit event that the built-in rules alert on, and
/// waits until it is searchable and its alert is listed: the time from its
/// ingest answer to each, `None` for what did not happen within
/// [`PROBE_TIMEOUT`].
fn send_probe(
    agent: &ureq::Agent,
    base: &str,
    label: &str,
) -> anyhow::Result<(Option<Duration>, Option<Duration>)> {
    let audit_id = format!("probe-{label}");
    let user = format!("probe-user-{label}");
    let event = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": audit_id, "stage": "ResponseStarted",
        "requestURI": "/api/v1/namespaces/shop/pods/web/exec?command=sh", "verb": "create",
        "user": {"username": user, "groups": ["system:authenticated"]}, "sourceIPs": ["10.99.0.1"],
        "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "shop", "name": "web", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 101}, "requestReceivedTimestamp": chrono::Utc::now().to_rfc3339(),
        "annotations": {"authorization.k8s.io/decision": "allow"}
    });
    post_until_accepted(agent, &format!("{base}/api/v1/ingest/k8s-audit"), event.to_string().as_bytes())?;
    let answered = Instant::now();
    let search = format!(
        "{base}/api/v1/search?limit=0&q={}",
        percent_encode(&format!("kubernetes.audit.id:{audit_id}"))
    );
    // The group names the acting user (and, by default, the object).
    let group = format!("user.name={user}");
    let names_the_user =
        |alert: &Value| alert["group"].as_str().is_some_and(|text| text.split(' ').any(|part| part == group));
    let (mut found, mut alerted) = (None, None);
    while (found.is_none() || alerted.is_none()) && answered.elapsed() < PROBE_TIMEOUT {
        if found.is_none() && get_json(agent, &search)?["total"].as_u64() == Some(1) {
            found = Some(answered.elapsed());
        }
        if alerted.is_none() {
            let alerts = get_json(agent, &format!("{base}/api/v1/alerts?limit=20"))?;
            if alerts["alerts"].as_array().is_some_and(|list| list.iter().any(names_the_user)) {
                alerted = Some(answered.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok((found, alerted))
}

/// Freshness measured while the load ran.
#[derive(Default)]
struct DuringLoad {
    probes: usize,
    search: Vec<Duration>,
    alert: Vec<Duration>,
}

impl DuringLoad {
    fn report(mut self) -> Value {
        let figures = |samples: &mut Vec<Duration>| {
            json!({
                "p50": millis(percentile(samples, 0.5)),
                "p99": millis(percentile(samples, 0.99)),
                "max": millis(samples.iter().max().copied().unwrap_or_default()),
            })
        };
        json!({
            "probes": self.probes,
            "search_ms": figures(&mut self.search),
            "alert_ms": figures(&mut self.alert),
            "not_searchable_within_60s": self.probes - self.search.len(),
            "not_alerted_within_60s": self.probes - self.alert.len(),
        })
    }
}

/// Sends a probe every `every` (or as soon as the last one is answered)
/// until `loading` goes false, counting each in `sent` before sending it.
fn probe_while(
    base: &str,
    run_id: u32,
    every: Duration,
    loading: &AtomicBool,
    sent: &AtomicU64,
) -> anyhow::Result<DuringLoad> {
    let agent = new_agent();
    let mut during = DuringLoad::default();
    while loading.load(Ordering::Relaxed) {
        let started = Instant::now();
        sent.fetch_add(1, Ordering::Relaxed);
        let (found, alerted) = send_probe(&agent, base, &format!("{run_id}-during-{}", during.probes))?;
        during.probes += 1;
        during.search.extend(found);
        during.alert.extend(alerted);
        // In short steps: the load may end meanwhile.
        while loading.load(Ordering::Relaxed) && started.elapsed() < every {
            std::thread::sleep(every.saturating_sub(started.elapsed()).min(Duration::from_millis(50)));
        }
    }
    Ok(during)
}

pub fn run(args: LoadArgs) -> anyhow::Result<ExitCode> {
    if let Some(rate) = args.rate {
        anyhow::ensure!(rate.is_finite() && rate >= 1.0, "--rate must be at least 1 event per second");
    }
    if let Some(every) = args.probe_every {
        anyhow::ensure!(
            every.is_finite() && (0.01..=3600.0).contains(&every),
            "--probe-every must be from 0.01 to 3600 seconds"
        );
    }
    let ingest_url = format!("{}{}", args.url, args.path);
    let agent = new_agent();
    let before =
        get_json(&agent, &format!("{}/api/v1/search?limit=0", args.url))?["total"].as_u64().unwrap_or(0);

    // Ingest: the file's lines in batches, over several connections.
    let file = std::fs::File::open(&args.events)
        .with_context(|| format!("cannot open {}", args.events.display()))?;
    // The lines, and when the next batch may go (with --rate).
    let lines = Arc::new(Mutex::new((BufReader::with_capacity(8 << 20, file).lines(), Instant::now())));
    let rate = args.rate;
    let sent = Arc::new(AtomicU64::new(0));
    let refusals = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let cpu_at_start = args.server_pid.and_then(cpu_millis);
    let started = Instant::now();
    // The log's backlog (how far indexing and rules are behind what was
    // acknowledged) and the age of the oldest event searches cannot see yet,
    // sampled from /metrics until everything is searchable.
    let sampling = Arc::new(AtomicBool::new(true));
    let backlog_sampler = std::thread::spawn({
        let (sampling, url) = (sampling.clone(), format!("{}/metrics", args.url));
        move || {
            let agent = new_agent();
            let (mut peak_bytes, mut peak_lag) = (0u64, 0f64);
            while sampling.load(Ordering::Relaxed) {
                let text = agent
                    .get(&url)
                    .call()
                    .ok()
                    .and_then(|mut response| response.body_mut().read_to_string().ok());
                let gauge = |name: &str| {
                    text.as_deref()?.lines().find_map(|line| {
                        line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok()
                    })
                };
                peak_bytes = peak_bytes.max(gauge("vigil_wal_backlog_bytes").unwrap_or(0.0) as u64);
                peak_lag = peak_lag.max(gauge("vigil_index_lag_seconds").unwrap_or(0.0));
                std::thread::sleep(Duration::from_millis(250));
            }
            (peak_bytes, peak_lag)
        }
    });
    // Freshness under load: probes, one at a time, until the load is over.
    let run_id = std::process::id();
    let loading = Arc::new(AtomicBool::new(true));
    let probes_sent = Arc::new(AtomicU64::new(0));
    let mut prober = args.probe_every.map(|every| {
        let (loading, probes_sent, url) = (loading.clone(), probes_sent.clone(), args.url.clone());
        let every = Duration::from_secs_f64(every.max(0.01));
        std::thread::spawn(move || probe_while(&url, run_id, every, &loading, &probes_sent))
    });
    let workers: Vec<_> = (0..args.connections.max(1))
        .map(|_| {
            let (lines, sent, refusals, latencies) =
                (lines.clone(), sent.clone(), refusals.clone(), latencies.clone());
            let (url, batch) = (ingest_url.clone(), args.batch);
            std::thread::spawn(move || -> anyhow::Result<()> {
                let agent = new_agent();
                loop {
                    let mut body = Vec::with_capacity(batch * 1100);
                    let mut count = 0;
                    let due = {
                        let mut guard = lines.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        let (lines, next_due) = &mut *guard;
                        for line in lines.by_ref().take(batch) {
                            body.extend_from_slice(line?.as_bytes());
                            body.push(b'\n');
                            count += 1;
                        }
                        // Paced: each batch goes count / rate after the one
                        // before, or now if the schedule fell behind.
                        let due = (*next_due).max(Instant::now());
                        if let Some(rate) = rate {
                            *next_due = due + Duration::from_secs_f64(count as f64 / rate);
                        }
                        due
                    };
                    if count == 0 {
                        return Ok(());
                    }
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    let (latency, refused) = post_until_accepted(&agent, &url, &body)?;
                    refusals.fetch_add(refused, Ordering::Relaxed);
                    sent.fetch_add(count, Ordering::Relaxed);
                    latencies.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(latency);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().map_err(|_| anyhow::anyhow!("a load worker panicked"))??;
    }
    let ingest_elapsed = started.elapsed();
    loading.store(false, Ordering::Relaxed);
    let sent = sent.load(Ordering::Relaxed);
    // Searchable at the end: every event, and the probes sent so far.
    let catch_up = Instant::now();
    let mut during_load = None;
    let join_prober = |prober: std::thread::JoinHandle<anyhow::Result<DuringLoad>>| {
        prober.join().map_err(|_| anyhow::anyhow!("the probe thread panicked"))?
    };
    let expected = loop {
        // A probe that failed is not waited for: its error is the answer.
        if prober.as_ref().is_some_and(std::thread::JoinHandle::is_finished)
            && let Some(finished) = prober.take()
        {
            during_load = Some(join_prober(finished)?);
        }
        let expected = before + sent + probes_sent.load(Ordering::Relaxed);
        let total =
            get_json(&agent, &format!("{}/api/v1/search?limit=0", args.url))?["total"].as_u64().unwrap_or(0);
        if total >= expected {
            break expected;
        }
        anyhow::ensure!(
            catch_up.elapsed() < Duration::from_secs(600),
            "only {total} of {expected} events searchable after 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let searchable_after = started.elapsed();
    // The server's CPU time from the first batch until all are searchable,
    // per event: steadier from run to run than the rates on a busy machine.
    let cpu_per_event_us = match (cpu_at_start, args.server_pid.and_then(cpu_millis)) {
        (Some(before), Some(after)) => Some((after - before) * 1000.0 / expected.max(1) as f64),
        _ => None,
    };
    sampling.store(false, Ordering::Relaxed);
    let (peak_backlog, peak_lag) = backlog_sampler.join().unwrap_or_default();
    if let Some(prober) = prober.take() {
        during_load = Some(join_prober(prober)?);
    }

    // Freshness at rest: the time from an ingest answer to the event being
    // found, and to its alert being listed.
    let mut search_freshness = Vec::new();
    let mut alert_freshness = Vec::new();
    for probe in 0..args.probes {
        let (found, alerted) = send_probe(&agent, &args.url, &format!("{run_id}-{probe}"))?;
        let (found, alerted) = found.zip(alerted).ok_or_else(|| {
            anyhow::anyhow!("probe {run_id}-{probe} was not searchable and alerted within {PROBE_TIMEOUT:?}")
        })?;
        search_freshness.push(found);
        alert_freshness.push(alerted);
    }

    // Query latency through the HTTP API.
    let queries: Vec<(&str, String)> = vec![
        (
            "selective",
            format!(
                "/api/v1/search?limit=100&q={}",
                percent_encode("user.name:alice@corp.example AND orchestrator.resource.type:secrets")
            ),
        ),
        (
            "range",
            format!(
                "/api/v1/search?limit=100&q={}",
                percent_encode("http.response.status_code:[400 TO 499] AND orchestrator.namespace:payments")
            ),
        ),
        (
            "cidr",
            format!(
                "/api/v1/search?limit=100&q={}",
                percent_encode("source.ip:10.11.7.0/24 AND verb:delete")
            ),
        ),
        ("histogram_all", "/api/v1/histogram?q=".to_owned()),
        ("top_user_all", "/api/v1/fields/user.name/top?q=&limit=10".to_owned()),
    ];
    // The same three kinds of search, each run asking something else (another
    // user and resource, status class and namespace, address block), as an
    // analyst's searches do: their hits are not in the doc store's cache.
    let search = |text: String| format!("/api/v1/search?limit=100&q={}", percent_encode(&text));
    let varied: Vec<(&str, Vec<String>)> = vec![
        (
            "selective_varied",
            (0..args.query_runs)
                .map(|run| {
                    let user = PEOPLE[run % PEOPLE.len()];
                    let resource = READ_RESOURCES[(run / PEOPLE.len()) % READ_RESOURCES.len()];
                    search(format!("user.name:{user} AND orchestrator.resource.type:{resource}"))
                })
                .collect(),
        ),
        (
            "range_varied",
            (0..args.query_runs)
                .map(|run| {
                    let class = [200, 400][run % 2];
                    let namespace = NAMESPACES[(run / 2) % NAMESPACES.len()];
                    search(format!(
                        "http.response.status_code:[{class} TO {}] AND orchestrator.namespace:{namespace}",
                        class + 99
                    ))
                })
                .collect(),
        ),
        (
            "cidr_varied",
            (0..args.query_runs)
                .map(|run| {
                    let (second, third) = (10 + run % 4, (run * 37) % 256);
                    let verb = ["delete", "get"][(run / 4) % 2];
                    search(format!("source.ip:10.{second}.{third}.0/24 AND verb:{verb}"))
                })
                .collect(),
        ),
    ];
    // Varied first: their blocks are not in the cache yet.
    let repeated = queries.iter().map(|(name, path)| (*name, vec![path.clone(); args.query_runs]));
    let mut query_figures = serde_json::Map::new();
    for (name, paths) in varied.into_iter().chain(repeated) {
        let mut samples = Vec::with_capacity(paths.len());
        let cpu_before = args.server_pid.and_then(cpu_millis);
        for path in &paths {
            let started = Instant::now();
            fetch(&agent, &format!("{}{path}", args.url))?;
            samples.push(started.elapsed());
        }
        // The server's CPU per search: its helper threads' too, which the
        // latency does not show.
        let cpu_ms = match (cpu_before, args.server_pid.and_then(cpu_millis)) {
            (Some(before), Some(after)) => Some((after - before) / paths.len().max(1) as f64),
            _ => None,
        };
        let p50 = percentile(&mut samples, 0.5);
        let p99 = percentile(&mut samples, 0.99);
        query_figures.insert(
            name.to_owned(),
            json!({"p50_ms": millis(p50), "p99_ms": millis(p99), "server_cpu_ms_per_search": cpu_ms}),
        );
    }

    let mut ack = latencies.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    let report = json!({
        "events_sent": sent,
        "ingest_seconds": ingest_elapsed.as_secs_f64(),
        "ingest_events_per_second": sent as f64 / ingest_elapsed.as_secs_f64(),
        "all_searchable_seconds": searchable_after.as_secs_f64(),
        "sustained_events_per_second_until_searchable": sent as f64 / searchable_after.as_secs_f64(),
        "catch_up_seconds_after_last_ack": (searchable_after - ingest_elapsed).as_secs_f64(),
        "server_cpu_us_per_event_until_searchable": cpu_per_event_us,
        "peak_wal_backlog_mib": peak_backlog as f64 / (1024.0 * 1024.0),
        "peak_indexing_lag_seconds": peak_lag,
        "ack_latency_ms": {"p50": millis(percentile(&mut ack, 0.5)), "p99": millis(percentile(&mut ack, 0.99))},
        "refusals_503": refusals.load(Ordering::Relaxed),
        "search_freshness_ms": {"p50": millis(percentile(&mut search_freshness, 0.5)), "p99": millis(percentile(&mut search_freshness, 0.99))},
        "alert_freshness_ms": {"p50": millis(percentile(&mut alert_freshness, 0.5)), "p99": millis(percentile(&mut alert_freshness, 0.99))},
        "freshness_during_load": during_load.map(DuringLoad::report),
        "queries": query_figures,
        "bytes_on_disk": args.data_dir.as_deref().map(directory_bytes),
        "bytes_per_event": args.data_dir.as_deref().map(|dir| directory_bytes(dir) as f64 / expected.max(1) as f64),
        "server_peak_rss_mib": args.server_pid.and_then(|pid| memory_kib(pid, "VmHWM:")).map(|kib| kib as f64 / 1024.0),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}
