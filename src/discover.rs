//! `dnsreg discover NAME`: the client side of what the agent publishes.
//!
//! A machine that needs a service (a worker looking for its master, a proxy
//! looking for its backends) finds it by DNS the same way the agent put it
//! there: SRV per RFC 2782, DNS-SD per RFC 6763, or plain A/AAAA. This module
//! owns the lookup (through hickory-resolver, never `dig`), the RFC 2782
//! ordering, the RFC 6763 TXT parsing, `--wait` polling, and the output format.
//!
//! What NAME means is decided from one round of four parallel queries (SRV,
//! PTR, A and AAAA of NAME), in this order of precedence:
//!
//! 1. SRV records at NAME: the service's endpoints, ordered per RFC 2782;
//! 2. else PTR records at NAME: a DNS-SD service type; each PTR names an
//!    instance, whose SRV and TXT are read (RFC 6763 §4, §6);
//! 3. else the A and AAAA records of NAME.
//!
//! A query that fails (timeout, SERVFAIL, REFUSED) decides nothing: the
//! attempt fails rather than falling through to a lower kind, so a flaky
//! server never turns an SRV service into a host name.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use futures_util::future::join_all;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::rdata::SRV;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use serde::Serialize;
use serde::ser::SerializeMap;
use tokio::time::Instant;

use crate::cli::DiscoverArgs;
use crate::config::UsageError;
use crate::retry::Backoff;

/// Per-query timeout with `--server`: a loopback or LAN server answers in
/// milliseconds; 2 s and one retry bound an unreachable one (hickory counts
/// `attempts` as retries after the first try).
const SERVER_TIMEOUT: Duration = Duration::from_secs(2);
const SERVER_ATTEMPTS: usize = 1;

/// Polling with `--wait`: jittered, growing to at most 2 s between rounds, so
/// that a fleet waiting for one master does not ask in lockstep.
const POLL: Backoff = Backoff {
    base: Duration::from_millis(500),
    cap: Duration::from_secs(2),
    attempts: u32::MAX,
};

/// With `--wait`, the last round starts this long before the deadline.
const LAST_ROUND: Duration = Duration::from_millis(100);

/// Runs `dnsreg discover`.
pub async fn run(args: &DiscoverArgs) -> anyhow::Result<ExitCode> {
    let request = Request::parse(args)?;
    let label = format!("discover {}", args.name);
    let start = Instant::now();
    let deadline = request.wait.map(|w| start + w);
    let mut round = 0;
    let mut last: Option<Failure> = None;
    loop {
        let result = match deadline {
            // No round outlives the deadline; one cut short keeps the last reason.
            Some(d) => match tokio::time::timeout_at(d, attempt(&request)).await {
                Ok(result) => result,
                Err(_) => Err(last
                    .take()
                    .unwrap_or_else(|| Failure("no answer (timed out)".into()))),
            },
            None => attempt(&request).await,
        };
        let failure = match result {
            Ok(endpoints) => {
                print(&endpoints, &request)?;
                return Ok(ExitCode::SUCCESS);
            }
            Err(f) => f,
        };
        let Some(deadline) = deadline else {
            return Err(anyhow!("{label}: {failure} (asked {})", request.asked));
        };
        // The next round starts a little before the deadline at the latest, so
        // that the last one has time to be answered.
        let now = Instant::now();
        let latest = deadline.checked_sub(LAST_ROUND).unwrap_or(start);
        if now >= latest {
            return Err(anyhow!(
                "{label}: nothing answered within {} (asked {}); last try: {failure}",
                humantime::format_duration(request.wait.unwrap_or_default()),
                request.asked
            ));
        }
        tracing::debug!("{label}: {failure}; asking again");
        last = Some(failure);
        let pause = POLL.delay(round).max(Duration::from_millis(100));
        tokio::time::sleep_until((now + pause).min(latest)).await;
        round = round.saturating_add(1);
    }
}

// ---------------------------------------------------------------------------
// The request
// ---------------------------------------------------------------------------

/// Where to ask.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Upstream {
    /// /etc/resolv.conf: its servers, options and search domains.
    System,
    /// One server, NAME taken as absolute, nothing else consulted.
    Server(SocketAddr),
}

/// The checked command line.
#[derive(Debug)]
pub(crate) struct Request {
    name: Name,
    upstream: Upstream,
    /// Servers as the user should read them in messages.
    asked: String,
    wait: Option<Duration>,
    one: bool,
    json: bool,
    resolve: bool,
    port: Option<u16>,
}

impl Request {
    pub(crate) fn parse(args: &DiscoverArgs) -> Result<Request, UsageError> {
        let mut name = Name::from_utf8(&args.name).map_err(|e| {
            UsageError(format!(
                "discover {}: not a domain name ({e}); expected e.g. _http._tcp.example.com",
                args.name
            ))
        })?;
        let upstream = match &args.server {
            Some(s) => Upstream::Server(
                parse_server(s).map_err(|e| UsageError(format!("discover {}: {e}", args.name)))?,
            ),
            None => Upstream::System,
        };
        let asked = match &upstream {
            Upstream::Server(addr) => {
                // With one chosen server there is no search list: NAME is absolute.
                name.set_fqdn(true);
                addr.to_string()
            }
            Upstream::System => system_servers(),
        };
        let wait = args
            .wait
            .as_deref()
            .map(|w| {
                let bad = |why: String| {
                    UsageError(format!(
                        "discover {}: --wait {w}: {why}; expected a duration such as 30s or 5m",
                        args.name
                    ))
                };
                match humantime::parse_duration(w) {
                    Ok(d) if d > crate::config::MAX_DURATION => Err(bad(format!(
                        "longer than {}",
                        humantime::format_duration(crate::config::MAX_DURATION)
                    ))),
                    Ok(d) => Ok(d),
                    Err(e) => Err(bad(e.to_string())),
                }
            })
            .transpose()?;
        Ok(Request {
            name,
            upstream,
            asked,
            wait,
            one: args.one,
            json: args.json,
            resolve: args.resolve,
            port: args.port,
        })
    }

    /// A resolver with an empty cache: every `--wait` round sees fresh data.
    fn resolver(&self) -> Result<TokioResolver, Failure> {
        let (config, mut options) = match &self.upstream {
            Upstream::System => hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| Failure(format!("reading /etc/resolv.conf: {e}")))?,
            Upstream::Server(addr) => {
                // UDP, and TCP when the answer is truncated (a large shared rrset).
                // (hickory-resolver 0.26 has `try_tcp_on_error` but never reads it.)
                let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                    .into_iter()
                    .map(|mut c| {
                        c.port = addr.port();
                        c
                    })
                    .collect();
                let server = NameServerConfig::new(addr.ip(), true, connections);
                let mut options = ResolverOpts::default();
                options.timeout = SERVER_TIMEOUT;
                options.attempts = SERVER_ATTEMPTS;
                options.use_hosts_file = ResolveHosts::Never;
                (
                    ResolverConfig::from_parts(None, vec![], vec![server]),
                    options,
                )
            }
        };
        // No answer outlives this round (the resolver is built afresh for each).
        options.cache_size = 0;
        TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .map_err(|e| Failure(format!("setting up the resolver: {e}")))
    }
}

/// `--server`: an IP address, or IP:PORT (`[v6]:port`); port 53 by default.
pub(crate) fn parse_server(s: &str) -> Result<SocketAddr, UsageError> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = s.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| {
            UsageError(format!(
                "--server {s}: not an IP address or IP:PORT (e.g. 192.0.2.53, 127.0.0.1:5353, [2001:db8::53]:53)"
            ))
        })
}

/// /etc/resolv.conf's servers, for messages.
fn system_servers() -> String {
    match hickory_resolver::system_conf::read_system_conf() {
        Ok((config, _)) => {
            let list: Vec<String> = config
                .name_servers()
                .iter()
                .map(|ns| {
                    let port = ns.connections.first().map_or(53, |c| c.port);
                    SocketAddr::new(ns.ip, port).to_string()
                })
                .collect();
            format!("{} from /etc/resolv.conf", list.join(", "))
        }
        Err(_) => "the servers of /etc/resolv.conf".into(),
    }
}

// ---------------------------------------------------------------------------
// One round of queries
// ---------------------------------------------------------------------------

/// Why a round found nothing to print: no answer, an error answer, or nothing
/// there (yet); said as a person should read it.
#[derive(Debug)]
struct Failure(String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The records of one type at `name`; none (NXDOMAIN, NODATA) is not an error.
async fn query(
    resolver: &TokioResolver,
    name: &Name,
    rtype: RecordType,
) -> Result<Vec<Record>, Failure> {
    match resolver.lookup(name.clone(), rtype).await {
        Ok(lookup) => Ok(lookup
            .answers()
            .iter()
            .filter(|r| r.record_type() == rtype)
            .cloned()
            .collect()),
        Err(e) if e.is_no_records_found() => Ok(Vec::new()),
        Err(e) => Err(Failure(format!(
            "{rtype} query for {name}: {}",
            describe(&e)
        ))),
    }
}

/// A resolver error as a person should read it.
fn describe(e: &NetError) -> String {
    match e {
        NetError::Timeout => "no answer (timed out)".into(),
        NetError::Io(io) => format!("no answer ({io})"),
        NetError::NoConnections => "no answer (no connection to the server)".into(),
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => {
            "the server refused (REFUSED): ask one authoritative for the name, or a resolver that serves you"
                .into()
        }
        NetError::Dns(DnsError::ResponseCode(code)) => {
            format!("the server answered {} ({code})", u16::from(*code))
        }
        other => other.to_string(),
    }
}

async fn attempt(request: &Request) -> Result<Vec<Endpoint>, Failure> {
    let resolver = request.resolver()?;
    let name = &request.name;
    let (srv, ptr, a, aaaa) = tokio::join!(
        query(&resolver, name, RecordType::SRV),
        query(&resolver, name, RecordType::PTR),
        query(&resolver, name, RecordType::A),
        query(&resolver, name, RecordType::AAAA),
    );

    let srv = srv_records(srv?);
    if !srv.is_empty() {
        let targets = match classify_srv(srv) {
            SrvAnswer::Unavailable => {
                return Err(Failure(
                    "service decidedly not available: its only SRV record has target \".\" (RFC 2782)"
                        .into(),
                ));
            }
            SrvAnswer::Targets(t) => t,
        };
        let endpoints = order(targets)
            .into_iter()
            .map(|(srv, ttl)| Endpoint::srv(&srv, ttl, None))
            .collect();
        return finish(&resolver, request, endpoints).await;
    }

    let instances = instances(ptr?);
    if !instances.is_empty() {
        return browse(&resolver, request, instances).await;
    }

    // Plain addresses: one family failing while the other answers is still an
    // answer. A round-robin name has no weights: IPv4 first, each family in a
    // random order.
    let (mut endpoints, mut errors) = (Vec::new(), Vec::new());
    let mut rng = rand::rng();
    for result in [a, aaaa] {
        match result {
            Ok(records) => {
                let mut family: Vec<Endpoint> = records
                    .into_iter()
                    .filter_map(|r| {
                        address(&r.data).map(|ip| Endpoint::address(ip, r.ttl, request.port))
                    })
                    .collect();
                shuffle(&mut family, &mut |max| {
                    rand::RngExt::random_range(&mut rng, 0..=max)
                });
                endpoints.extend(family);
            }
            Err(e) => errors.push(e),
        }
    }
    if endpoints.is_empty() {
        return Err(match errors.into_iter().next() {
            Some(e) => e,
            None => Failure("no SRV, PTR, A or AAAA records".into()),
        });
    }
    for e in errors {
        tracing::warn!("discover {name}: {e}; using the other address family");
    }
    Ok(endpoints)
}

/// DNS-SD browse (RFC 6763 §4): each PTR names an instance; its SRV says where
/// and its TXT says what.
async fn browse(
    resolver: &TokioResolver,
    request: &Request,
    instances: Vec<Name>,
) -> Result<Vec<Endpoint>, Failure> {
    let lookups = instances.iter().map(|instance| async move {
        let (srv, txt) = tokio::join!(
            query(resolver, instance, RecordType::SRV),
            query(resolver, instance, RecordType::TXT),
        );
        (instance, srv, txt)
    });
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for (instance, srv, txt) in join_all(lookups).await {
        let srv = match srv {
            Ok(srv) => srv_records(srv),
            Err(e) => {
                problems.push(format!("instance {instance}: {e}"));
                continue;
            }
        };
        let txt = match txt {
            Ok(txt) => txt,
            Err(e) => {
                // RFC 6763 §6: TXT is required, but an endpoint without it is still one.
                tracing::warn!("discover: instance {instance}: {e}");
                Vec::new()
            }
        };
        let txt = txt_of(&txt);
        let label = instance_label(instance);
        match classify_srv(srv) {
            SrvAnswer::Targets(t) if !t.is_empty() => {
                found.extend(
                    t.into_iter()
                        .map(|(srv, ttl)| (srv, ttl, Some((label.clone(), txt.clone())))),
                );
            }
            _ => problems.push(format!("instance {instance}: no SRV record")),
        }
    }
    if found.is_empty() {
        return Err(Failure(format!(
            "PTR records name {} instance{}, none usable: {}",
            instances.len(),
            if instances.len() == 1 { "" } else { "s" },
            problems.join("; ")
        )));
    }
    for p in &problems {
        tracing::warn!("discover {}: {p}", request.name);
    }
    // The instances' SRV records ordered together, as one rrset would be.
    let mut rng = rand::rng();
    let ordered = rfc2782_order(
        found,
        |(srv, _, _)| (srv.priority, srv.weight),
        &mut |max| rand::RngExt::random_range(&mut rng, 0..=max),
    );
    let endpoints = ordered
        .into_iter()
        .map(|(srv, ttl, dnssd)| Endpoint::srv(&srv, ttl, dnssd))
        .collect();
    finish(resolver, request, endpoints).await
}

/// `--resolve`: the addresses of each target; targets without one are dropped.
async fn finish(
    resolver: &TokioResolver,
    request: &Request,
    mut endpoints: Vec<Endpoint>,
) -> Result<Vec<Endpoint>, Failure> {
    if !request.resolve {
        return Ok(endpoints);
    }
    let lookups = endpoints.iter().map(|e| async move {
        let mut name = Name::from_utf8(&e.target).ok()?;
        name.set_fqdn(true);
        let (a, aaaa) = tokio::join!(
            query(resolver, &name, RecordType::A),
            query(resolver, &name, RecordType::AAAA),
        );
        let mut out = Vec::new();
        for result in [a, aaaa] {
            match result {
                Ok(v) => out.extend(v.iter().filter_map(|r| address(&r.data))),
                Err(err) => tracing::warn!("discover: target {}: {err}", e.target),
            }
        }
        Some(out)
    });
    let addresses = join_all(lookups).await;
    for (e, addrs) in endpoints.iter_mut().zip(addresses) {
        e.addresses = Some(addrs.unwrap_or_default());
    }
    let before = endpoints.len();
    endpoints.retain(|e| e.addresses.as_ref().is_some_and(|a| !a.is_empty()));
    if endpoints.is_empty() {
        return Err(Failure(format!(
            "{before} SRV target{} but no address for any",
            if before == 1 { "" } else { "s" }
        )));
    }
    Ok(endpoints)
}

pub(crate) fn address(data: &RData) -> Option<IpAddr> {
    match data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    }
}

/// The DNS-SD instances a browse answer names: PTR targets one label below
/// the PTR's owner (`<Instance>.<Service>.<Domain>`, RFC 6763 §4.1). Other
/// PTRs are not a service browse: hickory, for one, answers a PTR query for
/// `localhost` with `localhost.` itself.
pub(crate) fn instances(ptr: Vec<Record>) -> Vec<Name> {
    let mut out: Vec<Name> = ptr
        .into_iter()
        .filter_map(|r| match r.data {
            RData::PTR(p)
                if p.0.num_labels() == r.name.num_labels() + 1 && r.name.zone_of(&p.0) =>
            {
                Some(p.0)
            }
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

pub(crate) fn srv_records(records: Vec<Record>) -> Vec<(SRV, u32)> {
    records
        .into_iter()
        .filter_map(|r| match r.data {
            RData::SRV(s) => Some((s, r.ttl)),
            _ => None,
        })
        .collect()
}

/// An instance's own name: the first label of `<Instance>.<Service>.<Domain>`
/// (RFC 6763 §4.1), which may hold spaces and dots.
pub(crate) fn instance_label(name: &Name) -> String {
    name.iter()
        .next()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// RFC 2782
// ---------------------------------------------------------------------------

/// What an SRV rrset says.
#[derive(Debug, PartialEq)]
pub(crate) enum SrvAnswer {
    /// A single record with target "." (RFC 2782: "the service is decidedly
    /// not available at this domain").
    Unavailable,
    /// The usable records ("." targets among others are dropped).
    Targets(Vec<(SRV, u32)>),
}

pub(crate) fn classify_srv(mut records: Vec<(SRV, u32)>) -> SrvAnswer {
    if records.len() == 1 && records[0].0.target.is_root() {
        return SrvAnswer::Unavailable;
    }
    records.retain(|(s, _)| !s.target.is_root());
    SrvAnswer::Targets(records)
}

pub(crate) fn order(records: Vec<(SRV, u32)>) -> Vec<(SRV, u32)> {
    let mut rng = rand::rng();
    rfc2782_order(records, |(s, _)| (s.priority, s.weight), &mut |max| {
        rand::RngExt::random_range(&mut rng, 0..=max)
    })
}

/// Orders `items` as RFC 2782 ("Usage rules") says a client tries SRV
/// targets: lower priority first; within one priority, repeatedly pick by
/// weight among those not yet ordered. `key` gives (priority, weight); `draw(max)`
/// returns a uniform random number in `0..=max` (injected so tests can script
/// it). `--one` is the first of this order.
pub fn rfc2782_order<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> (u16, u16),
    draw: &mut impl FnMut(u64) -> u64,
) -> Vec<T> {
    // "arrange all SRV RRs (that have not been ordered yet) in any order":
    // a random one, so that equal weights (all 0 included) spread clients evenly.
    shuffle(&mut items, draw);
    items.sort_by_key(|t| key(t).0); // stable: keeps the random order within a priority
    let mut out = Vec::with_capacity(items.len());
    while !items.is_empty() {
        let priority = key(&items[0]).0;
        let n = items.iter().take_while(|t| key(t).0 == priority).count();
        let group: Vec<T> = items.drain(..n).collect();
        out.extend(weighted_order(group, &key, draw));
    }
    out
}

/// Fisher–Yates with the injected `draw`.
fn shuffle<T>(items: &mut [T], draw: &mut impl FnMut(u64) -> u64) {
    for i in (1..items.len()).rev() {
        let j = usize::try_from(draw(i as u64)).unwrap_or(0).min(i);
        items.swap(i, j);
    }
}

/// RFC 2782's selection within one priority, on a list already in "any order".
fn weighted_order<T>(
    mut group: Vec<T>,
    key: &impl Fn(&T) -> (u16, u16),
    draw: &mut impl FnMut(u64) -> u64,
) -> Vec<T> {
    // "except that all those with weight 0 are placed at the beginning of the
    // list": a weight-0 entry is picked only when the draw is exactly 0, the
    // "very small chance" the RFC asks for when others have weights.
    group.sort_by_key(|t| key(t).1 != 0);
    let mut out = Vec::with_capacity(group.len());
    while !group.is_empty() {
        let sum: u64 = group.iter().map(|t| u64::from(key(t).1)).sum();
        let r = draw(sum).min(sum);
        // "select the RR whose running sum value is the first in the selected
        // order which is greater than or equal to the random number selected".
        let mut running = 0;
        let pick = group
            .iter()
            .position(|t| {
                running += u64::from(key(t).1);
                running >= r
            })
            .unwrap_or(group.len() - 1);
        out.push(group.remove(pick));
    }
    out
}

// ---------------------------------------------------------------------------
// RFC 6763 TXT
// ---------------------------------------------------------------------------

/// DNS-SD attributes in the order published: key (lowercase; keys are
/// case-insensitive, RFC 6763 §6.4) and value, `None` for a boolean attribute
/// (a key without '=').
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txt(pub Vec<(String, Option<String>)>);

/// The attributes an instance's TXT records carry (RFC 6763 §6).
pub(crate) fn txt_of(records: &[Record]) -> Txt {
    let strings: Vec<&[u8]> = records
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(t.txt_data.iter().map(|s| &s[..])),
            _ => None,
        })
        .flatten()
        .collect();
    parse_txt(&strings)
}

/// Parses TXT strings as RFC 6763 §6 key/value pairs.
pub fn parse_txt(strings: &[&[u8]]) -> Txt {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for s in strings {
        // §6.1: a zero-length string (the "empty" TXT record) carries nothing.
        if s.is_empty() {
            continue;
        }
        let (key, value) = match s.iter().position(|&b| b == b'=') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (&s[..], None),
        };
        // §6.4: "If there is no key ... the string MUST be silently ignored";
        // keys are printable US-ASCII other than '='.
        if key.is_empty() || !key.iter().all(|b| (0x20..=0x7e).contains(b)) {
            continue;
        }
        let key = String::from_utf8_lossy(key).to_ascii_lowercase();
        // §6.4: "If a client receives a TXT record containing the same key more
        // than once, then the client MUST silently ignore all but the first".
        if out.iter().any(|(k, _)| *k == key) {
            continue;
        }
        // §6.5: values are opaque bytes; shown as UTF-8 (lossy).
        out.push((key, value.map(|v| String::from_utf8_lossy(v).into_owned())));
    }
    Txt(out)
}

/// JSON: an object in published order; a boolean attribute is `true`.
impl Serialize for Txt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            match v {
                Some(v) => map.serialize_entry(k, v)?,
                None => map.serialize_entry(k, &true)?,
            }
        }
        map.end()
    }
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// From an SRV rrset at NAME.
    Srv,
    /// A DNS-SD instance of the service type NAME.
    DnsSd,
    /// An A or AAAA record of NAME.
    Address,
}

/// One place to connect to; the JSON output is an array of these.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Endpoint {
    pub kind: Kind,
    /// The SRV target without its final dot, or the address.
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    pub ttl: u32,
    /// DNS-SD: the instance's own name (the first label of its PTR target).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// DNS-SD: the instance's TXT attributes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txt: Option<Txt>,
    /// `--resolve`: the target's IPv4 then IPv6 addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<IpAddr>>,
}

impl Endpoint {
    pub(crate) fn srv(srv: &SRV, ttl: u32, dnssd: Option<(String, Txt)>) -> Endpoint {
        let (kind, instance, txt) = match dnssd {
            Some((i, t)) => (Kind::DnsSd, Some(i), Some(t)),
            None => (Kind::Srv, None, None),
        };
        let target = srv.target.to_string();
        Endpoint {
            kind,
            target: target.strip_suffix('.').unwrap_or(&target).to_string(),
            port: Some(srv.port),
            priority: Some(srv.priority),
            weight: Some(srv.weight),
            ttl,
            instance,
            txt,
            addresses: None,
        }
    }

    pub(crate) fn address(ip: IpAddr, ttl: u32, port: Option<u16>) -> Endpoint {
        Endpoint {
            kind: Kind::Address,
            target: ip.to_string(),
            port,
            priority: None,
            weight: None,
            ttl,
            instance: None,
            txt: None,
            addresses: None,
        }
    }

    /// Text lines: `host:port`, then for DNS-SD the instance and each TXT
    /// attribute, all TAB-separated (`cut -f1` gives the endpoints). With
    /// `--resolve`, one line per address in place of the target.
    pub(crate) fn lines(&self) -> Vec<String> {
        let hosts: Vec<String> = match &self.addresses {
            Some(addrs) => addrs.iter().map(|a| a.to_string()).collect(),
            None => vec![self.target.clone()],
        };
        let mut rest = String::new();
        if let Some(instance) = &self.instance {
            rest.push('\t');
            rest.push_str(&escape(instance));
        }
        for (k, v) in self.txt.iter().flat_map(|t| t.0.iter()) {
            rest.push('\t');
            rest.push_str(&escape(k));
            if let Some(v) = v {
                rest.push('=');
                rest.push_str(&escape(v));
            }
        }
        hosts
            .iter()
            .map(|h| format!("{}{rest}", host_port(h, self.port)))
            .collect()
    }
}

/// `host:port`, IPv6 literals in brackets; the bare host without a port.
fn host_port(host: &str, port: Option<u16>) -> String {
    match port {
        None => host.to_string(),
        Some(p) if host.contains(':') => format!("[{host}]:{p}"),
        Some(p) => format!("{host}:{p}"),
    }
}

/// Keeps one endpoint on one line and fields TAB-separated: backslash, TAB,
/// newline and other control characters are written as escapes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

fn print(endpoints: &[Endpoint], request: &Request) -> anyhow::Result<()> {
    let shown = if request.one {
        &endpoints[..endpoints.len().min(1)]
    } else {
        endpoints
    };
    if request.json {
        println!("{}", serde_json::to_string_pretty(shown)?);
        return Ok(());
    }
    let mut lines: Vec<String> = shown.iter().flat_map(Endpoint::lines).collect();
    if request.one {
        lines.truncate(1);
    }
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
