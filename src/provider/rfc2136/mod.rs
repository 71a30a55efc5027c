//! RFC 2136 dynamic updates (BIND, Knot, PowerDNS, Windows DNS), signed with TSIG.
//!
//! The zone's primary server is read with ordinary queries (one per rrset) and
//! written with one UPDATE message per edit. The UPDATE adds and deletes single
//! RRs (RFC 2136 §2.5.1, §2.5.4), so values that are not named are never touched.
//! Ownership is kept under `_dnsreg.<zone>`: each instance's registry, and a
//! claim rrset per value it publishes naming who claims it (claims by name, see
//! [`crate::registry::claim_name`]). The UPDATE carries a prerequisite for
//! each of those it touches (§2.4.2 "RRset exists (value dependent)", or
//! §2.4.3 "RRset does not exist"), so the server applies it only if they are
//! still exactly what we read: a concurrent claimant turns into
//! NXRRSET/YXRRSET, which is a [`Fail::Conflict`], and `reconcile` reads
//! again. The records themselves are added and deleted value by value with no
//! prerequisite: instances adding to one shared rrset never conflict, however
//! many join at once. The server applies an UPDATE atomically (§3.7) and
//! answers only after it is in the zone, so there is nothing to poll.
//!
//! A join or leave needs the rights to update the zone and to query it, no
//! more; only `reap`, whose job is a listing of every registry, transfers the
//! zone (AXFR over TCP, signed with the key).
//!
//! Wire format, transports and TSIG (RFC 8945) come from hickory. Queries and
//! updates go over UDP and are repeated over TCP when the answer is truncated.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt as _;
use hickory_net::NetError;
use hickory_net::client::ClientHandle as _;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::{DnsExchange, DnsHandle as _, DnsMultiplexer};
use hickory_proto::op::{
    DnsRequest, DnsRequestOptions, DnsResponse, Edns, Message, OpCode, Query, ResponseCode,
    UpdateMessage as _,
};
use hickory_proto::rr::TSigner;
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::rdata::{A, AAAA, PTR, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData as HData, Record as HRecord, RecordType};

use super::{Edit, Fail, Provider, Values, Written};
use crate::config::Rfc2136Config;
use crate::record::{DomainName, RData, RType, RrKey, Value};
use crate::registry;
use crate::retry::{Backoff, Pacer};
use crate::tsig::TsigKey;

/// How long one exchange may take before it counts as lost (hickory resends
/// over UDP within it).
const TIMEOUT: Duration = Duration::from_secs(3);
/// Retries of a lost or SERVFAILed exchange: a DNS server answers in
/// milliseconds or not at all, so fewer and shorter than for HTTP APIs; an
/// unreachable server is reported after about 20 s.
const BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(200),
    cap: Duration::from_secs(4),
    attempts: 5,
};
/// When an UPDATE sent over UDP is sent again without an answer (hickory
/// resends a query after a third of a second). A server working through a
/// fleet's UPDATEs (one zone's are applied one at a time) answers seconds
/// later, and a resend whose first copy landed only fails its prerequisites;
/// but a burst of a fleet's UPDATEs also overflows the server's socket, and
/// only a resend recovers those soon. Measured on one BIND, 1,000 agents
/// leaving at once within 20 s: resending after 1 s, all left in 6.8 s at 2.9
/// UPDATEs each; after 3 s, 3.1 each in 15.8 s; sent once over UDP and then
/// TCP, 40 ran out of time; over TCP alone (BIND serves 150 TCP clients at a
/// time), 65 did. 300 agents resending after a third of a second sent 164
/// repeats.
const UPDATE_RESEND: Duration = Duration::from_secs(1);
/// The largest UDP answer we ask for (the DNS flag day 2020 figure).
const UDP_PAYLOAD: u16 = 1232;
/// The largest message we send: a DNS message over TCP is at most 65,535
/// bytes, and one over it is cut short without a word by the encoder (and a
/// server applies what is left of an UPDATE), so keep room for the TSIG record.
const MAX_MESSAGE: usize = 65_000;
/// The clock skew TSIG tolerates, as BIND and nsupdate use by default.
const FUDGE: u16 = 300;

// ---------------------------------------------------------------------------
// Conversions between our values and hickory's records
// ---------------------------------------------------------------------------

fn hname(name: &DomainName) -> Name {
    Name::from_ascii(name.as_str()).expect("a validated domain name is a DNS name")
}

fn htype(t: RType) -> RecordType {
    match t {
        RType::A => RecordType::A,
        RType::AAAA => RecordType::AAAA,
        RType::SRV => RecordType::SRV,
        RType::TXT => RecordType::TXT,
        RType::PTR => RecordType::PTR,
    }
}

fn hdata(data: &RData) -> HData {
    match data {
        RData::A(ip) => HData::A(A(*ip)),
        RData::Aaaa(ip) => HData::AAAA(AAAA(*ip)),
        RData::Srv {
            priority,
            weight,
            port,
            target,
        } => HData::SRV(SRV::new(*priority, *weight, *port, hname(target))),
        RData::Txt(strings) => HData::TXT(TXT::new(strings.clone())),
        RData::Ptr(target) => HData::PTR(PTR(hname(target))),
    }
}

fn hrecord(value: &Value, ttl: u32) -> HRecord {
    HRecord::from_rdata(hname(&value.name), ttl, hdata(&value.data))
}

/// Our value for a record read from the server; `None` for data we never
/// publish (non-UTF-8 TXT, say), which is then never ours to touch.
fn value_of(key: &RrKey, data: &HData) -> Option<Value> {
    let data = match data {
        HData::A(a) => RData::A(a.0),
        HData::AAAA(a) => RData::Aaaa(a.0),
        HData::SRV(s) => RData::Srv {
            priority: s.priority,
            weight: s.weight,
            port: s.port,
            target: DomainName::new(&s.target.to_ascii()).ok()?,
        },
        HData::TXT(t) => RData::Txt(
            t.txt_data
                .iter()
                .map(|s| String::from_utf8(s.to_vec()).ok())
                .collect::<Option<Vec<_>>>()?,
        ),
        HData::PTR(p) => RData::Ptr(DomainName::new(&p.0.to_ascii()).ok()?),
        _ => return None,
    };
    Some(Value {
        name: key.name.clone(),
        data,
    })
}

// ---------------------------------------------------------------------------
// Transport
// ---------------------------------------------------------------------------

/// Why an exchange failed, and whether trying again can help.
#[derive(Debug)]
struct Failure {
    transient: bool,
    /// The server said it is busy (too many transfers at once): worth
    /// trying again, later and later, until the deadline.
    busy: bool,
    /// The answer's signature did not verify: the server refused the key
    /// (see [`Transport::why_refused`]).
    key_refused: bool,
    message: String,
}

impl Failure {
    /// As the retry loop takes it, saying what was being done where.
    fn into_fail(self, what: &str, doing: &str) -> Fail {
        if self.busy {
            Fail::Busy {
                why: format!("{what}: {doing}: {}", self.message),
                retry_after: None,
            }
        } else if self.transient {
            Fail::Transient(format!("{what}: {doing}: {}", self.message))
        } else {
            Fail::permanent(format!("{what}: {doing}: {}", self.message))
        }
    }

    /// Its outcome in `dnsreg_api_requests_total`.
    fn outcome(&self) -> crate::metrics::Outcome {
        use crate::metrics::Outcome;
        if self.busy {
            Outcome::Throttled
        } else if self.transient {
            Outcome::Error
        } else if self.key_refused {
            Outcome::Denied
        } else {
            Outcome::of_text(&self.message)
        }
    }

    fn transient(message: impl Into<String>) -> Failure {
        Failure {
            transient: true,
            busy: false,
            key_refused: false,
            message: message.into(),
        }
    }
    fn busy(message: impl Into<String>) -> Failure {
        Failure {
            busy: true,
            ..Failure::transient(message)
        }
    }
    fn permanent(message: impl Into<String>) -> Failure {
        Failure {
            transient: false,
            ..Failure::transient(message)
        }
    }
}

/// What a server's answer to a signed query says of the key.
enum Verdict {
    /// A signed answer without error: the key is right.
    Accepted,
    /// The TSIG error, with the server's clock minus ours (seconds) where it
    /// says (BADTIME).
    Refused(TsigError, Option<i64>),
    /// No answer, or one without a TSIG record.
    Unknown,
}

/// One server, one optional key: sends a message over UDP, or TCP when the
/// answer does not fit.
#[derive(Clone)]
struct Transport {
    addr: SocketAddr,
    /// The zone: where a signed query shows whether the server takes the key.
    origin: Name,
    signer: Option<TSigner>,
    /// What the key is, for error messages: "key `k` (hmac-sha256) from FILE".
    key: Option<String>,
}

impl Transport {
    async fn udp(&self) -> DnsExchange<TokioRuntimeProvider> {
        UdpClientStream::builder(self.addr, TokioRuntimeProvider::default())
            .with_timeout(Some(TIMEOUT))
            .with_signer(self.signer.clone())
            .exchange()
    }

    async fn tcp(&self) -> Result<DnsExchange<TokioRuntimeProvider>, Failure> {
        let (connect, handle) = TcpClientStream::new(
            self.addr,
            None,
            Some(TIMEOUT),
            TokioRuntimeProvider::default(),
        );
        let stream = connect
            .await
            .map_err(|e| Failure::transient(format!("cannot connect over TCP: {e}")))?;
        let mut mux = DnsMultiplexer::new(stream, handle).with_timeout(TIMEOUT);
        if let Some(s) = &self.signer {
            mux = mux.with_signer(s.clone());
        }
        let (exchange, background) = DnsExchange::from_stream(mux);
        tokio::spawn(background);
        Ok(exchange)
    }

    /// Sends `message` and returns the server's answer, whatever its response
    /// code: callers decide what a code means for them.
    async fn send(&self, message: Message) -> Result<DnsResponse, Failure> {
        match self.exchange(message).await {
            Err(f) if f.key_refused => {
                let taken = Failure::permanent(
                    "the server refused the request with an answer that does not verify, though it takes the key: it does not let the key update this zone (BIND `update-policy` or `allow-update`, Knot `acl … action: update`, PowerDNS `TSIG-ALLOW-DNSUPDATE`)",
                );
                Err(self.why_refused(f, taken).await)
            }
            answer => answer,
        }
    }

    async fn exchange(&self, message: Message) -> Result<DnsResponse, Failure> {
        // hickory truncates a message past 65,535 bytes silently (setting TC):
        // an UPDATE cut short would be applied in part. Refuse it instead.
        let size = message
            .to_vec()
            .map_err(|e| Failure::permanent(format!("cannot encode the message: {e}")))?
            .len();
        if size > MAX_MESSAGE {
            return Err(Failure::permanent(format!(
                "the message would be {size} bytes, more than DNS can carry (65,535 with its signature); dnsreg did not send it"
            )));
        }
        let mut opts = options();
        if message.metadata.op_code == OpCode::Update {
            opts.retry_interval = UPDATE_RESEND;
        }
        let request = || DnsRequest::new(message.clone(), opts);
        match first(self.udp().await.send(request()), self).await {
            Ok(answer) if !answer.metadata.truncation => Ok(answer),
            Ok(_) => {
                tracing::debug!(server = %self.addr, "answer truncated over UDP, asking again over TCP");
                let answer = first(self.tcp().await?.send(request()), self).await?;
                if answer.metadata.truncation {
                    // Not even TCP carries it whole: a part would be taken for the whole.
                    return Err(Failure::permanent(
                        "the answer does not fit in one DNS message even over TCP (65,535 bytes): an rrset this large cannot be read, nor changed with a prerequisite that names it",
                    ));
                }
                Ok(answer)
            }
            // No answer over UDP (a firewall, or nothing listening: ICMP
            // errors do not reach an unconnected socket): TCP says which.
            Err(udp) if udp.transient => {
                let tcp = match self.tcp().await {
                    Ok(exchange) => first(exchange.send(request()), self).await,
                    Err(e) => Err(e),
                };
                tcp.map_err(|tcp| {
                    Failure::transient(format!(
                        "no answer over UDP ({}) nor TCP ({})",
                        udp.message, tcp.message
                    ))
                })
            }
            Err(permanent) => Err(permanent),
        }
    }

    /// The whole zone, by AXFR over TCP (signed when there is a key).
    async fn transfer(&self, origin: &Name) -> Result<Vec<HRecord>, Failure> {
        let mut exchange = self.tcp().await?;
        let mut stream = exchange.zone_transfer(origin.clone(), None);
        let mut records = Vec::new();
        while let Some(part) = stream.next().await {
            let part = match part {
                Ok(part) => part,
                Err(e) => {
                    // Knot answers a transfer its ACL refuses with an
                    // unsigned NOTAUTH, which does not verify either.
                    let taken = self.transfer_refused("an answer that does not verify");
                    return Err(self.why_refused(self.net_failure(&e), taken).await);
                }
            };
            match part.metadata.response_code {
                ResponseCode::NoError => records.extend(part.answers.iter().cloned()),
                // BIND answers SERVFAIL beyond `transfers-out` (10) concurrent
                // transfers: a fleet joining or leaving at once meets it.
                // Busy: try again later and later (the pacer's growing,
                // jittered waits) until the deadline, not a few times within
                // seconds, which failed most of a fleet of 300's leaves.
                ResponseCode::ServFail => {
                    return Err(Failure::busy("SERVFAIL (too many transfers at once?)"));
                }
                code => return Err(self.transfer_refused(&code.to_string())),
            }
        }
        Ok(records)
    }

    /// A zone transfer the server refused (answering `code`) though it
    /// takes the key: what to allow, and where.
    fn transfer_refused(&self, code: &str) -> Failure {
        Failure::permanent(format!(
            "the server refused to transfer the zone ({code}), though it takes the key: `dnsreg reap` lists every instance's ownership registry with a zone transfer (AXFR), which joins and leaves never need; allow it for the key where reap runs: BIND `allow-transfer {{ key \"{0}\"; }};`, Knot `acl: - id: reap; key: {0}; action: [update, transfer]`, PowerDNS `pdnsutil set-meta ZONE TSIG-ALLOW-AXFR {0}`",
            self.key
                .as_deref()
                .and_then(|k| k.split('`').nth(1))
                .unwrap_or("NAME")
        ))
    }

    fn net_failure(&self, e: &NetError) -> Failure {
        let text = e.to_string();
        let lower = text.to_ascii_lowercase();
        // hickory reports a response whose TSIG does not verify (BIND answers a
        // bad signature with an unsigned BADSIG/BADKEY) as a protocol error
        // about the MAC: say what it means.
        // An answer without any TSIG record is not that: a refusal of the key
        // still carries a TSIG record, with an empty MAC and the error code
        // (RFC 8945 §5.3.2), so an answer with none comes from something that
        // never saw the key, typically a front end's SERVFAIL. Its content
        // cannot be trusted, but it is no verdict on the key: try again.
        if lower.contains("missing tsig") {
            return Failure::transient(format!(
                "an answer without TSIG signature to a signed message (a SERVFAIL from a front end or load balancer?): {text}"
            ));
        }
        if lower.contains("tsig") || lower.contains("hmac") || lower.contains(" mac") {
            return Failure {
                key_refused: true,
                ..Failure::permanent(format!(
                    "the server did not accept the TSIG signature: {} is not the key the server has for this zone (check its name, algorithm and secret)",
                    self.key.as_deref().unwrap_or("the key")
                ))
            };
        }
        Failure::transient(text)
    }

    /// Why the server refused the key, where `f` says it did: hickory only
    /// says that the answer's signature did not verify, while the answer's
    /// TSIG record says why (RFC 8945 §5.2). So the server is asked once
    /// more, by hand, and its TSIG error read: BADKEY (it has no key of that
    /// name and algorithm), BADSIG (another secret), or BADTIME (the clocks
    /// differ by more than the fudge, with the server's time). A refusal of
    /// the request itself (NOTAUTH or REFUSED, signed) is no verdict on the
    /// key and never comes here.
    async fn why_refused(&self, f: Failure, taken: Failure) -> Failure {
        if !f.key_refused {
            return f;
        }
        match self.tsig_verdict().await {
            // The key is taken: it was the request the server refused, with
            // an answer that does not verify (unsigned): `taken` says what.
            Verdict::Accepted => taken,
            Verdict::Unknown => f,
            Verdict::Refused(error, skew) => Failure {
                key_refused: true,
                ..Failure::permanent(self.refusal(error, skew))
            },
        }
    }

    /// What a TSIG error the server answered means, and what to do.
    fn refusal(&self, error: TsigError, skew: Option<i64>) -> String {
        let key = self.key.as_deref().unwrap_or("the key");
        match error {
            TsigError::BadKey => format!(
                "the server did not accept the TSIG signature (BADKEY): it has no key of the name and algorithm of {key}"
            ),
            TsigError::BadSig => format!(
                "the server did not accept the TSIG signature (BADSIG): it has a key of that name, with another secret than {key}"
            ),
            TsigError::BadTime => format!(
                "the server did not accept the TSIG signature's time (BADTIME): its clock is {} this machine's, and TSIG allows {FUDGE} s: set the time (NTP, chrony) on whichever is wrong",
                skew.map_or("off from".to_string(), |s| format!(
                    "{} s {}",
                    s.unsigned_abs(),
                    if s >= 0 { "ahead of" } else { "behind" }
                )),
            ),
            other => format!(
                "the server did not accept the TSIG signature of {key}: TSIG error {other:?}"
            ),
        }
    }

    /// One signed query for the zone's SOA, by hand, and what the TSIG
    /// record of its answer says of the key.
    async fn tsig_verdict(&self) -> Verdict {
        self.tsig_answer().await.unwrap_or(Verdict::Unknown)
    }

    async fn tsig_answer(&self) -> Option<Verdict> {
        let signer = self.signer.as_ref()?;
        let mut m = Message::query();
        m.metadata.id = rand::random();
        m.metadata.recursion_desired = false;
        m.add_query(Query::query(self.origin.clone(), RecordType::SOA));
        let now = registry::unix_now();
        m.finalize(signer, now).ok()?;
        let bytes = m.to_vec().ok()?;
        let local: SocketAddr = if self.addr.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = tokio::net::UdpSocket::bind(local).await.ok()?;
        socket.connect(self.addr).await.ok()?;
        socket.send(&bytes).await.ok()?;
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(TIMEOUT, socket.recv(&mut buf))
            .await
            .ok()?
            .ok()?;
        let answer = Message::from_vec(&buf[..n]).ok()?;
        let tsig = &answer.signature()?.data;
        let Some(error) = tsig.error else {
            // A signed answer without error: the key is taken (checked
            // against the signature, lest a forged answer say so).
            return signer
                .verify_message_byte(&buf[..n], Some(m.signature()?.data.mac.as_slice()), true)
                .is_ok()
                .then_some(Verdict::Accepted);
        };
        // BADTIME carries the server's time in Other Data (48 bits).
        let skew = (tsig.other.len() == 6).then(|| {
            let server = tsig
                .other
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            i64::try_from(server).unwrap_or(i64::MAX) - i64::try_from(now).unwrap_or(0)
        });
        Some(Verdict::Refused(error, skew))
    }
}

fn options() -> DnsRequestOptions {
    let mut o = DnsRequestOptions::default();
    o.recursion_desired = false;
    o.use_edns = true;
    o.edns_payload_len = UDP_PAYLOAD;
    o
}

async fn first<S>(mut responses: S, t: &Transport) -> Result<DnsResponse, Failure>
where
    S: futures_util::Stream<Item = Result<DnsResponse, NetError>> + Unpin,
{
    match responses.next().await {
        Some(Ok(r)) => Ok(r),
        Some(Err(e)) => Err(t.net_failure(&e)),
        None => Err(Failure::transient(format!("no answer within {TIMEOUT:?}"))),
    }
}

fn with_edns(message: &mut Message) {
    let mut edns = Edns::new();
    edns.set_max_payload(UDP_PAYLOAD).set_version(0);
    message.set_edns(edns);
}

// ---------------------------------------------------------------------------
// The provider
// ---------------------------------------------------------------------------

/// An rrset as read: its records exactly as the server holds them (for the
/// prerequisite), our reading of them, and its TTL.
#[derive(Clone, Debug, Default)]
pub struct RrSet {
    raw: Vec<HRecord>,
    values: Values,
    ttl: Option<u32>,
}

#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    sets: BTreeMap<RrKey, RrSet>,
}

/// What the state file keeps of a snapshot: each rrset's values and TTL, as
/// this instance's last UPDATE left them. The records are rebuilt from the
/// values, exactly as dnsreg writes them (see [`Rfc2136::presume`]).
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    #[serde(with = "crate::record::by_key")]
    sets: BTreeMap<RrKey, KeptSet>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeptSet {
    values: Values,
    ttl: Option<u32>,
}

impl serde::Serialize for Snapshot {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Kept {
            sets: self
                .sets
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        KeptSet {
                            values: v.values.clone(),
                            ttl: v.ttl,
                        },
                    )
                })
                .collect(),
        }
        .serialize(s)
    }
}

/// A state file of an earlier dnsreg kept nothing here (`null`): then
/// nothing is presumed.
impl<'de> serde::Deserialize<'de> for Snapshot {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let kept = Option::<Kept>::deserialize(d)?;
        Ok(Snapshot {
            sets: kept
                .map(|k| k.sets)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, RrSet::of(v.values, v.ttl)))
                .collect(),
        })
    }
}

impl RrSet {
    /// An rrset as dnsreg wrote it: its records rebuilt from the values.
    fn of(values: Values, ttl: Option<u32>) -> RrSet {
        let ttl = ttl.filter(|_| !values.is_empty());
        RrSet {
            raw: values
                .iter()
                .map(|v| hrecord(v, ttl.unwrap_or(0)))
                .collect(),
            values,
            ttl,
        }
    }
}

pub struct Rfc2136 {
    name: String,
    cfg: Rfc2136Config,
    zone: DomainName,
    transport: Option<Transport>,
    pacer: std::sync::Arc<Pacer>,
}

impl Rfc2136 {
    pub fn new(name: &str, cfg: Rfc2136Config) -> Rfc2136 {
        Rfc2136 {
            name: name.to_string(),
            zone: cfg.zone.clone(),
            cfg,
            transport: None,
            pacer: std::sync::Arc::new(Pacer::new(Backoff::BUSY)),
        }
    }

    fn transport(&self) -> &Transport {
        self.transport
            .as_ref()
            .expect("connect() comes before any other call")
    }

    fn what(&self) -> String {
        format!(
            "rfc2136 `{}` (zone {} at {})",
            self.name,
            self.zone.without_dot(),
            self.cfg.server
        )
    }

    /// One query, one attempt, counted in the metrics.
    async fn query(&self, name: &DomainName, rtype: RecordType) -> Result<DnsResponse, Failure> {
        use crate::metrics::Outcome;
        let result = self.query_once(name, rtype).await;
        let outcome = result.as_ref().err().map_or(Outcome::Ok, Failure::outcome);
        crate::metrics::get().request(&self.name, "query", outcome);
        result
    }

    async fn query_once(
        &self,
        name: &DomainName,
        rtype: RecordType,
    ) -> Result<DnsResponse, Failure> {
        let t = self.transport();
        let mut message = Message::query();
        message.metadata.recursion_desired = false;
        message.add_query(Query::query(hname(name), rtype));
        with_edns(&mut message);
        let answer = t.send(message).await?;
        match answer.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            ResponseCode::ServFail => return Err(Failure::transient("SERVFAIL")),
            code => {
                return Err(Failure::permanent(format!(
                    "the server answered {code}: does it serve zone {} (is it the zone's primary)?",
                    self.zone.without_dot()
                )));
            }
        }
        if !answer.metadata.authoritative {
            return Err(Failure::permanent(format!(
                "the server is not authoritative for {}: point `server` at the zone's primary",
                self.zone.without_dot()
            )));
        }
        Ok(answer)
    }

    async fn read_one(&self, key: &RrKey) -> Result<RrSet, Failure> {
        let answer = self.query(&key.name, htype(key.rtype)).await?;
        let qname = hname(&key.name);
        let raw: Vec<HRecord> = answer
            .answers
            .iter()
            .filter(|r| r.name == qname && r.record_type() == htype(key.rtype))
            .cloned()
            .collect();
        Ok(RrSet {
            values: raw.iter().filter_map(|r| value_of(key, &r.data)).collect(),
            ttl: raw.iter().map(|r| r.ttl).min(),
            raw,
        })
    }

    /// The UPDATE message for `edit` against `snapshot`.
    fn update_message(&self, snapshot: &Snapshot, edit: &Edit) -> Message {
        let origin = hname(&self.zone);
        let mut message = Message::query();
        message.metadata.op_code = OpCode::Update;
        message.metadata.recursion_desired = false;
        let mut zone = Query::new();
        zone.set_name(origin)
            .set_query_class(DNSClass::IN)
            .set_query_type(RecordType::SOA);
        message.add_zone(zone);

        let empty = RrSet::default();
        let ownership = registry::root(&self.zone);
        // Ownership rrsets the edit rests on without changing them (presumed
        // from memory): each exactly as presumed.
        let changed = edit.keys();
        for key in edit
            .guard
            .iter()
            .filter(|k| k.name.is_in(&ownership) && !changed.contains(*k))
        {
            require_exactly(&mut message, key, snapshot.sets.get(key).unwrap_or(&empty));
        }
        for key in changed {
            let current = snapshot.sets.get(&key).unwrap_or(&empty);
            // Prerequisite, for the ownership rrsets (registries and claims)
            // only: the rrset is exactly what we read (RFC 2136 §2.4.2), or
            // absent (§2.4.3); TTL 0 and class IN / NONE as the RFC says. The
            // records themselves change value by value, guarded by the claims.
            if key.name.is_in(&ownership) {
                require_exactly(&mut message, &key, current);
            }
            // Deletes of single RRs (§2.5.4): class NONE, TTL 0, the exact data
            // as the server holds it.
            let removed: BTreeSet<&Value> = edit.remove.get(&key).into_iter().flatten().collect();
            for r in &current.raw {
                if value_of(&key, &r.data).is_some_and(|v| removed.contains(&v)) {
                    let mut r = r.clone();
                    r.ttl = 0;
                    r.dns_class = DNSClass::NONE;
                    message.add_update(r);
                }
            }
            // Adds (§2.5.1). The rrset's TTL after the edit is `edit.ttl`; when
            // it changes, the values that stay are added again with it (a
            // duplicate RR replaces the zone's, §3.4.2.2), so the rrset keeps
            // one TTL.
            let ttl = edit.ttl.get(&key).copied();
            for rec in edit.add.get(&key).into_iter().flatten() {
                message.add_update(hrecord(&rec.value, ttl.unwrap_or(rec.ttl)));
            }
            if let Some(ttl) = ttl
                && current.ttl.is_some_and(|now| now != ttl)
            {
                for r in &current.raw {
                    if value_of(&key, &r.data).is_some_and(|v| removed.contains(&v)) {
                        continue;
                    }
                    let mut r = r.clone();
                    r.ttl = ttl;
                    r.dns_class = DNSClass::IN;
                    message.add_update(r);
                }
            }
        }
        with_edns(&mut message);
        message
    }
}

impl Provider for Rfc2136 {
    type Snapshot = Snapshot;

    fn name(&self) -> &str {
        &self.name
    }

    fn zone(&self) -> &DomainName {
        &self.zone
    }

    fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    fn transient_backoff(&self) -> Backoff {
        BACKOFF
    }

    async fn connect(&mut self, _known: Option<&super::KnownZone>) -> anyhow::Result<()> {
        if self.transport.is_some() {
            return Ok(());
        }
        let server = &self.cfg.server;
        let addr = tokio::net::lookup_host((server.host.as_str(), server.port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: cannot resolve the server name {}",
                    self.what(),
                    server.host
                )
            })?;
        let key = match &self.cfg.tsig_key_file {
            Some(path) => {
                Some(TsigKey::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", self.what()))?)
            }
            None => None,
        };
        self.transport = Some(Transport {
            addr,
            origin: hname(&self.zone),
            signer: key.as_ref().map(|k| k.signer(FUDGE)).transpose()?,
            key: key.as_ref().map(TsigKey::describe),
        });
        // The zone must be served, authoritatively, by this server.
        let what = self.what();
        let mut tries =
            crate::reconcile::Attempts::new(&what, Duration::from_secs(24 * 3600)).with(BACKOFF);
        let answer = crate::reconcile::attempt(&mut tries, "looking up the zone's SOA", || async {
            self.query(&self.zone, RecordType::SOA)
                .await
                .map_err(|f| f.into_fail(&what, "looking up the zone's SOA"))
        })
        .await;
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                self.transport = None;
                return Err(e);
            }
        };
        let origin = hname(&self.zone);
        if !answer
            .answers
            .iter()
            .any(|r| r.name == origin && r.record_type() == RecordType::SOA)
        {
            self.transport = None;
            anyhow::bail!(
                "{}: the server has no SOA at {}: it does not serve that zone (check `zone`; a name inside a zone is not a zone)",
                self.what(),
                self.zone.without_dot()
            );
        }
        Ok(())
    }

    /// The ownership rrsets (registries, claims) first, then the records,
    /// each group's queries at once. In that order, a value found without a
    /// claim was not added by an instance meanwhile (one adds the value and
    /// its claim in one UPDATE, which the claim's query would have seen, or
    /// which the next UPDATE's prerequisite on that claim refuses): it is a
    /// person's.
    async fn read(&self, keys: &BTreeSet<RrKey>) -> Result<Snapshot, Fail> {
        let ownership = registry::root(&self.zone);
        let (first, then): (Vec<&RrKey>, Vec<&RrKey>) =
            keys.iter().partition(|k| k.name.is_in(&ownership));
        let mut snapshot = Snapshot::default();
        for group in [first, then] {
            let mut tasks = tokio::task::JoinSet::new();
            for key in group {
                let me = self.reader();
                let key = key.clone();
                tasks.spawn(async move {
                    let set = me.read_one(&key).await;
                    (key, set)
                });
            }
            while let Some(done) = tasks.join_next().await {
                let (key, set) =
                    done.map_err(|e| Fail::permanent(format!("a read task failed: {e}")))?;
                let set = set.map_err(|f| f.into_fail(&self.what(), &format!("reading {key}")))?;
                snapshot.sets.insert(key, set);
            }
        }
        Ok(snapshot)
    }

    fn merge(&self, snapshot: &mut Snapshot, more: Snapshot) {
        for (k, v) in more.sets {
            snapshot.sets.entry(k).or_insert(v);
        }
    }

    /// What this instance's last UPDATE left stands in for a read of the
    /// ownership rrsets it wrote (its registry, its values' claims: nobody
    /// else writes them in the normal course), absent ones included: each
    /// is a prerequisite of the next UPDATE, so a wrong guess is refused
    /// (NXRRSET/YXRRSET) and costs a read, never a wrong write. In the
    /// record rrsets, only this instance's own values are remembered: what
    /// a leave deletes, one by one, without a prerequisite (the claims guard
    /// it); a join reads them anyway (see `reconcile::decide`).
    fn presume(
        &self,
        memory: &Snapshot,
        keys: &BTreeSet<RrKey>,
        _shared: &BTreeSet<RrKey>,
        owned: &Values,
    ) -> Option<(Snapshot, BTreeSet<RrKey>)> {
        let ownership = registry::root(&self.zone);
        let mut out = Snapshot::default();
        let mut rest = BTreeSet::new();
        for k in keys {
            let kept = memory.sets.get(k);
            if k.name.is_in(&ownership) {
                out.sets
                    .insert(k.clone(), kept.cloned().unwrap_or_default());
            } else if let Some(set) = kept {
                let mine: Values = set.values.intersection(owned).cloned().collect();
                out.sets.insert(k.clone(), RrSet::of(mine, set.ttl));
            } else {
                rest.insert(k.clone());
            }
        }
        Some((out, rest))
    }

    fn values(&self, snapshot: &Snapshot, key: &RrKey) -> Values {
        snapshot
            .sets
            .get(key)
            .map(|s| s.values.clone())
            .unwrap_or_default()
    }

    fn ttl(&self, snapshot: &Snapshot, key: &RrKey) -> Option<u32> {
        snapshot.sets.get(key).and_then(|s| s.ttl)
    }

    async fn write(&self, snapshot: &Snapshot, edit: &Edit) -> Result<Written<Snapshot>, Fail> {
        use crate::metrics::Outcome;
        let result = self.update(snapshot, edit).await;
        let outcome = result.as_ref().err().map_or(Outcome::Ok, Outcome::of_fail);
        crate::metrics::get().request(&self.name, "update", outcome);
        result
    }

    fn rewrites_rrsets(&self) -> bool {
        false
    }

    fn claims_by_name(&self) -> bool {
        true
    }

    async fn registries(&self) -> Result<(BTreeMap<String, Values>, Snapshot), Fail> {
        let origin = hname(&self.zone);
        let t = self.transport();
        self.pacer.ready().await;
        let transferred = t.transfer(&origin).await;
        let outcome = transferred
            .as_ref()
            .err()
            .map_or(crate::metrics::Outcome::Ok, Failure::outcome);
        crate::metrics::get().request(&self.name, "axfr", outcome);
        let records = match transferred {
            Ok(records) => {
                self.pacer.ok();
                records
            }
            Err(f) => {
                let fail = f.into_fail(&self.what(), "listing the ownership registries (AXFR)");
                if let Fail::Busy { why, .. } = &fail {
                    self.pacer.busy(why, None);
                }
                return Err(fail);
            }
        };
        let mut out: BTreeMap<String, Values> = BTreeMap::new();
        let mut snap = Snapshot::default();
        for r in records
            .iter()
            .filter(|r| r.record_type() == RecordType::TXT)
        {
            let Ok(name) = DomainName::new(&r.name.to_ascii()) else {
                continue;
            };
            let Some(label) = registry::label_of(&name, &self.zone) else {
                continue;
            };
            let key = RrKey {
                name: name.clone(),
                rtype: RType::TXT,
            };
            if let Some(v) = value_of(&key, &r.data) {
                out.entry(label).or_default().insert(v.clone());
                let set = snap.sets.entry(key).or_default();
                set.values.insert(v);
                set.ttl = Some(set.ttl.map_or(r.ttl, |t| t.min(r.ttl)));
                set.raw.push(r.clone());
            }
        }
        Ok((out, snap))
    }
}

/// The prerequisite that the rrset at `key` is exactly `current` (RFC 2136
/// §2.4.2), or absent when `current` is empty (§2.4.3); TTL 0 and class IN
/// or NONE as the RFC says.
fn require_exactly(message: &mut Message, key: &RrKey, current: &RrSet) {
    if current.raw.is_empty() {
        let mut absent = HRecord::update0(hname(&key.name), 0, htype(key.rtype));
        absent.dns_class = DNSClass::NONE;
        message.add_pre_requisite(absent);
    }
    for r in &current.raw {
        let mut r = r.clone();
        r.ttl = 0;
        r.dns_class = DNSClass::IN;
        message.add_pre_requisite(r);
    }
}

/// `snapshot` with `edit` applied: what the server holds at those rrsets
/// once the UPDATE is accepted.
fn applied(snapshot: &Snapshot, edit: &Edit) -> Snapshot {
    let mut after = snapshot.clone();
    for key in edit.keys() {
        let set = after.sets.entry(key.clone()).or_default();
        let mut values = set.values.clone();
        for v in edit.remove.get(&key).into_iter().flatten() {
            values.remove(v);
        }
        let mut ttl = edit.ttl.get(&key).copied().or(set.ttl);
        for r in edit.add.get(&key).into_iter().flatten() {
            values.insert(r.value.clone());
            ttl = ttl.or(Some(r.ttl));
        }
        *set = RrSet::of(values, ttl);
    }
    after
}

impl Rfc2136 {
    /// One UPDATE, one attempt.
    async fn update(&self, snapshot: &Snapshot, edit: &Edit) -> Result<Written<Snapshot>, Fail> {
        let message = self.update_message(snapshot, edit);
        let t = self.transport();
        let answer = t
            .send(message)
            .await
            .map_err(|f| f.into_fail(&self.what(), "sending the update"))?;
        if answer.metadata.response_code == ResponseCode::ServFail {
            return Err(Fail::Transient(format!(
                "{}: sending the update: SERVFAIL",
                self.what()
            )));
        }
        let key = t
            .key
            .as_deref()
            .unwrap_or("no key (tsig_key_file is not set)");
        match answer.metadata.response_code {
            ResponseCode::NoError => Ok(Written {
                after: applied(snapshot, edit),
                change: None,
            }),
            // A prerequisite failed: someone changed an rrset since we read it.
            code @ (ResponseCode::NXRRSet
            | ResponseCode::YXRRSet
            | ResponseCode::NXDomain
            | ResponseCode::YXDomain) => Err(Fail::Conflict(format!(
                "the server answered {code}: an rrset changed since it was read"
            ))),
            // BIND answers a signature out of its time window with a signed
            // NOTAUTH whose TSIG record says BADTIME (and Knot one its ACL
            // refuses with BADKEY): a signed query tells which.
            ResponseCode::NotAuth => Err(Fail::Permanent(anyhow::anyhow!(
                "{}: the server refused the update with NOTAUTH: {}",
                self.what(),
                match t.tsig_verdict().await {
                    Verdict::Refused(error, skew) => t.refusal(error, skew),
                    Verdict::Accepted => format!(
                        "it takes {key} for this zone but not for this update: allow the key to update it (BIND `update-policy` or `allow-update`, Knot `acl … action: update` with the record types, PowerDNS `TSIG-ALLOW-DNSUPDATE`), or point `server` at the zone's primary"
                    ),
                    Verdict::Unknown => format!(
                        "it does not accept {key} for this zone, or is not the zone's primary"
                    ),
                }
            ))),
            ResponseCode::Refused => Err(Fail::Permanent(anyhow::anyhow!(
                "{}: the server refused the update (REFUSED): the zone does not allow updates with {key}; in BIND: `allow-update {{ key \"NAME\"; }};` or an update-policy granting it",
                self.what()
            ))),
            ResponseCode::NotZone => Err(Fail::Permanent(anyhow::anyhow!(
                "{}: the server answered NOTZONE: a name is outside zone {}",
                self.what(),
                self.zone.without_dot()
            ))),
            code => Err(Fail::Permanent(anyhow::anyhow!(
                "{}: the server refused the update: {code}",
                self.what()
            ))),
        }
    }

    /// A copy that can read on its own task.
    fn reader(&self) -> Rfc2136 {
        Rfc2136 {
            name: self.name.clone(),
            cfg: self.cfg.clone(),
            zone: self.zone.clone(),
            transport: self.transport.clone(),
            pacer: self.pacer.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
