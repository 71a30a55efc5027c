//! The front of the Cloudflare stand-in: paths, the request pipeline, the
//! response envelope, and the operations.
//!
//! Every request goes through the same steps (after the test's gate, which
//! may hold it first: [`super::CloudflareServer::hold`]): count it, check the
//! `Authorization: Bearer` header (400 `6003`/`6111` when malformed, 403 `9109`
//! for a token the server does not know), note how long a token that was
//! answered 429 waited, refuse it while the user is blocked (429 `971`, the
//! seconds left), take an injected fault if one is queued, take a slot in the
//! sliding rate-limit window (429 `971` with `Retry-After` when full, and a
//! block until that time), then run the operation under the state lock.
//! Every answer is Cloudflare's v4 envelope: `{success, errors, messages,
//! result}` plus `result_info` on lists.

use crate::query::Query;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use http_body::Frame;
use serde_json::{Value, json};

use super::zone::{self, Fields, Record, Rules};
use super::{CfFault, RetryWait, Shared, State as ServerState, Token, Zone};
use crate::serve::Connection;

/// The path prefix of every operation.
pub(crate) const PREFIX: &str = "/client/v4";

/// `per_page` for DNS records: default and maximum ("List DNS Records").
const RECORDS_PER_PAGE: (usize, usize) = (100, 5_000_000);
/// `per_page` for zones: default, minimum and maximum ("List Zones").
const ZONES_PER_PAGE: (usize, usize, usize) = (20, 5, 50);
/// Operations in one batch on the Free plan ("Batch record changes").
pub(crate) const BATCH_MAX_FREE: usize = 200;

// ---------------------------------------------------------------- errors

/// An error answer: status and the `errors` array.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) errors: Vec<Value>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: u32, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            errors: vec![json!({"code": code, "message": message.into()})],
        }
    }

    /// A 400 for a record that fails Cloudflare's checks.
    pub(crate) fn validation(code: u32, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(crate) fn ttl() -> ApiError {
        ApiError::validation(
            9021,
            format!(
                "TTL must be between {} and {} seconds, or 1 for Automatic.",
                zone::TTL_MIN,
                zone::TTL_MAX
            ),
        )
    }

    pub(crate) fn invalid_body() -> ApiError {
        ApiError::validation(9207, "Request body is invalid.")
    }

    fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, 81044, "Record does not exist.")
    }

    fn authentication() -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, 10000, "Authentication error")
    }

    fn no_route(path: &str) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            errors: vec![
                json!({"code": 7003, "message": format!("Could not route to {path}, perhaps your object identifier is invalid?")}),
                json!({"code": 7000, "message": "No route for that URI"}),
            ],
        }
    }

    fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            10405,
            "Method not allowed for this route.",
        )
    }

    fn throttled() -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            971,
            "Please wait and consider throttling your request speed",
        )
    }

    fn query(message: impl Into<String>) -> ApiError {
        ApiError::validation(9001, message)
    }

    /// Marks every error with the batch operation it came from (JSON pointer
    /// into the request body, as Cloudflare's error `source.pointer`).
    fn at(mut self, pointer: String) -> ApiError {
        for error in &mut self.errors {
            error["source"] = json!({ "pointer": pointer });
        }
        self
    }
}

// ---------------------------------------------------------------- answers

/// What the pipeline decided, before it becomes an HTTP response.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) retry_after: Option<u64>,
    pub(crate) body: Value,
}

impl Answer {
    fn ok(result: Value, result_info: Option<Value>) -> Answer {
        let mut body = json!({"success": true, "errors": [], "messages": [], "result": result});
        if let Some(info) = result_info {
            body["result_info"] = info;
        }
        Answer {
            status: StatusCode::OK,
            retry_after: None,
            body,
        }
    }

    fn error(error: ApiError, retry_after: Option<u64>) -> Answer {
        Answer {
            status: error.status,
            retry_after,
            body: json!({"success": false, "errors": error.errors, "messages": [], "result": null}),
        }
    }

    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body.to_string()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Ok(ray) = HeaderValue::from_str(&format!("{:016x}-TST", rand::random::<u64>())) {
            headers.insert("cf-ray", ray);
        }
        response
    }
}

/// A request as the pipeline sees it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) authorization: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// The first half of the pipeline's verdict.
#[derive(Debug)]
pub(crate) enum Front {
    /// Answer this at once.
    Reply(Answer),
    /// Close the connection without a byte.
    Drop,
    /// Close the connection without a byte, with a TCP reset.
    Reset,
    /// Go on to the operation, after waiting this long if set.
    Continue(Option<Duration>),
}

// ---------------------------------------------------------------- routes

/// The operations, recognised from method and path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    ListZones,
    GetZone(String),
    ListRecords(String),
    CreateRecord(String),
    Batch(String),
    GetRecord(String, String),
    PatchRecord(String, String),
    PutRecord(String, String),
    DeleteRecord(String, String),
    /// A known path with a method it does not take.
    WrongMethod,
    Unknown,
}

impl Op {
    fn recognise(method: &Method, path: &str) -> Op {
        let Some(rest) = path.strip_prefix(PREFIX) else {
            return Op::Unknown;
        };
        let rest = rest.trim_end_matches('/');
        let segments: Vec<&str> = rest.split('/').skip(1).collect();
        let m = method.as_str();
        match segments.as_slice() {
            ["zones"] => match m {
                "GET" => Op::ListZones,
                _ => Op::WrongMethod,
            },
            ["zones", zone] => match m {
                "GET" => Op::GetZone((*zone).to_owned()),
                _ => Op::WrongMethod,
            },
            ["zones", zone, "dns_records"] => match m {
                "GET" => Op::ListRecords((*zone).to_owned()),
                "POST" => Op::CreateRecord((*zone).to_owned()),
                _ => Op::WrongMethod,
            },
            ["zones", zone, "dns_records", "batch"] if m == "POST" => Op::Batch((*zone).to_owned()),
            ["zones", zone, "dns_records", id] => {
                let (zone, id) = ((*zone).to_owned(), (*id).to_owned());
                match m {
                    "GET" => Op::GetRecord(zone, id),
                    "PATCH" => Op::PatchRecord(zone, id),
                    "PUT" => Op::PutRecord(zone, id),
                    "DELETE" => Op::DeleteRecord(zone, id),
                    _ => Op::WrongMethod,
                }
            }
            _ => Op::Unknown,
        }
    }

    /// The key in [`super::CfStats::requests`].
    fn stat(&self, method: &Method) -> String {
        match self {
            Op::ListZones | Op::GetZone(_) => format!("{method} zones"),
            Op::Batch(_) => "POST batch".to_owned(),
            Op::WrongMethod | Op::Unknown => "unknown".to_owned(),
            _ => format!("{method} dns_records"),
        }
    }

    fn is_write(&self) -> bool {
        matches!(
            self,
            Op::CreateRecord(_)
                | Op::Batch(_)
                | Op::PatchRecord(..)
                | Op::PutRecord(..)
                | Op::DeleteRecord(..)
        )
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    connection: Option<Connection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_write = Op::recognise(&method, uri.path()).is_write();
    match shared.gate.check(is_write) {
        None => serve(shared, connection, method, uri, headers, body).await,
        Some(verdict) => {
            let gate = shared.clone();
            crate::gate::after(
                verdict,
                serve(gate, connection, method, uri, headers, body),
                || Response::new(Body::new(Abort)),
            )
            .await
        }
    }
}

/// The pipeline, for a request the gate let through.
async fn serve(
    shared: Arc<Shared>,
    connection: Option<Connection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Request {
        method,
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        authorization: headers
            .get(header::AUTHORIZATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        body: body.to_vec(),
    };
    let front = front(&mut shared.lock(), &request);
    match front {
        Front::Reply(answer) => answer.into_response(),
        Front::Drop => Response::new(Body::new(Abort)),
        Front::Reset => {
            if let Some(connection) = connection {
                connection.reset_on_close();
            }
            Response::new(Body::new(Abort))
        }
        Front::Continue(delay) => {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            back(&mut shared.lock(), &request, Instant::now()).into_response()
        }
    }
}

/// Counting, authentication, the block after a 429, and faults.
pub(crate) fn front(state: &mut ServerState, request: &Request) -> Front {
    front_at(state, request, Instant::now())
}

/// [`front`] for a request that arrived at `now`.
pub(crate) fn front_at(state: &mut ServerState, request: &Request, now: Instant) -> Front {
    let op = Op::recognise(&request.method, &request.path);
    *state
        .stats
        .requests
        .entry(op.stat(&request.method))
        .or_default() += 1;
    if let Err(error) = authenticate(state, request.authorization.as_deref()) {
        state.stats.failed += 1;
        return Front::Reply(Answer::error(error, None));
    }
    let token = token_of(request);
    if state.told.get(&token).is_some_and(|until| now < *until) {
        state.stats.ignored_retry_after += 1;
    }
    if let Some((at, retry_after)) = state.waiting.remove(&token) {
        state.stats.retry_waits.push(RetryWait {
            retry_after,
            waited: now.saturating_duration_since(at),
        });
    }
    // Blocked: answered so before anything else, a queued fault included.
    if let Some(refusal) = state.window.blocked(now) {
        return Front::Reply(refuse(state, token, refusal, now));
    }
    if matches!(op, Op::Batch(_)) && state.batch_unsupported > 0 {
        state.batch_unsupported -= 1;
        state.stats.failed += 1;
        return Front::Reply(Answer::error(ApiError::method_not_allowed(), None));
    }
    let fault = match state.faults.pop_front() {
        None if op.is_write() => state.write_faults.pop_front(),
        fault => fault,
    };
    match fault {
        None => Front::Continue(None),
        Some(CfFault::Delay(delay)) => Front::Continue(Some(delay)),
        Some(CfFault::Drop) => Front::Drop,
        Some(CfFault::Reset) => Front::Reset,
        Some(CfFault::RateLimited { retry_after_secs }) => {
            state
                .window
                .block(now + Duration::from_secs(retry_after_secs));
            let refusal = super::Refusal {
                retry_after_secs,
                early: false,
            };
            Front::Reply(refuse(state, token, refusal, now))
        }
        Some(CfFault::ServerError(status)) => {
            state.stats.failed += 1;
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Front::Reply(Answer::error(
                ApiError::new(status, 10001, "Internal server error"),
                None,
            ))
        }
        // Queued by fail_next into its own counter; never in the queue.
        Some(CfFault::BatchUnsupported) => Front::Continue(None),
    }
}

/// The token of a request's well-formed `Authorization` header ("" without one).
fn token_of(request: &Request) -> String {
    request
        .authorization
        .as_deref()
        .and_then(bearer)
        .map(str::to_string)
        .unwrap_or_default()
}

/// A 429 for `token`, counted, and remembered: until when it was told to wait,
/// and since when, to measure its wait.
fn refuse(state: &mut ServerState, token: String, refusal: super::Refusal, now: Instant) -> Answer {
    state.stats.failed += 1;
    state.stats.rate_limited += 1;
    if refusal.early {
        state.stats.early_retries += 1;
    }
    let retry_after = Duration::from_secs(refusal.retry_after_secs);
    state.told.insert(token.clone(), now + retry_after);
    state.waiting.insert(token, (now, retry_after));
    Answer::error(ApiError::throttled(), Some(refusal.retry_after_secs))
}

/// Cloudflare's answers to a write that found the zone changed under it:
/// record gone, identical record exists.
const CONFLICT_CODES: [u64; 2] = [81044, 81058];

/// The rate limit, then the operation.
pub(crate) fn back(state: &mut ServerState, request: &Request, now: Instant) -> Answer {
    if let Err(refusal) = state.window.admit(now) {
        return refuse(state, token_of(request), refusal, now);
    }
    let op = Op::recognise(&request.method, &request.path);
    let token = request
        .authorization
        .as_deref()
        .and_then(bearer)
        .and_then(|t| state.tokens.get(t).cloned())
        .expect("front() admitted only known tokens");
    let query = Query::parse(&request.query);
    let batch = matches!(op, Op::Batch(_));
    let write = op.is_write();
    match run(state, &token, op, &request.path, &query, &request.body) {
        Ok(answer) => {
            if batch {
                state.stats.applied_batches += 1;
            }
            answer
        }
        Err(error) => {
            state.stats.failed += 1;
            let code = |e: &Value| e.get("code").and_then(Value::as_u64);
            if write
                && error
                    .errors
                    .iter()
                    .any(|e| code(e).is_some_and(|c| CONFLICT_CODES.contains(&c)))
            {
                state.stats.conflicts += 1;
            }
            Answer::error(error, None)
        }
    }
}

/// The token in a well-formed `Authorization: Bearer TOKEN` header.
fn bearer(header: &str) -> Option<&str> {
    let token = header.strip_prefix("Bearer ")?;
    (!token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then_some(token)
}

fn authenticate(state: &ServerState, authorization: Option<&str>) -> Result<(), ApiError> {
    let Some(header) = authorization else {
        // No credentials of either kind: Cloudflare names the API-key headers.
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            errors: vec![
                json!({"code": 9106, "message": "Missing X-Auth-Email header"}),
                json!({"code": 9107, "message": "Missing X-Auth-Key header"}),
            ],
        });
    };
    let Some(token) = bearer(header) else {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            errors: vec![json!({
                "code": 6003,
                "message": "Invalid request headers",
                "error_chain": [{"code": 6111, "message": "Invalid format for Authorization header"}],
            })],
        });
    };
    if !state.tokens.contains_key(token) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            9109,
            "Invalid access token",
        ));
    }
    Ok(())
}

/// A body that fails at once: hyper then closes the connection without having
/// written anything, with a FIN, or with a RST after
/// [`Connection::reset_on_close`].
struct Abort;

impl http_body::Body for Abort {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::other(
            "testkit: CfFault::Drop or CfFault::Reset ends the connection",
        ))))
    }
}

// ---------------------------------------------------------------- operations

fn run(
    state: &mut ServerState,
    token: &Token,
    op: Op,
    path: &str,
    query: &Query,
    body: &[u8],
) -> Result<Answer, ApiError> {
    if op.is_write() && !token.dns_edit {
        return Err(ApiError::authentication());
    }
    match op {
        Op::ListZones => list_zones(state, token, query),
        Op::GetZone(id) => {
            let zone = visible_zone(state, token, &id, path)?;
            Ok(Answer::ok(zone_json(zone), None))
        }
        Op::ListRecords(id) => {
            let zone = visible_zone(state, token, &id, path)?;
            list_records(zone, query)
        }
        Op::CreateRecord(id) => {
            let fields = Fields::parse(&json_body(body)?)?;
            let limit = state.comment_limit;
            let zone = visible_zone_mut(state, token, &id, path)?;
            let record =
                rules(&zone.name, limit).build(fields, zone::new_id(), SystemTime::now())?;
            zone::check_conflicts(&zone.records, &record)?;
            let result = record.to_json(&zone.id, &zone.name);
            zone.records.push(record);
            Ok(Answer::ok(result, None))
        }
        Op::GetRecord(id, record) => {
            let zone = visible_zone(state, token, &id, path)?;
            let record = find(&zone.records, &record, path)?;
            Ok(Answer::ok(record.to_json(&zone.id, &zone.name), None))
        }
        Op::PatchRecord(id, record) => update(state, token, &id, &record, path, body, true),
        Op::PutRecord(id, record) => update(state, token, &id, &record, path, body, false),
        Op::DeleteRecord(id, record) => {
            let zone = visible_zone_mut(state, token, &id, path)?;
            let index = position(&zone.records, &record, path)?;
            let removed = zone.records.remove(index);
            Ok(Answer::ok(json!({"id": removed.id}), None))
        }
        Op::Batch(id) => batch(state, token, &id, path, body),
        Op::WrongMethod => Err(ApiError::method_not_allowed()),
        Op::Unknown => Err(ApiError::no_route(path)),
    }
}

/// PATCH (merge over the record) or PUT (replace it, keeping its id).
fn update(
    state: &mut ServerState,
    token: &Token,
    zone_id: &str,
    record_id: &str,
    path: &str,
    body: &[u8],
    merge: bool,
) -> Result<Answer, ApiError> {
    let fields = Fields::parse(&json_body(body)?)?;
    let limit = state.comment_limit;
    let zone = visible_zone_mut(state, token, zone_id, path)?;
    let index = position(&zone.records, record_id, path)?;
    let updated = apply_update(&zone.records, &zone.name, limit, index, fields, merge)?;
    let result = updated.to_json(&zone.id, &zone.name);
    zone.records[index] = updated;
    Ok(Answer::ok(result, None))
}

fn apply_update(
    records: &[Record],
    zone_name: &str,
    limit: usize,
    index: usize,
    fields: Fields,
    merge: bool,
) -> Result<Record, ApiError> {
    let current = &records[index];
    let rules = rules(zone_name, limit);
    let now = SystemTime::now();
    let updated = if merge {
        rules.patch(current, fields, now)?
    } else {
        let mut record = rules.build(fields, current.id.clone(), now)?;
        record.created_on = current.created_on;
        record
    };
    zone::check_conflicts(records, &updated)?;
    Ok(updated)
}

fn rules(zone_name: &str, comment_limit: usize) -> Rules<'_> {
    Rules {
        zone_name,
        comment_limit,
    }
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|_| ApiError::invalid_body())
}

/// The zone, if it exists and the token may see it. A malformed id is a routing
/// error; a well-formed one the token cannot see is an authentication error, as
/// Cloudflare does not tell a zone outside the token's scope from one that does
/// not exist.
fn visible_zone<'a>(
    state: &'a ServerState,
    token: &Token,
    id: &str,
    path: &str,
) -> Result<&'a Zone, ApiError> {
    if !zone::is_id(id) {
        return Err(ApiError::no_route(path));
    }
    state
        .zones
        .iter()
        .find(|z| z.id == id && token.sees(&z.name))
        .ok_or_else(ApiError::authentication)
}

fn visible_zone_mut<'a>(
    state: &'a mut ServerState,
    token: &Token,
    id: &str,
    path: &str,
) -> Result<&'a mut Zone, ApiError> {
    if !zone::is_id(id) {
        return Err(ApiError::no_route(path));
    }
    state
        .zones
        .iter_mut()
        .find(|z| z.id == id && token.sees(&z.name))
        .ok_or_else(ApiError::authentication)
}

fn position(records: &[Record], id: &str, path: &str) -> Result<usize, ApiError> {
    if !zone::is_id(id) {
        return Err(ApiError::no_route(path));
    }
    records
        .iter()
        .position(|r| r.id.eq_ignore_ascii_case(id))
        .ok_or_else(ApiError::not_found)
}

fn find<'a>(records: &'a [Record], id: &str, path: &str) -> Result<&'a Record, ApiError> {
    position(records, id, path).map(|i| &records[i])
}

/// A zone as `GET /zones` and `GET /zones/{id}` show it: a full zone on the
/// Free plan, owned by a user, active since its creation. Every field the
/// Zone schema requires is there, so that SDKs that validate responses
/// strictly (the official Python SDK, generated from the OpenAPI schema)
/// accept it: `id`, `name`, `account`, `created_on`, `modified_on`,
/// `development_mode`, `meta`, `name_servers`, `owner` and `plan` in the
/// current schema, `activated_on`, `original_dnshost`,
/// `original_name_servers` and `original_registrar` (nullable) in earlier
/// ones; the rest as Cloudflare fills them for such a zone.
fn zone_json(zone: &Zone) -> Value {
    let at = zone::timestamp(zone.created_on);
    json!({
        "id": zone.id,
        "name": zone.name,
        "status": "active",
        "paused": false,
        "type": "full",
        "development_mode": 0,
        "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
        "original_name_servers": null,
        "original_registrar": null,
        "original_dnshost": null,
        "created_on": at,
        "modified_on": at,
        "activated_on": at,
        "meta": {
            "step": 2,
            "custom_certificate_quota": 0,
            "page_rule_quota": 3,
            "phishing_detected": false,
            "cdn_only": false,
            "dns_only": false,
            "foundation_dns": false,
        },
        "owner": {"id": OWNER_ID, "type": "user", "email": "testkit@example.com"},
        "account": {"id": ACCOUNT_ID, "name": "testkit"},
        "tenant": {"id": null, "name": null},
        "tenant_unit": {"id": null},
        "permissions": ["#zone:read", "#dns_records:read", "#dns_records:edit"],
        "plan": {
            "id": "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
            "name": "Free Website",
            "price": 0,
            "currency": "USD",
            "frequency": "",
            "is_subscribed": false,
            "can_subscribe": false,
            "legacy_id": "free",
            "legacy_discount": false,
            "externally_managed": false,
        },
    })
}

/// The account every zone belongs to.
const ACCOUNT_ID: &str = "0123456789abcdef0123456789abcdef";
/// The user who owns every zone.
const OWNER_ID: &str = "fedcba9876543210fedcba9876543210";

/// Pagination: `(page, per_page)` from the query, within the bounds.
fn paging(
    query: &Query,
    default: usize,
    min: usize,
    max: usize,
) -> Result<(usize, usize), ApiError> {
    let number = |key: &str, default: usize, lo: usize, hi: usize| -> Result<usize, ApiError> {
        match query.get(key) {
            None => Ok(default),
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| {
                    ApiError::query(format!("{key} must be a number between {lo} and {hi}"))
                }),
        }
    };
    Ok((
        number("page", 1, 1, usize::MAX)?,
        number("per_page", default, min, max)?,
    ))
}

/// One page of `items` and its `result_info`.
fn page(items: Vec<Value>, page: usize, per_page: usize) -> Answer {
    let total = items.len();
    let result: Vec<Value> = items
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    let info = json!({
        "page": page,
        "per_page": per_page,
        "count": result.len(),
        "total_count": total,
        "total_pages": total.div_ceil(per_page),
    });
    Answer::ok(Value::Array(result), Some(info))
}

fn list_zones(state: &ServerState, token: &Token, query: &Query) -> Result<Answer, ApiError> {
    let (page_no, per_page) = paging(query, ZONES_PER_PAGE.0, ZONES_PER_PAGE.1, ZONES_PER_PAGE.2)?;
    let name = query
        .get("name")
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase());
    let status_ok = query.get("status").is_none_or(|s| s == "active");
    let mut zones: Vec<&Zone> = state
        .zones
        .iter()
        .filter(|z| token.sees(&z.name))
        .filter(|z| name.as_ref().is_none_or(|n| *n == z.name))
        .filter(|_| status_ok)
        .collect();
    // Cloudflare lists zones by name unless told otherwise.
    zones.sort_by(|a, b| a.name.cmp(&b.name));
    if query.get("direction") == Some("desc") {
        zones.reverse();
    }
    Ok(page(
        zones.into_iter().map(zone_json).collect(),
        page_no,
        per_page,
    ))
}

/// A string filter: `key=v` / `key.exact=v` (case-insensitive equality),
/// `key.contains`, `key.startswith`, `key.endswith`; `comment.present` /
/// `comment.absent` test for a comment at all.
fn string_filters(query: &Query, key: &str, value: Option<&str>) -> Vec<bool> {
    let mut verdicts = Vec::new();
    let value = value.map(str::to_ascii_lowercase);
    for (k, wanted) in &query.pairs {
        let wanted = wanted.to_ascii_lowercase();
        let v = value.as_deref();
        let verdict = if k == key || *k == format!("{key}.exact") {
            let wanted = if key == "name" {
                wanted.trim_end_matches('.').to_owned()
            } else {
                wanted
            };
            v == Some(wanted.as_str())
        } else if *k == format!("{key}.contains") {
            v.is_some_and(|v| v.contains(&wanted))
        } else if *k == format!("{key}.startswith") {
            v.is_some_and(|v| v.starts_with(&wanted))
        } else if *k == format!("{key}.endswith") {
            v.is_some_and(|v| v.ends_with(&wanted))
        } else if *k == format!("{key}.present") {
            v.is_some()
        } else if *k == format!("{key}.absent") {
            v.is_none()
        } else {
            continue;
        };
        verdicts.push(verdict);
    }
    verdicts
}

fn list_records(zone: &Zone, query: &Query) -> Result<Answer, ApiError> {
    let (page_no, per_page) = paging(query, RECORDS_PER_PAGE.0, 1, RECORDS_PER_PAGE.1)?;
    let any = match query.get("match") {
        None | Some("all") => false,
        Some("any") => true,
        Some(other) => {
            return Err(ApiError::query(format!(
                "match must be 'all' or 'any', not '{other}'"
            )));
        }
    };
    let mut records: Vec<&Record> = zone
        .records
        .iter()
        .filter(|r| {
            let mut verdicts = Vec::new();
            if let Some(t) = query.get("type") {
                verdicts.push(t.eq_ignore_ascii_case(&r.rtype));
            }
            if let Some(p) = query.get("proxied") {
                verdicts.push(p == r.proxied.to_string());
            }
            verdicts.extend(string_filters(query, "name", Some(&r.name)));
            verdicts.extend(string_filters(query, "content", Some(&r.content)));
            verdicts.extend(string_filters(query, "comment", r.comment.as_deref()));
            if any && !verdicts.is_empty() {
                verdicts.iter().any(|v| *v)
            } else {
                verdicts.iter().all(|v| *v)
            }
        })
        .collect();
    let key = |r: &Record| -> (String, String, String) {
        (r.name.clone(), r.rtype.clone(), r.content.clone())
    };
    match query.get("order") {
        None | Some("name") => records.sort_by_key(|r| key(r)),
        Some("type") => records.sort_by_key(|r| (r.rtype.clone(), key(r))),
        Some("content") => records.sort_by_key(|r| (r.content.clone(), key(r))),
        Some("ttl") => records.sort_by_key(|r| (r.ttl, key(r))),
        Some("proxied") => records.sort_by_key(|r| (r.proxied, key(r))),
        Some(other) => {
            return Err(ApiError::query(format!(
                "order '{other}' is not one of type, name, content, ttl, proxied"
            )));
        }
    }
    if query.get("direction") == Some("desc") {
        records.reverse();
    }
    let items = records
        .into_iter()
        .map(|r| r.to_json(&zone.id, &zone.name))
        .collect();
    Ok(page(items, page_no, per_page))
}

/// `POST …/dns_records/batch`: deletes, patches, puts, posts, in that order
/// ("Batch DNS Records": "always executed in the following order"), in one
/// transaction: the first failure answers with the error of that operation
/// (its `source.pointer` names it, e.g. `/posts/1`) and nothing is applied.
fn batch(
    state: &mut ServerState,
    token: &Token,
    zone_id: &str,
    path: &str,
    body: &[u8],
) -> Result<Answer, ApiError> {
    let body = json_body(body)?;
    let object = body.as_object().ok_or_else(ApiError::invalid_body)?;
    let list = |key: &str| -> Result<Vec<Value>, ApiError> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items.clone()),
            Some(_) => Err(ApiError::invalid_body().at(format!("/{key}"))),
        }
    };
    let (deletes, patches, puts, posts) = (
        list("deletes")?,
        list("patches")?,
        list("puts")?,
        list("posts")?,
    );
    let total = deletes.len() + patches.len() + puts.len() + posts.len();
    let limit = state.comment_limit;
    let batch_max = state.batch_max;
    let zone = visible_zone_mut(state, token, zone_id, path)?;
    if total > batch_max {
        return Err(ApiError::validation(
            1004,
            format!("Batch exceeds the maximum of {batch_max} operations for this zone's plan."),
        ));
    }

    // Work on a copy; it replaces the zone's records only when every step passed.
    let mut records = zone.records.clone();
    let id_of = |item: &Value, pointer: &str| -> Result<String, ApiError> {
        item.get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ApiError::not_found().at(pointer.to_owned()))
    };
    let locate = |records: &[Record], id: &str, pointer: &str| -> Result<usize, ApiError> {
        records
            .iter()
            .position(|r| r.id.eq_ignore_ascii_case(id))
            .ok_or_else(|| ApiError::not_found().at(pointer.to_owned()))
    };
    let mut result = json!({"deletes": [], "patches": [], "puts": [], "posts": []});
    for (i, item) in deletes.iter().enumerate() {
        let pointer = format!("/deletes/{i}");
        let index = locate(&records, &id_of(item, &pointer)?, &pointer)?;
        let removed = records.remove(index);
        push(
            &mut result,
            "deletes",
            removed.to_json(&zone.id, &zone.name),
        );
    }
    for (key, items, merge) in [("patches", &patches, true), ("puts", &puts, false)] {
        for (i, item) in items.iter().enumerate() {
            let pointer = format!("/{key}/{i}");
            let index = locate(&records, &id_of(item, &pointer)?, &pointer)?;
            let fields = Fields::parse(item).map_err(|e| e.at(pointer.clone()))?;
            let updated = apply_update(&records, &zone.name, limit, index, fields, merge)
                .map_err(|e| e.at(pointer.clone()))?;
            push(&mut result, key, updated.to_json(&zone.id, &zone.name));
            records[index] = updated;
        }
    }
    for (i, item) in posts.iter().enumerate() {
        let pointer = format!("/posts/{i}");
        let fields = Fields::parse(item).map_err(|e| e.at(pointer.clone()))?;
        let record = rules(&zone.name, limit)
            .build(fields, zone::new_id(), SystemTime::now())
            .map_err(|e| e.at(pointer.clone()))?;
        zone::check_conflicts(&records, &record).map_err(|e| e.at(pointer.clone()))?;
        push(&mut result, "posts", record.to_json(&zone.id, &zone.name));
        records.push(record);
    }
    zone.records = records;
    Ok(Answer::ok(result, None))
}

fn push(result: &mut Value, key: &str, item: Value) {
    if let Some(list) = result[key].as_array_mut() {
        list.push(item);
    }
}
