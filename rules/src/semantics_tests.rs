//! The Sigma semantics Vigil decided (docs/rules.md, "Matching semantics"),
//! one table row per decision: a detection, an audit event, and whether the
//! rule must match.

use serde_json::{Value, json};
use vigil_schema::{Event, EventIdGenerator};

use crate::*;

static IDS: std::sync::LazyLock<EventIdGenerator> = std::sync::LazyLock::new(EventIdGenerator::new);

fn audit(overrides: Value) -> Event {
    let mut event = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse", "auditID": "a-1",
        "stage": "ResponseComplete", "requestURI": "/api/v1/namespaces/shop/pods?limit=500", "verb": "create",
        "user": {"username": "dana@example.org", "groups": ["system:authenticated", "devs"]},
        "sourceIPs": ["10.0.0.7"], "userAgent": "kubectl/v1.31.0 (linux/amd64)",
        "objectRef": {"resource": "pods", "namespace": "shop", "apiVersion": "v1", "name": "web-1"},
        "responseStatus": {"code": 201}, "requestReceivedTimestamp": "2025-02-03T08:15:01.482113Z",
        "annotations": {"authorization.k8s.io/decision": "allow"},
        "requestObject": {"spec": {"hostPID": true, "containers": [
            {"name": "a", "image": "nginx:1.27", "args": ["-c", "echo aGVsbG8gd29ybGQ= | base64 -d"]},
            {"name": "b", "image": "busybox", "command": ["sh", "-c", "curl http://x"], "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}
        ], "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}}
    });
    if let (Value::Object(base), Value::Object(overrides)) = (&mut event, overrides) {
        base.extend(overrides);
    }
    vigil_ingest::k8s_audit::normalize(IDS.next(), event, &vigil_ingest::k8s_audit::Context::default())
        .unwrap()
}

fn rule_text(detection: &str) -> String {
    format!(
        "title: Case\nid: case-1\nlevel: low\nlogsource:\n  product: kubernetes\n  service: audit\ndetection:\n{detection}\n"
    )
}

fn load_texts(texts: &[(&str, String)], options: &RuleOptions) -> Result<RuleSet, LoadError> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in texts {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    RuleSet::load_with(&[RuleSource::Path(dir.path().to_owned())], options)
}

fn matches(detection: &str, event: &Event) -> bool {
    let rules = load_texts(&[("case.yml", rule_text(detection))], &RuleOptions::default())
        .unwrap_or_else(|error| panic!("{detection}\n{error}"));
    !rules.evaluate(event).is_empty()
}

#[test]
fn matching_semantics_are_the_documented_ones() {
    // (what is decided, detection, overrides of the event, must match)
    let cases: &[(&str, &str, Value, bool)] = &[
        (
            "an array field matches if any element does",
            "  s:\n    user.groups: devs\n  condition: s",
            json!({}),
            true,
        ),
        (
            "through lists of objects too",
            "  s:\n    requestObject.spec.containers.image: busybox\n  condition: s",
            json!({}),
            true,
        ),
        (
            "dotted names walk nested objects",
            "  s:\n    objectRef.namespace: shop\n  condition: s",
            json!({}),
            true,
        ),
        (
            "a flat dotted key is found as well",
            "  s:\n    custom.flat: yes-flat\n  condition: s",
            json!({"custom.flat": "yes-flat"}),
            true,
        ),
        ("schema names work", "  s:\n    user.name: dana@example.org\n  condition: s", json!({}), true),
        ("equality is case-insensitive", "  s:\n    verb: CREATE\n  condition: s", json!({}), true),
        ("cased makes it case-sensitive", "  s:\n    verb|cased: CREATE\n  condition: s", json!({}), false),
        (
            "a rule number matches an event number",
            "  s:\n    responseStatus.code: 201\n  condition: s",
            json!({}),
            true,
        ),
        (
            "a rule string matches an event number",
            "  s:\n    responseStatus.code: '201'\n  condition: s",
            json!({}),
            true,
        ),
        (
            "a rule number matches an event numeric string",
            "  s:\n    n: 42\n  condition: s",
            json!({"n": "42"}),
            true,
        ),
        (
            "a word never equals a number",
            "  s:\n    responseStatus.code: ALLOW\n  condition: s",
            json!({}),
            false,
        ),
        (
            "booleans match booleans",
            "  s:\n    requestObject.spec.hostPID: true\n  condition: s",
            json!({}),
            true,
        ),
        (
            "booleans match their text",
            "  s:\n    requestObject.spec.hostPID: 'true'\n  condition: s",
            json!({}),
            true,
        ),
        (
            "keywords search every string value, case-insensitively",
            "  k:\n    - ECHO AGVS\n  condition: k",
            json!({}),
            true,
        ),
        ("keywords are substrings", "  k:\n    - 'dana@exa'\n  condition: k", json!({}), true),
        ("keywords do not match keys", "  k:\n    - securityContext\n  condition: k", json!({}), false),
        ("not of an absent field holds", "  s:\n    missing.field: x\n  condition: not s", json!({}), true),
        ("null matches an absent field", "  s:\n    missing.field: null\n  condition: s", json!({}), true),
        ("exists true", "  s:\n    objectRef.name|exists: true\n  condition: s", json!({}), true),
        ("exists false", "  s:\n    objectRef.subresource|exists: false\n  condition: s", json!({}), true),
        (
            "re searches (unanchored)",
            "  s:\n    requestURI|re: 'pods\\?limit'\n  condition: s",
            json!({}),
            true,
        ),
        ("re is case-sensitive", "  s:\n    verb|re: 'CREATE'\n  condition: s", json!({}), false),
        ("re|i ignores case", "  s:\n    verb|re|i: 'CREATE'\n  condition: s", json!({}), true),
        ("re anchors must be written", "  s:\n    verb|re: '^reat'\n  condition: s", json!({}), false),
        ("contains", "  s:\n    userAgent|contains: KUBECTL\n  condition: s", json!({}), true),
        ("startswith", "  s:\n    requestURI|startswith: /api/v1/\n  condition: s", json!({}), true),
        ("endswith", "  s:\n    objectRef.name|endswith: '-1'\n  condition: s", json!({}), true),
        ("wildcards", "  s:\n    userAgent: 'kubectl/*linux*'\n  condition: s", json!({}), true),
        (
            "escaped wildcard is literal",
            "  s:\n    userAgent: 'kubectl\\*'\n  condition: s",
            json!({}),
            false,
        ),
        (
            "a value list is OR",
            "  s:\n    verb:\n      - get\n      - create\n  condition: s",
            json!({}),
            true,
        ),
        (
            "all makes it AND",
            "  s:\n    userAgent|contains|all:\n      - kubectl\n      - windows\n  condition: s",
            json!({}),
            false,
        ),
        ("cidr", "  s:\n    sourceIPs|cidr: 10.0.0.0/8\n  condition: s", json!({}), true),
        ("cidr outside", "  s:\n    sourceIPs|cidr: 192.168.0.0/16\n  condition: s", json!({}), false),
        ("gt", "  s:\n    responseStatus.code|gt: 200\n  condition: s", json!({}), true),
        ("lte", "  s:\n    responseStatus.code|lte: 200\n  condition: s", json!({}), false),
        ("neq", "  s:\n    verb|neq: get\n  condition: s", json!({}), true),
        ("fieldref", "  s:\n    other|fieldref: verb\n  condition: s", json!({"other": "create"}), true),
        ("hour of the event time", "  s:\n    '@timestamp|hour': 8\n  condition: s", json!({}), true),
        (
            "windash",
            "  s:\n    cmd|windash|contains: ' -enc '\n  condition: s",
            json!({"cmd": "x /enc y"}),
            true,
        ),
        (
            "base64",
            "  s:\n    requestObject.spec.containers.args|base64|contains: hello world\n  condition: s",
            json!({}),
            true,
        ),
        (
            "1 of pattern",
            "  sel_a:\n    verb: get\n  sel_b:\n    verb: create\n  condition: 1 of sel_*",
            json!({}),
            true,
        ),
        (
            "all of pattern",
            "  sel_a:\n    verb: get\n  sel_b:\n    verb: create\n  condition: all of sel_*",
            json!({}),
            false,
        ),
        (
            "them leaves out names starting with _",
            "  s:\n    verb: create\n  _x:\n    verb: get\n  condition: all of them",
            json!({}),
            true,
        ),
        (
            "precedence: not > and > or",
            "  a:\n    verb: get\n  b:\n    verb: create\n  condition: not a and b or a",
            json!({}),
            true,
        ),
        (
            "parentheses",
            "  a:\n    verb: get\n  b:\n    verb: create\n  condition: not (a or b)",
            json!({}),
            false,
        ),
    ];
    let mut failures = Vec::new();
    for (decision, detection, overrides, expected) in cases {
        if matches(detection, &audit(overrides.clone())) != *expected {
            failures.push(format!("{decision}: expected match = {expected}\n{detection}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn base64offset_finds_the_value_at_every_offset() {
    // "hello world" base64-encoded after 0, 1 and 2 bytes of other text.
    for prefix in ["", "x", "xy"] {
        let encoded = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{prefix}hello world and more"),
        );
        let event = audit(json!({"payload": encoded}));
        assert!(
            matches("  s:\n    payload|base64offset|contains: hello world\n  condition: s", &event),
            "prefix {prefix:?}: {encoded}"
        );
    }
    let other = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "hello there");
    assert!(!matches(
        "  s:\n    payload|base64offset|contains: hello world\n  condition: s",
        &audit(json!({"payload": other}))
    ));
}

#[test]
fn base64offset_patterns_keep_only_characters_the_value_decides() {
    assert_eq!(crate::transform::base64_offset_patterns(b"abc"), vec!["YWJj", "FiY", "hYm"]);
    assert_eq!(crate::transform::base64_offset_patterns(b"hello"), vec!["aGVsbG", "hlbGxv", "oZWxsb"]);
}

const FILTERED_RULE: &str = "title: Exec\nid: exec-1\nname: exec_rule\nlevel: low\nlogsource:\n  product: kubernetes\n  service: audit\ndetection:\n  s:\n    verb: create\n  condition: s\n";

fn filter_text(rules: &str, condition: &str) -> String {
    format!(
        "title: Tuning\nlogsource:\n  product: kubernetes\nfilter:\n  rules:\n{rules}\n  selection:\n    user.username|startswith: dana\n  condition: {condition}\n"
    )
}

#[test]
fn a_filter_condition_must_hold_for_the_rule_to_match() {
    let event = audit(json!({}));
    let other_user = audit(json!({"user": {"username": "eve"}}));
    // (filter's rules list, filter condition, matches dana's event, matches eve's event)
    let cases = [
        ("    - exec-1", "not selection", false, true),
        ("    - exec_rule", "not selection", false, true),
        ("    - Exec", "not selection", false, true),
        ("    - exec-1", "selection", true, false),
        ("    - another-rule", "not selection", true, true),
    ];
    for (targets, condition, on_dana, on_eve) in cases {
        let rules = load_texts(
            &[("rule.yml", FILTERED_RULE.to_owned()), ("mf_tuning.yml", filter_text(targets, condition))],
            &RuleOptions::default(),
        )
        .unwrap();
        assert_eq!(!rules.evaluate(&event).is_empty(), on_dana, "{targets} {condition}");
        assert_eq!(!rules.evaluate(&other_user).is_empty(), on_eve, "{targets} {condition}");
    }
    let rules_any = load_texts(
        &[
            ("rule.yml", FILTERED_RULE.to_owned()),
            (
                "mf.yml",
                filter_text("    - exec-1", "not selection")
                    .replace("  rules:\n    - exec-1", "  rules: any"),
            ),
        ],
        &RuleOptions::default(),
    )
    .unwrap();
    assert!(rules_any.evaluate(&event).is_empty());
    assert_eq!(rules_any.evaluate(&other_user).len(), 1);
}

#[test]
fn a_filter_for_no_loaded_rule_is_a_warning_with_its_line() {
    let rules = load_texts(
        &[("rule.yml", FILTERED_RULE.to_owned()), ("mf.yml", filter_text("    - nothing", "not selection"))],
        &RuleOptions::default(),
    )
    .unwrap();
    let warnings: Vec<String> = rules.warnings().iter().map(ToString::to_string).collect();
    assert!(warnings.iter().any(|warning| warning.contains("mf.yml:4: warning: filter \"Tuning\" applies to no loaded rule")), "{warnings:?}");
}

#[test]
fn placeholders_come_from_the_options() {
    let mut options = RuleOptions::default();
    options.placeholders.insert("admins".into(), vec!["root@example.org".into(), "dana@example.org".into()]);
    let text = rule_text("  s:\n    user.username|expand: '%admins%'\n  condition: s");
    let rules = load_texts(&[("case.yml", text)], &options).unwrap();
    assert_eq!(rules.evaluate(&audit(json!({}))).len(), 1);
    assert!(rules.evaluate(&audit(json!({"user": {"username": "eve"}}))).is_empty());
}

#[test]
fn field_mapping_renames_rule_fields() {
    let mut options = RuleOptions::default();
    options.field_mapping.insert("Verb".into(), vec!["verb".into()]);
    let rules =
        load_texts(&[("case.yml", rule_text("  s:\n    Verb: create\n  condition: s"))], &options).unwrap();
    assert_eq!(rules.evaluate(&audit(json!({}))).len(), 1);
}

#[test]
fn the_kubernetes_mapping_makes_sigmahq_field_names_work() {
    let event = audit(
        json!({"objectRef": {"resource": "selfsubjectrulesreviews", "apiGroup": "authorization.k8s.io"}}),
    );
    let cases = [
        ("  s:\n    apiGroup: authorization.k8s.io\n  condition: s", &event),
        ("  s:\n    hostPath: '*'\n  condition: s", &event),
        ("  s:\n    capabilities: '*'\n  condition: s", &event),
    ];
    for (detection, event) in cases {
        assert!(matches(detection, event), "{detection}");
        let without = RuleOptions { kubernetes_mapping: KubernetesMapping::Off, ..RuleOptions::default() };
        let rules = load_texts(&[("case.yml", rule_text(detection))], &without).unwrap();
        assert!(rules.evaluate(event).is_empty(), "without the mapping: {detection}");
    }
    let plain_pod =
        audit(json!({"requestObject": {"spec": {"containers": [{"name": "a", "image": "nginx"}]}}}));
    assert!(!matches("  s:\n    hostPath: '*'\n  condition: s", &plain_pod));
    assert!(!matches("  s:\n    capabilities: '*'\n  condition: s", &plain_pod));
}

#[test]
fn matches_say_why_they_fired() {
    let rules = load_texts(
        &[("case.yml", rule_text("  s:\n    verb: create\n    objectRef.resource: pods\n  condition: s"))],
        &RuleOptions::default(),
    )
    .unwrap();
    let found = rules.evaluate(&audit(json!({})));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].selections, vec!["s"]);
    let fields: Vec<(&str, &Value)> =
        found[0].fields.iter().map(|field| (field.field.as_str(), &field.value)).collect();
    assert!(fields.contains(&("verb", &json!("create"))), "{fields:?}");
    assert!(fields.contains(&("objectRef.resource", &json!("pods"))), "{fields:?}");
}

#[test]
fn falco_output_fields_resolve_by_their_dotted_names() {
    let falco = json!({
        "time": "2025-02-03T08:15:01.482113Z", "rule": "Terminal shell in container", "priority": "Notice",
        "output": "A shell was spawned", "source": "syscall", "hostname": "node-1",
        "output_fields": {"proc.name": "bash", "container.id": "abc123", "k8s.ns.name": "shop"}
    });
    let event = vigil_ingest::falco::normalize(IDS.next(), falco).unwrap();
    let text = "title: Falco Shell\nid: falco-1\nlevel: low\nlogsource:\n  product: falco\ndetection:\n  s:\n    output_fields.proc.name: bash\n    output_fields.k8s.ns.name: shop\n  condition: s\n";
    let rules = load_texts(&[("falco.yml", text.to_owned())], &RuleOptions::default()).unwrap();
    assert_eq!(rules.evaluate(&event).len(), 1);
}

#[test]
fn condition_edge_cases_are_decided() {
    let detection =
        "  sel_a:\n    verb: get\n  sel_b:\n    verb: create\n  s:\n    verb: create\n  condition: ";
    // (condition, Ok(matches the create event) or Err(part of the error))
    let cases: &[(&str, Result<bool, &str>)] = &[
        ("2 of sel_*", Ok(false)),
        ("1 of sel_*", Ok(true)),
        ("s and sel_b", Ok(true)),
        (
            "1 of nothing_*",
            Err(
                "rule.yml:14: error: rule \"Case\": condition pattern \"nothing_*\" matches no search identifier",
            ),
        ),
        ("s AND sel_b", Err("rule.yml:14: error: Condition parse error")),
    ];
    for (condition, expected) in cases {
        let text = rule_text(&format!("{detection}{condition}"));
        let loaded = load_texts(&[("rule.yml", text)], &RuleOptions::default());
        match (expected, loaded) {
            (Ok(should_match), Ok(rules)) => {
                assert_eq!(!rules.evaluate(&audit(json!({}))).is_empty(), *should_match, "{condition}")
            }
            (Err(part), Err(error)) => assert!(error.to_string().contains(part), "{condition}: {error}"),
            (expected, loaded) => panic!("{condition}: expected {expected:?}, got {:?}", loaded.map(|_| ())),
        }
    }
}

const FORBIDDEN_RULE: &str = "title: Forbidden Request\nname: forbidden_request\nlevel: low\nlogsource:\n  product: kubernetes\n  service: audit\ndetection:\n  selection:\n    responseStatus.code: 403\n  condition: selection\n";

fn correlation_text(reference: &str, generate: bool) -> String {
    format!(
        "title: Many Forbidden Requests\nid: corr-1\nlevel: high\ncorrelation:\n  type: event_count\n  rules:\n    - {reference}\n  group-by:\n    - user.username\n  timespan: 5m\n  condition:\n    gte: 3\ngenerate: {generate}\n"
    )
}

fn forbidden(user: &str, time: &str) -> Event {
    audit(
        json!({"user": {"username": user}, "responseStatus": {"code": 403}, "requestReceivedTimestamp": time}),
    )
}

#[test]
fn correlations_count_in_a_sliding_window_per_group_and_follow_names() {
    let rules = load_texts(
        &[
            ("forbidden.yml", FORBIDDEN_RULE.to_owned()),
            ("many.yml", correlation_text("forbidden_request", false)),
        ],
        &RuleOptions::default(),
    )
    .unwrap();
    let mut correlator = rules.correlator();
    let mut fired = Vec::new();
    let events = [
        forbidden("eve", "2026-11-20T10:00:00Z"),
        forbidden("eve", "2026-11-20T10:01:00Z"),
        forbidden("dana", "2026-11-20T10:01:30Z"),
        forbidden("eve", "2026-11-20T10:03:00Z"),
        forbidden("eve", "2026-11-20T10:03:30Z"),
        forbidden("eve", "2026-11-20T10:20:00Z"),
    ];
    for (position, event) in events.iter().enumerate() {
        for found in rules.evaluate_correlated(&mut correlator, event) {
            fired.push((position, found.rule.id.clone(), found.event_ids.len()));
        }
    }
    // The rule referenced by name feeds the correlation; it raises nothing
    // itself (`generate: false`); after firing, eve's group starts again.
    assert_eq!(fired, vec![(3, "corr-1".to_owned(), 3)]);
    let why = {
        let mut correlator = rules.correlator();
        events[..4].iter().flat_map(|event| rules.evaluate_correlated(&mut correlator, event)).next().unwrap()
    };
    assert_eq!(why.fields[0].field, "user.username");
    assert_eq!(why.fields[0].value, json!("eve"));
    assert_eq!(rules.rule("corr-1").unwrap().datasets, vec!["k8s.audit"]);
}

#[test]
fn generate_true_keeps_the_referenced_rules_matches() {
    let rules = load_texts(
        &[
            ("forbidden.yml", FORBIDDEN_RULE.to_owned()),
            ("many.yml", correlation_text("forbidden_request", true)),
        ],
        &RuleOptions::default(),
    )
    .unwrap();
    let mut correlator = rules.correlator();
    let found = rules.evaluate_correlated(&mut correlator, &forbidden("eve", "2026-11-20T10:00:00Z"));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].rule.id, "forbidden_request");
}

#[test]
fn a_correlation_of_an_unknown_rule_is_an_error_with_its_line() {
    let error = load_texts(
        &[
            ("forbidden.yml", FORBIDDEN_RULE.to_owned()),
            ("many.yml", correlation_text("nothing_like_it", false)),
        ],
        &RuleOptions::default(),
    )
    .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("many.yml:4: error: correlation \"Many Forbidden Requests\": references \"nothing_like_it\", which is no loaded rule's id or name"),
        "{text}"
    );
}
