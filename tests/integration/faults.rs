//! The agent under faults: for each provider, each of join, leave
//! and reconcile, each of throttling, server errors (5xx / SERVFAIL),
//! timeouts, broken connections and a conflicting concurrent writer, the fault
//! is injected, dnsreg runs, and once the fault has cleared the zone holds
//! exactly what it should: every rrset, other instances' values and values put
//! there by hand included, with the ownership registries. A fault that does not
//! clear makes dnsreg fail clearly (exit 1) without changing anything wrongly.
//!
//! One `#[test]` per cell, e.g. `faults::route53::leave::timeout`. The
//! Route53 and Cloudflare stand-ins fail on request (aimed at writes where it
//! matters); BIND cannot, so it is reached through [`DnsProxy`], which fails
//! single DNS messages. Each cell also checks that every fault it queued was
//! met (and, where the server says when to come back, that dnsreg waited that
//! long, by the server's clock), so that a pass means dnsreg went through it.
//!
//! The concurrent writer acts while dnsreg's write is held on its way: the
//! server (for BIND, a [`DnsGate`] between the proxy and BIND) holds the write
//! when it arrives, the other writer runs to its end, and only then is the
//! write let go, so that it always meets the change; each such cell checks
//! that the server refused it for that (a conflict) and that dnsreg recovered.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testkit::bind::Bind;
use testkit::cloudflare::CfFault;
use testkit::dnsproxy::{DnsFault, DnsProxy, Kind};
use testkit::route53::Fault;
use testkit::{Release, Requests};

use crate::battery::{Backend, CloudflareBackend, Rfc2136Backend, Route53Backend, World};
use crate::util::{ZONE, claims, expected_claims, stderr, stdout};

/// The instance the metadata stand-in describes, and its address.
const ME: &str = "i-0123456789abcdef0";
const MY_IP: &str = "203.0.113.7";
/// The address the metadata stand-in moves to in the reconcile cells.
const MY_NEW_IP: &str = "198.51.100.9";
/// An instance that joined before the test, and one that joins during it.
const PEER: (&str, &str) = ("i-peer", "198.51.100.2");
const PEER2: (&str, &str) = ("i-peer2", "198.51.100.3");
/// An instance that publishes the address we publish (two private networks,
/// or an address handed over), joining while we do.
const PEER3: (&str, &str) = ("i-peer3", MY_IP);
/// A value a person put into the shared round-robin name.
const HAND: &str = "192.0.2.99";
/// Another, added by a person while dnsreg works.
const HAND2: &str = "192.0.2.100";

/// A host record, an SRV entry and a round-robin value per instance, as flags.
const ARGS: &str = "--service _v1._theservice._tcp --port 8080 --name www";

/// The same records from a file, for `dnsreg run`: reconcile every second.
const AGENT: &str = r#"
[instance]
metadata = "aws"

[providers.p]
{provider}

[[host]]
providers = ["p"]
name = "{ipv4_dashed}"

[[round_robin]]
providers = ["p"]
name = "www"

[[srv]]
providers = ["p"]
name = "_v1._theservice._tcp"
port = 8080
priority = 0
weight = 0
target = "{ipv4_dashed}"

[agent]
reconcile_interval = "1s"
stop_timeout = "STOP"
state_dir = "{state_dir}"
"#;

// ---------------------------------------------------------------------------
// Faults, per provider
// ---------------------------------------------------------------------------

/// What goes wrong for a while.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trouble {
    /// Route53 Throttling and PriorRequestNotComplete, Cloudflare 429, a DNS
    /// server's rate limiting (a truncated answer: "come back over TCP").
    Throttling,
    /// HTTP 500/502/503, DNS SERVFAIL (unsigned, as a front end sends it).
    ServerError,
    /// An answer that comes later than dnsreg waits for.
    Timeout,
    /// A connection closed or reset without an answer.
    Reset,
}

/// A backend whose servers fail on request.
pub trait Faulty: Backend {
    /// Queues a few failures of kind `t`, aimed at the writes where the
    /// provider lets us aim; they clear once met.
    fn inject(&self, t: Trouble);
    /// Every request from now on fails (a server error), for good.
    fn break_for_good(&self);
    /// The next write is held when it reaches the server, until
    /// [`Faulty::release_write`]: the window in which a concurrent writer
    /// changes what it was computed from.
    fn hold_next_write(&self);
    /// Until the write [`Faulty::hold_next_write`] waits for is held (at most
    /// `limit`); whether it is.
    fn wait_write_held(&self, limit: Duration) -> bool;
    /// Lets the held write go on to the server.
    fn release_write(&self);
    /// Faults queued and not met yet.
    fn pending(&self) -> usize;
    /// How long after injecting a [`Trouble::Timeout`] every late request has
    /// been served (and a stale write would have landed).
    fn timeout_settles(&self) -> Duration;
    /// Writes the server refused because what they were computed from had
    /// changed: an rrset no longer as read (Route53, BIND), a record gone or
    /// an identical one there (Cloudflare, where each value is a record).
    fn conflicts(&self) -> u64;
}

impl Faulty for Route53Backend {
    fn inject(&self, t: Trouble) {
        match t {
            Trouble::Throttling => {
                self.r53.fail_next(1, Fault::Throttling);
                self.r53.fail_next_writes(1, Fault::Throttling);
                self.r53.fail_next_writes(1, Fault::PriorRequestNotComplete);
            }
            Trouble::ServerError => {
                self.r53.fail_next(1, Fault::InternalError);
                self.r53.fail_next_writes(1, Fault::ServiceUnavailable);
                self.r53.fail_next_writes(1, Fault::InternalError);
            }
            // dnsreg gives each attempt 15 s (src/provider/route53/api.rs).
            Trouble::Timeout => self
                .r53
                .fail_next_writes(1, Fault::Delay(Duration::from_secs(16))),
            // A TCP reset (RST), not a clean close.
            Trouble::Reset => {
                self.r53.fail_next(1, Fault::Reset);
                self.r53.fail_next_writes(2, Fault::Reset);
            }
        }
    }

    fn break_for_good(&self) {
        self.r53.fail_next(100_000, Fault::ServiceUnavailable);
    }

    fn hold_next_write(&self) {
        self.r53.hold(1, Requests::Writes);
    }

    fn wait_write_held(&self, limit: Duration) -> bool {
        self.r53.wait_held(limit)
    }

    fn release_write(&self) {
        self.r53.release(Release::Serve);
    }

    fn pending(&self) -> usize {
        self.r53.pending_faults()
    }

    fn timeout_settles(&self) -> Duration {
        Duration::from_secs(17)
    }

    fn conflicts(&self) -> u64 {
        self.r53.stats().invalid_change_batch
    }
}

impl Faulty for CloudflareBackend {
    fn inject(&self, t: Trouble) {
        match t {
            // A 429 and the block until its Retry-After, as Cloudflare's.
            Trouble::Throttling => {
                let slow_down = CfFault::RateLimited {
                    retry_after_secs: 1,
                };
                self.cf.fail_next(1, slow_down.clone());
                self.cf.fail_next_writes(1, slow_down);
            }
            Trouble::ServerError => {
                self.cf.fail_next(1, CfFault::ServerError(500));
                self.cf.fail_next_writes(1, CfFault::ServerError(502));
                self.cf.fail_next_writes(1, CfFault::ServerError(503));
            }
            // dnsreg gives each request 20 s (src/provider/cloudflare/api.rs).
            Trouble::Timeout => self
                .cf
                .fail_next_writes(1, CfFault::Delay(Duration::from_secs(21))),
            // A TCP reset (RST), not a clean close.
            Trouble::Reset => {
                self.cf.fail_next(1, CfFault::Reset);
                self.cf.fail_next_writes(2, CfFault::Reset);
            }
        }
    }

    fn break_for_good(&self) {
        self.cf.fail_next(100_000, CfFault::ServerError(503));
    }

    fn hold_next_write(&self) {
        self.cf.hold(1, Requests::Writes);
    }

    fn wait_write_held(&self, limit: Duration) -> bool {
        self.cf.wait_held(limit)
    }

    fn release_write(&self) {
        self.cf.release(Release::Serve);
    }

    fn pending(&self) -> usize {
        self.cf.pending_faults()
    }

    fn timeout_settles(&self) -> Duration {
        Duration::from_secs(22)
    }

    fn conflicts(&self) -> u64 {
        self.cf.stats().conflicts
    }
}

/// A real BIND behind a [`DnsProxy`] (and, between the two, a [`DnsGate`]
/// that holds an UPDATE on request): dnsreg and the tests' own writers talk
/// to the proxy; the zone is read from BIND directly. Everything but the
/// faults is the battery's [`Rfc2136Backend`].
pub struct ProxiedBind {
    pub inner: Rfc2136Backend,
    pub proxy: DnsProxy,
    pub gate: DnsGate,
}

impl Backend for ProxiedBind {
    fn name(&self) -> &'static str {
        "rfc2136"
    }

    fn start(_dir: &Path) -> ProxiedBind {
        let bind = Bind::start();
        let gate = DnsGate::start(bind.addr());
        let proxy = DnsProxy::start(gate.addr);
        let inner = Rfc2136Backend::behind(bind, proxy.addr());
        ProxiedBind { inner, proxy, gate }
    }

    fn env(&self, _cmd: &mut Command) {}

    fn provider_flags(&self) -> Vec<String> {
        self.inner.provider_flags()
    }

    fn provider_table(&self) -> String {
        self.inner.provider_table()
    }

    fn values(&self, name: &str, rtype: &str) -> Vec<String> {
        self.inner.values(name, rtype)
    }

    fn ttl(&self, name: &str, rtype: &str) -> Option<u32> {
        self.inner.ttl(name, rtype)
    }

    fn put_by_hand(&self, name: &str, rtype: &str, value: &str, ttl: u32) {
        self.inner.put_by_hand(name, rtype, value, ttl);
    }

    fn remove_by_hand(&self, name: &str, rtype: &str, value: &str) {
        self.inner.remove_by_hand(name, rtype, value);
    }

    fn records(&self) -> Vec<String> {
        self.inner.records()
    }

    fn claims_by_name(&self) -> bool {
        self.inner.claims_by_name()
    }

    fn inject_transient_faults(&self) -> bool {
        true
    }

    fn pending_faults(&self) -> usize {
        self.proxy.pending()
    }
}

impl Faulty for ProxiedBind {
    fn inject(&self, t: Trouble) {
        let p = &self.proxy;
        match t {
            // BIND's rate limiting "slips" a truncated answer to make the
            // client come back over TCP; it spares signed messages (updates).
            Trouble::Throttling => p.fail_next_of(Kind::Query, 1, DnsFault::Truncate),
            // A front end's SERVFAIL carries no TSIG.
            Trouble::ServerError => {
                p.fail_next_of(Kind::Query, 1, DnsFault::ServFail);
                p.fail_next_of(Kind::Update, 2, DnsFault::ServFail);
            }
            // Applied by BIND, the answer lost: dnsreg waits 3 s.
            Trouble::Timeout => {
                p.fail_next_of(Kind::Query, 1, DnsFault::Drop);
                p.fail_next_of(Kind::Update, 1, DnsFault::Delay(Duration::from_secs(4)));
            }
            // Over UDP a reset is a lost message; dnsreg then tries TCP,
            // whose connection is reset (RST) on it.
            Trouble::Reset => {
                p.fail_next_of(Kind::Update, 2, DnsFault::Reset);
            }
        }
    }

    fn break_for_good(&self) {
        self.proxy.fail_next(100_000, DnsFault::ServFail);
    }

    fn hold_next_write(&self) {
        self.gate.hold_next_update();
    }

    fn wait_write_held(&self, limit: Duration) -> bool {
        self.gate.wait_held(limit)
    }

    /// To BIND, whose answer reaches dnsreg if it still waits for it (it
    /// waits 3 s, then asks again: either way the held UPDATE's
    /// prerequisites no longer hold, and BIND refuses and logs it).
    fn release_write(&self) {
        self.gate.release();
    }

    fn pending(&self) -> usize {
        self.proxy.pending()
    }

    fn timeout_settles(&self) -> Duration {
        Duration::from_secs(5)
    }

    fn conflicts(&self) -> u64 {
        let log = self.inner.bind.log();
        u64::try_from(log.matches("prerequisite not satisfied").count()).unwrap_or(u64::MAX)
    }
}

/// Between the proxy and BIND: relays every DNS message, over UDP and TCP,
/// except the one UPDATE it is told to hold ([`DnsGate::hold_next_update`]),
/// which waits until [`DnsGate::release`] (over either: dnsreg sends an
/// UPDATE over UDP, and over TCP when UDP gets no answer). Behind the
/// proxy, so that what the proxy's faults do to a client's connection, a
/// reset say, is exactly what the client sees.
pub struct DnsGate {
    pub addr: SocketAddr,
    udp: UdpSocket,
    upstream: SocketAddr,
    state: Arc<Mutex<GateState>>,
    stop: Arc<AtomicBool>,
}

#[derive(Default)]
struct GateState {
    armed: bool,
    /// The UPDATE held, and where its answer goes (over UDP; over TCP its
    /// connection's thread waits for `released`).
    held: Option<(Vec<u8>, Option<SocketAddr>)>,
    released: bool,
}

/// Opcode UPDATE (5), RFC 2136 §2.2, in a DNS message's header.
fn is_update(message: &[u8]) -> bool {
    message.len() > 2 && (message[2] >> 3) & 0x0f == 5
}

impl DnsGate {
    fn start(upstream: SocketAddr) -> DnsGate {
        let (udp, tcp) = (0..50)
            .find_map(|_| {
                let udp = UdpSocket::bind("127.0.0.1:0").ok()?;
                let tcp = TcpListener::bind(udp.local_addr().ok()?).ok()?;
                Some((udp, tcp))
            })
            .expect("a loopback port free for UDP and TCP");
        let addr = udp.local_addr().unwrap();
        let gate = DnsGate {
            addr,
            udp: udp.try_clone().unwrap(),
            upstream,
            state: Arc::default(),
            stop: Arc::default(),
        };
        let (state, stop) = (gate.state.clone(), gate.stop.clone());
        udp.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65535];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, client)) = udp.recv_from(&mut buf) else {
                    continue;
                };
                let message = buf[..n].to_vec();
                {
                    let mut state = state.lock().unwrap();
                    if is_update(&message) && state.armed {
                        state.armed = false;
                        state.held = Some((message, Some(client)));
                        continue;
                    }
                }
                relay_udp(udp.try_clone().unwrap(), message, client, upstream);
            }
        });
        let stop = gate.stop.clone();
        let state = gate.state.clone();
        tcp.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match tcp.accept() {
                    Ok((client, _)) => splice(client, upstream, state.clone()),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        gate
    }

    fn hold_next_update(&self) {
        let mut state = self.state.lock().unwrap();
        assert!(state.held.is_none(), "an UPDATE is held already");
        state.armed = true;
    }

    fn wait_held(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.state.lock().unwrap().held.is_none() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    fn release(&self) {
        let mut state = self.state.lock().unwrap();
        let (message, client) = state.held.take().expect("an UPDATE is held");
        let Some(client) = client else {
            // Over TCP: its connection's thread sends it on.
            state.released = true;
            return;
        };
        drop(state);
        relay_udp(
            self.udp.try_clone().unwrap(),
            message,
            client,
            self.upstream,
        );
    }
}

impl Drop for DnsGate {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One message to `upstream` from a socket of its own; the answer back to `client`.
fn relay_udp(socket: UdpSocket, message: Vec<u8>, client: SocketAddr, upstream: SocketAddr) {
    std::thread::spawn(move || {
        let out = UdpSocket::bind("127.0.0.1:0").unwrap();
        out.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = vec![0u8; 65535];
        if out.send_to(&message, upstream).is_ok()
            && let Ok(n) = out.recv(&mut buf)
        {
            let _ = socket.send_to(&buf[..n], client);
        }
    });
}

/// Copies a TCP connection both ways to `upstream` until either side closes,
/// message by message towards the server, holding the UPDATE the gate is
/// armed for until it is released.
fn splice(client: TcpStream, upstream: SocketAddr, state: Arc<Mutex<GateState>>) {
    std::thread::spawn(move || {
        let _ = client.set_nonblocking(false);
        let Ok(server) = TcpStream::connect(upstream) else {
            return;
        };
        let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let up = std::thread::spawn(move || {
            let mut len = [0u8; 2];
            while c_in.read_exact(&mut len).is_ok() {
                let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if c_in.read_exact(&mut message).is_err() {
                    break;
                }
                let held = {
                    let mut s = state.lock().unwrap();
                    let hold = is_update(&message) && s.armed;
                    if hold {
                        s.armed = false;
                        s.released = false;
                        s.held = Some((message.clone(), None));
                    }
                    hold
                };
                while held && !std::mem::take(&mut state.lock().unwrap().released) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if s_out
                    .write_all(&len)
                    .and_then(|()| s_out.write_all(&message))
                    .is_err()
                {
                    break;
                }
            }
            let _ = s_out.shutdown(std::net::Shutdown::Write);
        });
        let (mut s_in, mut c_out) = (server, client);
        let _ = copy(&mut s_in, &mut c_out);
        let _ = c_out.shutdown(std::net::Shutdown::Write);
        let _ = up.join();
    });
}

fn copy(from: &mut TcpStream, to: &mut TcpStream) -> std::io::Result<()> {
    let mut buf = [0u8; 16384];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
    }
}

// ---------------------------------------------------------------------------
// What the zone should hold
// ---------------------------------------------------------------------------

fn dashed(ip: &str) -> String {
    ip.replace('.', "-")
}

/// Every record but the registries, for these instances (id, address) and
/// these values put into `www` by hand: canonical lines, sorted.
fn published(instances: &[(&str, &str)], by_hand: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = by_hand
        .iter()
        .map(|v| format!("www.{ZONE}. A {v}"))
        .collect();
    for (_, ip) in instances {
        let host = format!("{}.{ZONE}.", dashed(ip));
        out.push(format!("{host} A {ip}"));
        out.push(format!("_v1._theservice._tcp.{ZONE}. SRV 0 0 8080 {host}"));
        out.push(format!("www.{ZONE}. A {ip}"));
    }
    out.sort();
    // Two instances with one address publish its values once.
    out.dedup();
    out
}

/// Panics unless the zone holds exactly `instances`' records, the values by
/// hand, one registry per instance listing exactly its three values, and
/// where claims are kept by name, one claim per value naming exactly the
/// instances that publish it.
fn assert_zone<B: Faulty>(w: &World<B>, instances: &[(&str, &str)], by_hand: &[&str], when: &str) {
    let (claimed, records): (Vec<String>, Vec<String>) = w
        .records()
        .into_iter()
        .partition(|r| r.contains("._claims._dnsreg."));
    let want = if w.claims_by_name() {
        expected_claims(instances.iter().flat_map(|(id, ip)| {
            let host = format!("{}.{ZONE}.", dashed(ip));
            [
                (*id, format!("{host} A {ip}")),
                (*id, format!("www.{ZONE}. A {ip}")),
                (
                    *id,
                    format!("_v1._theservice._tcp.{ZONE}. SRV 0 0 8080 {host}"),
                ),
            ]
        }))
    } else {
        Default::default()
    };
    assert_eq!(claims(&claimed), want, "{}, {when}: the claims", w.name());
    let (registries, rest): (Vec<String>, Vec<String>) =
        records.into_iter().partition(|r| r.contains("._dnsreg."));
    assert_eq!(
        rest,
        published(instances, by_hand),
        "{}, {when}: the zone's records",
        w.name()
    );
    let mut owners: Vec<&str> = registries
        .iter()
        .map(|r| r.split("._dnsreg.").next().unwrap())
        .collect();
    owners.dedup();
    let mut ids: Vec<&str> = instances.iter().map(|(id, _)| *id).collect();
    ids.sort();
    assert_eq!(owners, ids, "{}, {when}: {registries:#?}", w.name());
    for (id, ip) in instances {
        let mine: Vec<&String> = registries
            .iter()
            .filter(|r| r.starts_with(&format!("{id}._dnsreg.")))
            .collect();
        let host = format!("{}.{ZONE}.", dashed(ip));
        for wanted in [
            format!("{host} A {ip}"),
            format!("www.{ZONE}. A {ip}"),
            format!("8080 {host}"),
        ] {
            assert!(
                mine.iter().any(|r| r.contains(&wanted)),
                "{}, {when}: {id}'s registry lacks {wanted}: {mine:#?}",
                w.name()
            );
        }
        assert_eq!(mine.len(), 3, "{}, {when}: {mine:#?}", w.name());
    }
}

// ---------------------------------------------------------------------------
// Running dnsreg
// ---------------------------------------------------------------------------

/// A zone with a value by hand in `www` and [`PEER`] joined.
fn world<B: Faulty>() -> World<B> {
    let w = World::<B>::new();
    w.put_by_hand("www", "A", HAND, 300);
    expect(
        &mut w.instance("join", PEER.0, PEER.1, ARGS),
        0,
        "the peer joins",
    );
    w
}

fn expect(c: &mut Command, code: i32, what: &str) -> Output {
    let out = c.output().expect("dnsreg runs");
    check_exit(&out, code, what);
    out
}

fn check_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}\n--- stdout\n{}\n--- stderr\n{}",
        stdout(out),
        stderr(out)
    );
}

/// Until the zone is as described (or `limit`), then asserts it.
fn wait_for_zone<B: Faulty>(
    w: &World<B>,
    limit: Duration,
    instances: &[(&str, &str)],
    by_hand: &[&str],
    when: &str,
) {
    let want = published(instances, by_hand);
    let deadline = Instant::now() + limit;
    loop {
        let got: Vec<String> = w
            .records()
            .into_iter()
            .filter(|r| !r.contains("._dnsreg."))
            .collect();
        if got == want || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_zone(w, instances, by_hand, when);
}

/// The next write is held when it reaches the server while `writer` runs to
/// its end, then let go: it was computed from what is no longer there when
/// the server sees it. `start` sets off the write (a command, an address
/// change); the result is its return value.
fn while_the_next_write_is_held<B: Faulty, T>(
    w: &World<B>,
    start: impl FnOnce() -> T,
    writer: impl FnOnce(),
) -> T {
    w.hold_next_write();
    let started = start();
    assert!(
        w.wait_write_held(Duration::from_secs(30)),
        "{}: dnsreg's write never came",
        w.name()
    );
    writer();
    w.release_write();
    started
}

/// The concurrent writer's change was in the way: the server refused the
/// held write for it.
fn assert_conflicted<B: Faulty>(w: &World<B>, before: u64) {
    let after = w.conflicts();
    assert!(
        after > before,
        "{}: the held write met the concurrent change ({before} → {after} conflicts)",
        w.name()
    );
}

/// Every fault queued met a request, and every time the server said when to
/// come back, dnsreg waited that long (by the server's clock).
fn assert_faults_met<B: Faulty>(w: &World<B>, t: Trouble) {
    assert_eq!(
        w.pending(),
        0,
        "{}: every {t:?} fault injected was met",
        w.name()
    );
    if let Some(waits) = w.retry_waits() {
        for (told, waited) in &waits {
            assert!(
                waited >= told,
                "{}: told to come back after {told:?}, came back after {waited:?}",
                w.name()
            );
        }
        if t == Trouble::Throttling {
            assert!(!waits.is_empty(), "{}: no 429 was ever answered", w.name());
        }
    }
}

/// Injects `t`, and checks that there is something to meet.
fn inject<B: Faulty>(w: &World<B>, t: Trouble) {
    w.inject(t);
    assert!(w.pending() > 0, "{}: {t:?} queued no fault", w.name());
}

fn quiet(mut c: Command) -> Command {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

// ---------------------------------------------------------------------------
// join
// ---------------------------------------------------------------------------

/// Join goes through the fault: exit 0, says what it added, the zone complete.
pub fn join_under<B: Faulty>(t: Trouble) {
    let w = world::<B>();
    let injected = Instant::now();
    inject(&w, t);
    let out = expect(&mut w.flags("join", ARGS), 0, "join under faults");
    let said = stdout(&out);
    // Also after a lost answer: dnsreg tells its own landed write (its
    // registry as that write left it) from someone else's.
    for added in [
        format!("+ {}.{ZONE}. A {MY_IP}", dashed(MY_IP)),
        format!("+ www.{ZONE}. A {MY_IP}"),
    ] {
        assert!(said.contains(&added), "{}: {said}", w.name());
    }
    if t == Trouble::Timeout {
        // A request held past dnsreg's timeout may still land: let it.
        std::thread::sleep(w.timeout_settles().saturating_sub(injected.elapsed()));
    }
    assert_faults_met(&w, t);
    assert_zone(&w, &[PEER, (ME, MY_IP)], &[HAND], "after join");
    // And the zone is what a second join finds complete.
    let out = expect(&mut w.flags("join", ARGS), 0, "join again");
    assert!(
        stdout(&out).contains("already published"),
        "{}",
        stdout(&out)
    );
}

/// Other instances join the same shared names between our read and write:
/// one with an address of its own, one with ours (on Cloudflare, where each
/// value is a record, only the latter is in the way: it makes the records
/// we are about to create).
pub fn join_with_a_concurrent_writer<B: Faulty>() {
    let w = world::<B>();
    let conflicts = w.conflicts();
    let child = while_the_next_write_is_held(
        &w,
        || quiet(w.flags("join", ARGS)).spawn().unwrap(),
        || {
            for (id, ip) in [PEER2, PEER3] {
                expect(
                    &mut w.instance("join", id, ip, ARGS),
                    0,
                    &format!("{id} joins meanwhile"),
                );
            }
        },
    );
    let out = child.wait_with_output().unwrap();
    check_exit(&out, 0, "join with a concurrent writer");
    assert_conflicted(&w, conflicts);
    assert_zone(
        &w,
        &[PEER, PEER2, PEER3, (ME, MY_IP)],
        &[HAND],
        "after join",
    );
}

// ---------------------------------------------------------------------------
// leave
// ---------------------------------------------------------------------------

fn joined<B: Faulty>() -> World<B> {
    let w = world::<B>();
    expect(&mut w.flags("join", ARGS), 0, "join");
    assert_zone(&w, &[PEER, (ME, MY_IP)], &[HAND], "after join");
    w
}

/// Leave goes through the fault: exit 0, says what it removed, only ours gone.
pub fn leave_under<B: Faulty>(t: Trouble) {
    let w = joined::<B>();
    let injected = Instant::now();
    inject(&w, t);
    let out = expect(&mut w.flags("leave", ARGS), 0, "leave under faults");
    let said = stdout(&out);
    assert!(
        said.contains(&format!("- www.{ZONE}. A {MY_IP}")),
        "{}: {said}",
        w.name()
    );
    if t == Trouble::Timeout {
        std::thread::sleep(w.timeout_settles().saturating_sub(injected.elapsed()));
    }
    assert_faults_met(&w, t);
    assert_zone(&w, &[PEER], &[HAND], "after leave");
}

/// Between our read and write, a person adds a value to the shared name and
/// takes ours out of it (on Cloudflare: deletes the record we are about to
/// delete), and then another instance joins with our address (an address
/// released and reused): its values, the same as the ones we are about to
/// remove, stay (where claims are kept by name, its claims are what the
/// held write finds changed).
pub fn leave_with_a_concurrent_writer<B: Faulty>() {
    let w = joined::<B>();
    let conflicts = w.conflicts();
    let child = while_the_next_write_is_held(
        &w,
        || quiet(w.flags("leave", ARGS)).spawn().unwrap(),
        || {
            w.put_by_hand("www", "A", HAND2, 300);
            w.remove_by_hand("www", "A", MY_IP);
            expect(
                &mut w.instance("join", PEER3.0, PEER3.1, ARGS),
                0,
                "an instance with our address joins meanwhile",
            );
        },
    );
    let out = child.wait_with_output().unwrap();
    check_exit(&out, 0, "leave with a concurrent writer");
    assert_conflicted(&w, conflicts);
    assert_zone(&w, &[PEER, PEER3], &[HAND, HAND2], "after leave");
}

// ---------------------------------------------------------------------------
// reconcile: `dnsreg run` following an address change
// ---------------------------------------------------------------------------

/// `dnsreg run` with [`AGENT`], joined (its records all there).
fn agent<B: Faulty>(w: &World<B>, stop_timeout: &str) -> Child {
    let config = w.config("agent.toml", &AGENT.replace("STOP", stop_timeout));
    let child = quiet({
        let mut c = w.dnsreg();
        c.arg("-c").arg(&config).arg("run");
        c
    })
    .spawn()
    .unwrap();
    wait_for_zone(
        w,
        Duration::from_secs(20),
        &[PEER, (ME, MY_IP)],
        &[HAND],
        "after the agent joined",
    );
    child
}

/// SIGTERM, and the agent's exit within `limit`.
fn stop(child: Child, limit: Duration) -> Output {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let mut child = child;
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the agent did not exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The address changes while the provider fails: the agent's reconcile
/// replaces the old values with the new ones all the same, and a stop then
/// removes exactly ours.
pub fn reconcile_under<B: Faulty>(t: Trouble) {
    let w = world::<B>();
    let child = agent(&w, "10s");
    let injected = Instant::now();
    inject(&w, t);
    w.imds
        .update(|i| i.public_ipv4 = Some(MY_NEW_IP.to_string()));
    let limit = w.timeout_settles() + Duration::from_secs(30);
    wait_for_zone(
        &w,
        limit,
        &[PEER, (ME, MY_NEW_IP)],
        &[HAND],
        "after the address changed",
    );
    if t == Trouble::Timeout {
        std::thread::sleep(w.timeout_settles().saturating_sub(injected.elapsed()));
        assert_zone(
            &w,
            &[PEER, (ME, MY_NEW_IP)],
            &[HAND],
            "once late requests landed",
        );
    }
    assert_faults_met(&w, t);
    let out = stop(child, Duration::from_secs(15));
    check_exit(&out, 0, "the agent stops");
    assert_zone(&w, &[PEER], &[HAND], "after the agent stopped");
}

/// Another instance joins while the agent's reconcile write is on its way,
/// a person takes the agent's old value out of the shared name (on
/// Cloudflare: deletes a record the write deletes), and then an instance
/// joins with the agent's old address, whose values the write was about to
/// remove (where claims are kept by name, its claims are what the held
/// write finds changed).
pub fn reconcile_with_a_concurrent_writer<B: Faulty>() {
    let w = world::<B>();
    let mut child = Some(agent(&w, "10s"));
    let conflicts = w.conflicts();
    while_the_next_write_is_held(
        &w,
        || {
            w.imds
                .update(|i| i.public_ipv4 = Some(MY_NEW_IP.to_string()))
        },
        || {
            expect(
                &mut w.instance("join", PEER2.0, PEER2.1, ARGS),
                0,
                "the second peer joins meanwhile",
            );
            w.remove_by_hand("www", "A", MY_IP);
            expect(
                &mut w.instance("join", PEER3.0, PEER3.1, ARGS),
                0,
                "an instance with the old address joins meanwhile",
            );
        },
    );
    wait_for_zone(
        &w,
        Duration::from_secs(30),
        &[PEER, PEER2, PEER3, (ME, MY_NEW_IP)],
        &[HAND],
        "after the address changed",
    );
    assert_conflicted(&w, conflicts);
    let out = stop(child.take().unwrap(), Duration::from_secs(15));
    check_exit(&out, 0, "the agent stops");
    assert_zone(
        &w,
        &[PEER, PEER2, PEER3],
        &[HAND],
        "after the agent stopped",
    );
}

// ---------------------------------------------------------------------------
// Faults that do not clear
// ---------------------------------------------------------------------------

/// The provider fails for good when the agent is stopped: it gives up within
/// `stop_timeout`, exits 1 saying so, and the zone is as it was.
pub fn a_provider_down_at_stop_fails_clearly_within_stop_timeout<B: Faulty>() {
    let w = world::<B>();
    let child = agent(&w, "4s");
    w.break_for_good();
    let queued = w.pending();
    let started = Instant::now();
    let out = stop(child, Duration::from_secs(10));
    check_exit(&out, 1, "the agent stops with the provider down");
    assert!(started.elapsed() < Duration::from_secs(8));
    let said = stderr(&out);
    assert!(
        said.contains("dnsreg: ")
            && (said.contains("did not finish within stop_timeout")
                || said.contains("could not be removed")),
        "{}: {said}",
        w.name()
    );
    assert!(
        w.pending() < queued,
        "{}: the agent never met the failing server",
        w.name()
    );
    assert_zone(&w, &[PEER, (ME, MY_IP)], &[HAND], "after a failed stop");
}

/// A one-shot join against a server that keeps failing: exit 1 with the
/// provider and the reason, nothing published. (Only where retries run out
/// fast: dnsreg's HTTP providers retry for up to about two minutes.)
pub fn a_join_against_a_failing_server_exits_1_and_publishes_nothing<B: Faulty>() {
    let w = world::<B>();
    w.break_for_good();
    let queued = w.pending();
    let out = expect(
        &mut w.flags("join", ARGS),
        1,
        "join against a failing server",
    );
    assert!(w.pending() < queued, "{}: never met the failures", w.name());
    let said = stderr(&out);
    // The error names the operation and the provider it failed at.
    assert!(
        said.contains(&format!("dnsreg: join at {}: ", w.name())),
        "{said}"
    );
    assert!(said.contains("SERVFAIL"), "{}: {said}", w.name());
    // Given up after its counted tries, not at the deadline.
    assert!(
        said.contains("still failing after") && !said.contains("after 0 attempts"),
        "{}: {said}",
        w.name()
    );
    assert_zone(&w, &[PEER], &[HAND], "after a failed join");
}

// ---------------------------------------------------------------------------
// The matrix
// ---------------------------------------------------------------------------

/// One module per operation, one `#[test]` per trouble.
macro_rules! operation {
    ($op:ident, $under:ident, $concurrent:ident, $backend:ty) => {
        mod $op {
            use super::*;

            #[test]
            fn throttling() {
                $under::<$backend>(Trouble::Throttling)
            }

            #[test]
            fn server_error() {
                $under::<$backend>(Trouble::ServerError)
            }

            #[test]
            fn timeout() {
                $under::<$backend>(Trouble::Timeout)
            }

            #[test]
            fn connection_reset() {
                $under::<$backend>(Trouble::Reset)
            }

            #[test]
            fn concurrent_writer() {
                $concurrent::<$backend>()
            }
        }
    };
}

/// The matrix for one provider: `faults::PROVIDER::{join,leave,reconcile}::TROUBLE`.
macro_rules! matrix {
    ($provider:ident, $backend:ty) => {
        mod $provider {
            use super::*;

            operation!(join, join_under, join_with_a_concurrent_writer, $backend);
            operation!(leave, leave_under, leave_with_a_concurrent_writer, $backend);
            operation!(
                reconcile,
                reconcile_under,
                reconcile_with_a_concurrent_writer,
                $backend
            );

            #[test]
            fn a_provider_down_at_stop_fails_clearly_within_stop_timeout() {
                super::a_provider_down_at_stop_fails_clearly_within_stop_timeout::<$backend>()
            }
        }
    };
}

matrix!(route53, Route53Backend);
matrix!(cloudflare, CloudflareBackend);
matrix!(rfc2136, ProxiedBind);

/// RFC 2136 retries run out in seconds, so the one-shot case is affordable here.
#[test]
fn rfc2136_a_join_against_a_failing_server_exits_1_and_publishes_nothing() {
    a_join_against_a_failing_server_exits_1_and_publishes_nothing::<ProxiedBind>()
}

/// Regression: a SERVFAIL without TSIG (from a front end that never saw the
/// key) in answer to a signed UPDATE was reported as a wrong key, and the
/// join given up at once; it is transient, and retried.
#[test]
fn rfc2136_an_unsigned_servfail_to_an_update_is_retried_not_blamed_on_the_key() {
    let w = world::<ProxiedBind>();
    w.proxy.fail_next_of(Kind::Update, 1, DnsFault::ServFail);
    let out = expect(
        &mut w.flags("join", ARGS),
        0,
        "join after one unsigned SERVFAIL",
    );
    assert!(!stderr(&out).contains("TSIG"), "{}", stderr(&out));
    assert_eq!(w.proxy.pending(), 0);
    assert_zone(&w, &[PEER, (ME, MY_IP)], &[HAND], "after join");
}
