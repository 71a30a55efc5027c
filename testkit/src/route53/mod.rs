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
//! seed and inspect zones, inject faults, set the account's rate limits
//! ([`Quota`]: today's documented token buckets or the legacy five a second),
//! refuse a share of change batches with PriorRequestNotComplete, read
//! counters.
//!
//! Layout: `names` (DNS names as Route53 prints and sorts them), `values`
//! (RDATA checks), `zone` (record sets and batch semantics), `xml` (request
//! parsing, response writing), `auth` (SigV4 header checks and signature
//! verification, with [`TEST_CREDENTIALS`] unless told otherwise), `http` (paths, the request pipeline with faults
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

use crate::gate::Gate;
use crate::{Release, Requests, Running};
use names::Name;
use zone::Zone;

/// Route53's legacy request rate limit for a whole AWS account, in requests
/// per second: [`Quota::LEGACY`]'s rate.
///
/// "Quotas" in the Route53 Developer Guide (section "Maximums on API
/// requests") and the knowledge-center article "How can I avoid Route 53 API
/// throttling errors?": "five requests per second per AWS account"; above it
/// Route53 answers HTTP 400 with Code `Throttling` and Message `Rate exceeded`.
/// Today's figures ("Throttling for Amazon Route 53 API requests") are
/// [`Quota::CURRENT`] and [`ActionQuotas::current`].
pub const ROUTE53_ACCOUNT_RATE: f64 = 5.0;

/// One token bucket: holds at most `burst` tokens, refills at `rate` tokens a
/// second, and starts full. A request takes one token (a change batch also
/// takes its changes from the change bucket, see [`ChangeQuota`]); a request
/// that finds too few is answered HTTP 400 `Throttling` "Rate exceeded" and
/// takes nothing, from this bucket or any other, so a client that keeps
/// retrying does not dig the bucket deeper. (A request answered with an
/// injected fault, see [`Route53Server::fail_next`], was still admitted or
/// throttled first, and takes its tokens when admitted, as a request that
/// reached Route53 would.)
///
/// "Throttling for Amazon Route 53 API requests" (Route53 Developer Guide)
/// calls `burst` the "bucket maximum capacity" (the burst Route53 absorbs
/// when the bucket is full) and `rate` the bucket refill rate (the rate that
/// can be sustained indefinitely); the page lets refill tokens be used as
/// they arrive, so tokens refill continuously here, not once a second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quota {
    /// Tokens added per second.
    pub rate: f64,
    /// The most tokens the bucket holds, and what it starts with.
    pub burst: f64,
}

impl Quota {
    /// Today's account-wide request bucket: burst 50, refill 10 a second
    /// ("Throttling for Amazon Route 53 API requests", the table of request
    /// rate limits per API action, its row for all actions combined at the
    /// account level). The page also gives every action a bucket of its own
    /// ([`ActionQuotas::current`]).
    pub const CURRENT: Quota = Quota {
        rate: 10.0,
        burst: 50.0,
    };

    /// The long-documented account limit, "five requests per second per AWS
    /// account" ("Quotas", section "Maximums on API requests"; the
    /// knowledge-center article "How can I avoid Route 53 API throttling
    /// errors?" calls it a hard limit). Those pages name no burst; this
    /// bucket holds one second's worth, five, exactly what
    /// [`Route53Server::set_rate_limit`]`(Some(`[`ROUTE53_ACCOUNT_RATE`]`))`
    /// has always installed.
    pub const LEGACY: Quota = Quota {
        rate: ROUTE53_ACCOUNT_RATE,
        burst: ROUTE53_ACCOUNT_RATE,
    };

    /// `rate` a second with one second's worth of burst (at least one token):
    /// the bucket [`Route53Server::set_rate_limit`] installs.
    pub fn per_second(rate: f64) -> Quota {
        Quota {
            rate,
            burst: rate.max(1.0),
        }
    }

    fn check(&self, what: &str) {
        assert!(
            self.rate.is_finite()
                && self.rate >= 0.0
                && self.burst.is_finite()
                && self.burst >= 1.0,
            "{what}: a bucket needs a finite rate >= 0 and a burst >= 1, not {self:?}"
        );
    }
}

/// A bucket per action on top of the account's ("Throttling for Amazon Route
/// 53 API requests": request rate limits apply at the account level and at
/// the account-and-action level; a request takes a token from both buckets
/// and is throttled if either is empty). Action names are the keys of
/// [`Stats::requests`]; a request to no operation (`Unknown`) meets only the
/// account bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionQuotas {
    /// The bucket of every action not in `actions`.
    pub default: Quota,
    /// Actions with a bucket of their own size.
    pub actions: BTreeMap<String, Quota>,
}

impl ActionQuotas {
    /// Today's per-action buckets ("Throttling for Amazon Route 53 API
    /// requests", the table of request rate limits per API action): burst 50
    /// and 10 a second for any action the table does not list, and, of the
    /// actions this stand-in serves, CreateHostedZone 40 / 2 a second and
    /// DeleteHostedZone 40 / 5 a second. ChangeResourceRecordSets, GetChange,
    /// GetHostedZone, ListHostedZones, ListHostedZonesByName and
    /// ListResourceRecordSets are not in the (alphabetical) table and get the
    /// default.
    pub fn current() -> ActionQuotas {
        ActionQuotas {
            default: Quota::CURRENT,
            actions: BTreeMap::from([
                (
                    "CreateHostedZone".to_owned(),
                    Quota {
                        rate: 2.0,
                        burst: 40.0,
                    },
                ),
                (
                    "DeleteHostedZone".to_owned(),
                    Quota {
                        rate: 5.0,
                        burst: 40.0,
                    },
                ),
            ]),
        }
    }

    fn quota(&self, action: &str) -> Quota {
        self.actions.get(action).copied().unwrap_or(self.default)
    }
}

/// The account's change-throughput bucket, opt-in and with no default.
///
/// "Throttling for Amazon Route 53 API requests" describes a second limit
/// beside the request rate: "Change throughput: the number of individual DNS
/// record changes per second, aggregated across the API actions that modify
/// DNS data", a token bucket where "each change" removes tokens, and "A
/// request can be throttled by either limit" (answered like the request
/// limit: 400 `Throttling` "Rate exceeded"). Its bucket sizes and refill
/// rates were not in the copies of that page that could be read when this
/// was written, so the stand-in offers no constant for them: a caller that
/// knows the figures supplies them. Here a ChangeResourceRecordSets request
/// costs one token per `Change` element, `upsert_cost` per UPSERT (the
/// knowledge-center article "How can I avoid Route 53 API throttling
/// errors?" says "UPSERT requests count twice", and "Quotas" counts an
/// UPSERT's ResourceRecord elements and characters twice; whether the change
/// bucket does the same is not stated in what could be read, hence the
/// field). A batch whose cost exceeds `bucket.burst` is always throttled. A
/// body that is not a change batch costs nothing here (it fails validation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChangeQuota {
    /// The bucket, in changes.
    pub bucket: Quota,
    /// Tokens an UPSERT takes (CREATE and DELETE take one).
    pub upsert_cost: f64,
}

/// The probability of PriorRequestNotComplete and the generator drawing it.
struct PriorRequest {
    probability: f64,
    /// SplitMix64 state: one draw per admitted ChangeResourceRecordSets.
    rng: u64,
}

impl PriorRequest {
    /// Draws once; true with the configured probability.
    fn refuse(&mut self) -> bool {
        // SplitMix64 (Steele, Lea and Flood), the top 53 bits as a fraction in [0, 1).
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        #[allow(clippy::cast_precision_loss)]
        let fraction = (z >> 11) as f64 / (1u64 << 53) as f64;
        fraction < self.probability
    }
}

/// The key pair [`Route53Server::start`] verifies signatures with until told
/// otherwise: the `AWS_ACCESS_KEY_ID=test` / `AWS_SECRET_ACCESS_KEY=test` that
/// `dnsreg-testkit serve` prints and the tests give every AWS client.
pub const TEST_CREDENTIALS: (&str, &str) = ("test", "test");

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
///
/// Requests admitted per action are `requests[action]` less
/// `throttled_by_action[action]` (less any refused at the signature check).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests received per action name (`ChangeResourceRecordSets`, `GetChange`,
    /// …; `Unknown` for paths that are no operation), whatever their outcome.
    pub requests: BTreeMap<String, u64>,
    /// Responses with Code `Throttling` (a bucket was empty, or an injected fault).
    pub throttled: u64,
    /// The same responses per action name (keys as in `requests`; actions
    /// never throttled are absent).
    pub throttled_by_action: BTreeMap<String, u64>,
    /// Responses with Code `PriorRequestNotComplete` (drawn after
    /// [`Route53Server::set_prior_request_not_complete`], or an injected fault).
    pub prior_request_not_complete: u64,
    /// Responses with Code `InvalidChangeBatch`.
    pub invalid_change_batch: u64,
    /// ChangeResourceRecordSets requests that were applied.
    pub applied_batches: u64,
    /// The most distinct names one applied batch changed.
    pub most_names_in_a_batch: usize,
}

impl Stats {
    /// All requests received.
    pub fn total(&self) -> u64 {
        self.requests.values().sum()
    }

    /// Requests received for one action (`ChangeResourceRecordSets`, …).
    pub fn requests_of(&self, action: &str) -> u64 {
        self.requests.get(action).copied().unwrap_or(0)
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

/// A token bucket as [`Quota`] describes it.
struct Bucket {
    quota: Quota,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// Full.
    fn new(quota: Quota, now: Instant) -> Bucket {
        Bucket {
            quota,
            tokens: quota.burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * self.quota.rate;
        self.tokens = (self.tokens + refill).min(self.quota.burst);
        self.last = self.last.max(now);
    }
}

/// Every bucket a request may have to take tokens from.
#[derive(Default)]
struct Limits {
    account: Option<Bucket>,
    /// The sizes, and the buckets of the actions met so far.
    actions: Option<(ActionQuotas, HashMap<String, Bucket>)>,
    changes: Option<(ChangeQuota, Bucket)>,
}

impl Limits {
    /// Takes one token from the account's and the action's bucket and
    /// `changes` from the change bucket, or nothing at all when any of them
    /// has too few (then the request is throttled).
    fn admit(&mut self, action: &str, changes: f64, now: Instant) -> bool {
        let account = self.account.as_mut();
        let action_bucket = match (&mut self.actions, action) {
            (_, "Unknown") | (None, _) => None,
            (Some((quotas, buckets)), action) => Some(
                buckets
                    .entry(action.to_owned())
                    .or_insert_with(|| Bucket::new(quotas.quota(action), now)),
            ),
        };
        let change_bucket = self.changes.as_mut().map(|(_, b)| b);
        let mut takes: Vec<(&mut Bucket, f64)> = Vec::with_capacity(3);
        takes.extend(account.map(|b| (b, 1.0)));
        takes.extend(action_bucket.map(|b| (b, 1.0)));
        if changes > 0.0 {
            takes.extend(change_bucket.map(|b| (b, changes)));
        }
        for (bucket, _) in &mut takes {
            bucket.refill(now);
        }
        if takes.iter().any(|(bucket, cost)| bucket.tokens < *cost) {
            return false;
        }
        for (bucket, cost) in takes {
            bucket.tokens -= cost;
        }
        true
    }

    /// Tokens a change batch takes from the change bucket (0 without one).
    fn change_cost(&self, body: &str) -> f64 {
        match &self.changes {
            None => 0.0,
            Some((quota, _)) => ops::change_cost(body, quota.upsert_cost),
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
    limits: Limits,
    /// Set by [`Route53Server::set_prior_request_not_complete`].
    prior_request: Option<PriorRequest>,
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
    /// Holds a request on the test's word ([`Route53Server::hold`]).
    gate: Gate,
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
/// the key pair [`TEST_CREDENTIALS`] (`test` / `test`): every request must be
/// signed with it (SigV4 for `route53`, verified as AWS does), unless a test
/// says otherwise with [`set_credentials`](Route53Server::set_credentials).
/// Zones live in memory.
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
                limits: Limits::default(),
                prior_request: None,
                keys: Some(auth::Keys {
                    access_key: TEST_CREDENTIALS.0.to_owned(),
                    secret_key: TEST_CREDENTIALS.1.to_owned(),
                }),
                insync_after: DEFAULT_INSYNC_AFTER,
                stats: Stats::default(),
            }),
            gate: Gate::default(),
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

    /// Deletes the hosted zone and everything in it, as a person who emptied
    /// it and called DeleteHostedZone would: its id answers NoSuchHostedZone
    /// from now on. Bypasses faults, limits and counters. Panics if there is no
    /// such zone.
    pub fn delete_zone(&self, zone_id: &str) {
        let mut state = self.shared.lock();
        assert!(
            state.zone(zone_id).is_some(),
            "delete_zone: no hosted zone {zone_id}"
        );
        state.zones.retain(|z| z.id != zone_id);
    }

    /// `Some((access_key, secret_key))`: from now on every request must be
    /// signed with exactly this key pair (403 `InvalidClientTokenId` for another
    /// access key, 403 `SignatureDoesNotMatch` for a wrong signature), as AWS
    /// would. The default is [`TEST_CREDENTIALS`]. `None`, for a test that
    /// sends unsigned-looking requests on purpose: any access key, and the
    /// signature is not recomputed (the `Authorization` header must still be
    /// well-formed).
    pub fn set_credentials(&self, credentials: Option<(&str, &str)>) {
        self.shared.lock().keys = credentials.map(|(access_key, secret_key)| auth::Keys {
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
        });
    }

    /// Limits the whole account to `per_second` requests per second (a token
    /// bucket holding one second's worth, starting full); requests over it get
    /// HTTP 400 `Throttling` "Rate exceeded". `None` (the default) is unlimited.
    /// Use [`ROUTE53_ACCOUNT_RATE`] for Route53's legacy documented limit.
    /// The same as [`set_quota`](Route53Server::set_quota)`(per_second.map(`[`Quota::per_second`]`))`.
    pub fn set_rate_limit(&self, per_second: Option<f64>) {
        self.set_quota(per_second.map(Quota::per_second));
    }

    /// The account-wide request bucket: `Some(`[`Quota::CURRENT`]`)` for
    /// today's documented 10 a second with a burst of 50,
    /// `Some(`[`Quota::LEGACY`]`)` for five a second, `None` (the default)
    /// for none. A request that finds it empty gets HTTP 400 `Throttling`
    /// "Rate exceeded" and takes no token (see [`Quota`]). The bucket starts
    /// full, also when replacing another. Panics on a rate below 0 or a
    /// burst below 1.
    pub fn set_quota(&self, quota: Option<Quota>) {
        if let Some(quota) = &quota {
            quota.check("set_quota");
        }
        self.shared.lock().limits.account = quota.map(|q| Bucket::new(q, Instant::now()));
    }

    /// A bucket per action as well (`None`, the default: none). Each
    /// action's bucket starts full when the action is first met after this
    /// call. Panics on a rate below 0 or a burst below 1.
    pub fn set_action_quotas(&self, quotas: Option<ActionQuotas>) {
        if let Some(quotas) = &quotas {
            quotas.default.check("set_action_quotas");
            for quota in quotas.actions.values() {
                quota.check("set_action_quotas");
            }
        }
        self.shared.lock().limits.actions = quotas.map(|q| (q, HashMap::new()));
    }

    /// Today's documented request limits, as "Throttling for Amazon Route 53
    /// API requests" gives them: [`Quota::CURRENT`] for the account and
    /// [`ActionQuotas::current`] per action. The change-throughput bucket,
    /// whose figures are not known here, is left as it is (see
    /// [`set_change_quota`](Route53Server::set_change_quota)).
    pub fn set_current_quotas(&self) {
        self.set_quota(Some(Quota::CURRENT));
        self.set_action_quotas(Some(ActionQuotas::current()));
    }

    /// The account's change-throughput bucket (`None`, the default: none);
    /// see [`ChangeQuota`] for what a batch costs and why there is no
    /// documented default. Starts full. Panics on a rate below 0, a burst
    /// below 1 or a negative UPSERT cost.
    pub fn set_change_quota(&self, quota: Option<ChangeQuota>) {
        if let Some(quota) = &quota {
            quota.bucket.check("set_change_quota");
            assert!(
                quota.upsert_cost.is_finite() && quota.upsert_cost >= 0.0,
                "set_change_quota: upsert_cost must be finite and >= 0, not {}",
                quota.upsert_cost
            );
        }
        self.shared.lock().limits.changes =
            quota.map(|q| (q, Bucket::new(q.bucket, Instant::now())));
    }

    /// From now on each ChangeResourceRecordSets request that gets past the
    /// rate limits (and meets no injected fault) is, with `probability`,
    /// refused with HTTP 400 `PriorRequestNotComplete` "The request was
    /// rejected because Route 53 was still processing a prior request." and
    /// not applied, as Route53 does to a change that arrives while another
    /// for the zone is still being processed ("Quotas", and "How can I avoid
    /// Route 53 API throttling errors?"). The draws come from a generator
    /// seeded with `seed`: one draw per such request, so the same seed and
    /// the same sequence of requests give the same refusals. Probability 0
    /// (the default) refuses none, 1 every one. Counted in
    /// [`Stats::prior_request_not_complete`]. Panics unless `probability` is
    /// within 0..=1.
    pub fn set_prior_request_not_complete(&self, probability: f64, seed: u64) {
        assert!(
            (0.0..=1.0).contains(&probability),
            "set_prior_request_not_complete: a probability is within 0..=1, not {probability}"
        );
        self.shared.lock().prior_request = Some(PriorRequest {
            probability,
            rng: seed,
        });
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

    /// Holds the `nth` request of kind `which` from now on (1: the next
    /// one) as it arrives, before anything else is done with it, until
    /// [`release`](Route53Server::release): the client has sent it and waits
    /// for its answer. Requests of that kind are counted from now
    /// ([`seen_since_hold`](Route53Server::seen_since_hold)). A request still
    /// held from an earlier call is served first.
    pub fn hold(&self, nth: u32, which: Requests) {
        self.shared.gate.arm(nth, which);
    }

    /// Waits until the request [`hold`](Route53Server::hold) named has
    /// arrived and is held, for at most `limit`; whether it is.
    pub fn wait_held(&self, limit: Duration) -> bool {
        self.shared.gate.wait_held(limit)
    }

    /// Whether a request is held now.
    pub fn is_holding(&self) -> bool {
        self.shared.gate.is_holding()
    }

    /// Requests of the kind [`hold`](Route53Server::hold) counts that arrived
    /// since it was called, the held one included, and any after it.
    pub fn seen_since_hold(&self) -> u64 {
        self.shared.gate.seen()
    }

    /// Lets the held request go: [`Release::Serve`] runs it as usual (its
    /// answer goes to a client that may be gone), [`Release::Drop`] closes
    /// its connection without an answer and changes nothing. Returns once
    /// the server is done with it. Panics if no request is held.
    pub fn release(&self, how: Release) {
        self.shared.gate.release(how);
    }

    /// Sets every counter back to zero.
    pub fn reset_stats(&self) {
        self.shared.lock().stats = Stats::default();
    }
}

#[cfg(test)]
mod tests;
