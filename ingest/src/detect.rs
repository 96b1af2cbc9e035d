//! Which dataset a JSON value belongs to, for inputs that mix them (`vigil
//! rules eval --events FILE`, `vigil ingest FILE`).

use serde_json::Value;

/// A dataset Vigil can normalize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataset {
    K8sAudit,
    Falco,
}

impl Dataset {
    pub fn name(self) -> &'static str {
        match self {
            Dataset::K8sAudit => crate::k8s_audit::DATASET,
            Dataset::Falco => crate::falco::DATASET,
        }
    }

    pub fn from_name(name: &str) -> Option<Dataset> {
        match name {
            crate::k8s_audit::DATASET => Some(Dataset::K8sAudit),
            crate::falco::DATASET => Some(Dataset::Falco),
            _ => None,
        }
    }
}

/// Guesses the dataset of one JSON value: an audit Event (or `EventList`)
/// by its `kind` or its `auditID` and `verb`, a Falco alert by its `rule`,
/// `output` and `priority`.
pub fn detect(value: &Value) -> Option<Dataset> {
    let object = value.as_object()?;
    let kind = object.get("kind").and_then(Value::as_str);
    if matches!(kind, Some("Event" | "EventList"))
        || (object.contains_key("auditID") && object.contains_key("verb"))
    {
        return Some(Dataset::K8sAudit);
    }
    if object.contains_key("rule") && object.contains_key("output") && object.contains_key("priority") {
        return Some(Dataset::Falco);
    }
    None
}
