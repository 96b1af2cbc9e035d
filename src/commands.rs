//! The offline commands: `ingest`, `search` (the `rules` commands are in `rules_cmd.rs`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;
use clap::Args;
use serde_json::{Value, json};
use vigil_index::{SearchRequest, Searcher, SortOrder, parse_time_bound, query};
use vigil_ingest::detect::{Dataset, detect};
use vigil_ingest::{body, falco, k8s_audit};
use vigil_schema::{Event, EventIdGenerator, fields};

use crate::RuleArgs;
use crate::pipeline::{Pipeline, store_options};
use crate::serve::{live_rules, load_rules, rule_sources};

/// Files larger than this are refused by the offline commands (they read a file whole).
const MAX_FILE_BYTES: usize = 4 * 1024 * 1024 * 1024;
const BATCH_EVENTS: usize = 1000;

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The data directory to import into (the server must not be running on it).
    #[arg(long, value_name = "DIR", default_value = "./vigil-data")]
    data_dir: PathBuf,
    #[command(flatten)]
    rules: RuleArgs,
    /// Do not match the rule pack embedded in the binary.
    #[arg(long)]
    no_builtin_rules: bool,
    /// Cluster name written to orchestrator.cluster.name on audit events.
    #[arg(long, value_name = "NAME")]
    cluster_name: Option<String>,
    /// Audit log files (JSON lines, EventLists) or Falco JSON files; gzip is detected.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// One line of an input file that could not be turned into an event.
pub(crate) struct LineError {
    pub(crate) line: usize,
    pub(crate) reason: String,
}

/// Reads a file whole, gunzipping it when it is gzip.
pub(crate) fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if body::looks_gzipped(&bytes) {
        return body::gunzip(&bytes, MAX_FILE_BYTES)
            .with_context(|| format!("cannot decompress {}", path.display()));
    }
    Ok(bytes)
}

/// Normalizes every line of a file: audit Events (or EventLists) and Falco
/// alerts, detected per line unless `dataset` says.
pub(crate) fn normalize_lines(
    bytes: &[u8],
    dataset: Option<Dataset>,
    ids: &EventIdGenerator,
    context: &k8s_audit::Context,
) -> (Vec<(usize, Event)>, Vec<LineError>) {
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for (line, text) in k8s_audit::split_lines(bytes) {
        let value: Value = match serde_json::from_slice(text) {
            Ok(value) => value,
            Err(error) => {
                errors.push(LineError { line, reason: format!("invalid JSON: {error}") });
                continue;
            }
        };
        let Some(kind) = dataset.or_else(|| detect(&value)) else {
            errors.push(LineError {
                line,
                reason: "neither a Kubernetes audit event nor a Falco alert".into(),
            });
            continue;
        };
        let items = match (kind, value) {
            (Dataset::K8sAudit, Value::Object(mut list))
                if list.get("kind").and_then(Value::as_str) == Some("EventList") =>
            {
                match list.remove("items") {
                    Some(Value::Array(items)) => items,
                    _ => Vec::new(),
                }
            }
            (_, value) => vec![value],
        };
        for item in items {
            let normalized = match kind {
                Dataset::K8sAudit => {
                    k8s_audit::normalize(ids.next(), item, context).map_err(|e| e.to_string())
                }
                Dataset::Falco => falco::normalize(ids.next(), item).map_err(|e| e.to_string()),
            };
            match normalized {
                Ok(event) => events.push((line, event)),
                Err(reason) => errors.push(LineError { line, reason }),
            }
        }
    }
    (events, errors)
}

pub fn ingest(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let rules = load_rules(
        &rule_sources(!args.no_builtin_rules, &args.rules.rules),
        &vigil_rules::RuleOptions::default(),
    )?;
    let config = vigil_config::Config::default();
    let pipeline = Pipeline::open(
        &store_options(&config, &args.data_dir),
        config.rules.nice,
        live_rules(rules, &[]),
        None,
    )?;
    let context = k8s_audit::Context { cluster_name: args.cluster_name.clone(), ..Default::default() };
    let mut total = 0usize;
    let mut rejected = 0usize;
    let mut failure = None;
    'files: for path in &args.files {
        let bytes = match read_input(path) {
            Ok(bytes) => bytes,
            Err(error) => {
                failure = Some(error);
                break;
            }
        };
        let (events, errors) = normalize_lines(&bytes, None, pipeline.store.ids(), &context);
        for error in &errors {
            eprintln!("{}:{}: {}", path.display(), error.line, error.reason);
        }
        rejected += errors.len();
        let count = events.len();
        let mut events: Vec<Event> = events.into_iter().map(|(_, event)| event).collect();
        while !events.is_empty() {
            let rest = events.split_off(events.len().min(BATCH_EVENTS));
            if let Err(error) = pipeline.store.append_blocking(std::mem::replace(&mut events, rest)) {
                failure = Some(
                    anyhow::Error::new(error).context(format!("cannot store events of {}", path.display())),
                );
                break 'files;
            }
        }
        total += count;
        eprintln!("{}: imported {count} events, rejected {} lines", path.display(), errors.len());
    }
    pipeline.shutdown();
    if let Some(error) = failure {
        return Err(error);
    }
    eprintln!("imported {total} events into {} ({rejected} rejected)", args.data_dir.display());
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The data directory to search (a running server's is fine).
    #[arg(long, value_name = "DIR", default_value = "./vigil-data")]
    data_dir: PathBuf,
    /// Start of the time range: RFC 3339, now, or a span back like 15m, 2h, 7d.
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// End of the time range (exclusive), as --from.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// How many events (or, with --top, values) to print.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Print the oldest events first instead of the newest.
    #[arg(long)]
    oldest_first: bool,
    /// Print one JSON object per line: events as the search API returns them,
    /// or the --count / --top answer.
    #[arg(long)]
    json: bool,
    /// Print only how many events match.
    #[arg(long, conflicts_with = "top")]
    count: bool,
    /// Print the most frequent values of FIELD among the matching events.
    #[arg(long, value_name = "FIELD")]
    top: Option<String>,
    /// The query (see docs/query-language.md); words are joined with spaces.
    #[arg(value_name = "QUERY")]
    query: Vec<String>,
}

pub fn search(args: SearchArgs) -> anyhow::Result<ExitCode> {
    let text = args.query.join(" ");
    let query = match query::parse(&text) {
        Ok(query) => query,
        Err(error) => {
            eprintln!("vigil: invalid query: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    let now = Utc::now();
    let bound = |value: &Option<String>| value.as_deref().map(|text| parse_time_bound(text, now)).transpose();
    let request = SearchRequest {
        query,
        from: bound(&args.from).map_err(|message| anyhow::anyhow!("--from: {message}"))?,
        to: bound(&args.to).map_err(|message| anyhow::anyhow!("--to: {message}"))?,
        limit: 0,
        order: if args.oldest_first { SortOrder::OldestFirst } else { SortOrder::NewestFirst },
        cursor: None,
        now: Some(now),
    };
    let searcher = Searcher::open_read_only(&args.data_dir)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let answered = if let Some(field) = &args.top {
        searcher.top_values(&request, field, args.limit).map(|top| {
            if args.json {
                writeln!(out, "{}", serde_json::to_string(&top).unwrap_or_default())
            } else {
                print_top(&mut out, &top)
            }
        })
    } else if args.count {
        searcher.search(&request).map(|result| {
            if args.json {
                writeln!(out, "{}", json!({"total": result.total}))
            } else {
                writeln!(out, "{}", result.total)
            }
        })
    } else {
        print_hits(&mut out, &searcher, request, args.limit, args.json)
    };
    match answered {
        Ok(written) => {
            match written {
                // The reader has what it wanted (`| head`).
                Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
                written => written?,
            }
            // What the answer could not include, as the API's indexing_lag.
            match searcher.unindexed_in_log(&args.data_dir) {
                Ok(0) => {}
                Ok(events) => eprintln!(
                    "vigil: up to {events} events in the write-ahead log were not indexed when this ran: a server running on {} makes them searchable within its commit interval, a stopped one when it starts again",
                    args.data_dir.display()
                ),
                Err(error) => {
                    eprintln!("vigil: cannot tell whether events wait in the write-ahead log: {error}")
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) if error.kind().is_client_error() => {
            eprintln!("vigil: invalid query: {}", error.in_query(&text));
            Ok(ExitCode::from(2))
        }
        Err(error) => Err(error.into()),
    }
}

/// Prints up to `limit` hits, page after page (a search answers at most
/// `MAX_LIMIT` at a time), each page from the previous one's cursor.
fn print_hits(
    out: &mut impl Write,
    searcher: &Searcher,
    mut request: SearchRequest,
    limit: usize,
    as_json: bool,
) -> Result<std::io::Result<()>, vigil_index::StoreError> {
    let (mut printed, mut total) = (0, None);
    while printed < limit {
        request.limit = (limit - printed).min(vigil_index::MAX_LIMIT);
        let page = searcher.search(&request)?;
        total.get_or_insert(page.total);
        for event in &page.hits {
            if let Err(error) = print_hit(out, event, as_json) {
                return Ok(Err(error));
            }
        }
        printed += page.hits.len();
        match page.next_cursor {
            Some(cursor) if !page.hits.is_empty() => request.cursor = Some(cursor),
            _ => break,
        }
    }
    if as_json {
        return Ok(Ok(()));
    }
    let total = match total {
        Some(total) => total,
        None => searcher.search(&request)?.total,
    };
    Ok(writeln!(out, "{printed} of {total} matching events"))
}

fn print_hit(out: &mut impl Write, event: &Event, as_json: bool) -> std::io::Result<()> {
    if as_json {
        let hit = json!({
            "id": event.id.to_string(),
            "@timestamp": vigil_schema::format_timestamp(event.timestamp),
            "event": event.to_schema_json(),
            "original": event.original,
        });
        writeln!(out, "{hit}")?;
    } else {
        writeln!(
            out,
            "{}  {:<12} {}",
            vigil_schema::format_timestamp(event.timestamp),
            event.dataset(),
            event.get_str(fields::MESSAGE).unwrap_or("")
        )?;
    }
    Ok(())
}

fn print_top(out: &mut impl Write, top: &vigil_index::TopValues) -> std::io::Result<()> {
    let width = top.values.iter().map(|value| value.count.to_string().len()).max().unwrap_or(1);
    for value in &top.values {
        let shown = match &value.value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        writeln!(out, "{:>width$}  {shown}", value.count)?;
    }
    writeln!(
        out,
        "{} distinct values of {} in {} matching events ({} in other values, {} events without it)",
        top.distinct, top.field, top.total, top.other, top.missing
    )
}
