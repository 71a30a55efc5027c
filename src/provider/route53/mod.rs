//! AWS Route53, through aws-sdk-route53.
//!
//! `routing = "simple"`: shared rrsets are changed by one atomic change batch
//! that DELETEs the exact rrset we read and CREATEs the new one; if anyone
//! changed it meanwhile, Route53 refuses the whole batch (InvalidChangeBatch) and
//! we read again. `routing = "multivalue"`: each instance has its own rrset per
//! name (SetIdentifier = instance id, MultiValueAnswer = true), changed the same
//! way. All of an instance's changes to the zone go in one batch.
//! See "ChangeResourceRecordSets" in the Route53 API reference.
//!
//! Requests count against the account's rate limit, so each change costs as
//! few as it can: the zone id is looked up once in an instance's life (kept in
//! the state file), a write against this instance's own rrsets is presumed from
//! what its last write left (a wrong guess is refused by Route53 and costs a
//! read), and confirmation (GetChange, INSYNC) is asked separately, once, when
//! the change is likely live ("Route 53 propagates changes ... generally within
//! 60 seconds", ChangeResourceRecordSets in the API reference).
//!
//! Credentials and region come from the standard AWS chain; the endpoint from
//! `endpoint`, `AWS_ENDPOINT_URL_ROUTE_53` or `AWS_ENDPOINT_URL`. The SDK's own
//! retries are off: every call is one attempt, classified as a [`Fail`] for the
//! one retry loop of the operation (`reconcile`), and throttling
//! (`Throttling`, `PriorRequestNotComplete`) holds every request of the process
//! back through the provider's [`Pacer`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, anyhow};
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_route53::Client;
use aws_sdk_route53::config::http::HttpResponse;
use aws_sdk_route53::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};
use serde::{Deserialize, Serialize};

use super::{BatchLimit, Edit, Fail, KnownZone, Provider, Values, Written, is_loopback_url};
use crate::config::{Route53Config, Routing, ZoneRef};
use crate::metadata::error_chain;
use crate::reconcile::{Attempts, attempt};
use crate::record::{DomainName, RData, RType, RrKey, Value, by_key};
use crate::registry;
use crate::retry::{Backoff, Pacer};

/// Route53's largest page of ListResourceRecordSets. A zone that fits in one
/// is read whole with a single request, instead of one request per rrset.
const PAGE: i32 = 300;
/// The most pages a listing of the registries follows: 3 million rrsets,
/// far more than a hosted zone holds, and an end to a listing that never
/// stops saying it is truncated.
const MAX_PAGES: usize = 10_000;

/// ResourceRecord elements one change batch may carry, a DELETE and a CREATE
/// each counting ("Quotas" in the Route53 Developer Guide).
const MAX_BATCH_RECORDS: usize = 1000;
/// Characters in all Value elements of one change batch ("Quotas").
const MAX_BATCH_CHARACTERS: usize = 32_000;

pub struct Route53 {
    name: String,
    cfg: Route53Config,
    instance_id: String,
    client: Option<Client>,
    zone_id: String,
    zone: DomainName,
    pacer: std::sync::Arc<Pacer>,
    /// Set once the zone was found to hold more than one page of rrsets:
    /// reads then ask for each rrset on its own.
    zone_is_large: std::sync::atomic::AtomicBool,
}

/// An rrset as dnsreg keeps it: enough to DELETE it exactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    ttl: i64,
    /// The values exactly as Route53 wrote them.
    records: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    set_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multi_value_answer: Option<bool>,
}

/// One key's rrset in a snapshot.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Held {
    /// `None` when absent.
    rrset: Option<Stored>,
    /// Taken from what this instance's last write left, not read.
    #[serde(skip)]
    presumed: bool,
}

/// The exact rrsets read (or presumed), by key.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(with = "by_key")]
    rrsets: BTreeMap<RrKey, Held>,
}

impl Stored {
    fn from_sdk(rs: &ResourceRecordSet) -> Stored {
        Stored {
            ttl: rs.ttl().unwrap_or(0),
            records: rs
                .resource_records()
                .iter()
                .map(|r| r.value().to_string())
                .collect(),
            set_identifier: rs.set_identifier().map(str::to_string),
            multi_value_answer: rs.multi_value_answer(),
        }
    }

    fn to_sdk(&self, key: &RrKey) -> Result<ResourceRecordSet, Fail> {
        let mut rs = ResourceRecordSet::builder()
            .name(key.name.as_str())
            .r#type(rr_type(key.rtype))
            .ttl(self.ttl);
        for r in &self.records {
            rs = rs.resource_records(
                ResourceRecord::builder()
                    .value(r)
                    .build()
                    .map_err(|e| Fail::Permanent(e.into()))?,
            );
        }
        if let Some(id) = &self.set_identifier {
            rs = rs.set_identifier(id);
        }
        if let Some(m) = self.multi_value_answer {
            rs = rs.multi_value_answer(m);
        }
        rs.build().map_err(|e| Fail::Permanent(e.into()))
    }

    fn values(&self, key: &RrKey) -> Values {
        self.records
            .iter()
            .filter_map(|r| RData::parse(key.rtype, r))
            .map(|data| Value {
                name: key.name.clone(),
                data,
            })
            .collect()
    }
}

/// Route53's answer while it still works on an earlier request; classified
/// `Fail::Busy` with a `why` that starts with it.
const PRIOR_REQUEST_NOT_COMPLETE: &str = "PriorRequestNotComplete";

/// Classifies a failed call; throttling is told to the pacer by [`Route53::call`].
fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: &SdkError<E, HttpResponse>,
) -> Fail {
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("");
            let message = err.message().unwrap_or("").to_string();
            match code {
                // PriorRequestNotComplete: "wait, in intervals of increasing
                // duration, before you try the request again" (API reference,
                // ChangeResourceRecordSets errors): busy, but not the
                // account's rate (see `Route53::tell_pacer`).
                "Throttling" | "ThrottlingException" | PRIOR_REQUEST_NOT_COMPLETE => Fail::Busy {
                    why: format!("{code}: {message}"),
                    retry_after: None,
                },
                "ServiceUnavailable" | "InternalFailure" | "InternalError" | "RequestTimeout" => {
                    Fail::Transient(format!("{code}: {message}"))
                }
                "AccessDenied" | "AccessDeniedException" => Fail::permanent(format!(
                    "{code}: {message}; the IAM policy must allow this call on the zone and names (see iam/dnsreg-route53-policy.json)"
                )),
                "InvalidClientTokenId"
                | "SignatureDoesNotMatch"
                | "UnrecognizedClientException"
                | "ExpiredToken" => Fail::permanent(format!(
                    "{code}: {message}; check the AWS credentials dnsreg runs with"
                )),
                "" => {
                    // No Route53 error document at all: an HTML page from a
                    // proxy or a wrong endpoint, say. Say so, with the start
                    // of what came, made printable.
                    let status = se.raw().status().as_u16();
                    let what = format!(
                        "HTTP {status} with no Route53 error in it (is the endpoint Route53, or is a proxy answering?): {}",
                        excerpt(se.raw().body().bytes().unwrap_or_default())
                    );
                    if status >= 500 {
                        Fail::Transient(what)
                    } else {
                        Fail::permanent(what)
                    }
                }
                _ => {
                    let status = se.raw().status().as_u16();
                    if status >= 500 {
                        Fail::Transient(format!("HTTP {status} {code}: {message}"))
                    } else {
                        Fail::permanent(format!("{code}: {message}"))
                    }
                }
            }
        }
        SdkError::TimeoutError(_) => Fail::Transient("timed out".into()),
        SdkError::DispatchFailure(_) => {
            Fail::Transient(format!("could not send: {}", error_chain(e)))
        }
        SdkError::ResponseError(_) => Fail::Transient(format!("bad response: {}", error_chain(e))),
        _ => Fail::permanent(error_chain(e)),
    }
}

/// The first 200 characters of an answer's body, text only: markup tags
/// dropped, whitespace runs and control characters made single spaces.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if in_tag => {}
            c if c.is_whitespace() || c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    let words: Vec<&str> = out.split_whitespace().collect();
    let joined = words.join(" ");
    match joined.char_indices().nth(200) {
        Some((i, _)) => format!("\"{}…\"", &joined[..i]),
        None if joined.is_empty() => "(an empty body)".to_string(),
        None => format!("\"{joined}\""),
    }
}

/// Whether `id` is a change id as Route53 gives them (`C2682N5HXP0BZ4`). Any
/// other (from a rewritten answer, or a damaged state file) is never asked
/// about: the SDK panics building a request whose URL is over 64 KiB.
fn plausible_change_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The conflict messages of InvalidChangeBatch: the zone changed under us.
fn is_conflict(message: &str) -> bool {
    message.contains("but it already exists")
        || message.contains("but it was not found")
        || message.contains("values provided do not match the current values")
}

fn rr_type(t: RType) -> RrType {
    match t {
        RType::A => RrType::A,
        RType::AAAA => RrType::Aaaa,
        RType::SRV => RrType::Srv,
        RType::TXT => RrType::Txt,
        RType::PTR => RrType::Ptr,
    }
}

/// Route53 writes some characters of names as `\DDD` octal escapes.
pub(crate) fn unescape_name(name: &str) -> String {
    let mut out = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let digits: String = chars.by_ref().take(3).collect();
            match u8::from_str_radix(&digits, 8) {
                Ok(b) => out.push(char::from(b)),
                Err(_) => {
                    out.push('\\');
                    out.push_str(&digits);
                }
            }
        } else {
            out.push(c);
        }
    }
    out.to_ascii_lowercase()
}

impl Route53 {
    pub fn new(name: &str, cfg: Route53Config, instance_id: &str) -> Route53 {
        let (zone, zone_id) = match &cfg.zone {
            ZoneRef::Name(z) => (z.clone(), String::new()),
            ZoneRef::Both(z, id) => (z.clone(), id.clone()),
            ZoneRef::Id(_) => (
                DomainName::new("unresolved.invalid").expect("valid"),
                String::new(),
            ),
        };
        Route53 {
            name: name.to_string(),
            cfg,
            instance_id: instance_id.to_string(),
            client: None,
            zone_id,
            zone,
            pacer: std::sync::Arc::new(Pacer::new(Backoff::BUSY)),
            zone_is_large: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// A provider that talks through `client` to the hosted zone `zone_id`
    /// (the fuzz tests' client, to a fake Route53 on loopback).
    #[cfg(test)]
    pub(crate) fn with_client(
        name: &str,
        cfg: Route53Config,
        instance_id: &str,
        client: Client,
        zone_id: &str,
    ) -> Route53 {
        let mut r = Route53::new(name, cfg, instance_id);
        r.client = Some(client);
        r.zone_id = zone_id.to_string();
        r
    }

    /// The SDK client for this provider's endpoint and credentials.
    async fn make_client(&self) -> anyhow::Result<Client> {
        let endpoint = self
            .cfg
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_ROUTE_53").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        if let Some(ep) = &endpoint
            && !ep.starts_with("https://")
            && !is_loopback_url(ep)
        {
            anyhow::bail!(
                "route53 `{}`: endpoint {ep} is not https; dnsreg sends credentials only over TLS (plain http is allowed to loopback stand-ins only)",
                self.name
            );
        }
        // Route53 is global and signs in us-east-1; never ask instance metadata for a region.
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|_| "us-east-1".into());
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region))
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(15))
                    .build(),
            )
            .load()
            .await;
        let mut conf = aws_sdk_route53::config::Builder::from(&shared);
        if let Some(ep) = &endpoint {
            conf = conf.endpoint_url(ep);
        }
        Ok(Client::from_conf(conf.build()))
    }

    /// Learns the hosted zone's id (or, given the id, its name).
    async fn find_zone(&mut self) -> anyhow::Result<()> {
        // Connecting has no deadline of its own: the caller's bounds it.
        let mut tries = Attempts::new(&self.name, Duration::from_secs(24 * 3600));
        match self.cfg.zone.clone() {
            ZoneRef::Id(id) => {
                let got = attempt(&mut tries, &format!("looking up hosted zone {id}"), || {
                    self.call("GetHostedZone", |c| c.get_hosted_zone().id(&id).send())
                })
                .await
                .map_err(|e| e.context(self.what()))?;
                let zone = got.hosted_zone().ok_or_else(|| {
                    anyhow!(
                        "route53 `{}`: GetHostedZone {id} returned no zone",
                        self.name
                    )
                })?;
                self.zone = DomainName::new(&unescape_name(zone.name()))
                    .with_context(|| format!("hosted zone {id} has an unusable name"))?;
                self.zone_id = id;
            }
            // Both given: connect() never gets here.
            ZoneRef::Name(name) | ZoneRef::Both(name, _) => {
                let got = attempt(
                    &mut tries,
                    &format!("looking up the hosted zone named {name}"),
                    || {
                        self.call("ListHostedZonesByName", |c| {
                            c.list_hosted_zones_by_name()
                                .dns_name(name.as_str())
                                .max_items(10)
                                .send()
                        })
                    },
                )
                .await
                .map_err(|e| e.context(self.what()))?;
                let found: Vec<&str> = got
                    .hosted_zones()
                    .iter()
                    .filter(|z| unescape_name(z.name()) == name.as_str())
                    .map(|z| z.id().trim_start_matches("/hostedzone/"))
                    .collect();
                match found.as_slice() {
                    [id] => self.zone_id = (*id).to_string(),
                    [] => anyhow::bail!(
                        "route53 `{}`: no hosted zone named {name} is visible to these credentials; check the name, or set zone_id",
                        self.name
                    ),
                    many => anyhow::bail!(
                        "route53 `{}`: {} hosted zones are named {name} ({}); set zone_id to the one to use",
                        self.name,
                        many.len(),
                        many.join(", ")
                    ),
                }
            }
        }
        Ok(())
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("connect() first")
    }

    fn set_identifier(&self, key: &RrKey) -> Option<String> {
        // The registry is this instance's alone, so it needs no routing policy.
        (self.cfg.routing == Routing::Multivalue && !key.name.is_in(&registry::root(&self.zone)))
            .then(|| self.instance_id.clone())
    }

    fn what(&self) -> String {
        format!(
            "route53 `{}` (zone {} {})",
            self.name, self.zone, self.zone_id
        )
    }

    /// One request: waits on the pacer, sends, classifies, and tells the pacer
    /// whether Route53 was busy.
    /// Every request but the change passes here, named by `operation`.
    async fn call<'a, T, E, F, Fut>(&'a self, operation: &str, op: F) -> Result<T, Fail>
    where
        F: FnOnce(&'a Client) -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.pacer.ready().await;
        let result = op(self.client()).await.map_err(|e| classify(&e));
        match &result {
            Err(fail) => self.tell_pacer(fail),
            Ok(_) => self.pacer.ok(),
        }
        self.count(operation, result.as_ref().err());
        result
    }

    /// Tells the pacer how a request failed: throttled, still working on an
    /// earlier request, or answered.
    fn tell_pacer(&self, fail: &Fail) {
        match fail {
            Fail::Busy { why, .. } if why.starts_with(PRIOR_REQUEST_NOT_COMPLETE) => {
                self.pacer.prior_not_complete(why);
            }
            Fail::Busy { why, retry_after } => self.pacer.busy(why, *retry_after),
            _ => self.pacer.ok(),
        }
    }

    fn count(&self, operation: &str, fail: Option<&Fail>) {
        use crate::metrics::Outcome;
        let outcome = fail.map_or(Outcome::Ok, Outcome::of_fail);
        crate::metrics::get().request(&self.name, operation, outcome);
    }

    async fn list_one(&self, key: &RrKey) -> Result<Option<Stored>, Fail> {
        let set_id = self.set_identifier(key);
        let got = self
            .call("ListResourceRecordSets", |c| {
                let mut req = c
                    .list_resource_record_sets()
                    .hosted_zone_id(&self.zone_id)
                    .start_record_name(key.name.as_str())
                    .start_record_type(rr_type(key.rtype))
                    .max_items(1);
                if let Some(id) = &set_id {
                    req = req.start_record_identifier(id);
                }
                req.send()
            })
            .await?;
        self.real_listing(&got, false)?;
        // The first rrset at or after the key: the key's own, or absent.
        let first: Vec<ResourceRecordSet> = got.resource_record_sets.into_iter().take(1).collect();
        self.pick(key, &first)
    }

    /// Every rrset of the zone when it fits in one page, else `None` (and the
    /// zone is remembered as large, so the next reads go rrset by rrset).
    async fn list_whole_zone(&self) -> Result<Option<Vec<ResourceRecordSet>>, Fail> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.zone_is_large.load(Relaxed) {
            return Ok(None);
        }
        let got = self
            .call("ListResourceRecordSets", |c| {
                c.list_resource_record_sets()
                    .hosted_zone_id(&self.zone_id)
                    .max_items(PAGE)
                    .send()
            })
            .await?;
        self.real_listing(&got, true)?;
        if got.is_truncated {
            self.zone_is_large.store(true, Relaxed);
            return Ok(None);
        }
        Ok(Some(got.resource_record_sets))
    }

    /// Pages through ListResourceRecordSets from `from` (the zone's start
    /// when `None`), calling `visit` with each rrset until it returns false
    /// or the listing ends. `what` names the listing in errors.
    async fn list_pages(
        &self,
        from: Option<(String, RrType, Option<String>)>,
        what: &str,
        mut visit: impl FnMut(&ResourceRecordSet) -> bool + Send,
    ) -> Result<(), Fail> {
        let from_the_start = from.is_none();
        let mut start = Some(from);
        // Where each page started: an answer that sends the listing back to
        // one of them (a proxy or cache replaying a page) would page forever.
        let mut asked: BTreeSet<Option<(String, RrType, Option<String>)>> = BTreeSet::new();
        while let Some(page) = start.take() {
            if !asked.insert(page.clone()) || asked.len() > MAX_PAGES {
                return Err(Fail::permanent(format!(
                    "{}: ListResourceRecordSets pages through {what} without end (page {} starts again at {}): not an answer Route53 gives (is a proxy replaying answers?)",
                    self.what(),
                    asked.len() + 1,
                    page.as_ref()
                        .map_or_else(|| "the start".to_string(), |(n, t, _)| format!("{n} {t}"))
                )));
            }
            let got = self
                .call("ListResourceRecordSets", |c| {
                    let mut req = c
                        .list_resource_record_sets()
                        .hosted_zone_id(&self.zone_id)
                        .max_items(PAGE);
                    if let Some((name, rtype, ident)) = &page {
                        req = req
                            .start_record_name(name)
                            .start_record_type(rtype.clone())
                            .set_start_record_identifier(ident.clone());
                    }
                    req.send()
                })
                .await?;
            self.real_listing(&got, from_the_start && page.is_none())?;
            if !got.resource_record_sets().iter().all(&mut visit) || !got.is_truncated() {
                return Ok(());
            }
            let next = got.next_record_name().map(|n| {
                (
                    n.to_string(),
                    got.next_record_type().cloned().unwrap_or(RrType::Txt),
                    got.next_record_identifier().map(str::to_string),
                )
            });
            // Where the next page starts goes back into a URL: a name or
            // SetIdentifier past Route53's limits (1,024 and 128 characters)
            // is not from Route53, and one long enough panics the SDK
            // building the URL.
            if let Some((name, _, ident)) = &next
                && (name.len() > 1024 || ident.as_ref().is_some_and(|i| i.len() > 128))
            {
                return Err(Fail::permanent(format!(
                    "{}: ListResourceRecordSets says the next page starts at {:?}…: not an answer Route53 gives (is a proxy rewriting answers?)",
                    self.what(),
                    name.chars().take(60).collect::<String>()
                )));
            }
            start = next.map(Some);
        }
        Ok(())
    }

    /// Refuses a listing Route53 cannot have sent, so that a truncated or
    /// rewritten answer is never read as "nothing there" (a leave would then
    /// remove nothing and forget what it published): Route53 always echoes
    /// MaxItems, and a listing from the zone's start begins at its apex, which
    /// always holds the SOA.
    fn real_listing(
        &self,
        got: &aws_sdk_route53::operation::list_resource_record_sets::ListResourceRecordSetsOutput,
        from_the_start: bool,
    ) -> Result<(), Fail> {
        let bad = |what: &str| {
            Err(Fail::permanent(format!(
                "{}: ListResourceRecordSets answered without {what}: not an answer Route53 gives (is a proxy rewriting answers?); nothing was changed",
                self.what()
            )))
        };
        if got.max_items < 1 {
            return bad("MaxItems");
        }
        let apex_soa = got
            .resource_record_sets
            .iter()
            .any(|r| r.r#type == RrType::Soa && unescape_name(&r.name) == self.zone.as_str());
        if from_the_start && !apex_soa {
            return bad("the zone's SOA");
        }
        Ok(())
    }

    /// The rrset of `key` among `rrsets` (this instance's own under multivalue
    /// routing), or `None`; an error when the name is kept in a way dnsreg
    /// cannot share.
    fn pick(&self, key: &RrKey, rrsets: &[ResourceRecordSet]) -> Result<Option<Stored>, Fail> {
        let set_id = self.set_identifier(key);
        let at_key = rrsets.iter().filter(|r| {
            unescape_name(&r.name) == key.name.as_str() && r.r#type == rr_type(key.rtype)
        });
        let mut plain = None;
        let mut routed = None;
        for rrset in at_key {
            if rrset.alias_target().is_some() {
                return Err(Fail::permanent(format!(
                    "{}: {key} is an alias record; dnsreg adds values only to plain record sets: use another name",
                    self.what()
                )));
            }
            match (&set_id, &rrset.set_identifier) {
                (None, None) => return Ok(Some(Stored::from_sdk(rrset))),
                // Route53 keeps a SetIdentifier as written; a registry label is
                // lowercase (a reaper acting for an instance knows only that).
                (Some(mine), Some(theirs)) if mine.eq_ignore_ascii_case(theirs) => {
                    return Ok(Some(Stored::from_sdk(rrset)));
                }
                (_, None) => plain = Some(rrset),
                (_, Some(theirs)) => routed = Some(theirs.clone()),
            }
        }
        match (&set_id, plain, routed) {
            (None, _, Some(theirs)) => Err(Fail::permanent(format!(
                "{}: {key} is kept with a routing policy (SetIdentifier `{theirs}`); dnsreg with routing = \"simple\" shares only plain rrsets: set routing = \"multivalue\" or use another name",
                self.what(),
            ))),
            (Some(_), Some(_), _) => Err(Fail::permanent(format!(
                "{}: {key} is a plain rrset; dnsreg with routing = \"multivalue\" cannot add its own rrset beside it: set routing = \"simple\" or use another name",
                self.what()
            ))),
            _ => Ok(None),
        }
    }

    /// The batch for `edit` against `snapshot`, and the snapshot it leaves.
    fn batch(&self, snapshot: &Snapshot, edit: &Edit) -> Result<(Vec<Change>, Snapshot), Fail> {
        let mut changes = Vec::new();
        let mut after = snapshot.clone();
        let (mut records_in_batch, mut characters) = (0usize, 0usize);
        let touched = edit.keys();
        for key in touched.iter().chain(edit.guard.difference(&touched)) {
            let current = snapshot.rrsets.get(key).and_then(|h| h.rrset.clone());
            let remove: Vec<&Value> = edit
                .remove
                .get(key)
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            let add = edit.add.get(key).cloned().unwrap_or_default();
            // Keep every record we do not remove exactly as Route53 wrote it.
            let mut records: Vec<String> = current
                .as_ref()
                .map(|rs| {
                    rs.records
                        .iter()
                        .filter(|r| {
                            !RData::parse(key.rtype, r)
                                .is_some_and(|d| remove.iter().any(|v| v.data == d))
                        })
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            records.extend(add.iter().map(|r| r.value.data.to_string()));
            let ttl = edit
                .ttl
                .get(key)
                .copied()
                .map_or_else(|| current.as_ref().map_or(60, |rs| rs.ttl), i64::from);
            if let Some(rs) = &current {
                records_in_batch += rs.records.len();
                characters += rs.records.iter().map(String::len).sum::<usize>();
                changes.push(
                    Change::builder()
                        .action(ChangeAction::Delete)
                        .resource_record_set(rs.to_sdk(key)?)
                        .build()
                        .map_err(|e| Fail::Permanent(e.into()))?,
                );
            }
            let new = (!records.is_empty()).then(|| Stored {
                ttl,
                records,
                set_identifier: self.set_identifier(key),
                multi_value_answer: self.set_identifier(key).map(|_| true),
            });
            if let Some(rs) = &new {
                records_in_batch += rs.records.len();
                characters += rs.records.iter().map(String::len).sum::<usize>();
                changes.push(
                    Change::builder()
                        .action(ChangeAction::Create)
                        .resource_record_set(rs.to_sdk(key)?)
                        .build()
                        .map_err(|e| Fail::Permanent(e.into()))?,
                );
            }
            after.rrsets.insert(
                key.clone(),
                Held {
                    rrset: new,
                    presumed: false,
                },
            );
        }
        if records_in_batch > MAX_BATCH_RECORDS || characters > MAX_BATCH_CHARACTERS {
            let biggest = touched
                .iter()
                .max_by_key(|k| {
                    after
                        .rrsets
                        .get(*k)
                        .and_then(|h| h.rrset.as_ref())
                        .map_or(0, |r| r.records.len())
                })
                .map(ToString::to_string)
                .unwrap_or_default();
            return Err(Fail::permanent(format!(
                "{}: this change rewrites {biggest} whole, {records_in_batch} records ({characters} characters) in one batch, more than Route53 takes ({MAX_BATCH_RECORDS} records, {MAX_BATCH_CHARACTERS} characters); a shared rrset this large cannot be changed atomically: use routing = \"multivalue\" (one rrset per instance) for a fleet this size",
                self.what()
            )));
        }
        Ok((changes, after))
    }
}

impl Provider for Route53 {
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

    fn as_owner(&self, label: &str) -> Option<Route53> {
        self.keeps_apart().then(|| Route53 {
            name: self.name.clone(),
            cfg: self.cfg.clone(),
            instance_id: label.to_string(),
            client: self.client.clone(),
            zone_id: self.zone_id.clone(),
            zone: self.zone.clone(),
            pacer: self.pacer.clone(),
            zone_is_large: std::sync::atomic::AtomicBool::new(
                self.zone_is_large
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
        })
    }

    fn forget_zone(&mut self) {
        if !matches!(self.cfg.zone, ZoneRef::Both(..)) {
            self.zone_id.clear();
        }
    }

    fn keeps_apart(&self) -> bool {
        self.cfg.routing == Routing::Multivalue
    }

    /// A change batch that DELETEs and CREATEs each rrset exactly as it is:
    /// Route53 applies it only if all of them are as remembered, and it
    /// changes nothing. (Absent rrsets cannot be checked so: they are read.)
    async fn check(
        &self,
        snapshot: &Snapshot,
        keys: &BTreeSet<RrKey>,
    ) -> Result<Option<bool>, Fail> {
        if keys.iter().any(|k| self.values(snapshot, k).is_empty()) {
            return Ok(None);
        }
        let touch = Edit {
            guard: keys.clone(),
            ..Edit::default()
        };
        match self.write(snapshot, &touch).await {
            Ok(_) => Ok(Some(true)),
            Err(Fail::Conflict(_)) => Ok(Some(false)),
            Err(f) => Err(f),
        }
    }

    fn lists_cheaply(&self) -> bool {
        true
    }

    fn reads_rrset_by_rrset(&self) -> bool {
        self.zone_is_large
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn batch_limit(&self) -> BatchLimit {
        // Route53's own limits, with room for this instance's own rrsets
        // beside what it carries for peers.
        BatchLimit {
            records: MAX_BATCH_RECORDS - 100,
            characters: MAX_BATCH_CHARACTERS - 4_000,
        }
    }

    async fn connect(&mut self, known: Option<&KnownZone>) -> anyhow::Result<()> {
        // Connected once the zone is known: a lookup that failed (throttled
        // for long, say) is tried again by the next call, with the same client.
        if self.client.is_none() {
            self.client = Some(self.make_client().await?);
        }
        if !self.zone_id.is_empty() {
            return Ok(());
        }
        // The state file's word, if it names this zone with an id Route53 could
        // have given (a damaged file's could panic the SDK in every URL).
        let usable = known
            .filter(|k| crate::config::plausible_hosted_zone_id(&k.id))
            .filter(|k| match &self.cfg.zone {
                ZoneRef::Name(name) => *name == k.name,
                ZoneRef::Id(id) => *id == k.id,
                ZoneRef::Both(..) => false,
            });
        if let Some(k) = usable {
            self.zone = k.name.clone();
            self.zone_id = k.id.clone();
            tracing::debug!(provider = %self.name, zone = %self.zone, zone_id = %self.zone_id, "zone known from the state file");
            return Ok(());
        }
        self.find_zone().await?;
        tracing::debug!(provider = %self.name, zone = %self.zone, zone_id = %self.zone_id, "connected");
        Ok(())
    }

    async fn read(&self, keys: &BTreeSet<RrKey>) -> Result<Snapshot, Fail> {
        let mut rrsets = BTreeMap::new();
        if keys.len() > 1
            && let Some(all) = self.list_whole_zone().await?
        {
            // The whole zone: an rrset not in it is absent.
            for key in keys {
                let rrset = self.pick(key, &all)?;
                rrsets.insert(
                    key.clone(),
                    Held {
                        rrset,
                        presumed: false,
                    },
                );
            }
            return Ok(Snapshot { rrsets });
        }
        for key in keys {
            let rrset = self.list_one(key).await?;
            rrsets.insert(
                key.clone(),
                Held {
                    rrset,
                    presumed: false,
                },
            );
        }
        Ok(Snapshot { rrsets })
    }

    fn presume(
        &self,
        memory: &Snapshot,
        keys: &BTreeSet<RrKey>,
        shared: &BTreeSet<RrKey>,
        _owned: &Values,
    ) -> Option<(Snapshot, BTreeSet<RrKey>)> {
        let mut out = Snapshot::default();
        let mut rest = BTreeSet::new();
        // Where something must be read anyway and the zone fits in one page,
        // that one request reads everything: presume nothing.
        let small = !self
            .zone_is_large
            .load(std::sync::atomic::Ordering::Relaxed);
        if small && !self.keeps_apart() && keys.iter().any(|k| shared.contains(k)) {
            return Some((out, keys.clone()));
        }
        for key in keys {
            // Under multivalue routing every rrset dnsreg writes is this
            // instance's own; under simple routing only its registry and the
            // rrsets nobody else writes.
            if self.keeps_apart() || !shared.contains(key) {
                let rrset = memory.rrsets.get(key).and_then(|h| h.rrset.clone());
                out.rrsets.insert(
                    key.clone(),
                    Held {
                        rrset,
                        presumed: true,
                    },
                );
            } else {
                rest.insert(key.clone());
            }
        }
        Some((out, rest))
    }

    fn applied(&self, snapshot: &Snapshot, edit: &Edit) -> Option<Snapshot> {
        self.batch(snapshot, edit).ok().map(|(_, after)| after)
    }

    fn merge(&self, snapshot: &mut Snapshot, more: Snapshot) {
        for (k, v) in more.rrsets {
            snapshot.rrsets.entry(k).or_insert(v);
        }
    }

    fn ttl(&self, snapshot: &Snapshot, key: &RrKey) -> Option<u32> {
        snapshot
            .rrsets
            .get(key)
            .and_then(|h| h.rrset.as_ref())
            .and_then(|rs| u32::try_from(rs.ttl).ok())
    }

    fn values(&self, snapshot: &Snapshot, key: &RrKey) -> Values {
        snapshot
            .rrsets
            .get(key)
            .and_then(|h| h.rrset.as_ref())
            .map(|rs| rs.values(key))
            .unwrap_or_default()
    }

    async fn write(&self, snapshot: &Snapshot, edit: &Edit) -> Result<Written<Snapshot>, Fail> {
        let (changes, after) = self.batch(snapshot, edit)?;
        let presumed = edit
            .keys()
            .iter()
            .chain(edit.guard.iter())
            .any(|k| snapshot.rrsets.get(k).is_some_and(|h| h.presumed));
        let batch = ChangeBatch::builder()
            .comment(format!("dnsreg {}", self.instance_id))
            .set_changes(Some(changes))
            .build()
            .map_err(|e| Fail::Permanent(e.into()))?;
        tracing::debug!(provider = %self.name, "change batch:\n{edit}");
        self.pacer.ready().await;
        let result = self
            .client()
            .change_resource_record_sets()
            .hosted_zone_id(&self.zone_id)
            .change_batch(batch)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                let fail = if let SdkError::ServiceError(se) = &e
                    && let aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsError::InvalidChangeBatch(icb) = se.err()
                {
                    let mut messages: Vec<String> = icb.messages().to_vec();
                    messages.extend(icb.message().map(str::to_string));
                    let text = messages.join("; ");
                    // A presumed snapshot that was wrong in any way (someone
                    // changed this instance's rrsets, or a name is kept in a
                    // way dnsreg cannot share): read, and decide again.
                    if presumed || messages.iter().any(|m| is_conflict(m)) {
                        Fail::Conflict(text)
                    } else {
                        Fail::permanent(format!("{}: InvalidChangeBatch: {text}", self.what()))
                    }
                } else {
                    classify(&e)
                };
                self.tell_pacer(&fail);
                self.count("ChangeResourceRecordSets", Some(&fail));
                return Err(match fail {
                    Fail::Permanent(e) => {
                        Fail::Permanent(e.context(format!("{}: changing records", self.what())))
                    }
                    other => other,
                });
            }
        };
        self.pacer.ok();
        self.count("ChangeResourceRecordSets", None);
        // A change that only checked (guards) has nothing to make live.
        let change = out
            .change_info()
            .map(|c| c.id().trim_start_matches("/change/").to_string())
            .filter(|id| !id.is_empty() && !edit.keys().is_empty());
        let change = match change {
            Some(id) if !plausible_change_id(&id) => {
                tracing::warn!(
                    provider = %self.name,
                    "the change was accepted with the id {:?}, which is not one Route53 gives (is a proxy rewriting answers?); it is not asked about",
                    id.chars().take(60).collect::<String>()
                );
                None
            }
            other => other,
        };
        Ok(Written { after, change })
    }

    async fn confirm(&self, change: &str) -> Result<bool, Fail> {
        if !plausible_change_id(change) {
            return Err(Fail::permanent(format!(
                "{}: {:?} is not a change id Route53 gives; it cannot be asked about (the next change replaces it)",
                self.what(),
                change.chars().take(60).collect::<String>()
            )));
        }
        let got = self
            .call("GetChange", |c| c.get_change().id(change).send())
            .await?;
        Ok(got.change_info().map(|c| c.status()) == Some(&ChangeStatus::Insync))
    }

    async fn registries(&self) -> Result<(BTreeMap<String, Values>, Snapshot), Fail> {
        let root = registry::root(&self.zone);
        let mut out: BTreeMap<String, Values> = BTreeMap::new();
        let mut snap = Snapshot::default();
        let from = (root.as_str().to_string(), RrType::Txt, None);
        self.list_pages(Some(from), "the registries", |rs| {
            let Ok(name) = DomainName::new(&unescape_name(&rs.name)) else {
                return true;
            };
            if !name.is_in(&root) {
                // Past the registries' subtree: done.
                return false;
            }
            if rs.r#type != RrType::Txt {
                return true;
            }
            let Some(label) = registry::label_of(&name, &self.zone) else {
                return true;
            };
            let key = RrKey {
                name: name.clone(),
                rtype: RType::TXT,
            };
            let stored = Stored::from_sdk(rs);
            out.entry(label).or_default().extend(stored.values(&key));
            snap.rrsets.insert(
                key,
                Held {
                    rrset: Some(stored),
                    presumed: false,
                },
            );
            true
        })
        .await?;
        Ok((out, snap))
    }

    /// Under multivalue routing, what each owner's rrsets at its keys are,
    /// from one listing of the whole zone (a page per 300 rrsets) instead of
    /// a read per owner (a request per rrset once the zone has more than one
    /// page): a reaper facing a hundred expired instances reads them in a
    /// few requests. Elsewhere, each owner read as usual.
    async fn read_as_owners(
        &self,
        owners: &BTreeMap<String, BTreeSet<RrKey>>,
    ) -> Result<BTreeMap<String, Snapshot>, Fail> {
        let mut out = BTreeMap::new();
        if !self.keeps_apart() || owners.len() < 2 {
            for (label, keys) in owners {
                let owner = self.as_owner(label);
                let p = owner.as_ref().unwrap_or(self);
                out.insert(label.clone(), p.read(keys).await?);
            }
            return Ok(out);
        }
        let mut all = Vec::new();
        self.list_pages(None, "the zone", |rs| {
            all.push(rs.clone());
            true
        })
        .await?;
        for (label, keys) in owners {
            let owner = self.as_owner(label);
            let p = owner.as_ref().unwrap_or(self);
            let mut rrsets = BTreeMap::new();
            for key in keys {
                rrsets.insert(
                    key.clone(),
                    Held {
                        rrset: p.pick(key, &all)?,
                        presumed: false,
                    },
                );
            }
            out.insert(label.clone(), Snapshot { rrsets });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
