//! The schema's field names, as constants, and the kind of each.
//!
//! The index uses [`kind_of`] to decide how a field is indexed and how a query
//! value for it is read; `vigil rules validate` uses [`ALL`] to warn about a
//! field name no dataset has.

/// How a field's values are indexed and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Exact value, case-insensitive match, aggregatable.
    Keyword,
    /// A 64-bit integer.
    Long,
    /// An RFC 3339 time.
    Date,
    /// An IPv4 or IPv6 address.
    Ip,
    /// Tokenized free text.
    Text,
}

pub const TIMESTAMP: &str = "@timestamp";
pub const EVENT_ID: &str = "event.id";
pub const EVENT_INGESTED: &str = "event.ingested";
pub const EVENT_DATASET: &str = "event.dataset";
pub const EVENT_KIND: &str = "event.kind";
pub const EVENT_CATEGORY: &str = "event.category";
pub const EVENT_ACTION: &str = "event.action";
pub const EVENT_TYPE: &str = "event.type";
pub const EVENT_OUTCOME: &str = "event.outcome";
pub const EVENT_SEVERITY: &str = "event.severity";
pub const MESSAGE: &str = "message";
pub const HOST_NAME: &str = "host.name";
pub const TAGS: &str = "tags";

pub const USER_NAME: &str = "user.name";
pub const USER_ID: &str = "user.id";
pub const USER_GROUP_NAME: &str = "user.group.name";
pub const USER_EFFECTIVE_NAME: &str = "user.effective.name";
pub const USER_EFFECTIVE_GROUP_NAME: &str = "user.effective.group.name";
pub const SOURCE_IP: &str = "source.ip";
pub const NETWORK_FORWARDED_IP: &str = "network.forwarded_ip";
pub const USER_AGENT_ORIGINAL: &str = "user_agent.original";

pub const ORCHESTRATOR_TYPE: &str = "orchestrator.type";
pub const ORCHESTRATOR_CLUSTER_NAME: &str = "orchestrator.cluster.name";
pub const ORCHESTRATOR_NAMESPACE: &str = "orchestrator.namespace";
pub const ORCHESTRATOR_RESOURCE_TYPE: &str = "orchestrator.resource.type";
pub const ORCHESTRATOR_RESOURCE_SUBRESOURCE: &str = "orchestrator.resource.subresource";
pub const ORCHESTRATOR_RESOURCE_NAME: &str = "orchestrator.resource.name";
pub const ORCHESTRATOR_API_VERSION: &str = "orchestrator.api_version";
pub const URL_ORIGINAL: &str = "url.original";
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";

pub const K8S_AUDIT_ID: &str = "kubernetes.audit.id";
pub const K8S_AUDIT_STAGE: &str = "kubernetes.audit.stage";
pub const K8S_AUDIT_LEVEL: &str = "kubernetes.audit.level";
pub const K8S_AUDIT_API_GROUP: &str = "kubernetes.audit.api_group";
pub const K8S_AUTHZ_DECISION: &str = "kubernetes.audit.authorization.decision";
pub const K8S_AUTHZ_REASON: &str = "kubernetes.audit.authorization.reason";

pub const K8S_NAMESPACE: &str = "kubernetes.namespace";
pub const K8S_POD_NAME: &str = "kubernetes.pod.name";
pub const K8S_POD_UID: &str = "kubernetes.pod.uid";
pub const K8S_CONTAINER_NAME: &str = "kubernetes.container.name";
pub const K8S_NODE_NAME: &str = "kubernetes.node.name";
pub const CONTAINER_ID: &str = "container.id";
pub const CONTAINER_NAME: &str = "container.name";
pub const CONTAINER_IMAGE_NAME: &str = "container.image.name";
pub const PROCESS_NAME: &str = "process.name";
pub const PROCESS_EXECUTABLE: &str = "process.executable";
pub const PROCESS_COMMAND_LINE: &str = "process.command_line";
pub const PROCESS_PID: &str = "process.pid";
pub const PROCESS_PARENT_NAME: &str = "process.parent.name";
pub const FILE_PATH: &str = "file.path";
pub const LOG_LEVEL: &str = "log.level";
pub const LOG_FILE_PATH: &str = "log.file.path";
pub const LOG_SYSLOG_PRIORITY: &str = "log.syslog.priority";
pub const LOG_SYSLOG_FACILITY_CODE: &str = "log.syslog.facility.code";
pub const LOG_SYSLOG_FACILITY_NAME: &str = "log.syslog.facility.name";
pub const LOG_SYSLOG_SEVERITY_CODE: &str = "log.syslog.severity.code";
pub const LOG_SYSLOG_SEVERITY_NAME: &str = "log.syslog.severity.name";
pub const LOG_SYSLOG_MSGID: &str = "log.syslog.msgid";
pub const RULE_NAME: &str = "rule.name";

/// Every named field of the schema with its kind. Fields under `labels.` and
/// `kubernetes.labels.` are keywords too; see [`kind_of`].
pub const ALL: &[(&str, FieldKind)] = &[
    (TIMESTAMP, FieldKind::Date),
    (EVENT_ID, FieldKind::Keyword),
    (EVENT_INGESTED, FieldKind::Date),
    (EVENT_DATASET, FieldKind::Keyword),
    (EVENT_KIND, FieldKind::Keyword),
    (EVENT_CATEGORY, FieldKind::Keyword),
    (EVENT_ACTION, FieldKind::Keyword),
    (EVENT_TYPE, FieldKind::Keyword),
    (EVENT_OUTCOME, FieldKind::Keyword),
    (EVENT_SEVERITY, FieldKind::Long),
    (MESSAGE, FieldKind::Text),
    (HOST_NAME, FieldKind::Keyword),
    (TAGS, FieldKind::Keyword),
    (USER_NAME, FieldKind::Keyword),
    (USER_ID, FieldKind::Keyword),
    (USER_GROUP_NAME, FieldKind::Keyword),
    (USER_EFFECTIVE_NAME, FieldKind::Keyword),
    (USER_EFFECTIVE_GROUP_NAME, FieldKind::Keyword),
    (SOURCE_IP, FieldKind::Ip),
    (NETWORK_FORWARDED_IP, FieldKind::Ip),
    (USER_AGENT_ORIGINAL, FieldKind::Keyword),
    (ORCHESTRATOR_TYPE, FieldKind::Keyword),
    (ORCHESTRATOR_CLUSTER_NAME, FieldKind::Keyword),
    (ORCHESTRATOR_NAMESPACE, FieldKind::Keyword),
    (ORCHESTRATOR_RESOURCE_TYPE, FieldKind::Keyword),
    (ORCHESTRATOR_RESOURCE_SUBRESOURCE, FieldKind::Keyword),
    (ORCHESTRATOR_RESOURCE_NAME, FieldKind::Keyword),
    (ORCHESTRATOR_API_VERSION, FieldKind::Keyword),
    (URL_ORIGINAL, FieldKind::Keyword),
    (HTTP_RESPONSE_STATUS_CODE, FieldKind::Long),
    (K8S_AUDIT_ID, FieldKind::Keyword),
    (K8S_AUDIT_STAGE, FieldKind::Keyword),
    (K8S_AUDIT_LEVEL, FieldKind::Keyword),
    (K8S_AUDIT_API_GROUP, FieldKind::Keyword),
    (K8S_AUTHZ_DECISION, FieldKind::Keyword),
    (K8S_AUTHZ_REASON, FieldKind::Keyword),
    (K8S_NAMESPACE, FieldKind::Keyword),
    (K8S_POD_NAME, FieldKind::Keyword),
    (K8S_POD_UID, FieldKind::Keyword),
    (K8S_CONTAINER_NAME, FieldKind::Keyword),
    (K8S_NODE_NAME, FieldKind::Keyword),
    (CONTAINER_ID, FieldKind::Keyword),
    (CONTAINER_NAME, FieldKind::Keyword),
    (CONTAINER_IMAGE_NAME, FieldKind::Keyword),
    (PROCESS_NAME, FieldKind::Keyword),
    (PROCESS_EXECUTABLE, FieldKind::Keyword),
    (PROCESS_COMMAND_LINE, FieldKind::Keyword),
    (PROCESS_PID, FieldKind::Long),
    (PROCESS_PARENT_NAME, FieldKind::Keyword),
    (FILE_PATH, FieldKind::Keyword),
    (LOG_LEVEL, FieldKind::Keyword),
    (LOG_FILE_PATH, FieldKind::Keyword),
    (LOG_SYSLOG_PRIORITY, FieldKind::Long),
    (LOG_SYSLOG_FACILITY_CODE, FieldKind::Long),
    (LOG_SYSLOG_FACILITY_NAME, FieldKind::Keyword),
    (LOG_SYSLOG_SEVERITY_CODE, FieldKind::Long),
    (LOG_SYSLOG_SEVERITY_NAME, FieldKind::Keyword),
    (LOG_SYSLOG_MSGID, FieldKind::Keyword),
    (RULE_NAME, FieldKind::Keyword),
];

/// Keyword fields that identify one event or request: searched by exact
/// value, never counted or ranked, so the index keeps no per-event column
/// of them (top values refuse them).
pub const IDENTIFIERS: &[&str] = &[K8S_AUDIT_ID];

/// Whether a field is one of [`IDENTIFIERS`].
pub fn is_identifier(name: &str) -> bool {
    IDENTIFIERS.contains(&name)
}

/// The kind of a schema field, or `None` for a name outside the schema
/// (which is then looked up in the original event).
pub fn kind_of(name: &str) -> Option<FieldKind> {
    if let Some((_, kind)) = ALL.iter().find(|(known, _)| *known == name) {
        return Some(*kind);
    }
    if name.starts_with("labels.") || name.starts_with("kubernetes.labels.") {
        return Some(FieldKind::Keyword);
    }
    None
}

/// Names in the original Kubernetes audit event that are the same thing as a
/// schema field, so that `objectRef.resource:secrets` and
/// `orchestrator.resource.type:secrets` find the same events.
pub const K8S_AUDIT_ALIASES: &[(&str, &str)] = &[
    ("verb", EVENT_ACTION),
    ("user.username", USER_NAME),
    ("user.uid", USER_ID),
    ("user.groups", USER_GROUP_NAME),
    ("impersonatedUser.username", USER_EFFECTIVE_NAME),
    ("userAgent", USER_AGENT_ORIGINAL),
    ("objectRef.resource", ORCHESTRATOR_RESOURCE_TYPE),
    ("objectRef.subresource", ORCHESTRATOR_RESOURCE_SUBRESOURCE),
    ("objectRef.namespace", ORCHESTRATOR_NAMESPACE),
    ("objectRef.name", ORCHESTRATOR_RESOURCE_NAME),
    ("objectRef.apiVersion", ORCHESTRATOR_API_VERSION),
    ("objectRef.apiGroup", K8S_AUDIT_API_GROUP),
    ("requestURI", URL_ORIGINAL),
    ("responseStatus.code", HTTP_RESPONSE_STATUS_CODE),
    ("auditID", K8S_AUDIT_ID),
    ("stage", K8S_AUDIT_STAGE),
    ("level", K8S_AUDIT_LEVEL),
    ("annotations.authorization.k8s.io/decision", K8S_AUTHZ_DECISION),
    ("annotations.authorization.k8s.io/reason", K8S_AUTHZ_REASON),
];

/// Names in a container-log record (the line as `log`; the `kubernetes` map
/// of Fluent Bit's `kubernetes` filter and Fluentd's `kubernetes_metadata`)
/// that are the same thing as a schema field: `kubernetes.pod_name:web-0`
/// and `kubernetes.pod.name:web-0` find the same events, and `log:timeout`
/// searches the words of the message. (`kubernetes.labels.*` has the same
/// name in both.)
pub const K8S_CONTAINER_ALIASES: &[(&str, &str)] = &[
    ("log", MESSAGE),
    ("kubernetes.namespace_name", K8S_NAMESPACE),
    ("kubernetes.pod_name", K8S_POD_NAME),
    ("kubernetes.pod_id", K8S_POD_UID),
    ("kubernetes.container_name", K8S_CONTAINER_NAME),
    ("kubernetes.host", K8S_NODE_NAME),
    ("kubernetes.docker_id", CONTAINER_ID),
    ("kubernetes.container_image", CONTAINER_IMAGE_NAME),
];

/// The schema field a name of an original event stands for, if it is an
/// alias (of the audit or the container-log aliases).
pub fn alias(name: &str) -> Option<&'static str> {
    alias_in_dataset(name).map(|(schema, _)| schema)
}

/// An alias's schema field and the dataset whose events it holds for: the
/// name is the twin only on those events (`level` is `kubernetes.audit.level`
/// on an audit event, and just `level` on anything else).
pub fn alias_in_dataset(name: &str) -> Option<(&'static str, &'static str)> {
    let find = |aliases: &[(&'static str, &'static str)]| {
        aliases.iter().find(|(original, _)| *original == name).map(|(_, schema)| *schema)
    };
    find(K8S_AUDIT_ALIASES)
        .map(|schema| (schema, "k8s.audit"))
        .or_else(|| find(K8S_CONTAINER_ALIASES).map(|schema| (schema, "k8s.container")))
}

/// The aliases whose original name lies under `prefix` (`kubernetes` holds
/// `kubernetes.pod_name`), with their schema field and dataset.
pub fn aliases_under(prefix: &str) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
    let audit = K8S_AUDIT_ALIASES.iter().map(|(original, schema)| (*original, *schema, "k8s.audit"));
    let container =
        K8S_CONTAINER_ALIASES.iter().map(|(original, schema)| (*original, *schema, "k8s.container"));
    audit.chain(container).filter_map(move |(original, schema, dataset)| {
        let below = original.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.'));
        below.then_some((schema, dataset))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_points_at_a_schema_field() {
        for (original, schema) in K8S_AUDIT_ALIASES.iter().chain(K8S_CONTAINER_ALIASES) {
            assert!(kind_of(schema).is_some(), "{original} -> {schema}");
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = ALL.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }
}
