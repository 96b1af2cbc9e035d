//! Vigil's configuration: one TOML file, `version = 1` at the top, every key
//! optional. The file is read into raw types that refuse unknown keys, then
//! validated into [`Config`]; every problem is reported with its key path,
//! all at once.
//!
//! ```
//! let config = vigil_config::Config::from_toml("version = 1\n[http]\nlisten = \"127.0.0.1:9000\"\n").unwrap();
//! assert_eq!(config.http.listen.port(), 9000);
//! ```
//!
//! `config/vigil.example.toml` documents every key; a test parses it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where events, the index and alert state are kept.
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub forward: ForwardConfig,
    pub index: IndexConfig,
    pub rules: RulesConfig,
    pub cluster: ClusterConfig,
    pub retention: RetentionConfig,
    pub syslog: SyslogConfig,
    pub tail: TailConfig,
    pub notify: NotifyConfig,
}

/// Where new alerts are sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotifyConfig {
    pub destinations: Vec<NotifyDestination>,
}

/// One notification destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyDestination {
    /// Names the destination in metrics and logs.
    pub name: String,
    pub kind: NotifyKind,
    pub url: String,
    /// Alerts of this level and above are sent: informational, low, medium, high, critical.
    pub min_level: String,
    /// At most this many requests a minute; more wait in the queue.
    pub max_per_minute: u32,
    /// Alerts waiting for this destination; beyond it, new ones are dropped and counted.
    pub queue: usize,
    /// Attempts after the first when the destination fails (5xx, 429, network).
    pub retries: u32,
    /// Wait before the first retry; doubled for each next one.
    pub backoff: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyKind {
    /// The alert as JSON.
    Webhook,
    /// A Slack-compatible incoming webhook: `{"text": ...}`.
    Slack,
}

/// The most threads an index writer may have (tantivy's own limit).
pub const MAX_WRITER_THREADS: usize = 8;

/// The Sigma levels, lowest first.
pub const LEVELS: &[&str] = &["informational", "low", "medium", "high", "critical"];

#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Largest request body accepted, as sent (413 above it).
    pub max_body_bytes: usize,
    /// Largest request body accepted once decompressed (413 above it).
    pub max_decoded_bytes: usize,
    /// Longest a request body may take to arrive (408 past it).
    pub body_timeout: Duration,
    /// How long HTTP requests and forward connections may take to finish
    /// on shutdown before they are cut off.
    pub shutdown_grace: Duration,
    /// Largest single record (event) in a body.
    pub max_record_bytes: usize,
    /// Deepest nesting of a record.
    pub max_depth: usize,
    /// Most values in a record.
    pub max_fields: usize,
}

/// The Fluentd forward protocol listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardConfig {
    /// Where to listen; `None` when turned off (`listen = "off"`).
    pub listen: Option<SocketAddr>,
    /// The secure-forward handshake's shared key; `None`: no handshake.
    pub shared_key: Option<String>,
    /// The name this server gives in the handshake.
    pub self_hostname: String,
    /// `(username, password)` pairs a client must give in the handshake.
    pub users: Vec<(String, String)>,
    /// Largest message accepted, as sent.
    pub max_message_bytes: usize,
    /// Largest packed entries accepted once decompressed (gzip, zstd).
    pub max_decompressed_bytes: usize,
    /// Most entries in one message.
    pub max_entries: usize,
    /// How long the rest of a half-sent message may take.
    pub message_timeout: Duration,
    /// How long a connection may stay silent between messages.
    pub idle_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// TLS: the server's PEM certificate chain; with `tls_key`, every connection must be TLS.
    pub tls_cert: Option<PathBuf>,
    /// TLS: the PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// TLS: when set, clients must present a certificate signed by one of these PEM CAs.
    pub tls_client_ca: Option<PathBuf>,
}

impl Default for ForwardConfig {
    fn default() -> ForwardConfig {
        ForwardConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 24224))),
            shared_key: None,
            self_hostname: "vigil".into(),
            users: Vec::new(),
            max_message_bytes: 64 * 1024 * 1024,
            max_decompressed_bytes: 256 * 1024 * 1024,
            max_entries: 1_000_000,
            message_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            max_connections: 1024,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
        }
    }
}

impl ForwardConfig {
    /// Checks that the TLS keys come together: a certificate and its key, or
    /// neither; a client CA only with them.
    /// The error names the key that is wrong, as in `forward.tls_key`.
    pub fn check_tls(&self) -> Result<(), (&'static str, String)> {
        let paths = [("forward.tls_cert", &self.tls_cert), ("forward.tls_key", &self.tls_key)];
        for (key, path) in paths.into_iter().chain([("forward.tls_client_ca", &self.tls_client_ca)]) {
            if path.as_ref().is_some_and(|path| path.as_os_str().is_empty()) {
                return Err((key, "must not be empty; leave it out instead".into()));
            }
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                Err(("forward.tls_key", "is needed with tls_cert (the certificate's private key)".into()))
            }
            (None, Some(_)) => Err((
                "forward.tls_cert",
                "is needed with tls_key (the certificate chain it belongs to)".into(),
            )),
            (None, None) if self.tls_client_ca.is_some() => Err((
                "forward.tls_client_ca",
                "needs tls_cert and tls_key: client certificates are checked in TLS".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// Reads a forward listen address: `off` or an address like 127.0.0.1:24224.
pub fn parse_forward_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    if text == "off" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| format!("{text:?} is not an address like 127.0.0.1:24224, or off"))
}

#[derive(Debug, Clone, PartialEq)]
pub struct IndexConfig {
    /// How often new events are committed to the index (made searchable).
    pub commit_interval: Duration,
    /// Capacity, in batches, of the queue in front of the write-ahead log.
    pub queue_batches: usize,
    /// Batches held in memory for the index and for the rules each; more
    /// wait in the write-ahead log, to be read back.
    pub feed_batches: usize,
    /// Niceness (0-19) of indexing: above 0, acknowledging ingest goes first
    /// when the CPU is short.
    pub indexing_nice: i32,
    /// Niceness (0-19) of merging segments: above `indexing_nice`, new
    /// events become searchable before segments are merged when the CPU is
    /// short.
    pub merging_nice: i32,
    /// zstd level (1-22) of the stored events in partitions created from
    /// now on: higher is smaller and costs more CPU while indexing.
    pub store_compression_level: i32,
    /// Memory for the index writer.
    pub writer_heap_bytes: usize,
    /// Threads of the index writer of the present's partition (and of a
    /// past one written in bulk), 1-8.
    pub writer_threads: usize,
    /// Threads one search may use, its own included (0: as many as the
    /// process may run on, at most four).
    pub search_threads: usize,
    /// Size at which the write-ahead log starts a new segment file.
    pub wal_segment_bytes: u64,
    /// How far the write-ahead log may run ahead of the index or the rules
    /// (a burst waiting on disk) before ingest answers 503.
    pub wal_max_backlog_bytes: u64,
    /// The span of event time one index partition holds.
    pub partition_span: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TailConfig {
    /// Files to follow, as globs.
    pub globs: Vec<String>,
    /// How often the files are read.
    pub poll_interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyslogConfig {
    /// Where syslog is received, on UDP and TCP; `None`: off.
    pub listen: Option<SocketAddr>,
    /// Longest message accepted.
    pub max_message_bytes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetentionConfig {
    /// Partitions whose span ended longer ago are dropped; `None` keeps all.
    pub max_age: Option<Duration>,
    /// The oldest partitions are dropped while the index is larger; `None`: no limit.
    pub max_bytes: Option<u64>,
    /// How often retention runs.
    pub check_interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RulesConfig {
    /// Whether the rule pack embedded in the binary is loaded.
    pub builtin: bool,
    /// Directories (or files) of Sigma rules.
    pub paths: Vec<PathBuf>,
    /// Whether Vigil's field mapping for SigmaHQ's Kubernetes audit rules
    /// (`apiGroup`, `hostPath`, `capabilities`) is applied.
    pub kubernetes_mapping: bool,
    /// A rule's field name → the event fields it stands for.
    pub field_mapping: BTreeMap<String, Vec<String>>,
    /// Values of `%name%` placeholders (`expand` modifier).
    pub placeholders: BTreeMap<String, Vec<String>>,
    /// Niceness (0-19) of the thread that matches rules and records alerts:
    /// above 0, acknowledging ingest goes first when the CPU is short.
    pub nice: i32,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterConfig {
    /// Written to `orchestrator.cluster.name` on audit events.
    pub name: Option<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: PathBuf::from("./vigil-data"),
            http: HttpConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
                max_body_bytes: 64 * 1024 * 1024,
                max_decoded_bytes: 256 * 1024 * 1024,
                body_timeout: Duration::from_secs(60),
                shutdown_grace: Duration::from_secs(10),
                max_record_bytes: 1024 * 1024,
                max_depth: 64,
                max_fields: 10_000,
            },
            forward: ForwardConfig::default(),
            index: IndexConfig {
                commit_interval: Duration::from_millis(1000),
                queue_batches: 32,
                feed_batches: 8,
                indexing_nice: 10,
                merging_nice: 19,
                store_compression_level: 6,
                writer_heap_bytes: 128 * 1024 * 1024,
                writer_threads: 1,
                search_threads: 0,
                wal_segment_bytes: 64 * 1024 * 1024,
                wal_max_backlog_bytes: 8 * 1024 * 1024 * 1024,
                partition_span: Duration::from_secs(86_400),
            },
            rules: RulesConfig {
                builtin: true,
                paths: Vec::new(),
                kubernetes_mapping: true,
                field_mapping: BTreeMap::new(),
                placeholders: BTreeMap::new(),
                nice: 10,
            },
            cluster: ClusterConfig::default(),
            syslog: SyslogConfig { listen: None, max_message_bytes: 64 * 1024 },
            tail: TailConfig { globs: Vec::new(), poll_interval: Duration::from_millis(250) },
            retention: RetentionConfig {
                max_age: None,
                max_bytes: None,
                check_interval: Duration::from_secs(60),
            },
            notify: NotifyConfig::default(),
        }
    }
}

/// One problem in a configuration file, at a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

/// Everything wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub source_name: String,
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration in {}:", self.source_name)?;
        for problem in &self.problems {
            if problem.key.is_empty() {
                write!(f, "\n  {}", problem.message)?;
            } else {
                write!(f, "\n  {}: {}", problem.key, problem.message)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    version: Option<i64>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    forward: RawForward,
    #[serde(default)]
    index: RawIndex,
    #[serde(default)]
    rules: RawRules,
    #[serde(default)]
    cluster: RawCluster,
    #[serde(default)]
    retention: RawRetention,
    #[serde(default)]
    syslog: RawSyslog,
    #[serde(default)]
    tail: RawTail,
    #[serde(default)]
    notify: RawNotify,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    #[serde(default)]
    destinations: Vec<RawDestination>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDestination {
    name: String,
    kind: String,
    url: String,
    min_level: Option<String>,
    max_per_minute: Option<i64>,
    queue: Option<i64>,
    retries: Option<i64>,
    backoff_ms: Option<i64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
    max_body_bytes: Option<i64>,
    max_decoded_bytes: Option<i64>,
    body_timeout_ms: Option<i64>,
    shutdown_grace_ms: Option<i64>,
    max_record_bytes: Option<i64>,
    max_depth: Option<i64>,
    max_fields: Option<i64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawForward {
    listen: Option<String>,
    shared_key: Option<String>,
    self_hostname: Option<String>,
    #[serde(default)]
    users: Vec<RawForwardUser>,
    max_message_bytes: Option<i64>,
    max_decompressed_bytes: Option<i64>,
    max_entries: Option<i64>,
    message_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<i64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForwardUser {
    username: String,
    password: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIndex {
    commit_interval_ms: Option<i64>,
    queue_batches: Option<i64>,
    feed_batches: Option<i64>,
    indexing_nice: Option<i64>,
    merging_nice: Option<i64>,
    store_compression_level: Option<i64>,
    writer_heap_bytes: Option<i64>,
    writer_threads: Option<i64>,
    search_threads: Option<i64>,
    wal_segment_bytes: Option<i64>,
    wal_max_backlog_bytes: Option<i64>,
    partition_span: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTail {
    globs: Option<Vec<String>>,
    poll_interval_ms: Option<i64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSyslog {
    listen: Option<String>,
    max_message_bytes: Option<i64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    max_age: Option<String>,
    max_bytes: Option<i64>,
    check_interval: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRules {
    builtin: Option<bool>,
    paths: Option<Vec<PathBuf>>,
    kubernetes_mapping: Option<bool>,
    field_mapping: Option<BTreeMap<String, Vec<String>>>,
    placeholders: Option<BTreeMap<String, Vec<String>>>,
    nice: Option<i64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: Option<String>,
}

impl Config {
    /// Reads and validates a configuration file. Relative paths in it are
    /// taken relative to the file's directory.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let source_name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
            source_name: source_name.clone(),
            problems: vec![ConfigProblem { key: String::new(), message: format!("cannot read: {error}") }],
        })?;
        let mut config = parse(&text, &source_name)?;
        let base = path.parent().unwrap_or(Path::new("."));
        if config.data_dir.is_relative() && text_sets(&text, "data_dir") {
            config.data_dir = base.join(&config.data_dir);
        }
        let forward = &mut config.forward;
        for path in
            [&mut forward.tls_cert, &mut forward.tls_key, &mut forward.tls_client_ca].into_iter().flatten()
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        config.rules.paths = config
            .rules
            .paths
            .into_iter()
            .map(|rule_path| if rule_path.is_relative() { base.join(rule_path) } else { rule_path })
            .collect();
        Ok(config)
    }

    /// Parses and validates configuration text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        parse(text, "the configuration")
    }
}

/// Reads a span written as `90s`, `15m`, `1h`, `7d`, `2w`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("{text:?} is not a duration like 90s, 15m, 1h, 7d, 2w");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
    let amount: u64 = text[..split].parse().map_err(|_| invalid())?;
    let unit = match &text[split..] {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(invalid()),
    };
    match amount.checked_mul(unit) {
        Some(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
        _ => Err(invalid()),
    }
}

fn text_sets(text: &str, key: &str) -> bool {
    text.lines().any(|line| line.trim_start().starts_with(key))
}

fn parse(text: &str, source_name: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|error| ConfigError {
        source_name: source_name.to_owned(),
        problems: vec![ConfigProblem {
            key: String::new(),
            message: error.to_string().trim_end().to_owned(),
        }],
    })?;
    let mut problems = Vec::new();
    let mut problem =
        |key: &str, message: String| problems.push(ConfigProblem { key: key.to_owned(), message });
    let mut config = Config::default();
    match raw.version {
        Some(1) => {}
        Some(other) => {
            problem("version", format!("version {other} is not supported; this Vigil reads version 1"))
        }
        None => problem("version", "missing; put `version = 1` at the top of the file".into()),
    }
    if let Some(data_dir) = raw.data_dir {
        config.data_dir = data_dir;
    }
    if let Some(listen) = raw.http.listen {
        match listen.parse() {
            Ok(address) => config.http.listen = address,
            Err(_) => problem("http.listen", format!("{listen:?} is not an address like 127.0.0.1:8080")),
        }
    }
    let mut positive = |key: &str, value: Option<i64>, minimum: i64, slot: &mut dyn FnMut(u64)| {
        if let Some(value) = value {
            if value < minimum {
                problem(key, format!("must be at least {minimum}, found {value}"));
            } else {
                slot(value as u64);
            }
        }
    };
    positive("http.max_body_bytes", raw.http.max_body_bytes, 1024, &mut |v| {
        config.http.max_body_bytes = v as usize
    });
    positive("http.max_decoded_bytes", raw.http.max_decoded_bytes, 1024, &mut |v| {
        config.http.max_decoded_bytes = v as usize
    });
    positive("http.body_timeout_ms", raw.http.body_timeout_ms, 100, &mut |v| {
        config.http.body_timeout = Duration::from_millis(v)
    });
    positive("http.shutdown_grace_ms", raw.http.shutdown_grace_ms, 0, &mut |v| {
        config.http.shutdown_grace = Duration::from_millis(v)
    });
    positive("forward.max_message_bytes", raw.forward.max_message_bytes, 1024, &mut |v| {
        config.forward.max_message_bytes = v as usize
    });
    positive("forward.max_decompressed_bytes", raw.forward.max_decompressed_bytes, 1024, &mut |v| {
        config.forward.max_decompressed_bytes = v as usize
    });
    positive("forward.max_entries", raw.forward.max_entries, 1, &mut |v| {
        config.forward.max_entries = v as usize
    });
    positive("forward.max_connections", raw.forward.max_connections, 1, &mut |v| {
        config.forward.max_connections = v as usize
    });
    positive("index.commit_interval_ms", raw.index.commit_interval_ms, 10, &mut |v| {
        config.index.commit_interval = Duration::from_millis(v)
    });
    positive("index.queue_batches", raw.index.queue_batches, 1, &mut |v| {
        config.index.queue_batches = v as usize
    });
    positive("index.feed_batches", raw.index.feed_batches, 1, &mut |v| {
        config.index.feed_batches = v as usize
    });
    positive("index.writer_heap_bytes", raw.index.writer_heap_bytes, 15_000_000, &mut |v| {
        config.index.writer_heap_bytes = v as usize
    });
    positive("index.wal_segment_bytes", raw.index.wal_segment_bytes, 4096, &mut |v| {
        config.index.wal_segment_bytes = v
    });
    positive("index.wal_max_backlog_bytes", raw.index.wal_max_backlog_bytes, 1024 * 1024, &mut |v| {
        config.index.wal_max_backlog_bytes = v
    });
    positive("http.max_record_bytes", raw.http.max_record_bytes, 1024, &mut |v| {
        config.http.max_record_bytes = v as usize
    });
    positive("http.max_depth", raw.http.max_depth, 4, &mut |v| config.http.max_depth = v as usize);
    positive("http.max_fields", raw.http.max_fields, 16, &mut |v| config.http.max_fields = v as usize);
    positive("tail.poll_interval_ms", raw.tail.poll_interval_ms, 10, &mut |v| {
        config.tail.poll_interval = Duration::from_millis(v)
    });
    if let Some(globs) = raw.tail.globs {
        config.tail.globs = globs;
    }
    positive("syslog.max_message_bytes", raw.syslog.max_message_bytes, 480, &mut |v| {
        config.syslog.max_message_bytes = v as usize
    });
    positive("retention.max_bytes", raw.retention.max_bytes, 1, &mut |v| {
        config.retention.max_bytes = Some(v)
    });
    let mut duration = |key: &str, value: Option<String>, slot: &mut dyn FnMut(Duration)| {
        if let Some(text) = value {
            match parse_duration(&text) {
                Ok(duration) => slot(duration),
                Err(message) => problem(key, message),
            }
        }
    };
    duration("index.partition_span", raw.index.partition_span, &mut |d| config.index.partition_span = d);
    duration("forward.message_timeout", raw.forward.message_timeout, &mut |d| {
        config.forward.message_timeout = d
    });
    duration("forward.idle_timeout", raw.forward.idle_timeout, &mut |d| config.forward.idle_timeout = d);
    duration("retention.max_age", raw.retention.max_age, &mut |d| config.retention.max_age = Some(d));
    duration("retention.check_interval", raw.retention.check_interval, &mut |d| {
        config.retention.check_interval = d
    });
    if config.index.partition_span.as_secs() < 60 || 86_400 * 7 % config.index.partition_span.as_secs() != 0 {
        problem(
            "index.partition_span",
            "must be at least 1m and divide a week evenly (1m, 5m, 1h, 6h, 1d, 7d...)".into(),
        );
    }
    if let Some(threads) = raw.index.search_threads {
        match usize::try_from(threads) {
            Ok(threads @ 0..=64) => config.index.search_threads = threads,
            _ => {
                problem("index.search_threads", format!("must be from 0 (automatic) to 64, found {threads}"))
            }
        }
    }
    if let Some(nice) = raw.index.indexing_nice {
        match i32::try_from(nice) {
            Ok(nice @ 0..=19) => config.index.indexing_nice = nice,
            _ => problem("index.indexing_nice", format!("must be from 0 to 19, found {nice}")),
        }
    }
    if let Some(nice) = raw.index.merging_nice {
        match i32::try_from(nice) {
            Ok(nice @ 0..=19) => config.index.merging_nice = nice,
            _ => problem("index.merging_nice", format!("must be from 0 to 19, found {nice}")),
        }
    }
    if let Some(threads) = raw.index.writer_threads {
        match usize::try_from(threads) {
            Ok(threads @ 1..=MAX_WRITER_THREADS) => config.index.writer_threads = threads,
            _ => problem(
                "index.writer_threads",
                format!("must be from 1 to {MAX_WRITER_THREADS}, found {threads}"),
            ),
        }
    }
    if let Some(level) = raw.index.store_compression_level {
        match i32::try_from(level) {
            Ok(level @ 1..=22) => config.index.store_compression_level = level,
            _ => problem("index.store_compression_level", format!("must be from 1 to 22, found {level}")),
        }
    }
    if config.http.max_decoded_bytes < config.http.max_body_bytes {
        problem("http.max_decoded_bytes", "must not be smaller than http.max_body_bytes".into());
    }
    if let Some(listen) = raw.syslog.listen {
        match listen.parse() {
            Ok(address) => config.syslog.listen = Some(address),
            Err(_) => problem("syslog.listen", format!("{listen:?} is not an address like 127.0.0.1:5514")),
        }
    }
    if let Some(listen) = raw.forward.listen {
        match parse_forward_listen(&listen) {
            Ok(address) => config.forward.listen = address,
            Err(message) => problem("forward.listen", message),
        }
    }
    match raw.forward.shared_key {
        Some(key) if key.is_empty() => {
            problem("forward.shared_key", "must not be empty; leave it out to turn the handshake off".into())
        }
        key => config.forward.shared_key = key,
    }
    if let Some(name) = raw.forward.self_hostname {
        if name.trim().is_empty() {
            problem("forward.self_hostname", "must not be empty".into());
        } else {
            config.forward.self_hostname = name;
        }
    }
    if !raw.forward.users.is_empty() && config.forward.shared_key.is_none() {
        problem("forward.users", "need forward.shared_key: users are checked in the handshake".into());
    }
    for (index, user) in raw.forward.users.into_iter().enumerate() {
        if user.username.is_empty() {
            problem(&format!("forward.users[{index}].username"), "must not be empty".into());
        } else {
            config.forward.users.push((user.username, user.password));
        }
    }
    config.forward.tls_cert = raw.forward.tls_cert;
    config.forward.tls_key = raw.forward.tls_key;
    config.forward.tls_client_ca = raw.forward.tls_client_ca;
    if let Err((key, message)) = config.forward.check_tls() {
        problem(key, message);
    }
    if config.forward.max_decompressed_bytes < config.forward.max_message_bytes {
        problem(
            "forward.max_decompressed_bytes",
            "must not be smaller than forward.max_message_bytes".into(),
        );
    }
    if let Some(builtin) = raw.rules.builtin {
        config.rules.builtin = builtin;
    }
    if let Some(paths) = raw.rules.paths {
        config.rules.paths = paths;
    }
    if let Some(kubernetes_mapping) = raw.rules.kubernetes_mapping {
        config.rules.kubernetes_mapping = kubernetes_mapping;
    }
    if let Some(nice) = raw.rules.nice {
        match i32::try_from(nice) {
            Ok(nice @ 0..=19) => config.rules.nice = nice,
            _ => problem("rules.nice", format!("must be from 0 to 19, found {nice}")),
        }
    }
    for (table, values, target) in [
        ("rules.field_mapping", raw.rules.field_mapping, &mut config.rules.field_mapping),
        ("rules.placeholders", raw.rules.placeholders, &mut config.rules.placeholders),
    ] {
        for (name, list) in values.unwrap_or_default() {
            if list.is_empty() || list.iter().any(|value| value.trim().is_empty()) {
                problem(&format!("{table}.{name}"), "must be a list of non-empty strings".into());
            } else {
                target.insert(name, list);
            }
        }
    }
    if let Some(name) = raw.cluster.name {
        if name.trim().is_empty() {
            problem("cluster.name", "must not be empty; leave it out instead".into());
        } else {
            config.cluster.name = Some(name);
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for (index, destination) in raw.notify.destinations.into_iter().enumerate() {
        let key = |field: &str| format!("notify.destinations[{index}].{field}");
        let before = problems.len();
        let mut problem = |key: String, message: String| problems.push(ConfigProblem { key, message });
        let name_is_plain = !destination.name.is_empty()
            && destination.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_is_plain || !names.insert(destination.name.clone()) {
            problem(
                key("name"),
                format!("{:?} must be unique and made of letters, digits, - _ .", destination.name),
            );
        }
        let kind = match destination.kind.as_str() {
            "webhook" => NotifyKind::Webhook,
            "slack" => NotifyKind::Slack,
            other => {
                problem(key("kind"), format!("{other:?} is not webhook or slack"));
                NotifyKind::Webhook
            }
        };
        if !(destination.url.starts_with("http://") || destination.url.starts_with("https://")) {
            problem(key("url"), format!("{:?} is not an http:// or https:// URL", destination.url));
        }
        let min_level = destination.min_level.unwrap_or_else(|| "high".into());
        if !LEVELS.contains(&min_level.as_str()) {
            problem(key("min_level"), format!("{min_level:?} is not one of {}", LEVELS.join(", ")));
        }
        let mut bounded = |field: &str, value: Option<i64>, default: i64, low: i64, high: i64| match value {
            None => default,
            Some(value) if (low..=high).contains(&value) => value,
            Some(value) => {
                problem(key(field), format!("{value} is outside {low}..={high}"));
                default
            }
        };
        let max_per_minute = bounded("max_per_minute", destination.max_per_minute, 60, 1, 100_000);
        let queue = bounded("queue", destination.queue, 1000, 1, 1_000_000);
        let retries = bounded("retries", destination.retries, 3, 0, 20);
        let backoff_ms = bounded("backoff_ms", destination.backoff_ms, 500, 1, 600_000);
        if problems.len() == before {
            config.notify.destinations.push(NotifyDestination {
                name: destination.name,
                kind,
                url: destination.url,
                min_level,
                max_per_minute: max_per_minute as u32,
                queue: queue as usize,
                retries: retries as u32,
                backoff: Duration::from_millis(backoff_ms as u64),
            });
        }
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError { source_name: source_name.to_owned(), problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses_and_matches_the_defaults_it_documents() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("vigil.example.toml");
        let config = Config::from_file(&path).unwrap();
        let mut expected =
            Config { data_dir: path.parent().unwrap().join("vigil-data"), ..Config::default() };
        expected.rules.field_mapping.insert("CommandLine".into(), vec!["process.command_line".into()]);
        expected
            .rules
            .placeholders
            .insert("admins".into(), vec!["alice@example.org".into(), "bob@example.org".into()]);
        expected.cluster.name = Some("production".into());
        assert_eq!(config, expected);
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let error = Config::from_toml(
            "version = 2\n[http]\nlisten = \"nowhere\"\nmax_body_bytes = 0\n[index]\ncommit_interval_ms = 1\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = error.problems.iter().map(|problem| problem.key.as_str()).collect();
        assert_eq!(keys, ["version", "http.listen", "http.max_body_bytes", "index.commit_interval_ms"]);
        assert!(error.to_string().contains("http.listen: \"nowhere\" is not an address like 127.0.0.1:8080"));
    }

    #[test]
    fn the_write_ahead_log_backlog_and_feeds_are_read_and_checked() {
        let config =
            Config::from_toml("version = 1\n[index]\nfeed_batches = 4\nwal_max_backlog_bytes = 1073741824\n")
                .unwrap();
        assert_eq!((config.index.feed_batches, config.index.wal_max_backlog_bytes), (4, 1 << 30));
        let error = Config::from_toml(
            "version = 1\n[index]\nfeed_batches = 0\nwal_max_backlog_bytes = 1000\nsearch_threads = 65\nindexing_nice = 20\nmerging_nice = -1\nwriter_threads = 9\nstore_compression_level = 0\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = error.problems.iter().map(|problem| problem.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "index.feed_batches",
                "index.wal_max_backlog_bytes",
                "index.search_threads",
                "index.indexing_nice",
                "index.merging_nice",
                "index.writer_threads",
                "index.store_compression_level"
            ]
        );
        let config = Config::from_toml(
            "version = 1\n[index]\nsearch_threads = 1\nstore_compression_level = 3\nwriter_threads = 2\n",
        )
        .unwrap();
        assert_eq!(config.index.writer_threads, 2);
        assert_eq!((config.index.search_threads, config.index.store_compression_level), (1, 3));
        assert_eq!(Config::default().index.search_threads, 0);
        assert_eq!(Config::default().rules.nice, 10);
        assert_eq!(Config::from_toml("version = 1\n[rules]\nnice = 0\n").unwrap().rules.nice, 0);
        let error = Config::from_toml("version = 1\n[rules]\nnice = 20\n").unwrap_err();
        assert_eq!(error.problems[0].key, "rules.nice");
    }

    #[test]
    fn notification_destinations_are_validated_with_their_key() {
        let error = Config::from_toml(
            "version = 1\n[[notify.destinations]]\nname = \"a\"\nkind = \"email\"\nurl = \"ftp://x\"\nmin_level = \"urgent\"\nretries = 99\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = error.problems.iter().map(|problem| problem.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "notify.destinations[0].kind",
                "notify.destinations[0].url",
                "notify.destinations[0].min_level",
                "notify.destinations[0].retries"
            ]
        );
    }

    #[test]
    fn rule_mappings_must_list_names() {
        let error = Config::from_toml(
            "version = 1\n[rules.field_mapping]\nverb = []\n[rules.placeholders]\nadmins = [\"\"]\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = error.problems.iter().map(|problem| problem.key.as_str()).collect();
        assert_eq!(keys, ["rules.field_mapping.verb", "rules.placeholders.admins"]);
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let error = Config::from_toml("version = 1\n[http]\nlisen = \"127.0.0.1:1\"\n").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("unknown field `lisen`"), "{text}");
    }

    #[test]
    fn durations_and_retention_are_read_and_checked() {
        let config = Config::from_toml(
            "version = 1\n[index]\npartition_span = \"1h\"\n[retention]\nmax_age = \"30d\"\nmax_bytes = 1000000\n",
        )
        .unwrap();
        assert_eq!(config.index.partition_span, Duration::from_secs(3600));
        assert_eq!(config.retention.max_age, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(config.retention.max_bytes, Some(1_000_000));
        let error = Config::from_toml(
            "version = 1\n[index]\npartition_span = \"11m\"\n[retention]\nmax_age = \"soon\"\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = error.problems.iter().map(|problem| problem.key.as_str()).collect();
        assert_eq!(keys, ["retention.max_age", "index.partition_span"]);
    }

    #[test]
    fn forward_keys_are_read_and_checked() {
        let config = Config::from_toml(
            "version = 1\n[forward]\nlisten = \"off\"\nshared_key = \"s\"\nmax_entries = 10\nmessage_timeout = \"5s\"\n[[forward.users]]\nusername = \"fluent\"\npassword = \"pw\"\n",
        )
        .unwrap();
        assert_eq!(config.forward.listen, None);
        assert_eq!(config.forward.shared_key.as_deref(), Some("s"));
        assert_eq!(config.forward.max_entries, 10);
        assert_eq!(config.forward.message_timeout, Duration::from_secs(5));
        assert_eq!(config.forward.users, vec![("fluent".to_owned(), "pw".to_owned())]);
        let error = Config::from_toml(
            "version = 1\n[forward]\nlisten = \"nowhere\"\nmax_connections = 0\n[[forward.users]]\nusername = \"u\"\npassword = \"p\"\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = error.problems.iter().map(|problem| problem.key.as_str()).collect();
        assert_eq!(keys, ["forward.max_connections", "forward.listen", "forward.users"]);
    }

    #[test]
    fn forward_tls_keys_come_together_and_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vigil.toml");
        std::fs::write(
            &path,
            "version = 1\n[forward]\ntls_cert = \"tls/cert.pem\"\ntls_key = \"/etc/key.pem\"\n",
        )
        .unwrap();
        let config = Config::from_file(&path).unwrap();
        assert_eq!(config.forward.tls_cert, Some(dir.path().join("tls/cert.pem")));
        assert_eq!(config.forward.tls_key, Some(PathBuf::from("/etc/key.pem")));
        let error = Config::from_toml("version = 1\n[forward]\ntls_cert = \"c.pem\"\n").unwrap_err();
        assert_eq!(error.problems[0].key, "forward.tls_key");
        assert!(error.problems[0].message.contains("tls_cert"), "{}", error.problems[0].message);
        let error = Config::from_toml("version = 1\n[forward]\ntls_client_ca = \"ca.pem\"\n").unwrap_err();
        assert_eq!(error.problems[0].key, "forward.tls_client_ca");
        let error =
            Config::from_toml("version = 1\n[forward]\ntls_cert = \"\"\ntls_key = \"k.pem\"\n").unwrap_err();
        assert_eq!(error.problems[0].key, "forward.tls_cert");
        assert!(error.problems[0].message.contains("empty"), "{}", error.problems[0].message);
    }

    #[test]
    fn version_is_required() {
        let error = Config::from_toml("").unwrap_err();
        assert_eq!(error.problems[0].key, "version");
    }
}
