//! A strict stand-in for Amazon Route53 (REST-XML API 2013-04-01).
//!
//! dnsreg's central promise, that many machines changing one record set at once
//! lose and clobber nothing, rests on Route53's own rules: a change batch is
//! checked whole and applied atomically, CREATE fails when the record set
//! exists, DELETE fails unless it names the current values exactly. moto, the
//! usual fake, is lenient on exactly these points, so this server enforces them
//! (and the validation, routing, limits, errors and throttling around them) the
//! way Route53 does, closely enough that the AWS SDK for Rust, botocore and the
//! AWS CLI work against it unchanged. Tests drive it through [`Route53Server`]:
//! seed and inspect zones, inject faults, set the account's rate limit, read
//! counters.
//!
//! Layout: `names` (DNS names as Route53 prints and sorts them), `values`
//! (RDATA checks), `zone` (record sets and batch semantics), `xml` (request
//! parsing, response writing), `auth` (SigV4 header checks and, on request,
//! signature verification), `http` (paths, the request pipeline with faults
//! and throttling, error answers), `ops` (the operations).
//!
//! Supported operations: CreateHostedZone, GetHostedZone, ListHostedZones,
//! ListHostedZonesByName, DeleteHostedZone, ListResourceRecordSets,
//! ChangeResourceRecordSets and GetChange. Record sets are simple, weighted or
//! multivalue-answer; alias, latency, failover, geolocation and health-checked
//! record sets are refused with InvalidInput saying the stand-in lacks them.

mod auth;
mod http;
mod names;
mod ops;
mod values;
mod xml;
mod zone;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::Running;
use names::Name;
use zone::Zone;

/// Route53's request rate limit for a whole AWS account, in requests per second.
///
/// "Quotas" in the Route53 Developer Guide (section "Maximums on API
/// requests") and the knowledge-center article "How can I avoid Route 53 API
/// throttling errors?": "five requests per second per AWS account"; above it
/// Route53 answers HTTP 400 with Code `Throttling` and Message `Rate exceeded`.
/// (A newer "Throttling for Amazon Route 53 API requests" page describes token
/// buckets refilling at 10 per second with a burst of 50; the stricter,
/// long-documented figure is kept so that code passing here passes there.)
pub const ROUTE53_ACCOUNT_RATE: f64 = 5.0;

/// How long a change stays PENDING before GetChange reports INSYNC, by default.
pub const DEFAULT_INSYNC_AFTER: Duration = Duration::from_millis(200);

/// A misbehaviour to inject into the next requests (see [`Route53Server::fail_next`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 400, Code `Throttling`, Message `Rate exceeded`.
    Throttling,
    /// HTTP 400, Code `PriorRequestNotComplete`.
    PriorRequestNotComplete,
    /// HTTP 500, Code `InternalFailure`.
    InternalError,
    /// HTTP 503, Code `ServiceUnavailable`.
    ServiceUnavailable,
    /// Answer normally, but only after this long.
    Delay(Duration),
    /// Close the connection without sending a response (not even a status line).
    Drop,
    /// Abort the connection without sending a response: the kernel answers
    /// with a TCP reset (RST), and the client's read or write fails with
    /// "connection reset by peer" rather than seeing the end of the stream.
    Reset,
}

/// Counters since start or the last [`Route53Server::reset_stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests received per action name (`ChangeResourceRecordSets`, `GetChange`,
    /// …; `Unknown` for paths that are no operation), whatever their outcome.
    pub requests: BTreeMap<String, u64>,
    /// Responses with Code `Throttling` (rate limit or injected fault).
    pub throttled: u64,
    /// Responses with Code `InvalidChangeBatch`.
    pub invalid_change_batch: u64,
    /// ChangeResourceRecordSets requests that were applied.
    pub applied_batches: u64,
}

impl Stats {
    /// All requests received.
    pub fn total(&self) -> u64 {
        self.requests.values().sum()
    }
}

/// A record set as Route53 lists it.
///
/// `name` is in Route53's printed form: lowercase, absolute (trailing dot), and
/// characters other than `a-z0-9-_` as `\ddd` octal escapes (a wildcard label is
/// `\052`). `multivalue_answer` and `weight` are the routing fields; with either
/// set, `set_identifier` is set too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RrSet {
    pub name: String,
    pub rtype: String,
    pub ttl: u32,
    pub set_identifier: Option<String>,
    pub multivalue_answer: Option<bool>,
    pub weight: Option<u64>,
    /// The values, in the order they were given.
    pub records: Vec<String>,
}

impl RrSet {
    /// A simple-routing record set (no SetIdentifier, no routing fields).
    pub fn simple(name: &str, rtype: &str, ttl: u32, records: &[&str]) -> RrSet {
        RrSet {
            name: name.to_owned(),
            rtype: rtype.to_owned(),
            ttl,
            set_identifier: None,
            multivalue_answer: None,
            weight: None,
            records: records.iter().map(|r| (*r).to_owned()).collect(),
        }
    }
}

/// A submitted change (ChangeResourceRecordSets or CreateHostedZone).
struct ChangeRecord {
    submitted: Instant,
    submitted_at: SystemTime,
    comment: Option<String>,
}

/// The account-wide token bucket: holds at most `capacity` tokens (one second's
/// worth, at least one) and refills at `rate` per second.
struct Bucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: f64) -> Bucket {
        let capacity = rate.max(1.0);
        Bucket {
            rate,
            capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    fn admit(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Everything the server knows; one lock, never held across an await.
struct State {
    /// Hosted zones in creation order.
    zones: Vec<Zone>,
    changes: HashMap<String, ChangeRecord>,
    faults: VecDeque<Fault>,
    /// Faults for ChangeResourceRecordSets only (after `faults`).
    write_faults: VecDeque<Fault>,
    bucket: Option<Bucket>,
    /// When set, the only key pair requests may be signed with.
    keys: Option<auth::Keys>,
    insync_after: Duration,
    stats: Stats,
}

impl State {
    fn zone(&self, id: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.id == id)
    }

    fn zone_mut(&mut self, id: &str) -> Option<&mut Zone> {
        self.zones.iter_mut().find(|z| z.id == id)
    }

    /// Creates a zone with its SOA and NS record sets and records the change.
    fn create_zone(
        &mut self,
        name: Name,
        caller_reference: String,
        comment: Option<String>,
        private: bool,
    ) -> (String, String) {
        let id = loop {
            let id = format!("Z{}", http::random_id(20));
            if self.zone(&id).is_none() {
                break id;
            }
        };
        let zone = Zone::new(
            id.clone(),
            name,
            caller_reference,
            comment,
            private,
            http::name_servers(),
        );
        self.zones.push(zone);
        let change = self.record_change(None);
        (id, change)
    }

    /// Registers a new change, PENDING from now; returns its bare id (`C…`).
    fn record_change(&mut self, comment: Option<String>) -> String {
        let id = loop {
            let id = format!("C{}", http::random_id(20));
            if !self.changes.contains_key(&id) {
                break id;
            }
        };
        self.changes.insert(
            id.clone(),
            ChangeRecord {
                submitted: Instant::now(),
                submitted_at: SystemTime::now(),
                comment,
            },
        );
        id
    }
}

pub(crate) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take the server down with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running Route53 stand-in on loopback, plus the knobs tests need.
///
/// It stops when dropped. Point a client at [`url`](Route53Server::url) with
/// any access key: requests must carry a well-formed SigV4 `Authorization`
/// header for `route53`, but the signature itself is only verified after
/// [`set_credentials`](Route53Server::set_credentials). Zones live in memory.
/// The handle is `Send + Sync`; every method takes effect at once, also for
/// requests already on their way.
pub struct Route53Server {
    running: Running,
    shared: Arc<Shared>,
}

impl Route53Server {
    /// Starts on `127.0.0.1` on a free port. Panics if that fails.
    pub fn start() -> Route53Server {
        Route53Server::start_on(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("start the Route53 stand-in on 127.0.0.1")
    }

    /// Starts on `addr` (port 0 picks a free port).
    pub fn start_on(addr: SocketAddr) -> std::io::Result<Route53Server> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                zones: Vec::new(),
                changes: HashMap::new(),
                faults: VecDeque::new(),
                write_faults: VecDeque::new(),
                bucket: None,
                keys: None,
                insync_after: DEFAULT_INSYNC_AFTER,
                stats: Stats::default(),
            }),
        });
        let running = Running::spawn(addr, http::router(shared.clone()))?;
        Ok(Route53Server { running, shared })
    }

    /// The endpoint URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.running.url()
    }

    /// Creates a public hosted zone as CreateHostedZone would (with its SOA and
    /// NS record sets) and returns its bare id (`Z…`, no `/hostedzone/`).
    /// Bypasses faults, limits and counters. Panics if `name` is not a valid name.
    pub fn create_zone(&self, name: &str) -> String {
        let parsed =
            Name::parse(name).unwrap_or_else(|e| panic!("create_zone: {}", e.message(name)));
        let mut state = self.shared.lock();
        let reference = format!("testkit-{}", http::random_id(12));
        state.create_zone(parsed, reference, None, false).0
    }

    /// The id of the (first created) zone called `name`, with or without the
    /// trailing dot, in any case.
    pub fn zone_id(&self, name: &str) -> Option<String> {
        let parsed = Name::parse(name).ok()?;
        self.shared
            .lock()
            .zones
            .iter()
            .find(|z| z.name == parsed)
            .map(|z| z.id.clone())
    }

    /// Every record set of the zone in ListResourceRecordSets order, SOA and NS
    /// included. Panics if there is no such zone.
    pub fn rrsets(&self, zone_id: &str) -> Vec<RrSet> {
        let state = self.shared.lock();
        state
            .zone(zone_id)
            .unwrap_or_else(|| panic!("rrsets: no hosted zone {zone_id}"))
            .all()
    }

    /// All values at `name`/`rtype`, across SetIdentifiers, sorted. `name` is
    /// absolute, with or without the trailing dot, in any case. Panics if there
    /// is no such zone or `name` is not a valid name.
    pub fn values(&self, zone_id: &str, name: &str, rtype: &str) -> Vec<String> {
        let parsed = Name::parse(name).unwrap_or_else(|e| panic!("values: {}", e.message(name)));
        let state = self.shared.lock();
        let zone = state
            .zone(zone_id)
            .unwrap_or_else(|| panic!("values: no hosted zone {zone_id}"));
        let mut values: Vec<String> = zone
            .at(&parsed, rtype)
            .into_iter()
            .flat_map(|s| s.records)
            .collect();
        values.sort();
        values
    }

    /// Puts a record set in place as a person would in the console: replaces the
    /// one with the same name, type and SetIdentifier, or adds it. The name is
    /// normalised (lowercase, absolute, escaped); nothing else is checked, and
    /// faults, limits and counters are bypassed. Panics if there is no such zone
    /// or the name is invalid or outside the zone.
    pub fn put_rrset(&self, zone_id: &str, rrset: RrSet) {
        let parsed = Name::parse(&rrset.name)
            .unwrap_or_else(|e| panic!("put_rrset: {}", e.message(&rrset.name)));
        let mut state = self.shared.lock();
        let zone = state
            .zone_mut(zone_id)
            .unwrap_or_else(|| panic!("put_rrset: no hosted zone {zone_id}"));
        assert!(
            parsed.is_within(&zone.name),
            "put_rrset: {parsed} is not in zone {}",
            zone.name
        );
        zone.put(RrSet {
            name: parsed.to_string(),
            ..rrset
        });
    }

    /// Removes the record set with this name, type and SetIdentifier, if any.
    /// Panics if there is no such zone or the name is invalid.
    pub fn remove_rrset(
        &self,
        zone_id: &str,
        name: &str,
        rtype: &str,
        set_identifier: Option<&str>,
    ) {
        let parsed =
            Name::parse(name).unwrap_or_else(|e| panic!("remove_rrset: {}", e.message(name)));
        let mut state = self.shared.lock();
        let zone = state
            .zone_mut(zone_id)
            .unwrap_or_else(|| panic!("remove_rrset: no hosted zone {zone_id}"));
        zone.remove(&parsed, rtype, set_identifier);
    }

    /// `Some((access_key, secret_key))`: from now on every request must be
    /// signed with exactly this key pair (403 `InvalidClientTokenId` for another
    /// access key, 403 `SignatureDoesNotMatch` for a wrong signature), as AWS
    /// would. `None` (the default): any access key, signature not recomputed.
    pub fn set_credentials(&self, credentials: Option<(&str, &str)>) {
        self.shared.lock().keys = credentials.map(|(access_key, secret_key)| auth::Keys {
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
        });
    }

    /// Limits the whole account to `per_second` requests per second (a token
    /// bucket holding one second's worth, starting full); requests over it get
    /// HTTP 400 `Throttling` "Rate exceeded". `None` (the default) is unlimited.
    /// Use [`ROUTE53_ACCOUNT_RATE`] for Route53's documented limit.
    pub fn set_rate_limit(&self, per_second: Option<f64>) {
        self.shared.lock().bucket = per_second.map(Bucket::new);
    }

    /// The next `n` requests (any operation, once past the signature check) get
    /// `fault` instead of their normal answer. Calls queue up in order.
    pub fn fail_next(&self, n: u32, fault: Fault) {
        let mut state = self.shared.lock();
        for _ in 0..n {
            state.faults.push_back(fault.clone());
        }
    }

    /// The next `n` ChangeResourceRecordSets requests get `fault`, whatever
    /// reads happen meanwhile: a fault aimed at the write between a read and
    /// its confirmation. Faults queued with [`Route53Server::fail_next`] come
    /// first. Calls queue up in order.
    pub fn fail_next_writes(&self, n: u32, fault: Fault) {
        let mut state = self.shared.lock();
        for _ in 0..n {
            state.write_faults.push_back(fault.clone());
        }
    }

    /// Faults queued (by `fail_next` and `fail_next_writes`) and not yet applied.
    pub fn pending_faults(&self) -> usize {
        let state = self.shared.lock();
        state.faults.len() + state.write_faults.len()
    }

    /// GetChange reports a change PENDING until `delay` has passed since it was
    /// submitted, INSYNC after. Applies to changes already submitted too.
    /// Default [`DEFAULT_INSYNC_AFTER`].
    pub fn set_insync_after(&self, delay: Duration) {
        self.shared.lock().insync_after = delay;
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }

    /// Sets every counter back to zero.
    pub fn reset_stats(&self) {
        self.shared.lock().stats = Stats::default();
    }
}

#[cfg(test)]
mod tests;
