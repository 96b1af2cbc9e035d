//! `vigil serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use vigil_config::Config;
use vigil_ingest::forward::tls::TlsFiles;
use vigil_ingest::forward::{ForwardAuth, ForwardLimits, ForwardMetrics, ForwardOptions, ForwardServer};
use vigil_ingest::k8s_audit;
use vigil_rules::{
    KubernetesMapping, LiveRules, ReloadFailure, RuleOptions, RuleSet, RuleSource, RulesOrigin,
    SourceRevision, sources_fingerprint,
};
use vigil_web::{AppState, Limits, Metrics, NotificationCounters};

use crate::notify::Notifier;
use crate::pipeline::{Pipeline, store_options};

/// Every option can also be set in the configuration file; a flag wins.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (see config/vigil.example.toml); every key is optional.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where events, the index and alert state are kept [default: ./vigil-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address for the HTTP API and web UI [default: 127.0.0.1:8080]; port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Address for the Fluentd forward protocol [default: 127.0.0.1:24224], or `off`.
    #[arg(long, value_name = "ADDR|off")]
    forward: Option<String>,
    /// Shared key of the forward handshake [default: no handshake].
    #[arg(long, value_name = "KEY", env = "VIGIL_FORWARD_SHARED_KEY", hide_env_values = true)]
    forward_shared_key: Option<String>,
    /// Name this server gives in the forward handshake [default: vigil].
    #[arg(long, value_name = "NAME")]
    forward_self_hostname: Option<String>,
    /// Largest forward message accepted, in bytes [default: 67108864].
    #[arg(long, value_name = "BYTES")]
    forward_max_message_bytes: Option<usize>,
    /// Largest forward entries accepted after decompression, in bytes [default: 268435456].
    #[arg(long, value_name = "BYTES")]
    forward_max_decompressed_bytes: Option<usize>,
    /// Most entries in one forward message [default: 1000000].
    #[arg(long, value_name = "N")]
    forward_max_entries: Option<usize>,
    /// Time allowed for the rest of a half-sent forward message, e.g. 30s [default: 30s].
    #[arg(long, value_name = "SPAN")]
    forward_message_timeout: Option<String>,
    /// Time a forward connection may stay silent between messages [default: 10m].
    #[arg(long, value_name = "SPAN")]
    forward_idle_timeout: Option<String>,
    /// Most forward connections open at once [default: 1024].
    #[arg(long, value_name = "N")]
    forward_max_connections: Option<usize>,
    /// PEM certificate chain for forward TLS; with --forward-tls-key, every forward connection must be TLS.
    #[arg(long, value_name = "FILE")]
    forward_tls_cert: Option<PathBuf>,
    /// PEM private key of --forward-tls-cert.
    #[arg(long, value_name = "FILE")]
    forward_tls_key: Option<PathBuf>,
    /// PEM CA certificates; forward clients must present a certificate signed by one [default: no client certificates].
    #[arg(long, value_name = "FILE")]
    forward_tls_client_ca: Option<PathBuf>,
    /// A directory or file of Sigma rules, added to the built-in pack; repeatable.
    #[arg(long = "rules", value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// Do not load the rule pack embedded in the binary.
    #[arg(long)]
    no_builtin_rules: bool,
    /// Cluster name written to orchestrator.cluster.name on audit events.
    #[arg(long, value_name = "NAME")]
    cluster_name: Option<String>,
    /// Largest request body accepted, in bytes [default: 67108864]; larger bodies get 413.
    #[arg(long, value_name = "BYTES")]
    max_body_bytes: Option<usize>,
    /// Largest request body accepted after gzip decompression, in bytes [default: 268435456].
    #[arg(long, value_name = "BYTES")]
    max_decoded_bytes: Option<usize>,
    /// How often accepted events are committed to the index, in milliseconds [default: 1000].
    #[arg(long, value_name = "MS")]
    commit_interval_ms: Option<u64>,
    /// Capacity of the queue in front of the write-ahead log, in batches [default: 32]; when full, ingest answers 503.
    #[arg(long, value_name = "BATCHES")]
    queue_batches: Option<usize>,
    /// Batches held in memory for the index and for the rules each [default: 8]; more wait in the write-ahead log.
    #[arg(long, value_name = "BATCHES")]
    feed_batches: Option<usize>,
    /// Niceness of indexing, 0-19 [default: 10]; above 0, acknowledging ingest goes first when the CPU is short.
    #[arg(long, value_name = "NICE")]
    indexing_nice: Option<i32>,
    /// Niceness of matching rules and recording alerts, 0-19 [default: 10]; above 0, acknowledging ingest goes first when the CPU is short.
    #[arg(long, value_name = "NICE")]
    rules_nice: Option<i32>,
    /// Niceness of merging index segments, 0-19 [default: 19]; above --indexing-nice, new events become searchable before segments are merged when the CPU is short.
    #[arg(long, value_name = "NICE")]
    merging_nice: Option<i32>,
    /// zstd level of stored events in partitions created from now on, 1-22 [default: 6]; higher is smaller and costs more CPU while indexing.
    #[arg(long, value_name = "LEVEL")]
    store_compression_level: Option<i32>,
    /// Threads one search may use, its own included, 0-64 [default: 0, as many as the process may run on, at most 4].
    #[arg(long, value_name = "THREADS")]
    search_threads: Option<usize>,
    /// Memory for the index writer, in bytes [default: 134217728].
    #[arg(long, value_name = "BYTES")]
    writer_heap_bytes: Option<usize>,
    /// Indexing threads of the present's index writer, 1-8 [default: 1]; more may help on machines with cores to spare.
    #[arg(long, value_name = "THREADS")]
    writer_threads: Option<usize>,
    /// Size at which the write-ahead log starts a new segment, in bytes [default: 67108864].
    #[arg(long, value_name = "BYTES")]
    wal_segment_bytes: Option<u64>,
    /// How far the write-ahead log may run ahead of the index or the rules, in bytes, before ingest answers 503 [default: 8589934592].
    #[arg(long, value_name = "BYTES")]
    wal_max_backlog_bytes: Option<u64>,
    /// Largest single record (event) in a request body, in bytes [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    max_record_bytes: Option<usize>,
    /// Deepest nesting of a record [default: 64].
    #[arg(long, value_name = "LEVELS")]
    max_depth: Option<usize>,
    /// Most values in one record [default: 10000].
    #[arg(long, value_name = "COUNT")]
    max_fields: Option<usize>,
    /// Follow the files this glob matches (repeatable): container logs (CRI, docker json-file), audit logs, text files.
    #[arg(long = "tail", value_name = "GLOB")]
    tail: Vec<String>,
    /// Listen for syslog (RFC 5424 and 3164) on this address, UDP and TCP [default: off].
    #[arg(long, value_name = "ADDR")]
    syslog: Option<std::net::SocketAddr>,
    /// Span of event time per index partition, e.g. 1h or 1d [default: 1d].
    #[arg(long, value_name = "SPAN")]
    partition_span: Option<String>,
    /// Drop partitions whose span ended longer ago than this, e.g. 30d [default: keep all].
    #[arg(long, value_name = "AGE")]
    retention_max_age: Option<String>,
    /// Drop the oldest partitions while the index is larger than this many bytes [default: no limit].
    #[arg(long, value_name = "BYTES")]
    retention_max_bytes: Option<u64>,
    /// How often retention runs, e.g. 1m [default: 1m].
    #[arg(long, value_name = "SPAN")]
    retention_check_interval: Option<String>,
    /// Longest syslog message accepted, in bytes [default: 65536].
    #[arg(long, value_name = "BYTES")]
    syslog_max_message_bytes: Option<usize>,
    /// How often tailed files are read, in milliseconds [default: 250].
    #[arg(long, value_name = "MS")]
    tail_poll_interval_ms: Option<u64>,
}

/// The configuration file, then the flags over it.
fn resolve(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(data_dir) = &args.data_dir {
        config.data_dir = data_dir.clone();
    }
    if let Some(http) = args.http {
        config.http.listen = http;
    }
    resolve_forward(args, &mut config.forward)?;
    config.rules.paths.extend(args.rules.iter().cloned());
    if args.no_builtin_rules {
        config.rules.builtin = false;
    }
    if let Some(name) = &args.cluster_name {
        config.cluster.name = Some(name.clone());
    }
    if let Some(bytes) = args.max_body_bytes {
        config.http.max_body_bytes = bytes;
        config.http.max_decoded_bytes = config.http.max_decoded_bytes.max(bytes);
    }
    if let Some(bytes) = args.max_decoded_bytes {
        anyhow::ensure!(
            bytes >= config.http.max_body_bytes,
            "--max-decoded-bytes must not be smaller than the body limit"
        );
        config.http.max_decoded_bytes = bytes;
    }
    if let Some(batches) = args.queue_batches {
        anyhow::ensure!(batches >= 1, "--queue-batches must be at least 1");
        config.index.queue_batches = batches;
    }
    if let Some(batches) = args.feed_batches {
        anyhow::ensure!(batches >= 1, "--feed-batches must be at least 1");
        config.index.feed_batches = batches;
    }
    if let Some(threads) = args.search_threads {
        anyhow::ensure!(threads <= 64, "--search-threads must be from 0 (automatic) to 64");
        config.index.search_threads = threads;
    }
    if let Some(nice) = args.indexing_nice {
        anyhow::ensure!((0..=19).contains(&nice), "--indexing-nice must be from 0 to 19");
        config.index.indexing_nice = nice;
    }
    if let Some(nice) = args.rules_nice {
        anyhow::ensure!((0..=19).contains(&nice), "--rules-nice must be from 0 to 19");
        config.rules.nice = nice;
    }
    if let Some(nice) = args.merging_nice {
        anyhow::ensure!((0..=19).contains(&nice), "--merging-nice must be from 0 to 19");
        config.index.merging_nice = nice;
    }
    if let Some(level) = args.store_compression_level {
        anyhow::ensure!((1..=22).contains(&level), "--store-compression-level must be from 1 to 22");
        config.index.store_compression_level = level;
    }
    if let Some(bytes) = args.writer_heap_bytes {
        anyhow::ensure!(bytes >= 15_000_000, "--writer-heap-bytes must be at least 15000000");
        config.index.writer_heap_bytes = bytes;
    }
    if let Some(threads) = args.writer_threads {
        let most = vigil_config::MAX_WRITER_THREADS;
        anyhow::ensure!((1..=most).contains(&threads), "--writer-threads must be from 1 to {most}");
        config.index.writer_threads = threads;
    }
    if let Some(bytes) = args.wal_segment_bytes {
        anyhow::ensure!(bytes >= 4096, "--wal-segment-bytes must be at least 4096");
        config.index.wal_segment_bytes = bytes;
    }
    if let Some(bytes) = args.wal_max_backlog_bytes {
        anyhow::ensure!(bytes >= 1024 * 1024, "--wal-max-backlog-bytes must be at least 1048576");
        config.index.wal_max_backlog_bytes = bytes;
    }
    if let Some(bytes) = args.max_record_bytes {
        config.http.max_record_bytes = bytes;
    }
    if let Some(levels) = args.max_depth {
        config.http.max_depth = levels;
    }
    if let Some(count) = args.max_fields {
        config.http.max_fields = count;
    }
    config.tail.globs.extend(args.tail.iter().cloned());
    if let Some(address) = args.syslog {
        config.syslog.listen = Some(address);
    }
    if let Some(span) = &args.partition_span {
        let span = vigil_config::parse_duration(span)
            .map_err(|message| anyhow::anyhow!("--partition-span: {message}"))?;
        anyhow::ensure!(
            span.as_secs() >= 60 && (7 * 86_400) % span.as_secs() == 0,
            "--partition-span must be at least 1m and divide a week evenly"
        );
        config.index.partition_span = span;
    }
    if let Some(age) = &args.retention_max_age {
        let age = vigil_config::parse_duration(age)
            .map_err(|message| anyhow::anyhow!("--retention-max-age: {message}"))?;
        config.retention.max_age = Some(age);
    }
    if let Some(bytes) = args.retention_max_bytes {
        config.retention.max_bytes = Some(bytes);
    }
    if let Some(span) = &args.retention_check_interval {
        config.retention.check_interval = vigil_config::parse_duration(span)
            .map_err(|message| anyhow::anyhow!("--retention-check-interval: {message}"))?;
    }
    if let Some(bytes) = args.syslog_max_message_bytes {
        anyhow::ensure!(bytes >= 480, "--syslog-max-message-bytes must be at least 480");
        config.syslog.max_message_bytes = bytes;
    }
    if let Some(millis) = args.tail_poll_interval_ms {
        anyhow::ensure!(millis >= 10, "--tail-poll-interval-ms must be at least 10");
        config.tail.poll_interval = Duration::from_millis(millis);
    }
    if let Some(millis) = args.commit_interval_ms {
        anyhow::ensure!(millis >= 10, "--commit-interval-ms must be at least 10");
        config.index.commit_interval = Duration::from_millis(millis);
    }
    Ok(config)
}

fn resolve_forward(args: &ServeArgs, forward: &mut vigil_config::ForwardConfig) -> anyhow::Result<()> {
    if let Some(listen) = &args.forward {
        forward.listen = vigil_config::parse_forward_listen(listen)
            .map_err(|message| anyhow::anyhow!("--forward: {message}"))?;
    }
    if let Some(key) = &args.forward_shared_key {
        anyhow::ensure!(!key.is_empty(), "--forward-shared-key must not be empty");
        forward.shared_key = Some(key.clone());
    }
    if let Some(name) = &args.forward_self_hostname {
        anyhow::ensure!(!name.trim().is_empty(), "--forward-self-hostname must not be empty");
        forward.self_hostname = name.clone();
    }
    if let Some(bytes) = args.forward_max_message_bytes {
        anyhow::ensure!(bytes >= 1024, "--forward-max-message-bytes must be at least 1024");
        forward.max_message_bytes = bytes;
        forward.max_decompressed_bytes = forward.max_decompressed_bytes.max(bytes);
    }
    if let Some(bytes) = args.forward_max_decompressed_bytes {
        anyhow::ensure!(
            bytes >= forward.max_message_bytes,
            "--forward-max-decompressed-bytes must not be smaller than the message limit"
        );
        forward.max_decompressed_bytes = bytes;
    }
    if let Some(entries) = args.forward_max_entries {
        anyhow::ensure!(entries >= 1, "--forward-max-entries must be at least 1");
        forward.max_entries = entries;
    }
    if let Some(connections) = args.forward_max_connections {
        anyhow::ensure!(connections >= 1, "--forward-max-connections must be at least 1");
        forward.max_connections = connections;
    }
    for (flag, text, slot) in [
        ("--forward-message-timeout", &args.forward_message_timeout, &mut forward.message_timeout),
        ("--forward-idle-timeout", &args.forward_idle_timeout, &mut forward.idle_timeout),
    ] {
        if let Some(text) = text {
            *slot =
                vigil_config::parse_duration(text).map_err(|message| anyhow::anyhow!("{flag}: {message}"))?;
        }
    }
    for (flag, slot) in [
        (&args.forward_tls_cert, &mut forward.tls_cert),
        (&args.forward_tls_key, &mut forward.tls_key),
        (&args.forward_tls_client_ca, &mut forward.tls_client_ca),
    ] {
        if let Some(path) = flag {
            *slot = Some(path.clone());
        }
    }
    forward.check_tls().map_err(|(key, message)| {
        let flag = format!("--{}", key.replace(['.', '_'], "-"));
        anyhow::anyhow!("{flag} {message}")
    })?;
    Ok(())
}

/// The forward server's options from the configuration; fails when the
/// TLS files cannot be read or do not fit together.
fn forward_options(config: &Config) -> anyhow::Result<ForwardOptions> {
    let forward = &config.forward;
    let tls = match (&forward.tls_cert, &forward.tls_key) {
        // With the listener off, no file is read.
        _ if forward.listen.is_none() => None,
        (Some(cert), Some(key)) => Some(vigil_ingest::forward::tls::server_config(&TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: forward.tls_client_ca.clone(),
        })?),
        _ => None,
    };
    Ok(ForwardOptions {
        limits: ForwardLimits {
            max_message_bytes: forward.max_message_bytes,
            max_decompressed_bytes: forward.max_decompressed_bytes,
            max_entries: forward.max_entries,
            message_timeout: forward.message_timeout,
            idle_timeout: forward.idle_timeout,
            max_connections: forward.max_connections,
        },
        auth: forward.shared_key.as_ref().map(|shared_key| ForwardAuth {
            shared_key: shared_key.clone(),
            self_hostname: forward.self_hostname.clone(),
            users: forward.users.clone(),
        }),
        tls,
        audit_context: audit_context(config),
    })
}

/// What the audit normalizer needs from the configuration, and the limits on one record.
fn audit_context(config: &Config) -> k8s_audit::Context {
    k8s_audit::Context {
        cluster_name: config.cluster.name.clone(),
        limits: vigil_ingest::limits::RecordLimits {
            max_record_bytes: config.http.max_record_bytes,
            max_depth: config.http.max_depth,
            max_fields: config.http.max_fields,
        },
    }
}

pub fn rule_sources(builtin: bool, paths: &[PathBuf]) -> Vec<RuleSource> {
    let mut sources: Vec<RuleSource> = paths.iter().cloned().map(RuleSource::Path).collect();
    if builtin {
        sources.insert(0, RuleSource::Builtin);
    }
    sources
}

/// How the configuration adapts rules to Vigil's events.
pub fn rule_options(config: &vigil_config::RulesConfig) -> RuleOptions {
    RuleOptions {
        field_mapping: config.field_mapping.clone(),
        placeholders: config.placeholders.clone(),
        kubernetes_mapping: if config.kubernetes_mapping {
            KubernetesMapping::Applied
        } else {
            KubernetesMapping::Off
        },
    }
}

pub fn load_rules(sources: &[RuleSource], options: &RuleOptions) -> anyhow::Result<Arc<RuleSet>> {
    let rules = RuleSet::load_with(sources, options)?;
    for warning in rules.warnings() {
        tracing::warn!("{warning}");
    }
    Ok(Arc::new(rules))
}

/// How often the rule directories are checked for changes.
const RULES_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The Git commit a rules directory is checked out at (`git rev-parse HEAD`).
fn git_commit(path: &Path) -> Option<String> {
    let directory = if path.is_dir() { path } else { path.parent()? };
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(directory)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let commit = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (output.status.success() && !commit.is_empty()).then_some(commit)
}

fn rules_origin(paths: &[PathBuf]) -> RulesOrigin {
    RulesOrigin {
        sources: paths
            .iter()
            .map(|path| SourceRevision { path: path.display().to_string(), commit: git_commit(path) })
            .collect(),
        loaded_at: vigil_schema::format_timestamp(chrono::Utc::now()),
    }
}

/// The running rules, with where they came from.
pub fn live_rules(rules: Arc<RuleSet>, paths: &[PathBuf]) -> Arc<LiveRules> {
    Arc::new(LiveRules::new(rules, rules_origin(paths)))
}

/// Why the rules are reloaded.
#[derive(Debug, Clone, Copy)]
enum ReloadCause {
    Changed,
    Hangup,
}

/// Reloads the rules when their files change (polled) or on SIGHUP; runs
/// until every sender of `requests` is gone. A set that fails to load is
/// refused whole: the running one stays and the errors are kept for
/// `/api/v1/rules` and logged. `fingerprint` is the sources' fingerprint
/// taken before the running set was loaded: a change made after that, even
/// before this thread first runs, is reloaded.
fn reload_loop(
    live: Arc<LiveRules>,
    sources: Vec<RuleSource>,
    paths: Vec<PathBuf>,
    options: RuleOptions,
    requests: std::sync::mpsc::Receiver<ReloadCause>,
    mut fingerprint: u64,
) {
    loop {
        let cause = match requests.recv_timeout(RULES_POLL_INTERVAL) {
            Ok(cause) => cause,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                // Sets replaced by a reload are dropped here, not by the rules thread.
                live.collect_retired();
                let now = sources_fingerprint(&sources);
                if now == fingerprint {
                    continue;
                }
                ReloadCause::Changed
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        };
        fingerprint = sources_fingerprint(&sources);
        let started = std::time::Instant::now();
        match RuleSet::load_with(&sources, &options) {
            Ok(rules) => {
                for warning in rules.warnings() {
                    tracing::warn!("{warning}");
                }
                let count = rules.rules().len();
                live.replace(Arc::new(rules), rules_origin(&paths));
                tracing::info!(
                    ?cause,
                    rules = count,
                    millis = started.elapsed().as_millis() as u64,
                    "rules reloaded"
                );
            }
            Err(error) => {
                tracing::error!(?cause, %error, "rules not reloaded; the running rules stay");
                live.refuse(ReloadFailure {
                    at: vigil_schema::format_timestamp(chrono::Utc::now()),
                    error: error.to_string(),
                });
            }
        }
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = resolve(&args)?;
    // Read the TLS files before anything else starts, so a bad one stops here.
    let forward = forward_options(&config)?;
    let sources = rule_sources(config.rules.builtin, &config.rules.paths);
    let options = rule_options(&config.rules);
    // Taken before loading: a rule file changed while the server starts is
    // reloaded at the first poll, not missed.
    let fingerprint = sources_fingerprint(&sources);
    let rules = load_rules(&sources, &options)?;
    tracing::info!(rules = rules.rules().len(), "rules loaded");
    let live = live_rules(rules, &config.rules.paths);
    let destination_names: Vec<String> =
        config.notify.destinations.iter().map(|destination| destination.name.clone()).collect();
    let notification_counters = Arc::new(NotificationCounters::for_destinations(&destination_names));
    let notifier = Arc::new(Notifier::start(&config.notify.destinations, notification_counters.clone()));
    let pipeline = Pipeline::open(
        &store_options(&config, &config.data_dir),
        config.rules.nice,
        live.clone(),
        Some(notifier.clone()),
    )?;
    let (reload_requests, reload_receiver) = std::sync::mpsc::channel();
    let reloader = {
        let (live, paths) = (live.clone(), config.rules.paths.clone());
        std::thread::Builder::new()
            .name("vigil-rules-reload".into())
            .spawn(move || reload_loop(live, sources, paths, options, reload_receiver, fingerprint))
            .context("cannot start the rules reload thread")?
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let served =
        runtime.block_on(serve(&config, forward, &pipeline, live, reload_requests, notification_counters));
    // Whatever happened to the HTTP side, commit what was accepted.
    tracing::info!("committing and stopping");
    pipeline.shutdown();
    // The rules thread is gone: this is the last handle on the notifier.
    match Arc::try_unwrap(notifier) {
        Ok(notifier) => notifier.shutdown(),
        Err(_) => tracing::error!("the notifier is still in use; queued notifications are dropped"),
    }
    // Stopping the runtime drops the SIGHUP task's sender, which ends the
    // reload thread.
    runtime.shutdown_timeout(Duration::from_secs(5));
    if reloader.join().is_err() {
        tracing::error!("the rules reload thread panicked");
    }
    served?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    config: &Config,
    forward: ForwardOptions,
    pipeline: &Pipeline,
    rules: Arc<LiveRules>,
    reload_requests: std::sync::mpsc::Sender<ReloadCause>,
    notification_counters: Arc<NotificationCounters>,
) -> anyhow::Result<()> {
    spawn_hangup_listener(reload_requests);
    let sink = pipeline.store.clone();
    let forward_metrics = Arc::new(ForwardMetrics::default());
    // The store is open and replayed: the forward listener may take events.
    let forward = match config.forward.listen {
        Some(listen) => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen for the forward protocol on {listen}"))?;
            let server = ForwardServer::start(listener, forward, sink.clone(), forward_metrics.clone())
                .context("cannot start the forward server")?;
            tracing::info!(
                auth = config.forward.shared_key.is_some(),
                tls = config.forward.tls_cert.is_some(),
                client_certificates = config.forward.tls_client_ca.is_some(),
                "forward protocol on {}",
                server.local_addr()
            );
            // Scripts and tests read it before the HTTP line.
            println!("vigil forward listening on {}", server.local_addr());
            Some(server)
        }
        None => None,
    };
    let event_sink: Arc<dyn vigil_schema::EventSink> = sink.clone();
    let syslog_stats = Arc::new(vigil_ingest::syslog::SourceStats::default());
    let (stop_sources, sources_stopped) = tokio::sync::watch::channel(false);
    if let Some(address) = config.syslog.listen {
        start_syslog(address, config, event_sink.clone(), syslog_stats.clone(), sources_stopped.clone())
            .await?;
    }
    let tail_stats = Arc::new(vigil_ingest::tail::TailStats::default());
    if !config.tail.globs.is_empty() {
        let mut options = vigil_ingest::tail::TailOptions::new(
            config.tail.globs.clone(),
            vigil_ingest::tail::checkpoint_path(&config.data_dir),
        );
        options.poll_interval = config.tail.poll_interval;
        options.audit = audit_context(config);
        tracing::info!(globs = ?config.tail.globs, "tailing files");
        tokio::spawn(vigil_ingest::tail::run(
            options,
            event_sink.clone(),
            tail_stats.clone(),
            sources_stopped.clone(),
        ));
    }
    let state = Arc::new(AppState {
        sink,
        searcher: pipeline.store.searcher().clone(),
        alerts: pipeline.alerts.clone(),
        rules,
        limits: Limits {
            max_body_bytes: config.http.max_body_bytes,
            max_decoded_bytes: config.http.max_decoded_bytes,
            body_timeout: config.http.body_timeout,
        },
        audit_context: audit_context(config),
        metrics: Metrics {
            notifications: notification_counters,
            syslog: syslog_stats,
            tail: tail_stats,
            store_queue: pipeline.store.queue_depth(),
            wal_backlog: Some(pipeline.store.backlog()),
            forward: forward_metrics,
            ..Metrics::default()
        },
    });
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.http.listen))?;
    let address = listener.local_addr().context("cannot read the listening address")?;
    let (stopping, mut stop) = tokio::sync::watch::channel(false);
    let signalled = shutdown_signal();
    tokio::spawn(async move {
        signalled.await;
        let _ = stopping.send(true);
    });
    tracing::info!(data_dir = %config.data_dir.display(), "vigil is ready on http://{address}");
    // The one line on stdout: scripts and tests wait for it.
    println!("vigil listening on http://{address}");
    let http_stop = stop.clone();
    let mut http = tokio::spawn(async move {
        let mut stop = http_stop;
        axum::serve(listener, vigil_web::router(state))
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            })
            .await
    });
    let finished_early = tokio::select! {
        finished = &mut http => Some(finished),
        _ = stop.wait_for(|stopping| *stopping) => None,
    };
    // Sources first: stop accepting and finish the messages in flight while
    // the store still takes them; the store shuts down after serve returns.
    // Connections (forward and HTTP) get `http.shutdown_grace_ms` to finish
    // their last messages and requests; then they are closed, and the store
    // commits and stops (by default well within Kubernetes' 30 s).
    let grace = config.http.shutdown_grace;
    let grace_ends = tokio::time::Instant::now() + grace;
    let _ = stop_sources.send(true);
    if let Some(forward) = forward {
        forward.shutdown(grace).await;
        tracing::info!("forward server stopped");
    }
    let finished = match finished_early {
        Some(finished) => finished,
        None => match tokio::time::timeout_at(grace_ends, &mut http).await {
            Ok(finished) => finished,
            Err(_) => {
                // A request whose body stalls: its sender was not answered,
                // so nothing of it was acknowledged.
                tracing::warn!(?grace, "HTTP requests still running at shutdown are cut off");
                http.abort();
                return Ok(());
            }
        },
    };
    finished.context("HTTP server task failed")?.context("HTTP server failed")
}

/// Binds syslog on UDP and TCP at the same address and serves both.
async fn start_syslog(
    address: std::net::SocketAddr,
    config: &Config,
    sink: Arc<dyn vigil_schema::EventSink>,
    stats: Arc<vigil_ingest::syslog::SourceStats>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use vigil_ingest::syslog::{SyslogOptions, serve_tcp, serve_udp};
    let options =
        SyslogOptions { max_message_bytes: config.syslog.max_message_bytes, ..SyslogOptions::default() };
    let tcp = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen for syslog on tcp {address}"))?;
    let udp = tokio::net::UdpSocket::bind(address)
        .await
        .with_context(|| format!("cannot listen for syslog on udp {address}"))?;
    tracing::info!(tcp = %tcp.local_addr()?, udp = %udp.local_addr()?, "syslog is listening");
    tokio::spawn(serve_tcp(tcp, sink.clone(), options.clone(), stats.clone(), stop.clone()));
    tokio::spawn(serve_udp(udp, sink, options, stats, stop));
    Ok(())
}

/// Turns SIGHUP into a reload request. The task ends with the runtime,
/// dropping the last sender, which stops the reload thread.
fn spawn_hangup_listener(reload_requests: std::sync::mpsc::Sender<ReloadCause>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGHUP; rules reload only on file changes");
                std::future::pending::<()>().await;
                return;
            }
        };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the rules");
            if reload_requests.send(ReloadCause::Hangup).is_err() {
                return;
            }
        }
    });
    #[cfg(not(unix))]
    drop(reload_requests);
}

/// Registers for SIGINT and SIGTERM at once (the caller does so before the
/// ready line, so a signal sent right after it is never missed) and resolves
/// when one arrives.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let signals = signal(SignalKind::interrupt())
            .and_then(|interrupt| Ok((interrupt, signal(SignalKind::terminate())?)));
        async move {
            match signals {
                Ok((mut interrupt, mut terminate)) => tokio::select! {
                    _ = interrupt.recv() => tracing::info!("interrupted; shutting down"),
                    _ = terminate.recv() => tracing::info!("terminated; shutting down"),
                },
                Err(error) => {
                    tracing::error!(%error, "cannot listen for SIGINT and SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("interrupted; shutting down");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = "title: Exec\nid: exec-1\nlevel: medium\nlogsource:\n  product: kubernetes\n  service: audit\ndetection:\n  selection:\n    objectRef.subresource: exec\n  condition: selection\n";

    /// The CI caught this: a rule file written right after the server
    /// answered, before its reload thread had looked at the files, was never
    /// reloaded, because the thread took the files as they were then as its
    /// starting point.
    #[test]
    fn a_rule_file_changed_before_the_reload_thread_runs_is_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("exec.yml"), RULE).unwrap();
        let paths = vec![dir.path().to_owned()];
        let sources = rule_sources(false, &paths);
        let options = RuleOptions::default();
        let fingerprint = sources_fingerprint(&sources);
        let live = live_rules(load_rules(&sources, &options).unwrap(), &paths);
        // Between the first load and the reload thread's first look.
        std::fs::write(dir.path().join("exec2.yml"), RULE.replace("exec-1", "exec-2")).unwrap();
        let (requests, receiver) = std::sync::mpsc::channel();
        let thread = {
            let live = live.clone();
            std::thread::spawn(move || reload_loop(live, sources, paths, options, receiver, fingerprint))
        };
        let deadline = std::time::Instant::now() + RULES_POLL_INTERVAL * 5;
        while live.status().rules.rules().len() != 2 {
            assert!(std::time::Instant::now() < deadline, "the second rule was never loaded");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(live.status().generation, 2);
        drop(requests);
        thread.join().unwrap();
    }
}
