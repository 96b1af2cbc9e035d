use std::sync::Arc;

use chrono::Utc;
use serde_json::{Value, json};
use vigil_ingest::k8s_audit::{Context, normalize};
use vigil_schema::{Event, EventIdGenerator};

use crate::*;

fn audit(overrides: Value) -> Event {
    let mut event = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Request", "auditID": "11111111-2222",
        "stage": "ResponseComplete", "requestURI": "/api/v1/namespaces/shop/pods", "verb": "list",
        "user": {"username": "dana@example.org", "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.7"], "objectRef": {"resource": "pods", "namespace": "shop", "apiVersion": "v1"},
        "responseStatus": {"code": 200}, "requestReceivedTimestamp": "2025-02-03T08:15:01.482113Z",
        "annotations": {"authorization.k8s.io/decision": "allow"}
    });
    merge(&mut event, overrides);
    static IDS: std::sync::LazyLock<EventIdGenerator> = std::sync::LazyLock::new(EventIdGenerator::new);
    normalize(IDS.next(), Utc::now(), event, &Context::default()).unwrap()
}

fn merge(base: &mut Value, overrides: Value) {
    match (base, overrides) {
        (Value::Object(base), Value::Object(overrides)) => {
            for (key, value) in overrides {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (slot, value) => *slot = value,
    }
}

fn builtin() -> RuleSet {
    RuleSet::load(&[RuleSource::Builtin]).unwrap()
}

fn matched(rules: &RuleSet, event: &Event) -> Vec<String> {
    rules.evaluate(event).into_iter().map(|found| found.rule.title.clone()).collect()
}

#[test]
fn the_builtin_pack_loads_without_warnings() {
    let rules = builtin();
    assert_eq!(rules.rules().len(), BUILTIN_PACK.len());
    assert!(rules.warnings().is_empty(), "{:?}", rules.warnings());
    for rule in rules.rules() {
        let expected = if rule.origin.starts_with("builtin:falco_") { "falco" } else { "k8s.audit" };
        assert_eq!(rule.datasets, vec![expected], "{}", rule.title);
        assert!(
            rule.tags.iter().any(|tag| tag.starts_with("attack.t")),
            "{} has no ATT&CK technique",
            rule.title
        );
    }
    assert!(rules.rules().len() >= 40);
}

#[test]
fn each_builtin_rule_fires_on_its_case_and_not_on_an_ordinary_request() {
    let rules = builtin();
    let cases = [
        (
            "Command Executed In A Pod Container",
            json!({"verb": "create", "objectRef": {"resource": "pods", "subresource": "exec", "name": "web-1"}, "stage": "ResponseStarted", "responseStatus": {"code": 101}}),
        ),
        (
            "Secret Read By A Non-System User",
            json!({"verb": "get", "objectRef": {"resource": "secrets", "name": "db"}}),
        ),
        (
            "Privileged Pod Created",
            json!({"verb": "create", "requestObject": {"spec": {"containers": [{"name": "a"}, {"name": "b", "securityContext": {"privileged": true}}]}}}),
        ),
        (
            "Binding To cluster-admin Created Or Changed",
            json!({"verb": "create", "objectRef": {"resource": "clusterrolebindings", "apiGroup": "rbac.authorization.k8s.io"},
                   "requestObject": {"roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}}}),
        ),
        (
            "Anonymous Request Allowed",
            json!({"user": {"username": "system:anonymous", "groups": ["system:unauthenticated"]}, "requestURI": "/api/v1/secrets"}),
        ),
    ];
    for (title, overrides) in cases {
        assert_eq!(matched(&rules, &audit(overrides)), vec![title.to_owned()], "{title}");
    }
    assert!(matched(&rules, &audit(json!({}))).is_empty());
}

#[test]
fn filters_in_builtin_rules_exclude_what_they_should() {
    let rules = builtin();
    let system_read = audit(
        json!({"verb": "get", "objectRef": {"resource": "secrets"}, "user": {"username": "system:kube-controller-manager"}}),
    );
    assert!(matched(&rules, &system_read).is_empty());
    let forbidden_read = audit(
        json!({"verb": "get", "objectRef": {"resource": "secrets"}, "annotations": {"authorization.k8s.io/decision": "forbid"}, "responseStatus": {"code": 403}}),
    );
    assert_eq!(matched(&rules, &forbidden_read), vec!["Request Forbidden For A User".to_owned()]);
    let health = audit(json!({"user": {"username": "system:anonymous"}, "requestURI": "/healthz?verbose"}));
    assert!(matched(&rules, &health).is_empty());
    let unprivileged = audit(
        json!({"verb": "create", "requestObject": {"spec": {"containers": [{"securityContext": {"privileged": false}}]}}}),
    );
    assert!(matched(&rules, &unprivileged).is_empty());
}

#[test]
fn rules_for_other_products_never_see_kubernetes_events() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("windows.yml"),
        "title: Anything Not Cmd\nid: w-1\nlevel: low\nlogsource:\n  product: windows\n  category: process_creation\ndetection:\n  selection:\n    Image|endswith: cmd.exe\n  condition: not selection\n",
    )
    .unwrap();
    let rules = RuleSet::load(&[RuleSource::Path(dir.path().to_owned())]).unwrap();
    assert_eq!(rules.warnings().len(), 1);
    assert!(rules.warnings()[0].message.contains("fits no dataset"), "{}", rules.warnings()[0]);
    assert!(rules.evaluate(&audit(json!({}))).is_empty());
}

#[test]
fn a_broken_rule_refuses_the_whole_set_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("good.yml"),
        "title: Good\nid: g-1\nlevel: low\nlogsource:\n  product: kubernetes\n  service: audit\ndetection:\n  selection:\n    verb: get\n  condition: selection\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.yml"),
        "title: Bad\nid: b-1\nlevel: low\nlogsource:\n  product: kubernetes\n  service: audit\ndetection:\n  selection:\n    verb: get\n  condition: selection and missing\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("dup.yml"), "title: Dup\nid: g-1\nlogsource:\n  product: kubernetes\ndetection:\n  s:\n    verb: x\n  condition: s\n").unwrap();
    let error = RuleSet::load(&[RuleSource::Path(dir.path().to_owned())]).unwrap_err();
    let errors: Vec<String> = error.errors().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("bad.yml:7: error: rule \"Bad\" does not compile"), "{errors:?}");
    assert!(errors[1].contains("good.yml:7: error: duplicate rule id \"g-1\" (also in "), "{errors:?}");
}

#[test]
fn one_request_raises_one_alert_and_replays_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteAlertStore::open(&dir.path().join("alerts.db")).unwrap();
    let rules = builtin();
    let exec = |stage: &str, audit_id: &str| {
        audit(
            json!({"verb": "create", "objectRef": {"resource": "pods", "subresource": "exec"}, "stage": stage, "auditID": audit_id}),
        )
    };
    let events = [
        exec("ResponseStarted", "req-1"),
        exec("ResponseComplete", "req-1"),
        exec("ResponseStarted", "req-2"),
    ];
    let matches: Vec<(Arc<RuleInfo>, &Event)> = events
        .iter()
        .flat_map(|event| rules.evaluate(event).into_iter().map(move |found| (found.rule, event)))
        .collect();
    assert_eq!(matches.len(), 3);
    let outcome = store.record(&matches, "c1").unwrap();
    assert_eq!((outcome.new_alerts, outcome.updated_alerts, outcome.duplicates), (1, 1, 1));
    let again = store.record(&matches, "c2").unwrap();
    assert_eq!(again.duplicates, 3);
    let alerts = store.list(None, 10).unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].count, 2);
    assert_eq!(alerts[0].group, "user.name=dana@example.org");
    assert_eq!(alerts[0].event_ids.len(), 2);
    assert_eq!(store.checkpoint().unwrap().as_deref(), Some("c2"));
}
