//! What Vigil computes from a Kubernetes audit event (`audit.k8s.io/v1`):
//! its time, its one-line message, its ECS categories, its source address.
//!
//! The normalizer (`vigil-ingest`) builds an event's fields with these, and
//! [`crate::record`] leaves the results out of a stored record and computes
//! them again when the record is read (its `derived` mask), so one function
//! decides each value both times. A record names its derivations by their
//! place in [`crate::record::DERIVED`]: changing what one of these functions
//! returns for some input changes how records already on disk read. To
//! change a derived value, add a new function and a new entry.

use serde_json::{Map, Value};

/// The dataset name of Kubernetes audit events.
pub const DATASET: &str = "k8s.audit";

/// The fields that may hold the time of the request, in the order they are
/// tried: when the API server received it, the legacy `timestamp`, then the
/// stage's time.
pub const TIME_FIELDS: [&str; 3] = ["requestReceivedTimestamp", "timestamp", "stageTimestamp"];

/// The first of [`TIME_FIELDS`] the event has, with its text.
pub fn time_field(audit: &Map<String, Value>) -> Option<(&'static str, &str)> {
    TIME_FIELDS.iter().find_map(|field| Some((*field, audit.get(*field)?.as_str()?)))
}

/// The value at a path of nested objects.
pub fn at<'a>(object: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = object.get(*first)?;
    for key in rest {
        value = value.as_object()?.get(*key)?;
    }
    Some(value)
}

/// The non-empty string at a path.
pub fn str_at<'a>(object: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    at(object, path).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The strings of the list (or the one string) at a path.
pub fn strings_at<'a>(object: &'a Map<String, Value>, path: &[&str]) -> Vec<&'a str> {
    match at(object, path) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(one)) => vec![one.as_str()],
        _ => Vec::new(),
    }
}

/// `responseStatus.code`.
pub fn status_code(audit: &Map<String, Value>) -> Option<i64> {
    at(audit, &["responseStatus", "code"]).and_then(Value::as_i64)
}

/// The authorizer's decision (`allow`, `forbid`).
pub fn decision(audit: &Map<String, Value>) -> Option<&str> {
    str_at(audit, &["annotations", "authorization.k8s.io/decision"])
}

/// `source.ip`: the last of `sourceIPs`. The list holds X-Forwarded-For,
/// then X-Real-Ip, then the remote address: only the last is observed by
/// the API server itself.
pub fn source_ip(audit: &Map<String, Value>) -> Option<&str> {
    strings_at(audit, &["sourceIPs"]).last().copied()
}

/// `network.forwarded_ip`: the first of several `sourceIPs`, the client
/// the request claims to come from.
pub fn forwarded_ip(audit: &Map<String, Value>) -> Option<&str> {
    let ips = strings_at(audit, &["sourceIPs"]);
    if ips.len() > 1 { Some(ips[0]) } else { None }
}

/// `objectRef.apiVersion`, prefixed with the API group when it has one
/// (`apps/v1`), as `kubectl` writes it.
pub fn api_version(audit: &Map<String, Value>) -> Option<String> {
    let version = str_at(audit, &["objectRef", "apiVersion"])?;
    match str_at(audit, &["objectRef", "apiGroup"]) {
        Some(group) if !version.contains('/') => Some(format!("{group}/{version}")),
        _ => Some(version.to_owned()),
    }
}

/// `event.outcome`: a refusal by the authorizer or an error status fails.
pub fn outcome(status_code: Option<i64>, decision: Option<&str>) -> &'static str {
    if decision == Some("forbid") {
        return "failure";
    }
    match status_code {
        Some(code) if code >= 400 => "failure",
        Some(_) => "success",
        None => "unknown",
    }
}

/// ECS `event.type` for a Kubernetes verb.
pub fn event_type(verb: &str) -> &'static str {
    match verb {
        "create" => "creation",
        "update" | "patch" => "change",
        "delete" | "deletecollection" => "deletion",
        "get" | "list" | "watch" => "access",
        _ => "info",
    }
}

/// The event's one-line summary: `alice get secrets prod/db (200)`.
pub fn message(audit: &Map<String, Value>) -> Option<String> {
    let mut message = String::with_capacity(64);
    message_pieces(audit, &mut |piece| {
        message.push_str(piece);
        true
    })?;
    Some(message)
}

/// Whether `text` is the event's [`message`], without building it (the
/// index asks for every audit event).
pub fn is_message(audit: &Map<String, Value>, text: &str) -> bool {
    let mut rest = text;
    let whole = message_pieces(audit, &mut |piece| match rest.strip_prefix(piece) {
        Some(after) => {
            rest = after;
            true
        }
        None => false,
    });
    whole == Some(true) && rest.is_empty()
}

/// Gives [`message`] piece by piece to `piece`, which answers whether to go
/// on; `None` for an event without a verb, else whether every piece was taken.
fn message_pieces(audit: &Map<String, Value>, piece: &mut dyn FnMut(&str) -> bool) -> Option<bool> {
    let verb = str_at(audit, &["verb"])?;
    let user_name = str_at(audit, &["user", "username"]).unwrap_or("(unknown user)");
    let mut digits = [0u8; 20];
    let code = status_code(audit).map(|code| decimal(code, &mut digits));
    Some(
        piece(user_name)
            && piece(" ")
            && piece(verb)
            && piece(" ")
            && target_pieces(audit, piece)
            && str_at(audit, &["impersonatedUser", "username"])
                .is_none_or(|effective| piece(" as ") && piece(effective))
            && code.is_none_or(|code| piece(" (") && piece(code) && piece(")")),
    )
}

/// A number in decimal, written at the end of `digits`.
fn decimal(number: i64, digits: &mut [u8; 20]) -> &str {
    let mut at = digits.len();
    let mut rest = number.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if number < 0 {
        at -= 1;
        digits[at] = b'-';
    }
    // ASCII digits and a sign.
    std::str::from_utf8(&digits[at..]).unwrap_or_default()
}

/// The strings of the original that [`message`] holds whole, each as one
/// run of the message's words: the user, the verb, the target (or the
/// request URI when there is none), the impersonated user.
pub fn message_parts(audit: &Map<String, Value>) -> Vec<&str> {
    let mut parts: Vec<&str> = [&["user", "username"][..], &["verb"], &["impersonatedUser", "username"]]
        .iter()
        .filter_map(|path| str_at(audit, path))
        .collect();
    if str_at(audit, &["objectRef", "resource"]).is_some() {
        let target = ["resource", "subresource", "namespace", "name"];
        parts.extend(target.iter().filter_map(|key| str_at(audit, &["objectRef", key])));
    } else {
        parts.extend(str_at(audit, &["requestURI"]));
    }
    parts
}

/// The target of the request, piece by piece: `secrets prod/db`,
/// `pods/exec prod/web`, `pods in prod`, `nodes n1`, else its URI.
fn target_pieces(audit: &Map<String, Value>, piece: &mut dyn FnMut(&str) -> bool) -> bool {
    let Some(resource) = str_at(audit, &["objectRef", "resource"]) else {
        return piece(str_at(audit, &["requestURI"]).unwrap_or("(no target)"));
    };
    piece(resource)
        && str_at(audit, &["objectRef", "subresource"])
            .is_none_or(|subresource| piece("/") && piece(subresource))
        && match (str_at(audit, &["objectRef", "namespace"]), str_at(audit, &["objectRef", "name"])) {
            (Some(namespace), Some(name)) => piece(" ") && piece(namespace) && piece("/") && piece(name),
            (Some(namespace), None) => piece(" in ") && piece(namespace),
            (None, Some(name)) => piece(" ") && piece(name),
            (None, None) => true,
        }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn audit(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    /// Stored records read back through these functions: what they give is
    /// pinned, branch by branch.
    #[test]
    fn messages_are_pinned_for_every_shape_of_target() {
        let cases = [
            (
                json!({"verb": "get", "user": {"username": "ann"}, "objectRef": {"resource": "secrets", "namespace": "prod", "name": "db"}, "responseStatus": {"code": 200}}),
                "ann get secrets prod/db (200)",
            ),
            (
                json!({"verb": "list", "user": {"username": "ann"}, "objectRef": {"resource": "pods", "namespace": "prod"}}),
                "ann list pods in prod",
            ),
            (
                json!({"verb": "get", "user": {"username": "ann"}, "objectRef": {"resource": "nodes", "name": "n1"}}),
                "ann get nodes n1",
            ),
            (
                json!({"verb": "list", "user": {"username": "ann"}, "objectRef": {"resource": "namespaces"}}),
                "ann list namespaces",
            ),
            (
                json!({"verb": "create", "user": {"username": "ann"}, "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "prod", "name": "web"},
                    "impersonatedUser": {"username": "bob"}, "responseStatus": {"code": 101}}),
                "ann create pods/exec prod/web as bob (101)",
            ),
            (
                json!({"verb": "get", "requestURI": "/healthz", "responseStatus": {"code": 403}}),
                "(unknown user) get /healthz (403)",
            ),
            (json!({"verb": "get"}), "(unknown user) get (no target)"),
        ];
        for (original, message) in cases {
            let original = audit(original);
            assert_eq!(super::message(&original).as_deref(), Some(message));
            assert!(is_message(&original, message), "{message}");
            // A message that differs anywhere is not the event's.
            for other in [&message[1..], &message[..message.len() - 1], &format!("{message} "), "", "x"] {
                assert!(!is_message(&original, other), "{other:?} taken for {message:?}");
            }
        }
        assert!(!is_message(&audit(json!({"user": {"username": "ann"}})), "ann"), "no verb, no message");
        for code in [0, 7, 10, 200, 99999, -1, -404, i64::MAX, i64::MIN] {
            assert_eq!(decimal(code, &mut [0; 20]), code.to_string());
        }
        assert_eq!(super::message(&audit(json!({"user": {"username": "ann"}}))), None, "no verb");
    }

    #[test]
    fn categories_outcomes_addresses_and_versions_are_pinned() {
        let types: Vec<&str> =
            ["create", "update", "patch", "delete", "deletecollection", "get", "list", "watch", "proxy"]
                .iter()
                .map(|verb| event_type(verb))
                .collect();
        assert_eq!(
            types,
            ["creation", "change", "change", "deletion", "deletion", "access", "access", "access", "info"]
        );
        assert_eq!(outcome(Some(200), Some("allow")), "success");
        assert_eq!(outcome(Some(200), Some("forbid")), "failure");
        assert_eq!(outcome(Some(404), None), "failure");
        assert_eq!(outcome(None, None), "unknown");
        let proxied = audit(json!({"sourceIPs": ["192.0.2.7", "10.0.0.2", "10.0.0.1"]}));
        assert_eq!((source_ip(&proxied), forwarded_ip(&proxied)), (Some("10.0.0.1"), Some("192.0.2.7")));
        let direct = audit(json!({"sourceIPs": ["10.0.0.1"]}));
        assert_eq!((source_ip(&direct), forwarded_ip(&direct)), (Some("10.0.0.1"), None));
        let grouped = audit(json!({"objectRef": {"apiGroup": "apps", "apiVersion": "v1"}}));
        let core = audit(json!({"objectRef": {"apiVersion": "v1"}}));
        let qualified = audit(json!({"objectRef": {"apiGroup": "apps", "apiVersion": "apps/v1"}}));
        assert_eq!(
            [api_version(&grouped), api_version(&core), api_version(&qualified)],
            [Some("apps/v1".to_owned()), Some("v1".to_owned()), Some("apps/v1".to_owned())]
        );
        let legacy =
            audit(json!({"timestamp": "2018-10-26T09:00:00Z", "stageTimestamp": "2018-10-26T09:00:01Z"}));
        assert_eq!(time_field(&legacy), Some(("timestamp", "2018-10-26T09:00:00Z")));
    }

    #[test]
    fn the_parts_of_a_message_are_in_it_whole() {
        let original =
            audit(json!({"verb": "create", "user": {"username": "system:serviceaccount:ci:deployer"},
            "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "prod", "name": "web-0"},
            "impersonatedUser": {"username": "bob"}, "requestURI": "/api/v1/x"}));
        let message = super::message(&original).unwrap();
        let parts = message_parts(&original);
        assert_eq!(
            parts,
            ["system:serviceaccount:ci:deployer", "create", "bob", "pods", "exec", "prod", "web-0"]
        );
        assert!(parts.iter().all(|part| message.contains(part)), "{message}");
        let no_target = audit(json!({"verb": "get", "requestURI": "/healthz"}));
        assert_eq!(message_parts(&no_target), ["get", "/healthz"]);
    }
}
