//! Events shared by the benches.

use serde_json::{Value, json};

/// An audit event of about 1 KB, as a Request-level ResponseComplete.
pub fn audit_event(n: usize) -> Value {
    let verb = ["get", "list", "create", "patch"][n % 4];
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Request",
        "auditID": format!("6c3b1f0e-1d2a-4b5c-9e8f-{n:012}"), "stage": "ResponseComplete",
        "requestURI": format!("/api/v1/namespaces/team-{}/pods/worker-{n}", n % 17), "verb": verb,
        "user": {"username": format!("system:serviceaccount:team-{}:builder", n % 17), "uid": "2d0c7e5a-0f4b-4d7e-8a57-3b1f6c9e2a10",
                 "groups": ["system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"]},
        "sourceIPs": ["10.12.4.7"], "userAgent": "kube-controller-manager/v1.31.2 (linux/amd64) kubernetes/5864a46/system:serviceaccount:kube-system:replicaset-controller",
        "objectRef": {"resource": "pods", "namespace": format!("team-{}", n % 17), "name": format!("worker-{n}"), "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestObject": {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": format!("worker-{n}"), "labels": {"app": "worker", "tier": "batch"}},
                          "spec": {"containers": [{"name": "main", "image": "registry.example/worker:1.4.2", "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}}}]}},
        "requestReceivedTimestamp": "2026-11-20T10:00:00.123456Z", "stageTimestamp": "2026-11-20T10:00:00.130001Z",
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "RBAC: allowed by RoleBinding \"builder/team\" of Role \"builder\" to ServiceAccount \"builder/team\""}
    })
}
