//! Recent handler calls and the causal chains they form: `GET /calls`,
//! `GET /events/:id/chain` and `GET /traces/:id`.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::calls::{Call, Chain, ChainCall, Outcome, Published, parse_trace_id};

/// At most this many calls per `GET /calls`.
const MAX_LIMIT: usize = 1_000;

#[derive(Deserialize)]
pub struct Recent {
    limit: Option<usize>,
}

#[derive(Serialize)]
pub struct CallsView {
    calls: Vec<CallView>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallView {
    handler: String,
    version: String,
    topic: String,
    partition: i32,
    offset: i64,
    event_id: Option<String>,
    event_type: Option<String>,
    trace_id: Option<String>,
    attempts: u32,
    /// `handled`, `deadLettered` or `abandoned`.
    outcome: &'static str,
    error: Option<String>,
    started_at: String,
    duration_ms: f64,
    published: Vec<PublishedView>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedView {
    event_id: Option<String>,
    event_type: Option<String>,
    topic: String,
    /// What this event caused (chains only).
    #[serde(skip_serializing_if = "Option::is_none")]
    calls: Option<Vec<CallView>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainView {
    event_id: String,
    calls: Vec<CallView>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceView {
    trace_id: String,
    roots: Vec<ChainView>,
}

fn outcome(o: Outcome) -> &'static str {
    match o {
        Outcome::Handled => "handled",
        Outcome::DeadLettered => "deadLettered",
        Outcome::Abandoned => "abandoned",
    }
}

fn call_view(c: &Call, published: Vec<PublishedView>) -> CallView {
    CallView {
        handler: c.handler.to_string(),
        version: c.version.to_string(),
        topic: c.topic.clone(),
        partition: c.partition,
        offset: c.offset,
        event_id: c.event_id.clone(),
        event_type: c.event_type.clone(),
        trace_id: c.trace_id.map(|t| format!("{t:032x}")),
        attempts: c.attempts,
        outcome: outcome(c.outcome),
        error: c.error.clone(),
        started_at: humantime::format_rfc3339_millis(c.started_at).to_string(),
        duration_ms: c.duration.as_secs_f64() * 1000.0,
        published,
    }
}

fn published_view(p: &Published, calls: Option<Vec<CallView>>) -> PublishedView {
    PublishedView {
        event_id: p.event_id.clone(),
        event_type: p.event_type.clone(),
        topic: p.topic.clone(),
        calls,
    }
}

fn chain_call_view(c: &ChainCall) -> CallView {
    let published = c
        .published
        .iter()
        .map(|(p, caused)| published_view(p, Some(caused.iter().map(chain_call_view).collect())))
        .collect();
    call_view(&c.call, published)
}

fn chain_view(chain: &Chain) -> ChainView {
    ChainView {
        event_id: chain.event_id.clone(),
        calls: chain.calls.iter().map(chain_call_view).collect(),
    }
}

/// `GET /calls?limit=N`: the latest calls, newest first (50 by default).
pub async fn recent(State(app): State<AppState>, Query(q): Query<Recent>) -> Json<CallsView> {
    let limit = q.limit.unwrap_or(50).min(MAX_LIMIT);
    let calls = app
        .bus()
        .calls()
        .recent(limit)
        .iter()
        .map(|c| {
            let published = c
                .published
                .iter()
                .map(|p| published_view(p, None))
                .collect();
            call_view(c, published)
        })
        .collect();
    Json(CallsView { calls })
}

/// `GET /events/:id/chain`.
pub async fn chain(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ChainView>, ApiError> {
    let chain = app.bus().calls().chain(&id).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no handler call on event {id} is recorded here (this host did not handle it, or it is older than CALL_HISTORY calls)"
        ))
    })?;
    Ok(Json(chain_view(&chain)))
}

/// `GET /traces/:id`.
pub async fn trace(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TraceView>, ApiError> {
    let trace = parse_trace_id(&id).ok_or_else(|| ApiError::Invalid {
        field: None,
        message: format!("{id} is not a trace id (32 hex digits, not all zero)"),
    })?;
    let roots = app.bus().calls().trace(trace);
    if roots.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no handler call of trace {id} is recorded here"
        )));
    }
    Ok(Json(TraceView {
        trace_id: id,
        roots: roots.iter().map(chain_view).collect(),
    }))
}
