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
//! Credentials and region come from the standard AWS chain; the endpoint from
//! `endpoint`, `AWS_ENDPOINT_URL_ROUTE_53` or `AWS_ENDPOINT_URL`. The SDK's own
//! retries are off: throttling, PriorRequestNotComplete, 5xx and timeouts are
//! retried here with [`Backoff::API`], so that the policy is the same everywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

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

use super::{Edit, Provider, Values, WriteError, is_loopback_url};
use crate::config::{Route53Config, Routing, ZoneRef};
use crate::metadata::error_chain;
use crate::plan::registry_root;
use crate::record::{DomainName, RData, RType, RrKey, Value};
use crate::retry::{Backoff, retry_by};

/// How long to wait for a change to reach INSYNC.
const INSYNC_TIMEOUT: Duration = Duration::from_secs(180);

pub struct Route53 {
    name: String,
    cfg: Route53Config,
    instance_id: String,
    client: Option<Client>,
    zone_id: String,
    zone: DomainName,
    /// Set once the zone was found to hold more than one page of rrsets:
    /// reads then ask for each rrset on its own.
    zone_is_large: std::sync::atomic::AtomicBool,
}

/// Route53's largest page of ListResourceRecordSets. A zone that fits in one
/// is read whole with a single request, instead of one request per rrset: at
/// five requests per second per account, that is what lets a fleet in.
const PAGE: i32 = 300;

/// The exact rrsets read, by key; `None` when absent.
pub struct Snapshot {
    rrsets: BTreeMap<RrKey, Option<ResourceRecordSet>>,
}

/// A failed call, classified.
enum CallError {
    /// Throttled: retried with [`Backoff::THROTTLED`], bounded by the caller's deadline.
    Throttled(String),
    Transient(String),
    Conflict(String),
    Permanent(String),
}

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: &SdkError<E, HttpResponse>,
) -> CallError {
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("");
            let message = err.message().unwrap_or("").to_string();
            match code {
                "Throttling" | "ThrottlingException" | "PriorRequestNotComplete" => {
                    CallError::Throttled(format!("{code}: {message}"))
                }
                "ServiceUnavailable" | "InternalFailure" | "InternalError" | "RequestTimeout" => {
                    CallError::Transient(format!("{code}: {message}"))
                }
                "AccessDenied" | "AccessDeniedException" => CallError::Permanent(format!(
                    "{code}: {message}; the IAM policy must allow this call on the zone and names (see iam/dnsreg-route53-policy.json)"
                )),
                "InvalidClientTokenId"
                | "SignatureDoesNotMatch"
                | "UnrecognizedClientException"
                | "ExpiredToken" => CallError::Permanent(format!(
                    "{code}: {message}; check the AWS credentials dnsreg runs with"
                )),
                _ => {
                    let status = se.raw().status().as_u16();
                    if status >= 500 {
                        CallError::Transient(format!("HTTP {status} {code}: {message}"))
                    } else {
                        CallError::Permanent(format!(
                            "{}: {message}",
                            if code.is_empty() { "error" } else { code }
                        ))
                    }
                }
            }
        }
        SdkError::TimeoutError(_) => CallError::Transient("timed out".into()),
        SdkError::DispatchFailure(d) => CallError::Transient(format!("could not send: {}", {
            let _ = d;
            error_chain(e)
        })),
        SdkError::ResponseError(_) => {
            CallError::Transient(format!("bad response: {}", error_chain(e)))
        }
        _ => CallError::Permanent(error_chain(e)),
    }
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
fn unescape_name(name: &str) -> String {
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
        match self.cfg.zone.clone() {
            ZoneRef::Id(id) => {
                let got = self
                    .call("GetHostedZone", || async {
                        self.client()
                            .get_hosted_zone()
                            .id(&id)
                            .send()
                            .await
                            .map_err(|e| classify(&e))
                    })
                    .await
                    .map_err(|e| self.fail(&format!("looking up hosted zone {id}"), e))?;
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
            ZoneRef::Name(name) => {
                let got = self
                    .call("ListHostedZonesByName", || async {
                        self.client()
                            .list_hosted_zones_by_name()
                            .dns_name(name.as_str())
                            .max_items(10)
                            .send()
                            .await
                            .map_err(|e| classify(&e))
                    })
                    .await
                    .map_err(|e| {
                        self.fail(&format!("looking up the hosted zone named {name}"), e)
                    })?;
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

    pub fn new(name: &str, cfg: Route53Config, instance_id: &str) -> Route53 {
        let zone = match &cfg.zone {
            ZoneRef::Name(z) => z.clone(),
            ZoneRef::Id(_) => DomainName::new("unresolved.invalid").expect("valid"),
        };
        Route53 {
            name: name.to_string(),
            cfg,
            instance_id: instance_id.to_string(),
            client: None,
            zone_id: String::new(),
            zone,
            zone_is_large: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("connect() first")
    }

    fn set_identifier(&self, key: &RrKey) -> Option<String> {
        // The registry is this instance's alone, so it needs no routing policy.
        (self.cfg.routing == Routing::Multivalue && !key.name.is_in(&registry_root(&self.zone)))
            .then(|| self.instance_id.clone())
    }

    fn what(&self) -> String {
        format!(
            "route53 `{}` (zone {} {})",
            self.name, self.zone, self.zone_id
        )
    }

    /// Calls `op` with the API retry policy; permanent failures and exhausted
    /// retries become errors that say what was being done.
    async fn call<T, F, Fut>(&self, doing: &str, op: F) -> Result<T, CallError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        retry_by(
            |n| {
                if n > 0 {
                    tracing::debug!(provider = %self.name, attempt = n + 1, doing, "retrying");
                }
                op()
            },
            |e| match e {
                CallError::Throttled(_) => Some(Backoff::THROTTLED),
                CallError::Transient(_) => Some(Backoff::API),
                CallError::Conflict(_) | CallError::Permanent(_) => None,
            },
        )
        .await
    }

    async fn list_one(&self, key: &RrKey) -> anyhow::Result<Option<ResourceRecordSet>> {
        let set_id = self.set_identifier(key);
        let got = self
            .call("ListResourceRecordSets", || async {
                let mut req = self
                    .client()
                    .list_resource_record_sets()
                    .hosted_zone_id(&self.zone_id)
                    .start_record_name(key.name.as_str())
                    .start_record_type(rr_type(key.rtype))
                    .max_items(1);
                if let Some(id) = &set_id {
                    req = req.start_record_identifier(id);
                }
                req.send().await.map_err(|e| classify(&e))
            })
            .await
            .map_err(|e| self.fail(&format!("reading {key}"), e))?;
        // The first rrset at or after the key: the key's own, or absent.
        let first: Vec<ResourceRecordSet> = got.resource_record_sets.into_iter().take(1).collect();
        self.pick(key, &first)
    }

    /// Every rrset of the zone when it fits in one page, else `None` (and the
    /// zone is remembered as large, so the next reads go rrset by rrset).
    async fn list_whole_zone(&self) -> anyhow::Result<Option<Vec<ResourceRecordSet>>> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.zone_is_large.load(Relaxed) {
            return Ok(None);
        }
        let got = self
            .call("ListResourceRecordSets", || async {
                self.client()
                    .list_resource_record_sets()
                    .hosted_zone_id(&self.zone_id)
                    .max_items(PAGE)
                    .send()
                    .await
                    .map_err(|e| classify(&e))
            })
            .await
            .map_err(|e| self.fail("reading the zone", e))?;
        if got.is_truncated {
            self.zone_is_large.store(true, Relaxed);
            return Ok(None);
        }
        Ok(Some(got.resource_record_sets))
    }

    /// The rrset of `key` among `rrsets` (this instance's own under multivalue
    /// routing), or `None`; an error when the name is kept with the other
    /// routing.
    fn pick(
        &self,
        key: &RrKey,
        rrsets: &[ResourceRecordSet],
    ) -> anyhow::Result<Option<ResourceRecordSet>> {
        let set_id = self.set_identifier(key);
        let at_key = rrsets.iter().filter(|r| {
            unescape_name(&r.name) == key.name.as_str() && r.r#type == rr_type(key.rtype)
        });
        let mut plain = None;
        let mut routed = None;
        for rrset in at_key {
            match (&set_id, &rrset.set_identifier) {
                (None, None) => return Ok(Some(rrset.clone())),
                (Some(mine), Some(theirs)) if mine == theirs => return Ok(Some(rrset.clone())),
                (_, None) => plain = Some(rrset),
                (_, Some(theirs)) => routed = Some(theirs.clone()),
            }
        }
        match (&set_id, plain, routed) {
            (None, _, Some(theirs)) => Err(anyhow!(
                "{}: {key} is kept with a routing policy (SetIdentifier `{theirs}`); dnsreg with routing = \"simple\" shares only plain rrsets: set routing = \"multivalue\" or use another name",
                self.what(),
            )),
            (Some(_), Some(_), _) => Err(anyhow!(
                "{}: {key} is a plain rrset; dnsreg with routing = \"multivalue\" cannot add its own rrset beside it: set routing = \"simple\" or use another name",
                self.what()
            )),
            _ => Ok(None),
        }
    }

    fn fail(&self, doing: &str, e: CallError) -> anyhow::Error {
        match e {
            CallError::Transient(m) => anyhow!(
                "{}: {doing}: still failing after {} attempts: {m}",
                self.what(),
                Backoff::API.attempts
            ),
            CallError::Throttled(m) => anyhow!(
                "{}: {doing}: still throttled after {} attempts: {m} (Route53 allows five requests per second per account)",
                self.what(),
                Backoff::THROTTLED.attempts
            ),
            CallError::Conflict(m) | CallError::Permanent(m) => {
                anyhow!("{}: {doing}: {m}", self.what())
            }
        }
    }

    fn values_of(rrset: &ResourceRecordSet, key: &RrKey) -> Values {
        rrset
            .resource_records()
            .iter()
            .filter_map(|r| RData::parse(key.rtype, r.value()))
            .map(|data| Value {
                name: key.name.clone(),
                data,
            })
            .collect()
    }

    async fn wait_insync(&self, change_id: &str) -> anyhow::Result<()> {
        let started = Instant::now();
        // GetChange counts against the account's five requests per second like
        // every other call, and a change takes seconds to propagate: ask after a
        // pause, then less and less often (0.5 s, 1 s, 2 s, … 10 s).
        let mut delay = Duration::from_millis(500);
        loop {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
            let got = self
                .call("GetChange", || async {
                    self.client()
                        .get_change()
                        .id(change_id)
                        .send()
                        .await
                        .map_err(|e| classify(&e))
                })
                .await
                .map_err(|e| self.fail(&format!("waiting for change {change_id}"), e))?;
            if got.change_info().map(|c| c.status()) == Some(&ChangeStatus::Insync) {
                return Ok(());
            }
            if started.elapsed() > INSYNC_TIMEOUT {
                anyhow::bail!(
                    "{}: change {change_id} was accepted but is still PENDING after {INSYNC_TIMEOUT:?}",
                    self.what()
                );
            }
        }
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

    async fn connect(&mut self) -> anyhow::Result<()> {
        // Connected once the zone is known: a lookup that failed (throttled
        // for long, say) is tried again by the next call, with the same client.
        if !self.zone_id.is_empty() {
            return Ok(());
        }
        if self.client.is_none() {
            self.client = Some(self.make_client().await?);
        }
        self.find_zone().await?;
        tracing::debug!(provider = %self.name, zone = %self.zone, zone_id = %self.zone_id, "connected");
        Ok(())
    }

    async fn read(&self, keys: &BTreeSet<RrKey>) -> anyhow::Result<Snapshot> {
        let mut rrsets = BTreeMap::new();
        if keys.len() > 1
            && let Some(all) = self.list_whole_zone().await?
        {
            // The whole zone: an rrset not in it is absent.
            for key in keys {
                rrsets.insert(key.clone(), self.pick(key, &all)?);
            }
            return Ok(Snapshot { rrsets });
        }
        for key in keys {
            rrsets.insert(key.clone(), self.list_one(key).await?);
        }
        Ok(Snapshot { rrsets })
    }

    fn ttl(&self, snapshot: &Snapshot, key: &RrKey) -> Option<u32> {
        match snapshot.rrsets.get(key) {
            Some(Some(rrset)) => rrset.ttl().and_then(|t| u32::try_from(t).ok()),
            _ => None,
        }
    }

    fn values(&self, snapshot: &Snapshot, key: &RrKey) -> Values {
        match snapshot.rrsets.get(key) {
            Some(Some(rrset)) => Self::values_of(rrset, key),
            _ => Values::new(),
        }
    }

    async fn write(&self, snapshot: &Snapshot, edit: &Edit) -> Result<(), WriteError> {
        let mut changes = Vec::new();
        for key in edit.keys() {
            let current = snapshot.rrsets.get(&key).cloned().flatten();
            let remove: Vec<&Value> = edit
                .remove
                .get(&key)
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            let add = edit.add.get(&key).cloned().unwrap_or_default();
            // Keep every record we do not remove exactly as Route53 wrote it.
            let mut records: Vec<String> = current
                .as_ref()
                .map(|rs| {
                    rs.resource_records()
                        .iter()
                        .filter(|r| {
                            !RData::parse(key.rtype, r.value())
                                .is_some_and(|d| remove.iter().any(|v| v.data == d))
                        })
                        .map(|r| r.value().to_string())
                        .collect()
                })
                .unwrap_or_default();
            records.extend(add.iter().map(|r| r.value.data.to_string()));
            let ttl = edit.ttl.get(&key).copied().map_or_else(
                || current.as_ref().and_then(|rs| rs.ttl()).unwrap_or(60),
                i64::from,
            );
            if let Some(rs) = current {
                changes.push(
                    Change::builder()
                        .action(ChangeAction::Delete)
                        .resource_record_set(rs)
                        .build()
                        .map_err(|e| WriteError::Failed(e.into()))?,
                );
            }
            if !records.is_empty() {
                let mut rs = ResourceRecordSet::builder()
                    .name(key.name.as_str())
                    .r#type(rr_type(key.rtype))
                    .ttl(ttl);
                for r in records {
                    rs = rs.resource_records(
                        ResourceRecord::builder()
                            .value(r)
                            .build()
                            .map_err(|e| WriteError::Failed(e.into()))?,
                    );
                }
                if let Some(id) = self.set_identifier(&key) {
                    rs = rs.set_identifier(id).multi_value_answer(true);
                }
                let rs = rs.build().map_err(|e| WriteError::Failed(e.into()))?;
                changes.push(
                    Change::builder()
                        .action(ChangeAction::Create)
                        .resource_record_set(rs)
                        .build()
                        .map_err(|e| WriteError::Failed(e.into()))?,
                );
            }
        }
        let batch = ChangeBatch::builder()
            .comment(format!("dnsreg {}", self.instance_id))
            .set_changes(Some(changes))
            .build()
            .map_err(|e| WriteError::Failed(e.into()))?;
        tracing::debug!(provider = %self.name, "change batch:\n{edit}");
        let result = self
            .call("ChangeResourceRecordSets", || async {
                self.client()
                    .change_resource_record_sets()
                    .hosted_zone_id(&self.zone_id)
                    .change_batch(batch.clone())
                    .send()
                    .await
                    .map_err(|e| {
                        if let SdkError::ServiceError(se) = &e
                            && let aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsError::InvalidChangeBatch(icb) = se.err()
                        {
                            let mut messages: Vec<String> = icb.messages().to_vec();
                            messages.extend(icb.message().map(str::to_string));
                            let text = messages.join("; ");
                            return if messages.iter().any(|m| is_conflict(m)) { CallError::Conflict(text) } else { CallError::Permanent(format!("InvalidChangeBatch: {text}")) };
                        }
                        classify(&e)
                    })
            })
            .await;
        let change_id = match result {
            Ok(out) => out
                .change_info()
                .map(|c| c.id().to_string())
                .unwrap_or_default(),
            Err(CallError::Conflict(m)) => return Err(WriteError::Conflict(m)),
            Err(e) => return Err(WriteError::Failed(self.fail("changing records", e))),
        };
        self.wait_insync(&change_id)
            .await
            .map_err(WriteError::Failed)
    }

    async fn registries(&self) -> anyhow::Result<BTreeMap<String, Values>> {
        let root = registry_root(&self.zone);
        let mut out: BTreeMap<String, Values> = BTreeMap::new();
        let mut start: Option<(String, RrType, Option<String>)> =
            Some((root.as_str().to_string(), RrType::Txt, None));
        while let Some((name, rtype, ident)) = start.take() {
            let got = self
                .call("ListResourceRecordSets", || async {
                    self.client()
                        .list_resource_record_sets()
                        .hosted_zone_id(&self.zone_id)
                        .start_record_name(&name)
                        .start_record_type(rtype.clone())
                        .set_start_record_identifier(ident.clone())
                        .max_items(300)
                        .send()
                        .await
                        .map_err(|e| classify(&e))
                })
                .await
                .map_err(|e| self.fail("listing ownership registries", e))?;
            let mut left_subtree = false;
            for rs in got.resource_record_sets() {
                let Ok(name) = DomainName::new(&unescape_name(&rs.name)) else {
                    continue;
                };
                if !name.is_in(&root) {
                    left_subtree = true;
                    break;
                }
                if rs.r#type != RrType::Txt || name == root {
                    continue;
                }
                let label = name
                    .as_str()
                    .split('.')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let key = RrKey {
                    name: name.clone(),
                    rtype: RType::TXT,
                };
                out.entry(label)
                    .or_default()
                    .extend(Self::values_of(rs, &key));
            }
            if got.is_truncated() && !left_subtree {
                start = got.next_record_name().map(|n| {
                    (
                        n.to_string(),
                        got.next_record_type().cloned().unwrap_or(RrType::Txt),
                        got.next_record_identifier().map(str::to_string),
                    )
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_are_told_from_invalid_input() {
        assert!(is_conflict(
            "Tried to create resource record set [name='www.example.com.', type='A'] but it already exists"
        ));
        assert!(is_conflict(
            "Tried to delete resource record set [name='www.example.com.', type='A'] but the values provided do not match the current values"
        ));
        assert!(!is_conflict(
            "Invalid Resource Record: FATAL problem: ARRDATAIllegalIPv4Address"
        ));
    }

    #[test]
    fn escaped_names_compare_equal() {
        assert_eq!(unescape_name("\\052.Example.com."), "*.example.com.");
        assert_eq!(unescape_name("www.example.com."), "www.example.com.");
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(is_loopback_url("http://127.0.0.1:18053"));
        assert!(is_loopback_url("http://localhost:1/"));
        assert!(!is_loopback_url("http://10.0.0.1:18053"));
        assert!(!is_loopback_url("http://route53.example"));
    }
}
