//! Vigil's HTTP API and web UI, on axum.
//!
//! [`router`] builds every route over an [`AppState`]: the ingest endpoints
//! hand decoded events to the [`EventSink`] and
//! answer once they are durable; the search, event and alert endpoints read
//! the index's [`Searcher`] and the
//! [`AlertStore`]; the pages are askama templates
//! with their CSS and JavaScript embedded in the binary.
//!
//! This is the only crate that knows HTTP status codes: [`error::ApiError`]
//! maps the other crates' error kinds to them.

mod api;
pub mod error;
mod extract;
mod ingest;
mod metrics;
mod ui;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use vigil_index::Searcher;
use vigil_ingest::k8s_audit;
use vigil_rules::{AlertStore, LiveRules};
use vigil_schema::EventSink;

pub use metrics::{DestinationCounters, Metrics, NotificationCounters};
pub use ui::percent_encode;

/// Request size and time limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body as sent.
    pub max_body_bytes: usize,
    /// Largest body once decompressed.
    pub max_decoded_bytes: usize,
    /// Longest a body may take to arrive.
    pub body_timeout: std::time::Duration,
}

/// What the handlers share.
pub struct AppState {
    pub sink: Arc<dyn EventSink>,
    pub searcher: Searcher,
    pub alerts: Arc<dyn AlertStore>,
    /// The running rules; replaced whole on reload.
    pub rules: Arc<LiveRules>,
    pub limits: Limits,
    pub audit_context: k8s_audit::Context,
    pub metrics: Metrics,
}

/// The Content-Security-Policy of every page: nothing inline, nothing from
/// elsewhere. Events are written by attackers; this is the second line of
/// defence after escaping.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Every route of the API and the UI.
pub fn router(state: Arc<AppState>) -> Router {
    let ingest = Router::new()
        .route("/api/v1/ingest/k8s-audit", post(ingest::k8s_audit))
        .route("/api/v1/ingest/falco", post(ingest::falco))
        .route("/api/v1/ingest/logs", post(ingest::logs))
        .route("/api/v1/ingest/logs/{tag}", post(ingest::logs))
        .route("/_bulk", post(ingest::bulk))
        .route("/{index}/_bulk", post(ingest::bulk))
        // The handlers enforce their own, configurable limits with a clear 413.
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .merge(ingest)
        .route("/healthz", get(api::healthz))
        .route("/_cluster/health", get(ingest::cluster_health))
        .route("/metrics", get(api::metrics))
        .route("/api/v1/search", get(api::search))
        .route("/api/v1/histogram", get(api::histogram))
        .route("/api/v1/fields", get(api::fields))
        .route("/api/v1/partitions", get(api::partitions))
        .route("/api/v1/fields/{field}/top", get(api::top_values))
        .route("/api/v1/fields/{field}/distinct", get(api::distinct))
        .route("/api/v1/events/{id}", get(api::event))
        .route("/api/v1/alerts", get(api::alerts))
        .route("/api/v1/alerts/{id}", get(api::alert).patch(api::update_alert))
        .route("/api/v1/rules", get(api::rules))
        .route("/", get(ui::home))
        .route("/events/{id}", get(ui::event_page))
        .route("/assets/{name}", get(ui::asset))
        .fallback(api::not_found)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}
