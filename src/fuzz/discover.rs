//! DNS answers as `dnsreg discover` reads them: SRV rrsets (RFC 2782), DNS-SD
//! browses (PTR, then each instance's SRV and TXT, RFC 6763) and addresses.
//!
//! The wire format is hickory's to decode; the input is a whole DNS message
//! (bytes), and what discover does with its records is ours: the SRV order,
//! the DNS-SD instances, the TXT attributes, and the lines and JSON printed.

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{A, AAAA, PTR, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::{Input, Target, corpus};
use crate::discover::{
    Endpoint, SrvAnswer, address, classify_srv, instance_label, instances, order, parse_txt,
    srv_records, txt_of,
};

const TOKENS: &[&[u8]] = &[
    b"\x00\x21",
    b"\x00\x0c",
    b"\x00\x10",
    b"\x00\x01",
    b"\x00\x1c",
    b"\xc0\x0c",
    b"\xc0\x00",
    b"\xff\xff",
    b"\x3f",
    b"\x00",
    b"=",
    b"\x05a=b=c",
];

fn of_type(records: &[Record], t: RecordType) -> Vec<Record> {
    records
        .iter()
        .filter(|r| r.record_type() == t)
        .cloned()
        .collect()
}

fn show(endpoints: &[Endpoint]) {
    for e in endpoints {
        for line in e.lines() {
            // One endpoint per line, fields TAB-separated: nothing a name or a
            // TXT value holds may break a line.
            assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
        }
        let _ = serde_json::to_string(e).unwrap();
        // `--resolve` asks for each target's addresses by name.
        let _ = Name::from_utf8(&e.target);
    }
}

/// What `discover` does with one round's answers, all kinds at once.
fn check_message(bytes: &[u8]) {
    let Ok(msg) = Message::from_vec(bytes) else {
        return;
    };
    let records: Vec<Record> = msg
        .answers
        .iter()
        .chain(msg.additionals.iter())
        .cloned()
        .collect();
    // SRV at NAME.
    let srv = srv_records(of_type(&records, RecordType::SRV));
    match classify_srv(srv) {
        SrvAnswer::Unavailable => {}
        SrvAnswer::Targets(t) => {
            let n = t.len();
            let endpoints: Vec<Endpoint> = order(t)
                .into_iter()
                .map(|(s, ttl)| Endpoint::srv(&s, ttl, None))
                .collect();
            assert_eq!(endpoints.len(), n);
            show(&endpoints);
        }
    }
    // A DNS-SD browse: each instance with the message's SRV and TXT.
    let txt = of_type(&records, RecordType::TXT);
    let attributes = txt_of(&txt);
    for (k, _) in &attributes.0 {
        assert!(!k.is_empty() && !k.contains('='), "{k:?}");
    }
    let mut found = Vec::new();
    for instance in instances(of_type(&records, RecordType::PTR)) {
        let label = instance_label(&instance);
        for (s, ttl) in srv_records(of_type(&records, RecordType::SRV)) {
            found.push(Endpoint::srv(
                &s,
                ttl,
                Some((label.clone(), attributes.clone())),
            ));
        }
    }
    show(&found);
    // Plain addresses.
    let addresses: Vec<Endpoint> = records
        .iter()
        .filter_map(|r| address(&r.data).map(|ip| Endpoint::address(ip, r.ttl, Some(80))))
        .collect();
    show(&addresses);
}

#[test]
fn discover_answers() {
    let t = Target::new("discover-dns");
    let seeds = corpus("discover-dns");
    t.run_bytes(&seeds, TOKENS, |i: &Input| {
        check_message(&i.0);
        // The same bytes as TXT strings, as a server may cut them.
        let strings: Vec<&[u8]> = i.0.split(|b| *b == 0).collect();
        let _ = parse_txt(&strings);
    });
}

/// Writes the seed corpus of `discover-dns`: answers as a server sends them.
/// Run with `cargo test --bin dnsreg write_discover_corpus -- --ignored`.
#[test]
#[ignore = "writes tests/fuzz-corpus/discover-dns"]
fn write_discover_corpus() {
    let dir = super::corpus_dir("discover-dns");
    std::fs::create_dir_all(&dir).unwrap();
    for (file, bytes) in srv_seeds().into_iter().chain(dnssd_seeds()) {
        std::fs::write(dir.join(file), bytes).unwrap();
    }
}

/// A name the corpus writes correctly.
fn dns_name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// A response to the query for `q` of type `t` answering `records`, as
/// bytes on the wire.
fn answer(q: Name, t: RecordType, records: Vec<Record>) -> Vec<u8> {
    let mut m = Message::new(0x2b7c, MessageType::Response, OpCode::Query);
    m.add_query(Query::query(q, t));
    for r in records {
        m.add_answer(r);
    }
    m.to_vec().unwrap()
}

/// An SRV record of `_v1._theservice._tcp.example.com.`.
fn srv(p: u16, w: u16, port: u16, target: &str) -> Record {
    Record::from_rdata(
        dns_name("_v1._theservice._tcp.example.com."),
        60,
        RData::SRV(SRV::new(p, w, port, dns_name(target))),
    )
}

/// The corpus's SRV answers: three priorities, and a service decidedly
/// not available (RFC 2782's ".").
fn srv_seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "srv-three-priorities",
            answer(
                dns_name("_v1._theservice._tcp.example.com."),
                RecordType::SRV,
                vec![
                    srv(10, 60, 8080, "i-1.example.com."),
                    srv(10, 40, 8080, "i-2.example.com."),
                    srv(20, 0, 8081, "backup.example.com."),
                ],
            ),
        ),
        (
            "srv-decidedly-unavailable",
            answer(
                dns_name("_v1._theservice._tcp.example.com."),
                RecordType::SRV,
                vec![srv(0, 0, 0, ".")],
            ),
        ),
    ]
}

/// The corpus's DNS-SD browse and what it leads to: an instance's SRV and
/// TXT, addresses, and TXT strings that are not text.
fn dnssd_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let service = "_http._tcp.example.com.";
    // An instance name with a space, as DNS-SD allows (RFC 6763 §4.1.1).
    let inst =
        Name::from_labels(["web 1", "_http", "_tcp", "example", "com"].map(str::as_bytes)).unwrap();
    let www = dns_name("www.example.com.");
    vec![
        (
            "dnssd-browse",
            answer(
                dns_name(service),
                RecordType::PTR,
                vec![
                    Record::from_rdata(dns_name(service), 60, RData::PTR(PTR(inst.clone()))),
                    Record::from_rdata(
                        inst.clone(),
                        60,
                        RData::SRV(SRV::new(0, 0, 8080, dns_name("web-1.example.com."))),
                    ),
                    Record::from_rdata(
                        inst.clone(),
                        60,
                        RData::TXT(TXT::new(vec![
                            "path=/api".into(),
                            "Secure".into(),
                            "empty=".into(),
                            "PATH=/other".into(),
                            "note=a\tb\nc".into(),
                        ])),
                    ),
                ],
            ),
        ),
        (
            "addresses",
            answer(
                www.clone(),
                RecordType::A,
                vec![
                    Record::from_rdata(www.clone(), 60, RData::A(A::new(192, 0, 2, 1))),
                    Record::from_rdata(
                        www,
                        60,
                        RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
                    ),
                ],
            ),
        ),
        (
            "txt-binary",
            answer(
                inst.clone(),
                RecordType::TXT,
                vec![Record::from_rdata(
                    inst,
                    60,
                    RData::TXT(TXT::from_bytes(vec![
                        b"k=\xff\xfe\x00v",
                        b"",
                        b"=novalue",
                        b"\x01ctl=1",
                    ])),
                )],
            ),
        ),
    ]
}
