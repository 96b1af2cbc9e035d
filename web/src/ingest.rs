//! The HTTP ingest endpoints: Kubernetes audit (webhook and files), Falco,
//! shipped log records (Fluentd `out_http`, Fluent Bit `http`), and the
//! Elasticsearch `_bulk` API. Each reads its body within the configured
//! limits, decodes and normalizes it on a blocking thread, hands the events
//! to the sink and answers once they are durable. A body that can never be
//! accepted gets a 4xx; a store that is behind gets 503 with `Retry-After`
//! (Fluentd's `out_http` retries only on 503).

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use vigil_ingest::body::{BodyError, decode};
use vigil_ingest::container::RecordContext;
use vigil_ingest::k8s_audit::{self, Decoded};
use vigil_ingest::records::{self, BulkOutcome};

use crate::api::read_body;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::metrics::SourceCounters;
use crate::{AppState, Metrics};

/// Reads and decodes a body (size limits, `Content-Encoding`), counting what
/// is refused.
async fn read_decoded(
    state: &AppState,
    counters: &SourceCounters,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<u8>, ApiError> {
    Metrics::add(&counters.requests, 1);
    let body: Bytes = match read_body(body, &state.limits, headers).await {
        Ok(body) => body,
        Err(error) => {
            if matches!(error, ApiError::PayloadTooLarge(_)) {
                Metrics::add(&counters.refused_too_large, 1);
            }
            return Err(error);
        }
    };
    Metrics::add(&counters.bytes, body.len() as u64);
    let encoding =
        headers.get(header::CONTENT_ENCODING).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let limit = state.limits.max_decoded_bytes;
    let decoded = tokio::task::spawn_blocking(move || decode(encoding.as_deref(), &body, limit)).await?;
    decoded.map_err(|error| match error {
        BodyError::TooLarge { .. } => {
            Metrics::add(&counters.refused_too_large, 1);
            ApiError::PayloadTooLarge(format!("{error} (http.max_decoded_bytes)"))
        }
        BodyError::UnsupportedEncoding(_) => ApiError::UnsupportedMediaType(error.to_string()),
        BodyError::InvalidGzip(_) => ApiError::BadRequest(error.to_string()),
    })
}

/// Makes the accepted events durable and answers `{"accepted", "rejected", "errors"}`.
async fn submit(
    state: &AppState,
    counters: &SourceCounters,
    decoded: Decoded,
    what: &str,
) -> Result<Response, ApiError> {
    let accepted = decoded.events.len();
    let rejected = decoded.rejected.len();
    if accepted > 0
        && let Err(error) = state.sink.submit(Arc::new(decoded.events)).await
    {
        Metrics::add(&counters.refused_unavailable, 1);
        return Err(error.into());
    }
    Metrics::add(&counters.accepted, accepted as u64);
    Metrics::add(&counters.rejected, rejected as u64);
    if rejected > 0 {
        tracing::debug!(accepted, rejected, first_reason = %decoded.rejected[0].reason, "{what} rejected");
    }
    let answer = json!({ "accepted": accepted, "rejected": rejected, "errors": decoded.rejected });
    // Nothing in the body can ever be accepted: say so with a 4xx, so that
    // the sender does not retry it.
    let status = if accepted == 0 && rejected > 0 { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    Ok((status, Json(answer)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct AuditParams {
    /// Overrides the configured cluster name for this request's events.
    cluster: Option<String>,
}

/// `POST /api/v1/ingest/k8s-audit[?cluster=NAME]`: an `EventList`, an
/// `Event` or newline-delimited Events, plain or gzip.
pub async fn k8s_audit(
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<AuditParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_decoded(&state, &state.metrics.audit, &headers, body).await?;
    let mut context = state.audit_context.clone();
    if let Some(cluster) = params.cluster.filter(|name| !name.is_empty()) {
        context.cluster_name = Some(cluster);
    }
    let decode_state = state.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        k8s_audit::decode_body(&bytes, decode_state.sink.ids(), &context)
    })
    .await?;
    submit(&state, &state.metrics.audit, decoded, "audit events").await
}

/// `POST /api/v1/ingest/falco`: Falco's JSON output, one alert per request
/// (`http_output`, Falcosidekick's webhook) or one per line.
pub async fn falco(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_decoded(&state, &state.metrics.falco, &headers, body).await?;
    let decode_state = state.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        records::decode_falco(&bytes, decode_state.sink.ids(), &decode_state.audit_context.limits)
    })
    .await?;
    submit(&state, &state.metrics.falco, decoded, "Falco alerts").await
}

#[derive(Debug, Deserialize)]
pub struct LogsParams {
    /// The dataset of records that carry no Kubernetes metadata.
    dataset: Option<String>,
}

/// `POST /api/v1/ingest/logs[?dataset=NAME]` and `POST /api/v1/ingest/logs/{tag}`:
/// log records as JSON lines or a JSON array (Fluentd `out_http`, Fluent Bit
/// `http` with `json` or `json_lines`), or msgpack (`Content-Type:
/// application/msgpack` or `application/x-msgpack`), plain or gzip.
pub async fn logs(
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<LogsParams>,
    tag: Option<Path<String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("");
    let msgpack = content_type.contains("msgpack");
    let bytes = read_decoded(&state, &state.metrics.logs, &headers, body).await?;
    let dataset = params.dataset.filter(|name| !name.is_empty()).or(tag.map(|Path(tag)| tag));
    let decode_state = state.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        let context = RecordContext {
            dataset: dataset.as_deref(),
            time: None,
            audit: Some(&decode_state.audit_context),
        };
        let limits = &decode_state.audit_context.limits;
        if msgpack {
            records::decode_msgpack_logs(&bytes, decode_state.sink.ids(), Utc::now(), &context, limits)
        } else {
            records::decode_logs(&bytes, decode_state.sink.ids(), Utc::now(), &context, limits)
        }
    })
    .await?;
    submit(&state, &state.metrics.logs, decoded, "log records").await
}

/// `POST /_bulk` and `POST /{index}/_bulk`: the Elasticsearch bulk API, so
/// that Fluent Bit's `es` output, Vector and Filebeat ship unchanged. The
/// answer has one item per action, as Elasticsearch clients expect; the
/// whole request is answered once the accepted documents are durable.
pub async fn bulk(
    State(state): State<Arc<AppState>>,
    index: Option<Path<String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let counters = &state.metrics.bulk;
    let bytes = read_decoded(&state, counters, &headers, body).await?;
    let default_index = index.map(|Path(index)| index);
    let decode_state = state.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        records::decode_bulk(
            &bytes,
            decode_state.sink.ids(),
            Utc::now(),
            default_index.as_deref(),
            &decode_state.audit_context,
        )
    })
    .await?
    .map_err(ApiError::BadRequest)?;
    let accepted = decoded.events.len();
    let ids: Vec<String> = decoded.events.iter().map(|event| event.id.to_string()).collect();
    if accepted > 0
        && let Err(error) = state.sink.submit(Arc::new(decoded.events)).await
    {
        Metrics::add(&counters.refused_unavailable, 1);
        return Err(error.into());
    }
    let mut errors = false;
    let items: Vec<serde_json::Value> = decoded
        .items
        .iter()
        .map(|item| {
            let body = match &item.outcome {
                BulkOutcome::Accepted(position) => json!({
                    "_index": item.index, "_id": ids[*position], "_version": 1, "result": "created", "status": 201,
                    "_shards": {"total": 1, "successful": 1, "failed": 0}
                }),
                BulkOutcome::Refused(reason) => {
                    errors = true;
                    json!({"_index": item.index, "status": 400, "error": {"type": "vigil_rejected", "reason": reason}})
                }
            };
            json!({ item.action.as_str(): body })
        })
        .collect();
    Metrics::add(&counters.accepted, accepted as u64);
    Metrics::add(&counters.rejected, (decoded.items.len() - accepted) as u64);
    let took = started.elapsed().as_millis() as u64;
    Ok(Json(json!({ "took": took, "errors": errors, "items": items })).into_response())
}

/// `GET /_cluster/health` (Vector's health check) and the Elasticsearch
/// root document some clients read before they ship.
pub async fn cluster_health() -> Json<serde_json::Value> {
    Json(json!({"cluster_name": "vigil", "status": "green", "number_of_nodes": 1, "number_of_data_nodes": 1}))
}
