//! Cloudflare, through its v4 REST API (reqwest + serde).
//!
//! On Cloudflare each value is its own record (SPEC §3 rule 4), so instances
//! sharing a name never rewrite each other's records: joining adds records,
//! leaving deletes records by id. A record is this instance's when its comment
//! is `dnsreg:<instance-id>`; a record without a dnsreg comment is a person's
//! and is never changed or deleted, whatever value it holds.
//!
//! One join or leave is one request to the batch endpoint, which Cloudflare runs
//! in one database transaction, all or nothing, deletes first, then patches,
//! puts, posts ("Batch DNS Records", `POST /zones/{zone_id}/dns_records/batch`).
//! When the endpoint is refused the change is sent as single requests instead,
//! and the log says that it was not atomic.
//!
//! Auth is an API token (Bearer) from `token_file` or `CLOUDFLARE_API_TOKEN`; it
//! is sent as a sensitive header and never appears in a message. Throttling
//! (429, with its Retry-After), 5xx and timeouts are retried with
//! [`Backoff::API`], like every other provider.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow};
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value as Json, json};

use super::{Edit, Provider, Values, WriteError, is_loopback_url};
use crate::config::CloudflareConfig;
use crate::metadata::error_chain;
use crate::plan::{instance_label, registry_root};
use crate::record::{DomainName, RData, RType, RrKey, Value};
use crate::retry::{Backoff, retry};

/// Cloudflare's API base URL.
pub const DEFAULT_ENDPOINT: &str = "https://api.cloudflare.com/client/v4";

/// The start of every comment dnsreg writes: `dnsreg:<instance-id>`.
const OWNER_PREFIX: &str = "dnsreg:";

/// Records per page when listing (Cloudflare's default page size).
const PER_PAGE: u32 = 100;

/// A Retry-After longer than this is cut short; the backoff still applies.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// What the permission messages tell users to grant.
const PERMISSIONS: &str = "Zone → Zone → Read and Zone → DNS → Edit";

pub struct Cloudflare {
    name: String,
    cfg: CloudflareConfig,
    /// This instance's comment: `dnsreg:<instance-id>`.
    owner: String,
    client: Option<reqwest::Client>,
    base: String,
    /// `Bearer <token>`, marked sensitive.
    auth: Option<HeaderValue>,
    zone_id: String,
    zone: DomainName,
    /// Set once the batch endpoint was refused: later writes go as single calls.
    batch_refused: AtomicBool,
}

/// The records read, by key.
pub struct Snapshot {
    records: BTreeMap<RrKey, Vec<Held>>,
}

/// One Cloudflare record as read.
#[derive(Clone, Debug)]
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
    /// Throttled, 5xx, timed out: worth another try.
    Transient(String),
    /// The zone changed under us: 81044 record gone, 81057/81058 record exists.
    Conflict(String),
    /// The batch endpoint is not available here.
    BatchRefused(String),
    Permanent(String),
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

/// Classifies a non-successful response.
fn classify(status: StatusCode, errors: &[ApiMessage], batch: bool) -> CallError {
    let detail = format!("HTTP {} ({})", status.as_u16(), describe(errors));
    let codes: Vec<i64> = errors.iter().map(|e| e.code).collect();
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
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
        return CallError::Permanent(format!(
            "the API token lacks a permission: {detail}; give it {PERMISSIONS} for this zone"
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
        let label = instance_label(instance_id).unwrap_or_else(|_| instance_id.to_string());
        Cloudflare {
            name: name.to_string(),
            zone: cfg.zone.clone(),
            cfg,
            owner: format!("{OWNER_PREFIX}{label}"),
            client: None,
            base: String::new(),
            auth: None,
            zone_id: String::new(),
            batch_refused: AtomicBool::new(false),
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
        comment.is_some_and(|c| c.trim().eq_ignore_ascii_case(&self.owner))
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

    /// One request, one attempt. `path` is below the API base.
    async fn request<T: DeserializeOwned>(
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
            .request(method, url)
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
        let text = resp.text().await.map_err(|e| {
            CallError::Transient(format!("reading the response: {}", error_chain(&e)))
        })?;
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
        if status == StatusCode::TOO_MANY_REQUESTS
            && let Some(wait) = wait
        {
            // Honour the server's pause; the backoff adds jitter on top.
            tracing::debug!(provider = %self.name, ?wait, "rate limited, waiting as asked");
            tokio::time::sleep(wait).await;
        }
        Err(classify(status, &errors, path.ends_with("/batch")))
    }

    /// Calls with the API retry policy.
    async fn call<T: DeserializeOwned>(
        &self,
        doing: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Json>,
    ) -> Result<Envelope<T>, CallError> {
        retry(
            Backoff::API,
            |n| {
                if n > 0 {
                    tracing::debug!(provider = %self.name, attempt = n + 1, doing, "retrying");
                }
                self.request(method.clone(), path, query, body)
            },
            |e| matches!(e, CallError::Transient(_)),
        )
        .await
    }

    fn fail(&self, doing: &str, e: CallError) -> anyhow::Error {
        match e {
            CallError::Transient(m) => anyhow!(
                "{}: {doing}: still failing after {} attempts: {m}",
                self.what(),
                Backoff::API.attempts
            ),
            CallError::Conflict(m) | CallError::BatchRefused(m) | CallError::Permanent(m) => {
                anyhow!("{}: {doing}: {m}", self.what())
            }
        }
    }

    /// Every record matching `query`, following pagination.
    async fn list(&self, doing: &str, query: &[(&str, String)]) -> anyhow::Result<Vec<RecordJson>> {
        let mut out = Vec::new();
        let mut page = 1u32;
        loop {
            let mut q = query.to_vec();
            q.push(("per_page", PER_PAGE.to_string()));
            q.push(("page", page.to_string()));
            let env: Envelope<Vec<RecordJson>> = self
                .call(
                    doing,
                    Method::GET,
                    &format!("/zones/{}/dns_records", self.zone_id),
                    &q,
                    None,
                )
                .await
                .map_err(|e| self.fail(doing, e))?;
            let got = env.result.unwrap_or_default();
            let n = got.len();
            out.extend(got);
            let more = match &env.result_info {
                Some(info) => info.page.max(page) < info.total_pages,
                None => false,
            };
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
    fn plan_ops(&self, snapshot: &Snapshot, edit: &Edit) -> Ops {
        let root = registry_root(&self.zone);
        let mut ops = Ops::default();
        let none = Vec::new();
        for key in edit.keys() {
            let held = snapshot.records.get(&key).unwrap_or(&none);
            let registry = key.name.is_in(&root);
            let mut deleted: BTreeSet<&str> = BTreeSet::new();
            for v in edit.remove.get(&key).into_iter().flatten() {
                let holding: Vec<&Held> = held
                    .iter()
                    .filter(|h| h.value.as_ref() == Some(v))
                    .collect();
                let ours: Vec<&Held> = holding
                    .iter()
                    .copied()
                    .filter(|h| self.is_ours(h.comment.as_deref()))
                    .collect();
                // A value handed over by another instance (an address it
                // released, which this instance claimed in its registry and
                // nobody else claims any more) sits in that instance's record:
                // still a dnsreg record, so it may go. A record without a
                // dnsreg comment is a person's and is never deleted.
                let take: Vec<&Held> = if ours.is_empty() {
                    holding
                        .iter()
                        .copied()
                        .filter(|h| {
                            h.comment
                                .as_deref()
                                .is_some_and(|c| c.trim().starts_with(OWNER_PREFIX))
                        })
                        .collect()
                } else {
                    ours
                };
                if take.is_empty() {
                    tracing::warn!(
                        provider = %self.name,
                        "{v}: left alone, its record does not carry a dnsreg comment (made by hand or by another tool)"
                    );
                }
                for h in take {
                    if !self.is_ours(h.comment.as_deref()) {
                        tracing::info!(
                            provider = %self.name,
                            "{v}: deleting the record of {} (handed over to this instance)",
                            h.comment.as_deref().unwrap_or_default()
                        );
                    }
                    deleted.insert(&h.id);
                    ops.deletes.push(Op {
                        id: h.id.clone(),
                        what: v.to_string(),
                        registry,
                        body: Json::Null,
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
        ops
    }

    /// The whole change as one batch request.
    async fn write_batch(&self, ops: &Ops) -> Result<(), CallError> {
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
        self.call::<Json>(
            "batch",
            Method::POST,
            &format!("/zones/{}/dns_records/batch", self.zone_id),
            &[],
            Some(&body),
        )
        .await
        .map(|_| ())
    }

    /// The change as single requests, ordered so that the registry always
    /// covers what is published: registry additions first, then new values,
    /// TTLs, removed values, and registry removals last.
    async fn write_singles(&self, ops: &Ops) -> Result<(), WriteError> {
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
        for (done, (method, p, body, op)) in steps.into_iter().enumerate() {
            let verb = match method {
                Method::POST => "adding",
                Method::PATCH => "changing",
                _ => "deleting",
            };
            match self.call::<Json>(verb, method, &p, &[], body).await {
                Ok(_) => {}
                // Already gone, or already there: another writer got there
                // first. Go on, then read again so that `apply` sees it.
                Err(CallError::Conflict(m)) => conflicts.push(format!("{} {}: {m}", verb, op.what)),
                Err(e) => {
                    return Err(WriteError::Failed(self.fail(
                        &format!(
                            "{verb} {} (single request {} of {total}; the earlier ones were applied, the change is partial: run the command again)",
                            op.what,
                            done + 1
                        ),
                        e,
                    )));
                }
            }
        }
        if conflicts.is_empty() {
            Ok(())
        } else {
            Err(WriteError::Conflict(conflicts.join("; ")))
        }
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

    async fn connect(&mut self) -> anyhow::Result<()> {
        if self.client.is_some() {
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
                .build()
                .context("building the HTTP client")?,
        );
        let zone = self.zone.without_dot().to_string();
        let doing = format!("looking up the zone named {zone}");
        let env: Envelope<Vec<ZoneInfo>> = match self
            .call(
                &doing,
                Method::GET,
                "/zones",
                &[("name", zone.clone()), ("per_page", "50".into())],
                None,
            )
            .await
        {
            Ok(env) => env,
            Err(e) => {
                self.client = None;
                return Err(self.fail(&doing, e));
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

    async fn read(&self, keys: &BTreeSet<RrKey>) -> anyhow::Result<Snapshot> {
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

    async fn write(&self, snapshot: &Snapshot, edit: &Edit) -> Result<(), WriteError> {
        let ops = self.plan_ops(snapshot, edit);
        if ops.len() == 0 {
            return Ok(());
        }
        tracing::debug!(provider = %self.name, "change:\n{edit}");
        if !self.batch_refused.load(Ordering::Relaxed) {
            match self.write_batch(&ops).await {
                Ok(()) => return Ok(()),
                Err(CallError::Conflict(m)) => return Err(WriteError::Conflict(m)),
                Err(CallError::BatchRefused(m)) => {
                    self.batch_refused.store(true, Ordering::Relaxed);
                    tracing::debug!(provider = %self.name, "batch endpoint refused: {m}");
                }
                Err(e) => {
                    return Err(WriteError::Failed(
                        self.fail("changing records (one batch request)", e),
                    ));
                }
            }
        }
        tracing::warn!(
            provider = %self.name,
            "the batch endpoint is not available: applying the change as {} single requests; it is not atomic",
            ops.len()
        );
        self.write_singles(&ops).await
    }

    async fn registries(&self) -> anyhow::Result<BTreeMap<String, Values>> {
        let root = registry_root(&self.zone);
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
        for r in &got {
            let Some(v) = value_of(r) else { continue };
            if !v.name.is_in(&root) || v.name == root || v.data.rtype() != RType::TXT {
                continue;
            }
            let label = v
                .name
                .as_str()
                .split('.')
                .next()
                .unwrap_or_default()
                .to_string();
            raw.entry(label).or_default().insert(v);
        }
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(rtype: &str, content: &str, data: Option<Json>) -> RecordJson {
        RecordJson {
            id: "x".into(),
            name: "_a._tcp.example.com".into(),
            rtype: rtype.into(),
            content: content.into(),
            ttl: 60,
            proxied: false,
            comment: None,
            data,
            priority: Some(5),
        }
    }

    #[test]
    fn srv_is_read_from_data_or_content() {
        let want = "_a._tcp.example.com. SRV 5 10 8080 h1.example.com.";
        let from_data = rec(
            "SRV",
            "10 8080 h1.example.com",
            Some(json!({"priority": 5, "weight": 10, "port": 8080, "target": "h1.example.com"})),
        );
        assert_eq!(value_of(&from_data).unwrap().to_line(), want);
        assert_eq!(
            value_of(&rec("SRV", "10 8080 h1.example.com", None))
                .unwrap()
                .to_line(),
            want
        );
        assert_eq!(
            value_of(&rec("SRV", "5 10 8080 h1.example.com", None))
                .unwrap()
                .to_line(),
            want
        );
    }

    #[test]
    fn txt_content_quoted_or_bare() {
        let quoted = value_of(&rec("TXT", "\"dnsreg1 a b\"", None)).unwrap();
        let bare = value_of(&rec("TXT", "dnsreg1 a b", None)).unwrap();
        assert_eq!(quoted, bare);
    }

    #[test]
    fn errors_are_classified() {
        let e = |code: i64| {
            vec![ApiMessage {
                code,
                message: "m".into(),
            }]
        };
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &e(81058), true),
            CallError::Conflict(_)
        ));
        assert!(matches!(
            classify(StatusCode::NOT_FOUND, &e(81044), false),
            CallError::Conflict(_)
        ));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, &e(971), false),
            CallError::Transient(_)
        ));
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, &[], true),
            CallError::Transient(_)
        ));
        assert!(matches!(
            classify(StatusCode::NOT_FOUND, &e(7000), true),
            CallError::BatchRefused(_)
        ));
        assert!(matches!(
            classify(StatusCode::NOT_FOUND, &e(7000), false),
            CallError::Permanent(_)
        ));
        let CallError::Permanent(m) = classify(StatusCode::FORBIDDEN, &e(10000), false) else {
            panic!()
        };
        assert!(m.contains("Zone → DNS → Edit"), "{m}");
        let CallError::Permanent(m) = classify(StatusCode::UNAUTHORIZED, &e(9109), false) else {
            panic!()
        };
        assert!(m.contains("refused the API token"), "{m}");
    }
}
