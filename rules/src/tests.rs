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
    normalize(IDS.next(), event, &Context::default()).unwrap()
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
    one_request_raises_one_alert(&SqliteAlertStore::open(&dir.path().join("alerts.db")).unwrap());
    // A database created before `seen` and `alert_events` were tables
    // without rowids keeps its tables, and works alike.
    let path = dir.path().join("older.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE alert_events (alert_id INTEGER NOT NULL, event_id TEXT NOT NULL, PRIMARY KEY (alert_id, event_id));
             CREATE TABLE seen (rule_id TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (rule_id, key));",
        )
        .unwrap();
    one_request_raises_one_alert(&SqliteAlertStore::open(&path).unwrap());
    let without_rowid = |path: &std::path::Path| -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row("SELECT count(*) FROM sqlite_master WHERE sql LIKE '%WITHOUT ROWID%'", [], |row| {
                row.get(0)
            })
            .unwrap()
    };
    assert_eq!(without_rowid(&dir.path().join("alerts.db")), 2);
    assert_eq!(without_rowid(&path), 0);
}

#[test]
fn an_event_without_a_request_is_counted_once_however_often_it_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteAlertStore::open(&dir.path().join("alerts.db")).unwrap();
    let rules = builtin();
    let ids = EventIdGenerator::new();
    let falco = || {
        let alert = json!({"time": "2026-11-20T10:00:00Z", "rule": "Container escape attempt", "priority": "Critical",
            "output": "escape", "source": "syscall", "hostname": "node-1"});
        vigil_ingest::falco::normalize(ids.next(), alert).unwrap()
    };
    // Two alike events (two ids), the first of them again.
    let (first, second) = (falco(), falco());
    let matches: Vec<(RuleMatch, &Event)> = [&first, &second, &first]
        .into_iter()
        .flat_map(|event| rules.evaluate(event).into_iter().map(move |found| (found, event)))
        .collect();
    assert_eq!(matches.len(), 3);
    let context = |checkpoint| RecordContext { checkpoint, rules_commit: None };
    let outcome = store.record(&matches, context("c1")).unwrap();
    assert_eq!((outcome.new_alerts, outcome.updated_alerts, outcome.duplicates), (1, 1, 1));
    assert_eq!(store.record(&matches, context("c2")).unwrap().duplicates, 3);
    let alerts = store.list(None, 10).unwrap();
    assert_eq!((alerts.len(), alerts[0].count, alerts[0].event_ids.len()), (1, 2, 2));
}

fn one_request_raises_one_alert(store: &SqliteAlertStore) {
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
    let matches: Vec<(RuleMatch, &Event)> = events
        .iter()
        .flat_map(|event| rules.evaluate(event).into_iter().map(move |found| (found, event)))
        .collect();
    assert_eq!(matches.len(), 3);
    let context = |checkpoint| RecordContext { checkpoint, rules_commit: Some("abc123") };
    let outcome = store.record(&matches, context("c1")).unwrap();
    assert_eq!((outcome.new_alerts, outcome.updated_alerts, outcome.duplicates), (1, 1, 1));
    let again = store.record(&matches, context("c2")).unwrap();
    assert_eq!(again.duplicates, 3);
    let alerts = store.list(None, 10).unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].count, 2);
    assert_eq!(
        alerts[0].group,
        "user.name=dana@example.org orchestrator.namespace=shop orchestrator.resource.type=pods"
    );
    assert_eq!(alerts[0].event_ids.len(), 2);
    assert_eq!(alerts[0].rules_commit.as_deref(), Some("abc123"));
    assert_eq!(alerts[0].author.as_deref(), Some("Vigil"));
    assert_eq!(alerts[0].why.selections, vec!["selection"]);
    assert!(
        alerts[0]
            .why
            .fields
            .iter()
            .any(|field| field.field == "objectRef.subresource" && field.value == json!("exec"))
    );
    assert_eq!(store.checkpoint().unwrap().as_deref(), Some("c2"));
}

fn rule_dir(text: &str) -> (tempfile::TempDir, RuleSet) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rule.yml"), text).unwrap();
    let rules = RuleSet::load(&[RuleSource::Path(dir.path().to_owned())]).unwrap();
    (dir, rules)
}

const EXEC_RULE_WITH_ALERTING: &str = "title: Exec\nid: exec-1\nlevel: high\nvigil-group-by: objectRef.name\nvigil-suppress: 1h\nlogsource:\n  product: kubernetes\n  service: audit\ndetection:\n  s:\n    objectRef.subresource: exec\n  condition: s\n";

fn exec_at(audit_id: &str, user: &str, pod: &str, time: &str) -> Event {
    audit(
        json!({"verb": "create", "auditID": audit_id, "user": {"username": user}, "requestReceivedTimestamp": time,
                 "objectRef": {"resource": "pods", "subresource": "exec", "name": pod}}),
    )
}

fn record_all(store: &SqliteAlertStore, rules: &RuleSet, events: &[Event]) -> RecordOutcome {
    let matches: Vec<(RuleMatch, &Event)> = events
        .iter()
        .flat_map(|event| rules.evaluate(event).into_iter().map(move |found| (found, event)))
        .collect();
    store.record(&matches, RecordContext { checkpoint: "c", rules_commit: None }).unwrap()
}

#[test]
fn a_rule_chooses_its_group_and_its_suppression_window() {
    let (_dir, rules) = rule_dir(EXEC_RULE_WITH_ALERTING);
    assert_eq!(rules.rules()[0].group_by, vec!["objectRef.name"]);
    assert_eq!(rules.rules()[0].suppress_seconds, Some(3600));
    let data = tempfile::tempdir().unwrap();
    let store = SqliteAlertStore::open(&data.path().join("alerts.db")).unwrap();
    // Two users on one pod: one alert, grouped by the pod.
    let outcome = record_all(
        &store,
        &rules,
        &[
            exec_at("r1", "dana", "web-1", "2026-01-01T10:00:00Z"),
            exec_at("r2", "eve", "web-1", "2026-01-01T10:05:00Z"),
        ],
    );
    assert_eq!((outcome.new_alerts, outcome.updated_alerts), (1, 1));
    let alert = &store.list(None, 10).unwrap()[0];
    assert_eq!(alert.group, "objectRef.name=web-1");
    store
        .update(alert.id, &AlertUpdate { status: Some(AlertStatus::Closed), ..AlertUpdate::default() })
        .unwrap();
    // Within the hour after its last match, a closed alert absorbs matches.
    let suppressed = record_all(&store, &rules, &[exec_at("r3", "dana", "web-1", "2026-01-01T10:50:00Z")]);
    assert_eq!((suppressed.new_alerts, suppressed.suppressed), (0, 1));
    let alert = store.get(alert.id).unwrap();
    assert_eq!((alert.status, alert.count, alert.suppressed), (AlertStatus::Closed, 3, 1));
    // Later, a new alert opens.
    let later = record_all(&store, &rules, &[exec_at("r4", "dana", "web-1", "2026-01-01T13:00:00Z")]);
    assert_eq!(later.new_alerts, 1);
    assert_eq!(store.list(Some(AlertStatus::Open), 10).unwrap().len(), 1);
}

#[test]
fn bad_alerting_attributes_are_load_errors_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rule.yml"), EXEC_RULE_WITH_ALERTING.replace("1h", "soon")).unwrap();
    let error = RuleSet::load(&[RuleSource::Path(dir.path().to_owned())]).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("rule.yml:5: error: rule \"Exec\": vigil-suppress: \"soon\" is not a duration"),
        "{text}"
    );
}

#[test]
fn analysts_work_alerts_and_the_work_survives_a_restart() {
    let (_dir, rules) = rule_dir(EXEC_RULE_WITH_ALERTING);
    let data = tempfile::tempdir().unwrap();
    let path = data.path().join("alerts.db");
    let id = {
        let store = SqliteAlertStore::open(&path).unwrap();
        record_all(&store, &rules, &[exec_at("r1", "dana", "web-1", "2026-01-01T10:00:00Z")]);
        let id = store.list(None, 1).unwrap()[0].id;
        let update = AlertUpdate {
            status: Some(AlertStatus::Acknowledged),
            assignee: Some(Some("rhea".into())),
            comment: Some(NewComment { author: "rhea".into(), text: "asked dana why".into() }),
        };
        let alert = store.update(id, &update).unwrap();
        assert_eq!(alert.status, AlertStatus::Acknowledged);
        // An acknowledged alert still collects matches.
        let outcome = record_all(&store, &rules, &[exec_at("r2", "dana", "web-1", "2026-01-01T10:01:00Z")]);
        assert_eq!(outcome.updated_alerts, 1);
        id
    };
    let store = SqliteAlertStore::open(&path).unwrap();
    let alert = store.get(id).unwrap();
    assert_eq!(alert.status, AlertStatus::Acknowledged);
    assert_eq!(alert.assignee.as_deref(), Some("rhea"));
    assert_eq!(alert.count, 2);
    let comments = alert.comments.unwrap();
    assert_eq!((comments[0].author.as_str(), comments[0].text.as_str()), ("rhea", "asked dana why"));
    let unassigned =
        store.update(id, &AlertUpdate { assignee: Some(None), ..AlertUpdate::default() }).unwrap();
    assert_eq!(unassigned.assignee, None);
    assert!(matches!(store.get(999), Err(AlertError::NotFound(999))));
    let empty = AlertUpdate {
        comment: Some(NewComment { author: "x".into(), text: " ".into() }),
        ..AlertUpdate::default()
    };
    assert_eq!(store.update(id, &empty).unwrap_err().kind(), AlertErrorKind::Invalid);
}

#[test]
fn a_requests_stages_share_a_key_in_the_order_of_their_time() {
    let stage = |stage: &str| audit(json!({"stage": stage, "auditID": "req-9"}));
    let started = crate::alerts::request_key(&stage("ResponseStarted"));
    assert_eq!(started.as_deref(), Some("audit:2025-02-03T08:15:01.482113Z:req-9"));
    assert_eq!(crate::alerts::request_key(&stage("ResponseComplete")), started);
    // Legacy captures without the request's time: the id alone, as before.
    let mut legacy = stage("ResponseComplete");
    legacy.original.as_object_mut().unwrap().remove("requestReceivedTimestamp");
    assert_eq!(crate::alerts::request_key(&legacy).as_deref(), Some("audit:req-9"));
    let falco = Event::new(EventIdGenerator::new().next(), chrono::Utc::now(), json!({"rule": "x"}));
    assert_eq!(crate::alerts::request_key(&falco), None);
}
