//! The JSON API.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Value, json};
use vigil_index::{
    Cursor, Lag, MAX_LIMIT, SearchRequest, Searcher, SortOrder, StoreError, parse_interval, parse_time_bound,
    query,
};
use vigil_rules::AlertStatus;
use vigil_schema::{Event, EventId, fields};

use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::{AppState, Limits};

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let body = state.metrics.render(
        state.searcher.count(),
        state.searcher.max_partition_segments(),
        state.rules.current().rules().len(),
        state.searcher.indexing_lag(),
        state.searcher.commits(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// Reads a body up to `http.max_body_bytes`, or answers 413; one that takes
/// longer than `http.body_timeout_ms` to arrive, 408.
pub async fn read_body(body: Body, limits: &Limits, headers: &HeaderMap) -> Result<Bytes, ApiError> {
    let limit = limits.max_body_bytes;
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "request body is larger than the limit of {limit} bytes (http.max_body_bytes)"
        ))
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    #[allow(clippy::disallowed_methods, reason = "this is the one bounded body reader")]
    let read = tokio::time::timeout(limits.body_timeout, axum::body::to_bytes(body, limit)).await;
    match read {
        Err(_) => Err(ApiError::RequestTimeout(format!(
            "request body did not arrive within {} ms (http.body_timeout_ms)",
            limits.body_timeout.as_millis()
        ))),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error)) => {
            let is_limit = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if is_limit {
                Err(too_large())
            } else {
                Err(ApiError::BadRequest(format!("cannot read request body: {error}")))
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct SearchParams {
    #[serde(default)]
    pub q: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<usize>,
    /// `newest` (the default) or `oldest` first.
    pub order: Option<String>,
    /// A previous answer's `next_cursor`.
    pub cursor: Option<String>,
}

/// Parses search parameters into a request.
pub fn search_request(params: &SearchParams, default_limit: usize) -> Result<SearchRequest, ApiError> {
    let query = query::parse(&params.q).map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let cursor = match params.cursor.as_deref().filter(|text| !text.is_empty()) {
        None => None,
        Some(text) => Some(
            text.parse::<Cursor>().map_err(|message| ApiError::BadRequest(format!("cursor: {message}")))?,
        ),
    };
    // A later page reads relative times (`from=2h`) as its first page did.
    let now = cursor.and_then(|cursor| cursor.now()).unwrap_or_else(Utc::now);
    let bound = |name: &str, value: &Option<String>| match value.as_deref().filter(|text| !text.is_empty()) {
        None => Ok(None),
        Some(text) => parse_time_bound(text, now)
            .map(Some)
            .map_err(|message| ApiError::BadRequest(format!("{name}: {message}"))),
    };
    let limit = params.limit.unwrap_or(default_limit);
    if limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!("limit: {limit} is more than the maximum of {MAX_LIMIT}")));
    }
    let order = match params.order.as_deref().unwrap_or("newest") {
        "newest" | "desc" | "" => SortOrder::NewestFirst,
        "oldest" | "asc" => SortOrder::OldestFirst,
        other => return Err(ApiError::BadRequest(format!("order: {other:?} is not newest or oldest"))),
    };
    Ok(SearchRequest {
        query,
        from: bound("from", &params.from)?,
        to: bound("to", &params.to)?,
        limit,
        order,
        cursor,
        now: Some(now),
    })
}

/// An event as the API shows it: `id`, `@timestamp`, `event` (the schema
/// fields with `@timestamp` and `event.id`) and `original`.
pub fn hit_json(event: &Event) -> Value {
    // Serializing a hit cannot fail: every map key is a string.
    serde_json::to_value(Hit(event)).unwrap_or(Value::Null)
}

/// An event as the API shows it, serialized straight from the event (a page
/// of 100 hits would otherwise copy every event's fields and original once
/// more).
struct Hit<'a>(&'a Event);

impl Serialize for Hit<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let event = self.0;
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("@timestamp", &vigil_schema::format_timestamp(event.timestamp))?;
        map.serialize_entry("event", &SchemaFields(event))?;
        map.serialize_entry("id", &event.id.to_string())?;
        map.serialize_entry("original", &event.original)?;
        map.end()
    }
}

/// [`Event::to_schema_json`] without the copy: the fields in name order,
/// with `@timestamp` and `event.id` in their places.
struct SchemaFields<'a>(&'a Event);

impl Serialize for SchemaFields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let event = self.0;
        let timestamp = Value::String(vigil_schema::format_timestamp(event.timestamp));
        let id = Value::String(event.id.to_string());
        let mut extra = [(fields::TIMESTAMP, &timestamp), (fields::EVENT_ID, &id)].into_iter().peekable();
        let mut map = serializer.serialize_map(Some(event.fields.len() + 2))?;
        for (name, value) in &event.fields {
            while let Some((extra_name, extra_value)) = extra.next_if(|(extra_name, _)| *extra_name < name) {
                map.serialize_entry(extra_name, extra_value)?;
            }
            map.serialize_entry(name, value)?;
        }
        for (name, value) in extra {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct SearchResponse<'a> {
    total: u64,
    hits: Vec<Hit<'a>>,
    next_cursor: Option<String>,
    /// Events acknowledged before the search that it could not see yet.
    indexing_lag: Option<Lag>,
}

/// `GET /api/v1/search?q=&from=&to=&limit=&order=&cursor=`
pub async fn search(
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Response, ApiError> {
    let request = search_request(&params, 100)?;
    let (result, indexing_lag) =
        on_index(&state, &params.q, move |searcher| searcher.search(&request)).await?;
    let next_cursor = result.next_cursor.map(|cursor| cursor.to_string());
    let response = SearchResponse {
        total: result.total,
        hits: result.hits.iter().map(Hit).collect(),
        next_cursor,
        indexing_lag,
    };
    let body = serde_json::to_vec(&response)
        .map_err(|error| ApiError::Internal(format!("cannot write the search response: {error}")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[derive(Debug, Deserialize)]
pub struct HistogramParams {
    #[serde(default)]
    q: String,
    from: Option<String>,
    to: Option<String>,
    interval: Option<String>,
}

/// `GET /api/v1/histogram?q=&from=&to=[&interval=]`
pub async fn histogram(
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<HistogramParams>,
) -> Result<Json<Value>, ApiError> {
    let search = SearchParams {
        q: params.q,
        from: params.from,
        to: params.to,
        limit: Some(0),
        order: None,
        cursor: None,
    };
    let request = search_request(&search, 0)?;
    let interval = match params.interval.as_deref().filter(|text| !text.is_empty()) {
        None => None,
        Some(text) => Some(
            parse_interval(text).map_err(|message| ApiError::BadRequest(format!("interval: {message}")))?,
        ),
    };
    let (histogram, indexing_lag) =
        on_index(&state, &search.q, move |searcher| searcher.histogram(&request, interval)).await?;
    let answer = serde_json::to_value(histogram).map_err(|error| ApiError::Internal(error.to_string()))?;
    Ok(Json(with_lag(answer, indexing_lag)))
}

/// Runs a search or an aggregation on the blocking pool; with its answer,
/// what it could not see yet (taken before it ran: at most what it missed).
/// A fault of the query is shown under the query's text.
async fn on_index<T: Send + 'static>(
    state: &AppState,
    query: &str,
    job: impl FnOnce(&Searcher) -> Result<T, StoreError> + Send + 'static,
) -> Result<(T, Option<Lag>), ApiError> {
    let searcher = state.searcher.clone();
    let indexing_lag = searcher.indexing_lag();
    let answer = tokio::task::spawn_blocking(move || job(&searcher)).await?;
    Ok((answer.map_err(|error| error.in_query(query))?, indexing_lag))
}

/// An aggregation's answer, with what it could not count yet (as a search's).
fn with_lag(mut answer: Value, indexing_lag: Option<Lag>) -> Value {
    if let Value::Object(object) = &mut answer {
        object.insert("indexing_lag".into(), json!(indexing_lag));
    }
    answer
}

/// `GET /api/v1/fields/{field}/top?q=&from=&to=[&limit=]`
pub async fn top_values(
    State(state): State<Arc<AppState>>,
    ApiPath(field): ApiPath<String>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<Value>, ApiError> {
    // The limit is of values, checked as a search's; the search lists no hits.
    let mut request = search_request(&params, 10)?;
    let limit = std::mem::take(&mut request.limit);
    let (top, indexing_lag) =
        on_index(&state, &params.q, move |searcher| searcher.top_values(&request, &field, limit)).await?;
    let answer = serde_json::to_value(top).map_err(|error| ApiError::Internal(error.to_string()))?;
    Ok(Json(with_lag(answer, indexing_lag)))
}

/// `GET /api/v1/fields/{field}/distinct?q=&from=&to=`: how many different values.
pub async fn distinct(
    State(state): State<Arc<AppState>>,
    ApiPath(field): ApiPath<String>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<Value>, ApiError> {
    let request = search_request(&params, 0)?;
    let (top, indexing_lag) =
        on_index(&state, &params.q, move |searcher| searcher.top_values(&request, &field, 0)).await?;
    Ok(Json(json!({
        "field": top.field, "distinct": top.distinct, "total": top.total, "missing": top.missing,
        "indexing_lag": indexing_lag,
    })))
}

/// `GET /api/v1/fields`: the fields seen, their types and a few values.
pub async fn fields(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let searcher = state.searcher.clone();
    let catalog = tokio::task::spawn_blocking(move || searcher.field_catalog()).await??;
    Ok(Json(json!({ "fields": catalog })))
}

/// `GET /api/v1/partitions`: the index's time partitions.
pub async fn partitions(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let searcher = state.searcher.clone();
    let partitions = tokio::task::spawn_blocking(move || searcher.partitions()).await?;
    Ok(Json(json!({ "partitions": partitions })))
}

/// `GET /api/v1/events/{id}`
pub async fn event(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let id: EventId = id
        .parse()
        .map_err(|error: vigil_schema::ParseEventIdError| ApiError::BadRequest(error.to_string()))?;
    let searcher = state.searcher.clone();
    match tokio::task::spawn_blocking(move || searcher.get(id)).await?? {
        Some(event) => Ok(Json(hit_json(&event))),
        None => Err(ApiError::NotFound(format!("no event {id}"))),
    }
}

#[derive(Debug, Deserialize)]
pub struct AlertParams {
    status: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/alerts?status=open&limit=100`
pub async fn alerts(
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<AlertParams>,
) -> Result<Json<Value>, ApiError> {
    let status = match params.status.as_deref().filter(|text| !text.is_empty() && *text != "all") {
        None => None,
        Some(text) => Some(AlertStatus::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!("status: {text:?} is not one of open, acknowledged, closed, all"))
        })?),
    };
    let limit = params.limit.unwrap_or(100).min(MAX_LIMIT);
    let store = state.alerts.clone();
    let alerts = tokio::task::spawn_blocking(move || store.list(status, limit)).await??;
    Ok(Json(json!({ "alerts": alerts })))
}

/// `GET /api/v1/alerts/{id}`: one alert with its comments.
pub async fn alert(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let store = state.alerts.clone();
    let alert = tokio::task::spawn_blocking(move || store.get(id)).await??;
    Ok(Json(json!(alert)))
}

/// The body of `PATCH /api/v1/alerts/{id}`: any of the three keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertPatch {
    status: Option<String>,
    /// A name, or `null` to unassign.
    #[serde(default, deserialize_with = "present")]
    assignee: Option<Option<String>>,
    comment: Option<CommentPatch>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommentPatch {
    author: String,
    text: String,
}

/// Tells a key given as `null` (`Some(None)`) from a missing one (`None`).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(deserializer)?))
}

/// `PATCH /api/v1/alerts/{id}`: `{"status": "acknowledged", "assignee": "dana",
/// "comment": {"author": "dana", "text": "looking"}}`; answers the alert.
pub async fn update_alert(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<i64>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let patch: AlertPatch = serde_json::from_slice(&body)
        .map_err(|error| ApiError::BadRequest(format!("invalid alert change: {error}")))?;
    let status = match patch.status.as_deref() {
        None => None,
        Some(text) => Some(AlertStatus::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!("status: {text:?} is not one of open, acknowledged, closed"))
        })?),
    };
    let update = vigil_rules::AlertUpdate {
        status,
        assignee: patch.assignee,
        comment: patch
            .comment
            .map(|comment| vigil_rules::NewComment { author: comment.author, text: comment.text }),
    };
    let store = state.alerts.clone();
    let alert = tokio::task::spawn_blocking(move || store.update(id, &update)).await??;
    Ok(Json(json!(alert)))
}

/// `GET /api/v1/rules`: the loaded rules.
pub async fn rules(State(state): State<Arc<AppState>>) -> Json<Value> {
    let status = state.rules.status();
    let rules: Vec<_> = status.rules.rules().iter().map(|rule| rule.as_ref()).collect();
    Json(json!({
        "rules": rules,
        "warnings": status.rules.warnings(),
        "sources": status.origin.sources,
        "loaded_at": status.origin.loaded_at,
        "generation": status.generation,
        "reload_error": status.last_failure,
    }))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use vigil_schema::EventIdGenerator;

    use super::*;

    #[test]
    fn a_later_page_reads_relative_times_as_its_first_page_did() {
        let params = |cursor: Option<String>| SearchParams {
            q: "@timestamp:<=10m".into(),
            from: Some("2h".into()),
            cursor,
            ..SearchParams::default()
        };
        let first = search_request(&params(None), 10).unwrap();
        let then = first.now.unwrap();
        assert_eq!(first.from, Some(then - chrono::Duration::hours(2)));
        // The first page's cursor carries its `now`; read a while later,
        // the second page's window is the same.
        let cursor = format!("1.2.3.{}", then.timestamp_nanos_opt().unwrap());
        std::thread::sleep(std::time::Duration::from_millis(5));
        let second = search_request(&params(Some(cursor)), 10).unwrap();
        assert_eq!((second.now, second.from), (first.now, first.from));
        // A cursor of an earlier version has none: relative times are read now.
        let old = search_request(&params(Some("1.2.3".into())), 10).unwrap();
        assert!(old.now.unwrap() > then);
    }

    #[test]
    fn a_hit_is_written_with_the_schema_fields_and_the_original() {
        // The shape the API has always had, built the slow way.
        let expected = |event: &Event| {
            json!({
                "id": event.id.to_string(),
                "@timestamp": vigil_schema::format_timestamp(event.timestamp),
                "event": event.to_schema_json(),
                "original": event.original,
            })
        };
        let ids = EventIdGenerator::new();
        let mut event =
            Event::new(ids.next(), Utc::now(), json!({"verb": "get", "objectRef": {"resource": "pods"}}));
        // Names before, between and after the two that are put back.
        for name in ["0.first", "agent.name", "event.dataset", "event.kind", "user.name", "zz.last"] {
            event.set(name, format!("value of {name}"));
        }
        event.set("http.response.status_code", 403);
        let direct = serde_json::to_vec(&Hit(&event)).unwrap();
        assert_eq!(String::from_utf8(direct).unwrap(), serde_json::to_string(&expected(&event)).unwrap());
        assert_eq!(hit_json(&event), expected(&event));

        let bare = Event::new(ids.next(), Utc::now(), json!({}));
        let direct = serde_json::to_vec(&Hit(&bare)).unwrap();
        assert_eq!(String::from_utf8(direct).unwrap(), serde_json::to_string(&expected(&bare)).unwrap());
    }
}
