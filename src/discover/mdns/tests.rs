use std::net::{Ipv4Addr, Ipv6Addr};

use clap::Parser as _;
use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::rdata::{A, AAAA, PTR, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::answers::{Heard, Step, step, usable};
use super::wire::{answers, query};
use crate::cli::{Cli, Command};
use crate::discover::Request;
use crate::discover::endpoint::Endpoint;

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn request(args: &[&str]) -> Request {
    let cli = Cli::try_parse_from(["dnsreg", "discover"].iter().chain(args)).unwrap();
    let Command::Discover(d) = cli.command else {
        unreachable!()
    };
    Request::parse(&d).unwrap()
}

fn usage_error(args: &[&str]) -> String {
    let cli = Cli::try_parse_from(["dnsreg", "discover"].iter().chain(args)).unwrap();
    let Command::Discover(d) = cli.command else {
        unreachable!()
    };
    Request::parse(&d).unwrap_err().to_string()
}

/// An instance name from its own label, which may hold spaces and dots.
fn instance(label: &str) -> Name {
    Name::from_labels([label.as_bytes(), b"_http", b"_tcp", b"local"]).unwrap()
}

fn rr(owner: &Name, ttl: u32, data: RData) -> Record {
    Record::from_rdata(owner.clone(), ttl, data)
}

fn ptr(to: &Name) -> Record {
    rr(
        &name("_http._tcp.local."),
        4500,
        RData::PTR(PTR(to.clone())),
    )
}

fn srv(of: &Name, priority: u16, weight: u16, port: u16, target: &str) -> Record {
    rr(
        of,
        120,
        RData::SRV(SRV::new(priority, weight, port, name(target))),
    )
}

fn txt(of: &Name, strings: &[&str]) -> Record {
    rr(
        of,
        4500,
        RData::TXT(TXT::new(strings.iter().map(|s| s.to_string()).collect())),
    )
}

fn a(host: &str, ip: [u8; 4]) -> Record {
    rr(&name(host), 120, RData::A(A(Ipv4Addr::from(ip))))
}

fn heard(records: Vec<Record>) -> Heard {
    let mut h = Heard::default();
    h.add(records);
    h
}

fn done(s: Step) -> Vec<Endpoint> {
    match s {
        Step::Done(e) => e,
        other => panic!("not done: {other:?}"),
    }
}

fn asked(s: Step) -> Vec<(String, RecordType)> {
    match s {
        Step::Ask(q) => q.into_iter().map(|(n, t)| (n.to_string(), t)).collect(),
        other => panic!("asks nothing: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// The packets
// ---------------------------------------------------------------------------

#[test]
fn a_query_is_one_question_without_recursion() {
    let bytes = query(0x1234, &name("_http._tcp.local."), RecordType::PTR);
    let m = Message::from_vec(&bytes).unwrap();
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(m.metadata.message_type, MessageType::Query);
    assert!(!m.metadata.recursion_desired, "RFC 6762 §18.6");
    assert_eq!(m.queries.len(), 1);
    assert_eq!(m.queries[0].name(), &name("_http._tcp.local."));
    assert_eq!(m.queries[0].query_type(), RecordType::PTR);
}

/// A response with id `id` holding `records` in its answer section.
fn response(id: u16, records: Vec<Record>) -> Vec<u8> {
    let mut m = Message::response(id, hickory_proto::op::OpCode::Query);
    m.add_answers(records);
    m.to_vec().unwrap()
}

#[test]
fn answers_are_read_only_for_our_query() {
    let web = instance("web");
    let packet = response(7, vec![ptr(&web), srv(&web, 0, 0, 80, "h.local.")]);
    assert_eq!(answers(&packet, 7).unwrap().len(), 2);
    assert!(answers(&packet, 8).is_none(), "another query's id");
    let q = query(7, &name("_http._tcp.local."), RecordType::PTR);
    assert!(answers(&q, 7).is_none(), "a query is no answer");
    assert!(answers(&packet[..5], 7).is_none(), "a truncated header");
}

#[test]
fn goodbyes_are_left_out() {
    let web = instance("web");
    let mut gone = ptr(&web);
    gone.ttl = 0;
    let packet = response(1, vec![gone, srv(&web, 0, 0, 80, "h.local.")]);
    let records = answers(&packet, 1).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].record_type(), RecordType::SRV);
}

/// The offset of the class field of the record whose data is `rdata`.
fn class_offset(packet: &[u8], rdata: &[u8]) -> usize {
    let at = packet
        .windows(rdata.len())
        .position(|w| w == rdata)
        .unwrap();
    // class (2), TTL (4), RDLENGTH (2) precede the data.
    at - 8
}

#[test]
fn cache_flush_bits_and_unreadable_records_do_not_lose_the_packet() {
    let web = instance("web");
    let host_a = a("h.local.", [10, 53, 53, 1]);
    // An NSEC whose data is garbage (as a parser that forbids compression in
    // NSEC sees python-zeroconf's), between two good records.
    let nsec = Record::from_rdata(
        name("h.local."),
        120,
        RData::Unknown {
            code: RecordType::NSEC,
            rdata: hickory_proto::rr::rdata::NULL::with(vec![0xc0, 0xff, 0x00]),
        },
    );
    let packet = response(3, vec![srv(&web, 1, 2, 80, "h.local."), nsec, host_a]);
    let mut packet = packet;
    // The cache-flush bit (RFC 6762 §10.2) on the A record's class.
    let at = class_offset(&packet, &[10, 53, 53, 1]);
    packet[at] |= 0x80;
    let records = answers(&packet, 3).unwrap();
    let types: Vec<RecordType> = records.iter().map(Record::record_type).collect();
    assert_eq!(types, [RecordType::SRV, RecordType::A]);
    assert_eq!(records[1].data, RData::A(A(Ipv4Addr::new(10, 53, 53, 1))));
}

// ---------------------------------------------------------------------------
// What the records say
// ---------------------------------------------------------------------------

#[test]
fn nothing_heard_asks_what_name_is_then_fails() {
    let r = request(&["_http._tcp.local"]);
    assert_eq!(
        asked(step(&Heard::default(), &r, false)),
        [
            ("_http._tcp.local.".into(), RecordType::SRV),
            ("_http._tcp.local.".into(), RecordType::PTR),
            ("_http._tcp.local.".into(), RecordType::A),
            ("_http._tcp.local.".into(), RecordType::AAAA),
        ]
    );
    match step(&Heard::default(), &r, true) {
        Step::Failed(f) => assert!(f.to_string().contains("no responder answered"), "{f}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn instances_come_in_priority_order_with_their_txt() {
    let (web1, web2) = (instance("web1"), instance("web2"));
    let h = heard(vec![
        ptr(&web2),
        ptr(&web1),
        srv(&web2, 20, 90, 8081, "b.local."),
        srv(&web1, 10, 1, 8080, "a.local."),
        txt(&web1, &["path=/"]),
        txt(&web2, &["v=2"]),
    ]);
    let r = request(&["_http._tcp.local"]);
    for _ in 0..20 {
        let lines: Vec<String> = done(step(&h, &r, false))
            .iter()
            .flat_map(Endpoint::lines)
            .collect();
        assert_eq!(
            lines,
            ["a.local:8080\tweb1\tpath=/", "b.local:8081\tweb2\tv=2"]
        );
    }
}

#[test]
fn a_missing_srv_or_txt_is_asked_for_and_dropped_at_the_last_step() {
    let (web1, web2) = (instance("web1"), instance("web2"));
    let h = heard(vec![
        ptr(&web1),
        ptr(&web2),
        srv(&web1, 0, 0, 8080, "a.local."),
        txt(&web1, &[""]),
    ]);
    let r = request(&["_http._tcp.local"]);
    assert_eq!(
        asked(step(&h, &r, false)),
        [
            ("web2._http._tcp.local.".into(), RecordType::SRV),
            ("web2._http._tcp.local.".into(), RecordType::TXT),
        ]
    );
    let last = done(step(&h, &r, true));
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].instance.as_deref(), Some("web1"));
}

#[test]
fn resolve_asks_for_addresses_and_skips_link_local() {
    let web = instance("web");
    let mut records = vec![ptr(&web), srv(&web, 0, 0, 80, "h.local."), txt(&web, &[""])];
    let r = request(&["_http._tcp.local", "--resolve"]);
    assert_eq!(
        asked(step(&heard(records.clone()), &r, false)),
        [
            ("h.local.".into(), RecordType::A),
            ("h.local.".into(), RecordType::AAAA),
        ]
    );
    records.push(a("h.local.", [10, 53, 53, 9]));
    records.push(rr(
        &name("h.local."),
        120,
        RData::AAAA(AAAA("fe80::1".parse::<Ipv6Addr>().unwrap())),
    ));
    let found = done(step(&heard(records), &r, false));
    assert_eq!(found[0].lines(), ["10.53.53.9:80\tweb"]);
    assert!(!usable(&"fe80::1".parse().unwrap()));
    assert!(usable(&"fd53::1".parse().unwrap()));
}

#[test]
fn srv_at_name_comes_before_ptr_and_a_host_name_gives_addresses() {
    let svc = name("_api._tcp.local.");
    let h = heard(vec![
        srv(&svc, 0, 0, 9000, "x.local."),
        rr(&svc, 4500, RData::PTR(PTR(name("i._api._tcp.local.")))),
    ]);
    let found = done(step(&h, &request(&["_api._tcp.local"]), false));
    assert_eq!(found[0].lines(), ["x.local:9000"]);

    let h = heard(vec![a("x.local.", [10, 0, 0, 1])]);
    let found = done(step(&h, &request(&["x.local", "--port", "80"]), false));
    assert_eq!(found[0].lines(), ["10.0.0.1:80"]);
}

#[test]
fn instance_picks_by_its_unescaped_label_with_spaces_and_dots() {
    let front = instance("Front Door v1.2");
    let side = instance("Side Door");
    // The label is one label: its dot is escaped in the presentation form.
    assert_eq!(
        front.to_string(),
        "Front\\040Door\\040v1\\.2._http._tcp.local."
    );
    let h = heard(vec![
        ptr(&front),
        ptr(&side),
        srv(&front, 0, 0, 8080, "h.local."),
        srv(&side, 0, 0, 8081, "h.local."),
        txt(&front, &[""]),
        txt(&side, &[""]),
    ]);
    let r = request(&["_http._tcp.local", "--instance", "front door V1.2"]);
    let found = done(step(&h, &r, false));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].instance.as_deref(), Some("Front Door v1.2"));
    assert_eq!(found[0].lines(), ["h.local:8080\tFront Door v1.2"]);

    let r = request(&["_http._tcp.local", "--instance", "Front Door"]);
    match step(&h, &r, false) {
        Step::Failed(f) => assert!(
            f.to_string().contains(
                r#"no instance called "Front Door" among "Front Door v1.2", "Side Door""#
            ),
            "{f}"
        ),
        other => panic!("{other:?}"),
    }
    // An SRV rrset at NAME is no instance: with --instance it is passed over.
    let svc = name("_http._tcp.local.");
    let h = heard(vec![srv(&svc, 0, 0, 80, "x.local.")]);
    assert!(matches!(step(&h, &r, false), Step::Failed(_)));
}

// ---------------------------------------------------------------------------
// When multicast DNS is used, and the flags that go with it
// ---------------------------------------------------------------------------

#[test]
fn local_names_and_the_flag_choose_multicast() {
    let r = request(&["_http._tcp.local"]);
    assert!(r.mdns);
    assert_eq!(r.name.to_string(), "_http._tcp.local.");
    let r = request(&["Host.LOCAL."]);
    assert!(r.mdns);
    let r = request(&["--mdns", "_http._tcp"]);
    assert!(r.mdns);
    assert_eq!(r.name.to_string(), "_http._tcp.local.");
    let r = request(&["_http._tcp.example.com"]);
    assert!(!r.mdns);
    // "local" must be the whole last label.
    assert!(!request(&["notlocal"]).mdns);
}

#[test]
fn flags_that_do_not_fit_are_usage_errors() {
    assert!(
        usage_error(&["_http._tcp.local", "--server", "192.0.2.53"])
            .contains("--server asks one DNS server")
    );
    for host_or_srv in ["host.local", "_v1._api._tcp.example.com", "example.com"] {
        assert!(
            usage_error(&[host_or_srv, "--instance", "x"]).contains("--instance picks"),
            "{host_or_srv}"
        );
    }
    assert!(usage_error(&["host.example.com", "--interface", "eth0"]).contains("--interface"));
    // Service types, subtypes included, take --instance, over unicast too.
    for ty in [
        "_http._tcp.local",
        "_ipp._udp.example.com",
        "_printer._sub._http._tcp.local",
    ] {
        assert_eq!(
            request(&[ty, "--instance", "x"]).instance.as_deref(),
            Some("x")
        );
    }
}

// ---------------------------------------------------------------------------
// Whatever a machine on the segment sends
// ---------------------------------------------------------------------------

mod robust {
    use proptest::prelude::*;

    use super::*;

    /// A real-looking answer: PTR, SRV, TXT and A, names compressed.
    fn seed() -> Vec<u8> {
        let web = instance("web 1.x");
        response(
            9,
            vec![
                ptr(&web),
                srv(&web, 1, 2, 8080, "h.local."),
                txt(&web, &["path=/", "tls"]),
                a("h.local.", [10, 53, 53, 1]),
            ],
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Arbitrary bytes with our id: read or refused, never a panic.
        #[test]
        fn any_bytes_are_read_or_refused(mut bytes in prop::collection::vec(any::<u8>(), 0..700)) {
            if bytes.len() >= 3 {
                // Our id, and the response bit, so that the records are read.
                bytes[0] = 0;
                bytes[1] = 9;
                bytes[2] |= 0x80;
            }
            let _ = answers(&bytes, 9);
        }

        /// A real answer with bytes changed or cut: never a panic, and the
        /// records read are only the wanted types.
        #[test]
        fn a_damaged_answer_never_panics(
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut packet = seed();
            for (at, byte) in flips {
                let i = at.index(packet.len());
                if i >= 4 {
                    packet[i] = byte;
                }
            }
            packet.truncate(cut.index(packet.len() + 1).max(1));
            if let Some(records) = answers(&packet, 9) {
                for r in records {
                    prop_assert!(matches!(
                        r.record_type(),
                        RecordType::PTR | RecordType::SRV | RecordType::TXT | RecordType::A | RecordType::AAAA
                    ));
                }
            }
        }
    }

    #[test]
    fn the_seed_reads_whole() {
        assert_eq!(answers(&seed(), 9).unwrap().len(), 4);
    }
}

#[test]
fn answers_are_taken_from_the_local_link_only() {
    use super::socket::{Link, on_link};
    let links = [Link {
        name: "eth0".into(),
        v4: Some(Ipv4Addr::new(10, 53, 53, 2)),
        v6: Some(2),
        nets: vec![
            ("10.53.53.2".parse().unwrap(), 24),
            ("fd53::2".parse().unwrap(), 64),
        ],
    }];
    for ok in ["10.53.53.1", "10.53.53.254", "fd53::1", "fe80::1"] {
        assert!(on_link(&links, ok.parse().unwrap()), "{ok}");
    }
    for off in ["10.53.54.1", "192.0.2.1", "fd54::1", "2001:db8::1"] {
        assert!(!on_link(&links, off.parse().unwrap()), "{off}");
    }
    let host_route = [Link {
        nets: vec![("10.0.0.5".parse().unwrap(), 32)],
        ..links[0].clone()
    }];
    assert!(!on_link(&host_route, "10.0.0.6".parse().unwrap()));
    assert!(on_link(&host_route, "10.0.0.5".parse().unwrap()));
}
