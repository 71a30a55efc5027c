//! Cloudflare's v4 API as dnsreg speaks it: the HTTP client and its token,
//! finding the zone, one paced and counted request, listings followed page
//! by page (refused when they are not answers Cloudflare gives), the JSON
//! it answers with, and the classification of failures.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use super::{Cloudflare, Connector, DEFAULT_ENDPOINT};
use crate::fail::ZoneGone;
use crate::metadata::error_chain;
use crate::provider::{Fail, is_loopback_url};
use crate::record::{DomainName, RData, RType, Value};
use crate::retry::{Attempts, Pacer, attempt};

/// Records per page when listing (Cloudflare's default page size).
const PER_PAGE: u32 = 100;
/// The most pages a listing follows: a million records, more than any plan
/// lets a zone hold, and an end to an answer that never says it is the last.
const MAX_PAGES: u32 = 10_000;

/// What Cloudflare says of a zone id that is not one: "Could not route to
/// …, perhaps your object identifier is invalid?" (7003) with "No route for
/// that URI" (7000). (A 404 with 7000 on the batch path alone is the batch
/// endpoint missing: [`BatchRefused`]; a well-formed id of no zone the token
/// sees is a 403, see `Api::send`.)
const ZONE_GONE_CODES: [i64; 2] = [7000, 7003];

/// A Retry-After longer than this is cut short (Cloudflare's window is five minutes).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// What the permission messages tell users to grant.
const PERMISSIONS: &str = "Zone → Zone → Read and Zone → DNS → Edit";
/// Cloudflare's response envelope.
#[derive(Deserialize)]
pub(super) struct Envelope<T> {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
    pub(super) result: Option<T>,
    #[serde(default)]
    result_info: Option<ResultInfo>,
}

#[derive(Deserialize)]
pub(super) struct ApiMessage {
    #[serde(default)]
    pub(super) code: i64,
    #[serde(default)]
    pub(super) message: String,
}

#[derive(Deserialize)]
struct ResultInfo {
    #[serde(default)]
    page: u32,
    #[serde(default)]
    total_pages: u32,
}

#[derive(Deserialize)]
struct ZoneInfo {
    id: String,
    name: String,
}

#[derive(Clone, Debug, Deserialize)]
pub(super) struct RecordJson {
    pub(super) id: String,
    pub(super) name: String,
    #[serde(rename = "type")]
    pub(super) rtype: String,
    #[serde(default)]
    pub(super) content: String,
    #[serde(default)]
    pub(super) ttl: u32,
    #[serde(default)]
    pub(super) proxied: bool,
    #[serde(default)]
    pub(super) comment: Option<String>,
    #[serde(default)]
    pub(super) data: Option<Json>,
    #[serde(default)]
    pub(super) priority: Option<u16>,
}

/// The batch endpoint is not available here (a plan or an account without
/// it): carried inside a [`Fail::Permanent`], so that a write can tell it
/// from other refusals and send the change as single requests instead.
#[derive(Debug)]
pub(super) struct BatchRefused(pub(super) String);

impl std::fmt::Display for BatchRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BatchRefused {}

impl BatchRefused {
    /// The batch refusal `fail` carries, if it is one.
    pub(super) fn within(fail: &Fail) -> Option<&BatchRefused> {
        match fail {
            Fail::Permanent(e) => e.downcast_ref(),
            _ => None,
        }
    }
}

/// `fail` with `what` (which provider and zone) and `doing` in front of
/// it where it is a refusal; a failure that may pass says only what it is.
fn refusal_in(fail: Fail, what: &str, doing: &str) -> Fail {
    match fail {
        Fail::Permanent(_) | Fail::Denied(_) => fail.context(format!("{what}: {doing}")),
        other => other,
    }
}

/// A request's operation for `dnsreg_api_requests_total`: the kind of
/// request, without the ids in its path.
fn operation(method: &Method, path: &str) -> &'static str {
    match (method.as_str(), path) {
        ("GET", "/zones") => "list_zones",
        ("GET", _) => "list_records",
        ("POST", p) if p.ends_with("/batch") => "batch",
        ("POST", _) => "create_record",
        ("DELETE", _) => "delete_record",
        ("PUT" | "PATCH", _) => "update_record",
        _ => "other",
    }
}

/// Cloudflare's error codes that mean "someone else changed the zone": the
/// record to delete is gone (81044), or the one to create exists (81057, 81058).
const CONFLICT_CODES: [i64; 3] = [81044, 81057, 81058];

/// Error codes for a token Cloudflare does not accept at all.
const BAD_TOKEN_CODES: [i64; 5] = [1000, 6003, 6111, 9106, 9109];

fn describe(errors: &[ApiMessage]) -> String {
    if errors.is_empty() {
        return "no error detail".into();
    }
    errors
        .iter()
        .map(|e| format!("{} {}", e.code, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The permission a request needs: what a 403 most likely says is missing.
pub(super) fn needed(method: &Method, path: &str) -> &'static str {
    if !path.contains("/dns_records") {
        "Zone → Zone → Read (to find the zone)"
    } else if *method == Method::GET {
        "Zone → DNS → Read or Edit (to list records)"
    } else {
        "Zone → DNS → Edit (to change records)"
    }
}

/// Classifies a non-successful response to a request that needs `needs`.
pub(super) fn classify(
    status: StatusCode,
    errors: &[ApiMessage],
    batch: bool,
    needs: &str,
) -> Fail {
    let detail = format!("HTTP {} ({})", status.as_u16(), describe(errors));
    let codes: Vec<i64> = errors.iter().map(|e| e.code).collect();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Fail::Busy {
            why: detail,
            retry_after: None,
        };
    }
    if status.is_server_error() {
        return Fail::Transient(detail);
    }
    if codes.iter().any(|c| CONFLICT_CODES.contains(c)) {
        return Fail::Conflict(detail);
    }
    let text = describe(errors).to_ascii_lowercase();
    if batch
        && (status == StatusCode::NOT_FOUND
            || status == StatusCode::METHOD_NOT_ALLOWED
            || status == StatusCode::NOT_IMPLEMENTED
            || (text.contains("batch")
                && [
                    "unavailable",
                    "not available",
                    "not supported",
                    "unsupported",
                    "not enabled",
                ]
                .iter()
                .any(|w| text.contains(w))))
    {
        return Fail::Permanent(BatchRefused(detail).into());
    }
    if codes.iter().any(|c| ZONE_GONE_CODES.contains(c)) {
        return Fail::Permanent(ZoneGone(detail).into());
    }
    if status == StatusCode::UNAUTHORIZED || codes.iter().any(|c| BAD_TOKEN_CODES.contains(c)) {
        return Fail::denied(format!(
            "Cloudflare refused the API token: {detail}; check token_file or CLOUDFLARE_API_TOKEN (an API token, not the global API key)"
        ));
    }
    if status == StatusCode::FORBIDDEN {
        // Cloudflare answers a token without the right permission and one
        // it no longer accepts alike (403, often code 10000).
        return Fail::denied(format!(
            "Cloudflare refused the request: {detail}; this request needs {needs}: give the token {PERMISSIONS} for this zone, or check that it is still valid"
        ));
    }
    Fail::permanent(detail)
}

/// The Retry-After of a 429, in seconds (Cloudflare sends whole seconds).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

fn rtype_of(name: &str) -> Option<RType> {
    name.parse().ok()
}

/// The value a record holds, if it is a well-formed one.
pub(super) fn value_of(r: &RecordJson) -> Option<Value> {
    let rtype = rtype_of(&r.rtype)?;
    let name = DomainName::new(&r.name).ok()?;
    let data = match rtype {
        // Cloudflare shows SRV as `data {priority, weight, port, target}`, and
        // its content as "weight port target" with the priority beside it.
        RType::SRV => match &r.data {
            Some(d) if d.get("target").is_some() => {
                let n = |k: &str| {
                    d.get(k)
                        .and_then(Json::as_u64)
                        .and_then(|n| u16::try_from(n).ok())
                };
                RData::Srv {
                    priority: n("priority")?,
                    weight: n("weight")?,
                    port: n("port")?,
                    target: DomainName::new(d.get("target")?.as_str()?).ok()?,
                }
            }
            _ => RData::parse(RType::SRV, &r.content).or_else(|| {
                RData::parse(
                    RType::SRV,
                    &format!("{} {}", r.priority.unwrap_or(0), r.content),
                )
            })?,
        },
        // Content is the zone-file form (`"a" "b"`); a bare text is one string.
        RType::TXT if !r.content.trim_start().starts_with('"') => {
            RData::Txt(vec![r.content.clone()])
        }
        _ => RData::parse(rtype, &r.content)?,
    };
    Some(Value { name, data })
}
impl Connector {
    /// The API token: `token_file`, else `CLOUDFLARE_API_TOKEN`.
    fn token(&self) -> anyhow::Result<HeaderValue> {
        let token = match &self.cfg.token_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("{}: reading token_file {}", self.what(), path.display()))?
                .trim()
                .to_string(),
            None => std::env::var("CLOUDFLARE_API_TOKEN")
                .unwrap_or_default()
                .trim()
                .to_string(),
        };
        if token.is_empty() {
            anyhow::bail!(
                "{}: no API token: set token_file in [providers.{}] or the environment variable CLOUDFLARE_API_TOKEN (a token with {PERMISSIONS})",
                self.what(),
                self.name
            );
        }
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            anyhow!(
                "{}: the API token holds characters an HTTP header cannot carry; check the token",
                self.what()
            )
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// Cloudflare's API as a provider talks to it: the HTTP client, the base
/// URL and the token, the pacer every request waits on, and the provider's
/// name for the metrics.
pub(super) struct Api {
    name: String,
    client: reqwest::Client,
    base: String,
    /// `Bearer <token>`, marked sensitive.
    auth: HeaderValue,
    pacer: Arc<Pacer>,
}

impl Api {
    /// An API at a closed port on loopback, with a made-up token.
    #[cfg(test)]
    pub(super) fn offline(name: &str, pacer: Arc<Pacer>) -> Api {
        Api {
            name: name.to_string(),
            client: reqwest::Client::new(),
            base: "http://127.0.0.1:9".to_string(),
            auth: HeaderValue::from_static("Bearer offline"),
            pacer,
        }
    }

    /// The pacer every request waits on.
    pub(super) fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    /// The provider's name in the configuration.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// One request, one attempt, after the pacer allows it. `path` is below the API base.
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Json>,
    ) -> Result<Envelope<T>, Fail> {
        self.pacer.ready().await;
        let operation = operation(&method, path);
        let result = self.send(method, path, query, body).await;
        match &result {
            Err(Fail::Busy { why, retry_after }) => self.pacer.busy(why, *retry_after),
            _ => self.pacer.ok(),
        }
        use crate::metrics::Outcome;
        let outcome = result.as_ref().err().map_or(Outcome::Ok, Outcome::of_fail);
        crate::metrics::get().request(&self.name, operation, outcome);
        result
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Json>,
    ) -> Result<Envelope<T>, Fail> {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.base), query)
            .map_err(|e| Fail::permanent(format!("bad URL {}{path}: {e}", self.base)))?;
        let mut req = self
            .client
            .request(method.clone(), url)
            .header(AUTHORIZATION, self.auth.clone());
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                Fail::Transient("timed out".into())
            } else {
                Fail::Transient(format!("could not send: {}", error_chain(&e)))
            }
        })?;
        let status = resp.status();
        let wait = retry_after(resp.headers());
        // Real answers (a page of 100 records, a batch's records) are far smaller.
        let text = crate::net::read_capped(resp, 32 * 1024 * 1024)
            .await
            .map_err(Fail::Transient)?;
        let errors = match serde_json::from_str::<Envelope<T>>(&text) {
            Ok(env) if status.is_success() && env.success => return Ok(env),
            Ok(env) => env.errors,
            Err(_) => serde_json::from_str::<Envelope<serde::de::IgnoredAny>>(&text)
                .map(|e| e.errors)
                .unwrap_or_default(),
        };
        if status.is_success() {
            return Err(Fail::permanent(format!(
                "HTTP {} but not a successful API response ({})",
                status.as_u16(),
                describe(&errors)
            )));
        }
        match classify(
            status,
            &errors,
            path.ends_with("/batch"),
            needed(&method, path),
        ) {
            Fail::Busy { why, .. } => {
                tracing::debug!(provider = %self.name, ?wait, "rate limited: waiting as asked");
                Err(Fail::Busy {
                    why,
                    retry_after: wait,
                })
            }
            // Cloudflare answers a zone id it does not know (the zone
            // deleted, and perhaps made again under a new id) as it answers
            // one outside the token's scope: an id remembered from an earlier
            // run is then looked up again by name.
            Fail::Denied(e) if path.starts_with("/zones/") => Err(Fail::Denied(
                ZoneGone(format!(
                    "{e:#} (or the zone is gone: the next attempt looks it up again by name)"
                ))
                .into(),
            )),
            other => Err(other),
        }
    }
}

impl Cloudflare {
    /// The failure as the retry loop takes it: a refusal says which
    /// provider and zone, and what it was doing.
    pub(super) fn fail(&self, doing: &str, e: Fail) -> Fail {
        refusal_in(e, &self.what(), doing)
    }

    /// Every record matching `query`, following pagination.
    pub(super) async fn list(
        &self,
        doing: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<RecordJson>, Fail> {
        let mut out = Vec::new();
        let mut page = 1u32;
        loop {
            let mut q = query.to_vec();
            q.push(("per_page", PER_PAGE.to_string()));
            q.push(("page", page.to_string()));
            let env: Envelope<Vec<RecordJson>> = self
                .api
                .call(
                    Method::GET,
                    &format!("/zones/{}/dns_records", self.zone_id),
                    &q,
                    None,
                )
                .await
                .map_err(|e| self.fail(doing, e))?;
            // A list always has both: without them, an answer cut short or
            // rewritten on the way would read as "no records" (and a leave
            // would remove nothing and forget what it published).
            let (Some(got), Some(info)) = (env.result, &env.result_info) else {
                return Err(Fail::permanent(format!(
                    "{}: {doing}: the listing came without its result or result_info: not an answer Cloudflare gives (is a proxy rewriting answers?)",
                    self.what()
                )));
            };
            // The page asked for, or an end: an answer that is another page
            // (a proxy or cache replaying one), or pages without end, would
            // be followed forever.
            let wrong = if info.page != 0 && info.page != page {
                Some(format!("page {page} came back as page {}", info.page))
            } else if page > MAX_PAGES {
                Some(format!(
                    "it goes on past {MAX_PAGES} pages ({} in all, it says)",
                    info.total_pages
                ))
            } else {
                None
            };
            if let Some(wrong) = wrong {
                return Err(Fail::permanent(format!(
                    "{}: {doing}: the listing is not one Cloudflare gives: {wrong} (is a proxy or cache answering?)",
                    self.what()
                )));
            }
            let n = got.len();
            out.extend(got);
            let more = page < info.total_pages;
            if !more || n == 0 {
                return Ok(out);
            }
            page += 1;
        }
    }
}

impl Connector {
    /// Checks the endpoint, reads the API token and builds the HTTP client.
    pub(super) fn open(&self) -> anyhow::Result<Api> {
        let base = self
            .cfg
            .endpoint
            .clone()
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        if !base.starts_with("https://") && !is_loopback_url(&base) {
            anyhow::bail!(
                "{}: endpoint {base} is not https; dnsreg sends the API token only over TLS (plain http is allowed to loopback stand-ins only)",
                self.what()
            );
        }
        Ok(Api {
            name: self.name.clone(),
            base: base.trim_end_matches('/').to_string(),
            auth: self.token()?,
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(20))
                // The API never redirects: a 3xx would re-send the token and
                // a batch to wherever it points.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .context("building the HTTP client")?,
            pacer: self.pacer.clone(),
        })
    }

    /// Looks the zone's id up by its name.
    pub(super) async fn find_zone(&self, api: &Api) -> anyhow::Result<String> {
        let zone = self.cfg.zone.without_dot().to_string();
        let doing = format!("looking up the zone named {zone}");
        let mut tries = Attempts::new(&self.name, Duration::from_secs(24 * 3600));
        let query = [("name", zone.clone()), ("per_page", "50".into())];
        let env: Envelope<Vec<ZoneInfo>> = attempt(&mut tries, &doing, || async {
            api.call(Method::GET, "/zones", &query, None)
                .await
                .map_err(|e| refusal_in(e, &self.what(), &doing))
        })
        .await?;
        let found: Vec<String> = env
            .result
            .unwrap_or_default()
            .into_iter()
            .filter(|z| z.name.trim_end_matches('.').eq_ignore_ascii_case(&zone))
            .map(|z| z.id)
            .collect();
        match found.as_slice() {
            [id] => Ok(id.clone()),
            [] => anyhow::bail!(
                "{}: no zone named {zone} is visible to this API token; check the name, and that the token's zone resources include it ({PERMISSIONS})",
                self.what()
            ),
            many => anyhow::bail!(
                "{}: {} zones are named {zone} ({}); dnsreg cannot tell which to use",
                self.what(),
                many.len(),
                many.join(", ")
            ),
        }
    }
}
