//! The transport: one server, one optional TSIG key. A message goes over
//! UDP, or TCP when the answer does not fit; an UPDATE sent over UDP is sent
//! again after a while without an answer; a zone is transferred over TCP;
//! and where the server refuses the key, a signed query by hand tells why.

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
};
use hickory_proto::rr::TSigner;
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::{Name, Record as HRecord, RecordType};

use crate::provider::Fail;
use crate::registry;

/// How long one exchange may take before it counts as lost (hickory resends
/// over UDP within it).
const TIMEOUT: Duration = Duration::from_secs(3);
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
pub(super) const FUDGE: u16 = 300;

/// What a server's answer to a signed query says of the key.
pub(super) enum Verdict {
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
pub(super) struct Transport {
    pub(super) addr: SocketAddr,
    /// The zone: where a signed query shows whether the server takes the key.
    pub(super) origin: Name,
    pub(super) signer: Option<TSigner>,
    /// What the key is, for error messages: "key `k` (hmac-sha256) from FILE".
    pub(super) key: Option<String>,
}

impl Transport {
    async fn udp(&self) -> DnsExchange<TokioRuntimeProvider> {
        UdpClientStream::builder(self.addr, TokioRuntimeProvider::default())
            .with_timeout(Some(TIMEOUT))
            .with_signer(self.signer.clone())
            .exchange()
    }

    async fn tcp(&self) -> Result<DnsExchange<TokioRuntimeProvider>, Fail> {
        let (connect, handle) = TcpClientStream::new(
            self.addr,
            None,
            Some(TIMEOUT),
            TokioRuntimeProvider::default(),
        );
        let stream = connect
            .await
            .map_err(|e| Fail::Transient(format!("cannot connect over TCP: {e}")))?;
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
    pub(super) async fn send(&self, message: Message) -> Result<DnsResponse, Fail> {
        match self.exchange(message).await {
            Err(f @ Fail::Denied(_)) => {
                let taken = Fail::denied(
                    "the server refused the request with an answer that does not verify, though it takes the key: it does not let the key update this zone (BIND `update-policy` or `allow-update`, Knot `acl … action: update`, PowerDNS `TSIG-ALLOW-DNSUPDATE`)",
                );
                Err(self.why_refused(f, taken).await)
            }
            answer => answer,
        }
    }

    async fn exchange(&self, message: Message) -> Result<DnsResponse, Fail> {
        // hickory truncates a message past 65,535 bytes silently (setting TC):
        // an UPDATE cut short would be applied in part. Refuse it instead.
        let size = message
            .to_vec()
            .map_err(|e| Fail::permanent(format!("cannot encode the message: {e}")))?
            .len();
        if size > MAX_MESSAGE {
            return Err(Fail::permanent(format!(
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
                    return Err(Fail::permanent(
                        "the answer does not fit in one DNS message even over TCP (65,535 bytes): an rrset this large cannot be read, nor changed with a prerequisite that names it",
                    ));
                }
                Ok(answer)
            }
            // No answer over UDP (a firewall, or nothing listening: ICMP
            // errors do not reach an unconnected socket): TCP says which.
            Err(udp @ Fail::Transient(_)) => {
                let tcp = match self.tcp().await {
                    Ok(exchange) => first(exchange.send(request()), self).await,
                    Err(e) => Err(e),
                };
                tcp.map_err(|tcp| {
                    Fail::Transient(format!("no answer over UDP ({udp}) nor TCP ({tcp})"))
                })
            }
            Err(permanent) => Err(permanent),
        }
    }

    /// The whole zone, by AXFR over TCP (signed when there is a key).
    pub(super) async fn transfer(&self, origin: &Name) -> Result<Vec<HRecord>, Fail> {
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
                    return Err(Fail::Busy {
                        why: "SERVFAIL (too many transfers at once?)".into(),
                        retry_after: None,
                    });
                }
                code => return Err(self.transfer_refused(&code.to_string())),
            }
        }
        Ok(records)
    }

    /// A zone transfer the server refused (answering `code`) though it
    /// takes the key: what to allow, and where.
    fn transfer_refused(&self, code: &str) -> Fail {
        Fail::permanent(format!(
            "the server refused to transfer the zone ({code}), though it takes the key: `dnsreg reap` lists every instance's ownership registry with a zone transfer (AXFR), which joins and leaves never need; allow it for the key where reap runs: BIND `allow-transfer {{ key \"{0}\"; }};`, Knot `acl: - id: reap; key: {0}; action: [update, transfer]`, PowerDNS `pdnsutil set-meta ZONE TSIG-ALLOW-AXFR {0}`",
            self.key
                .as_deref()
                .and_then(|k| k.split('`').nth(1))
                .unwrap_or("NAME")
        ))
    }

    fn net_failure(&self, e: &NetError) -> Fail {
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
            return Fail::Transient(format!(
                "an answer without TSIG signature to a signed message (a SERVFAIL from a front end or load balancer?): {text}"
            ));
        }
        if lower.contains("tsig") || lower.contains("hmac") || lower.contains(" mac") {
            return Fail::denied(format!(
                "the server did not accept the TSIG signature: {} is not the key the server has for this zone (check its name, algorithm and secret)",
                self.key.as_deref().unwrap_or("the key")
            ));
        }
        Fail::Transient(text)
    }

    /// Why the server refused the key, where `f` says it did: hickory only
    /// says that the answer's signature did not verify, while the answer's
    /// TSIG record says why (RFC 8945 §5.2). So the server is asked once
    /// more, by hand, and its TSIG error read: BADKEY (it has no key of that
    /// name and algorithm), BADSIG (another secret), or BADTIME (the clocks
    /// differ by more than the fudge, with the server's time). A refusal of
    /// the request itself (NOTAUTH or REFUSED, signed) is no verdict on the
    /// key and never comes here.
    async fn why_refused(&self, f: Fail, taken: Fail) -> Fail {
        if !matches!(f, Fail::Denied(_)) {
            return f;
        }
        match self.tsig_verdict().await {
            // The key is taken: it was the request the server refused, with
            // an answer that does not verify (unsigned): `taken` says what.
            Verdict::Accepted => taken,
            Verdict::Unknown => f,
            Verdict::Refused(error, skew) => Fail::denied(self.refusal(error, skew)),
        }
    }

    /// What a TSIG error the server answered means, and what to do.
    pub(super) fn refusal(&self, error: TsigError, skew: Option<i64>) -> String {
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
    pub(super) async fn tsig_verdict(&self) -> Verdict {
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

async fn first<S>(mut responses: S, t: &Transport) -> Result<DnsResponse, Fail>
where
    S: futures_util::Stream<Item = Result<DnsResponse, NetError>> + Unpin,
{
    match responses.next().await {
        Some(Ok(r)) => Ok(r),
        Some(Err(e)) => Err(t.net_failure(&e)),
        None => Err(Fail::Transient(format!("no answer within {TIMEOUT:?}"))),
    }
}

pub(super) fn with_edns(message: &mut Message) {
    let mut edns = Edns::new();
    edns.set_max_payload(UDP_PAYLOAD).set_version(0);
    message.set_edns(edns);
}
