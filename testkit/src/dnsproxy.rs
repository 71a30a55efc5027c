//! A DNS proxy that fails on request, for RFC 2136 fault tests.
//!
//! The RFC 2136 tests speak to a real BIND ([`crate::bind`]), which has no knob
//! for failing transiently. [`DnsProxy`] sits between the client and such a
//! server: it listens on a loopback port for UDP and TCP, forwards each DNS
//! message to the upstream server as it came (TSIG signatures stay valid: not a
//! byte is changed) and relays the answers back, unless a fault queued with
//! [`DnsProxy::fail_next`] says otherwise for that message. What a client sees
//! of each [`DnsFault`] is what it would see of a server or network in trouble:
//! silence, a SERVFAIL or REFUSED, a truncated answer, a late answer, a reset
//! connection.
//!
//! Synthesized answers (SERVFAIL, REFUSED, truncated) carry the request's id,
//! opcode and question (zone) section and nothing else; in particular no TSIG,
//! as a front end that never saw the key would answer (RFC 8945 §5.3 has the
//! server sign only what it verified). Wire format per RFC 1035 §4.1 and
//! RFC 2136 §2 (an UPDATE's zone section has the question's layout).

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::oneshot;

/// How long the proxy waits for the upstream's answer to one message.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// What to do to one message instead of forwarding it faithfully.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsFault {
    /// Not forwarded, never answered: the client times out. Over TCP the
    /// connection is closed (FIN) without an answer.
    Drop,
    /// Not forwarded; answered SERVFAIL (RFC 1035 §4.1.1 RCODE 2), the DNS
    /// equivalent of an HTTP 5xx.
    ServFail,
    /// Not forwarded; answered REFUSED (RCODE 5).
    Refused,
    /// Not forwarded; answered with an empty truncated (TC) NOERROR answer,
    /// as BIND's response rate limiting "slips" answers to make clients come
    /// back over TCP (BIND ARM, `rate-limit`, `slip`).
    Truncate,
    /// Forwarded at once; the answer is held back this long. Longer than the
    /// client's timeout, it is an answer lost after the server acted on the
    /// message (an UPDATE applied, the client not told).
    Delay(Duration),
    /// Held this long, then forwarded and answered as usual: a slow path to
    /// the server, during which another client's message can overtake it
    /// (say, an UPDATE changing the rrset this one's prerequisites describe).
    Hold(Duration),
    /// Not forwarded. Over TCP the connection is reset (RST); over UDP,
    /// which has no connection, the same as [`DnsFault::Drop`].
    Reset,
}

/// Which messages a queued fault waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Any message.
    Any,
    /// Ordinary queries (opcode QUERY, not a zone transfer).
    Query,
    /// Dynamic updates (opcode UPDATE, RFC 2136).
    Update,
    /// Zone transfers (a QUERY for AXFR or IXFR).
    Transfer,
}

impl Kind {
    /// The kind of a message from its bytes; a message too short to tell is a query.
    fn of(message: &[u8]) -> Kind {
        let Some(&flags) = message.get(2) else {
            return Kind::Query;
        };
        if (flags >> 3) & 0x0f == 5 {
            return Kind::Update;
        }
        match question_end(message).map(|end| &message[end - 4..end - 2]) {
            Some([0, 251 | 252]) => Kind::Transfer,
            _ => Kind::Query,
        }
    }

    fn matches(self, kind: Kind) -> bool {
        self == Kind::Any || self == kind
    }
}

/// Counters since start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Messages received from clients, by kind (over UDP and TCP together).
    pub queries: u64,
    pub updates: u64,
    pub transfers: u64,
    /// Of those, the ones that came over TCP.
    pub over_tcp: u64,
    /// Messages a fault was applied to.
    pub faulted: u64,
}

impl ProxyStats {
    /// All messages received.
    pub fn total(&self) -> u64 {
        self.queries + self.updates + self.transfers
    }
}

#[derive(Default)]
struct State {
    faults: VecDeque<(Kind, DnsFault)>,
    stats: ProxyStats,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take the proxy down with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts `message` and takes the first queued fault that applies to it.
    fn take(&self, message: &[u8], tcp: bool) -> Option<DnsFault> {
        let kind = Kind::of(message);
        let mut state = self.lock();
        match kind {
            Kind::Update => state.stats.updates += 1,
            Kind::Transfer => state.stats.transfers += 1,
            _ => state.stats.queries += 1,
        }
        state.stats.over_tcp += u64::from(tcp);
        let at = state.faults.iter().position(|(k, _)| k.matches(kind))?;
        state.stats.faulted += 1;
        state.faults.remove(at).map(|(_, fault)| fault)
    }
}

/// A running proxy on loopback; it stops when dropped (open connections too).
///
/// The handle is `Send + Sync`; faults queued take effect for the next
/// messages, in order, whichever transport they come over.
pub struct DnsProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DnsProxy {
    /// Starts on `127.0.0.1`, on a port free for both UDP and TCP, forwarding
    /// to `upstream`. Panics if that fails.
    pub fn start(upstream: SocketAddr) -> DnsProxy {
        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().expect("a bound socket has an address");
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the DNS proxy");
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("dnsproxy-{addr}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let udp = UdpSocket::from_std(udp).expect("UDP socket registers");
                    let tcp = TcpListener::from_std(tcp).expect("TCP listener registers");
                    tokio::select! {
                        _ = serve_udp(Arc::new(udp), upstream, serving.clone()) => {}
                        _ = serve_tcp(tcp, upstream, serving) => {}
                        _ = stopped => {}
                    }
                });
                // Tasks still waiting (delayed answers, open connections) go now.
                runtime.shutdown_background();
            })
            .expect("start the DNS proxy thread");
        DnsProxy {
            addr,
            upstream,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The address clients use, UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server messages are forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// The next `n` messages of any kind get `fault`. Calls queue up in order.
    pub fn fail_next(&self, n: u32, fault: DnsFault) {
        self.fail_next_of(Kind::Any, n, fault);
    }

    /// The next `n` messages of `kind` get `fault`; other messages pass
    /// meanwhile (or take faults queued for them). Calls queue up in order.
    pub fn fail_next_of(&self, kind: Kind, n: u32, fault: DnsFault) {
        let mut state = self.shared.lock();
        for _ in 0..n {
            state.faults.push_back((kind, fault.clone()));
        }
    }

    /// Faults queued and not yet applied.
    pub fn pending(&self) -> usize {
        self.shared.lock().faults.len()
    }

    /// Forgets the faults not yet applied.
    pub fn clear(&self) {
        self.shared.lock().faults.clear();
    }

    /// The counters.
    pub fn stats(&self) -> ProxyStats {
        self.shared.lock().stats.clone()
    }
}

impl Drop for DnsProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A UDP socket and a TCP listener on the same free loopback port.
fn bind_pair() -> (std::net::UdpSocket, std::net::TcpListener) {
    for _ in 0..50 {
        let udp = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a UDP port");
        let port = udp.local_addr().expect("bound").port();
        if let Ok(tcp) = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            udp.set_nonblocking(true).expect("non-blocking UDP");
            tcp.set_nonblocking(true).expect("non-blocking TCP");
            return (udp, tcp);
        }
    }
    panic!("no loopback port free for both UDP and TCP")
}

// ---------------------------------------------------------------------- UDP

async fn serve_udp(socket: Arc<UdpSocket>, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((n, client)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let message = buf[..n].to_vec();
        let fault = shared.take(&message, false);
        let socket = socket.clone();
        tokio::spawn(async move {
            let delay = match fault {
                None => Duration::ZERO,
                Some(DnsFault::Delay(d)) => d,
                Some(DnsFault::Hold(d)) => {
                    tokio::time::sleep(d).await;
                    Duration::ZERO
                }
                Some(DnsFault::Drop | DnsFault::Reset) => return,
                Some(fault) => {
                    let _ = socket.send_to(&synthesize(&message, &fault), client).await;
                    return;
                }
            };
            if let Some(answer) = exchange_udp(&message, upstream).await {
                tokio::time::sleep(delay).await;
                let _ = socket.send_to(&answer, client).await;
            }
        });
    }
}

/// One message to the upstream from a socket of its own, and its answer.
async fn exchange_udp(message: &[u8], upstream: SocketAddr) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.ok()?;
    socket.connect(upstream).await.ok()?;
    socket.send(message).await.ok()?;
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(UPSTREAM_TIMEOUT, socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    Some(buf)
}

// ---------------------------------------------------------------------- TCP

async fn serve_tcp(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    loop {
        if let Ok((client, _)) = listener.accept().await {
            tokio::spawn(connection(client, upstream, shared.clone()));
        }
    }
}

/// Messages on one TCP connection (RFC 1035 §4.2.2: each with a two-byte
/// length). Forwarded ones go over one upstream connection of its own, whose
/// answers (several for a zone transfer) are relayed as they come.
async fn connection(client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let (mut from_client, to_client) = client.into_split();
    let to_client = Arc::new(tokio::sync::Mutex::new(to_client));
    // Answers to hold back, by message id.
    let delays: Arc<Mutex<HashMap<u16, Duration>>> = Arc::default();
    let mut to_upstream = None;
    let mut relay = None;
    let mut reset = false;
    while let Some(message) = read_frame(&mut from_client).await {
        match shared.take(&message, true) {
            Some(DnsFault::Drop) => break,
            Some(DnsFault::Reset) => {
                reset = true;
                break;
            }
            Some(DnsFault::Hold(d)) => tokio::time::sleep(d).await,
            Some(DnsFault::Delay(d)) => {
                let id = u16::from_be_bytes([message[0], message[1]]);
                delays
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id, d);
            }
            Some(fault) => {
                let answer = synthesize(&message, &fault);
                if write_frame(&mut *to_client.lock().await, &answer)
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
            None => {}
        }
        if to_upstream.is_none() {
            let Ok(Ok(stream)) =
                tokio::time::timeout(UPSTREAM_TIMEOUT, TcpStream::connect(upstream)).await
            else {
                break;
            };
            let (from_upstream, writer) = stream.into_split();
            to_upstream = Some(writer);
            relay = Some(tokio::spawn(relay_answers(
                from_upstream,
                to_client.clone(),
                delays.clone(),
            )));
        }
        let writer = to_upstream.as_mut().expect("connected above");
        if write_frame(writer, &message).await.is_err() {
            break;
        }
    }
    if let Some(relay) = relay {
        relay.abort();
        let _ = relay.await;
    }
    // Dropping the halves closes both connections, with FIN; for a reset the
    // client's is put back together first, so that its write half does not
    // send a FIN of its own, and closed with SO_LINGER 0, which sends RST.
    if reset
        && let Ok(to_client) = Arc::try_unwrap(to_client)
        && let Ok(client) = from_client.reunite(to_client.into_inner())
    {
        let _ = client.set_zero_linger();
    }
}

/// Copies the upstream's answers to the client, holding back those asked to be.
async fn relay_answers(
    mut from_upstream: tokio::net::tcp::OwnedReadHalf,
    to_client: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
    delays: Arc<Mutex<HashMap<u16, Duration>>>,
) {
    while let Some(answer) = read_frame(&mut from_upstream).await {
        let id = u16::from_be_bytes([answer[0], answer[1]]);
        let delay = delays
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if write_frame(&mut *to_client.lock().await, &answer)
            .await
            .is_err()
        {
            return;
        }
    }
}

/// One length-prefixed message (at least a header's worth); `None` at the end.
async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len).await.ok()?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    r.read_exact(&mut message).await.ok()?;
    (message.len() >= 12).then_some(message)
}

async fn write_frame<W: AsyncWriteExt + Unpin>(w: &mut W, message: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(message.len()).map_err(std::io::Error::other)?;
    let mut frame = Vec::with_capacity(message.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(message);
    w.write_all(&frame).await
}

// ----------------------------------------------------------- wire format

/// Where the first question (an UPDATE's zone) ends, if the message has one
/// that parses: its name (labels, or a compression pointer) plus type and class.
fn question_end(message: &[u8]) -> Option<usize> {
    if message.len() < 12 || u16::from_be_bytes([message[4], message[5]]) == 0 {
        return None;
    }
    let mut at = 12;
    loop {
        let len = *message.get(at)?;
        match len {
            0 => {
                at += 1;
                break;
            }
            l if l & 0xc0 == 0xc0 => {
                at += 2;
                break;
            }
            l if l & 0xc0 == 0 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
    (at + 4 <= message.len()).then_some(at + 4)
}

/// The answer `fault` stands for: the request's header with QR set, its id,
/// opcode, RD bit and first question, the fault's RCODE (or TC), no records.
fn synthesize(request: &[u8], fault: &DnsFault) -> Vec<u8> {
    let Some(header) = request.get(..12) else {
        return Vec::new();
    };
    let end = question_end(request);
    let mut answer = header.to_vec();
    // QR, opcode and RD kept from the request; AA and TC cleared.
    answer[2] = 0x80 | (header[2] & 0x79);
    let rcode = match fault {
        DnsFault::ServFail => 2,
        DnsFault::Refused => 5,
        _ => 0,
    };
    if *fault == DnsFault::Truncate {
        answer[2] |= 0x02;
    }
    answer[3] = rcode;
    let questions: u16 = if end.is_some() { 1 } else { 0 };
    answer[4..6].copy_from_slice(&questions.to_be_bytes());
    answer[6..12].fill(0);
    if let Some(end) = end {
        answer.extend_from_slice(&request[12..end]);
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Instant;

    /// A query for `example.com. SOA` (or AXFR), id 0x1234, RD set.
    fn query(qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(b"\x07example\x03com\x00");
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m
    }

    /// An UPDATE for zone `example.com.` with an empty update section.
    fn update() -> Vec<u8> {
        let mut m = query(6);
        m[2] = 5 << 3;
        m
    }

    /// The fake server's answer to `m`: the same bytes with QR and AA set.
    fn answer_to(m: &[u8]) -> Vec<u8> {
        let mut a = m.to_vec();
        a[2] |= 0x84;
        a
    }

    /// A server answering every message over UDP and TCP as [`answer_to`]
    /// does (a transfer with two messages), counting what it saw.
    fn fake_upstream() -> (SocketAddr, Arc<Mutex<u32>>) {
        let (udp, tcp) = bind_pair();
        udp.set_nonblocking(false).unwrap();
        tcp.set_nonblocking(false).unwrap();
        let addr = udp.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(0));
        let count = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok((n, from)) = udp.recv_from(&mut buf) {
                *count.lock().unwrap() += 1;
                let _ = udp.send_to(&answer_to(&buf[..n]), from);
            }
        });
        let count = seen.clone();
        std::thread::spawn(move || {
            for mut conn in tcp.incoming().flatten() {
                let count = count.clone();
                std::thread::spawn(move || {
                    let mut len = [0u8; 2];
                    while conn.read_exact(&mut len).is_ok() {
                        let mut m = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        conn.read_exact(&mut m).unwrap();
                        *count.lock().unwrap() += 1;
                        let copies = if Kind::of(&m) == Kind::Transfer { 2 } else { 1 };
                        for _ in 0..copies {
                            conn.write_all(&len).unwrap();
                            conn.write_all(&answer_to(&m)).unwrap();
                        }
                    }
                });
            }
        });
        (addr, seen)
    }

    fn udp_client() -> std::net::UdpSocket {
        let s = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        s
    }

    fn ask_udp(proxy: &DnsProxy, m: &[u8]) -> Option<Vec<u8>> {
        let s = udp_client();
        s.send_to(m, proxy.addr()).unwrap();
        let mut buf = [0u8; 4096];
        let n = s.recv(&mut buf).ok()?;
        Some(buf[..n].to_vec())
    }

    fn tcp_client(proxy: &DnsProxy) -> std::net::TcpStream {
        let s = std::net::TcpStream::connect(proxy.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s
    }

    fn send_tcp(s: &mut std::net::TcpStream, m: &[u8]) {
        s.write_all(&u16::try_from(m.len()).unwrap().to_be_bytes())
            .unwrap();
        s.write_all(m).unwrap();
    }

    fn recv_tcp(s: &mut std::net::TcpStream) -> std::io::Result<Vec<u8>> {
        let mut len = [0u8; 2];
        s.read_exact(&mut len)?;
        let mut m = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut m)?;
        Ok(m)
    }

    #[test]
    fn forwards_over_udp_and_tcp_and_counts_by_kind() {
        let (upstream, seen) = fake_upstream();
        let proxy = DnsProxy::start(upstream);
        assert_eq!(proxy.upstream(), upstream);
        assert_eq!(ask_udp(&proxy, &query(6)), Some(answer_to(&query(6))));
        assert_eq!(ask_udp(&proxy, &update()), Some(answer_to(&update())));

        let mut s = tcp_client(&proxy);
        send_tcp(&mut s, &query(6));
        assert_eq!(recv_tcp(&mut s).unwrap(), answer_to(&query(6)));
        // A transfer's answers, however many, are relayed.
        send_tcp(&mut s, &query(252));
        assert_eq!(recv_tcp(&mut s).unwrap(), answer_to(&query(252)));
        assert_eq!(recv_tcp(&mut s).unwrap(), answer_to(&query(252)));

        assert_eq!(*seen.lock().unwrap(), 4);
        assert_eq!(
            proxy.stats(),
            ProxyStats {
                queries: 2,
                updates: 1,
                transfers: 1,
                over_tcp: 2,
                faulted: 0,
            }
        );
        assert_eq!(proxy.stats().total(), 4);
    }

    #[test]
    fn servfail_refused_and_truncate_are_answered_without_forwarding() {
        let (upstream, seen) = fake_upstream();
        let proxy = DnsProxy::start(upstream);
        proxy.fail_next(1, DnsFault::ServFail);
        proxy.fail_next(1, DnsFault::Refused);
        proxy.fail_next(1, DnsFault::Truncate);
        proxy.fail_next(1, DnsFault::ServFail);
        let servfail = ask_udp(&proxy, &update()).unwrap();
        // Same id, QR + opcode UPDATE, RCODE 2, the zone section echoed, nothing else.
        assert_eq!(&servfail[..4], &[0x12, 0x34, 0x80 | 5 << 3, 2]);
        assert_eq!(&servfail[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&servfail[12..], &update()[12..]);
        let refused = ask_udp(&proxy, &query(6)).unwrap();
        assert_eq!(&refused[2..4], &[0x81, 5], "QR, RD kept, REFUSED");
        let truncated = ask_udp(&proxy, &query(6)).unwrap();
        assert_eq!(&truncated[2..4], &[0x83, 0], "QR, TC, RD, NOERROR");
        let mut s = tcp_client(&proxy);
        send_tcp(&mut s, &query(6));
        assert_eq!(recv_tcp(&mut s).unwrap()[3], 2, "SERVFAIL over TCP");
        assert_eq!(*seen.lock().unwrap(), 0, "nothing reached the server");
        assert_eq!(proxy.stats().faulted, 4);
        assert_eq!(proxy.pending(), 0);
        // Then messages pass again.
        assert_eq!(ask_udp(&proxy, &query(6)), Some(answer_to(&query(6))));
    }

    #[test]
    fn drop_and_reset_leave_the_client_without_an_answer() {
        let (upstream, seen) = fake_upstream();
        let proxy = DnsProxy::start(upstream);
        proxy.fail_next(1, DnsFault::Drop);
        proxy.fail_next(1, DnsFault::Reset);
        assert_eq!(ask_udp(&proxy, &query(6)), None, "UDP: dropped");
        assert_eq!(ask_udp(&proxy, &query(6)), None, "UDP: a reset is a drop");

        proxy.fail_next(1, DnsFault::Drop);
        let mut s = tcp_client(&proxy);
        send_tcp(&mut s, &query(6));
        let mut buf = [0u8; 2];
        assert_eq!(s.read(&mut buf).unwrap(), 0, "TCP: closed without answer");

        proxy.fail_next(1, DnsFault::Reset);
        let mut s = tcp_client(&proxy);
        send_tcp(&mut s, &query(6));
        let e = s.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "TCP: {e}");
        assert_eq!(*seen.lock().unwrap(), 0);
        assert_eq!(proxy.stats().faulted, 4);
    }

    #[test]
    fn a_delayed_answer_comes_late_after_the_message_was_forwarded() {
        let (upstream, seen) = fake_upstream();
        let proxy = DnsProxy::start(upstream);
        proxy.fail_next(1, DnsFault::Delay(Duration::from_millis(300)));
        proxy.fail_next(1, DnsFault::Delay(Duration::from_millis(300)));
        let start = Instant::now();
        assert_eq!(ask_udp(&proxy, &query(6)), Some(answer_to(&query(6))));
        assert!(start.elapsed() >= Duration::from_millis(300));
        let mut s = tcp_client(&proxy);
        let start = Instant::now();
        send_tcp(&mut s, &query(6));
        // The server has it at once; the client waits.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(*seen.lock().unwrap(), 2);
        assert_eq!(recv_tcp(&mut s).unwrap(), answer_to(&query(6)));
        assert!(start.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn a_held_message_reaches_the_server_late_and_is_answered() {
        let (upstream, seen) = fake_upstream();
        let proxy = DnsProxy::start(upstream);
        proxy.fail_next(1, DnsFault::Hold(Duration::from_millis(400)));
        proxy.fail_next(1, DnsFault::Hold(Duration::from_millis(400)));
        let start = Instant::now();
        let s = udp_client();
        s.send_to(&update(), proxy.addr()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(*seen.lock().unwrap(), 0, "not forwarded yet");
        let mut buf = [0u8; 4096];
        let n = s.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], answer_to(&update()));
        assert!(start.elapsed() >= Duration::from_millis(400));
        assert_eq!(*seen.lock().unwrap(), 1);
        let mut s = tcp_client(&proxy);
        let start = Instant::now();
        send_tcp(&mut s, &update());
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(*seen.lock().unwrap(), 1, "not forwarded yet over TCP");
        assert_eq!(recv_tcp(&mut s).unwrap(), answer_to(&update()));
        assert!(start.elapsed() >= Duration::from_millis(400));
        assert_eq!(*seen.lock().unwrap(), 2);
    }

    #[test]
    fn a_fault_for_one_kind_lets_the_others_pass() {
        let (upstream, _) = fake_upstream();
        let proxy = DnsProxy::start(upstream);
        proxy.fail_next_of(Kind::Update, 1, DnsFault::ServFail);
        proxy.fail_next_of(Kind::Transfer, 1, DnsFault::Reset);
        assert_eq!(ask_udp(&proxy, &query(6)), Some(answer_to(&query(6))));
        assert_eq!(ask_udp(&proxy, &update()).unwrap()[3], 2);
        let mut s = tcp_client(&proxy);
        send_tcp(&mut s, &query(6));
        assert_eq!(recv_tcp(&mut s).unwrap(), answer_to(&query(6)));
        send_tcp(&mut s, &query(252));
        assert!(recv_tcp(&mut s).is_err(), "the transfer is reset");
        assert_eq!(proxy.pending(), 0);

        proxy.fail_next_of(Kind::Update, 3, DnsFault::Drop);
        proxy.clear();
        assert_eq!(proxy.pending(), 0);
        assert_eq!(ask_udp(&proxy, &update()), Some(answer_to(&update())));
    }

    #[test]
    fn messages_are_classified_by_opcode_and_question_type() {
        assert_eq!(Kind::of(&query(6)), Kind::Query);
        assert_eq!(Kind::of(&query(252)), Kind::Transfer);
        assert_eq!(Kind::of(&query(251)), Kind::Transfer);
        assert_eq!(Kind::of(&update()), Kind::Update);
        assert_eq!(Kind::of(&[0, 1]), Kind::Query);
        // A truncated question cannot be echoed: the answer has none.
        let cut = &query(6)[..16];
        assert_eq!(question_end(cut), None);
        assert_eq!(&synthesize(cut, &DnsFault::ServFail)[4..6], &[0, 0]);
    }
}
