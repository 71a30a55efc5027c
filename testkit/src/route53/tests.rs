//! Unit tests of the Route53 stand-in, spoken to over HTTP as a client would.
//!
//! A tiny blocking HTTP/1.1 client keeps these tests free of the SDKs (those are
//! exercised in `tests/route53_*.rs`) and lets them see exactly what goes over
//! the wire, including a connection closed without an answer.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::xml::{self, Element};
use super::{
    ActionQuotas, ChangeQuota, Fault, Limits, Quota, ROUTE53_ACCOUNT_RATE, Route53Server, RrSet,
    TEST_CREDENTIALS, auth,
};
use crate::serve::probe;

/// A well-formed header with a made-up signature: refused unless a test turns
/// signature checks off (`set_credentials(None)`).
const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/route53/aws4_request, \
    SignedHeaders=host;x-amz-date, Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn doc(&self) -> Element {
        xml::parse(&self.body).unwrap_or_else(|e| panic!("not XML ({e}): {}", self.body))
    }

    /// (Code, Message) of an ErrorResponse.
    fn error(&self) -> (String, String) {
        let doc = self.doc();
        assert_eq!(doc.name, "ErrorResponse", "{}", self.body);
        let error = doc.child("Error").expect("Error element");
        (
            error.text_of("Code").unwrap_or_default(),
            error.text_of("Message").unwrap_or_default(),
        )
    }
}

/// Sends one request with the given extra header lines; `None` when the server
/// closed the connection without answering.
fn raw(
    server: &Route53Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<Reply> {
    let addr = server.url().trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    if bytes.is_empty() {
        return None;
    }
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Some(Reply {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// The date every test request is signed at.
const AMZ_DATE: &str = "20240101T000000Z";

/// `Authorization` and `X-Amz-Date` for a request signed with `keys`, as an
/// SDK signs it. `path` may carry a query string.
fn signed_with(
    server: &Route53Server,
    keys: (&str, &str),
    method: &str,
    path: &str,
    body: &str,
) -> [(&'static str, String); 2] {
    let addr = server.url().trim_start_matches("http://").to_owned();
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("host", addr.parse().unwrap());
    headers.insert("x-amz-date", AMZ_DATE.parse().unwrap());
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let request = auth::Request {
        method,
        path,
        query,
        headers: &headers,
        body: body.as_bytes(),
    };
    [
        (
            "Authorization",
            auth::authorization(&request, AMZ_DATE, keys),
        ),
        ("X-Amz-Date", AMZ_DATE.to_owned()),
    ]
}

/// The same with [`TEST_CREDENTIALS`], which the server checks by default.
fn signed(
    server: &Route53Server,
    method: &str,
    path: &str,
    body: &str,
) -> [(&'static str, String); 2] {
    signed_with(server, TEST_CREDENTIALS, method, path, body)
}

fn refs<'a>(headers: &'a [(&'static str, String); 2]) -> [(&'static str, &'a str); 2] {
    [
        (headers[0].0, headers[0].1.as_str()),
        (headers[1].0, headers[1].1.as_str()),
    ]
}

/// A request signed with [`TEST_CREDENTIALS`].
fn call(server: &Route53Server, method: &str, path: &str, body: &str) -> Reply {
    let headers = signed(server, method, path, body);
    raw(server, method, path, &refs(&headers), body).expect("the server answered")
}

fn get(server: &Route53Server, path: &str) -> Reply {
    call(server, "GET", &format!("/2013-04-01/{path}"), "")
}

fn a(name: &str, values: &[&str]) -> RrSet {
    RrSet::simple(name, "A", 300, values)
}

fn with_id(mut set: RrSet, id: &str, multivalue: bool) -> RrSet {
    set.set_identifier = Some(id.to_owned());
    if multivalue {
        set.multivalue_answer = Some(true);
    } else {
        set.weight = Some(10);
    }
    set
}

fn change_xml(action: &str, set: &RrSet) -> String {
    let mut x = format!(
        "<Change><Action>{action}</Action><ResourceRecordSet><Name>{}</Name><Type>{}</Type>",
        escape(&set.name),
        set.rtype
    );
    if let Some(id) = &set.set_identifier {
        x.push_str(&format!("<SetIdentifier>{}</SetIdentifier>", escape(id)));
    }
    if let Some(w) = set.weight {
        x.push_str(&format!("<Weight>{w}</Weight>"));
    }
    if let Some(m) = set.multivalue_answer {
        x.push_str(&format!("<MultiValueAnswer>{m}</MultiValueAnswer>"));
    }
    x.push_str(&format!("<TTL>{}</TTL><ResourceRecords>", set.ttl));
    for v in &set.records {
        x.push_str(&format!(
            "<ResourceRecord><Value>{}</Value></ResourceRecord>",
            escape(v)
        ));
    }
    x.push_str("</ResourceRecords></ResourceRecordSet></Change>");
    x
}

fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

fn batch_xml(changes: &[(&str, &RrSet)]) -> String {
    let inner: String = changes
        .iter()
        .map(|(action, set)| change_xml(action, set))
        .collect();
    batch_of(&inner)
}

fn batch_of(changes: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ChangeResourceRecordSetsRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
         <ChangeBatch><Comment>test</Comment><Changes>{changes}</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"
    )
}

fn change(server: &Route53Server, zone: &str, changes: &[(&str, &RrSet)]) -> Reply {
    call(
        server,
        "POST",
        &format!("/2013-04-01/hostedzone/{zone}/rrset/"),
        &batch_xml(changes),
    )
}

/// Asserts an InvalidChangeBatch with exactly these messages.
fn assert_invalid(reply: &Reply, messages: &[&str]) {
    assert_eq!(reply.status, 400, "{}", reply.body);
    let (code, message) = reply.error();
    assert_eq!(code, "InvalidChangeBatch");
    assert_eq!(message, format!("[{}]", messages.join(", ")));
}

fn assert_error(reply: &Reply, status: u16, code: &str, message_part: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    let (got_code, message) = reply.error();
    assert_eq!(got_code, code, "{}", reply.body);
    assert!(
        message.contains(message_part),
        "message {message:?} lacks {message_part:?}"
    );
}

fn setup() -> (Route53Server, String) {
    let server = Route53Server::start();
    let zone = server.create_zone("example.com");
    (server, zone)
}

/// Lists every record set through the API, page by page, as a paginator would.
fn list_all(
    server: &Route53Server,
    zone: &str,
    max: usize,
) -> (Vec<(String, String, Option<String>)>, usize) {
    let mut seen = Vec::new();
    let mut query = format!("maxitems={max}");
    let mut pages = 0;
    loop {
        let reply = get(server, &format!("hostedzone/{zone}/rrset?{query}"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        pages += 1;
        assert!(pages < 100, "pagination does not end");
        let doc = reply.doc();
        let sets = doc.child("ResourceRecordSets").unwrap();
        let page: Vec<_> = sets
            .all("ResourceRecordSet")
            .map(|s| {
                (
                    s.text_of("Name").unwrap(),
                    s.text_of("Type").unwrap(),
                    s.text_of("SetIdentifier"),
                )
            })
            .collect();
        assert!(page.len() <= max);
        seen.extend(page);
        if doc.text_of("IsTruncated").unwrap() != "true" {
            assert!(doc.child("NextRecordName").is_none());
            break;
        }
        query = format!(
            "maxitems={max}&name={}&type={}",
            encode(&doc.text_of("NextRecordName").unwrap()),
            doc.text_of("NextRecordType").unwrap()
        );
        if let Some(id) = doc.text_of("NextRecordIdentifier") {
            query.push_str(&format!("&identifier={}", encode(&id)));
        }
    }
    (seen, pages)
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ---------------------------------------------------------------- hosted zones

#[test]
fn create_hosted_zone_answers_201_with_location_soa_and_ns() {
    let server = Route53Server::start();
    let body = "<CreateHostedZoneRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Name>Example.ORG</Name>\
                <CallerReference>ref-1</CallerReference><HostedZoneConfig><Comment>hi</Comment></HostedZoneConfig></CreateHostedZoneRequest>";
    let reply = call(&server, "POST", "/2013-04-01/hostedzone", body);
    assert_eq!(reply.status, 201, "{}", reply.body);
    let doc = reply.doc();
    let zone = doc.child("HostedZone").unwrap();
    let id = zone.text_of("Id").unwrap();
    let bare = id
        .strip_prefix("/hostedzone/")
        .expect("Id starts with /hostedzone/");
    assert!(bare.starts_with('Z') && bare.len() <= 32);
    assert_eq!(zone.text_of("Name").unwrap(), "example.org.");
    assert_eq!(zone.text_of("ResourceRecordSetCount").unwrap(), "2");
    assert_eq!(
        zone.child("Config").unwrap().text_of("Comment").unwrap(),
        "hi"
    );
    assert!(
        reply
            .header("location")
            .unwrap()
            .ends_with(&format!("/2013-04-01/hostedzone/{bare}"))
    );
    let info = doc.child("ChangeInfo").unwrap();
    assert!(info.text_of("Id").unwrap().starts_with("/change/C"));
    assert_eq!(info.text_of("Status").unwrap(), "PENDING");
    let servers: Vec<_> = doc
        .child("DelegationSet")
        .unwrap()
        .child("NameServers")
        .unwrap()
        .all("NameServer")
        .map(|n| n.text.clone())
        .collect();
    assert_eq!(servers.len(), 4);
    assert!(reply.header("x-amzn-requestid").is_some());

    let sets = server.rrsets(bare);
    assert_eq!(
        sets.iter().map(|s| s.rtype.as_str()).collect::<Vec<_>>(),
        ["NS", "SOA"]
    );
    assert_eq!(sets[0].ttl, 172_800);
    assert_eq!(
        sets[0].records,
        servers.iter().map(|s| format!("{s}.")).collect::<Vec<_>>()
    );
    assert!(
        sets[1].records[0].ends_with(". awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400")
    );
    assert_eq!(server.zone_id("EXAMPLE.org.").as_deref(), Some(bare));

    let again = call(&server, "POST", "/2013-04-01/hostedzone", body);
    assert_error(&again, 409, "HostedZoneAlreadyExists", "caller reference");
    let got = get(&server, &format!("hostedzone/{bare}"));
    assert_eq!(got.status, 200);
    assert_eq!(
        got.doc()
            .child("HostedZone")
            .unwrap()
            .text_of("Id")
            .unwrap(),
        id
    );
    assert_error(
        &get(&server, "hostedzone/ZNOTTHERE"),
        404,
        "NoSuchHostedZone",
        "No hosted zone found with ID: ZNOTTHERE",
    );
}

#[test]
fn hosted_zones_by_name_sort_reversed_labels_and_paginate() {
    let server = Route53Server::start();
    for name in [
        "b.example.com",
        "example.com",
        "a.example.org",
        "example-a.com",
        "z.example.com",
    ] {
        server.create_zone(name);
    }
    let names = |reply: &Reply| -> Vec<String> {
        reply
            .doc()
            .child("HostedZones")
            .unwrap()
            .all("HostedZone")
            .map(|z| z.text_of("Name").unwrap())
            .collect()
    };
    let all = get(&server, "hostedzonesbyname");
    // com.example-a. < com.example. < com.example.b. < com.example.z. < org.example.a.
    assert_eq!(
        names(&all),
        [
            "example-a.com.",
            "example.com.",
            "b.example.com.",
            "z.example.com.",
            "a.example.org."
        ]
    );
    assert_eq!(all.doc().text_of("IsTruncated").unwrap(), "false");

    let first = get(&server, "hostedzonesbyname?dnsname=example.com&maxitems=2");
    assert_eq!(names(&first), ["example.com.", "b.example.com."]);
    let doc = first.doc();
    assert_eq!(doc.text_of("IsTruncated").unwrap(), "true");
    assert_eq!(doc.text_of("DNSName").unwrap(), "example.com");
    assert_eq!(doc.text_of("NextDNSName").unwrap(), "z.example.com.");
    let next_id = doc.text_of("NextHostedZoneId").unwrap();
    assert_eq!(Some(next_id.clone()), server.zone_id("z.example.com"));
    let second = get(
        &server,
        &format!("hostedzonesbyname?dnsname=z.example.com.&hostedzoneid={next_id}&maxitems=2"),
    );
    assert_eq!(names(&second), ["z.example.com.", "a.example.org."]);
    assert_eq!(second.doc().text_of("IsTruncated").unwrap(), "false");

    let listed = get(&server, "hostedzone?maxitems=3");
    assert_eq!(names(&listed).len(), 3);
    let marker = listed.doc().text_of("NextMarker").unwrap();
    let rest = get(&server, &format!("hostedzone?marker={marker}"));
    assert_eq!(names(&rest).len(), 2);
    assert_error(
        &get(&server, "hostedzonesbyname?dnsname=a..b"),
        400,
        "InvalidDomainName",
        "DomainLabelEmpty",
    );
}

#[test]
fn delete_hosted_zone_refuses_a_zone_with_records() {
    let (server, zone) = setup();
    server.put_rrset(&zone, a("www.example.com", &["192.0.2.1"]));
    let path = format!("/2013-04-01/hostedzone/{zone}");
    assert_error(
        &call(&server, "DELETE", &path, ""),
        400,
        "HostedZoneNotEmpty",
        "non-required",
    );
    server.remove_rrset(&zone, "WWW.example.com", "A", None);
    let reply = call(&server, "DELETE", &path, "");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.doc().child("ChangeInfo").is_some());
    assert_eq!(server.zone_id("example.com"), None);
}

// ---------------------------------------------------------------- listing

#[test]
fn record_sets_list_in_route53_order() {
    let (server, zone) = setup();
    let sets = [
        a("www.example.com", &["192.0.2.1"]),
        RrSet::simple("www.example.com", "AAAA", 300, &["2001:db8::1"]),
        RrSet::simple("*.example.com", "TXT", 300, &["\"wild\""]),
        a("a-b.example.com", &["192.0.2.2"]),
        a("a.b.example.com", &["192.0.2.3"]),
        a("0.example.com", &["192.0.2.4"]),
        with_id(a("mv.example.com", &["192.0.2.6"]), "b", true),
        with_id(a("mv.example.com", &["192.0.2.5"]), "a", true),
        RrSet::simple("example.com", "TXT", 300, &["\"apex\""]),
    ];
    for set in sets {
        server.put_rrset(&zone, set);
    }
    let order: Vec<(String, String, Option<String>)> = server
        .rrsets(&zone)
        .into_iter()
        .map(|s| (s.name, s.rtype, s.set_identifier))
        .collect();
    let expect =
        |n: &str, t: &str, i: Option<&str>| (n.to_owned(), t.to_owned(), i.map(str::to_owned));
    assert_eq!(
        order,
        [
            // com.example. sorts after com.example-… ('-' < '.') but the apex is first
            // here because every other name in the zone is longer than it.
            expect("example.com.", "NS", None),
            expect("example.com.", "SOA", None),
            expect("example.com.", "TXT", None),
            // '*' (42) < '0' (48) < 'a': raw characters, not the \052 escape, decide.
            expect("\\052.example.com.", "TXT", None),
            expect("0.example.com.", "A", None),
            expect("a-b.example.com.", "A", None),
            expect("a.b.example.com.", "A", None),
            expect("mv.example.com.", "A", Some("a")),
            expect("mv.example.com.", "A", Some("b")),
            expect("www.example.com.", "A", None),
            expect("www.example.com.", "AAAA", None),
        ]
    );
    let (listed, _) = list_all(&server, &zone, 300);
    assert_eq!(listed, order);

    // Start positions: name; name and type; name, type and identifier.
    let first = |query: &str| {
        let reply = get(&server, &format!("hostedzone/{zone}/rrset?{query}"));
        let doc = reply.doc();
        let set = doc
            .child("ResourceRecordSets")
            .unwrap()
            .all("ResourceRecordSet")
            .next()
            .map(|s| {
                (
                    s.text_of("Name").unwrap(),
                    s.text_of("Type").unwrap(),
                    s.text_of("SetIdentifier"),
                )
            });
        set.unwrap()
    };
    assert_eq!(
        first("name=MV.example.com"),
        expect("mv.example.com.", "A", Some("a"))
    );
    assert_eq!(
        first("name=mv.example.com.&type=A&identifier=b"),
        expect("mv.example.com.", "A", Some("b"))
    );
    assert_eq!(
        first("name=www.example.com&type=AAAA"),
        expect("www.example.com.", "AAAA", None)
    );
    assert_eq!(
        first("name=mv.example.com&type=AAAA"),
        expect("www.example.com.", "A", None)
    );
    assert_eq!(
        first("name=nothere.example.com"),
        expect("www.example.com.", "A", None)
    );
    assert_eq!(
        first("name=*.example.com"),
        expect("\\052.example.com.", "TXT", None)
    );
}

#[test]
fn pagination_crosses_300_item_pages_including_set_identifier_runs() {
    let (server, zone) = setup();
    // 350 multivalue record sets at one name and type: a single run longer than a
    // page, so pages must break inside it (NextRecordIdentifier) without looping.
    for i in 0..350 {
        server.put_rrset(
            &zone,
            with_id(
                a(
                    "svc.example.com",
                    &[&format!("10.0.{}.{}", i / 250, i % 250)],
                ),
                &format!("i-{i:04}"),
                true,
            ),
        );
    }
    for i in 0..260 {
        server.put_rrset(
            &zone,
            a(&format!("host-{i:03}.example.com"), &["192.0.2.1"]),
        );
    }
    let expected: Vec<_> = server
        .rrsets(&zone)
        .into_iter()
        .map(|s| (s.name, s.rtype, s.set_identifier))
        .collect();
    assert_eq!(expected.len(), 612);
    let (listed, pages) = list_all(&server, &zone, 300);
    assert_eq!(pages, 3);
    assert_eq!(listed, expected);
    let (listed, pages) = list_all(&server, &zone, 7);
    assert_eq!(pages, 88);
    assert_eq!(listed, expected);

    // The default page is 300 and larger requests are cut to 300.
    for query in ["", "?maxitems=1000"] {
        let doc = get(&server, &format!("hostedzone/{zone}/rrset{query}")).doc();
        assert_eq!(
            doc.child("ResourceRecordSets")
                .unwrap()
                .all("ResourceRecordSet")
                .count(),
            300
        );
        assert_eq!(doc.text_of("IsTruncated").unwrap(), "true");
    }
    let doc = get(&server, &format!("hostedzone/{zone}/rrset?maxitems=1")).doc();
    assert_eq!(doc.text_of("MaxItems").unwrap(), "1");
}

#[test]
fn listing_with_a_type_but_no_name_is_invalid_input() {
    let (server, zone) = setup();
    assert_error(
        &get(&server, &format!("hostedzone/{zone}/rrset?type=A")),
        400,
        "InvalidInput",
        "",
    );
    assert_error(
        &get(
            &server,
            &format!("hostedzone/{zone}/rrset?name=a.example.com&identifier=x"),
        ),
        400,
        "InvalidInput",
        "",
    );
    assert_error(
        &get(
            &server,
            &format!("hostedzone/{zone}/rrset?name=a.example.com&type=BOGUS"),
        ),
        400,
        "InvalidInput",
        "enum value set",
    );
    assert_error(
        &get(&server, &format!("hostedzone/{zone}/rrset?maxitems=0")),
        400,
        "InvalidInput",
        "maxItems",
    );
    assert_error(
        &get(&server, "hostedzone/ZMISSING/rrset"),
        404,
        "NoSuchHostedZone",
        "ZMISSING",
    );
}

// ---------------------------------------------------------------- change batches

#[test]
fn create_then_conflicting_create_and_exact_delete() {
    let (server, zone) = setup();
    let www = a("www.example.com", &["192.0.2.1", "192.0.2.2"]);
    let reply = change(&server, &zone, &[("CREATE", &www)]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let info = reply
        .doc()
        .child("ChangeInfo")
        .unwrap()
        .text_of("Id")
        .unwrap();
    assert!(info.starts_with("/change/C"));
    assert_eq!(
        server.values(&zone, "WWW.EXAMPLE.COM", "A"),
        ["192.0.2.1", "192.0.2.2"]
    );

    let other = a("www.example.com.", &["192.0.2.9"]);
    assert_invalid(
        &change(&server, &zone, &[("CREATE", &other)]),
        &[
            "Tried to create resource record set [name='www.example.com.', type='A'] but it already exists",
        ],
    );
    // DELETE must name the current values and TTL exactly (order does not matter).
    let stale = a("www.example.com", &["192.0.2.1"]);
    assert_invalid(
        &change(&server, &zone, &[("DELETE", &stale)]),
        &[
            "Tried to delete resource record set [name='www.example.com.', type='A'] but the values provided do not match the current values",
        ],
    );
    let other_ttl = RrSet {
        ttl: 60,
        ..www.clone()
    };
    assert_invalid(
        &change(&server, &zone, &[("DELETE", &other_ttl)]),
        &[
            "Tried to delete resource record set [name='www.example.com.', type='A'] but the values provided do not match the current values",
        ],
    );
    let missing = a("nope.example.com", &["192.0.2.1"]);
    assert_invalid(
        &change(&server, &zone, &[("DELETE", &missing)]),
        &[
            "Tried to delete resource record set [name='nope.example.com.', type='A'] but it was not found",
        ],
    );
    let reordered = a("www.example.com", &["192.0.2.2", "192.0.2.1"]);
    assert_eq!(
        change(&server, &zone, &[("DELETE", &reordered)]).status,
        200
    );
    assert!(server.values(&zone, "www.example.com", "A").is_empty());
    let second_ids_differ = change(&server, &zone, &[("CREATE", &www)])
        .doc()
        .child("ChangeInfo")
        .unwrap()
        .text_of("Id")
        .unwrap();
    assert_ne!(second_ids_differ, info);
}

#[test]
fn delete_and_create_in_one_batch_swaps_a_shared_rrset() {
    let (server, zone) = setup();
    let before = a("www.example.com", &["192.0.2.1"]);
    server.put_rrset(&zone, before.clone());
    let after = a("www.example.com", &["192.0.2.1", "192.0.2.2"]);
    let reply = change(&server, &zone, &[("DELETE", &before), ("CREATE", &after)]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        server.values(&zone, "www.example.com", "A"),
        ["192.0.2.1", "192.0.2.2"]
    );
    // The same swap again is stale now: the whole batch fails, nothing changes.
    let again = change(&server, &zone, &[("DELETE", &before), ("CREATE", &after)]);
    assert_invalid(
        &again,
        &[
            "Tried to delete resource record set [name='www.example.com.', type='A'] but the values provided do not match the current values",
            "Tried to create resource record set [name='www.example.com.', type='A'] but it already exists",
        ],
    );
    assert_eq!(
        server.values(&zone, "www.example.com", "A"),
        ["192.0.2.1", "192.0.2.2"]
    );
    // Deleting one record set twice in one batch fails.
    assert_invalid(
        &change(&server, &zone, &[("DELETE", &after), ("DELETE", &after)]),
        &[
            "Tried to delete resource record set [name='www.example.com.', type='A'] but it was not found",
        ],
    );
}

#[test]
fn a_batch_whose_third_change_fails_leaves_the_zone_unchanged() {
    let (server, zone) = setup();
    server.put_rrset(&zone, a("old.example.com", &["192.0.2.1"]));
    let snapshot = server.rrsets(&zone);
    let one = a("one.example.com", &["192.0.2.1"]);
    let old = a("old.example.com", &["192.0.2.1"]);
    let bad = a("two.example.com", &["192.0.2.300"]);
    let reply = change(
        &server,
        &zone,
        &[("CREATE", &one), ("DELETE", &old), ("CREATE", &bad)],
    );
    assert_invalid(
        &reply,
        &[
            "Invalid Resource Record: FATAL problem: ARRDATAIllegalIPv4Address (Value is not a valid IPv4 address) encountered with '192.0.2.300'",
        ],
    );
    assert_eq!(server.rrsets(&zone), snapshot);
    assert_eq!(server.stats().applied_batches, 0);
    assert_eq!(server.stats().invalid_change_batch, 1);
}

#[test]
fn upsert_creates_or_replaces() {
    let (server, zone) = setup();
    let first = a("up.example.com", &["192.0.2.1"]);
    assert_eq!(change(&server, &zone, &[("UPSERT", &first)]).status, 200);
    let second = RrSet {
        ttl: 60,
        ..a("up.example.com", &["192.0.2.7"])
    };
    assert_eq!(change(&server, &zone, &[("UPSERT", &second)]).status, 200);
    let sets: Vec<_> = server
        .rrsets(&zone)
        .into_iter()
        .filter(|s| s.name == "up.example.com.")
        .collect();
    assert_eq!(
        sets,
        [RrSet {
            name: "up.example.com.".to_owned(),
            ..second
        }]
    );
}

#[test]
fn values_are_validated_with_route53_messages() {
    let (server, zone) = setup();
    let cases: Vec<(RrSet, &str)> = vec![
        (
            a("v.example.com", &["1.2.3"]),
            "Invalid Resource Record: FATAL problem: ARRDATAIllegalIPv4Address (Value is not a valid IPv4 address) encountered with '1.2.3'",
        ),
        (
            a("v.example.com", &["1.2.3.4 5.6.7.8"]),
            "Invalid Resource Record: FATAL problem: ARRDATANotSingleField (Value contains spaces) encountered with '1.2.3.4 5.6.7.8'",
        ),
        (
            RrSet::simple("v.example.com", "AAAA", 300, &["2001:db8::g"]),
            "Invalid Resource Record: FATAL problem: AAAARRDATAIllegalIPv6Address (Value is not a valid IPv6 address) encountered with '2001:db8::g'",
        ),
        (
            RrSet::simple("_s._tcp.example.com", "SRV", 300, &["0 0 80"]),
            "Invalid Resource Record: FATAL problem: SRVRRDATANotFourFields (SRV record doesn't have 4 fields) encountered with '0 0 80'",
        ),
        (
            RrSet::simple(
                "_s._tcp.example.com",
                "SRV",
                300,
                &["0 0 70000 t.example.com"],
            ),
            "SRVRRDATAIllegalPort",
        ),
        (
            RrSet::simple("t.example.com", "TXT", 300, &["unquoted"]),
            "Invalid Resource Record: FATAL problem: InvalidCharacterString (Value should be enclosed in quotation marks) encountered with 'unquoted'",
        ),
        (
            RrSet::simple(
                "t.example.com",
                "TXT",
                300,
                &[&format!("\"{}\"", "x".repeat(256))],
            ),
            "CharacterStringTooLong (Value is too long)",
        ),
        (
            RrSet::simple("c.example.com", "CNAME", 300, &["bad..target"]),
            "Invalid Resource Record: FATAL problem: DomainLabelEmpty (Domain label is empty) encountered with 'bad..target'",
        ),
        (
            RrSet::simple("p.example.com", "PTR", 300, &["a b"]),
            "PTRRRDATANotSingleField",
        ),
        (
            a("d.example.com", &["192.0.2.1", "192.0.2.1"]),
            "Duplicate Resource Record: '192.0.2.1'",
        ),
        (
            a("outside.example.org", &["192.0.2.1"]),
            "RRSet with DNS name outside.example.org. is not permitted in zone example.com.",
        ),
        (
            a("notexample.com", &["192.0.2.1"]),
            "RRSet with DNS name notexample.com. is not permitted in zone example.com.",
        ),
        (
            a(&format!("{}.example.com", "l".repeat(64)), &["192.0.2.1"]),
            "FATAL problem: DomainLabelTooLong (Domain label is too long) encountered with 'llll",
        ),
        (
            a("x..example.com", &["192.0.2.1"]),
            "FATAL problem: DomainLabelEmpty (Domain label is empty) encountered with 'x..example.com'",
        ),
    ];
    for (set, expected) in cases {
        let reply = change(&server, &zone, &[("CREATE", &set)]);
        assert_error(&reply, 400, "InvalidChangeBatch", expected);
    }
    // Valid values of each kind, and a long TXT split in strings.
    let good = [
        RrSet::simple(
            "_svc._tcp.example.com",
            "SRV",
            60,
            &["0 5 8080 web-1.example.com.", "10 0 8080 web-2.example.com"],
        ),
        RrSet::simple(
            "t.example.com",
            "TXT",
            60,
            &[
                &format!("\"{}\" \"{}\"", "x".repeat(255), "y".repeat(10)),
                "\"with \\\"quotes\\\"\"",
            ],
        ),
        RrSet::simple("c.example.com", "CNAME", 60, &["target.example.net"]),
        RrSet::simple("6.example.com", "AAAA", 60, &["2001:db8::1"]),
        RrSet::simple(
            "_http._tcp.example.com",
            "PTR",
            60,
            &["web-1._http._tcp.example.com."],
        ),
    ];
    for set in &good {
        let reply = change(&server, &zone, &[("CREATE", set)]);
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
}

#[test]
fn names_are_normalised_and_wildcards_escaped() {
    let (server, zone) = setup();
    let wild = RrSet::simple("*.Example.COM", "A", 300, &["192.0.2.1"]);
    assert_eq!(change(&server, &zone, &[("CREATE", &wild)]).status, 200);
    let listed = get(
        &server,
        &format!("hostedzone/{zone}/rrset?name=%2A.example.com"),
    )
    .doc();
    let set = listed
        .child("ResourceRecordSets")
        .unwrap()
        .all("ResourceRecordSet")
        .next()
        .unwrap();
    assert_eq!(set.text_of("Name").unwrap(), "\\052.example.com.");
    assert_eq!(server.values(&zone, "*.example.com", "A"), ["192.0.2.1"]);
    // Deleting it by its escaped name matches the same record set.
    let escaped = RrSet::simple("\\052.example.com.", "A", 300, &["192.0.2.1"]);
    assert_eq!(change(&server, &zone, &[("DELETE", &escaped)]).status, 200);
    assert!(server.values(&zone, "*.example.com", "A").is_empty());
}

#[test]
fn shape_errors_are_invalid_input() {
    let (server, zone) = setup();
    let path = format!("/2013-04-01/hostedzone/{zone}/rrset");
    let post = |changes: &str| call(&server, "POST", &path, &batch_of(changes));
    assert_error(
        &post(""),
        400,
        "InvalidInput",
        "Member must have length greater than or equal to 1",
    );
    let no_ttl = "<Change><Action>CREATE</Action><ResourceRecordSet><Name>a.example.com</Name><Type>A</Type>\
                  <ResourceRecords><ResourceRecord><Value>192.0.2.1</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></Change>";
    assert_error(
        &post(no_ttl),
        400,
        "InvalidInput",
        "Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found none in Change with [Action=CREATE, Name=a.example.com, Type=A, SetIdentifier=null]",
    );
    let big_ttl = RrSet {
        ttl: u32::MAX,
        ..a("a.example.com", &["192.0.2.1"])
    };
    assert_error(
        &post(&change_xml("CREATE", &big_ttl)),
        400,
        "InvalidInput",
        "Member must have value less than or equal to 2147483647",
    );
    let negative = change_xml("CREATE", &a("a.example.com", &["192.0.2.1"]))
        .replace("<TTL>300</TTL>", "<TTL>-1</TTL>");
    assert_error(
        &post(&negative),
        400,
        "InvalidInput",
        "greater than or equal to 0",
    );
    let bad_type = change_xml("CREATE", &a("a.example.com", &["192.0.2.1"]))
        .replace("<Type>A</Type>", "<Type>AX</Type>");
    assert_error(
        &post(&bad_type),
        400,
        "InvalidInput",
        "Member must satisfy enum value set",
    );
    let bad_action = change_xml("REPLACE", &a("a.example.com", &["192.0.2.1"]));
    assert_error(
        &post(&bad_action),
        400,
        "InvalidInput",
        "[CREATE, DELETE, UPSERT]",
    );
    let alias = "<Change><Action>CREATE</Action><ResourceRecordSet><Name>a.example.com</Name><Type>A</Type>\
                 <AliasTarget><HostedZoneId>Z1</HostedZoneId><DNSName>b.example.com</DNSName><EvaluateTargetHealth>false</EvaluateTargetHealth></AliasTarget></ResourceRecordSet></Change>";
    assert_error(
        &post(alias),
        400,
        "InvalidInput",
        "AliasTarget is not supported by the testkit Route53 stand-in",
    );
    assert_error(
        &call(
            &server,
            "POST",
            &path,
            "<ChangeResourceRecordSetsRequest><ChangeBatch>",
        ),
        400,
        "MalformedInput",
        "",
    );
    assert_error(
        &call(
            &server,
            "POST",
            "/2013-04-01/hostedzone/ZNOPE/rrset",
            &batch_xml(&[("CREATE", &a("a.example.com", &["192.0.2.1"]))]),
        ),
        404,
        "NoSuchHostedZone",
        "ZNOPE",
    );
}

#[test]
fn batch_limits_count_records_and_characters() {
    let (server, zone) = setup();
    let values: Vec<String> = (0..=1000)
        .map(|i| format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256))
        .collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let big = a("big.example.com", &refs);
    assert_invalid(
        &change(&server, &zone, &[("CREATE", &big)]),
        &["Number of records limit of 1000 exceeded."],
    );
    // 500 values fit in a CREATE, but an UPSERT counts each twice.
    let half = a("big.example.com", &refs[..501]);
    assert_invalid(
        &change(&server, &zone, &[("UPSERT", &half)]),
        &["Number of records limit of 1000 exceeded."],
    );
    assert_eq!(change(&server, &zone, &[("CREATE", &half)]).status, 200);
    let long: Vec<String> = (0..130)
        .map(|i| format!("\"{i:03}{}\"", "x".repeat(250)))
        .collect();
    let refs: Vec<&str> = long.iter().map(String::as_str).collect();
    let txt = RrSet::simple("long.example.com", "TXT", 300, &refs);
    assert_invalid(
        &change(&server, &zone, &[("CREATE", &txt)]),
        &["RDATA character limit of 32000 exceeded."],
    );
}

// ---------------------------------------------------------------- routing rules

#[test]
fn set_identifier_and_routing_policy_rules() {
    let (server, zone) = setup();
    let path = format!("/2013-04-01/hostedzone/{zone}/rrset");
    // MultiValueAnswer without SetIdentifier, SetIdentifier without a policy, both policies.
    let mut no_id = a("m.example.com", &["192.0.2.1"]);
    no_id.multivalue_answer = Some(true);
    assert_error(
        &change(&server, &zone, &[("CREATE", &no_id)]),
        400,
        "InvalidInput",
        "Invalid request: Missing field 'SetIdentifier' in Change with [Action=CREATE, Name=m.example.com, Type=A, SetIdentifier=null]",
    );
    let mut no_policy = a("m.example.com", &["192.0.2.1"]);
    no_policy.set_identifier = Some("i-1".to_owned());
    assert_error(
        &change(&server, &zone, &[("CREATE", &no_policy)]),
        400,
        "InvalidInput",
        "but found none in Change with [Action=CREATE, Name=m.example.com, Type=A, SetIdentifier=i-1]",
    );
    let mut both = with_id(a("m.example.com", &["192.0.2.1"]), "i-1", true);
    both.weight = Some(1);
    assert_error(
        &change(&server, &zone, &[("CREATE", &both)]),
        400,
        "InvalidInput",
        "but found more than one",
    );
    let _ = path;

    // A simple record set cannot live beside ones with SetIdentifier, and back.
    let simple = a("mix.example.com", &["192.0.2.1"]);
    let member = with_id(a("mix.example.com", &["192.0.2.2"]), "i-2", true);
    assert_eq!(change(&server, &zone, &[("CREATE", &simple)]).status, 200);
    assert_invalid(
        &change(&server, &zone, &[("CREATE", &member)]),
        &[
            "RRSet with DNS name mix.example.com., type A, SetIdentifier i-2 cannot be created as a non-weighted set exists with the same name and type.",
        ],
    );
    assert_eq!(
        change(&server, &zone, &[("DELETE", &simple), ("CREATE", &member)]).status,
        200
    );
    assert_invalid(
        &change(&server, &zone, &[("CREATE", &simple)]),
        &[
            "RRSet with DNS name mix.example.com., type A cannot be created as other RRSets exist with the same name and type.",
        ],
    );
    // All members at one name and type use the same policy.
    let weighted = with_id(a("mix.example.com", &["192.0.2.3"]), "i-3", false);
    assert_error(
        &change(&server, &zone, &[("CREATE", &weighted)]),
        400,
        "InvalidChangeBatch",
        "different routing policy",
    );
    // Many multivalue members coexist; each is its own record set.
    let member2 = with_id(a("mix.example.com", &["192.0.2.4"]), "i-4", true);
    assert_eq!(change(&server, &zone, &[("CREATE", &member2)]).status, 200);
    assert_invalid(
        &change(&server, &zone, &[("CREATE", &member2)]),
        &[
            "Tried to create resource record set [name='mix.example.com.', type='A', set-identifier='i-4'] but it already exists",
        ],
    );
    assert_eq!(
        server.values(&zone, "mix.example.com", "A"),
        ["192.0.2.2", "192.0.2.4"]
    );
    // Multivalue answer is not for CNAME or NS.
    let cname = with_id(
        RrSet::simple("mc.example.com", "CNAME", 300, &["t.example.net"]),
        "i-1",
        true,
    );
    assert_error(
        &change(&server, &zone, &[("CREATE", &cname)]),
        400,
        "InvalidChangeBatch",
        "cannot use multivalue answer routing",
    );
    let srv = with_id(
        RrSet::simple("_s._tcp.example.com", "SRV", 300, &["0 0 80 a.example.com"]),
        "i-1",
        true,
    );
    assert_eq!(change(&server, &zone, &[("CREATE", &srv)]).status, 200);
}

#[test]
fn cname_is_exclusive_and_not_at_the_apex() {
    let (server, zone) = setup();
    let cname = RrSet::simple("c.example.com", "CNAME", 300, &["target.example.net"]);
    assert_invalid(
        &change(
            &server,
            &zone,
            &[(
                "CREATE",
                &RrSet::simple("example.com", "CNAME", 300, &["target.example.net"]),
            )],
        ),
        &[
            "RRSet of type CNAME with DNS name example.com. is not permitted at apex in zone example.com.",
        ],
    );
    assert_eq!(change(&server, &zone, &[("CREATE", &cname)]).status, 200);
    assert_invalid(
        &change(
            &server,
            &zone,
            &[("CREATE", &a("c.example.com", &["192.0.2.1"]))],
        ),
        &[
            "RRSet of type A with DNS name c.example.com. is not permitted because a conflicting RRSet of type  CNAME with the same DNS name already exists in zone example.com.",
        ],
    );
    server.put_rrset(
        &zone,
        RrSet::simple("t.example.com", "TXT", 300, &["\"x\""]),
    );
    assert_invalid(
        &change(
            &server,
            &zone,
            &[(
                "CREATE",
                &RrSet::simple("t.example.com", "CNAME", 300, &["target.example.net"]),
            )],
        ),
        &[
            "RRSet of type CNAME with DNS name t.example.com. is not permitted as it conflicts with other records with the same DNS name in zone example.com.",
        ],
    );
    let two = RrSet::simple(
        "c2.example.com",
        "CNAME",
        300,
        &["a.example.net", "b.example.net"],
    );
    assert_error(
        &change(&server, &zone, &[("CREATE", &two)]),
        400,
        "InvalidChangeBatch",
        "can have only one value",
    );
}

#[test]
fn apex_soa_and_ns_are_protected() {
    let (server, zone) = setup();
    let sets = server.rrsets(&zone);
    let ns = sets.iter().find(|s| s.rtype == "NS").unwrap().clone();
    let soa = sets.iter().find(|s| s.rtype == "SOA").unwrap().clone();
    assert_invalid(
        &change(&server, &zone, &[("DELETE", &soa)]),
        &["A HostedZone must contain exactly one SOA record."],
    );
    assert_invalid(
        &change(&server, &zone, &[("DELETE", &ns)]),
        &["A HostedZone must contain at least one NS record for the zone itself."],
    );
    assert_invalid(
        &change(&server, &zone, &[("CREATE", &soa)]),
        &[
            "Tried to create resource record set [name='example.com.', type='SOA'] but it already exists",
        ],
    );
    // They can be changed, and a delegation below the apex is an ordinary NS.
    let new_ns = RrSet {
        ttl: 3600,
        ..ns.clone()
    };
    assert_eq!(change(&server, &zone, &[("UPSERT", &new_ns)]).status, 200);
    let sub = RrSet::simple("sub.example.com", "NS", 300, &["ns1.example.net"]);
    assert_eq!(change(&server, &zone, &[("CREATE", &sub)]).status, 200);
    assert_eq!(change(&server, &zone, &[("DELETE", &sub)]).status, 200);
    let stray_soa = RrSet::simple("sub.example.com", "SOA", 300, &[&soa.records[0]]);
    assert_error(
        &change(&server, &zone, &[("CREATE", &stray_soa)]),
        400,
        "InvalidChangeBatch",
        "only allowed at the apex",
    );
}

// ---------------------------------------------------------------- protocol

#[test]
fn signature_header_is_required_and_checked() {
    let (server, zone) = setup();
    // The header's shape alone: made-up signatures are let through here.
    server.set_credentials(None);
    let path = format!("/2013-04-01/hostedzone/{zone}");
    let with = |headers: &[(&str, &str)]| raw(&server, "GET", &path, headers, "").unwrap();
    assert_error(
        &with(&[]),
        403,
        "MissingAuthenticationToken",
        "Missing Authentication Token",
    );
    assert_error(
        &with(&[
            ("Authorization", "Bearer abc"),
            ("X-Amz-Date", "20240101T000000Z"),
        ]),
        403,
        "IncompleteSignature",
        "Unsupported AWS 'algorithm'",
    );
    assert_error(
        &with(&[
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/route53/aws4_request",
            ),
            ("X-Amz-Date", "20240101T000000Z"),
        ]),
        403,
        "IncompleteSignature",
        "Authorization header requires 'Signature' parameter.",
    );
    assert_error(
        &with(&[("Authorization", AUTH)]),
        403,
        "IncompleteSignature",
        "'X-Amz-Date' or a 'Date' header",
    );
    assert_error(
        &with(&[("Authorization", AUTH), ("X-Amz-Date", "2024-01-01")]),
        403,
        "IncompleteSignature",
        "ISO-8601 'basic format'",
    );
    let wrong_service = AUTH.replace("/route53/", "/s3/");
    assert_error(
        &with(&[
            ("Authorization", &wrong_service),
            ("X-Amz-Date", "20240101T000000Z"),
        ]),
        403,
        "SignatureDoesNotMatch",
        "correct service: 'route53'",
    );
    assert_error(
        &with(&[("Authorization", AUTH), ("X-Amz-Date", "20240102T000000Z")]),
        403,
        "SignatureDoesNotMatch",
        "Date in Credential scope does not match",
    );
    let ok = with(&[("Authorization", AUTH), ("X-Amz-Date", "20240101T000000Z")]);
    assert_eq!(ok.status, 200, "{}", ok.body);
    // Unknown paths and methods get an AWS error, not a framework default.
    assert_error(
        &call(&server, "GET", "/2013-04-01/nothing", ""),
        400,
        "InvalidAction",
        "",
    );
    assert_error(&call(&server, "PUT", &path, ""), 400, "InvalidAction", "");
    assert_error(&call(&server, "GET", "/", ""), 400, "InvalidAction", "");
}

#[test]
fn signatures_are_verified_with_the_test_key_pair_by_default() {
    let (server, zone) = setup();
    let path = format!("/2013-04-01/hostedzone/{zone}");
    let send = |headers: &[(&'static str, String); 2]| {
        raw(&server, "GET", &path, &refs(headers), "").unwrap()
    };
    assert_eq!(send(&signed(&server, "GET", &path, "")).status, 200);
    // AUTH carries a made-up signature: well-formed, but not this key pair's.
    let made_up = raw(
        &server,
        "GET",
        &path,
        &[("Authorization", AUTH), ("X-Amz-Date", AMZ_DATE)],
        "",
    )
    .unwrap();
    assert_error(
        &made_up,
        403,
        "InvalidClientTokenId",
        "security token included in the request is invalid",
    );
    let wrong_secret = signed_with(&server, ("test", "not-the-secret"), "GET", &path, "");
    assert_error(
        &send(&wrong_secret),
        403,
        "SignatureDoesNotMatch",
        "does not match the signature you provided",
    );
    // Signed for another body than the one sent.
    let other_body = signed(&server, "GET", &path, "x");
    assert_error(&send(&other_body), 403, "SignatureDoesNotMatch", "");
    // Another key pair, once set.
    server.set_credentials(Some(("AKIDEXAMPLE", "secret")));
    assert_error(
        &send(&signed(&server, "GET", &path, "")),
        403,
        "InvalidClientTokenId",
        "",
    );
    let theirs = signed_with(&server, ("AKIDEXAMPLE", "secret"), "GET", &path, "");
    assert_eq!(send(&theirs).status, 200);
    // Checks off, as a test asks explicitly: any well-formed header.
    server.set_credentials(None);
    let made_up = raw(
        &server,
        "GET",
        &path,
        &[("Authorization", AUTH), ("X-Amz-Date", AMZ_DATE)],
        "",
    )
    .unwrap();
    assert_eq!(made_up.status, 200);
    // Refused signatures are counted as requests, and use no fault up.
    server.set_credentials(Some(TEST_CREDENTIALS));
    server.fail_next(1, Fault::InternalError);
    assert_error(&send(&wrong_secret), 403, "SignatureDoesNotMatch", "");
    assert_eq!(server.pending_faults(), 1);
}

#[test]
fn error_responses_have_the_rest_xml_shape() {
    let (server, zone) = setup();
    let reply = change(
        &server,
        &zone,
        &[("DELETE", &a("x.example.com", &["192.0.2.1"]))],
    );
    assert_eq!(reply.header("content-type"), Some("text/xml"));
    let request_id = reply.header("x-amzn-requestid").unwrap().to_owned();
    let doc = reply.doc();
    assert_eq!(doc.name, "ErrorResponse");
    let error = doc.child("Error").unwrap();
    assert_eq!(error.text_of("Type").unwrap(), "Sender");
    assert_eq!(error.text_of("Code").unwrap(), "InvalidChangeBatch");
    assert_eq!(doc.text_of("RequestId").unwrap(), request_id);
    assert!(
        reply
            .body
            .contains("xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"")
    );
}

#[test]
fn get_change_is_pending_then_insync() {
    let (server, zone) = setup();
    server.set_insync_after(Duration::from_secs(1));
    let started = Instant::now();
    let reply = change(
        &server,
        &zone,
        &[("CREATE", &a("w.example.com", &["192.0.2.1"]))],
    );
    let info = reply
        .doc()
        .child("ChangeInfo")
        .unwrap()
        .text_of("Id")
        .unwrap();
    let submitted = reply
        .doc()
        .child("ChangeInfo")
        .unwrap()
        .text_of("SubmittedAt")
        .unwrap();
    assert!(
        submitted.len() == 24 && submitted.ends_with('Z') && submitted.as_bytes()[10] == b'T',
        "{submitted}"
    );
    let bare = info.trim_start_matches("/change/").to_owned();
    let status = || {
        get(&server, &format!("change/{bare}"))
            .doc()
            .child("ChangeInfo")
            .unwrap()
            .text_of("Status")
            .unwrap()
    };
    let first = status();
    if started.elapsed() < Duration::from_millis(900) {
        assert_eq!(first, "PENDING");
    }
    while started.elapsed() < Duration::from_millis(1050) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status(), "INSYNC");
    let doc = get(&server, &format!("change/{bare}")).doc();
    assert_eq!(
        doc.child("ChangeInfo").unwrap().text_of("Comment").unwrap(),
        "test"
    );
    // The delay is read when asked: a long one turns INSYNC back into PENDING.
    server.set_insync_after(Duration::from_secs(3600));
    assert_eq!(status(), "PENDING");
    server.set_insync_after(Duration::ZERO);
    assert_eq!(status(), "INSYNC");
    // The answer that submits a change says PENDING even with no delay, as Route53's does.
    let again = change(
        &server,
        &zone,
        &[("CREATE", &a("w2.example.com", &["192.0.2.1"]))],
    );
    assert_eq!(
        again
            .doc()
            .child("ChangeInfo")
            .unwrap()
            .text_of("Status")
            .unwrap(),
        "PENDING"
    );
    assert_error(
        &get(&server, "change/CNOSUCHCHANGE"),
        404,
        "NoSuchChange",
        "CNOSUCHCHANGE",
    );
}

#[test]
fn the_account_rate_limit_throttles_with_rate_exceeded() {
    assert!((ROUTE53_ACCOUNT_RATE - 5.0).abs() < f64::EPSILON);
    let (server, zone) = setup();
    server.set_rate_limit(Some(ROUTE53_ACCOUNT_RATE));
    let path = format!("hostedzone/{zone}");
    let started = Instant::now();
    let mut replies: Vec<Reply> = Vec::new();
    while replies.len() < 100 && replies.last().is_none_or(|r| r.status == 200) {
        replies.push(get(&server, &path));
    }
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    // Five tokens to start with, one more every 200 ms.
    let refilled = (started.elapsed().as_secs_f64() * ROUTE53_ACCOUNT_RATE).floor() as usize;
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert!((5..=5 + refilled).contains(&passed), "{statuses:?}");
    assert_eq!(&statuses[..5], &[200; 5]);
    assert_error(replies.last().unwrap(), 400, "Throttling", "Rate exceeded");
    assert_eq!(server.stats().throttled, 1);
    assert_eq!(
        server.stats().throttled_by_action,
        [("GetHostedZone".to_owned(), 1)].into()
    );
    std::thread::sleep(Duration::from_millis(450));
    assert_eq!(get(&server, &path).status, 200, "two tokens came back");
    server.set_rate_limit(None);
    assert!((0..20).all(|_| get(&server, &path).status == 200));
}

#[test]
fn the_documented_quotas() {
    assert_eq!(
        Quota::CURRENT,
        Quota {
            rate: 10.0,
            burst: 50.0
        }
    );
    // The legacy quota is what set_rate_limit(Some(5.0)) always installed.
    assert_eq!(Quota::LEGACY, Quota::per_second(ROUTE53_ACCOUNT_RATE));
    assert_eq!(Quota::per_second(0.5).burst, 1.0);
    let current = ActionQuotas::current();
    assert_eq!(current.quota("ListResourceRecordSets"), Quota::CURRENT);
    assert_eq!(current.quota("ChangeResourceRecordSets"), Quota::CURRENT);
    assert_eq!(
        current.quota("CreateHostedZone"),
        Quota {
            rate: 2.0,
            burst: 40.0
        }
    );
    assert_eq!(
        current.quota("DeleteHostedZone"),
        Quota {
            rate: 5.0,
            burst: 40.0
        }
    );
}

/// The buckets on a clock of the test's own, exactly.
#[test]
fn buckets_start_full_refill_at_their_rate_and_a_refusal_takes_nothing() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut limits = Limits {
        account: Some(super::Bucket::new(Quota::CURRENT, t0)),
        ..Limits::default()
    };
    assert!(
        (0..50).all(|_| limits.admit("GetChange", 0.0, t0)),
        "the burst"
    );
    assert!(!limits.admit("GetChange", 0.0, t0));
    // 10 a second: a token every 100 ms.
    assert!(!limits.admit("GetChange", 0.0, at(99)));
    assert!(limits.admit("GetChange", 0.0, at(100)));
    assert!(!limits.admit("GetChange", 0.0, at(150)));
    // Refused at 150 ms and took nothing: the token that was half there at
    // 150 ms is whole at 200 ms.
    assert!(limits.admit("GetChange", 0.0, at(200)));
    // A second later, ten more; never more than the burst however long it waits.
    assert_eq!(
        (0..20)
            .filter(|_| limits.admit("GetChange", 0.0, at(1200)))
            .count(),
        10
    );
    assert_eq!(
        (0..80)
            .filter(|_| limits.admit("GetChange", 0.0, at(60_000)))
            .count(),
        50
    );

    // Per action as well: CreateHostedZone's own bucket holds 40 and runs
    // dry first; the account's bucket still serves other actions.
    let mut limits = Limits {
        account: Some(super::Bucket::new(Quota::CURRENT, t0)),
        actions: Some((ActionQuotas::current(), Default::default())),
        changes: None,
    };
    assert!((0..40).all(|_| limits.admit("CreateHostedZone", 0.0, t0)));
    assert!(!limits.admit("CreateHostedZone", 0.0, t0));
    assert!((0..10).all(|_| limits.admit("GetChange", 0.0, t0)));
    assert!(!limits.admit("GetChange", 0.0, t0), "the account is empty");
    // 500 ms: the account has 5 tokens back, CreateHostedZone's bucket 1.
    assert!(limits.admit("CreateHostedZone", 0.0, at(500)));
    assert!(!limits.admit("CreateHostedZone", 0.0, at(500)));
    assert!((0..4).all(|_| limits.admit("ListResourceRecordSets", 0.0, at(500))));
    assert!(!limits.admit("ListResourceRecordSets", 0.0, at(500)));
    // A path that is no operation meets the account's bucket only.
    assert!(limits.admit("Unknown", 0.0, at(600)));
}

#[test]
fn change_throughput_counts_changes_and_upserts_at_their_cost() {
    let create = change_xml("CREATE", &a("c.example.com", &["192.0.2.1"]));
    let upsert = change_xml("UPSERT", &a("u.example.com", &["192.0.2.2"]));
    let batch = batch_of(&format!("{create}{upsert}{upsert}"));
    assert_eq!(super::ops::change_cost(&batch, 2.0), 5.0);
    assert_eq!(super::ops::change_cost(&batch, 1.0), 3.0);
    assert_eq!(super::ops::change_cost("not xml", 2.0), 0.0);

    let (server, zone) = setup();
    server.set_change_quota(Some(ChangeQuota {
        bucket: Quota {
            rate: 0.0,
            burst: 4.0,
        },
        upsert_cost: 2.0,
    }));
    let upserts = [
        ("UPSERT", &a("u1.example.com", &["192.0.2.1"])),
        ("UPSERT", &a("u2.example.com", &["192.0.2.2"])),
    ];
    assert_eq!(change(&server, &zone, &upserts[..1]).status, 200);
    // Two tokens left; two UPSERTs need four.
    assert_error(
        &change(&server, &zone, &upserts),
        400,
        "Throttling",
        "Rate exceeded",
    );
    assert!(server.values(&zone, "u2.example.com", "A").is_empty());
    // Reads take no change tokens.
    assert_eq!(get(&server, &format!("hostedzone/{zone}")).status, 200);
    assert_eq!(
        change(
            &server,
            &zone,
            &[("CREATE", &a("c1.example.com", &["192.0.2.3"]))]
        )
        .status,
        200
    );
    let stats = server.stats();
    assert_eq!(
        stats.throttled_by_action,
        [("ChangeResourceRecordSets".to_owned(), 1)].into()
    );
    server.set_change_quota(None);
    assert_eq!(change(&server, &zone, &upserts).status, 200);
}

/// The current quota over HTTP, timed on the wall clock: the burst at once,
/// then about `rate` a second.
#[test]
fn the_current_quota_admits_its_burst_then_its_rate() {
    let (server, zone) = setup();
    server.set_quota(Some(Quota::CURRENT));
    let path = format!("hostedzone/{zone}");
    let started = Instant::now();
    let statuses: Vec<u16> = (0..60).map(|_| get(&server, &path).status).collect();
    let burst_took = started.elapsed().as_secs_f64();
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(&statuses[..50], &[200; 50], "the bucket starts full");
    let refilled = (burst_took * Quota::CURRENT.rate).floor() as usize;
    assert!(
        (50..=50 + refilled).contains(&passed),
        "{passed} passed in {burst_took:.3} s: {statuses:?}"
    );
    // Now empty: asked every 10 ms for 600 ms, it lets about six through.
    let started = Instant::now();
    let mut admitted: u32 = 0;
    while started.elapsed() < Duration::from_millis(600) {
        if get(&server, &path).status == 200 {
            admitted += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let expected = started.elapsed().as_secs_f64() * Quota::CURRENT.rate;
    assert!(
        (expected - 2.0..=expected + 2.0).contains(&f64::from(admitted)),
        "{admitted} admitted, about {expected:.1} expected"
    );
    let stats = server.stats();
    assert_eq!(
        stats.throttled,
        stats.requests["GetHostedZone"] - passed as u64 - u64::from(admitted)
    );
    assert_eq!(stats.throttled_by_action["GetHostedZone"], stats.throttled);
}

#[test]
fn a_throttled_change_leaves_the_zone_untouched() {
    let (server, zone) = setup();
    // One token, never refilled.
    server.set_quota(Some(Quota {
        rate: 0.0,
        burst: 1.0,
    }));
    assert_eq!(get(&server, &format!("hostedzone/{zone}")).status, 200);
    let before = server.rrsets(&zone);
    let throttled = change(
        &server,
        &zone,
        &[("CREATE", &a("t.example.com", &["192.0.2.1"]))],
    );
    assert_error(&throttled, 400, "Throttling", "Rate exceeded");
    assert_eq!(server.rrsets(&zone), before);
    let stats = server.stats();
    assert_eq!((stats.throttled, stats.applied_batches), (1, 0));
    assert_eq!(
        stats.throttled_by_action,
        [("ChangeResourceRecordSets".to_owned(), 1)].into()
    );
    server.set_quota(None);
    let created = change(
        &server,
        &zone,
        &[("CREATE", &a("t.example.com", &["192.0.2.1"]))],
    );
    assert_eq!(created.status, 200);
}

/// Twenty CREATEs of names not yet there, each of which Route53 would apply:
/// which of them were refused with PriorRequestNotComplete.
fn refusals(server: &Route53Server, zone: &str) -> Vec<bool> {
    (0..20)
        .map(|i| {
            let name = format!("p{i}.example.com");
            let reply = change(server, zone, &[("CREATE", &a(&name, &["192.0.2.1"]))]);
            let refused = reply.status != 200;
            if refused {
                assert_error(
                    &reply,
                    400,
                    "PriorRequestNotComplete",
                    "The request was rejected because Route 53 was still processing a prior request.",
                );
            }
            assert_eq!(
                server.values(zone, &name, "A").is_empty(),
                refused,
                "{name}: a refused change is not applied, another is"
            );
            refused
        })
        .collect()
}

#[test]
fn prior_request_not_complete_is_drawn_with_its_probability_and_seed() {
    let (server, zone) = setup();
    server.set_prior_request_not_complete(1.0, 7);
    assert_eq!(refusals(&server, &zone), [true; 20]);
    // Reads are never refused.
    assert_eq!(get(&server, &format!("hostedzone/{zone}")).status, 200);
    let stats = server.stats();
    assert_eq!(
        (
            stats.prior_request_not_complete,
            stats.applied_batches,
            stats.throttled
        ),
        (20, 0, 0)
    );

    let (server, zone) = setup();
    server.set_prior_request_not_complete(0.0, 7);
    assert_eq!(refusals(&server, &zone), [false; 20]);
    assert_eq!(server.stats().prior_request_not_complete, 0);

    // The same seed, the same refusals; some and not all at one half.
    let (first, zone) = setup();
    first.set_prior_request_not_complete(0.5, 42);
    let pattern = refusals(&first, &zone);
    let (second, zone) = setup();
    second.set_prior_request_not_complete(0.5, 42);
    assert_eq!(refusals(&second, &zone), pattern);
    let refused = pattern.iter().filter(|r| **r).count();
    assert!((1..20).contains(&refused), "{pattern:?}");
    let stats = second.stats();
    assert_eq!(stats.prior_request_not_complete, refused as u64);
    assert_eq!(stats.applied_batches, 20 - refused as u64);

    // A throttled write draws nothing: setting the seed again and throttling
    // one write in between gives the same sequence.
    let (third, zone) = setup();
    third.set_prior_request_not_complete(0.5, 42);
    third.fail_next_writes(1, Fault::Throttling);
    let throttled = change(
        &third,
        &zone,
        &[("CREATE", &a("x.example.com", &["192.0.2.1"]))],
    );
    assert_error(&throttled, 400, "Throttling", "Rate exceeded");
    assert_eq!(refusals(&third, &zone), pattern);
    let stats = third.stats();
    assert_eq!(
        (stats.throttled, stats.prior_request_not_complete),
        (1, refused as u64)
    );
}

#[test]
fn write_faults_let_reads_pass_and_wait_for_a_change() {
    let (server, zone) = setup();
    let path = format!("hostedzone/{zone}");
    server.fail_next_writes(1, Fault::ServiceUnavailable);
    assert_eq!(get(&server, &path).status, 200);
    assert_eq!(server.pending_faults(), 1);
    let create = [("CREATE", &a("w.example.com", &["192.0.2.1"]))];
    assert_error(
        &change(&server, &zone, &create),
        503,
        "ServiceUnavailable",
        "",
    );
    assert_eq!(server.pending_faults(), 0);
    assert_eq!(change(&server, &zone, &create).status, 200);
}

#[test]
fn injected_faults_answer_like_route53_then_stop() {
    let (server, zone) = setup();
    let path = format!("hostedzone/{zone}");
    server.fail_next(2, Fault::Throttling);
    server.fail_next(1, Fault::PriorRequestNotComplete);
    server.fail_next(1, Fault::InternalError);
    server.fail_next(1, Fault::ServiceUnavailable);
    assert_error(&get(&server, &path), 400, "Throttling", "Rate exceeded");
    assert_error(&get(&server, &path), 400, "Throttling", "Rate exceeded");
    assert_error(
        &get(&server, &path),
        400,
        "PriorRequestNotComplete",
        "still processing a prior request",
    );
    let internal = get(&server, &path);
    assert_error(&internal, 500, "InternalFailure", "");
    assert_eq!(
        internal
            .doc()
            .child("Error")
            .unwrap()
            .text_of("Type")
            .unwrap(),
        "Receiver"
    );
    assert_error(&get(&server, &path), 503, "ServiceUnavailable", "");
    assert_eq!(get(&server, &path).status, 200);

    server.fail_next(1, Fault::Delay(Duration::from_millis(300)));
    let started = Instant::now();
    let late = change(
        &server,
        &zone,
        &[("CREATE", &a("late.example.com", &["192.0.2.1"]))],
    );
    assert_eq!(late.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(server.values(&zone, "late.example.com", "A"), ["192.0.2.1"]);

    server.fail_next(1, Fault::Drop);
    let list = format!("/2013-04-01/{path}");
    let dropped = raw(
        &server,
        "GET",
        &list,
        &refs(&signed(&server, "GET", &list, "")),
        "",
    );
    assert!(dropped.is_none(), "the connection closes without a byte");
    assert_eq!(get(&server, &path).status, 200);
    // A dropped change is not applied.
    server.fail_next(1, Fault::Drop);
    let body = batch_xml(&[("CREATE", &a("dropped.example.com", &["192.0.2.1"]))]);
    let rrset = format!("/2013-04-01/hostedzone/{zone}/rrset");
    let dropped = raw(
        &server,
        "POST",
        &rrset,
        &refs(&signed(&server, "POST", &rrset, &body)),
        &body,
    );
    assert!(dropped.is_none());
    assert!(server.values(&zone, "dropped.example.com", "A").is_empty());
    assert_eq!(server.stats().throttled, 2);
}

/// A whole signed HTTP/1.1 request, for [`probe::first_read`].
fn raw_request(server: &Route53Server, method: &str, path: &str, body: &str) -> String {
    let addr = server.url().trim_start_matches("http://").to_owned();
    let [(_, authorization), (_, date)] = signed(server, method, path, body);
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {authorization}\r\n\
         X-Amz-Date: {date}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn addr(server: &Route53Server) -> std::net::SocketAddr {
    server.url().trim_start_matches("http://").parse().unwrap()
}

#[test]
fn reset_ends_the_connection_with_a_tcp_reset_and_drop_with_a_clean_close() {
    let (server, zone) = setup();
    let list = raw_request(
        &server,
        "GET",
        &format!("/2013-04-01/hostedzone/{zone}/rrset"),
        "",
    );

    server.fail_next(1, Fault::Drop);
    let dropped = probe::first_read(addr(&server), &list);
    assert_eq!(dropped.unwrap(), 0, "Drop: end of stream, no byte");

    server.fail_next(1, Fault::Reset);
    let reset = probe::first_read(addr(&server), &list);
    assert_eq!(
        reset.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "Reset: connection reset by peer"
    );
    assert_eq!(server.pending_faults(), 0);
    assert!(probe::first_read(addr(&server), &list).unwrap() > 0);

    // A reset change is not applied, and the next one goes through.
    server.fail_next_writes(1, Fault::Reset);
    let body = batch_xml(&[("CREATE", &a("reset.example.com", &["192.0.2.1"]))]);
    let write = raw_request(
        &server,
        "POST",
        &format!("/2013-04-01/hostedzone/{zone}/rrset"),
        &body,
    );
    assert_eq!(
        probe::first_read(addr(&server), &write).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset)
    );
    assert!(server.values(&zone, "reset.example.com", "A").is_empty());
    assert!(probe::first_read(addr(&server), &write).unwrap() > 0);
    assert_eq!(
        server.values(&zone, "reset.example.com", "A"),
        ["192.0.2.1"]
    );
}

#[test]
fn connections_release_their_sockets_when_they_end() {
    let (server, zone) = setup();
    let list = raw_request(
        &server,
        "GET",
        &format!("/2013-04-01/hostedzone/{zone}/rrset"),
        "",
    );

    // An open keep-alive connection: hyper's socket and the duplicate the
    // server keeps to reset it; both closed once the client has gone.
    let mut open = probe::connect(addr(&server));
    assert!(open.first_read(&list).unwrap() > 0);
    assert_eq!(probe::fds_of(open.server_socket), 2);
    let socket = open.server_socket;
    drop(open);
    assert_eq!(probe::settle_fds_of(socket, 0), 0);

    // Answered, dropped and reset connections all give their sockets back.
    let mut sockets = Vec::new();
    for fault in [None, Some(Fault::Drop), Some(Fault::Reset)] {
        for _ in 0..5 {
            if let Some(fault) = &fault {
                server.fail_next(1, fault.clone());
            }
            let mut probe = probe::connect(addr(&server));
            let read = probe.first_read(&list);
            match fault {
                None => assert!(read.unwrap() > 0),
                Some(Fault::Drop) => assert_eq!(read.unwrap(), 0),
                _ => assert_eq!(
                    read.map_err(|e| e.kind()),
                    Err(std::io::ErrorKind::ConnectionReset)
                ),
            }
            sockets.push(probe.server_socket);
        }
    }
    for socket in sockets {
        assert_eq!(
            probe::settle_fds_of(socket, 0),
            0,
            "socket {socket} still open"
        );
    }
}

#[test]
fn stats_count_requests_per_action() {
    let (server, zone) = setup();
    get(&server, &format!("hostedzone/{zone}"));
    get(&server, &format!("hostedzone/{zone}/rrset"));
    change(
        &server,
        &zone,
        &[("CREATE", &a("s.example.com", &["192.0.2.1"]))],
    );
    change(
        &server,
        &zone,
        &[("CREATE", &a("s.example.com", &["192.0.2.1"]))],
    );
    get(&server, "change/CX");
    call(&server, "GET", "/nowhere", "");
    let stats = server.stats();
    let count = |k: &str| stats.requests.get(k).copied().unwrap_or(0);
    assert_eq!(count("GetHostedZone"), 1);
    assert_eq!(count("ListResourceRecordSets"), 1);
    assert_eq!(count("ChangeResourceRecordSets"), 2);
    assert_eq!(count("GetChange"), 1);
    assert_eq!(count("Unknown"), 1);
    assert_eq!(stats.total(), 6);
    assert_eq!(stats.applied_batches, 1);
    assert_eq!(stats.invalid_change_batch, 1);
    assert_eq!(stats.most_names_in_a_batch, 1);
    // A batch changing three names.
    change(
        &server,
        &zone,
        &[
            ("CREATE", &a("t.example.com", &["192.0.2.1"])),
            ("CREATE", &a("u.example.com", &["192.0.2.1"])),
            ("DELETE", &a("s.example.com", &["192.0.2.1"])),
        ],
    );
    assert_eq!(server.stats().most_names_in_a_batch, 3);
    server.reset_stats();
    assert_eq!(server.stats(), super::Stats::default());
}

#[test]
fn handle_helpers_seed_and_read_the_zone() {
    let (server, zone) = setup();
    server.put_rrset(
        &zone,
        with_id(a("Multi.Example.com", &["192.0.2.2"]), "i-b", true),
    );
    server.put_rrset(
        &zone,
        with_id(a("multi.example.com.", &["192.0.2.1"]), "i-a", true),
    );
    assert_eq!(
        server.values(&zone, "MULTI.example.com", "A"),
        ["192.0.2.1", "192.0.2.2"]
    );
    // Replacing by key.
    server.put_rrset(
        &zone,
        with_id(a("multi.example.com", &["192.0.2.9"]), "i-a", true),
    );
    assert_eq!(
        server.values(&zone, "multi.example.com", "A"),
        ["192.0.2.2", "192.0.2.9"]
    );
    server.remove_rrset(&zone, "multi.example.com", "A", Some("i-b"));
    assert_eq!(
        server.values(&zone, "multi.example.com.", "A"),
        ["192.0.2.9"]
    );
    assert!(
        server
            .rrsets(&zone)
            .iter()
            .any(|s| s.name == "multi.example.com." && s.set_identifier.as_deref() == Some("i-a"))
    );
    assert_eq!(server.zone_id("nothere.com"), None);
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Route53Server>();
}

#[test]
fn concurrent_read_modify_write_swaps_lose_nothing() {
    // What dnsreg does on a shared rrset, from 100 machines at once: read the
    // current rrset, DELETE it exactly and CREATE it with one more value, and
    // start over when the batch is refused because someone else got there first.
    let (server, zone) = setup();
    let name = "shared.example.com.";
    std::thread::scope(|scope| {
        for i in 0..100 {
            let (server, zone) = (&server, &zone);
            scope.spawn(move || {
                let mine = format!("10.9.{}.{}", i / 100, i % 100);
                for _ in 0..1000 {
                    let listed = get(
                        server,
                        &format!("hostedzone/{zone}/rrset?name={name}&type=A&maxitems=1"),
                    )
                    .doc();
                    let current = listed
                        .child("ResourceRecordSets")
                        .and_then(|sets| sets.all("ResourceRecordSet").next())
                        .filter(|s| {
                            s.text_of("Name").as_deref() == Some(name)
                                && s.text_of("Type").as_deref() == Some("A")
                        })
                        .map(|s| {
                            s.child("ResourceRecords")
                                .unwrap()
                                .all("ResourceRecord")
                                .map(|r| r.text_of("Value").unwrap())
                                .collect::<Vec<_>>()
                        });
                    let mut grown = current.clone().unwrap_or_default();
                    grown.push(mine.clone());
                    let grown: Vec<&str> = grown.iter().map(String::as_str).collect();
                    let new = a(name, &grown);
                    let reply = match &current {
                        None => change(server, zone, &[("CREATE", &new)]),
                        Some(values) => {
                            let values: Vec<&str> = values.iter().map(String::as_str).collect();
                            change(
                                server,
                                zone,
                                &[("DELETE", &a(name, &values)), ("CREATE", &new)],
                            )
                        }
                    };
                    if reply.status == 200 {
                        return;
                    }
                    assert_eq!(reply.error().0, "InvalidChangeBatch", "{}", reply.body);
                }
                panic!("machine {i} never got its value in");
            });
        }
    });
    let values = server.values(&zone, name, "A");
    assert_eq!(values.len(), 100, "{values:?}");
    assert_eq!(server.stats().applied_batches, 100);
}

#[test]
fn a_held_request_waits_for_the_test_then_is_served_or_dropped() {
    use crate::{Release, Requests};
    let (server, zone) = setup();
    let path = format!("hostedzone/{zone}");
    let create = |name: &str| [("CREATE", a(name, &["192.0.2.1"]))];
    let send = |server: &Route53Server, name: &str| {
        let [(_, set)] = create(name);
        change(server, &zone, &[("CREATE", &set)])
    };
    server.hold(2, Requests::Any);
    assert_eq!(get(&server, &path).status, 200, "the first goes through");
    std::thread::scope(|s| {
        let held = s.spawn(|| send(&server, "held.example.com"));
        assert!(server.wait_held(Duration::from_secs(10)));
        assert!(!held.is_finished());
        assert!(server.values(&zone, "held.example.com", "A").is_empty());
        assert_eq!(server.seen_since_hold(), 2);
        // Requests after the held one are served, and counted.
        assert_eq!(get(&server, &path).status, 200);
        assert_eq!(server.seen_since_hold(), 3);
        server.release(Release::Serve);
        assert!(!server.is_holding());
        // Served before release returned.
        assert_eq!(server.values(&zone, "held.example.com", "A"), ["192.0.2.1"]);
        assert_eq!(held.join().unwrap().status, 200);
    });

    // Writes only: reads pass, the write is held; dropped, it changes nothing.
    server.hold(1, Requests::Writes);
    assert_eq!(get(&server, &path).status, 200);
    assert_eq!(server.seen_since_hold(), 0);
    let rrset = format!("/2013-04-01/hostedzone/{zone}/rrset");
    let body = batch_xml(&[("CREATE", &a("dropped.example.com", &["192.0.2.1"]))]);
    std::thread::scope(|s| {
        let held = s.spawn(|| {
            let headers = signed(&server, "POST", &rrset, &body);
            raw(&server, "POST", &rrset, &refs(&headers), &body)
        });
        assert!(server.wait_held(Duration::from_secs(10)));
        server.release(Release::Drop);
        assert!(held.join().unwrap().is_none(), "closed without an answer");
    });
    assert!(server.values(&zone, "dropped.example.com", "A").is_empty());
    assert_eq!(send(&server, "next.example.com").status, 200);
    assert!(
        !server.wait_held(Duration::from_millis(50)),
        "held only once"
    );
}
