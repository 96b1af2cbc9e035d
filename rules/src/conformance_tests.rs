//! Conformance against SigmaHQ's corpus (`shared/external/sigma`, outside
//! the repository; each test prints SKIPPED and returns when it is absent):
//! every rule compiles or is rejected with its file, line and reason; each
//! rule with a regression event matches it; SigmaHQ's Kubernetes audit rules
//! fire on audit events written for them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rsigma_eval::{Engine, JsonEvent};
use serde_json::{Map, Value, json};
use vigil_schema::EventIdGenerator;

use crate::*;

fn external(relative: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/external").join(relative);
    if path.exists() {
        Some(path)
    } else {
        println!("SKIPPED: {} is absent", path.display());
        None
    }
}

fn yaml_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .map(walkdir::DirEntry::into_path)
        .filter(|path| path.extension().is_some_and(|extension| extension == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_sigmahq_rule_compiles_or_is_rejected_with_file_line_and_reason() {
    let Some(root) = external("sigma/all-rules") else { return };
    let total = yaml_files(&root).len();
    let (rules, diagnostics) = RuleSet::load_lenient(&[RuleSource::Path(root)], &RuleOptions::default());
    let errors: Vec<&Diagnostic> =
        diagnostics.iter().filter(|diagnostic| diagnostic.severity == Severity::Error).collect();
    for error in &errors {
        println!("rejected: {error}");
        assert!(error.origin.ends_with(".yml") && error.line > 0 && !error.message.is_empty(), "{error}");
    }
    let compiled = rules.rules().len();
    println!("{compiled} of {total} SigmaHQ rules compile");
    assert!(total >= 3000, "{total}");
    assert!(compiled * 100 >= total * 98, "only {compiled} of {total} compile");
    assert_eq!(compiled + errors.len(), total, "each rule either compiles or has one error");
}

#[test]
fn every_sigmahq_kubernetes_rule_compiles() {
    let Some(root) = external("sigma/kubernetes") else { return };
    let rules = RuleSet::load(&[RuleSource::Path(root)]).unwrap();
    assert_eq!(rules.rules().len(), 32);
    let on_audit = rules.rules().iter().filter(|rule| rule.datasets.contains(&"k8s.audit")).count();
    assert_eq!(on_audit, 16);
}

/// A Windows event as rendered from EVTX, flattened the way Sigma's Windows
/// rules name fields: the `EventData` values at the top level, with
/// `EventID`, `Channel`, `Computer` and `Provider_Name` from `System`.
fn flatten_windows_event(event: &Value) -> Value {
    let mut flat = Map::new();
    let root = event.get("Event").unwrap_or(event);
    if let Some(system) = root.get("System") {
        for key in ["EventID", "Channel", "Computer", "Level", "Task"] {
            if let Some(value) = system.get(key) {
                let value = value.get("#text").unwrap_or(value);
                flat.insert(key.to_owned(), value.clone());
            }
        }
        if let Some(name) = system.pointer("/Provider/#attributes/Name") {
            flat.insert("Provider_Name".to_owned(), name.clone());
        }
    }
    for section in ["EventData", "UserData"] {
        if let Some(Value::Object(data)) = root.get(section) {
            for (key, value) in data {
                match value {
                    Value::Object(inner) if section == "UserData" => {
                        for (inner_key, inner_value) in inner {
                            flat.insert(inner_key.clone(), inner_value.clone());
                        }
                    }
                    _ => {
                        flat.insert(key.clone(), value.clone());
                    }
                }
            }
        }
    }
    Value::Object(flat)
}

fn rule_ids(root: &Path) -> HashMap<String, PathBuf> {
    let mut ids = HashMap::new();
    for path in yaml_files(root) {
        let text = std::fs::read_to_string(&path).unwrap();
        if let Some(line) = text.lines().find(|line| line.starts_with("id: ")) {
            ids.insert(line[4..].trim().trim_matches('\'').to_owned(), path);
        }
    }
    ids
}

#[test]
fn each_sigmahq_rule_with_a_regression_event_matches_it() {
    let (Some(regression), Some(all_rules)) =
        (external("sigma/regression_data"), external("sigma/all-rules"))
    else {
        return;
    };
    let ids = rule_ids(&all_rules);
    let mut checked = 0;
    let mut not_in_corpus = 0;
    let mut failures = Vec::new();
    for info_path in walkdir::WalkDir::new(&regression)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name() == "info.yml")
    {
        let info: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(info_path.path()).unwrap()).unwrap();
        let rule_id = info["rule_metadata"][0]["id"].as_str().unwrap().to_owned();
        let Some(rule_path) = ids.get(&rule_id) else {
            not_in_corpus += 1;
            continue;
        };
        let collection =
            rsigma_parser::parse_sigma_yaml(&std::fs::read_to_string(rule_path).unwrap()).unwrap();
        let mut engine = Engine::new();
        for rule in &collection.rules {
            let mut rule = rule.clone();
            crate::transform::fix_base64offset(&mut rule).unwrap();
            engine.add_rule(&rule).unwrap();
        }
        let directory = info_path.path().parent().unwrap();
        for event_file in std::fs::read_dir(directory).unwrap().filter_map(Result::ok) {
            if event_file.path().extension().is_none_or(|extension| extension != "json") {
                continue;
            }
            let text = std::fs::read_to_string(event_file.path()).unwrap();
            // Some files hold several concatenated events: one must match.
            let events: Vec<Value> =
                serde_json::Deserializer::from_str(&text).into_iter::<Value>().map(Result::unwrap).collect();
            let matched = events.iter().any(|event| {
                let flat = flatten_windows_event(event);
                !engine.evaluate(&JsonEvent::borrow(&flat)).is_empty()
            });
            checked += 1;
            if !matched {
                failures.push(format!(
                    "{} does not match {}",
                    rule_path.display(),
                    event_file.path().display()
                ));
            }
        }
    }
    println!("{checked} regression events checked; {not_in_corpus} rules outside all-rules/");
    assert!(checked >= 150, "{checked}");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

fn audit_event(overrides: Value) -> vigil_schema::Event {
    static IDS: std::sync::LazyLock<EventIdGenerator> = std::sync::LazyLock::new(EventIdGenerator::new);
    let mut event = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse", "auditID": "c-1",
        "stage": "ResponseComplete", "requestURI": "/api/v1/namespaces/shop/pods", "verb": "create",
        "user": {"username": "mallory@example.org", "groups": ["system:authenticated"]},
        "sourceIPs": ["203.0.113.9"], "userAgent": "kubectl/v1.31.0",
        "objectRef": {"resource": "pods", "namespace": "shop", "apiVersion": "v1", "name": "x"},
        "responseStatus": {"code": 201}, "requestReceivedTimestamp": "2025-02-03T08:15:01.482113Z",
        "annotations": {"authorization.k8s.io/decision": "allow"}
    });
    if let (Value::Object(base), Value::Object(overrides)) = (&mut event, overrides) {
        base.extend(overrides);
    }
    vigil_ingest::k8s_audit::normalize(IDS.next(), event, &vigil_ingest::k8s_audit::Context::default())
        .unwrap()
}

#[test]
fn sigmahq_kubernetes_audit_rules_fire_on_real_shaped_audit_events() {
    let Some(root) = external("sigma/kubernetes/application/kubernetes/audit") else { return };
    let rules = RuleSet::load(&[RuleSource::Path(root)]).unwrap();
    let pod_spec = |spec: Value| json!({"kind": "Pod", "apiVersion": "v1", "spec": spec});
    // (rule title, the event that must fire it)
    let cases: Vec<(&str, Value)> = vec![
        (
            "Kubernetes Admission Controller Modification",
            json!({"verb": "patch", "objectRef": {"resource": "validatingwebhookconfigurations", "apiGroup": "admissionregistration.k8s.io", "apiVersion": "v1"}}),
        ),
        (
            "Kubernetes CronJob/Job Modification",
            json!({"objectRef": {"resource": "cronjobs", "apiGroup": "batch", "namespace": "shop"}}),
        ),
        (
            "Deployment Deleted From Kubernetes Cluster",
            json!({"verb": "delete", "objectRef": {"resource": "deployments", "apiGroup": "apps"}}),
        ),
        ("Kubernetes Events Deleted", json!({"verb": "delete", "objectRef": {"resource": "events"}})),
        (
            "Potential Remote Command Execution In Pod Container",
            json!({"objectRef": {"resource": "pods", "subresource": "exec", "name": "web"}}),
        ),
        (
            "Container With A hostPath Mount Created",
            json!({"requestObject": pod_spec(json!({"containers": [{"name": "a", "image": "alpine"}], "volumes": [{"name": "host", "hostPath": {"path": "/etc"}}]}))}),
        ),
        (
            "Creation Of Pod In System Namespace",
            json!({"objectRef": {"resource": "pods", "namespace": "kube-system"}}),
        ),
        (
            "Privileged Container Deployed",
            json!({"requestObject": pod_spec(json!({"containers": [{"name": "a", "image": "alpine", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}]}))}),
        ),
        (
            "RBAC Permission Enumeration Attempt",
            json!({"objectRef": {"resource": "selfsubjectrulesreviews", "apiGroup": "authorization.k8s.io"}}),
        ),
        (
            "Kubernetes Rolebinding Modification",
            json!({"objectRef": {"resource": "clusterrolebindings", "apiGroup": "rbac.authorization.k8s.io"}}),
        ),
        ("Kubernetes Secrets Enumeration", json!({"verb": "list", "objectRef": {"resource": "secrets"}})),
        (
            "Kubernetes Secrets Modified or Deleted",
            json!({"verb": "delete", "objectRef": {"resource": "secrets", "name": "db"}}),
        ),
        ("New Kubernetes Service Account Created", json!({"objectRef": {"resource": "serviceaccounts"}})),
        (
            "Potential Sidecar Injection Into Running Deployment",
            json!({"verb": "patch", "objectRef": {"resource": "deployments", "apiGroup": "apps"}}),
        ),
        (
            "Kubernetes Unauthorized or Unauthenticated Access",
            json!({"verb": "get", "responseStatus": {"code": 403}, "annotations": {"authorization.k8s.io/decision": "forbid"}}),
        ),
    ];
    for (title, overrides) in &cases {
        let titles: Vec<String> = rules
            .evaluate(&audit_event(overrides.clone()))
            .into_iter()
            .map(|found| found.rule.title.clone())
            .collect();
        assert!(titles.iter().any(|found| found == title), "{title} did not fire; fired: {titles:?}");
    }
    // The enumeration rule compares the HTTP status code to 'ALLOW': it
    // cannot match a real audit event (docs/rules.md).
    let enumeration = audit_event(
        json!({"requestURI": "/api/v1/namespaces/shop/pods/x/exec?command=%2fbin%2fsh", "userAgent": "trufflehog"}),
    );
    let titles: Vec<String> =
        rules.evaluate(&enumeration).into_iter().map(|found| found.rule.title.clone()).collect();
    assert!(!titles.iter().any(|title| title == "Kubernetes Potential Enumeration Activity"), "{titles:?}");
    // An ordinary read fires none of them.
    assert!(rules.evaluate(&audit_event(json!({"verb": "get"}))).is_empty());
}
