//! The web pages: server-rendered askama templates; every value from an
//! event is escaped by the template engine, and the pages load only the
//! CSS and JavaScript embedded here (no inline script, see the CSP).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;
use vigil_rules::AlertStatus;
use vigil_schema::{Event, EventId, fields};

use crate::AppState;
use crate::api::{SearchParams, search_request};
use crate::error::ApiError;

const APP_CSS: &str = include_str!("../assets/app.css");
const APP_JS: &str = include_str!("../assets/app.js");

/// `GET /assets/{name}`
pub async fn asset(Path(name): Path<String>) -> Response {
    let (content_type, body) = match name.as_str() {
        "app.css" => ("text/css; charset=utf-8", APP_CSS),
        "app.js" => ("text/javascript; charset=utf-8", APP_JS),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

struct EventRow {
    id: String,
    time: String,
    dataset: String,
    who: String,
    action: String,
    outcome: String,
    message: String,
}

struct AlertRow {
    level: String,
    title: String,
    group: String,
    count: u64,
    last_seen: String,
    latest_event: Option<String>,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    q: String,
    from: String,
    to: String,
    error: Option<String>,
    total: u64,
    /// Said when indexing is behind what was acknowledged.
    behind: Option<String>,
    events: Vec<EventRow>,
    alerts: Vec<AlertRow>,
}

/// Indexing further behind than this (the freshness target) is said above
/// the events: searches miss what was acknowledged since.
const SAY_BEHIND_AFTER_SECONDS: f64 = 5.0;

fn behind_notice(lag: Option<vigil_index::Lag>) -> Option<String> {
    let lag = lag.filter(|lag| lag.events > 0 && lag.seconds >= SAY_BEHIND_AFTER_SECONDS)?;
    let events = if lag.events == 1 { "1 event".to_owned() } else { format!("{} events", lag.events) };
    Some(format!(
        "Indexing is {:.0} s behind: {events} acknowledged since are not searchable yet, and this page does not show them.",
        lag.seconds
    ))
}

#[derive(Template)]
#[template(path = "event.html")]
struct EventPage {
    id: String,
    time: String,
    message: String,
    fields: Vec<(String, String)>,
    pivots: Vec<(String, String)>,
    original: String,
}

fn render(template: &impl Template) -> Result<Html<String>, ApiError> {
    template.render().map(Html).map_err(|error| ApiError::Internal(format!("template: {error}")))
}

fn text_of(event: &Event, name: &str) -> String {
    match event.get(name) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) => items.iter().map(display_value).collect::<Vec<_>>().join(", "),
        Some(other) => display_value(other),
        None => String::new(),
    }
}

fn display_value(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// `GET /?q=&from=&to=`: recent events (or a search's hits) and open alerts.
pub async fn home(
    State(state): State<Arc<AppState>>,
    Query(params): Query<SearchParams>,
) -> Result<Html<String>, ApiError> {
    let alert_store = state.alerts.clone();
    let alerts = tokio::task::spawn_blocking(move || alert_store.list(Some(AlertStatus::Open), 50)).await??;
    let mut page = HomePage {
        q: params.q.clone(),
        from: params.from.clone().unwrap_or_default(),
        to: params.to.clone().unwrap_or_default(),
        error: None,
        total: 0,
        behind: behind_notice(state.searcher.indexing_lag()),
        events: Vec::new(),
        alerts: alerts
            .into_iter()
            .map(|alert| AlertRow {
                level: alert.rule.level,
                title: alert.rule.title,
                group: alert.group,
                count: alert.count,
                last_seen: alert.last_seen,
                latest_event: alert.event_ids.first().cloned(),
            })
            .collect(),
    };
    match search_request(&params, 50) {
        Err(ApiError::BadRequest(message)) => page.error = Some(message),
        Err(other) => return Err(other),
        Ok(request) => {
            let searcher = state.searcher.clone();
            match tokio::task::spawn_blocking(move || searcher.search(&request)).await? {
                Ok(result) => {
                    page.total = result.total;
                    page.events = result
                        .hits
                        .iter()
                        .map(|event| EventRow {
                            id: event.id.to_string(),
                            time: vigil_schema::format_timestamp(event.timestamp),
                            dataset: event.dataset().to_owned(),
                            who: text_of(event, fields::USER_NAME),
                            action: text_of(event, fields::EVENT_ACTION),
                            outcome: text_of(event, fields::EVENT_OUTCOME),
                            message: text_of(event, fields::MESSAGE),
                        })
                        .collect();
                }
                Err(error) if error.kind().is_client_error() => page.error = Some(error.to_string()),
                Err(error) => return Err(error.into()),
            }
        }
    }
    render(&page)
}

/// `GET /events/{id}`: one event, its schema fields and its original JSON.
pub async fn event_page(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let id: EventId = id
        .parse()
        .map_err(|error: vigil_schema::ParseEventIdError| ApiError::BadRequest(error.to_string()))?;
    let searcher = state.searcher.clone();
    let event = tokio::task::spawn_blocking(move || searcher.get(id))
        .await??
        .ok_or_else(|| ApiError::NotFound(format!("no event {id}")))?;
    let pivots = [
        fields::USER_NAME,
        fields::SOURCE_IP,
        fields::ORCHESTRATOR_NAMESPACE,
        fields::K8S_POD_NAME,
        fields::K8S_AUDIT_ID,
    ]
    .into_iter()
    .filter_map(|name| {
        let value = event.get_str(name)?;
        let query = format!("{name}:{}", vigil_index::query::TermValue::Phrase(value.to_owned()));
        Some((format!("{name} = {value}"), format!("/?q={}", percent_encode(&query))))
    })
    .collect();
    let page = EventPage {
        id: event.id.to_string(),
        time: vigil_schema::format_timestamp(event.timestamp),
        message: text_of(&event, fields::MESSAGE),
        fields: event.fields.iter().map(|(name, value)| (name.to_owned(), display_value(value))).collect(),
        pivots,
        original: serde_json::to_string_pretty(&event.original).unwrap_or_default(),
    };
    render(&page)
}

/// Percent-encodes a query-string value (everything but unreserved characters).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[test]
fn the_page_says_when_indexing_is_behind_the_freshness_target() {
    use vigil_index::Lag;
    assert_eq!(behind_notice(None), None, "a read-only searcher cannot know");
    assert_eq!(behind_notice(Some(Lag { events: 900, seconds: 1.2 })), None, "within the target");
    assert_eq!(behind_notice(Some(Lag { events: 0, seconds: 0.0 })), None);
    let notice = behind_notice(Some(Lag { events: 12_345, seconds: 16.4 })).unwrap();
    assert!(notice.starts_with("Indexing is 16 s behind: 12345 events acknowledged since"), "{notice}");
    assert!(behind_notice(Some(Lag { events: 1, seconds: 5.0 })).unwrap().contains(": 1 event acknowledged"));
}
