//! Vigil's detection: Sigma rules, matched against every event, and the
//! alerts they raise.
//!
//! - [`RuleSet`]: rules loaded from [`RuleSource`]s (the built-in
//!   [`BUILTIN_PACK`] and directories), compiled with `rsigma-eval` and routed
//!   by logsource to the datasets they fit ([`DATASET_LOGSOURCES`]).
//!   [`RuleSet::evaluate`] gives the [`RuleMatch`]es of one event;
//!   [`RuleSet::evaluate_correlated`] also feeds a [`Correlator`] and
//!   answers the correlation rules that fire. Filters, field mapping and
//!   placeholders ([`RuleOptions`]) are applied before compiling.
//! - [`fixtures`]: the `NAME.tests.yaml` files `vigil rules test` runs.
//! - [`LiveRules`]: the running set, replaced whole and atomically on
//!   reload; a set that fails to load is refused and the old one kept.
//! - [`AlertStore`]: the alert state behind a small interface;
//!   [`SqliteAlertStore`] keeps it in an embedded SQLite database.
//!
//! Every `rsigma` type stays inside this crate: the rest of Vigil sees only
//! Vigil's own types. This crate knows nothing of tantivy or HTTP.

mod alerts;
mod event;
pub mod fixtures;
mod live;
mod ruleset;
mod transform;

pub use alerts::{
    Alert, AlertError, AlertErrorKind, AlertRule, AlertStatus, AlertStore, AlertUpdate, Comment, NewComment,
    RecordContext, RecordOutcome, SqliteAlertStore, Why, WhyField,
};
pub use live::{LiveRules, LiveStatus, ReloadFailure, RulesOrigin, SourceRevision};
pub use ruleset::{
    BUILTIN_PACK, Correlator, DATASET_LOGSOURCES, DEFAULT_GROUP_BY, DatasetLogsource, Diagnostic,
    K8S_AUDIT_FIELD_MAPPING, KubernetesMapping, LoadError, MatchedField, RuleInfo, RuleMatch, RuleOptions,
    RuleSet, RuleSource, Severity, datasets_for, sources_fingerprint,
};

#[cfg(test)]
mod conformance_tests;
#[cfg(test)]
mod semantics_tests;
#[cfg(test)]
mod tests;
