//! Vigil's sources, decoders and normalizers.
//!
//! Everything here turns bytes a sender produced into [`vigil_schema::Event`]s.
//! It knows nothing of HTTP, the index or the rules: the web crate calls
//! [`k8s_audit::decode_body`] for a request body, the binary calls it for an
//! audit log file, and both hand the events to an
//! [`EventSink`](vigil_schema::EventSink).
//!
//! - [`body`]: content decoding (gzip) with an explicit size limit.
//! - [`k8s_audit`]: the Kubernetes audit `EventList` / `Event` / JSON-lines
//!   decoder and the pure function [`k8s_audit::normalize`].
//! - [`falco`]: Falco's JSON alert normalizer.
//! - [`container`]: container logs and other shipped records (`k8s.container`).
//! - [`records`]: bodies of shipped records (JSON lines, JSON arrays) and of
//!   the Elasticsearch `_bulk` API.
//! - [`syslog`]: RFC 5424 / 3164 over UDP and TCP.
//! - [`tail`]: following log files (CRI, docker json-file, audit logs) through rotation.
//! - [`detect`]: which dataset a JSON line belongs to, for files of mixed events.
//! - [`forward`]: the Fluentd forward protocol server ([`forward::ForwardServer`])
//!   and the normalizer of forward records ([`forward::normalize_entry`]).

pub mod body;
pub mod container;
pub mod detect;
pub mod falco;
pub mod forward;
pub mod k8s_audit;
pub mod limits;
pub mod records;
pub mod syslog;
pub mod tail;

/// One item of a batch that could not be accepted, with where it was and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    /// The 0-based position of the item in the batch (`items[i]` of an
    /// `EventList`, or the i-th non-empty line).
    pub index: usize,
    /// The 1-based line of the body the item started on, for line-delimited bodies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub reason: String,
}
