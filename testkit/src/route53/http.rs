//! The front of the Route53 stand-in: paths, the request pipeline, error
//! answers and query strings (the operations are in `ops`, signatures in `auth`).
//!
//! Every request goes through the same steps, in the order AWS applies them
//! (after the test's gate, which may hold it first: [`super::Route53Server::hold`]):
//! count it, check the SigV4 `Authorization` header (403 without a well-formed
//! one), take an injected fault if one is queued, take tokens from the rate
//! limits' buckets (400 `Throttling` when one is short; see [`super::Quota`]),
//! for a change batch draw PriorRequestNotComplete when it is switched on, then
//! run the operation under the state lock. Errors use the REST-XML `ErrorResponse` shape with an
//! `x-amzn-RequestId` header; InvalidChangeBatch too, with every problem of the
//! batch in one bracketed Message, which is what Route53 sends today (the older
//! `<InvalidChangeBatch><Messages>` document is gone: aws-sdk-kotlin#1433 and
//! #1435; the Rust SDK only understands `ErrorResponse`).

use crate::query::{Query, percent_decode};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use http_body::Frame;

use super::xml::Writer;
use super::{Fault, Shared, State as ServerState, auth, ops};
use crate::serve::Connection;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// `n` characters from `[0-9A-Z]`, as Route53 ids are made of.
pub(crate) fn random_id(n: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    (0..n)
        .map(|_| char::from(ALPHABET[(rand::random::<u32>() as usize) % ALPHABET.len()]))
        .collect()
}

/// A delegation set shaped like Route53's: one server per awsdns TLD.
pub(crate) fn name_servers() -> Vec<String> {
    ["com", "net", "org", "co.uk"]
        .iter()
        .enumerate()
        .map(|(i, tld)| {
            let n = i * 512 + (rand::random::<u32>() as usize) % 512;
            format!("ns-{n}.awsdns-{:02}.{tld}", (n % 512) / 8)
        })
        .collect()
}

fn request_id() -> String {
    let v: u128 = rand::random();
    let hex = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// An error answer: status, Code, Message.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn invalid_input(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "InvalidInput", message)
    }

    /// InvalidChangeBatch: every problem, bracketed and comma-separated, as Route53 does.
    pub(crate) fn invalid_change_batch(messages: &[String]) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidChangeBatch",
            format!("[{}]", messages.join(", ")),
        )
    }

    pub(crate) fn no_such_zone(id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NoSuchHostedZone",
            format!("No hosted zone found with ID: {id}"),
        )
    }

    /// `1 validation error detected: Value '…' at '…' failed to satisfy constraint: …`
    pub(crate) fn validation(value: &str, at: &str, constraint: &str) -> ApiError {
        ApiError::invalid_input(format!(
            "1 validation error detected: Value '{value}' at '{at}' failed to satisfy constraint: {constraint}"
        ))
    }

    fn throttling() -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "Throttling", "Rate exceeded")
    }

    /// What Route53 answers a change that arrives while a prior one is still
    /// being processed ("Quotas", "Maximums on API requests").
    fn prior_request_not_complete() -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "PriorRequestNotComplete",
            "The request was rejected because Route 53 was still processing a prior request.",
        )
    }

    fn into_response(self, request_id: &str) -> Response {
        let kind = if self.status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        };
        let mut w = Writer::new("ErrorResponse");
        w.open("Error")
            .leaf("Type", kind)
            .leaf("Code", self.code)
            .leaf("Message", &self.message)
            .close("Error");
        w.leaf("RequestId", request_id);
        xml_response(self.status, w.finish("ErrorResponse"), request_id)
    }
}

fn xml_response(status: StatusCode, body: String, request_id: &str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

/// A body that fails at once: hyper then closes the connection without having
/// written anything (the status line is only flushed together with the body),
/// with a FIN, or with a RST after [`Connection::reset_on_close`].
struct Abort;

impl http_body::Body for Abort {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::other(
            "testkit: Fault::Drop or Fault::Reset ends the connection",
        ))))
    }
}

/// The operations, recognised from method and path.
enum Op {
    CreateHostedZone,
    ListHostedZones,
    GetHostedZone(String),
    DeleteHostedZone(String),
    ListHostedZonesByName,
    ListResourceRecordSets(String),
    ChangeResourceRecordSets(String),
    GetChange(String),
    Unknown,
}

impl Op {
    fn recognise(method: &Method, path: &str) -> Op {
        let Some(rest) = path.strip_prefix("/2013-04-01/") else {
            return Op::Unknown;
        };
        let mut segments: Vec<String> = rest.split('/').map(percent_decode).collect();
        if segments.len() > 1 && segments.last().is_some_and(String::is_empty) {
            segments.pop();
        }
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (method.as_str(), segments.as_slice()) {
            ("POST", ["hostedzone"]) => Op::CreateHostedZone,
            ("GET", ["hostedzone"]) => Op::ListHostedZones,
            ("GET", ["hostedzone", id]) => Op::GetHostedZone((*id).to_owned()),
            ("DELETE", ["hostedzone", id]) => Op::DeleteHostedZone((*id).to_owned()),
            ("GET", ["hostedzonesbyname"]) => Op::ListHostedZonesByName,
            ("GET", ["hostedzone", id, "rrset"]) => Op::ListResourceRecordSets((*id).to_owned()),
            ("POST", ["hostedzone", id, "rrset"]) => Op::ChangeResourceRecordSets((*id).to_owned()),
            ("GET", ["change", id]) => Op::GetChange((*id).to_owned()),
            _ => Op::Unknown,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Op::CreateHostedZone => "CreateHostedZone",
            Op::ListHostedZones => "ListHostedZones",
            Op::GetHostedZone(_) => "GetHostedZone",
            Op::DeleteHostedZone(_) => "DeleteHostedZone",
            Op::ListHostedZonesByName => "ListHostedZonesByName",
            Op::ListResourceRecordSets(_) => "ListResourceRecordSets",
            Op::ChangeResourceRecordSets(_) => "ChangeResourceRecordSets",
            Op::GetChange(_) => "GetChange",
            Op::Unknown => "Unknown",
        }
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    connection: Option<Connection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_write = matches!(
        Op::recognise(&method, uri.path()),
        Op::ChangeResourceRecordSets(_)
    );
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
    let request_id = request_id();
    let op = Op::recognise(&method, uri.path());
    let action = op.name();
    let is_write = matches!(op, Op::ChangeResourceRecordSets(_));
    let fault = {
        let mut state = shared.lock();
        *state.stats.requests.entry(action.to_owned()).or_default() += 1;
        let request = auth::Request {
            method: method.as_str(),
            path: uri.path(),
            query: uri.query().unwrap_or(""),
            headers: &headers,
            body: &body,
        };
        if let Err(e) = auth::check(&request, state.keys.as_ref()) {
            return e.into_response(&request_id);
        }
        match state.faults.pop_front() {
            None if is_write => state.write_faults.pop_front(),
            fault => fault,
        }
    };
    let injected = match fault {
        None => None,
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            None
        }
        Some(Fault::Drop) => return Response::new(Body::new(Abort)),
        Some(Fault::Reset) => {
            if let Some(connection) = connection {
                connection.reset_on_close();
            }
            return Response::new(Body::new(Abort));
        }
        Some(Fault::Throttling) => Some(ApiError::throttling()),
        Some(Fault::PriorRequestNotComplete) => Some(ApiError::prior_request_not_complete()),
        Some(Fault::InternalError) => Some(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        )),
        Some(Fault::ServiceUnavailable) => Some(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.",
        )),
    };
    let mut state = shared.lock();
    let changes = if is_write {
        state.limits.change_cost(&String::from_utf8_lossy(&body))
    } else {
        0.0
    };
    let admitted = state.limits.admit(action, changes, Instant::now());
    let outcome = match injected {
        Some(error) => Err(error),
        None if !admitted => Err(ApiError::throttling()),
        // Drawn only for writes that got this far, so that the sequence of
        // draws depends on the seed and the writes alone.
        None if is_write
            && state
                .prior_request
                .as_mut()
                .is_some_and(super::PriorRequest::refuse) =>
        {
            Err(ApiError::prior_request_not_complete())
        }
        None => {
            let query = Query::parse(uri.query().unwrap_or(""));
            let body = String::from_utf8_lossy(&body);
            run(&mut state, op, &query, &body)
        }
    };
    match outcome {
        Ok((status, document, location)) => {
            let mut response = xml_response(status, document, &request_id);
            if let Some(location) = location
                .and_then(|l| HeaderValue::from_str(&format!("{}{l}", base_url(&headers))).ok())
            {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Err(error) => {
            match error.code {
                "Throttling" => {
                    state.stats.throttled += 1;
                    *state
                        .stats
                        .throttled_by_action
                        .entry(action.to_owned())
                        .or_default() += 1;
                }
                "PriorRequestNotComplete" => state.stats.prior_request_not_complete += 1,
                "InvalidChangeBatch" => state.stats.invalid_change_batch += 1,
                _ => {}
            }
            error.into_response(&request_id)
        }
    }
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("route53.amazonaws.com");
    format!("http://{host}")
}

/// Status, document, and for CreateHostedZone the Location path.
pub(crate) type Reply = Result<(StatusCode, String, Option<String>), ApiError>;

fn run(state: &mut ServerState, op: Op, query: &Query, body: &str) -> Reply {
    match op {
        Op::CreateHostedZone => ops::create_hosted_zone(state, body),
        Op::ListHostedZones => ops::list_hosted_zones(state, query),
        Op::GetHostedZone(id) => ops::get_hosted_zone(state, &id),
        Op::DeleteHostedZone(id) => ops::delete_hosted_zone(state, &id),
        Op::ListHostedZonesByName => ops::list_hosted_zones_by_name(state, query),
        Op::ListResourceRecordSets(id) => ops::list_resource_record_sets(state, &id, query),
        Op::ChangeResourceRecordSets(id) => ops::change_resource_record_sets(state, &id, body),
        Op::GetChange(id) => ops::get_change(state, &id),
        Op::Unknown => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            "The action or operation requested is invalid. Verify that the action is typed correctly.",
        )),
    }
}

/// `maxitems`: absent gives `max`; larger values are cut to `max`.
pub(crate) fn max_items(query: &Query, max: usize) -> Result<(usize, String), ApiError> {
    match query.get("maxitems") {
        None => Ok((max, max.to_string())),
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if n >= 1 => Ok((n.min(max), raw.to_owned())),
            _ => Err(ApiError::validation(
                raw,
                "maxItems",
                "Member must be a positive integer",
            )),
        },
    }
}
