//! Route53's answers, as the provider reads them: listings of rrsets (whole
//! zone, one rrset, the registry subtree page by page), a change's status,
//! a change batch's answer, and error documents, through the AWS SDK's own
//! XML reader to what dnsreg does with the result (escaped names, record
//! values in presentation form, SetIdentifiers, the listing checks).
//!
//! A fake Route53 on loopback answers the n-th request of a case with the
//! case's n-th answer (cycling): an answer of `tests/fuzz-corpus/route53/`
//! mutated, or raw bytes, with a status. The SDK signs with made-up static
//! credentials and its own retries are off, as dnsreg runs it. The zone
//! lookup (`connect`) is left out: it retries a failure until its caller's
//! deadline, with real pauses; the escaped names it reads are fuzzed in
//! `route53-text`.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_route53::Client;
use aws_sdk_route53::config::retry::RetryConfig;
use aws_sdk_route53::config::timeout::TimeoutConfig;
use aws_sdk_route53::config::{BehaviorVersion, Credentials, Region};
use proptest::prelude::*;

use super::fake_http::{FakeHttp, Request, Response};
use super::{
    Body, Input, Target, adding, cases, corpus, mine_and_keys, name, registries_are_labels,
    runtime, values_at_their_keys,
};
use crate::config::{Route53Config, Routing, ZoneRef};
use crate::provider::Provider;
use crate::provider::route53::{Route53, excerpt, unescape_name};
use crate::record::{DomainName, RType, RrKey};

const TOKENS: &[&[u8]] = &[
    b"<IsTruncated>true</IsTruncated>",
    b"<NextRecordName>i-1._dnsreg.example.com.</NextRecordName>",
    b"<NextRecordType>TXT</NextRecordType>",
    b"<NextRecordIdentifier>i-1</NextRecordIdentifier>",
    b"<MaxItems>0</MaxItems>",
    b"<MaxItems>-1</MaxItems>",
    b"<SetIdentifier>I-1</SetIdentifier>",
    b"<MultiValueAnswer>true</MultiValueAnswer>",
    b"<AliasTarget><HostedZoneId>Z1</HostedZoneId><DNSName>x.</DNSName><EvaluateTargetHealth>false</EvaluateTargetHealth></AliasTarget>",
    b"<TTL>99999999999999999999</TTL>",
    b"<Type>SOA</Type>",
    b"<Type>BOGUS</Type>",
    b"<Status>INSYNC</Status>",
    b"<Code>Throttling</Code>",
    b"<Code>PriorRequestNotComplete</Code>",
    b"<Code>AccessDenied</Code>",
    b"<Code></Code>",
    b"\\052",
    b"\\100",
    b"\\",
    b"&amp;",
    b"&lt;",
    b"&#0;",
    b"&#x10FFFF;",
    b"&#xFFFFFFFF;",
    b"&nope;",
    b"<![CDATA[",
    b"]]>",
    b"<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\">]>",
    b"<?xml version=\"1.0\"?>",
    b"</",
    b"/>",
    b"\"dnsreg1 www.example.com. A 192.0.2.1\"",
];

#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    body: Body,
}

fn answer(n: usize) -> impl Strategy<Value = Answer> {
    let status = prop_oneof![
        20 => Just(200u16),
        3 => Just(400),
        1 => Just(403),
        1 => Just(404),
        1 => Just(409),
        1 => Just(500),
        1 => Just(503),
    ];
    let body = Body::strategy(n);
    (status, body).prop_map(|(status, body)| Answer { status, body })
}

fn client(url: &str) -> Client {
    let conf = aws_sdk_route53::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDFUZZFUZZFUZZFUZZ",
            "fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz",
            None,
            None,
            "fuzz",
        ))
        .endpoint_url(url)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_secs(10))
                .build(),
        )
        .build();
    Client::from_conf(conf)
}

/// What an instance does with Route53: read one rrset, read several (the
/// whole zone when it fits in a page), list the registries, write, and ask
/// whether a change is live; under both routings. Each operation has a
/// provider of its own, so that a throttled answer's pause is never served.
async fn use_api(client: &Client) {
    let (mine, keys) = mine_and_keys();
    for routing in [Routing::Simple, Routing::Multivalue] {
        let p = || {
            Route53::with_client(
                "r53",
                Route53Config {
                    zone: ZoneRef::Name(name("example.com")),
                    routing,
                    endpoint: None,
                },
                "i-1",
                client.clone(),
                "Z0123456789ABCDEFGHIJ",
            )
        };
        let one: BTreeSet<RrKey> = [mine.key()].into();
        let _ = p().read(&one).await;
        let snapshot = match p().read(&keys).await {
            Ok(s) => s,
            Err(e) => {
                let _ = e.to_string();
                Default::default()
            }
        };
        let r = p();
        values_at_their_keys(&r, &snapshot, &keys);
        let _ = r.presume(&snapshot, &keys, &keys, &[mine.clone()].into());
        if let Ok((registries, _)) = p().registries().await {
            registries_are_labels(&registries);
            for v in registries.values().flatten() {
                assert!(v.name.is_in(&name("_dnsreg.example.com")), "{v}");
            }
        }
        if let Ok(w) = p().write(&snapshot, &adding(&mine)).await
            && let Some(change) = w.change
        {
            let _ = p().confirm(&change).await;
        }
        let _ = p().confirm("C0123456789").await;
    }
}

#[test]
fn route53_answers() {
    let t = Target::new("route53");
    let files = corpus("route53");
    let seeds: Vec<Vec<u8>> = files.iter().map(|(_, b)| b.clone()).collect();
    let rt = runtime();
    let fake = rt.block_on(FakeHttp::start());
    let client = rt.block_on(async { client(&fake.url) });
    let bodies = |answers: &Vec<Answer>| -> Vec<(u16, Vec<u8>)> {
        answers
            .iter()
            .map(|a| {
                let body = a.body.bytes(&seeds, TOKENS);
                (a.status, body)
            })
            .collect()
    };
    let check = |answers: &Vec<Answer>| {
        let answers = bodies(answers);
        let mut n = 0usize;
        fake.set(move |_: &Request| {
            let (status, body) = answers[n % answers.len()].clone();
            n += 1;
            if n > 2000 {
                // A reader that keeps asking: end it, and fail the case below.
                return Response::new(400, "runaway");
            }
            Response::new(status, body).header("Content-Type", "text/xml")
        });
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(60), use_api(&client))
                .await
                .expect("the Route53 provider did not return within 60 s")
        });
        assert!(
            fake.requests() < 1000,
            "{} requests for a few reads, a listing and a write",
            fake.requests()
        );
    };
    let n = seeds.len();
    t.run(
        &files,
        |b| {
            vec![Answer {
                status: 200,
                body: Body::Raw(b.to_vec()),
            }]
        },
        prop::collection::vec(answer(n), 1..6),
        cases(super::DEFAULT_CASES / 4),
        |a| bodies(a).into_iter().flat_map(|(_, b)| b).collect(),
        check,
    );
}

/// The text Route53 answers hold that dnsreg reads itself: names with
/// `\DDD` escapes, and an error page shown as an excerpt.
#[test]
fn route53_text() {
    let t = Target::new("route53-text");
    let seeds = corpus("route53");
    t.run_bytes(&seeds, TOKENS, |i: &Input| {
        let text = i.text();
        for s in std::iter::once(text.as_str()).chain(text.lines()) {
            let n = unescape_name(s);
            assert_eq!(n, n.to_ascii_lowercase());
            let _ = DomainName::new(&n);
        }
        let e = excerpt(&i.0);
        assert!(!e.chars().any(char::is_control), "{e:?}");
        assert!(e.chars().count() <= 203, "{} characters", e.chars().count());
    });
}

/// The harness reaches the parser: the recorded listing reads as the values
/// it holds.
#[test]
fn route53_harness_reads_a_listing() {
    let rt = runtime();
    let fake = rt.block_on(FakeHttp::start());
    let listing = corpus("route53")
        .into_iter()
        .find(|(n, _)| n == "list-whole-zone.xml")
        .unwrap()
        .1;
    fake.set(move |_: &Request| Response::new(200, listing.clone()));
    let client = rt.block_on(async { client(&fake.url) });
    let p = Route53::with_client(
        "r53",
        Route53Config {
            zone: ZoneRef::Name(name("example.com")),
            routing: Routing::Simple,
            endpoint: None,
        },
        "i-1",
        client,
        "Z0123456789ABCDEFGHIJ",
    );
    let www = RrKey {
        name: name("www.example.com"),
        rtype: RType::A,
    };
    let srv = RrKey {
        name: name("_x._tcp.example.com"),
        rtype: RType::SRV,
    };
    let keys: BTreeSet<RrKey> = [www.clone(), srv.clone()].into();
    let snap = rt.block_on(p.read(&keys)).unwrap();
    assert_eq!(p.values(&snap, &www).len(), 2);
    assert_eq!(p.values(&snap, &srv).len(), 2);
    // The registry subtree, from where the listing starts: its last page.
    let page = corpus("route53")
        .into_iter()
        .find(|(n, _)| n == "list-registries-last.xml")
        .unwrap()
        .1;
    fake.set(move |_: &Request| Response::new(200, page.clone()));
    let (registries, _) = rt.block_on(p.registries()).unwrap();
    assert_eq!(
        registries.keys().collect::<Vec<_>>(),
        ["i-3"],
        "{registries:?}"
    );
}
