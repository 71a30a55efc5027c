//! Cloudflare's API answers, as the provider reads them: the zone lookup, the
//! record listings (pagination included), the registry listing, the batch
//! answer and single-record answers, and error envelopes with their status
//! and Retry-After.
//!
//! A fake API on loopback answers the n-th request of a case with the case's
//! n-th answer (cycling): a corpus answer (`tests/fuzz-corpus/cloudflare/`,
//! recorded from the testkit stand-in) mutated, or raw bytes, with a status.
//! Answers that the provider retries with real pauses (5xx and 429 to a zone
//! lookup or a write) are turned into 400s, which it does not retry; a 429 to
//! a read is kept (it fails the read at once, and each operation has a
//! provider of its own, so that its pacer's wait is never served).

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;

use super::fake_http::{FakeHttp, Request, Response};
use super::{
    Body, Target, adding, cases, corpus, mine_and_keys, name, registries_are_labels, runtime,
    values_at_their_keys,
};
use crate::config::CloudflareConfig;
use crate::provider::cloudflare::Cloudflare;
use crate::provider::{Connect, Provider};
use crate::record::{RType, RrKey};

const TOKENS: &[&[u8]] = &[
    b"\"success\": true",
    b"\"success\": false",
    b"\"result\": null",
    b"\"result_info\": {\"page\": 1, \"total_pages\": 4294967295}",
    b"\"total_pages\": 2",
    b"\"page\": 0",
    b"\"errors\": [{\"code\": 81044, \"message\": \"gone\"}]",
    b"\"errors\": [{\"code\": 10000, \"message\": \"Authentication error\"}]",
    b"\"comment\": \"dnsreg:i-1\"",
    b"\"comment\": \"dnsreg:i-1,i-2, ,I-3\"",
    b"\"comment\": null",
    b"\"type\": \"SRV\"",
    b"\"type\": \"TXT\"",
    b"\"data\": {\"priority\": 70000, \"weight\": -1, \"port\": 1.5, \"target\": 7}",
    b"\"content\": \"\\\"dnsreg1 www.example.com. A 192.0.2.1\\\"\"",
    b"\"ttl\": 4294967296",
    b"\"proxied\": true",
    b"i-1._dnsreg.example.com",
    b"null",
    b"{}",
    b"[]",
];

#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Body,
}

#[derive(Clone, Debug)]
struct Case {
    answers: Vec<Answer>,
    /// Look the zone up (else its id is configured).
    lookup: bool,
}

fn answer(n: usize) -> impl Strategy<Value = Answer> {
    let status = prop_oneof![
        20 => Just(200u16),
        2 => Just(400),
        1 => Just(401),
        1 => Just(403),
        2 => Just(404),
        1 => Just(405),
        1 => Just(409),
        1 => Just(429),
        1 => Just(500),
        1 => Just(501),
        1 => Just(503),
    ];
    let retry_after = prop_oneof![
        3 => Just(None),
        1 => prop::sample::select(vec!["1", "0", "-1", "300", "99999999999999999999", "soon", " 7 "])
            .prop_map(|s| Some(s.to_string())),
    ];
    let body = Body::strategy(n);
    (status, retry_after, body).prop_map(|(status, retry_after, body)| Answer {
        status,
        retry_after,
        body,
    })
}

/// A provider connected to the fake API, or `None` when connecting failed.
/// Each operation gets its own: a 429 holds back every later request of a
/// provider for its Retry-After (up to five minutes), which is the pacer's
/// business, not the parser's.
async fn connected(cfg: &CloudflareConfig) -> Option<Cloudflare> {
    crate::provider::cloudflare::Connector::new("cf", cfg.clone(), "i-1")
        .connect(None)
        .await
        .ok()
}

/// What an instance does with the API: connect, read, list registries,
/// check its memory, write.
async fn use_api(cfg: &CloudflareConfig) {
    let (mine, keys) = mine_and_keys();
    let Some(cf) = connected(cfg).await else {
        return;
    };
    let snapshot = match cf.read(&keys).await {
        Ok(s) => s,
        Err(e) => {
            let _ = e.to_string();
            Default::default()
        }
    };
    values_at_their_keys(&cf, &snapshot, &keys);
    let _ = cf.claimants(&snapshot, &mine);
    let _ = cf.presume(&snapshot, &keys, &keys, &[mine.clone()].into());
    if let Some(cf) = connected(cfg).await
        && let Ok((registries, _)) = cf.registries().await
    {
        registries_are_labels(&registries);
    }
    if let Some(cf) = connected(cfg).await {
        let _ = cf.check(&snapshot, &keys).await;
    }
    let mut edit = adding(&mine);
    edit.remove.insert(
        mine.key(),
        cf.values(&snapshot, &mine.key())
            .into_iter()
            .take(1)
            .collect(),
    );
    if let Some(cf) = connected(cfg).await {
        let _ = cf.write(&snapshot, &edit).await;
    }
}

#[test]
fn cloudflare_answers() {
    let t = Target::new("cloudflare");
    let files = corpus("cloudflare");
    let seeds: Vec<Vec<u8>> = files.iter().map(|(_, b)| b.clone()).collect();
    let rt = runtime();
    let fake = rt.block_on(FakeHttp::start());
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "fuzz-token\n").unwrap();
    let bodies = |c: &Case| -> Vec<(u16, Option<String>, Vec<u8>)> {
        c.answers
            .iter()
            .map(|a| {
                let body = a.body.bytes(&seeds, TOKENS);
                (a.status, a.retry_after.clone(), body)
            })
            .collect()
    };
    let check = |c: &Case| {
        let answers = bodies(c);
        let mut n = 0usize;
        fake.set(move |r: &Request| {
            let (mut status, retry_after, body) = answers[n % answers.len()].clone();
            n += 1;
            if n > 2000 {
                // A reader that keeps asking: end it, and fail the case below.
                return Response::new(400, "runaway");
            }
            // What the provider would retry with real pauses: a zone lookup
            // and writes (single requests are tried for up to 10 minutes).
            let retried = r.path.ends_with("/zones") || r.method != "GET";
            if retried && (status == 429 || status >= 500) {
                status = 400;
            }
            let mut resp = Response::new(status, body);
            if let Some(ra) = retry_after {
                resp = resp.header("Retry-After", &ra);
            }
            resp.header("Content-Type", "application/json")
        });
        let cfg = CloudflareConfig {
            zone: name("example.com"),
            zone_id: (!c.lookup).then(|| "0123456789abcdef0123456789abcdef".to_string()),
            token_file: Some(token.clone()),
            proxied: false,
            endpoint: Some(fake.url.clone()),
        };
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), use_api(&cfg))
                .await
                .expect("the Cloudflare provider did not return within 30 s")
        });
        assert!(
            fake.requests() < 1000,
            "{} requests for one connect, read, listing, check and write",
            fake.requests()
        );
    };
    let n = seeds.len();
    let strategy = (prop::collection::vec(answer(n), 1..6), any::<bool>())
        .prop_map(|(answers, lookup)| Case { answers, lookup });
    t.run(
        &files,
        |b| Case {
            // A corpus file answers every request, unchanged (the zone's id
            // configured: else a listing is only a wrong answer to the lookup).
            answers: vec![Answer {
                status: 200,
                retry_after: None,
                body: Body::Raw(b.to_vec()),
            }],
            lookup: false,
        },
        strategy,
        cases(super::DEFAULT_CASES / 4),
        |c| bodies(c).into_iter().flat_map(|(_, _, b)| b).collect(),
        check,
    );
}

/// Writes `tests/fuzz-corpus/cloudflare/`: every answer the provider gets
/// from the testkit stand-in while it connects, reads, lists the
/// registries, checks and writes (a batch, then single requests).
/// Run with `cargo test --bin dnsreg write_cloudflare_corpus -- --ignored`.
#[test]
#[ignore = "writes tests/fuzz-corpus/cloudflare"]
fn write_cloudflare_corpus() {
    use testkit::cloudflare::{CfFault, CloudflareServer};

    let server = CloudflareServer::start();
    seed_zone(&server);
    let rt = runtime();
    let fake = rt.block_on(FakeHttp::start());
    let recorded = record_through(&fake, &server);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "fuzz-token").unwrap();
    let cfg = CloudflareConfig {
        zone: name("example.com"),
        zone_id: None,
        token_file: Some(token),
        proxied: false,
        endpoint: Some(fake.url.clone()),
    };
    rt.block_on(use_api(&cfg));
    // Refusals, as the stand-in words them: a batch refused, and a rate limit.
    server.fail_next(1, CfFault::BatchUnsupported);
    rt.block_on(use_api(&cfg));
    server.fail_next(
        1,
        CfFault::RateLimited {
            retry_after_secs: 7,
        },
    );
    rt.block_on(use_api(&cfg));
    let out = super::corpus_dir("cloudflare");
    std::fs::create_dir_all(&out).unwrap();
    let mut seen = BTreeSet::new();
    for (what, body) in recorded.lock().unwrap().iter() {
        if seen.insert(body.clone()) {
            std::fs::write(out.join(what), body).unwrap();
        }
    }
}

/// The stand-in's zone `example.com` with the token `fuzz-token`, holding
/// what the corpus's answers show: an instance's value at www and a
/// person's, its registry with a lease, and an SRV line two instances
/// claim.
fn seed_zone(server: &testkit::cloudflare::CloudflareServer) {
    use testkit::cloudflare::DnsRecord;

    let zone_id = server.create_zone("example.com");
    server.add_token("fuzz-token", true);
    let record = |n: &str, t: &str, c: &str, comment: Option<&str>| DnsRecord {
        comment: comment.map(str::to_string),
        ..DnsRecord::new(n, t, c, 60)
    };
    for r in [
        record("www.example.com", "A", "192.0.2.1", Some("dnsreg:i-2")),
        record("www.example.com", "A", "192.0.2.9", None),
        record(
            "i-2._dnsreg.example.com",
            "TXT",
            "\"dnsreg1 www.example.com. A 192.0.2.1\"",
            Some("dnsreg:i-2"),
        ),
        record(
            "i-2._dnsreg.example.com",
            "TXT",
            "\"dnsreg1-lease 1900000000\"",
            Some("dnsreg:i-2"),
        ),
        DnsRecord {
            data: Some(
                serde_json::json!({"priority": 0, "weight": 5, "port": 8080, "target": "i-2.example.com"}),
            ),
            ..record(
                "_x._tcp.example.com",
                "SRV",
                "5 8080 i-2.example.com",
                Some("dnsreg:i-2,i-3"),
            )
        },
    ] {
        server.put_record(&zone_id, r);
    }
}

/// The answers recorded, each under a name that says which request it
/// answered: its number, method, last path segment and status.
type Recorded = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// Makes `fake` pass every request on to the stand-in `server` and answer
/// with what it answers, recording each answer.
fn record_through(fake: &FakeHttp, server: &testkit::cloudflare::CloudflareServer) -> Recorded {
    let addr = server.url().trim_start_matches("http://").to_string();
    let addr = addr.split('/').next().unwrap().to_string();
    let prefix = server
        .url()
        .trim_start_matches("http://")
        .trim_start_matches(&addr)
        .to_string();
    let recorded: Recorded = Recorded::default();
    let rec = recorded.clone();
    fake.set(move |r: &Request| {
        let mut r = r.clone();
        r.path = format!("{prefix}{}", r.path);
        let (status, body) = super::metadata::forward(&addr, &r);
        let mut list = rec.lock().unwrap();
        let what = format!(
            "{:02}-{}-{}-{status}",
            list.len(),
            r.method,
            r.path.rsplit('/').next().unwrap_or("")
        );
        list.push((what, body.clone()));
        Response::new(status, body).header("Content-Type", "application/json")
    });
    recorded
}

/// The harness reaches the parser: a recorded listing reads as its records.
#[test]
fn cloudflare_harness_reads_a_listing() {
    let rt = runtime();
    let fake = rt.block_on(FakeHttp::start());
    let listing = corpus("cloudflare")
        .into_iter()
        .find(|(n, _)| n == "01-GET-dns_records-200")
        .unwrap()
        .1;
    fake.set(move |_: &Request| Response::new(200, listing.clone()));
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "fuzz-token\n").unwrap();
    let cfg = CloudflareConfig {
        zone: name("example.com"),
        zone_id: Some("0123456789abcdef0123456789abcdef".into()),
        token_file: Some(token),
        proxied: false,
        endpoint: Some(fake.url.clone()),
    };
    let srv = RrKey {
        name: name("_x._tcp.example.com"),
        rtype: RType::SRV,
    };
    let values = rt.block_on(async {
        let cf = connected(&cfg).await.unwrap();
        let snap = cf.read(&[srv.clone()].into()).await.unwrap();
        cf.values(&snap, &srv)
    });
    assert_eq!(values.len(), 1, "{values:?}");
}
