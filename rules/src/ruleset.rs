//! Loading Sigma rules from the built-in pack and from directories, routing
//! each rule to the datasets its logsource fits, and matching events.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rsigma_eval::Engine;
use rsigma_parser::{LogSource, SigmaRule};
use serde::Serialize;
use vigil_schema::Event;

use crate::event::SigmaEvent;

/// The rules embedded in the binary: Vigil's own Kubernetes detections.
pub const BUILTIN_PACK: &[(&str, &str)] = &[
    ("k8s_anonymous_allowed.yml", include_str!("../pack/k8s_anonymous_allowed.yml")),
    ("k8s_cluster_admin_binding.yml", include_str!("../pack/k8s_cluster_admin_binding.yml")),
    ("k8s_exec_into_pod.yml", include_str!("../pack/k8s_exec_into_pod.yml")),
    ("k8s_privileged_pod.yml", include_str!("../pack/k8s_privileged_pod.yml")),
    ("k8s_secret_read_by_user.yml", include_str!("../pack/k8s_secret_read_by_user.yml")),
];

/// Where rules come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSource {
    /// The pack embedded in the binary.
    Builtin,
    /// A directory (searched recursively for `*.yml` / `*.yaml`) or one file.
    Path(PathBuf),
}

/// How a logsource maps to Vigil's datasets. A rule runs on a dataset only
/// when every logsource attribute the rule sets is one the dataset has.
pub const DATASET_LOGSOURCES: &[DatasetLogsource] = &[
    DatasetLogsource {
        dataset: "k8s.audit",
        product: "kubernetes",
        service: Some("audit"),
        categories: &["application"],
    },
    DatasetLogsource { dataset: "falco", product: "falco", service: None, categories: &[] },
    DatasetLogsource {
        dataset: "k8s.container",
        product: "kubernetes",
        service: Some("container"),
        categories: &["application"],
    },
    DatasetLogsource { dataset: "syslog", product: "linux", service: Some("syslog"), categories: &[] },
];

/// The logsource a dataset answers to.
#[derive(Debug, Clone, Copy)]
pub struct DatasetLogsource {
    pub dataset: &'static str,
    pub product: &'static str,
    /// `None`: any service of the product.
    pub service: Option<&'static str>,
    pub categories: &'static [&'static str],
}

impl DatasetLogsource {
    fn fits(&self, logsource: &LogSource) -> bool {
        let product_fits = logsource.product.as_deref().is_none_or(|product| product == self.product);
        let service_fits = match (logsource.service.as_deref(), self.service) {
            (None, _) | (_, None) => true,
            (Some(wanted), Some(have)) => wanted == have,
        };
        let category_fits =
            logsource.category.as_deref().is_none_or(|category| self.categories.contains(&category));
        product_fits && service_fits && category_fits
    }
}

/// The datasets whose events a rule with this logsource is matched against.
pub fn datasets_for(logsource: &LogSource) -> Vec<&'static str> {
    DATASET_LOGSOURCES.iter().filter(|route| route.fits(logsource)).map(|route| route.dataset).collect()
}

/// What Vigil knows of a loaded rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleInfo {
    pub id: String,
    pub title: String,
    pub level: String,
    pub tags: Vec<String>,
    pub author: Option<String>,
    pub description: Option<String>,
    /// `builtin:FILE` or the path of the file it was read from.
    pub origin: String,
    /// The datasets it is matched against (empty: it never runs).
    pub datasets: Vec<&'static str>,
}

/// A problem with a rule file, located.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub origin: String,
    pub line: usize,
    pub severity: Severity,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}:{}: {severity}: {}", self.origin, self.line, self.message)
    }
}

/// A rule set that failed to load: every problem found, not just the first.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} error(s) in the rules:\n{}", self.errors().count(), self.errors().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct LoadError {
    pub diagnostics: Vec<Diagnostic>,
}

impl LoadError {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|diagnostic| diagnostic.severity == Severity::Error)
    }
}

/// A rule that matched an event.
#[derive(Debug, Clone)]
pub struct RuleMatch {
    pub rule: Arc<RuleInfo>,
    /// The selections of the rule's detection that matched.
    pub selections: Vec<String>,
}

/// Compiled rules, routed by dataset. Immutable: reloading builds a new one.
pub struct RuleSet {
    rules: Vec<Arc<RuleInfo>>,
    by_id: HashMap<String, Arc<RuleInfo>>,
    engines: HashMap<&'static str, Engine>,
    warnings: Vec<Diagnostic>,
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleSet").field("rules", &self.rules.len()).finish()
    }
}

struct RuleFile {
    origin: String,
    /// The id a rule without one gets: stable as long as the file keeps its
    /// place in the rules directory.
    fallback_id: String,
    text: String,
}

impl RuleSet {
    /// Loads and compiles rules from all sources. Any error refuses the whole
    /// set; warnings are kept in [`RuleSet::warnings`].
    pub fn load(sources: &[RuleSource]) -> Result<RuleSet, LoadError> {
        let mut diagnostics = Vec::new();
        let files = read_sources(sources, &mut diagnostics);
        let mut rules = Vec::new();
        let mut engines: HashMap<&'static str, Engine> = HashMap::new();
        let mut by_id: HashMap<String, Arc<RuleInfo>> = HashMap::new();
        for file in &files {
            for (mut rule, line) in parse_file(file, &mut diagnostics) {
                let id =
                    rule.id.clone().or_else(|| rule.name.clone()).unwrap_or_else(|| file.fallback_id.clone());
                rule.id = Some(id.clone());
                if let Some(existing) = by_id.get(&id) {
                    diagnostics.push(error(
                        file,
                        line,
                        format!("duplicate rule id {id:?} (also in {})", existing.origin),
                    ));
                    continue;
                }
                lint(&rule, file, line, &mut diagnostics);
                let datasets = datasets_for(&rule.logsource);
                if datasets.is_empty() {
                    diagnostics.push(warning(
                        file,
                        line,
                        format!(
                            "logsource {} fits no dataset Vigil ingests; the rule never runs",
                            describe_logsource(&rule.logsource)
                        ),
                    ));
                }
                let mut compiled_everywhere = true;
                for dataset in &datasets {
                    if let Err(compile_error) = engines.entry(dataset).or_default().add_rule(&rule) {
                        diagnostics.push(error(
                            file,
                            line,
                            format!("rule {:?} does not compile: {compile_error}", rule.title),
                        ));
                        compiled_everywhere = false;
                        break;
                    }
                }
                if !compiled_everywhere {
                    continue;
                }
                let info = Arc::new(RuleInfo {
                    id: id.clone(),
                    title: rule.title.clone(),
                    level: rule.level.map_or("medium", |level| level.as_str()).to_owned(),
                    tags: rule.tags.clone(),
                    author: rule.author.clone(),
                    description: rule.description.clone(),
                    origin: file.origin.clone(),
                    datasets,
                });
                by_id.insert(id, info.clone());
                rules.push(info);
            }
        }
        if diagnostics.iter().any(|diagnostic| diagnostic.severity == Severity::Error) {
            return Err(LoadError { diagnostics });
        }
        Ok(RuleSet { rules, by_id, engines, warnings: diagnostics })
    }

    /// Every loaded rule, in load order.
    pub fn rules(&self) -> &[Arc<RuleInfo>] {
        &self.rules
    }

    pub fn rule(&self, id: &str) -> Option<&Arc<RuleInfo>> {
        self.by_id.get(id)
    }

    /// Problems that did not stop the rules from loading.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// The rules that match an event, among those routed to its dataset.
    pub fn evaluate(&self, event: &Event) -> Vec<RuleMatch> {
        let Some(engine) = self.engines.get(event.dataset()) else { return Vec::new() };
        let sigma_event = SigmaEvent::new(event);
        engine
            .evaluate(&sigma_event)
            .into_iter()
            .filter_map(|result| {
                let id = result.header.rule_id.as_deref()?;
                let rule = self.by_id.get(id)?.clone();
                let selections = match &result.body {
                    rsigma_eval::ResultBody::Detection(body) => body.matched_selections.clone(),
                    _ => Vec::new(),
                };
                Some(RuleMatch { rule, selections })
            })
            .collect()
    }
}

fn read_sources(sources: &[RuleSource], diagnostics: &mut Vec<Diagnostic>) -> Vec<RuleFile> {
    let mut files = Vec::new();
    for source in sources {
        match source {
            RuleSource::Builtin => {
                for (name, text) in BUILTIN_PACK {
                    let stem = name.trim_end_matches(".yml");
                    files.push(RuleFile {
                        origin: format!("builtin:{name}"),
                        fallback_id: format!("vigil-builtin-{stem}"),
                        text: (*text).to_owned(),
                    });
                }
            }
            RuleSource::Path(path) => read_path(path, diagnostics, &mut files),
        }
    }
    files
}

fn read_path(root: &Path, diagnostics: &mut Vec<Diagnostic>, files: &mut Vec<RuleFile>) {
    let origin_of = |path: &Path| path.display().to_string();
    if !root.exists() {
        diagnostics.push(Diagnostic {
            origin: origin_of(root),
            line: 0,
            severity: Severity::Error,
            message: "no such file or directory".into(),
        });
        return;
    }
    let mut paths: Vec<PathBuf> = if root.is_file() {
        vec![root.to_owned()]
    } else {
        walkdir::WalkDir::new(root)
            .follow_links(true)
            .into_iter()
            .filter_map(|entry| match entry {
                Ok(entry) => Some(entry.into_path()),
                Err(walk_error) => {
                    diagnostics.push(Diagnostic {
                        origin: walk_error.path().map_or_else(|| origin_of(root), origin_of),
                        line: 0,
                        severity: Severity::Error,
                        message: format!("cannot read: {walk_error}"),
                    });
                    None
                }
            })
            .filter(|path| is_rule_file(path))
            .collect()
    };
    paths.sort();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let relative = path.strip_prefix(root).unwrap_or(&path);
                let fallback_id = format!("local:{}", relative.with_extension("").display());
                files.push(RuleFile { origin: origin_of(&path), fallback_id, text });
            }
            Err(read_error) => diagnostics.push(Diagnostic {
                origin: origin_of(&path),
                line: 0,
                severity: Severity::Error,
                message: format!("cannot read: {read_error}"),
            }),
        }
    }
}

fn is_rule_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("");
    (name.ends_with(".yml") || name.ends_with(".yaml")) && !name.contains(".tests.") && path.is_file()
}

/// The rules of one file, each with the line its document starts on.
fn parse_file(file: &RuleFile, diagnostics: &mut Vec<Diagnostic>) -> Vec<(SigmaRule, usize)> {
    let collection = match rsigma_parser::parse_sigma_yaml(&file.text) {
        Ok(collection) => collection,
        Err(parse_error) => {
            let message = parse_error.to_string();
            diagnostics.push(error(file, line_in_message(&message).unwrap_or(1), message));
            return Vec::new();
        }
    };
    for message in &collection.errors {
        diagnostics.push(error(file, line_in_message(message).unwrap_or(1), message.clone()));
    }
    let document_lines = document_start_lines(&file.text);
    for correlation in &collection.correlations {
        diagnostics.push(warning(
            file,
            1,
            format!(
                "correlation rule {:?} is not evaluated yet (correlations come in a later release)",
                correlation.title
            ),
        ));
    }
    for filter in &collection.filters {
        diagnostics.push(warning(file, 1, format!("filter {:?} is not applied yet", filter.title)));
    }
    let multiple = collection.rules.len() > 1;
    collection
        .rules
        .into_iter()
        .enumerate()
        .map(|(position, mut rule)| {
            if multiple && rule.id.is_none() && rule.name.is_none() {
                rule.name = Some(format!("{}#{}", file.fallback_id, position + 1));
            }
            let line = find_key_line(&file.text, "detection", position, &document_lines);
            (rule, line)
        })
        .collect()
}

fn lint(rule: &SigmaRule, file: &RuleFile, line: usize, diagnostics: &mut Vec<Diagnostic>) {
    if rule.id.is_none() {
        diagnostics.push(warning(
            file,
            line,
            format!("rule {:?} has no id; it is known as {:?}", rule.title, file.fallback_id),
        ));
    }
    if rule.level.is_none() {
        diagnostics.push(warning(
            file,
            line,
            format!("rule {:?} has no level; medium is assumed", rule.title),
        ));
    }
}

fn describe_logsource(logsource: &LogSource) -> String {
    let parts: Vec<String> =
        [("product", &logsource.product), ("service", &logsource.service), ("category", &logsource.category)]
            .into_iter()
            .filter_map(|(key, value)| value.as_ref().map(|value| format!("{key}: {value}")))
            .collect();
    format!("{{{}}}", parts.join(", "))
}

fn error(file: &RuleFile, line: usize, message: String) -> Diagnostic {
    Diagnostic { origin: file.origin.clone(), line, severity: Severity::Error, message }
}

fn warning(file: &RuleFile, line: usize, message: String) -> Diagnostic {
    Diagnostic { origin: file.origin.clone(), line, severity: Severity::Warning, message }
}

/// The 1-based lines on which each YAML document of a file starts.
fn document_start_lines(text: &str) -> Vec<usize> {
    let mut starts = vec![1];
    for (number, line) in text.lines().enumerate() {
        if line.trim_end() == "---" && number > 0 {
            starts.push(number + 2);
        }
    }
    starts
}

/// The line of a top-level key in the n-th document, or the document's first line.
fn find_key_line(text: &str, key: &str, document: usize, document_lines: &[usize]) -> usize {
    let start = document_lines.get(document).copied().unwrap_or(1);
    let end = document_lines.get(document + 1).copied().unwrap_or(usize::MAX);
    text.lines()
        .enumerate()
        .map(|(number, line)| (number + 1, line))
        .filter(|(number, _)| *number >= start && *number < end)
        .find(|(_, line)| line.starts_with(key) && line[key.len()..].trim_start().starts_with(':'))
        .map_or(start, |(number, _)| number)
}

/// A "line N" mentioned in a parser's message.
fn line_in_message(message: &str) -> Option<usize> {
    let at = message.find("line ")?;
    let digits: String = message[at + 5..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}
