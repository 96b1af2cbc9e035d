//! Loading Sigma rules from the built-in pack and from directories, routing
//! each rule to the datasets its logsource fits, and matching events.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rsigma_eval::pipeline::{Pipeline, Transformation, TransformationItem};
use rsigma_eval::{
    CorrelationAction, CorrelationConfig, CorrelationEngine, CorrelationEventMode, Engine, MatchDetailLevel,
};
use rsigma_parser::{CorrelationRule, FilterRule, LogSource, SigmaRule};
use serde::Serialize;
use vigil_schema::Event;

use crate::event::SigmaEvent;
use crate::transform;

/// The rules embedded in the binary: Vigil's own Kubernetes detections.
pub const BUILTIN_PACK: &[(&str, &str)] = &[
    ("falco_critical.yml", include_str!("../pack/falco_critical.yml")),
    ("falco_error.yml", include_str!("../pack/falco_error.yml")),
    ("k8s_admission_webhook_changed.yml", include_str!("../pack/k8s_admission_webhook_changed.yml")),
    ("k8s_admission_webhook_deleted.yml", include_str!("../pack/k8s_admission_webhook_deleted.yml")),
    ("k8s_anonymous_allowed.yml", include_str!("../pack/k8s_anonymous_allowed.yml")),
    ("k8s_anonymous_binding.yml", include_str!("../pack/k8s_anonymous_binding.yml")),
    ("k8s_attack_tool_image.yml", include_str!("../pack/k8s_attack_tool_image.yml")),
    ("k8s_attack_tool_user_agent.yml", include_str!("../pack/k8s_attack_tool_user_agent.yml")),
    ("k8s_cluster_admin_binding.yml", include_str!("../pack/k8s_cluster_admin_binding.yml")),
    (
        "k8s_configmap_read_in_system_namespace.yml",
        include_str!("../pack/k8s_configmap_read_in_system_namespace.yml"),
    ),
    ("k8s_cronjob_in_system_namespace.yml", include_str!("../pack/k8s_cronjob_in_system_namespace.yml")),
    ("k8s_cryptominer_image.yml", include_str!("../pack/k8s_cryptominer_image.yml")),
    ("k8s_csr_approved.yml", include_str!("../pack/k8s_csr_approved.yml")),
    ("k8s_daemonset_in_system_namespace.yml", include_str!("../pack/k8s_daemonset_in_system_namespace.yml")),
    ("k8s_dangerous_capability_pod.yml", include_str!("../pack/k8s_dangerous_capability_pod.yml")),
    ("k8s_ephemeral_container.yml", include_str!("../pack/k8s_ephemeral_container.yml")),
    (
        "k8s_escalate_bind_impersonate_granted.yml",
        include_str!("../pack/k8s_escalate_bind_impersonate_granted.yml"),
    ),
    ("k8s_events_deleted.yml", include_str!("../pack/k8s_events_deleted.yml")),
    ("k8s_exec_into_pod.yml", include_str!("../pack/k8s_exec_into_pod.yml")),
    ("k8s_hostpath_pod.yml", include_str!("../pack/k8s_hostpath_pod.yml")),
    ("k8s_impersonation_used.yml", include_str!("../pack/k8s_impersonation_used.yml")),
    ("k8s_kubelet_run_via_proxy.yml", include_str!("../pack/k8s_kubelet_run_via_proxy.yml")),
    ("k8s_namespace_deleted.yml", include_str!("../pack/k8s_namespace_deleted.yml")),
    (
        "k8s_namespace_privileged_pod_security.yml",
        include_str!("../pack/k8s_namespace_privileged_pod_security.yml"),
    ),
    ("k8s_network_policy_deleted.yml", include_str!("../pack/k8s_network_policy_deleted.yml")),
    ("k8s_node_proxy.yml", include_str!("../pack/k8s_node_proxy.yml")),
    ("k8s_permission_enumeration.yml", include_str!("../pack/k8s_permission_enumeration.yml")),
    (
        "k8s_pod_in_system_namespace_by_user.yml",
        include_str!("../pack/k8s_pod_in_system_namespace_by_user.yml"),
    ),
    ("k8s_port_forward.yml", include_str!("../pack/k8s_port_forward.yml")),
    ("k8s_privileged_pod.yml", include_str!("../pack/k8s_privileged_pod.yml")),
    ("k8s_request_forbidden.yml", include_str!("../pack/k8s_request_forbidden.yml")),
    ("k8s_request_forbidden_burst.yml", include_str!("../pack/k8s_request_forbidden_burst.yml")),
    ("k8s_request_unauthenticated.yml", include_str!("../pack/k8s_request_unauthenticated.yml")),
    ("k8s_secret_read_by_user.yml", include_str!("../pack/k8s_secret_read_by_user.yml")),
    ("k8s_secrets_listed_cluster_wide.yml", include_str!("../pack/k8s_secrets_listed_cluster_wide.yml")),
    ("k8s_security_tool_config_changed.yml", include_str!("../pack/k8s_security_tool_config_changed.yml")),
    (
        "k8s_security_tool_workload_removed.yml",
        include_str!("../pack/k8s_security_tool_workload_removed.yml"),
    ),
    ("k8s_sensitive_hostpath_pod.yml", include_str!("../pack/k8s_sensitive_hostpath_pod.yml")),
    ("k8s_service_external_ips.yml", include_str!("../pack/k8s_service_external_ips.yml")),
    (
        "k8s_serviceaccount_in_system_namespace.yml",
        include_str!("../pack/k8s_serviceaccount_in_system_namespace.yml"),
    ),
    (
        "k8s_serviceaccount_token_requested.yml",
        include_str!("../pack/k8s_serviceaccount_token_requested.yml"),
    ),
    (
        "k8s_serviceaccount_token_used_outside_cluster.yml",
        include_str!("../pack/k8s_serviceaccount_token_used_outside_cluster.yml"),
    ),
    ("k8s_wildcard_role.yml", include_str!("../pack/k8s_wildcard_role.yml")),
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
    /// The fields whose values make an alert's group (`vigil-group-by`);
    /// empty: [`DEFAULT_GROUP_BY`].
    pub group_by: Vec<String>,
    /// After an alert of this rule and group is closed, matches within this
    /// many seconds of its last match are added to it instead of opening a
    /// new alert (`vigil-suppress`, e.g. `30m`).
    pub suppress_seconds: Option<u64>,
}

/// The default group of an alert: the acting identity and the object, those
/// of these fields the event has.
pub const DEFAULT_GROUP_BY: &[&str] = &[
    "user.name",
    "orchestrator.namespace",
    "orchestrator.resource.type",
    "orchestrator.resource.name",
    "kubernetes.namespace",
    "kubernetes.pod.name",
    "host.name",
];

/// Reads the alerting attributes of a rule: `vigil-group-by` (a field name
/// or a list of them) and `vigil-suppress` (`<n>s|m|h|d`).
fn alerting_attributes(rule: &SigmaRule) -> Result<(Vec<String>, Option<u64>), String> {
    let attribute =
        |name: &str| rule.custom_attributes.get(name).and_then(|value| serde_json::to_value(value).ok());
    let group_by = match attribute("vigil-group-by") {
        None => Vec::new(),
        Some(serde_json::Value::String(field)) => vec![field],
        Some(serde_json::Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                serde_json::Value::String(field) => Ok(field),
                other => Err(format!("vigil-group-by: {other} is not a field name")),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("vigil-group-by: {other} is not a field name or a list of them")),
    };
    let suppress_seconds = match attribute("vigil-suppress") {
        None => None,
        Some(serde_json::Value::String(text)) => {
            Some(parse_duration_seconds(&text).ok_or_else(|| {
                format!("vigil-suppress: {text:?} is not a duration like 30s, 15m, 2h or 1d")
            })?)
        }
        Some(other) => return Err(format!("vigil-suppress: {other} is not a duration like 30m")),
    };
    Ok((group_by, suppress_seconds))
}

fn parse_duration_seconds(text: &str) -> Option<u64> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let number: u64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    number.checked_mul(scale)
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
    /// Why it fired: the event fields and values that satisfied them (for a
    /// correlation: its group-by fields and their values).
    pub fields: Vec<MatchedField>,
    /// For a correlation: the ids of the events that made it fire.
    pub event_ids: Vec<String>,
}

/// One field of an event that satisfied a rule's selection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchedField {
    /// The selection it belongs to, when known.
    pub selection: Option<String>,
    /// The event field (`keyword` for a keyword match).
    pub field: String,
    pub value: serde_json::Value,
}

/// Compiled rules, routed by dataset. Immutable: reloading builds a new one.
pub struct RuleSet {
    rules: Vec<Arc<RuleInfo>>,
    by_id: HashMap<String, Arc<RuleInfo>>,
    engines: HashMap<&'static str, Engine>,
    warnings: Vec<Diagnostic>,
    /// Correlation rules, their references resolved to rule ids.
    correlations: Vec<CorrelationRule>,
}

/// The correlation state of one stream of events: counts and windows per
/// correlation and group. Made by [`RuleSet::correlator`]; a reload starts a
/// new one.
pub struct Correlator {
    engine: CorrelationEngine,
}

fn correlation_config() -> CorrelationConfig {
    CorrelationConfig {
        timestamp_fields: vec![vigil_schema::fields::TIMESTAMP.to_owned()],
        correlation_event_mode: CorrelationEventMode::Refs,
        max_correlation_events: 100,
        // Rules only correlations use (`generate: false`, the default) raise nothing on their own.
        emit_detections: false,
        // After firing, a group starts from scratch: one alert per burst, not one per extra event.
        action_on_match: CorrelationAction::Reset,
        ..CorrelationConfig::default()
    }
}

/// Points a correlation's references at rule ids: a reference to a rule's
/// `name` becomes its id (rsigma only follows ids for detections it did not
/// compile itself). Returns the datasets of the rules it references.
fn resolve_correlation(
    correlation: &mut CorrelationRule,
    ids_by_name: &HashMap<String, String>,
    by_id: &HashMap<String, Arc<RuleInfo>>,
    rule_ids: &HashMap<String, String>,
) -> Result<Vec<&'static str>, String> {
    let mut datasets = Vec::new();
    for reference in &mut correlation.rules {
        if let Some(id) = ids_by_name.get(reference.as_str()) {
            *reference = id.clone();
        }
        match by_id.get(reference.as_str()) {
            Some(rule) => datasets.extend(rule.datasets.iter().copied()),
            None if rule_ids.contains_key(reference.as_str()) => {
                return Err(format!("references rule {reference:?}, which did not load"));
            }
            None => return Err(format!("references {reference:?}, which is no loaded rule's id or name")),
        }
    }
    datasets.sort_unstable();
    datasets.dedup();
    Ok(datasets)
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

/// How rules are adapted to Vigil's events before they are compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOptions {
    /// A rule's field name → the event field names it stands for (an event
    /// matches if any of them matches). Applied to every rule.
    pub field_mapping: BTreeMap<String, Vec<String>>,
    /// Values of the `%name%` placeholders used with the `expand` modifier.
    pub placeholders: BTreeMap<String, Vec<String>>,
    /// Whether [`K8S_AUDIT_FIELD_MAPPING`] applies to rules on `k8s.audit`.
    pub kubernetes_mapping: KubernetesMapping,
}

/// Whether Vigil's mapping for SigmaHQ's Kubernetes audit rules is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubernetesMapping {
    Applied,
    Off,
}

impl Default for RuleOptions {
    fn default() -> RuleOptions {
        RuleOptions {
            field_mapping: BTreeMap::new(),
            placeholders: BTreeMap::new(),
            kubernetes_mapping: KubernetesMapping::Applied,
        }
    }
}

/// The field names some SigmaHQ Kubernetes audit rules use that real
/// `audit.k8s.io/v1` events do not have, and where real events carry them.
/// Pod specs are looked for in pods, in workload templates (Deployments,
/// DaemonSets, StatefulSets, ReplicaSets, Jobs) and in CronJob templates.
pub const K8S_AUDIT_FIELD_MAPPING: &[(&str, &[&str])] = &[
    ("apiGroup", &["objectRef.apiGroup"]),
    (
        "hostPath",
        &[
            "requestObject.spec.volumes.hostPath.path",
            "requestObject.spec.template.spec.volumes.hostPath.path",
            "requestObject.spec.jobTemplate.spec.template.spec.volumes.hostPath.path",
        ],
    ),
    (
        "capabilities",
        &[
            "requestObject.spec.containers.securityContext.capabilities.add",
            "requestObject.spec.initContainers.securityContext.capabilities.add",
            "requestObject.spec.ephemeralContainers.securityContext.capabilities.add",
            "requestObject.spec.template.spec.containers.securityContext.capabilities.add",
            "requestObject.spec.template.spec.initContainers.securityContext.capabilities.add",
            "requestObject.spec.jobTemplate.spec.template.spec.containers.securityContext.capabilities.add",
        ],
    ),
];

fn pipeline_for(dataset: &str, options: &RuleOptions) -> Pipeline {
    let mut mapping: HashMap<String, Vec<String>> = HashMap::new();
    if dataset == "k8s.audit" && options.kubernetes_mapping == KubernetesMapping::Applied {
        for (name, targets) in K8S_AUDIT_FIELD_MAPPING {
            mapping.insert((*name).to_owned(), targets.iter().map(|target| (*target).to_owned()).collect());
        }
    }
    for (name, targets) in &options.field_mapping {
        mapping.insert(name.clone(), targets.clone());
    }
    let item = |transformation| TransformationItem {
        id: None,
        transformation,
        rule_conditions: Vec::new(),
        rule_cond_expr: None,
        detection_item_conditions: Vec::new(),
        field_name_conditions: Vec::new(),
        field_name_cond_not: false,
    };
    Pipeline {
        name: format!("vigil-{dataset}"),
        priority: 0,
        vars: options.placeholders.iter().map(|(name, values)| (name.clone(), values.clone())).collect(),
        transformations: vec![
            item(Transformation::ValuePlaceholders),
            item(Transformation::FieldNameMapping { mapping }),
        ],
        finalizers: Vec::new(),
        source_refs: Vec::new(),
    }
}

/// The engine key of rules that fit no dataset: compiled, then dropped.
const UNROUTED: &str = "";

/// A parsed rule waiting to be compiled.
struct ParsedRule {
    rule: SigmaRule,
    file: usize,
    line: usize,
}

impl RuleSet {
    /// Loads and compiles rules from all sources with the default
    /// [`RuleOptions`]. Any error refuses the whole set; warnings are kept in
    /// [`RuleSet::warnings`].
    pub fn load(sources: &[RuleSource]) -> Result<RuleSet, LoadError> {
        RuleSet::load_with(sources, &RuleOptions::default())
    }

    /// Loads and compiles rules from all sources: filters are applied to the
    /// rules they name, then every rule is compiled once per dataset its
    /// logsource fits, through the field mapping and placeholders of
    /// `options`. Any error refuses the whole set.
    pub fn load_with(sources: &[RuleSource], options: &RuleOptions) -> Result<RuleSet, LoadError> {
        let (rules, diagnostics) = RuleSet::build(sources, options);
        if diagnostics.iter().any(|diagnostic| diagnostic.severity == Severity::Error) {
            return Err(LoadError { diagnostics });
        }
        Ok(rules)
    }

    /// Loads what can be loaded: a rule with an error is left out and its
    /// error is returned with the warnings. For tools that survey a corpus
    /// (conformance tests, benchmarks); the server uses [`RuleSet::load_with`].
    pub fn load_lenient(sources: &[RuleSource], options: &RuleOptions) -> (RuleSet, Vec<Diagnostic>) {
        RuleSet::build(sources, options)
    }

    fn build(sources: &[RuleSource], options: &RuleOptions) -> (RuleSet, Vec<Diagnostic>) {
        let mut diagnostics = Vec::new();
        let files = read_sources(sources, &mut diagnostics);
        let mut parsed: Vec<ParsedRule> = Vec::new();
        let mut filters: Vec<(FilterRule, usize, usize)> = Vec::new();
        let mut correlations: Vec<(CorrelationRule, usize, usize)> = Vec::new();
        let mut seen_ids: HashMap<String, String> = HashMap::new();
        for (file_index, file) in files.iter().enumerate() {
            let contents = parse_file(file, &mut diagnostics);
            for (filter, line) in contents.filters {
                filters.push((filter, file_index, line));
            }
            for (position, (correlation, line)) in contents.correlations.into_iter().enumerate() {
                let mut correlation = correlation;
                if correlation.id.is_none() && correlation.name.is_none() {
                    correlation.name = Some(format!("{}#correlation{}", file.fallback_id, position + 1));
                }
                correlations.push((correlation, file_index, line));
            }
            for (mut rule, line) in contents.rules {
                let id =
                    rule.id.clone().or_else(|| rule.name.clone()).unwrap_or_else(|| file.fallback_id.clone());
                rule.id = Some(id.clone());
                if let Some(existing) = seen_ids.get(&id) {
                    diagnostics.push(error(
                        file,
                        line,
                        format!("duplicate rule id {id:?} (also in {existing})"),
                    ));
                    continue;
                }
                seen_ids.insert(id, file.origin.clone());
                lint(&rule, file, line, &mut diagnostics);
                parsed.push(ParsedRule { rule, file: file_index, line });
            }
        }
        for (filter_number, (filter, file_index, line)) in filters.iter().enumerate() {
            let mut applied = 0;
            for parsed_rule in &mut parsed {
                if transform::filter_targets(filter, &parsed_rule.rule, &[]) {
                    transform::apply_filter(&mut parsed_rule.rule, filter, filter_number);
                    applied += 1;
                }
            }
            if applied == 0 {
                diagnostics.push(warning(
                    &files[*file_index],
                    *line,
                    format!("filter {:?} applies to no loaded rule", filter.title),
                ));
            }
        }
        // A rule's name, for correlations that reference it by name.
        let ids_by_name: HashMap<String, String> = parsed
            .iter()
            .filter_map(|parsed_rule| Some((parsed_rule.rule.name.clone()?, parsed_rule.rule.id.clone()?)))
            .collect();
        let mut rules = Vec::new();
        let mut engines: HashMap<&'static str, Engine> = HashMap::new();
        let mut by_id: HashMap<String, Arc<RuleInfo>> = HashMap::new();
        for ParsedRule { mut rule, file, line } in parsed {
            let file = &files[file];
            if let Err(message) = transform::fix_base64offset(&mut rule) {
                diagnostics.push(error(file, line, format!("rule {:?}: {message}", rule.title)));
                continue;
            }
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
            lint_fields(&rule, &datasets, options, file, line, &mut diagnostics);
            // A rule no dataset takes is still compiled, into an engine that
            // is dropped, so that its errors are reported.
            let compile_targets = if datasets.is_empty() { vec![UNROUTED] } else { datasets.clone() };
            let mut compiled_everywhere = true;
            for dataset in &compile_targets {
                let engine = engines.entry(dataset).or_insert_with(|| new_engine(dataset, options));
                if let Err(compile_error) = engine.add_rule(&rule) {
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
            let (group_by, suppress_seconds) = match alerting_attributes(&rule) {
                Ok(attributes) => attributes,
                Err(message) => {
                    let key = message.split(':').next().unwrap_or_default();
                    let key_line = file
                        .text
                        .lines()
                        .position(|text| text.starts_with(key))
                        .map_or(line, |index| index + 1);
                    diagnostics.push(error(file, key_line, format!("rule {:?}: {message}", rule.title)));
                    continue;
                }
            };
            let id = rule.id.clone().unwrap_or_default();
            let info = Arc::new(RuleInfo {
                id: id.clone(),
                title: rule.title.clone(),
                level: rule.level.map_or("medium", |level| level.as_str()).to_owned(),
                tags: rule.tags.clone(),
                author: rule.author.clone(),
                description: rule.description.clone(),
                origin: file.origin.clone(),
                datasets,
                group_by,
                suppress_seconds,
            });
            by_id.insert(id, info.clone());
            rules.push(info);
        }
        engines.remove(UNROUTED);
        let mut compiled_correlations = Vec::new();
        for (mut correlation, file_index, line) in correlations {
            let file = &files[file_index];
            match resolve_correlation(&mut correlation, &ids_by_name, &by_id, &seen_ids) {
                Ok(datasets) => {
                    let id = correlation.id.clone().or_else(|| correlation.name.clone()).unwrap_or_default();
                    if let Err(compile_error) =
                        CorrelationEngine::new(correlation_config()).add_correlation(&correlation)
                    {
                        diagnostics.push(error(
                            file,
                            line,
                            format!("correlation {:?} does not compile: {compile_error}", correlation.title),
                        ));
                        continue;
                    }
                    if by_id.contains_key(&id) {
                        diagnostics.push(error(file, line, format!("duplicate rule id {id:?}")));
                        continue;
                    }
                    let info = Arc::new(RuleInfo {
                        id: id.clone(),
                        title: correlation.title.clone(),
                        level: correlation.level.map_or("medium", |level| level.as_str()).to_owned(),
                        tags: correlation.tags.clone(),
                        author: correlation.author.clone(),
                        description: correlation.description.clone(),
                        origin: file.origin.clone(),
                        datasets,
                        group_by: correlation.group_by.clone(),
                        suppress_seconds: None,
                    });
                    by_id.insert(id, info.clone());
                    rules.push(info);
                    compiled_correlations.push(correlation);
                }
                Err(message) => diagnostics.push(error(
                    file,
                    line,
                    format!("correlation {:?}: {message}", correlation.title),
                )),
            }
        }
        diagnostics.sort_by(|left, right| (&left.origin, left.line).cmp(&(&right.origin, right.line)));
        let warnings = diagnostics
            .iter()
            .filter(|diagnostic| diagnostic.severity == Severity::Warning)
            .cloned()
            .collect();
        (RuleSet { rules, by_id, engines, warnings, correlations: compiled_correlations }, diagnostics)
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
    /// Correlations are not evaluated: see [`RuleSet::evaluate_correlated`].
    pub fn evaluate(&self, event: &Event) -> Vec<RuleMatch> {
        let Some(engine) = self.engines.get(event.dataset()) else { return Vec::new() };
        let sigma_event = SigmaEvent::new(event);
        engine.evaluate(&sigma_event).iter().filter_map(|result| self.rule_match(result)).collect()
    }

    /// How many correlation rules the set has.
    pub fn correlation_count(&self) -> usize {
        self.correlations.len()
    }

    /// A fresh correlation state for these rules.
    pub fn correlator(&self) -> Correlator {
        let mut engine = CorrelationEngine::new(correlation_config());
        for correlation in &self.correlations {
            if let Err(error) = engine.add_correlation(correlation) {
                // Each correlation compiled once already, at load.
                tracing::error!(%error, correlation = %correlation.title, "correlation does not compile");
            }
        }
        Correlator { engine }
    }

    /// Like [`RuleSet::evaluate`], and feeds the matches to the correlations:
    /// answers the correlations that fire on this event too, and leaves out
    /// the matches of rules only correlations use (`generate: false`).
    pub fn evaluate_correlated(&self, correlator: &mut Correlator, event: &Event) -> Vec<RuleMatch> {
        if self.correlations.is_empty() {
            return self.evaluate(event);
        }
        let sigma_event = SigmaEvent::new(event);
        let detections = match self.engines.get(event.dataset()) {
            Some(engine) => engine.evaluate(&sigma_event),
            None => Vec::new(),
        };
        let results = correlator.engine.correlate_detections(&sigma_event, detections);
        results.iter().filter_map(|result| self.rule_match(result)).collect()
    }

    fn rule_match(&self, result: &rsigma_eval::EvaluationResult) -> Option<RuleMatch> {
        let id = result.header.rule_id.as_deref()?;
        let rule = self.by_id.get(id)?.clone();
        let found = match &result.body {
            rsigma_eval::ResultBody::Detection(body) => RuleMatch {
                rule,
                selections: body.matched_selections.clone(),
                fields: body
                    .matched_fields
                    .iter()
                    .map(|found| MatchedField {
                        selection: found.selection.clone(),
                        field: found.field.clone(),
                        value: found.value.clone(),
                    })
                    .collect(),
                event_ids: Vec::new(),
            },
            rsigma_eval::ResultBody::Correlation(body) => RuleMatch {
                rule,
                selections: Vec::new(),
                fields: body
                    .group_key
                    .iter()
                    .map(|(field, value)| MatchedField {
                        selection: None,
                        field: field.clone(),
                        value: serde_json::Value::String(value.clone()),
                    })
                    .collect(),
                event_ids: body
                    .event_refs
                    .iter()
                    .flatten()
                    .filter_map(|reference| reference.id.clone())
                    .collect(),
            },
        };
        Some(found)
    }
}

fn new_engine(dataset: &str, options: &RuleOptions) -> Engine {
    let mut engine = Engine::new_with_pipeline(pipeline_for(dataset, options));
    engine.set_match_detail(MatchDetailLevel::Summary);
    engine
}

/// A number that changes whenever a rule or fixture file under the sources
/// is added, removed, resized or touched: the server polls it to reload.
pub fn sources_fingerprint(sources: &[RuleSource]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for source in sources {
        let RuleSource::Path(root) = source else { continue };
        let mut entries: Vec<(PathBuf, u64, Option<std::time::SystemTime>)> = walkdir::WalkDir::new(root)
            .follow_links(true)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|entry| {
                let name = entry.file_name().to_string_lossy();
                name.ends_with(".yml") || name.ends_with(".yaml")
            })
            .filter_map(|entry| {
                let metadata = entry.metadata().ok()?;
                Some((entry.into_path(), metadata.len(), metadata.modified().ok()))
            })
            .collect();
        // Modification times can be too coarse to tell two quick writes of
        // the same size apart: the contents decide.
        for (path, _, _) in &entries {
            if let Ok(bytes) = std::fs::read(path) {
                bytes.hash(&mut hasher);
            }
        }
        entries.sort();
        root.hash(&mut hasher);
        entries.hash(&mut hasher);
    }
    hasher.finish()
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

/// The rules and filters of one file, each with the line of its `detection`.
struct FileContents {
    rules: Vec<(SigmaRule, usize)>,
    filters: Vec<(FilterRule, usize)>,
    correlations: Vec<(CorrelationRule, usize)>,
}

fn parse_file(file: &RuleFile, diagnostics: &mut Vec<Diagnostic>) -> FileContents {
    let collection = match rsigma_parser::parse_sigma_yaml(&file.text) {
        Ok(collection) => collection,
        Err(parse_error) => {
            let message = parse_error.to_string();
            diagnostics.push(error(file, locate_message(&file.text, &message), message));
            return FileContents { rules: Vec::new(), filters: Vec::new(), correlations: Vec::new() };
        }
    };
    for message in &collection.errors {
        diagnostics.push(error(file, locate_message(&file.text, message), message.clone()));
    }
    let document_lines = document_start_lines(&file.text);
    let documents = classify_documents(&file.text);
    let line_of = |kind: DocumentKind, position: usize| {
        let document = documents.iter().enumerate().filter(|(_, found)| **found == kind).nth(position);
        let document = document.map_or(0, |(index, _)| index);
        let key = match kind {
            DocumentKind::Filter => "filter",
            DocumentKind::Correlation => "correlation",
            DocumentKind::Rule => "detection",
        };
        find_key_line(&file.text, key, document, &document_lines)
    };
    let correlations = collection
        .correlations
        .into_iter()
        .enumerate()
        .map(|(position, correlation)| (correlation, line_of(DocumentKind::Correlation, position)))
        .collect();
    let filters = collection
        .filters
        .into_iter()
        .enumerate()
        .map(|(position, filter)| (filter, line_of(DocumentKind::Filter, position)))
        .collect();
    let multiple = collection.rules.len() > 1;
    let rules = collection
        .rules
        .into_iter()
        .enumerate()
        .map(|(position, mut rule)| {
            if multiple && rule.id.is_none() && rule.name.is_none() {
                rule.name = Some(format!("{}#{}", file.fallback_id, position + 1));
            }
            (rule, line_of(DocumentKind::Rule, position))
        })
        .collect();
    FileContents { rules, filters, correlations }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DocumentKind {
    Rule,
    Filter,
    Correlation,
}

/// What each YAML document of a file holds, judged by its top-level keys.
fn classify_documents(text: &str) -> Vec<DocumentKind> {
    let mut kinds = vec![DocumentKind::Rule];
    for line in text.lines() {
        if line.trim_end() == "---" {
            kinds.push(DocumentKind::Rule);
        } else if let Some(kind) = kinds.last_mut() {
            if line.starts_with("filter:") {
                *kind = DocumentKind::Filter;
            } else if line.starts_with("correlation:") {
                *kind = DocumentKind::Correlation;
            }
        }
    }
    if text.starts_with("---") {
        kinds.remove(0);
    }
    kinds
}

fn lint(rule: &SigmaRule, file: &RuleFile, line: usize, diagnostics: &mut Vec<Diagnostic>) {
    for condition in &rule.detection.conditions {
        for pattern in empty_selector_patterns(condition, rule) {
            let condition_line = file
                .text
                .lines()
                .position(|text| text.trim_start().starts_with("condition:"))
                .map_or(line, |index| index + 1);
            diagnostics.push(error(
                file,
                condition_line,
                format!("rule {:?}: condition pattern {pattern:?} matches no search identifier", rule.title),
            ));
        }
    }
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

/// The top-level keys of the original events of each dataset; a rule field
/// must start with one of them, be a schema field or be mapped.
const ORIGINAL_TOP_LEVEL_KEYS: &[(&str, &[&str])] = &[
    (
        "k8s.audit",
        &[
            "kind",
            "apiVersion",
            "level",
            "auditID",
            "stage",
            "requestURI",
            "verb",
            "user",
            "impersonatedUser",
            "sourceIPs",
            "userAgent",
            "objectRef",
            "responseStatus",
            "requestObject",
            "responseObject",
            "requestReceivedTimestamp",
            "stageTimestamp",
            "annotations",
        ],
    ),
    ("falco", &["time", "rule", "priority", "output", "source", "hostname", "tags", "output_fields", "uuid"]),
];

/// Warns about fields no event of the rule's datasets can have: usually a
/// typo, or a rule written for another schema that needs a field mapping.
fn lint_fields(
    rule: &SigmaRule,
    datasets: &[&'static str],
    options: &RuleOptions,
    file: &RuleFile,
    line: usize,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let checked: Vec<&[&str]> = datasets
        .iter()
        .filter_map(|dataset| ORIGINAL_TOP_LEVEL_KEYS.iter().find(|(known, _)| known == dataset))
        .map(|(_, keys)| *keys)
        .collect();
    // Datasets without a known shape (container logs, syslog) are not checked.
    if checked.len() != datasets.len() || checked.is_empty() {
        return;
    }
    let mut names = Vec::new();
    for detection in rule.detection.named.values() {
        collect_field_names(detection, &mut names);
    }
    names.sort();
    names.dedup();
    for name in names {
        let mapped = options.field_mapping.contains_key(&name)
            || (datasets.contains(&"k8s.audit")
                && options.kubernetes_mapping == KubernetesMapping::Applied
                && K8S_AUDIT_FIELD_MAPPING.iter().any(|(known, _)| *known == name));
        let first_segment = name.split('.').next().unwrap_or("");
        let known = mapped
            || vigil_schema::fields::kind_of(&name).is_some()
            || checked.iter().any(|keys| keys.contains(&first_segment));
        if !known {
            diagnostics.push(warning(
                file,
                line,
                format!(
                    "rule {:?}: field {name:?} is in no {} event; map it in [rules.field_mapping] or fix the name",
                    rule.title,
                    datasets.join("/")
                ),
            ));
        }
    }
}

fn collect_field_names(detection: &rsigma_parser::Detection, names: &mut Vec<String>) {
    use rsigma_parser::Detection;
    match detection {
        Detection::AllOf(items) => {
            names.extend(items.iter().filter_map(|item| item.field.name.clone()));
        }
        Detection::AnyOf(parts) | Detection::And(parts) => {
            parts.iter().for_each(|part| collect_field_names(part, names));
        }
        Detection::ArrayMatch { field, .. } => names.push(field.clone()),
        Detection::Conditional { .. } | Detection::Keywords(_) => {}
    }
}

/// The `x of pattern` selectors of a condition that match no detection of
/// the rule (names starting with `_` included, as a pattern may ask for them).
fn empty_selector_patterns(condition: &rsigma_parser::ConditionExpr, rule: &SigmaRule) -> Vec<String> {
    use rsigma_parser::{ConditionExpr, SelectorPattern};
    match condition {
        ConditionExpr::And(parts) | ConditionExpr::Or(parts) => {
            parts.iter().flat_map(|part| empty_selector_patterns(part, rule)).collect()
        }
        ConditionExpr::Not(inner) => empty_selector_patterns(inner, rule),
        ConditionExpr::Identifier(_) | ConditionExpr::Selector { pattern: SelectorPattern::Them, .. } => {
            Vec::new()
        }
        ConditionExpr::Selector { pattern: SelectorPattern::Pattern(pattern), .. } => {
            let matched =
                rule.detection.named.keys().any(|name| rsigma_parser::detection_name_matches(pattern, name));
            if matched { Vec::new() } else { vec![pattern.clone()] }
        }
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

/// The line a parser's message is about: the "line N" it mentions, else the
/// first line holding the modifier or name it quotes, else 1.
fn locate_message(text: &str, message: &str) -> usize {
    if let Some(line) = line_in_message(message) {
        return line;
    }
    if message.starts_with("Condition parse error")
        && let Some(index) = text.lines().position(|line| line.trim_start().starts_with("condition:"))
    {
        return index + 1;
    }
    let quoted = message.split('\'').nth(1).filter(|token| !token.is_empty());
    let Some(token) = quoted else { return 1 };
    let needles = [format!("|{token}"), format!("{token}:"), token.to_owned()];
    for needle in &needles {
        if let Some(number) = text.lines().position(|line| line.contains(needle.as_str())) {
            return number + 1;
        }
    }
    1
}

/// A "line N" mentioned in a parser's message.
fn line_in_message(message: &str) -> Option<usize> {
    let at = message.find("line ")?;
    let digits: String = message[at + 5..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}
