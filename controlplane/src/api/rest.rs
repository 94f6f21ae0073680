//! The REST face of the service, under `/api/v1` (axum). Handlers only translate HTTP to
//! service calls and back: the auth middleware turns the bearer token into a [`Caller`],
//! item reads and writes carry the revision as `ETag` / `If-Match`, and every error is the
//! JSON body of [`ApiError`] with its status.

use crate::api::openapi;
use crate::auth::{Auth, Caller};
use crate::error::ApiError;
use crate::events::Event;
use crate::service::{format_of, Check, Service, WriteOutcome};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use louailink_shared::kind::KIND_NAMES;
use louailink_shared::{Format, Kind};
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_stream::wrappers::BroadcastStream;

/// Largest request body (an import of a large config).
pub const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Every route: method and path (the OpenAPI document is checked against this list).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/config"),
    ("put", "/api/v1/config"),
    ("post", "/api/v1/validate"),
    ("get", "/api/v1/history"),
    ("post", "/api/v1/rollback"),
    ("get", "/api/v1/nodes"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/basic"),
    ("put", "/api/v1/basic"),
    ("get", "/api/v1/{kind}"),
    ("get", "/api/v1/{kind}/{name}"),
    ("put", "/api/v1/{kind}/{name}"),
    ("delete", "/api/v1/{kind}/{name}"),
];

#[derive(Clone)]
struct AppState {
    service: Arc<Service>,
    auth: Arc<Auth>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.body())).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// The router, ready to serve with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(service: Arc<Service>, auth: Arc<Auth>) -> Router {
    let state = AppState { service, auth };
    let api = Router::new()
        .route("/api/v1/config", get(export).put(import))
        .route("/api/v1/validate", post(validate))
        .route("/api/v1/history", get(history))
        .route("/api/v1/rollback", post(rollback))
        .route("/api/v1/nodes", get(nodes))
        .route("/api/v1/events", get(events))
        .route("/api/v1/basic", get(get_basic).put(put_basic))
        .route("/api/v1/{kind}", get(list))
        .route(
            "/api/v1/{kind}/{name}",
            get(get_item).put(put_item).delete(delete_item),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/api/v1/openapi.json", get(openapi_doc))
        .merge(api)
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn authenticate(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = match state.auth.check(peer.ip(), header) {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    // A body to read, parse and validate takes one of the token's slots until answered.
    let _slot = if request.method() == Method::GET {
        None
    } else {
        match state.auth.admit(&caller).await {
            Ok(permit) => Some(permit),
            Err(e) => return e.into_response(),
        }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such API path; see /api/v1/openapi.json".into())
}

async fn openapi_doc() -> Json<Value> {
    Json(openapi::document())
}

fn etag(revision: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// `If-Match: "17"` (or `17`): the revision; absent: `None`.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse().map(Some).map_err(|_| {
        ApiError::invalid(format!(
            "If-Match must be a revision as returned in ETag (e.g. \"17\"), not {text:?}"
        ))
    })
}

fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("the body is not JSON: {e}")))
}

fn written(outcome: WriteOutcome, created: bool) -> Response {
    let status = if created && outcome.steps > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let tag = etag(outcome.revision);
    let mut response = (status, Json(outcome)).into_response();
    response.headers_mut().insert(header::ETAG, tag);
    response
}

async fn list(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(kind): Path<String>,
) -> ApiResult {
    Ok(Json(s.service.list(&caller, &kind).await?).into_response())
}

async fn get_item(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((kind, name)): Path<(String, String)>,
) -> ApiResult {
    let item = s.service.get(&caller, &kind, &name).await?;
    let tag = etag(item.revision);
    let mut response = Json(item).into_response();
    response.headers_mut().insert(header::ETAG, tag);
    Ok(response)
}

async fn put_item(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((kind, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let if_match = if_match(&headers)?;
    let value = json_body(&body)?;
    let outcome = s
        .service
        .put(&caller, &kind, &name, value, if_match)
        .await?;
    let created = !outcome.added.is_empty();
    Ok(written(outcome, created))
}

async fn delete_item(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((kind, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let if_match = if_match(&headers)?;
    let outcome = s.service.delete(&caller, &kind, &name, if_match).await?;
    Ok(written(outcome, false))
}

async fn get_basic(state: State<AppState>, caller: Extension<Caller>) -> ApiResult {
    let path = Path((Kind::Basic.to_string(), String::new()));
    get_item(state, caller, path).await
}

async fn put_basic(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let if_match = if_match(&headers)?;
    let value = json_body(&body)?;
    let outcome = s
        .service
        .put(&caller, Kind::Basic.as_str(), "", value, if_match)
        .await?;
    Ok(written(outcome, false))
}

#[derive(Deserialize)]
struct FormatQuery {
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    merge: Option<bool>,
}

async fn export(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<FormatQuery>,
) -> ApiResult {
    let exported = s
        .service
        .export(&caller, q.format.as_deref().unwrap_or("toml"))
        .await?;
    let content_type = if exported.format == "json" {
        "application/json"
    } else {
        "application/toml"
    };
    let mut response = exported.text.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::ETAG, etag(exported.revision));
    Ok(response)
}

/// The format a config body declares: `?format=`, else a JSON, YAML or TOML content type.
fn declared_format(query: Option<&str>, headers: &HeaderMap) -> Result<Option<Format>, ApiError> {
    if let Some(f) = query {
        return format_of(f).map(Some);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(if content_type.contains("json") {
        Some(Format::Json)
    } else if content_type.contains("yaml") {
        Some(Format::Yaml)
    } else if content_type.contains("toml") {
        Some(Format::Toml)
    } else {
        None
    })
}

/// The format of a config body: `?format=`, else the content type, else TOML.
fn body_format(query: Option<&str>, headers: &HeaderMap) -> Result<Format, ApiError> {
    Ok(declared_format(query, headers)?.unwrap_or(Format::Toml))
}

fn text_body(body: &Bytes) -> Result<&str, ApiError> {
    std::str::from_utf8(body).map_err(|_| ApiError::invalid("the body is not UTF-8 text"))
}

async fn import(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<FormatQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let format = body_format(q.format.as_deref(), &headers)?;
    let text = text_body(&body)?;
    let outcome = s
        .service
        .import(&caller, text, format, q.merge.unwrap_or(false))
        .await?;
    Ok(written(outcome, false))
}

/// The keys of the JSON forms of a `POST /api/v1/validate` body ([`ValidateBody`]).
const VALIDATE_KEYS: [&str; 6] = ["kind", "name", "value", "text", "format", "replace"];

/// `POST /api/v1/validate` body in its JSON forms: one item, or a whole config text.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidateBody {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    replace: Option<bool>,
}

async fn validate(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<FormatQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let check = validate_check(&q, &headers, &body)?;
    Ok(Json(s.service.validate(&caller, check).await?).into_response())
}

/// What a `POST /api/v1/validate` body asks to check: a JSON object of [`VALIDATE_KEYS`] is
/// one of the JSON forms; any other body is a whole config document, taken as
/// `PUT /api/v1/config` takes it (format from `?format=` or the content type, else JSON when
/// it is a JSON object, else TOML; replacing the stored config unless `?merge=true`).
fn validate_check(q: &FormatQuery, headers: &HeaderMap, body: &Bytes) -> Result<Check, ApiError> {
    let declared = declared_format(q.format.as_deref(), headers)?;
    let mut format = declared.unwrap_or(Format::Toml);
    if matches!(declared, None | Some(Format::Json)) {
        if let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) {
            let ours = obj
                .keys()
                .filter(|k| VALIDATE_KEYS.contains(&k.as_str()))
                .count();
            if ours > 0 && ours < obj.len() {
                return Err(ApiError::invalid(format!(
                    "the body mixes the keys of the {{\"kind\", \"name\", \"value\"}} / {{\"text\", \"format\", \"replace\"}} forms with those of a config document ({}); send one or the other",
                    KIND_NAMES.join(", ")
                )));
            }
            if ours > 0 {
                if q.merge.is_some() {
                    return Err(ApiError::invalid(
                        "merge= is for a whole config document; the {\"text\", \"format\", \"replace\"} form says \"replace\"",
                    ));
                }
                return validate_body(Value::Object(obj));
            }
            format = Format::Json;
        }
    }
    Ok(Check::Config {
        text: text_body(body)?.to_string(),
        format,
        replace: !q.merge.unwrap_or(false),
    })
}

/// One of the JSON forms: one item, or a whole config text.
fn validate_body(body: Value) -> Result<Check, ApiError> {
    let body: ValidateBody = serde_json::from_value(body).map_err(|e| {
        ApiError::invalid(format!(
            "the body must be {{\"kind\", \"name\", \"value\"}}, {{\"text\", \"format\", \"replace\"}} or a whole config document: {e}"
        ))
    })?;
    Ok(match (body.text, body.kind) {
        (Some(text), None) => Check::Config {
            text,
            format: format_of(body.format.as_deref().unwrap_or("toml"))?,
            replace: body.replace.unwrap_or(true),
        },
        (None, Some(kind)) => Check::Item {
            kind,
            name: body.name.unwrap_or_default(),
            value: body.value.unwrap_or(Value::Null),
        },
        _ => return Err(ApiError::invalid(
            "give either \"text\" (a whole config) or \"kind\", \"name\" and \"value\" (one item)",
        )),
    })
}

#[derive(Deserialize)]
struct HistoryQuery {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    item: Option<String>,
}

async fn history(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult {
    let entries = s
        .service
        .history(&caller, q.limit.unwrap_or(50), q.item.as_deref())
        .await?;
    Ok(Json(json!({ "entries": entries })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    to: i64,
}

async fn rollback(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let body: RollbackBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(format!("the body must be {{\"to\": <history id>}}: {e}"))
    })?;
    Ok(written(s.service.rollback(&caller, body.to).await?, false))
}

async fn nodes(State(s): State<AppState>, Extension(caller): Extension<Caller>) -> ApiResult {
    Ok(Json(s.service.nodes(&caller).await?).into_response())
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    stream: Option<bool>,
}

async fn events(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> ApiResult {
    let wants_stream = q.stream.unwrap_or(false)
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/event-stream"));
    if !wants_stream {
        let view = s
            .service
            .events(&caller, q.after.unwrap_or(0), q.limit.unwrap_or(100));
        return Ok(Json(view).into_response());
    }
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let after = last_id.or(q.after).unwrap_or(u64::MAX);
    Ok(Sse::new(event_stream(&s.service, &caller, after))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Recent events after `after` (none when `u64::MAX`), then live ones, as SSE.
fn event_stream(
    service: &Service,
    caller: &Caller,
    after: u64,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static {
    let (past, rx) = service.watch(caller, after);
    let live = BroadcastStream::new(rx).filter_map(|r| async move { r.ok() });
    stream::iter(past)
        .chain(live)
        .map(|e: Event| Ok(sse_event(&e)))
}

fn sse_event(e: &Event) -> SseEvent {
    let data = serde_json::to_string(e).unwrap_or_else(|_| "{}".into());
    SseEvent::default()
        .id(e.id.to_string())
        .event(e.name.clone())
        .data(data)
}
