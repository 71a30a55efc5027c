//! A strict stand-in for the Cloudflare API v4, DNS records part.
//!
//! On Cloudflare dnsreg keeps each published value as a record of its own,
//! marked as the instance's by its comment, and changes them with one atomic
//! batch per join or leave (README.md, "Cloudflare"; docs/design.md, "Who
//! else claims a value"). This server holds Cloudflare to the rules that
//! design rests on: batches applied in Cloudflare's order
//! (deletes, patches, puts, posts) and all or nothing; identical records and
//! CNAME clashes refused with Cloudflare's codes; values, TTLs, proxying and
//! comment lengths checked per the plan; API tokens with scopes and
//! permissions; pagination with `result_info`; and the 1,200 requests per five
//! minutes rate limit, answered with 429 and `Retry-After`, and the block of
//! five minutes that follows it. Tests drive it
//! through [`CloudflareServer`]: create zones and tokens, seed and read
//! records, inject faults, read counters.
//!
//! Layout: `zone` (records, their checks, conflicts), `http` (paths, the
//! request pipeline with authentication, faults and the rate limit, the
//! envelope, the operations).
//!
//! Served under `/client/v4`: `GET /zones` (filters `name`, `status`; paged),
//! `GET /zones/{id}`, `GET|POST /zones/{id}/dns_records` (filters `type`,
//! `name`, `content`, `comment` with `.exact`/`.contains`/`.startswith`/
//! `.endswith`, `comment.present`/`.absent`, `proxied`, `match`, `order`,
//! `direction`, `page`, `per_page`), `GET|PATCH|PUT|DELETE
//! /zones/{id}/dns_records/{record_id}` and `POST
//! /zones/{id}/dns_records/batch`. Record types: A, AAAA, CNAME, TXT, MX, SRV,
//! NS, PTR.

mod http;
mod zone;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::gate::Gate;
use crate::{Release, Requests, Running};
use zone::Record;

/// Cloudflare's global API rate limit: 1,200 requests per five minutes per
/// user ("Rate limits", Cloudflare Fundamentals: "Client API per user/account
/// token 1200/5 minutes"; above it the API answers HTTP 429).
///
/// The same page says what happens past it: "If you exceed this limit, all
/// API calls for the next five minutes will be blocked, receiving a `HTTP
/// 429 - Too Many Requests` response", and of the `retry-after` header: "The
/// number of seconds, rounded up, until more capacity is available". The
/// stand-in does exactly that; see [`CloudflareServer::set_rate_limit`].
pub const CLOUDFLARE_RATE_LIMIT: (u32, Duration) = (1200, Duration::from_secs(300));

/// The comment length limit on the Free plan ("Record attributes": 100
/// characters on Free, 500 on Pro, Business and Enterprise).
pub const FREE_COMMENT_LIMIT: usize = 100;

/// A DNS record as the handle shows it.
///
/// `name` is the FQDN, lowercase, without trailing dot. `content` is the value
/// in zone-file order: for MX "preference target", for SRV "priority weight
/// port target" (the HTTP API itself shows Cloudflare's split form: MX content
/// is the target and `priority` the preference; SRV content is "weight port
/// target" with `priority` and `data` beside it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsRecord {
    pub id: String,
    pub name: String,
    pub rtype: String,
    pub content: String,
    pub ttl: u32,
    pub proxied: bool,
    pub comment: Option<String>,
    /// SRV: `{"priority", "weight", "port", "target"}`.
    pub data: Option<serde_json::Value>,
}

impl DnsRecord {
    /// A record without id (one is given on insert), not proxied, without comment.
    pub fn new(name: &str, rtype: &str, content: &str, ttl: u32) -> DnsRecord {
        DnsRecord {
            id: String::new(),
            name: name.to_owned(),
            rtype: rtype.to_owned(),
            content: content.to_owned(),
            ttl,
            proxied: false,
            comment: None,
            data: None,
        }
    }
}

/// A misbehaviour to inject (see [`CloudflareServer::fail_next`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CfFault {
    /// HTTP 429, code 971, with this `Retry-After`, and what comes with it on
    /// Cloudflare: the user is blocked until then ("Rate limits": "all API
    /// calls for the next five minutes will be blocked"), as after the rate
    /// limit's own 429. Every request before that time is answered 429 with
    /// the seconds left (counted in [`CfStats::early_retries`], and in
    /// [`CfStats::ignored_retry_after`] for the token that was told), and
    /// uses up no queued fault; how long the token waited is in
    /// [`CfStats::retry_waits`].
    RateLimited { retry_after_secs: u64 },
    /// This HTTP status (5xx) with a JSON error body.
    ServerError(u16),
    /// Answer normally, but only after this long.
    Delay(Duration),
    /// Close the connection without sending a response.
    Drop,
    /// Abort the connection without sending a response: the kernel answers
    /// with a TCP reset (RST), and the client's read or write fails with
    /// "connection reset by peer" rather than seeing the end of the stream.
    Reset,
    /// The batch endpoint answers 405 as on an API without it; only batch
    /// requests use these up, single-record calls work meanwhile.
    BatchUnsupported,
}

/// Counters since start or the last [`CloudflareServer::reset_stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CfStats {
    /// Requests per kind, whatever their outcome: `"GET zones"`, `"GET
    /// dns_records"` (lists and single records), `"POST dns_records"`, `"PATCH
    /// dns_records"`, `"PUT dns_records"`, `"DELETE dns_records"`, `"POST
    /// batch"`, `"unknown"`.
    pub requests: BTreeMap<String, u64>,
    /// 429 answers (rate limit, block, or injected).
    pub rate_limited: u64,
    /// Requests that arrived while the rate limit's block was on, before the
    /// time the first 429's `Retry-After` named: retries of a client that did
    /// not wait as long as it was told (all answered 429, and counted in
    /// `rate_limited` too). The limit is the user's, so with one token shared
    /// by a fleet this also counts the requests of members that had not been
    /// refused themselves yet.
    pub early_retries: u64,
    /// Requests from a token that came back before the `Retry-After` that
    /// token itself was given (a client that does not wait as asked; unlike
    /// [`CfStats::early_retries`], a fleet's members that share a limit but
    /// were not refused yet do not count).
    pub ignored_retry_after: u64,
    /// Answers with `success: false`, 429s and injected faults included.
    pub failed: u64,
    /// Batches applied.
    pub applied_batches: u64,
    /// Writes refused because the zone was not what the writer took it for:
    /// a record it deletes, patches or replaces is gone (`81044`), or one it
    /// creates exists already (`81058`, identical). On Cloudflare this is the
    /// trace of a concurrent writer (or of a stale memory of record ids).
    pub conflicts: u64,
    /// For each time a token that was answered 429 came back (its next
    /// request, in order): the `Retry-After` it was given and how long it
    /// waited, from the 429 to the arrival of that request, as the server
    /// measured them.
    pub retry_waits: Vec<RetryWait>,
}

/// A client's wait after a 429 (see [`CfStats::retry_waits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryWait {
    /// What `Retry-After` said.
    pub retry_after: Duration,
    /// From the 429 to the token's next request.
    pub waited: Duration,
}

impl RetryWait {
    /// Whether the client waited at least as long as it was told.
    pub fn patient(&self) -> bool {
        self.waited >= self.retry_after
    }
}

impl CfStats {
    /// All requests received.
    pub fn total(&self) -> u64 {
        self.requests.values().sum()
    }
}

/// An API token: Zone:Read on its zones (all when `zones` is `None`), and DNS:Edit if `dns_edit`.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    dns_edit: bool,
    zones: Option<Vec<String>>,
}

impl Token {
    fn sees(&self, zone: &str) -> bool {
        self.zones
            .as_ref()
            .is_none_or(|zones| zones.iter().any(|z| z == zone))
    }
}

pub(crate) struct Zone {
    id: String,
    name: String,
    created_on: SystemTime,
    records: Vec<Record>,
}

/// Requests admitted in the last `window`, at most `limit` of them; past it,
/// every request is refused until a window's length after the first refusal.
struct Window {
    limit: Option<(u32, Duration)>,
    admitted: VecDeque<Instant>,
    /// Set by a refusal: nothing is admitted before this.
    blocked_until: Option<Instant>,
}

/// Why [`Window::admit`] refused a request.
#[derive(Debug, PartialEq, Eq)]
struct Refusal {
    /// What `Retry-After` says: whole seconds until the block ends, rounded up.
    retry_after_secs: u64,
    /// The block was already on: the client came back too early.
    early: bool,
}

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Window {
    fn new(limit: Option<(u32, Duration)>) -> Window {
        Window {
            limit,
            admitted: VecDeque::new(),
            blocked_until: None,
        }
    }

    /// Blocks every request until `until` (or the end of a longer block).
    fn block(&mut self, until: Instant) {
        self.blocked_until = Some(self.blocked_until.map_or(until, |t| t.max(until)));
    }

    /// The refusal of a request at `now` while a block is on.
    fn blocked(&mut self, now: Instant) -> Option<Refusal> {
        let until = self.blocked_until?;
        if now < until {
            return Some(Refusal {
                retry_after_secs: ceil_secs(until - now).max(1),
                early: true,
            });
        }
        self.blocked_until = None;
        None
    }

    /// Admits a request at `now`, or refuses it. The request that finds the
    /// window full starts a block of one window's length (rounded up to
    /// whole seconds, so that a client waiting exactly its `Retry-After`
    /// gets through); every request before the block ends is refused too,
    /// with the seconds left, and does not prolong it. A block started by
    /// [`CfFault::RateLimited`] holds with or without a limit.
    fn admit(&mut self, now: Instant) -> Result<(), Refusal> {
        if let Some(refusal) = self.blocked(now) {
            return Err(refusal);
        }
        let Some((limit, window)) = self.limit else {
            return Ok(());
        };
        while self
            .admitted
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            self.admitted.pop_front();
        }
        if self.admitted.len() < limit as usize {
            self.admitted.push_back(now);
            return Ok(());
        }
        let secs = ceil_secs(window).max(1);
        self.blocked_until = Some(now + Duration::from_secs(secs));
        Err(Refusal {
            retry_after_secs: secs,
            early: false,
        })
    }
}

/// Everything the server knows; one lock, never held across an await.
pub(crate) struct State {
    zones: Vec<Zone>,
    tokens: HashMap<String, Token>,
    faults: VecDeque<CfFault>,
    /// Faults for writes only (after `faults`).
    write_faults: VecDeque<CfFault>,
    batch_unsupported: u32,
    window: Window,
    /// Per token, until when its last 429 told it to wait.
    told: HashMap<String, Instant>,
    /// Per token answered 429 and not back yet: when, and the `Retry-After`.
    waiting: HashMap<String, (Instant, Duration)>,
    comment_limit: usize,
    batch_max: usize,
    stats: CfStats,
}

impl State {
    fn new() -> State {
        State {
            zones: Vec::new(),
            tokens: HashMap::new(),
            faults: VecDeque::new(),
            write_faults: VecDeque::new(),
            batch_unsupported: 0,
            window: Window::new(Some(CLOUDFLARE_RATE_LIMIT)),
            told: HashMap::new(),
            waiting: HashMap::new(),
            comment_limit: FREE_COMMENT_LIMIT,
            batch_max: http::BATCH_MAX_FREE,
            stats: CfStats::default(),
        }
    }

    fn zone(&self, id: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.id == id)
    }

    fn zone_mut(&mut self, id: &str) -> Option<&mut Zone> {
        self.zones.iter_mut().find(|z| z.id == id)
    }
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Holds a request on the test's word ([`CloudflareServer::hold`]).
    gate: Gate,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take the server down with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running Cloudflare API stand-in on loopback, plus the knobs tests need.
///
/// It stops when dropped. Requests need `Authorization: Bearer TOKEN` with a
/// token registered by [`add_token`](CloudflareServer::add_token). The handle
/// is `Send + Sync`; every method takes effect at once.
pub struct CloudflareServer {
    running: Running,
    shared: Arc<Shared>,
}

impl CloudflareServer {
    /// Starts on `127.0.0.1` on a free port. Panics if that fails.
    pub fn start() -> CloudflareServer {
        CloudflareServer::start_on(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("start the Cloudflare stand-in on 127.0.0.1")
    }

    /// Starts on `addr` (port 0 picks a free port).
    pub fn start_on(addr: SocketAddr) -> std::io::Result<CloudflareServer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new()),
            gate: Gate::default(),
        });
        let running = Running::spawn(addr, http::router(shared.clone()))?;
        Ok(CloudflareServer { running, shared })
    }

    /// The API base, `http://127.0.0.1:PORT/client/v4`.
    pub fn url(&self) -> String {
        format!("{}{}", self.running.url(), http::PREFIX)
    }

    /// Creates a zone (lowercase, no trailing dot) and returns its id (32 hex).
    /// Panics if the name is not a domain name.
    pub fn create_zone(&self, name: &str) -> String {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        assert!(
            !name.is_empty() && name.split('.').all(|l| !l.is_empty() && l.len() <= 63),
            "create_zone: '{name}' is not a domain name"
        );
        let id = zone::new_id();
        self.shared.lock().zones.push(Zone {
            id: id.clone(),
            name,
            created_on: SystemTime::now(),
            records: Vec::new(),
        });
        id
    }

    /// Deletes the zone with this id and its records: its id answers as
    /// Cloudflare answers an unknown one from now on.
    pub fn delete_zone(&self, id: &str) {
        self.shared.lock().zones.retain(|z| z.id != id);
    }

    /// Registers a token with Zone:Read on every zone, plus DNS:Edit if `dns_edit`.
    pub fn add_token(&self, token: &str, dns_edit: bool) {
        self.insert_token(token, dns_edit, None);
    }

    /// Registers a token limited to the zones named (others are invisible to it:
    /// absent from zone lists, 403 `10000` on their paths).
    pub fn add_scoped_token(&self, token: &str, dns_edit: bool, zones: &[&str]) {
        let zones = zones
            .iter()
            .map(|z| z.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        self.insert_token(token, dns_edit, Some(zones));
    }

    fn insert_token(&self, token: &str, dns_edit: bool, zones: Option<Vec<String>>) {
        assert!(
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "add_token: a Cloudflare token is made of letters, digits, '-' and '_'"
        );
        self.shared
            .lock()
            .tokens
            .insert(token.to_owned(), Token { dns_edit, zones });
    }

    /// Every record of the zone, sorted by name, type and content. Panics if
    /// there is no such zone.
    pub fn records(&self, zone_id: &str) -> Vec<DnsRecord> {
        let state = self.shared.lock();
        let zone = state
            .zone(zone_id)
            .unwrap_or_else(|| panic!("records: no zone {zone_id}"));
        let mut records: Vec<DnsRecord> = zone.records.iter().map(Record::public).collect();
        records
            .sort_by(|a, b| (&a.name, &a.rtype, &a.content).cmp(&(&b.name, &b.rtype, &b.content)));
        records
    }

    /// The contents at `name`/`rtype` in zone-file order (SRV "priority weight
    /// port target", MX "preference target"), sorted. `name` is the FQDN, with
    /// or without trailing dot, in any case. Panics if there is no such zone.
    pub fn values(&self, zone_id: &str, name: &str, rtype: &str) -> Vec<String> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let state = self.shared.lock();
        let zone = state
            .zone(zone_id)
            .unwrap_or_else(|| panic!("values: no zone {zone_id}"));
        let mut values: Vec<String> = zone
            .records
            .iter()
            .filter(|r| r.name == name && r.rtype.eq_ignore_ascii_case(rtype))
            .map(Record::presentation)
            .collect();
        values.sort();
        values
    }

    /// Adds a record as a person would in the dashboard, bypassing checks,
    /// limits, faults and counters, and returns its id (the record's own if it
    /// is 32 hex digits and free, a new one otherwise; an existing record with
    /// that id is replaced). A relative name gets the zone appended. Panics if
    /// there is no such zone.
    pub fn put_record(&self, zone_id: &str, record: DnsRecord) -> String {
        let mut state = self.shared.lock();
        let zone = state
            .zone_mut(zone_id)
            .unwrap_or_else(|| panic!("put_record: no zone {zone_id}"));
        let stored = zone::from_public(&record, &zone.name, SystemTime::now());
        let id = stored.id.clone();
        zone.records.retain(|r| r.id != id);
        zone.records.push(stored);
        id
    }

    /// Removes the record with this id, if any. Panics if there is no such zone.
    pub fn delete_record(&self, zone_id: &str, id: &str) {
        let mut state = self.shared.lock();
        let zone = state
            .zone_mut(zone_id)
            .unwrap_or_else(|| panic!("delete_record: no zone {zone_id}"));
        zone.records.retain(|r| !r.id.eq_ignore_ascii_case(id));
    }

    /// `Some((requests, window))`: at most that many admitted requests in any
    /// sliding window of that length. The request past them gets 429 code
    /// 971 with `Retry-After` the window's length (whole seconds, rounded
    /// up), and the user is blocked that long, as "Rate limits" (Cloudflare
    /// Fundamentals) says: "all API calls for the next five minutes will be
    /// blocked". Every request before the block ends gets 429 too, with the
    /// seconds left, and counts in [`CfStats::early_retries`]; the block
    /// does not grow with them. All tokens share the limit (it is the
    /// user's). `None`: unlimited. Default [`CLOUDFLARE_RATE_LIMIT`]. Resets
    /// the window and lifts a block, also one [`CfFault::RateLimited`]
    /// started.
    pub fn set_rate_limit(&self, limit: Option<(u32, Duration)>) {
        let mut state = self.shared.lock();
        state.window = Window::new(limit);
        state.told.clear();
        state.waiting.clear();
    }

    /// The longest comment accepted, in characters: 100 on the Free plan (the
    /// default), 500 on the others. Above 100 the batch limit becomes the paid
    /// plans' 3,500 operations (Free: 200).
    pub fn set_comment_limit(&self, chars: usize) {
        let mut state = self.shared.lock();
        state.comment_limit = chars;
        state.batch_max = if chars > FREE_COMMENT_LIMIT {
            3500
        } else {
            http::BATCH_MAX_FREE
        };
    }

    /// The next `n` authenticated requests get `fault` instead of their normal
    /// answer; calls queue up in order. [`CfFault::BatchUnsupported`] is
    /// counted apart: the next `n` batch requests get 405, whatever else
    /// happens meanwhile (`u32::MAX`: an API without batches for good).
    pub fn fail_next(&self, n: u32, fault: CfFault) {
        let mut state = self.shared.lock();
        if fault == CfFault::BatchUnsupported {
            state.batch_unsupported = state.batch_unsupported.saturating_add(n);
            return;
        }
        for _ in 0..n {
            state.faults.push_back(fault.clone());
        }
    }

    /// The next `n` authenticated writes (batch, create, patch, put, delete)
    /// get `fault`, whatever reads happen meanwhile: a fault aimed at the
    /// write between a read and its confirmation. Faults queued with
    /// [`CloudflareServer::fail_next`] come first. Calls queue up in order;
    /// [`CfFault::BatchUnsupported`] goes to [`CloudflareServer::fail_next`].
    pub fn fail_next_writes(&self, n: u32, fault: CfFault) {
        if fault == CfFault::BatchUnsupported {
            return self.fail_next(n, fault);
        }
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

    /// The counters.
    pub fn stats(&self) -> CfStats {
        self.shared.lock().stats.clone()
    }

    /// Sets every counter back to zero.
    pub fn reset_stats(&self) {
        self.shared.lock().stats = CfStats::default();
    }

    /// Holds the `nth` request of kind `which` from now on (1: the next
    /// one) as it arrives, before anything else is done with it (token,
    /// faults, rate limit, operation), until
    /// [`release`](CloudflareServer::release): the client has sent it and
    /// waits for its answer. Requests of that kind are counted from now
    /// ([`seen_since_hold`](CloudflareServer::seen_since_hold)). A request
    /// still held from an earlier call is served first.
    pub fn hold(&self, nth: u32, which: Requests) {
        self.shared.gate.arm(nth, which);
    }

    /// Waits until the request [`hold`](CloudflareServer::hold) named has
    /// arrived and is held, for at most `limit`; whether it is.
    pub fn wait_held(&self, limit: Duration) -> bool {
        self.shared.gate.wait_held(limit)
    }

    /// Whether a request is held now.
    pub fn is_holding(&self) -> bool {
        self.shared.gate.is_holding()
    }

    /// Requests of the kind [`hold`](CloudflareServer::hold) counts that
    /// arrived since it was called, the held one included, and any after it.
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
}

#[cfg(test)]
mod tests;
