//! `vigil rules ...`: rules as code. `validate` compiles and lints,
//! `test` runs the fixtures beside the rules, `eval` matches rules over a
//! file of events, `backtest` over the history stored in a data directory.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::{Value, json};
use vigil_index::{SearchRequest, Searcher, parse_time_bound};
use vigil_ingest::detect::{Dataset, detect};
use vigil_ingest::{falco, k8s_audit};
use vigil_rules::fixtures::{Expectation, FixtureFile, fixture_path_for, read_fixtures};
use vigil_rules::{
    AlertStore, RecordContext, RuleInfo, RuleMatch, RuleOptions, RuleSet, RuleSource, Severity,
    SqliteAlertStore,
};
use vigil_schema::{Event, EventIdGenerator};

use crate::RuleArgs;
use crate::commands::{normalize_lines, read_input};
use crate::serve::rule_sources;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Rule directories or files.
    #[arg(required = true, value_name = "DIR")]
    paths: Vec<PathBuf>,
    /// Fail on warnings too (missing id or level, unknown fields, rules that never run).
    #[arg(long)]
    strict: bool,
}

pub fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let sources: Vec<RuleSource> = args.paths.into_iter().map(RuleSource::Path).collect();
    match RuleSet::load(&sources) {
        Ok(rules) => {
            for warning in rules.warnings() {
                println!("{warning}");
            }
            println!("{} rules valid ({} warnings)", rules.rules().len(), rules.warnings().len());
            let failed = args.strict && !rules.warnings().is_empty();
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        Err(error) => {
            for diagnostic in &error.diagnostics {
                println!("{diagnostic}");
            }
            let errors = error.diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
            println!("{errors} errors");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    rules: RuleArgs,
    /// Evaluate the rule pack embedded in the binary.
    #[arg(long)]
    builtin: bool,
    /// Newline-delimited events: Kubernetes audit Events or Falco JSON, detected per line.
    #[arg(long, value_name = "FILE")]
    events: PathBuf,
    /// Treat every line as this dataset (k8s.audit, falco) instead of detecting it.
    #[arg(long, value_name = "NAME")]
    dataset: Option<String>,
}

pub fn eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.builtin || !args.rules.rules.is_empty(),
        "give at least one rule source: --rules DIR or --builtin"
    );
    let dataset = match &args.dataset {
        None => None,
        Some(name) => Some(
            Dataset::from_name(name)
                .ok_or_else(|| anyhow::anyhow!("--dataset {name:?}: expected k8s.audit or falco"))?,
        ),
    };
    let rules = RuleSet::load(&rule_sources(args.builtin, &args.rules.rules))?;
    for warning in rules.warnings() {
        eprintln!("{warning}");
    }
    let bytes = read_input(&args.events)?;
    let ids = EventIdGenerator::new();
    let (events, errors) = normalize_lines(&bytes, dataset, &ids, &k8s_audit::Context::default());
    let line_of: std::collections::HashMap<String, usize> =
        events.iter().map(|(line, event)| (event.id.to_string(), *line)).collect();
    let mut correlator = rules.correlator();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (line, event) in &events {
        for found in rules.evaluate_correlated(&mut correlator, event) {
            if found.event_ids.is_empty() {
                writeln!(out, "{}", json!({ "rule_id": found.rule.id, "line": line }))?;
            } else {
                let mut lines: Vec<usize> =
                    found.event_ids.iter().filter_map(|id| line_of.get(id).copied()).collect();
                lines.sort_unstable();
                lines.dedup();
                writeln!(out, "{}", json!({ "rule_id": found.rule.id, "lines": lines }))?;
            }
        }
    }
    for error in &errors {
        eprintln!("{}:{}: {}", args.events.display(), error.line, error.reason);
    }
    Ok(if errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Rule directories or files; each rule file NAME.yml is tested with NAME.tests.yaml beside it.
    #[arg(required = true, value_name = "DIR")]
    paths: Vec<PathBuf>,
    /// Also write the results as JUnit XML to this file.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

/// The outcome of one fixture case.
struct CaseResult {
    fixture: PathBuf,
    line: usize,
    name: String,
    /// `None`: passed.
    failure: Option<String>,
}

pub fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let sources: Vec<RuleSource> = args.paths.iter().cloned().map(RuleSource::Path).collect();
    let rules = match RuleSet::load(&sources) {
        Ok(rules) => rules,
        Err(error) => {
            for diagnostic in &error.diagnostics {
                println!("{diagnostic}");
            }
            println!("the rules do not load; no fixture was run");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut by_file: BTreeMap<PathBuf, Vec<Arc<RuleInfo>>> = BTreeMap::new();
    for rule in rules.rules() {
        by_file.entry(PathBuf::from(&rule.origin)).or_default().push(rule.clone());
    }
    let mut results = Vec::new();
    let mut problems = Vec::new();
    let mut untested = 0;
    for (rule_file, file_rules) in &by_file {
        let Some(fixture_path) = fixture_path_for(rule_file) else {
            println!(
                "{}:1: warning: no fixtures (expected {})",
                rule_file.display(),
                fixture_name(rule_file)
            );
            untested += file_rules.len();
            continue;
        };
        match read_fixtures(&fixture_path, rule_file) {
            Ok(fixtures) => results.extend(run_fixtures(&rules, file_rules, &fixtures)),
            Err(diagnostic) => problems.push(diagnostic.to_string()),
        }
    }
    for problem in &problems {
        println!("{problem}");
    }
    for result in &results {
        match &result.failure {
            None => println!("ok      {}: {}", result.fixture.display(), result.name),
            Some(reason) => {
                println!("FAILED  {}:{}: {}: {reason}", result.fixture.display(), result.line, result.name);
            }
        }
    }
    let failed = results.iter().filter(|result| result.failure.is_some()).count();
    println!(
        "{} passed, {failed} failed, {} rules without fixtures, {} fixture files unreadable",
        results.len() - failed,
        untested,
        problems.len()
    );
    if let Some(path) = &args.junit {
        std::fs::write(path, junit_xml(&results))
            .with_context(|| format!("cannot write the JUnit report to {}", path.display()))?;
    }
    Ok(if failed == 0 && problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn fixture_name(rule_file: &Path) -> String {
    let stem = rule_file.file_stem().and_then(|stem| stem.to_str()).unwrap_or("RULE");
    format!("{stem}.tests.yaml")
}

fn run_fixtures(rules: &RuleSet, file_rules: &[Arc<RuleInfo>], fixtures: &FixtureFile) -> Vec<CaseResult> {
    let ids = EventIdGenerator::new();
    let mut results = Vec::new();
    for case in &fixtures.cases {
        let events: Result<Vec<Event>, String> =
            case.events.iter().map(|original| normalize_value(original.clone(), &ids)).collect();
        let failure = match events {
            Err(reason) => Some(format!("an event cannot be read: {reason}")),
            Ok(events) => {
                // Each case starts with empty correlation windows.
                let mut correlator = rules.correlator();
                let fired: BTreeSet<String> = events
                    .iter()
                    .flat_map(|event| rules.evaluate_correlated(&mut correlator, event))
                    .map(|found| found.rule.id.clone())
                    .collect();
                let of_file = |rule: &&Arc<RuleInfo>| fired.contains(&rule.id);
                match case.expect {
                    Expectation::Match => {
                        let missing: Vec<&str> = file_rules
                            .iter()
                            .filter(|rule| !of_file(rule))
                            .map(|rule| rule.title.as_str())
                            .collect();
                        (!missing.is_empty())
                            .then(|| format!("expected a match, but {missing:?} did not fire"))
                    }
                    Expectation::NoMatch => {
                        let fired_here: Vec<&str> =
                            file_rules.iter().filter(of_file).map(|rule| rule.title.as_str()).collect();
                        (!fired_here.is_empty())
                            .then(|| format!("expected no match, but {fired_here:?} fired"))
                    }
                }
            }
        };
        results.push(CaseResult {
            fixture: fixtures.path.clone(),
            line: case.line,
            name: case.name.clone(),
            failure,
        });
    }
    results
}

/// A fixture event as its source sends it, normalized like ingested events.
fn normalize_value(value: Value, ids: &EventIdGenerator) -> Result<Event, String> {
    match detect(&value) {
        Some(Dataset::K8sAudit) => {
            k8s_audit::normalize(ids.next(), value, &k8s_audit::Context::default()).map_err(|e| e.to_string())
        }
        Some(Dataset::Falco) => falco::normalize(ids.next(), value).map_err(|e| e.to_string()),
        None => Err("neither a Kubernetes audit event nor a Falco alert".into()),
    }
}

fn junit_xml(results: &[CaseResult]) -> String {
    let mut suites: BTreeMap<&Path, Vec<&CaseResult>> = BTreeMap::new();
    for result in results {
        suites.entry(result.fixture.as_path()).or_default().push(result);
    }
    let failures = results.iter().filter(|result| result.failure.is_some()).count();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"vigil rules test\" tests=\"{}\" failures=\"{failures}\">",
        results.len()
    );
    for (fixture, cases) in suites {
        let suite_failures = cases.iter().filter(|case| case.failure.is_some()).count();
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{suite_failures}\">",
            escape_xml(&fixture.display().to_string()),
            cases.len()
        );
        for case in cases {
            let name = escape_xml(&case.name);
            let classname = escape_xml(&fixture.display().to_string());
            match &case.failure {
                None => {
                    let _ = writeln!(xml, "    <testcase classname=\"{classname}\" name=\"{name}\"/>");
                }
                Some(reason) => {
                    let _ = writeln!(xml, "    <testcase classname=\"{classname}\" name=\"{name}\">");
                    let _ = writeln!(
                        xml,
                        "      <failure message=\"{}\">{}:{}</failure>",
                        escape_xml(reason),
                        escape_xml(&fixture.display().to_string()),
                        case.line
                    );
                    let _ = writeln!(xml, "    </testcase>");
                }
            }
        }
        let _ = writeln!(xml, "  </testsuite>");
    }
    xml.push_str("</testsuites>\n");
    xml
}

fn escape_xml(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            other if other.is_control() && other != '\n' && other != '\t' => {}
            other => escaped.push(other),
        }
    }
    escaped
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    #[command(flatten)]
    rules: RuleArgs,
    /// Run the rule pack embedded in the binary as well.
    #[arg(long)]
    builtin: bool,
    /// The data directory holding the history (a running server's is fine).
    #[arg(long, value_name = "DIR", default_value = "./vigil-data")]
    data_dir: PathBuf,
    /// Start of the time range: RFC 3339, now, or a span back like 15m, 2h, 7d.
    #[arg(long, value_name = "TIME")]
    from: String,
    /// End of the time range (exclusive), as --from.
    #[arg(long, value_name = "TIME", default_value = "now")]
    to: String,
}

/// What a rule would have done over the history.
#[derive(Default)]
struct BacktestTally {
    matches: u64,
}

pub fn backtest(args: BacktestArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.builtin || !args.rules.rules.is_empty(),
        "give at least one rule source: --rules DIR or --builtin"
    );
    let now = Utc::now();
    let from = parse_time_bound(&args.from, now).map_err(|message| anyhow::anyhow!("--from: {message}"))?;
    let to = parse_time_bound(&args.to, now).map_err(|message| anyhow::anyhow!("--to: {message}"))?;
    let rules = RuleSet::load_with(&rule_sources(args.builtin, &args.rules.rules), &RuleOptions::default())?;
    for warning in rules.warnings() {
        eprintln!("{warning}");
    }
    let searcher = Searcher::open_read_only(&args.data_dir)?;
    // Alerts are raised in a throw-away in-memory store with the server's
    // rules for grouping and de-duplication; the data directory is not touched.
    let store = SqliteAlertStore::open(Path::new(":memory:"))?;
    let mut tallies: BTreeMap<String, BacktestTally> = BTreeMap::new();
    let mut events_seen = 0_u64;
    // History is read oldest first, so correlation windows see the events in
    // time order, as they would have live.
    let mut correlator = rules.correlator();
    for_each_stored_event(&searcher, from, to, |events| {
        events_seen += events.len() as u64;
        let mut matches: Vec<(RuleMatch, &Event)> = Vec::new();
        for event in events {
            for found in rules.evaluate_correlated(&mut correlator, event) {
                tallies.entry(found.rule.id.clone()).or_default().matches += 1;
                matches.push((found, event));
            }
        }
        if !matches.is_empty() {
            store.record(&matches, RecordContext { checkpoint: "backtest", rules_commit: None })?;
        }
        Ok(())
    })?;
    let alerts = store.list(None, usize::MAX / 2)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for rule in rules.rules() {
        let rule_alerts: Vec<_> = alerts.iter().filter(|alert| alert.rule.id == rule.id).collect();
        let matches = tallies.get(&rule.id).map_or(0, |tally| tally.matches);
        let entities: Vec<&str> = rule_alerts.iter().map(|alert| alert.group.as_str()).collect();
        let line = json!({
            "rule_id": rule.id,
            "title": rule.title,
            "level": rule.level,
            "matches": matches,
            "alerts": rule_alerts.len(),
            "entities": entities,
        });
        writeln!(out, "{line}")?;
    }
    eprintln!("{events_seen} events from {from} to {to}; {} alerts would be raised", alerts.len());
    Ok(ExitCode::SUCCESS)
}

/// Feeds every stored event of `[from, to)` to `visit`, a page at a time,
/// oldest first, following the search's stable cursor.
fn for_each_stored_event(
    searcher: &Searcher,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    mut visit: impl FnMut(&[Event]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut cursor = None;
    loop {
        let request = SearchRequest {
            from: Some(from),
            to: Some(to),
            limit: vigil_index::MAX_LIMIT,
            order: vigil_index::SortOrder::OldestFirst,
            cursor,
            ..SearchRequest::default()
        };
        let page = searcher.search(&request)?;
        if !page.hits.is_empty() {
            visit(&page.hits)?;
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}
