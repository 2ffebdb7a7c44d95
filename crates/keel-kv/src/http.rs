//! The client API (axum): keys, membership, status, health and metrics.
//!
//! A request to a follower is served by the follower itself: writes are
//! proposed there and raft forwards them to the leader, linearizable reads
//! run ReadIndex through the leader, and the answer comes once this member
//! has applied the entry (or caught up to the read index). No redirect is
//! needed, so a client may talk to any member.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use crate::command::Op;
use crate::error::KvError;
use crate::server::{Shared, peer_host_port};
use crate::state::MemberChange;

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 4096;
/// Most pairs one listing returns.
pub const MAX_LIST_LIMIT: usize = 10_000;

/// Most bytes of keys and values in one listing (the JSON of values that
/// are not text, escaped or base64, may be a few times more); beyond it
/// the listing stops early and says `more`.
pub const MAX_LIST_BYTES: usize = 4 << 20;

#[derive(Clone)]
struct App {
    sh: Arc<Shared>,
    max_body: usize,
}

/// The routes of one member; bodies above `max_body` bytes get 413, and a
/// request not read and served within `deadline` gets 408 (its connection
/// then closes), so that a client that sends slowly holds nothing for long.
pub fn router(sh: Arc<Shared>, max_body: usize, deadline: std::time::Duration) -> Router {
    Router::new()
        .route("/kv", get(list))
        .route("/kv/", any(empty_key))
        .route("/kv/{*key}", get(get_key).put(put_key).delete(delete_key))
        .route("/members", get(members).post(add_member))
        .route("/members/{id}/promote", post(promote_member))
        .route("/members/{id}", delete(remove_member))
        .route("/status", get(status))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(move |req, next: axum::middleware::Next| async move {
            match tokio::time::timeout(deadline, next.run(req)).await {
                Ok(response) => response,
                Err(_) => KvError::RequestTimeout(deadline.as_millis() as u64).into_response(),
            }
        }))
        .with_state(App { sh, max_body })
}

async fn method_not_allowed() -> KvError {
    KvError::MethodNotAllowed
}

type Result<T, E = KvError> = std::result::Result<T, E>;

fn key_of(path: Result<Path<String>, PathRejection>) -> Result<String> {
    let Path(key) = path.map_err(|e| KvError::BadRequest(format!("bad key: {e}")))?;
    check_key(&key)?;
    Ok(key)
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(KvError::BadRequest("the key is empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KvError::BadRequest(format!("the key is longer than {MAX_KEY_BYTES} bytes")));
    }
    if key.chars().any(char::is_control) {
        return Err(KvError::BadRequest("the key contains control characters".into()));
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReadParams {
    consistency: Option<String>,
    prefix: Option<String>,
    /// A listing's next page: keys after this one.
    after: Option<String>,
    limit: Option<usize>,
}

fn params(q: Result<Query<ReadParams>, QueryRejection>) -> Result<ReadParams> {
    q.map(|Query(p)| p).map_err(|e| KvError::BadRequest(format!("bad query: {e}")))
}

/// Waits for the read barrier the request asks for.
async fn read_barrier(sh: &Shared, p: &ReadParams) -> Result<()> {
    match p.consistency.as_deref() {
        None | Some("linearizable") => sh.linearizable_barrier().await,
        Some("serializable") => Ok(()),
        Some(other) => Err(KvError::BadRequest(format!(
            "consistency must be linearizable or serializable, not {other:?}"
        ))),
    }
}

async fn get_key(
    State(app): State<App>,
    path: Result<Path<String>, PathRejection>,
    q: Result<Query<ReadParams>, QueryRejection>,
) -> Result<Response> {
    let key = key_of(path)?;
    let p = params(q)?;
    read_barrier(&app.sh, &p).await?;
    let value = app.sh.state().get(&key);
    match value {
        Some(v) => {
            Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"))], v)
                .into_response())
        }
        None => Err(KvError::NotFound(format!("key {key:?} not found"))),
    }
}

fn body_of(app: &App, body: Result<Bytes, BytesRejection>) -> Result<Bytes> {
    body.map_err(|e| refused(app, e.status(), format!("cannot read the body: {e}")))
}

/// A body its extractor refused (with `status`): 413 over the limit, else a
/// 400 that says `why`.
fn refused(app: &App, status: StatusCode, why: String) -> KvError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        KvError::TooLarge(app.max_body)
    } else {
        KvError::BadRequest(why)
    }
}

async fn put_key(
    State(app): State<App>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let key = key_of(path)?;
    let value = body_of(&app, body)?;
    let a = app.sh.write(Op::Put, key, value).await?;
    Ok(Json(json!({ "index": a.index, "created": !a.existed })).into_response())
}

async fn delete_key(
    State(app): State<App>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let key = key_of(path)?;
    let a = app.sh.write(Op::Delete, key, Bytes::new()).await?;
    Ok(Json(json!({ "index": a.index, "deleted": a.existed })).into_response())
}

async fn list(
    State(app): State<App>,
    q: Result<Query<ReadParams>, QueryRejection>,
) -> Result<Response> {
    let p = params(q)?;
    let limit = p.limit.unwrap_or(1000);
    if limit == 0 || limit > MAX_LIST_LIMIT {
        return Err(KvError::BadRequest(format!("limit must be in 1..={MAX_LIST_LIMIT}")));
    }
    read_barrier(&app.sh, &p).await?;
    let prefix = p.prefix.unwrap_or_default();
    let (pairs, more) = app.sh.state().range(&prefix, p.after.as_deref(), limit, MAX_LIST_BYTES);
    let kvs: Vec<_> = pairs
        .into_iter()
        .map(|(k, v)| match std::str::from_utf8(&v) {
            Ok(s) => json!({ "key": k, "value": s }),
            Err(_) => json!({
                "key": k,
                "value_base64": base64::engine::general_purpose::STANDARD.encode(&v),
            }),
        })
        .collect();
    Ok(Json(json!({ "kvs": kvs, "more": more })).into_response())
}

async fn empty_key() -> KvError {
    KvError::BadRequest("the key is empty".into())
}

async fn unknown_route() -> KvError {
    KvError::NotFound(
        "no such route; see /kv/{key}, /kv?prefix=, /members, /status, /health, /metrics".into(),
    )
}

fn members_json(sh: &Shared) -> serde_json::Value {
    let st = sh.state();
    let members: Vec<_> = st.members().values().cloned().collect();
    json!({ "members": members, "leader": sh.leader() })
}

async fn members(State(app): State<App>) -> Json<serde_json::Value> {
    Json(members_json(&app.sh))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMember {
    id: u64,
    peer_url: String,
    #[serde(default)]
    learner: bool,
}

fn member_id(path: Result<Path<String>, PathRejection>) -> Result<u64> {
    let Path(raw) = path.map_err(|e| KvError::BadRequest(format!("bad member id: {e}")))?;
    raw.parse::<u64>()
        .ok()
        .filter(|id| *id != 0)
        .ok_or_else(|| KvError::BadRequest(format!("member id {raw:?} is not a positive integer")))
}

async fn add_member(
    State(app): State<App>,
    body: Result<Json<AddMember>, JsonRejection>,
) -> Result<Response> {
    let Json(req) = body.map_err(|e| refused(&app, e.status(), format!("bad member JSON: {e}")))?;
    if req.id == 0 || [keel::LOCAL_APPLY_THREAD, keel::LOCAL_APPEND_THREAD].contains(&req.id) {
        return Err(KvError::BadRequest(format!("member id {} is reserved", req.id)));
    }
    // Looked up here so that a typo is a 400, without blocking a worker.
    let host_port = peer_host_port(&req.peer_url).map_err(KvError::BadRequest)?;
    let found = tokio::net::lookup_host(host_port).await.map(|mut addrs| addrs.next());
    if !matches!(found, Ok(Some(_))) {
        return Err(KvError::BadRequest(format!("peer URL {:?} does not resolve", req.peer_url)));
    }
    let change = MemberChange::Add { id: req.id, learner: req.learner };
    let a = app.sh.change_membership(change, Some(req.peer_url)).await?;
    let mut body = members_json(&app.sh);
    body["index"] = json!(a.index);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn promote_member(
    State(app): State<App>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let id = member_id(path)?;
    app.sh.state().check_change(MemberChange::Promote(id))?;
    // Refuse to promote a learner that is far behind (as etcd does): it
    // would count towards the quorum without the log. Only the leader
    // tracks how far members are, so only the leader may decide.
    let st = app.sh.node.status_async().await.map_err(|e| KvError::from_raft(&e))?;
    if st.basic.soft_state.raft_state != keel::StateType::Leader {
        return Err(KvError::NotLeader(st.basic.soft_state.lead));
    }
    if let (Some(me), Some(it)) = (st.progress.get(&app.sh.id), st.progress.get(&id))
        && (it.matched() as f64) < (me.matched() as f64) * 0.9
    {
        return Err(KvError::Conflict(format!(
            "learner {id} is not caught up (match {} of {})",
            it.matched(),
            me.matched()
        )));
    }
    let a = app.sh.change_membership(MemberChange::Promote(id), None).await?;
    let mut body = members_json(&app.sh);
    body["index"] = json!(a.index);
    Ok(Json(body).into_response())
}

async fn remove_member(
    State(app): State<App>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let id = member_id(path)?;
    let a = app.sh.change_membership(MemberChange::Remove(id), None).await?;
    let mut body = members_json(&app.sh);
    body["index"] = json!(a.index);
    Ok(Json(body).into_response())
}

async fn status(State(app): State<App>) -> Result<Response> {
    let st = app.sh.node.status_async().await.map_err(|e| KvError::from_raft(&e))?;
    let progress: serde_json::Map<String, serde_json::Value> = st
        .progress
        .iter()
        .map(|(id, p)| {
            (
                id.to_string(),
                json!({
                    "match": p.matched(),
                    "next": p.next(),
                    "state": p.state().to_string(),
                    "learner": p.is_learner(),
                    "recent_active": p.recent_active(),
                }),
            )
        })
        .collect();
    let b = &st.basic;
    Ok(Json(json!({
        "id": b.id,
        "leader": b.soft_state.lead,
        "raft_state": format!("{:?}", b.soft_state.raft_state),
        "term": b.hard_state.term,
        "vote": b.hard_state.vote,
        "commit": b.hard_state.commit,
        "applied": app.sh.applied(),
        "raft_applied": b.applied,
        "lead_transferee": b.lead_transferee,
        "keys": app.sh.state().len(),
        "progress": progress,
    }))
    .into_response())
}

/// Entries an applied index may trail the commit index and still be healthy.
const HEALTHY_APPLY_LAG: u64 = 1000;

async fn health(State(app): State<App>) -> Response {
    let (leader, applied, commit) = (app.sh.leader(), app.sh.applied(), app.sh.commit());
    let reason = if leader == 0 {
        Some("no leader".to_string())
    } else if applied + HEALTHY_APPLY_LAG < commit {
        Some(format!("catching up: applied {applied} of {commit}"))
    } else {
        None
    };
    let body = json!({
        "health": if reason.is_none() { "ok" } else { "unhealthy" },
        "reason": reason,
        "leader": leader,
        "applied": applied,
        "commit": commit,
    });
    let code = if reason.is_none() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        app.sh.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(check_key("a/b c").is_ok());
        assert!(check_key("").is_err());
        assert!(check_key("a\nb").is_err());
        assert!(check_key(&"k".repeat(MAX_KEY_BYTES + 1)).is_err());
    }

    #[test]
    fn an_internal_error_reaches_the_log_but_not_the_client() {
        let detail = "raft: index 7 is out of bounds [lastindex: 3]";
        let answer = KvError::Internal(detail.into()).into_response();
        assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let body = rt.block_on(axum::body::to_bytes(answer.into_body(), 1 << 16)).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "internal");
        assert_eq!(body["message"], crate::error::INTERNAL_MESSAGE);
    }
}
