//! The Cloudflare stand-in over real HTTP, as dnsreg's provider meets it.
//!
//! Requests are written by hand over a `TcpStream` so that the tests see
//! exactly what a client would: status line, headers (`Retry-After`) and JSON
//! body, or no answer at all.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::cloudflare::{CLOUDFLARE_RATE_LIMIT, CfFault, CloudflareServer, DnsRecord};

const TOKEN: &str = "cf-test-token_1";

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn code(&self) -> u64 {
        self.body["errors"][0]["code"].as_u64().unwrap_or(0)
    }
}

/// Sends one request to `url` + `path`; `None` when the server closed the
/// connection without answering.
fn try_send(
    server: &CloudflareServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Option<Answer> {
    let url = server.url();
    let rest = url.trim_start_matches("http://");
    let (host, base) = rest.split_once('/').unwrap();
    let mut stream = TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!(
        "{method} /{base}{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    if raw.is_empty() {
        return None;
    }
    let raw = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete HTTP answer");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (k, v) = line.split_once(':').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    let body = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    Some(Answer {
        status,
        headers,
        body,
    })
}

fn dechunk(mut raw: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = raw.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        raw = &rest[size + 2..];
    }
    out
}

fn send(server: &CloudflareServer, method: &str, path: &str, body: Option<Value>) -> Answer {
    try_send(server, method, path, Some(TOKEN), body.as_ref()).expect("an answer")
}

fn setup() -> (CloudflareServer, String) {
    let server = CloudflareServer::start();
    server.add_token(TOKEN, true);
    let zone = server.create_zone("example.com");
    (server, zone)
}

#[test]
fn url_is_the_api_base() {
    let server = CloudflareServer::start();
    let url = server.url();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/client/v4"),
        "{url}"
    );
    assert_eq!(CLOUDFLARE_RATE_LIMIT, (1200, Duration::from_secs(300)));
}

#[test]
fn zone_lookup_then_records_round_trip() {
    let (server, zone) = setup();
    let zones = send(&server, "GET", "/zones?name=example.com", None);
    assert_eq!(zones.status, 200);
    assert_eq!(zones.header("content-type"), Some("application/json"));
    assert_eq!(zones.body["result"][0]["id"], json!(zone));
    assert_eq!(zones.body["result_info"]["total_count"], json!(1));

    let records = format!("/zones/{zone}/dns_records");
    let created = send(
        &server,
        "POST",
        &records,
        Some(
            json!({"type": "A", "name": "web.example.com", "content": "203.0.113.7", "ttl": 60, "comment": "dnsreg:i-1"}),
        ),
    );
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.body["result"]["id"].as_str().unwrap().to_owned();

    // A person's record beside it, put in through the handle.
    let by_hand = server.put_record(&zone, DnsRecord::new("web", "A", "198.51.100.1", 300));
    assert_eq!(
        server.values(&zone, "WEB.example.com.", "A"),
        ["198.51.100.1", "203.0.113.7"]
    );

    let mine = send(
        &server,
        "GET",
        &format!("{records}?type=A&name=web.example.com&comment=dnsreg%3Ai-1"),
        None,
    );
    assert_eq!(mine.body["result"].as_array().unwrap().len(), 1);
    assert_eq!(mine.body["result"][0]["id"], json!(id));

    let again = send(
        &server,
        "POST",
        &records,
        Some(json!({"type": "A", "name": "web.example.com", "content": "203.0.113.7"})),
    );
    assert_eq!((again.status, again.code()), (400, 81058));
    assert_eq!(again.body["success"], json!(false));

    let deleted = send(&server, "DELETE", &format!("{records}/{id}"), None);
    assert_eq!(deleted.body["result"]["id"], json!(id));
    let listed = server.records(&zone);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, by_hand);
    server.delete_record(&zone, &by_hand);
    assert!(server.records(&zone).is_empty());
}

#[test]
fn batch_over_http_is_atomic() {
    let (server, zone) = setup();
    let batch = format!("/zones/{zone}/dns_records/batch");
    let srv = |weight: u16, target: &str| {
        json!({"type": "SRV", "name": "_app._tcp.example.com", "ttl": 60, "comment": "dnsreg:i-1",
               "data": {"priority": 10, "weight": weight, "port": 8080, "target": target}})
    };
    let first = send(
        &server,
        "POST",
        &batch,
        Some(json!({"posts": [srv(5, "web-1.example.com"), srv(5, "web-2.example.com")]})),
    );
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(
        server.values(&zone, "_app._tcp.example.com", "SRV"),
        ["10 5 8080 web-1.example.com", "10 5 8080 web-2.example.com"]
    );
    let old = first.body["result"]["posts"][0]["id"].clone();

    // Replacing a value and failing on a duplicate: nothing changes.
    let failed = send(
        &server,
        "POST",
        &batch,
        Some(
            json!({"deletes": [{"id": old}], "posts": [srv(7, "web-1.example.com"), srv(5, "web-2.example.com")]}),
        ),
    );
    assert_eq!((failed.status, failed.code()), (400, 81058));
    assert_eq!(
        failed.body["errors"][0]["source"]["pointer"],
        json!("/posts/1")
    );
    assert_eq!(server.records(&zone).len(), 2);

    let replaced = send(
        &server,
        "POST",
        &batch,
        Some(json!({"deletes": [{"id": old}], "posts": [srv(7, "web-1.example.com")]})),
    );
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    assert_eq!(
        server.values(&zone, "_app._tcp.example.com", "SRV"),
        ["10 5 8080 web-2.example.com", "10 7 8080 web-1.example.com"]
    );
    let stats = server.stats();
    assert_eq!(
        (
            stats.requests["POST batch"],
            stats.applied_batches,
            stats.failed
        ),
        (3, 2, 1)
    );
    server.reset_stats();
    assert_eq!(server.stats().total(), 0);
}

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let (server, zone) = setup();
    server.set_rate_limit(Some((2, Duration::from_secs(60))));
    let path = format!("/zones/{zone}/dns_records");
    assert_eq!(send(&server, "GET", &path, None).status, 200);
    assert_eq!(send(&server, "GET", &path, None).status, 200);
    let limited = send(&server, "GET", &path, None);
    assert_eq!((limited.status, limited.code()), (429, 971));
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert_eq!(retry, 60, "blocked for the window");
    assert_eq!(server.stats().rate_limited, 1);
    server.set_rate_limit(None);
    for _ in 0..20 {
        assert_eq!(send(&server, "GET", &path, None).status, 200);
    }
}

/// The block after a 429, over the wire: a client that waits its
/// Retry-After gets through; one that comes back at once is refused again
/// and counted as an early retry.
#[test]
fn a_429_blocks_until_its_retry_after() {
    let (server, zone) = setup();
    server.set_rate_limit(Some((3, Duration::from_secs(1))));
    let path = format!("/zones/{zone}/dns_records");
    let retry_after = |answer: &Answer| -> u64 {
        answer
            .header("retry-after")
            .expect("a 429 says when to come back")
            .parse()
            .expect("whole seconds")
    };
    for _ in 0..3 {
        assert_eq!(send(&server, "GET", &path, None).status, 200);
    }
    let limited = send(&server, "GET", &path, None);
    assert_eq!((limited.status, limited.code()), (429, 971));
    assert_eq!(retry_after(&limited), 1, "blocked for the window");
    // Patient: waits as told, then gets through.
    std::thread::sleep(Duration::from_secs(retry_after(&limited)));
    assert_eq!(send(&server, "GET", &path, None).status, 200);
    let stats = server.stats();
    assert_eq!((stats.rate_limited, stats.early_retries), (1, 0));

    // Impatient: fills the window again and retries at once.
    server.reset_stats();
    let mut answers = Vec::new();
    while answers.len() < 10 && answers.last().is_none_or(|a: &Answer| a.status == 200) {
        answers.push(send(&server, "GET", &path, None));
    }
    let limited = answers.last().unwrap();
    assert_eq!(limited.status, 429);
    let again = send(&server, "GET", &path, None);
    assert_eq!((again.status, again.code()), (429, 971));
    assert!(retry_after(&again) <= retry_after(limited));
    let stats = server.stats();
    assert_eq!((stats.rate_limited, stats.early_retries), (2, 1));
    server.set_rate_limit(None);
    assert_eq!(send(&server, "GET", &path, None).status, 200);
}

#[test]
fn authentication_over_http() {
    let (server, zone) = setup();
    server.add_token("reader", false);
    let path = format!("/zones/{zone}/dns_records");
    let none = try_send(&server, "GET", &path, None, None).unwrap();
    assert_eq!(none.status, 400);
    let wrong = try_send(&server, "GET", &path, Some("wrong"), None).unwrap();
    assert_eq!((wrong.status, wrong.code()), (403, 9109));
    let write = try_send(
        &server,
        "POST",
        &path,
        Some("reader"),
        Some(&json!({"type": "TXT", "name": "t", "content": "x"})),
    )
    .unwrap();
    assert_eq!((write.status, write.code()), (403, 10000));
    server.add_scoped_token("other-zone", true, &["example.org"]);
    let hidden = try_send(
        &server,
        "GET",
        "/zones?name=example.com",
        Some("other-zone"),
        None,
    )
    .unwrap();
    assert_eq!(hidden.body["result"], json!([]));
}

#[test]
fn faults_on_the_wire() {
    let (server, zone) = setup();
    let path = format!("/zones/{zone}/dns_records");
    server.fail_next(1, CfFault::ServerError(502));
    server.fail_next(1, CfFault::Drop);
    server.fail_next(1, CfFault::Delay(Duration::from_millis(300)));
    assert_eq!(send(&server, "GET", &path, None).status, 502);
    assert!(
        try_send(&server, "GET", &path, Some(TOKEN), None).is_none(),
        "dropped without an answer"
    );
    let started = Instant::now();
    assert_eq!(send(&server, "GET", &path, None).status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    server.fail_next(1, CfFault::BatchUnsupported);
    let single = send(
        &server,
        "POST",
        &path,
        Some(json!({"type": "A", "name": "w", "content": "192.0.2.1"})),
    );
    assert_eq!(single.status, 200);
    let batch = send(
        &server,
        "POST",
        &format!("{path}/batch"),
        Some(json!({"posts": []})),
    );
    assert_eq!(batch.status, 405);
    assert_eq!(
        send(
            &server,
            "POST",
            &format!("{path}/batch"),
            Some(json!({"posts": []}))
        )
        .status,
        200
    );

    // A 429 blocks as Cloudflare's does: a retry before its Retry-After is
    // refused again, without using up the next fault.
    server.fail_next(
        1,
        CfFault::RateLimited {
            retry_after_secs: 3,
        },
    );
    server.fail_next(1, CfFault::ServerError(502));
    let throttled = send(&server, "GET", &path, None);
    assert_eq!(
        (throttled.status, throttled.header("retry-after")),
        (429, Some("3"))
    );
    let early = send(&server, "GET", &path, None);
    assert_eq!(early.status, 429);
}

#[test]
fn comment_limit_knob() {
    let (server, zone) = setup();
    let path = format!("/zones/{zone}/dns_records");
    let body = json!({"type": "TXT", "name": "t", "content": "x", "comment": "c".repeat(300)});
    let refused = send(&server, "POST", &path, Some(body.clone()));
    assert_eq!((refused.status, refused.code()), (400, 9313));
    server.set_comment_limit(500);
    assert_eq!(send(&server, "POST", &path, Some(body)).status, 200);
}
