//! Route53's requests and its answers: the SDK client, finding the hosted
//! zone, one paced and counted call, the listings (refused when they are not
//! answers Route53 gives), and the classification of failures for the retry
//! loop.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, anyhow};
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_route53::Client;
use aws_sdk_route53::config::http::HttpResponse;
use aws_sdk_route53::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_route53::types::{ResourceRecordSet, RrType};

use std::sync::Arc;

use super::{Connector, Route53, Stored};
use crate::config::ZoneRef;
use crate::fail::ZoneGone;
use crate::metadata::error_chain;
use crate::provider::{Fail, is_loopback_url};
use crate::record::{DomainName, RType, RrKey};
use crate::retry::{Attempts, Pacer, attempt};

/// Route53's largest page of ListResourceRecordSets. A zone that fits in one
/// is read whole with a single request, instead of one request per rrset.
const PAGE: i32 = 300;
/// The most pages a listing of the registries follows: 3 million rrsets,
/// far more than a hosted zone holds, and an end to a listing that never
/// stops saying it is truncated.
const MAX_PAGES: usize = 10_000;

/// Route53's answer while it still works on an earlier request; classified
/// `Fail::Busy` with a `why` that starts with it.
const PRIOR_REQUEST_NOT_COMPLETE: &str = "PriorRequestNotComplete";

/// Classifies a failed call; throttling is told to the pacer by [`Route53::call`].
pub(super) fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
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
                "AccessDenied" | "AccessDeniedException" => Fail::denied(format!(
                    "{code}: {message}; the IAM policy must allow this call on the zone and names (see iam/dnsreg-route53-policy.json)"
                )),
                // The id is not (or no longer) a hosted zone's.
                "NoSuchHostedZone" => {
                    Fail::Permanent(ZoneGone(format!("{code}: {message}")).into())
                }
                "InvalidClientTokenId"
                | "SignatureDoesNotMatch"
                | "UnrecognizedClientException"
                | "ExpiredToken" => Fail::denied(format!(
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
pub(super) fn plausible_change_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The conflict messages of InvalidChangeBatch: the zone changed under us.
pub(super) fn is_conflict(message: &str) -> bool {
    message.contains("but it already exists")
        || message.contains("but it was not found")
        || message.contains("values provided do not match the current values")
}

pub(super) fn rr_type(t: RType) -> RrType {
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

impl Connector {
    /// The SDK client for this provider's endpoint and credentials.
    pub(super) async fn make_client(&self) -> anyhow::Result<Client> {
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

    /// Learns the hosted zone's name and id (or, given the id, its name).
    pub(super) async fn find_zone(&self, api: &Api) -> anyhow::Result<(DomainName, String)> {
        // Connecting has no deadline of its own: the caller's bounds it.
        let mut tries = Attempts::new(&self.name, Duration::from_secs(24 * 3600));
        match self.cfg.zone.clone() {
            ZoneRef::Id(id) => {
                let got = attempt(&mut tries, &format!("looking up hosted zone {id}"), || {
                    api.call("GetHostedZone", |c| c.get_hosted_zone().id(&id).send())
                })
                .await
                .map_err(|e| e.context(self.what()))?;
                let zone = got.hosted_zone().ok_or_else(|| {
                    anyhow!(
                        "route53 `{}`: GetHostedZone {id} returned no zone",
                        self.name
                    )
                })?;
                let name = DomainName::new(&unescape_name(zone.name()))
                    .with_context(|| format!("hosted zone {id} has an unusable name"))?;
                Ok((name, id))
            }
            // Both given: connect() never gets here.
            ZoneRef::Name(name) | ZoneRef::Both(name, _) => {
                let got = attempt(
                    &mut tries,
                    &format!("looking up the hosted zone named {name}"),
                    || {
                        api.call("ListHostedZonesByName", |c| {
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
                    [id] => Ok((name, (*id).to_string())),
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
    }
}

/// Route53 as a provider talks to it: the SDK client, the pacer every
/// request waits on, and the provider's name for the metrics.
#[derive(Clone)]
pub(super) struct Api {
    pub(super) name: String,
    pub(super) client: Client,
    pub(super) pacer: Arc<Pacer>,
}

impl Api {
    /// One request: waits on the pacer, sends, classifies, and tells the pacer
    /// whether Route53 was busy.
    /// Every request but the change passes here, named by `operation`.
    pub(super) async fn call<'a, T, E, F, Fut>(&'a self, operation: &str, op: F) -> Result<T, Fail>
    where
        F: FnOnce(&'a Client) -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.pacer.ready().await;
        let result = op(&self.client).await.map_err(|e| classify(&e));
        match &result {
            Err(fail) => self.tell_pacer(fail),
            Ok(_) => self.pacer.ok(),
        }
        self.count(operation, result.as_ref().err());
        result
    }

    /// Tells the pacer how a request failed: throttled, still working on an
    /// earlier request, or answered.
    pub(super) fn tell_pacer(&self, fail: &Fail) {
        match fail {
            Fail::Busy { why, .. } if why.starts_with(PRIOR_REQUEST_NOT_COMPLETE) => {
                self.pacer.prior_not_complete(why);
            }
            Fail::Busy { why, retry_after } => self.pacer.busy(why, *retry_after),
            _ => self.pacer.ok(),
        }
    }

    pub(super) fn count(&self, operation: &str, fail: Option<&Fail>) {
        use crate::metrics::Outcome;
        let outcome = fail.map_or(Outcome::Ok, Outcome::of_fail);
        crate::metrics::get().request(&self.name, operation, outcome);
    }
}

impl Route53 {
    pub(super) async fn list_one(&self, key: &RrKey) -> Result<Option<Stored>, Fail> {
        let set_id = self.set_identifier(key);
        let got = self
            .api
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
    pub(super) async fn list_whole_zone(&self) -> Result<Option<Vec<ResourceRecordSet>>, Fail> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.zone_is_large.load(Relaxed) {
            return Ok(None);
        }
        let got = self
            .api
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
    pub(super) async fn list_pages(
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
                .api
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
    pub(super) fn pick(
        &self,
        key: &RrKey,
        rrsets: &[ResourceRecordSet],
    ) -> Result<Option<Stored>, Fail> {
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
}
