//! Cloudflare, through its v4 REST API (reqwest + serde).
//!
//! On Cloudflare each value is its own record, so instances
//! sharing a name never rewrite each other's records: joining adds records,
//! leaving deletes records by id. A record's comment names the instances that
//! claim it, `dnsreg:<instance>[,<instance>…]`: one, or more when instances
//! publish the same value (an address released by one and given to another).
//! Cloudflare refuses two identical records, so a value is one record, and
//! whoever joins or leaves a claim replaces that record with one naming the
//! new claimants: an instance that writes from memory (by id) finds out by the
//! refusal. A record without a dnsreg comment is a person's and is never
//! changed or deleted, whatever value it holds.
//!
//! One join or leave is one request to the batch endpoint, which Cloudflare runs
//! in one database transaction, all or nothing, deletes first, then patches,
//! puts, posts ("Batch DNS Records", `POST /zones/{zone_id}/dns_records/batch`).
//! When the endpoint is refused the change is sent as single requests instead,
//! and the log says that it was not atomic.
//!
//! The zone id is looked up once in an instance's life (kept in the state
//! file), and a join or leave is written against the records this instance's
//! last change left (their ids, kept there too) without reading first: a record
//! that is gone, or an identical one that exists, makes Cloudflare refuse the
//! whole batch, and only then is the zone read.
//!
//! Auth is an API token (Bearer) from `token_file` or `CLOUDFLARE_API_TOKEN`; it
//! is sent as a sensitive header and never appears in a message. Every call is
//! one attempt; a 429 holds every request of the process back for its
//! Retry-After (Cloudflare blocks the token for the rest of its window, so a
//! request sent earlier only extends the block).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow};
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::{Edit, Fail, KnownZone, Provider, Values, Written, is_loopback_url};
use crate::config::CloudflareConfig;
use crate::metadata::error_chain;
use crate::reconcile::{Attempts, attempt};
use crate::record::{DomainName, RData, RType, RrKey, Value, by_key};
use crate::registry::{self, instance_label};
use crate::retry::{Backoff, Pacer};

/// Cloudflare's API base URL.
pub const DEFAULT_ENDPOINT: &str = "https://api.cloudflare.com/client/v4";

/// The start of every comment dnsreg writes: `dnsreg:<instance>[,<instance>…]`.
const OWNER_PREFIX: &str = "dnsreg:";

/// The longest comment the Free plan takes ("Record attributes": 100
/// characters); four instance ids of 19 characters fit.
const MAX_COMMENT: usize = 100;

/// The instances a record's comment names; none for a record without a
/// dnsreg comment (a person's).
fn claimants_of(comment: Option<&str>) -> BTreeSet<String> {
    comment
        .map(str::trim)
        .and_then(|c| c.strip_prefix(OWNER_PREFIX))
        .map(|rest| {
            rest.split(',')
                .map(|l| l.trim().to_ascii_lowercase())
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The comment naming `claimants`.
fn comment_for(claimants: &BTreeSet<String>) -> String {
    format!(
        "{OWNER_PREFIX}{}",
        claimants.iter().cloned().collect::<Vec<_>>().join(",")
    )
}

/// Records per page when listing (Cloudflare's default page size).
const PER_PAGE: u32 = 100;
/// The most pages a listing follows: a million records, more than any plan
/// lets a zone hold, and an end to an answer that never says it is the last.
const MAX_PAGES: u32 = 10_000;

/// A Retry-After longer than this is cut short (Cloudflare's window is five minutes).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// What the permission messages tell users to grant.
const PERMISSIONS: &str = "Zone → Zone → Read and Zone → DNS → Edit";

pub struct Cloudflare {
    name: String,
    cfg: CloudflareConfig,
    /// This instance's comment: `dnsreg:<instance-id>`.
    owner: String,
    /// This instance's label, as comments name it.
    label: String,
    client: Option<reqwest::Client>,
    base: String,
    /// `Bearer <token>`, marked sensitive.
    auth: Option<HeaderValue>,
    zone_id: String,
    zone: DomainName,
    /// Set once the batch endpoint was refused: later writes go as single calls.
    batch_refused: AtomicBool,
    pacer: Pacer,
}

/// The records read, by key.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(with = "by_key")]
    records: BTreeMap<RrKey, Vec<Held>>,
}

/// One Cloudflare record as read.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Held {
    id: String,
    /// `None` when its content is not a well-formed value (never ours).
    value: Option<Value>,
    ttl: u32,
    proxied: bool,
    comment: Option<String>,
}

/// Cloudflare's response envelope.
#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
    result: Option<T>,
    #[serde(default)]
    result_info: Option<ResultInfo>,
}

#[derive(Deserialize)]
struct ApiMessage {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
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
struct RecordJson {
    id: String,
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    ttl: u32,
    #[serde(default)]
    proxied: bool,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    data: Option<Json>,
    #[serde(default)]
    priority: Option<u16>,
}

/// A failed call, classified.
#[derive(Debug)]
enum CallError {
    /// 429: the token's window is used up; come back after Retry-After.
    Busy(String, Option<Duration>),
    /// 5xx, timed out: worth another try.
    Transient(String),
    /// The zone changed under us: 81044 record gone, 81057/81058 record exists.
    Conflict(String),
    /// The batch endpoint is not available here.
    BatchRefused(String),
    Permanent(String),
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
fn needed(method: &Method, path: &str) -> &'static str {
    if !path.contains("/dns_records") {
        "Zone → Zone → Read (to find the zone)"
    } else if *method == Method::GET {
        "Zone → DNS → Read or Edit (to list records)"
    } else {
        "Zone → DNS → Edit (to change records)"
    }
}

/// Classifies a non-successful response to a request that needs `needs`.
fn classify(status: StatusCode, errors: &[ApiMessage], batch: bool, needs: &str) -> CallError {
    let detail = format!("HTTP {} ({})", status.as_u16(), describe(errors));
    let codes: Vec<i64> = errors.iter().map(|e| e.code).collect();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return CallError::Busy(detail, None);
    }
    if status.is_server_error() {
        return CallError::Transient(detail);
    }
    if codes.iter().any(|c| CONFLICT_CODES.contains(c)) {
        return CallError::Conflict(detail);
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
        return CallError::BatchRefused(detail);
    }
    if status == StatusCode::UNAUTHORIZED || codes.iter().any(|c| BAD_TOKEN_CODES.contains(c)) {
        return CallError::Permanent(format!(
            "Cloudflare refused the API token: {detail}; check token_file or CLOUDFLARE_API_TOKEN (an API token, not the global API key)"
        ));
    }
    if status == StatusCode::FORBIDDEN {
        // Cloudflare answers a token without the right permission and one
        // it no longer accepts alike (403, often code 10000).
        return CallError::Permanent(format!(
            "Cloudflare refused the request: {detail}; this request needs {needs}: give the token {PERMISSIONS} for this zone, or check that it is still valid"
        ));
    }
    CallError::Permanent(detail)
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
fn value_of(r: &RecordJson) -> Option<Value> {
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

impl Cloudflare {
    pub fn new(name: &str, cfg: CloudflareConfig, instance_id: &str) -> Cloudflare {
        // Config validation made sure the id is a label (≤ 63 characters), so
        // the comment stays well within the free plan's 100 characters.
        let label =
            instance_label(instance_id).unwrap_or_else(|_| instance_id.to_ascii_lowercase());
        Cloudflare {
            name: name.to_string(),
            zone: cfg.zone.clone(),
            cfg,
            owner: format!("{OWNER_PREFIX}{label}"),
            label,
            client: None,
            base: String::new(),
            auth: None,
            zone_id: String::new(),
            batch_refused: AtomicBool::new(false),
            pacer: Pacer::new(Backoff::BUSY),
        }
    }

    fn what(&self) -> String {
        if self.zone_id.is_empty() {
            format!("cloudflare `{}` (zone {})", self.name, self.zone)
        } else {
            format!(
                "cloudflare `{}` (zone {} {})",
                self.name, self.zone, self.zone_id
            )
        }
    }

    fn is_ours(&self, comment: Option<&str>) -> bool {
        claimants_of(comment).contains(&self.label)
    }

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

    /// One request, one attempt, after the pacer allows it. `path` is below the API base.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Json>,
    ) -> Result<Envelope<T>, CallError> {
        self.pacer.ready().await;
        let operation = operation(&method, path);
        let result = self.send(method, path, query, body).await;
        match &result {
            Err(CallError::Busy(why, retry_after)) => self.pacer.busy(why, *retry_after),
            _ => self.pacer.ok(),
        }
        use crate::metrics::Outcome;
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(CallError::Busy(..)) => Outcome::Throttled,
            Err(CallError::Conflict(_)) => Outcome::Conflict,
            Err(CallError::Transient(_) | CallError::BatchRefused(_)) => Outcome::Error,
            Err(CallError::Permanent(m)) => Outcome::of_text(m),
        };
        crate::metrics::get().request(&self.name, operation, outcome);
        result
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Json>,
    ) -> Result<Envelope<T>, CallError> {
        let client = self.client.as_ref().expect("connect() first");
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.base), query)
            .map_err(|e| CallError::Permanent(format!("bad URL {}{path}: {e}", self.base)))?;
        let mut req = client
            .request(method.clone(), url)
            .header(AUTHORIZATION, self.auth.clone().expect("connect() first"));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                CallError::Transient("timed out".into())
            } else {
                CallError::Transient(format!("could not send: {}", error_chain(&e)))
            }
        })?;
        let status = resp.status();
        let wait = retry_after(resp.headers());
        // Real answers (a page of 100 records, a batch's records) are far smaller.
        let text = crate::net::read_capped(resp, 32 * 1024 * 1024)
            .await
            .map_err(CallError::Transient)?;
        let errors = match serde_json::from_str::<Envelope<T>>(&text) {
            Ok(env) if status.is_success() && env.success => return Ok(env),
            Ok(env) => env.errors,
            Err(_) => serde_json::from_str::<Envelope<serde::de::IgnoredAny>>(&text)
                .map(|e| e.errors)
                .unwrap_or_default(),
        };
        if status.is_success() {
            return Err(CallError::Permanent(format!(
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
            CallError::Busy(why, _) => {
                tracing::debug!(provider = %self.name, ?wait, "rate limited: waiting as asked");
                Err(CallError::Busy(why, wait))
            }
            other => Err(other),
        }
    }

    /// The failure as the retry loop takes it.
    fn fail(&self, doing: &str, e: CallError) -> Fail {
        match e {
            CallError::Busy(why, retry_after) => Fail::Busy { why, retry_after },
            CallError::Transient(m) => Fail::Transient(m),
            CallError::Conflict(m) => Fail::Conflict(m),
            CallError::BatchRefused(m) | CallError::Permanent(m) => {
                Fail::Permanent(anyhow!("{}: {doing}: {m}", self.what()))
            }
        }
    }

    /// Every record matching `query`, following pagination.
    async fn list(&self, doing: &str, query: &[(&str, String)]) -> Result<Vec<RecordJson>, Fail> {
        let mut out = Vec::new();
        let mut page = 1u32;
        loop {
            let mut q = query.to_vec();
            q.push(("per_page", PER_PAGE.to_string()));
            q.push(("page", page.to_string()));
            let env: Envelope<Vec<RecordJson>> = self
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

    /// The JSON body of a new record holding `v`.
    fn new_record(&self, v: &Value, ttl: u32) -> Json {
        let proxiable = matches!(v.data, RData::A(_) | RData::Aaaa(_));
        let mut b = json!({
            "name": v.name.without_dot(),
            "type": v.data.rtype().as_str(),
            "ttl": ttl,
            "comment": self.owner,
        });
        if proxiable {
            b["proxied"] = json!(self.cfg.proxied);
            if self.cfg.proxied {
                // Proxied records always have the automatic TTL.
                b["ttl"] = json!(1);
            }
        }
        match &v.data {
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                b["data"] = json!({
                    "priority": priority,
                    "weight": weight,
                    "port": port,
                    "target": target.without_dot(),
                });
            }
            RData::Ptr(target) => b["content"] = json!(target.without_dot()),
            other => b["content"] = json!(other.to_string()),
        }
        b
    }

    /// Turns an edit into Cloudflare operations on single records.
    fn plan_ops(&self, snapshot: &Snapshot, edit: &Edit) -> Result<Ops, Fail> {
        let root = registry::root(&self.zone);
        let mut ops = Ops::default();
        let none = Vec::new();
        let is_dnsreg = |h: &Held| !claimants_of(h.comment.as_deref()).is_empty();
        for key in edit.keys() {
            let held = snapshot.records.get(&key).unwrap_or(&none);
            let registry = key.name.is_in(&root);
            let mut deleted: BTreeSet<&str> = BTreeSet::new();
            for v in edit.remove.get(&key).into_iter().flatten() {
                // Every dnsreg record holding the value goes (the rules made
                // sure no other instance claims it any more); a record without
                // a dnsreg comment is a person's and is never deleted.
                let take: Vec<&Held> = held
                    .iter()
                    .filter(|h| h.value.as_ref() == Some(v) && is_dnsreg(h))
                    .collect();
                if take.is_empty() {
                    tracing::warn!(
                        provider = %self.name,
                        "{v}: left alone, its record does not carry a dnsreg comment (made by hand or by another tool)"
                    );
                }
                for h in take {
                    deleted.insert(&h.id);
                    ops.deletes.push(Op {
                        id: h.id.clone(),
                        what: v.to_string(),
                        registry,
                        body: Json::Null,
                    });
                }
            }
            // A change of claimants replaces the record (a new id), so that an
            // instance writing from memory finds out.
            for (v, who) in edit.claimants.iter().filter(|(v, _)| v.key() == key) {
                let holding: Vec<&Held> = held
                    .iter()
                    .filter(|h| h.value.as_ref() == Some(v) && is_dnsreg(h))
                    .filter(|h| !deleted.contains(h.id.as_str()))
                    .collect();
                let Some(first) = holding.first() else {
                    continue;
                };
                let comment = comment_for(who);
                if comment.len() > MAX_COMMENT {
                    return Err(Fail::permanent(format!(
                        "{}: {v} is published by {} instances, more than a record's comment can name ({MAX_COMMENT} characters); it stays theirs",
                        self.what(),
                        who.len()
                    )));
                }
                for h in &holding {
                    deleted.insert(&h.id);
                    ops.deletes.push(Op {
                        id: h.id.clone(),
                        what: format!(
                            "{v} (claimed by {})",
                            claimants_of(h.comment.as_deref())
                                .into_iter()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        registry,
                        body: Json::Null,
                    });
                }
                if !who.is_empty() {
                    let mut body = self.new_record(v, first.ttl);
                    body["comment"] = json!(comment);
                    if body.get("proxied").is_some() {
                        body["proxied"] = json!(first.proxied);
                    }
                    ops.posts.push(Op {
                        id: String::new(),
                        what: format!(
                            "{v} (claimed by {})",
                            who.iter().cloned().collect::<Vec<_>>().join(", ")
                        ),
                        registry,
                        body,
                    });
                }
            }
            if let Some(&ttl) = edit.ttl.get(&key) {
                for h in held.iter().filter(|h| {
                    self.is_ours(h.comment.as_deref())
                        && h.value.is_some()
                        && !h.proxied
                        && h.ttl != ttl
                        && !deleted.contains(h.id.as_str())
                }) {
                    ops.patches.push(Op {
                        id: h.id.clone(),
                        what: format!("{} TTL {} → {ttl}", key, h.ttl),
                        registry,
                        body: json!({ "id": h.id, "ttl": ttl }),
                    });
                }
            }
            for r in edit.add.get(&key).into_iter().flatten() {
                let ttl = edit.ttl.get(&key).copied().unwrap_or(r.ttl);
                ops.posts.push(Op {
                    id: String::new(),
                    what: r.value.to_string(),
                    registry,
                    body: self.new_record(&r.value, ttl),
                });
            }
        }
        for key in edit.guard.difference(&edit.keys()) {
            let registry = key.name.is_in(&root);
            for h in snapshot
                .records
                .get(key)
                .into_iter()
                .flatten()
                .filter(|h| is_dnsreg(h))
            {
                ops.patches.push(Op {
                    id: h.id.clone(),
                    what: format!("{key} (unchanged, checked)"),
                    registry,
                    body: json!({ "id": h.id, "comment": h.comment }),
                });
            }
        }
        Ok(ops)
    }

    /// The whole change as one batch request; the records it posted.
    async fn write_batch(&self, ops: &Ops) -> Result<Vec<RecordJson>, CallError> {
        let mut body = serde_json::Map::new();
        let ids = |list: &[Op]| -> Json {
            list.iter()
                .map(|o| json!({ "id": o.id }))
                .collect::<Vec<_>>()
                .into()
        };
        if !ops.deletes.is_empty() {
            body.insert("deletes".into(), ids(&ops.deletes));
        }
        if !ops.patches.is_empty() {
            body.insert(
                "patches".into(),
                ops.patches.iter().map(|o| o.body.clone()).collect(),
            );
        }
        if !ops.posts.is_empty() {
            body.insert(
                "posts".into(),
                ops.posts.iter().map(|o| o.body.clone()).collect(),
            );
        }
        let body = Json::Object(body);
        #[derive(Deserialize, Default)]
        struct BatchResult {
            #[serde(default)]
            deletes: Vec<Json>,
            #[serde(default)]
            patches: Vec<Json>,
            #[serde(default)]
            posts: Vec<RecordJson>,
        }
        let env: Envelope<BatchResult> = self
            .call(
                Method::POST,
                &format!("/zones/{}/dns_records/batch", self.zone_id),
                &[],
                Some(&body),
            )
            .await?;
        // Cloudflare answers a batch with every record it deleted, patched
        // and posted; a success without them is not taken as applied.
        let done = env.result.unwrap_or_default();
        let (d, p, n) = (done.deletes.len(), done.patches.len(), done.posts.len());
        if (d, p, n) != (ops.deletes.len(), ops.patches.len(), ops.posts.len()) {
            return Err(CallError::Permanent(format!(
                "the batch answer accounts for {d} deletes, {p} patches and {n} posts of the {}, {} and {} sent: not an answer Cloudflare gives (is a proxy rewriting answers?); the change may or may not have been applied, and the next run reads the zone again",
                ops.deletes.len(),
                ops.patches.len(),
                ops.posts.len()
            )));
        }
        Ok(done.posts)
    }

    /// The change as single requests, ordered so that the registry always
    /// covers what is published: registry additions first, then new values,
    /// TTLs, removed values, and registry removals last. Each request waits
    /// its turn at the pacer and is tried until it goes through.
    async fn write_singles(&self, ops: &Ops) -> Result<Vec<RecordJson>, Fail> {
        let path = format!("/zones/{}/dns_records", self.zone_id);
        let mut steps: Vec<(Method, String, Option<&Json>, &Op)> = Vec::new();
        for registry_first in [true, false] {
            for o in ops.posts.iter().filter(|o| o.registry == registry_first) {
                steps.push((Method::POST, path.clone(), Some(&o.body), o));
            }
        }
        for o in &ops.patches {
            steps.push((Method::PATCH, format!("{path}/{}", o.id), Some(&o.body), o));
        }
        for registry_last in [false, true] {
            for o in ops.deletes.iter().filter(|o| o.registry == registry_last) {
                steps.push((Method::DELETE, format!("{path}/{}", o.id), None, o));
            }
        }
        let total = steps.len();
        let mut conflicts = Vec::new();
        let mut posted = Vec::new();
        let mut tries = Attempts::new(&self.name, Duration::from_secs(600));
        for (done, (method, p, body, op)) in steps.into_iter().enumerate() {
            let verb = match method {
                Method::POST => "adding",
                Method::PATCH => "changing",
                _ => "deleting",
            };
            let doing = format!(
                "{verb} {} (single request {} of {total}; the earlier ones were applied, the change is partial: run the command again)",
                op.what,
                done + 1
            );
            let got = loop {
                match self.call::<Json>(method.clone(), &p, &[], body).await {
                    Ok(env) => break Some(env),
                    // Already gone, or already there: another writer got there
                    // first. Go on, then read again so that `apply` sees it.
                    Err(CallError::Conflict(m)) => {
                        conflicts.push(format!("{verb} {}: {m}", op.what));
                        break None;
                    }
                    Err(e) => tries
                        .after(&doing, self.fail(&doing, e))
                        .await
                        .map_err(Fail::Permanent)?,
                }
            };
            if let Some(env) = got
                && method == Method::POST
                && let Some(r) = env.result
                && let Ok(r) = serde_json::from_value::<RecordJson>(r)
            {
                posted.push(r);
            }
        }
        if conflicts.is_empty() {
            Ok(posted)
        } else {
            Err(Fail::Conflict(conflicts.join("; ")))
        }
    }

    /// `snapshot` with `ops` applied and the records Cloudflare posted.
    fn after(&self, snapshot: &Snapshot, ops: &Ops, posted: Vec<RecordJson>) -> Snapshot {
        let mut after = snapshot.clone();
        let gone: BTreeSet<&str> = ops.deletes.iter().map(|o| o.id.as_str()).collect();
        for held in after.records.values_mut() {
            held.retain(|h| !gone.contains(h.id.as_str()));
            for h in held.iter_mut() {
                if let Some(p) = ops.patches.iter().find(|o| o.id == h.id)
                    && let Some(ttl) = p.body.get("ttl").and_then(Json::as_u64)
                {
                    h.ttl = u32::try_from(ttl).unwrap_or(h.ttl);
                }
            }
        }
        for r in posted {
            let Some(v) = value_of(&r) else { continue };
            after.records.entry(v.key()).or_default().push(Held {
                value: Some(v),
                id: r.id,
                ttl: r.ttl,
                proxied: r.proxied,
                comment: r.comment,
            });
        }
        after
    }
}

/// One operation on one record.
#[derive(Debug)]
struct Op {
    /// The record's id (deletes, patches).
    id: String,
    /// For messages.
    what: String,
    /// On a registry record.
    registry: bool,
    body: Json,
}

#[derive(Debug, Default)]
struct Ops {
    deletes: Vec<Op>,
    patches: Vec<Op>,
    posts: Vec<Op>,
}

impl Ops {
    fn len(&self) -> usize {
        self.deletes.len() + self.patches.len() + self.posts.len()
    }
}

impl Provider for Cloudflare {
    type Snapshot = Snapshot;

    fn name(&self) -> &str {
        &self.name
    }

    fn zone(&self) -> &DomainName {
        &self.zone
    }

    fn known_zone(&self) -> Option<KnownZone> {
        (!self.zone_id.is_empty()).then(|| KnownZone {
            name: self.zone.clone(),
            id: self.zone_id.clone(),
        })
    }

    fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    fn forget_zone(&mut self) {
        if self.cfg.zone_id.is_none() {
            self.zone_id.clear();
        }
    }

    fn ttl_per_record(&self) -> bool {
        true
    }

    /// Each value is a record of its own: instances writing one name at once
    /// add and delete different records, and never conflict.
    fn rewrites_rrsets(&self) -> bool {
        false
    }

    /// One listing of the records whose comment names this instance, compared
    /// with what memory says of them (a read, not a write: nothing is touched).
    async fn check(
        &self,
        snapshot: &Snapshot,
        keys: &BTreeSet<RrKey>,
    ) -> Result<Option<bool>, Fail> {
        let remembered: Vec<(&RrKey, &Held)> = keys
            .iter()
            .flat_map(|k| {
                snapshot
                    .records
                    .get(k)
                    .into_iter()
                    .flatten()
                    .map(move |h| (k, h))
            })
            .collect();
        if remembered
            .iter()
            .any(|(_, h)| !self.is_ours(h.comment.as_deref()))
        {
            // A record only another instance's comment names: not in this listing.
            return Ok(None);
        }
        let got = self
            .list(
                "checking this instance's records",
                &[("comment.contains", self.label.clone())],
            )
            .await?;
        let mine: Vec<&RecordJson> = got
            .iter()
            .filter(|r| self.is_ours(r.comment.as_deref()))
            .collect();
        let same = |h: &Held, r: &RecordJson| {
            r.id == h.id && r.ttl == h.ttl && r.comment == h.comment && value_of(r) == h.value
        };
        let all_there = remembered
            .iter()
            .all(|(_, h)| mine.iter().any(|r| same(h, r)));
        let nothing_else = mine.iter().all(|r| {
            let Some(v) = value_of(r) else { return true };
            !keys.contains(&v.key()) || remembered.iter().any(|(_, h)| same(h, r))
        });
        Ok(Some(all_there && nothing_else))
    }

    async fn connect(&mut self, known: Option<&KnownZone>) -> anyhow::Result<()> {
        if self.client.is_some() && !self.zone_id.is_empty() {
            return Ok(());
        }
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
        self.base = base.trim_end_matches('/').to_string();
        self.auth = Some(self.token()?);
        self.client = Some(
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(20))
                // The API never redirects: a 3xx would re-send the token and
                // a batch to wherever it points.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .context("building the HTTP client")?,
        );
        if let Some(id) = &self.cfg.zone_id {
            self.zone_id.clone_from(id);
            return Ok(());
        }
        if let Some(k) = known.filter(|k| k.name == self.zone) {
            self.zone_id.clone_from(&k.id);
            tracing::debug!(provider = %self.name, zone = %self.zone, zone_id = %self.zone_id, "zone known from the state file");
            return Ok(());
        }
        let zone = self.zone.without_dot().to_string();
        let doing = format!("looking up the zone named {zone}");
        let name = self.name.clone();
        let mut tries = Attempts::new(&name, Duration::from_secs(24 * 3600));
        let query = [("name", zone.clone()), ("per_page", "50".into())];
        let env: Envelope<Vec<ZoneInfo>> = match attempt(&mut tries, &doing, || async {
            self.call(Method::GET, "/zones", &query, None)
                .await
                .map_err(|e| self.fail(&doing, e))
        })
        .await
        {
            Ok(env) => env,
            Err(e) => {
                self.client = None;
                return Err(e);
            }
        };
        let found: Vec<String> = env
            .result
            .unwrap_or_default()
            .into_iter()
            .filter(|z| z.name.trim_end_matches('.').eq_ignore_ascii_case(&zone))
            .map(|z| z.id)
            .collect();
        match found.as_slice() {
            [id] => self.zone_id.clone_from(id),
            [] => {
                self.client = None;
                anyhow::bail!(
                    "{}: no zone named {zone} is visible to this API token; check the name, and that the token's zone resources include it ({PERMISSIONS})",
                    self.what()
                );
            }
            many => {
                self.client = None;
                anyhow::bail!(
                    "{}: {} zones are named {zone} ({}); dnsreg cannot tell which to use",
                    self.what(),
                    many.len(),
                    many.join(", ")
                );
            }
        }
        tracing::debug!(provider = %self.name, zone = %self.zone, zone_id = %self.zone_id, "connected");
        Ok(())
    }

    async fn read(&self, keys: &BTreeSet<RrKey>) -> Result<Snapshot, Fail> {
        let mut records = BTreeMap::new();
        for key in keys {
            let got = self
                .list(
                    &format!("reading {key}"),
                    &[
                        ("type", key.rtype.as_str().to_string()),
                        ("name", key.name.without_dot().to_string()),
                    ],
                )
                .await?;
            let held: Vec<Held> = got
                .into_iter()
                .filter(|r| {
                    r.name
                        .trim_end_matches('.')
                        .eq_ignore_ascii_case(key.name.without_dot())
                        && r.rtype == key.rtype.as_str()
                })
                .map(|r| Held {
                    value: value_of(&r),
                    id: r.id,
                    ttl: r.ttl,
                    proxied: r.proxied,
                    comment: r.comment,
                })
                .collect();
            records.insert(key.clone(), held);
        }
        Ok(Snapshot { records })
    }

    /// This instance's own records, and the records holding values it owns
    /// beside another instance (an address handed over), by id, as its last
    /// change left them: a record gone since makes the batch fail (81044), an
    /// identical record someone else made meanwhile too (81058), and then the
    /// zone is read.
    fn presume(
        &self,
        memory: &Snapshot,
        keys: &BTreeSet<RrKey>,
        _shared: &BTreeSet<RrKey>,
        owned: &Values,
    ) -> Option<(Snapshot, BTreeSet<RrKey>)> {
        let records = keys
            .iter()
            .map(|k| {
                let mine: Vec<Held> = memory
                    .records
                    .get(k)
                    .into_iter()
                    .flatten()
                    .filter(|h| {
                        self.is_ours(h.comment.as_deref())
                            || h.value.as_ref().is_some_and(|v| owned.contains(v))
                    })
                    .cloned()
                    .collect();
                (k.clone(), mine)
            })
            .collect();
        Some((Snapshot { records }, BTreeSet::new()))
    }

    fn claimants(&self, snapshot: &Snapshot, value: &Value) -> Option<BTreeSet<String>> {
        Some(
            snapshot
                .records
                .get(&value.key())
                .into_iter()
                .flatten()
                .filter(|h| h.value.as_ref() == Some(value))
                .flat_map(|h| claimants_of(h.comment.as_deref()))
                .collect(),
        )
    }

    fn merge(&self, snapshot: &mut Snapshot, more: Snapshot) {
        for (k, v) in more.records {
            snapshot.records.entry(k).or_insert(v);
        }
    }

    fn values(&self, snapshot: &Snapshot, key: &RrKey) -> Values {
        snapshot
            .records
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|h| h.value.clone())
            .collect()
    }

    /// Each record has its own TTL: this instance's records' TTL when it has
    /// some there, else the others'. Proxied records always have the automatic
    /// TTL, so they have none to compare.
    fn ttl(&self, snapshot: &Snapshot, key: &RrKey) -> Option<u32> {
        let held = snapshot.records.get(key)?;
        if held.iter().any(|h| h.proxied) {
            return None;
        }
        let ours = held
            .iter()
            .filter(|h| self.is_ours(h.comment.as_deref()))
            .map(|h| h.ttl)
            .min();
        ours.or_else(|| held.iter().map(|h| h.ttl).min())
    }

    async fn write(&self, snapshot: &Snapshot, edit: &Edit) -> Result<Written<Snapshot>, Fail> {
        let ops = self.plan_ops(snapshot, edit)?;
        if ops.len() == 0 {
            return Ok(Written {
                after: snapshot.clone(),
                change: None,
            });
        }
        tracing::debug!(provider = %self.name, "change:\n{edit}");
        if !self.batch_refused.load(Ordering::Relaxed) {
            match self.write_batch(&ops).await {
                Ok(posted) => {
                    return Ok(Written {
                        after: self.after(snapshot, &ops, posted),
                        change: None,
                    });
                }
                Err(CallError::BatchRefused(m)) => {
                    self.batch_refused.store(true, Ordering::Relaxed);
                    tracing::debug!(provider = %self.name, "batch endpoint refused: {m}");
                }
                Err(e) => return Err(self.fail("changing records (one batch request)", e)),
            }
        }
        tracing::warn!(
            provider = %self.name,
            "the batch endpoint is not available: applying the change as {} single requests; it is not atomic",
            ops.len()
        );
        let posted = self.write_singles(&ops).await?;
        Ok(Written {
            after: self.after(snapshot, &ops, posted),
            change: None,
        })
    }

    async fn registries(&self) -> Result<(BTreeMap<String, Values>, Snapshot), Fail> {
        let root = registry::root(&self.zone);
        let got = self
            .list(
                "listing ownership registries",
                &[
                    ("type", "TXT".to_string()),
                    ("name.endswith", format!(".{}", root.without_dot())),
                ],
            )
            .await?;
        let mut raw: BTreeMap<String, Values> = BTreeMap::new();
        let mut snap = Snapshot::default();
        for r in got {
            let Some(v) = value_of(&r) else { continue };
            if v.data.rtype() != RType::TXT {
                continue;
            }
            let Some(label) = registry::label_of(&v.name, &self.zone) else {
                continue;
            };
            raw.entry(label).or_default().insert(v.clone());
            snap.records.entry(v.key()).or_default().push(Held {
                value: Some(v),
                id: r.id,
                ttl: r.ttl,
                proxied: r.proxied,
                comment: r.comment,
            });
        }
        Ok((raw, snap))
    }
}

#[cfg(test)]
mod tests;
