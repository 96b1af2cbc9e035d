//! `vigil serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use vigil_config::Config;
use vigil_ingest::k8s_audit;
use vigil_rules::{KubernetesMapping, RuleOptions, RuleSet, RuleSource};
use vigil_web::{AppState, Limits, Metrics};

use crate::pipeline::{Pipeline, StoreSink, store_options};

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
    /// Capacity of each pipeline queue, in batches [default: 64]; when full, ingest answers 503.
    #[arg(long, value_name = "BATCHES")]
    queue_batches: Option<usize>,
    /// Memory for the index writer, in bytes [default: 134217728].
    #[arg(long, value_name = "BYTES")]
    writer_heap_bytes: Option<usize>,
    /// Size at which the write-ahead log starts a new segment, in bytes [default: 67108864].
    #[arg(long, value_name = "BYTES")]
    wal_segment_bytes: Option<u64>,
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
    if let Some(bytes) = args.writer_heap_bytes {
        anyhow::ensure!(bytes >= 15_000_000, "--writer-heap-bytes must be at least 15000000");
        config.index.writer_heap_bytes = bytes;
    }
    if let Some(bytes) = args.wal_segment_bytes {
        anyhow::ensure!(bytes >= 4096, "--wal-segment-bytes must be at least 4096");
        config.index.wal_segment_bytes = bytes;
    }
    if let Some(millis) = args.commit_interval_ms {
        anyhow::ensure!(millis >= 10, "--commit-interval-ms must be at least 10");
        config.index.commit_interval = Duration::from_millis(millis);
    }
    Ok(config)
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

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = resolve(&args)?;
    let rules =
        load_rules(&rule_sources(config.rules.builtin, &config.rules.paths), &rule_options(&config.rules))?;
    tracing::info!(rules = rules.rules().len(), "rules loaded");
    let pipeline = Pipeline::open(&store_options(&config, &config.data_dir), rules.clone())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let served = runtime.block_on(serve(&config, &pipeline, rules));
    // Whatever happened to the HTTP side, commit what was accepted.
    tracing::info!("committing and stopping");
    pipeline.shutdown();
    runtime.shutdown_timeout(Duration::from_secs(5));
    served?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: &Config, pipeline: &Pipeline, rules: Arc<RuleSet>) -> anyhow::Result<()> {
    let state = Arc::new(AppState {
        sink: Arc::new(StoreSink { store: pipeline.store.clone() }),
        searcher: pipeline.store.searcher().clone(),
        alerts: pipeline.alerts.clone(),
        rules,
        limits: Limits {
            max_body_bytes: config.http.max_body_bytes,
            max_decoded_bytes: config.http.max_decoded_bytes,
        },
        audit_context: k8s_audit::Context { cluster_name: config.cluster.name.clone() },
        metrics: Metrics::default(),
    });
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.http.listen))?;
    let address = listener.local_addr().context("cannot read the listening address")?;
    tracing::info!(data_dir = %config.data_dir.display(), "vigil is ready on http://{address}");
    // The one line on stdout: scripts and tests wait for it.
    println!("vigil listening on http://{address}");
    axum::serve(listener, vigil_web::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server failed")
}

async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("interrupted; shutting down"),
        () = terminate => tracing::info!("terminated; shutting down"),
    }
}
