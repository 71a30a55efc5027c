//! Unit tests of the Cloudflare stand-in's semantics, driven through the same
//! request pipeline the HTTP server uses but without sockets, so that time can
//! be moved by hand for the rate limit. The wire itself (status lines,
//! `Retry-After`, dropped connections, delays) is exercised in
//! `tests/cloudflare_http.rs`; how a dropped or reset connection ends (FIN or
//! RST, sockets released) is checked here, over a socket.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::http::{self, Answer, Front, Request};
use super::{
    CLOUDFLARE_RATE_LIMIT, CfFault, CloudflareServer, RetryWait, State, Token, Zone, zone,
};
use crate::serve::probe;

const TOKEN: &str = "edit-token";
const READER: &str = "read-token";

struct Fixture {
    state: State,
    zone: String,
}

impl Fixture {
    fn new() -> Fixture {
        let mut state = State::new();
        let zone = zone::new_id();
        state.zones.push(Zone {
            id: zone.clone(),
            name: "example.com".to_owned(),
            created_on: std::time::SystemTime::now(),
            records: Vec::new(),
        });
        state.tokens.insert(
            TOKEN.to_owned(),
            Token {
                dns_edit: true,
                zones: None,
            },
        );
        state.tokens.insert(
            READER.to_owned(),
            Token {
                dns_edit: false,
                zones: None,
            },
        );
        Fixture { state, zone }
    }

    fn send(
        &mut self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let request = Request {
            method: Method::from_bytes(method.as_bytes()).unwrap(),
            path: format!("/client/v4{path}"),
            query: query.to_owned(),
            authorization: auth.map(str::to_owned),
            body: body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
        };
        match http::front(&mut self.state, &request) {
            Front::Reply(answer) => answer,
            Front::Drop => panic!("dropped"),
            Front::Reset => panic!("reset"),
            Front::Continue(_) => http::back(&mut self.state, &request, Instant::now()),
        }
    }

    fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.send(method, path, Some(&format!("Bearer {TOKEN}")), body)
    }

    fn records_path(&self) -> String {
        format!("/zones/{}/dns_records", self.zone)
    }

    fn create(&mut self, body: Value) -> Answer {
        let path = self.records_path();
        self.call("POST", &path, Some(body))
    }

    fn created(&mut self, body: Value) -> Value {
        let answer = self.create(body);
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.body["result"].clone()
    }

    fn list(&mut self, query: &str) -> Answer {
        let path = format!("{}?{query}", self.records_path());
        let answer = self.call("GET", &path, None);
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer
    }

    fn batch(&mut self, body: Value) -> Answer {
        let path = format!("{}/batch", self.records_path());
        self.call("POST", &path, Some(body))
    }

    fn contents(&self) -> Vec<String> {
        let mut all: Vec<String> = self.state.zones[0]
            .records
            .iter()
            .map(|r| format!("{} {} {}", r.name, r.rtype, r.presentation()))
            .collect();
        all.sort();
        all
    }
}

/// The single error's (status, code, message).
fn error(answer: &Answer) -> (u16, u64, String) {
    assert_eq!(answer.body["success"], json!(false), "{}", answer.body);
    assert_eq!(answer.body["result"], Value::Null);
    let first = &answer.body["errors"][0];
    (
        answer.status.as_u16(),
        first["code"].as_u64().unwrap(),
        first["message"].as_str().unwrap().to_owned(),
    )
}

fn a(name: &str, ip: &str) -> Value {
    json!({"type": "A", "name": name, "content": ip, "ttl": 300})
}

#[test]
fn created_record_has_cloudflare_shape() {
    let mut f = Fixture::new();
    let created = f.created(json!({"type": "A", "name": "www.example.com", "content": "203.0.113.7", "ttl": 120, "comment": "dnsreg:i-1"}));
    let id = created["id"].as_str().unwrap();
    assert!(zone::is_id(id) && id.len() == 32, "{id}");
    assert_eq!(created["zone_id"], json!(f.zone));
    assert_eq!(created["zone_name"], json!("example.com"));
    assert_eq!(created["name"], json!("www.example.com"));
    assert_eq!(created["type"], json!("A"));
    assert_eq!(created["content"], json!("203.0.113.7"));
    assert_eq!(created["proxiable"], json!(true));
    assert_eq!(created["proxied"], json!(false));
    assert_eq!(created["ttl"], json!(120));
    assert_eq!(created["comment"], json!("dnsreg:i-1"));
    assert_eq!(created["tags"], json!([]));
    assert!(created["created_on"].as_str().unwrap().ends_with('Z'));
    assert!(created["modified_on"].is_string());

    let path = format!("{}/{id}", f.records_path());
    let got = f.call("GET", &path, None);
    assert_eq!(got.body["result"], created);
    assert_eq!(got.body["success"], json!(true));
    assert_eq!(got.body["errors"], json!([]));
    assert_eq!(got.body["messages"], json!([]));
}

#[test]
fn ttl_defaults_to_automatic_and_names_are_completed() {
    let mut f = Fixture::new();
    let apex = f.created(json!({"type": "TXT", "name": "@", "content": "v=spf1 -all"}));
    assert_eq!(
        (apex["name"].clone(), apex["ttl"].clone()),
        (json!("example.com"), json!(1))
    );
    let relative = f.created(a("WWW", "192.0.2.1"));
    assert_eq!(relative["name"], json!("www.example.com"));
    let dotted = f.created(a("api.example.com.", "192.0.2.1"));
    assert_eq!(dotted["name"], json!("api.example.com"));
    // As Cloudflare does: a name outside the zone is taken as relative to it.
    let outside = f.created(a("www.example.org", "192.0.2.1"));
    assert_eq!(outside["name"], json!("www.example.org.example.com"));
}

#[test]
fn identical_record_is_refused_with_81058() {
    let mut f = Fixture::new();
    f.created(a("www.example.com", "192.0.2.1"));
    let again = f.create(json!({"type": "A", "name": "WWW.example.com", "content": "192.0.2.1", "ttl": 60, "comment": "other"}));
    assert_eq!(
        error(&again),
        (400, 81058, "An identical record already exists.".to_owned())
    );
    // Another value at the same name is a record of its own.
    f.created(a("www.example.com", "192.0.2.2"));
    assert_eq!(f.state.zones[0].records.len(), 2);
}

#[test]
fn cname_beside_addresses_is_refused() {
    let mut f = Fixture::new();
    f.created(a("www.example.com", "192.0.2.1"));
    let cname = f.create(
        json!({"type": "CNAME", "name": "www.example.com", "content": "elsewhere.example.net"}),
    );
    assert_eq!(error(&cname).1, 81053);
    assert!(
        error(&cname)
            .2
            .contains("An A, AAAA, or CNAME record with that host already exists")
    );

    f.created(
        json!({"type": "CNAME", "name": "alias.example.com", "content": "target.example.net."}),
    );
    let address =
        f.create(json!({"type": "AAAA", "name": "alias.example.com", "content": "2001:db8::1"}));
    let (status, code, message) = error(&address);
    assert_eq!((status, code), (400, 81054));
    assert!(
        message.starts_with("A CNAME record with that host already exists."),
        "{message}"
    );
    let second = f.create(
        json!({"type": "CNAME", "name": "alias.example.com", "content": "other.example.net"}),
    );
    assert_eq!(error(&second).1, 81053);
    // TXT beside a CNAME is accepted, as Cloudflare documents only A/AAAA/CNAME clashes.
    f.created(json!({"type": "TXT", "name": "alias.example.com", "content": "hello"}));
}

#[test]
fn contents_are_validated() {
    let mut f = Fixture::new();
    for (body, code, message) in [
        (
            a("x", "2001:db8::1"),
            9005,
            "Content for A record must be a valid IPv4 address.",
        ),
        (
            a("x", "192.0.2.300"),
            9005,
            "Content for A record must be a valid IPv4 address.",
        ),
        (
            json!({"type": "AAAA", "name": "x", "content": "192.0.2.1"}),
            9006,
            "Content for AAAA record must be a valid IPv6 address.",
        ),
        (
            json!({"type": "CNAME", "name": "x", "content": "not a host"}),
            9007,
            "Content for CNAME record is invalid.",
        ),
        (
            json!({"type": "TXT", "name": "x", "content": "y".repeat(zone::TXT_MAX + 1)}),
            9101,
            "Content for TXT record must be at most 2048 characters.",
        ),
        (
            json!({"type": "BOGUS", "name": "x", "content": "y"}),
            9000,
            "DNS record type is invalid.",
        ),
        (
            json!({"name": "x", "content": "y"}),
            9000,
            "DNS record type is invalid.",
        ),
        (
            json!({"type": "A", "content": "192.0.2.1"}),
            9007,
            "DNS record name is required.",
        ),
        (
            json!({"type": "A", "name": "bad..name", "content": "192.0.2.1"}),
            9007,
            "DNS record name is invalid.",
        ),
        (
            json!({"type": "A", "name": "x"}),
            9009,
            "Content is required.",
        ),
        (
            json!({"type": "MX", "name": "x", "content": "mx.example.net"}),
            9100,
            "MX records require a priority between 0 and 65535.",
        ),
    ] {
        let answer = f.create(body.clone());
        assert_eq!(error(&answer), (400, code, message.to_owned()), "{body}");
    }
    assert!(f.state.zones[0].records.is_empty());
    let bad_json = {
        let path = f.records_path();
        let request = Request {
            method: Method::POST,
            path: format!("/client/v4{path}"),
            query: String::new(),
            authorization: Some(format!("Bearer {TOKEN}")),
            body: b"{not json".to_vec(),
        };
        http::back(&mut f.state, &request, Instant::now())
    };
    assert_eq!(
        error(&bad_json),
        (400, 9207, "Request body is invalid.".to_owned())
    );
    let v6 = f.created(json!({"type": "AAAA", "name": "v6", "content": "2001:DB8:0:0::1"}));
    assert_eq!(v6["content"], json!("2001:db8::1"));
}

#[test]
fn ttl_must_be_automatic_or_within_range() {
    let mut f = Fixture::new();
    for ttl in [0, 2, 59, 86_401] {
        let answer =
            f.create(json!({"type": "A", "name": "x", "content": "192.0.2.1", "ttl": ttl}));
        assert_eq!(
            error(&answer),
            (
                400,
                9021,
                "TTL must be between 60 and 86400 seconds, or 1 for Automatic.".to_owned()
            ),
            "ttl {ttl}"
        );
    }
    for (i, ttl) in [1, 60, 86_400].into_iter().enumerate() {
        let created = f.created(
            json!({"type": "A", "name": "x", "content": format!("192.0.2.{i}"), "ttl": ttl}),
        );
        assert_eq!(created["ttl"], json!(ttl));
    }
}

#[test]
fn only_public_a_aaaa_and_cname_can_be_proxied() {
    let mut f = Fixture::new();
    let txt = f.create(json!({"type": "TXT", "name": "t", "content": "x", "proxied": true}));
    assert_eq!(
        error(&txt),
        (400, 9004, "This record type cannot be proxied.".to_owned())
    );
    let private =
        f.create(json!({"type": "A", "name": "p", "content": "10.0.0.5", "proxied": true}));
    assert_eq!(
        error(&private),
        (
            400,
            9003,
            "Target 10.0.0.5 is not allowed for a proxied record.".to_owned()
        )
    );
    let proxied = f.created(
        json!({"type": "A", "name": "w", "content": "203.0.113.9", "proxied": true, "ttl": 300}),
    );
    assert_eq!(
        (proxied["proxied"].clone(), proxied["ttl"].clone()),
        (json!(true), json!(1))
    );
    let private = f.created(json!({"type": "A", "name": "p", "content": "10.0.0.5"}));
    assert_eq!(private["proxiable"], json!(false));
    let txt = f.created(json!({"type": "TXT", "name": "t", "content": "x"}));
    assert_eq!(txt["proxiable"], json!(false));
}

#[test]
fn comment_length_follows_the_plan() {
    let mut f = Fixture::new();
    let long = "c".repeat(101);
    let refused = f.create(json!({"type": "TXT", "name": "t", "content": "x", "comment": long}));
    assert_eq!(
        error(&refused),
        (
            400,
            9313,
            "DNS record comment exceeds the maximum length of 100 characters.".to_owned()
        )
    );
    // Characters, not bytes.
    f.created(json!({"type": "TXT", "name": "t", "content": "x", "comment": "é".repeat(100)}));
    f.state.comment_limit = 500;
    f.created(json!({"type": "TXT", "name": "t", "content": "y", "comment": long}));
}

#[test]
fn srv_takes_data_and_shows_cloudflares_content() {
    let mut f = Fixture::new();
    let created = f.created(json!({
        "type": "SRV", "name": "_http._tcp.example.com", "ttl": 60,
        "data": {"priority": 10, "weight": 5, "port": 8080, "target": "web-1.example.com."},
    }));
    assert_eq!(created["content"], json!("5 8080 web-1.example.com"));
    assert_eq!(created["priority"], json!(10));
    assert_eq!(
        created["data"],
        json!({"priority": 10, "weight": 5, "port": 8080, "target": "web-1.example.com"})
    );
    assert_eq!(
        f.contents(),
        ["_http._tcp.example.com SRV 10 5 8080 web-1.example.com"]
    );
    let same = f.create(json!({"type": "SRV", "name": "_http._tcp", "data": {"priority": 10, "weight": 5, "port": 8080, "target": "web-1.example.com"}}));
    assert_eq!(error(&same).1, 81058);
    let other_priority = f.create(json!({"type": "SRV", "name": "_http._tcp", "data": {"priority": 20, "weight": 5, "port": 8080, "target": "web-1.example.com"}}));
    assert_eq!(other_priority.status, StatusCode::OK);
    let bad = f.create(json!({"type": "SRV", "name": "_http._tcp", "data": {"priority": 10, "weight": 5, "port": 70000, "target": "x.example.com"}}));
    assert_eq!(error(&bad).1, 9101);
    let mx =
        f.created(json!({"type": "MX", "name": "@", "content": "mx.example.net", "priority": 10}));
    assert_eq!(
        (mx["content"].clone(), mx["priority"].clone()),
        (json!("mx.example.net"), json!(10))
    );
}

#[test]
fn missing_and_malformed_record_ids() {
    let mut f = Fixture::new();
    let path = format!("{}/{}", f.records_path(), zone::new_id());
    for method in ["GET", "PATCH", "PUT", "DELETE"] {
        let answer = f.call(method, &path, Some(json!({})));
        assert_eq!(
            error(&answer),
            (404, 81044, "Record does not exist.".to_owned()),
            "{method}"
        );
    }
    let path = format!("{}/not-an-id", f.records_path());
    let answer = f.call("GET", &path, None);
    let (status, code, message) = error(&answer);
    assert_eq!((status, code), (400, 7003));
    assert!(
        message.contains("perhaps your object identifier is invalid?"),
        "{message}"
    );
    assert_eq!(answer.body["errors"][1]["code"], json!(7000));
    let answer = f.call("GET", "/zones/short/dns_records", None);
    assert_eq!(error(&answer).1, 7003);
    let answer = f.call("GET", "/nothing/here", None);
    assert_eq!(error(&answer).1, 7003);
    let answer = f.call("DELETE", "/zones", None);
    assert_eq!(error(&answer).0, 405);
}

#[test]
fn patch_merges_put_replaces_delete_removes() {
    let mut f = Fixture::new();
    let created = f.created(
        json!({"type": "A", "name": "w", "content": "192.0.2.1", "ttl": 300, "comment": "mine"}),
    );
    let path = format!("{}/{}", f.records_path(), created["id"].as_str().unwrap());
    let patched = f.call("PATCH", &path, Some(json!({"content": "192.0.2.2"})));
    assert_eq!(patched.body["result"]["content"], json!("192.0.2.2"));
    assert_eq!(patched.body["result"]["comment"], json!("mine"));
    assert_eq!(patched.body["result"]["ttl"], json!(300));
    assert_eq!(patched.body["result"]["created_on"], created["created_on"]);
    let cleared = f.call("PATCH", &path, Some(json!({"comment": null})));
    assert_eq!(cleared.body["result"]["comment"], Value::Null);

    let put = f.call(
        "PUT",
        &path,
        Some(json!({"type": "A", "name": "w", "content": "192.0.2.3"})),
    );
    assert_eq!(
        put.body["result"]["ttl"],
        json!(1),
        "PUT replaces every field"
    );
    assert_eq!(put.body["result"]["id"], created["id"]);
    let incomplete = f.call("PUT", &path, Some(json!({"content": "192.0.2.4"})));
    assert_eq!(error(&incomplete).1, 9000);

    f.created(a("w", "192.0.2.9"));
    let clash = f.call("PATCH", &path, Some(json!({"content": "192.0.2.9"})));
    assert_eq!(error(&clash).1, 81058);
    // Patching a record to its own value is no clash.
    let same = f.call("PATCH", &path, Some(json!({"content": "192.0.2.3"})));
    assert_eq!(same.status, StatusCode::OK);

    let deleted = f.call("DELETE", &path, None);
    assert_eq!(deleted.body["result"], json!({"id": created["id"]}));
    assert_eq!(error(&f.call("DELETE", &path, None)).1, 81044);
}

#[test]
fn batch_runs_deletes_patches_puts_posts_in_that_order() {
    let mut f = Fixture::new();
    let old =
        f.created(json!({"type": "A", "name": "w", "content": "192.0.2.1", "comment": "i-1"}));
    let keep = f.created(a("k", "192.0.2.7"));
    let other = f.created(a("o", "192.0.2.8"));
    // The post re-creates what the delete removes, and the patch moves a record
    // onto a value only free once the delete has run: both need Cloudflare's order.
    let answer = f.batch(json!({
        "posts": [{"type": "A", "name": "w", "content": "192.0.2.1", "comment": "i-2"}],
        "puts": [{"id": other["id"], "type": "A", "name": "o", "content": "192.0.2.10", "ttl": 60}],
        "patches": [{"id": keep["id"], "name": "w"}],
        "deletes": [{"id": old["id"]}],
    }));
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let result = &answer.body["result"];
    assert_eq!(result["deletes"][0]["id"], old["id"]);
    assert_eq!(result["patches"][0]["name"], json!("w.example.com"));
    assert_eq!(result["puts"][0]["ttl"], json!(60));
    assert_eq!(result["posts"][0]["comment"], json!("i-2"));
    assert_eq!(
        f.contents(),
        [
            "o.example.com A 192.0.2.10",
            "w.example.com A 192.0.2.1",
            "w.example.com A 192.0.2.7"
        ]
    );
    assert_eq!(f.state.stats.applied_batches, 1);
    assert_eq!(f.state.stats.requests["POST batch"], 1);
}

#[test]
fn batch_is_all_or_nothing_and_names_the_failing_operation() {
    let mut f = Fixture::new();
    let existing = f.created(a("w", "192.0.2.1"));
    let before = f.contents();
    for (body, pointer, code) in [
        (
            json!({"deletes": [{"id": existing["id"]}], "posts": [a("n", "192.0.2.5"), a("n", "192.0.2.5")]}),
            "/posts/1",
            81058,
        ),
        (
            json!({"posts": [a("n", "192.0.2.5")], "deletes": [{"id": zone::new_id()}]}),
            "/deletes/0",
            81044,
        ),
        (
            json!({"posts": [a("n", "192.0.2.5"), {"type": "A", "name": "m", "content": "x"}]}),
            "/posts/1",
            9005,
        ),
        (
            json!({"deletes": [{"id": existing["id"]}], "patches": [{"id": existing["id"], "ttl": 120}]}),
            "/patches/0",
            81044,
        ),
        (
            json!({"patches": [{"id": existing["id"], "ttl": 5}]}),
            "/patches/0",
            9021,
        ),
    ] {
        let answer = f.batch(body.clone());
        assert_eq!(error(&answer).1, code, "{body}");
        assert_eq!(
            answer.body["errors"][0]["source"]["pointer"],
            json!(pointer),
            "{body}"
        );
        assert_eq!(f.contents(), before, "nothing applied for {body}");
    }
    assert_eq!(f.state.stats.applied_batches, 0);
    assert_eq!(f.state.stats.failed, 5);
    let too_many: Vec<Value> = (0..=200)
        .map(|i| a("n", &format!("10.0.{}.{}", i / 250, i % 250)))
        .collect();
    let answer = f.batch(json!({ "posts": too_many }));
    assert!(
        error(&answer).2.contains("maximum of 200"),
        "{}",
        answer.body
    );
    let empty = f.batch(json!({}));
    assert_eq!(
        empty.body["result"],
        json!({"deletes": [], "patches": [], "puts": [], "posts": []})
    );
}

#[test]
fn pagination_reports_result_info() {
    let mut f = Fixture::new();
    for i in 0..250 {
        f.created(a("many", &format!("10.0.{}.{}", i / 200, i % 200)));
    }
    let first = f.list("");
    assert_eq!(first.body["result"].as_array().unwrap().len(), 100);
    assert_eq!(
        first.body["result_info"],
        json!({"page": 1, "per_page": 100, "count": 100, "total_count": 250, "total_pages": 3})
    );
    let last = f.list("page=3&per_page=100");
    assert_eq!(last.body["result_info"]["count"], json!(50));
    let beyond = f.list("page=4");
    assert_eq!(beyond.body["result"], json!([]));
    assert_eq!(beyond.body["result_info"]["total_pages"], json!(3));
    let big = f.list("per_page=5000");
    assert_eq!(big.body["result_info"]["count"], json!(250));
    // Pages do not overlap and together hold every record.
    let mut seen = std::collections::BTreeSet::new();
    for page in 1..=3 {
        for record in f.list(&format!("page={page}&per_page=100")).body["result"]
            .as_array()
            .unwrap()
        {
            assert!(seen.insert(record["id"].as_str().unwrap().to_owned()));
        }
    }
    assert_eq!(seen.len(), 250);
    for query in ["per_page=0", "per_page=5000001", "page=0", "page=x"] {
        let path = format!("{}?{query}", f.records_path());
        let answer = f.call("GET", &path, None);
        assert_eq!(error(&answer).0, 400, "{query}");
    }
}

#[test]
fn list_filters() {
    let mut f = Fixture::new();
    f.created(json!({"type": "A", "name": "web", "content": "192.0.2.1", "comment": "dnsreg:i-1"}));
    f.created(json!({"type": "A", "name": "web", "content": "192.0.2.2", "comment": "dnsreg:i-2"}));
    f.created(json!({"type": "A", "name": "web", "content": "192.0.2.3", "comment": "by hand"}));
    f.created(json!({"type": "AAAA", "name": "web", "content": "2001:db8::1"}));
    f.created(json!({"type": "TXT", "name": "_dnsreg.i-1", "content": "v=1"}));
    let contents = |answer: &Answer| -> Vec<String> {
        answer.body["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["content"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        contents(&f.list("name=web.example.com&type=A")),
        ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    );
    assert_eq!(
        contents(&f.list("name=WEB.example.com.&type=AAAA")).len(),
        1
    );
    assert_eq!(
        contents(&f.list("name=web")),
        Vec::<String>::new(),
        "name is the FQDN"
    );
    assert_eq!(contents(&f.list("content=192.0.2.2")), ["192.0.2.2"]);
    assert_eq!(contents(&f.list("comment=dnsreg%3Ai-1")), ["192.0.2.1"]);
    assert_eq!(
        contents(&f.list("comment.startswith=dnsreg%3A")),
        ["192.0.2.1", "192.0.2.2"]
    );
    assert_eq!(contents(&f.list("comment.absent")).len(), 2);
    assert_eq!(
        contents(&f.list("type=TXT&content=192.0.2.3&match=any")),
        ["v=1", "192.0.2.3"]
    );
    assert_eq!(
        contents(&f.list("type=A&order=content&direction=desc")),
        ["192.0.2.3", "192.0.2.2", "192.0.2.1"]
    );
    assert_eq!(
        f.list("type=A").body["result_info"]["total_count"],
        json!(3)
    );
}

#[test]
fn zones_are_found_by_name_and_paged() {
    let mut f = Fixture::new();
    for i in 0..30 {
        let id = zone::new_id();
        f.state.zones.push(Zone {
            id,
            name: format!("z{i:02}.test"),
            created_on: std::time::SystemTime::now(),
            records: Vec::new(),
        });
    }
    let found = f.call("GET", "/zones?name=Example.com", None);
    assert_eq!(found.body["result"][0]["id"], json!(f.zone));
    assert_eq!(found.body["result"][0]["name"], json!("example.com"));
    assert_eq!(found.body["result_info"]["total_count"], json!(1));
    let none = f.call("GET", "/zones?name=example.org", None);
    assert_eq!(none.body["result"], json!([]));
    let all = f.call("GET", "/zones", None);
    assert_eq!(
        all.body["result_info"],
        json!({"page": 1, "per_page": 20, "count": 20, "total_count": 31, "total_pages": 2})
    );
    assert_eq!(error(&f.call("GET", "/zones?per_page=51", None)).0, 400);
    let zone = f.call("GET", &format!("/zones/{}", f.zone), None);
    assert_eq!(zone.body["result"]["status"], json!("active"));
}

/// Every field the Zone schema requires (the official SDKs, generated from
/// it, refuse a zone without them), with the types it gives them.
#[test]
fn zones_have_every_field_the_schema_requires() {
    let mut f = Fixture::new();
    let listed = f.call("GET", "/zones?name=example.com", None);
    let single = f.call("GET", &format!("/zones/{}", f.zone), None);
    for zone in [&listed.body["result"][0], &single.body["result"]] {
        let has = |key: &str| {
            zone.get(key)
                .unwrap_or_else(|| panic!("{key} missing: {zone}"))
        };
        assert!(has("id").is_string());
        assert!(has("name").is_string());
        assert!(has("development_mode").is_number());
        for key in ["created_on", "modified_on", "activated_on"] {
            assert!(has(key).as_str().is_some_and(|t| t.ends_with('Z')), "{key}");
        }
        assert!(
            has("name_servers")
                .as_array()
                .is_some_and(|ns| ns.len() == 2)
        );
        // Nullable, but present.
        for key in [
            "original_name_servers",
            "original_registrar",
            "original_dnshost",
        ] {
            assert!(has(key).is_null(), "{key}");
        }
        let account = has("account");
        assert!(account["id"].is_string() && account["name"].is_string());
        let owner = has("owner");
        assert_eq!(owner["type"], json!("user"));
        assert!(owner["id"].as_str().is_some_and(|id| id.len() == 32));
        assert!(owner["email"].is_string());
        let meta = has("meta");
        assert_eq!(meta["step"], json!(2));
        for key in ["custom_certificate_quota", "page_rule_quota"] {
            assert!(meta[key].is_u64(), "meta.{key}");
        }
        for key in [
            "phishing_detected",
            "cdn_only",
            "dns_only",
            "foundation_dns",
        ] {
            assert_eq!(meta[key], json!(false), "meta.{key}");
        }
        let plan = has("plan");
        assert_eq!(plan["legacy_id"], json!("free"));
        assert!(plan["price"].is_number() && plan["currency"].is_string());
        assert!(plan["is_subscribed"].is_boolean() && plan["can_subscribe"].is_boolean());
        assert_eq!(has("type"), &json!("full"));
        assert_eq!(has("paused"), &json!(false));
    }
    assert_eq!(listed.body["result"][0], single.body["result"]);
}

#[test]
fn authentication_and_permissions() {
    let mut f = Fixture::new();
    let path = f.records_path();
    let missing = f.send("GET", &path, None, None);
    assert_eq!(error(&missing).0, 400);
    assert_eq!(missing.body["errors"][0]["code"], json!(9106));
    for header in ["Token abc", "Bearer", "Bearer a b", "bearer edit-token"] {
        let answer = f.send("GET", &path, Some(header), None);
        assert_eq!(
            error(&answer),
            (400, 6003, "Invalid request headers".to_owned()),
            "{header}"
        );
        assert_eq!(
            answer.body["errors"][0]["error_chain"],
            json!([{"code": 6111, "message": "Invalid format for Authorization header"}])
        );
    }
    let unknown = f.send("GET", &path, Some("Bearer nope"), None);
    assert_eq!(
        error(&unknown),
        (403, 9109, "Invalid access token".to_owned())
    );

    let reader = format!("Bearer {READER}");
    assert_eq!(
        f.send("GET", &path, Some(&reader), None).status,
        StatusCode::OK
    );
    let write = f.send("POST", &path, Some(&reader), Some(a("w", "192.0.2.1")));
    assert_eq!(
        error(&write),
        (403, 10000, "Authentication error".to_owned())
    );
    let batch = f.send(
        "POST",
        &format!("{path}/batch"),
        Some(&reader),
        Some(json!({})),
    );
    assert_eq!(error(&batch).1, 10000);

    // A token scoped to another zone sees neither this zone nor its records.
    f.state.tokens.insert(
        "scoped".to_owned(),
        Token {
            dns_edit: true,
            zones: Some(vec!["example.org".to_owned()]),
        },
    );
    let listed = f.send(
        "GET",
        "/zones?name=example.com",
        Some("Bearer scoped"),
        None,
    );
    assert_eq!(listed.body["result"], json!([]));
    let records = f.send("GET", &path, Some("Bearer scoped"), None);
    assert_eq!(
        error(&records),
        (403, 10000, "Authentication error".to_owned())
    );
    let unknown_zone = f.call(
        "GET",
        &format!("/zones/{}/dns_records", zone::new_id()),
        None,
    );
    assert_eq!(error(&unknown_zone).1, 10000);
    assert_eq!(f.state.stats.failed, 10);
}

#[test]
fn rate_limit_is_a_sliding_window_then_a_block_of_a_window() {
    let mut f = Fixture::new();
    assert_eq!(f.state.window.limit, Some(CLOUDFLARE_RATE_LIMIT));
    f.state.window.limit = Some((3, Duration::from_secs(300)));
    let request = Request {
        method: Method::GET,
        path: format!("/client/v4/zones/{}/dns_records", f.zone),
        query: String::new(),
        authorization: Some(format!("Bearer {TOKEN}")),
        body: Vec::new(),
    };
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut back = |ms: u64| http::back(&mut f.state, &request, at(ms));
    // The window slides: at 0, 100 s and 200 s three requests are admitted.
    for i in 0..3 {
        assert_eq!(back(i * 100_000).status, StatusCode::OK);
    }
    let refused = back(200_500);
    assert_eq!(
        error(&refused),
        (
            429,
            971,
            "Please wait and consider throttling your request speed".to_owned()
        )
    );
    // "All API calls for the next five minutes will be blocked."
    assert_eq!(refused.retry_after, Some(300));
    // At 300 s the first request has left the window, but the block is on
    // until 500.5 s: refused, with the seconds left, rounded up.
    let early = back(300_000);
    assert_eq!(error(&early).1, 971);
    assert_eq!(early.retry_after, Some(201));
    assert_eq!(back(500_499).retry_after, Some(1), "the block did not grow");
    // A client that waited its Retry-After gets through, and the window is
    // empty by then.
    for ms in [500_500, 500_600, 500_700] {
        assert_eq!(back(ms).status, StatusCode::OK);
    }
    assert_eq!(back(500_800).retry_after, Some(300));
    let stats = &f.state.stats;
    assert_eq!((stats.rate_limited, stats.early_retries), (4, 2));
    f.state.window.limit = None;
    f.state.window.blocked_until = None;
    for _ in 0..2000 {
        assert_eq!(
            http::back(&mut f.state, &request, t0).status,
            StatusCode::OK
        );
    }
}

#[test]
fn a_window_of_whole_seconds_or_not() {
    let mut window = super::Window::new(Some((1, Duration::from_millis(1500))));
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    assert_eq!(window.admit(t0), Ok(()));
    // A window of 1.5 s blocks for 2 s: the Retry-After, a whole number of
    // seconds, is the time the block really ends.
    assert_eq!(
        window.admit(at(10)),
        Err(super::Refusal {
            retry_after_secs: 2,
            early: false
        })
    );
    assert_eq!(
        window.admit(at(2009)),
        Err(super::Refusal {
            retry_after_secs: 1,
            early: true
        })
    );
    assert_eq!(window.admit(at(2010)), Ok(()));
}

#[test]
fn faults_come_in_order_after_authentication() {
    let mut f = Fixture::new();
    let path = f.records_path();
    f.state.faults.extend([
        CfFault::ServerError(503),
        CfFault::Delay(Duration::from_millis(5)),
        CfFault::Drop,
        CfFault::Reset,
        CfFault::RateLimited {
            retry_after_secs: 7,
        },
    ]);
    // An unauthenticated request does not use a fault up.
    assert_eq!(
        f.send("GET", &path, None, None).status,
        StatusCode::BAD_REQUEST
    );
    let unavailable = f.call("POST", &path, Some(a("w", "192.0.2.1")));
    assert_eq!(error(&unavailable).0, 503);
    assert!(
        f.state.zones[0].records.is_empty(),
        "a failed request changes nothing"
    );
    let request = Request {
        method: Method::GET,
        path: format!("/client/v4{path}"),
        query: String::new(),
        authorization: Some(format!("Bearer {TOKEN}")),
        body: Vec::new(),
    };
    assert!(matches!(
        http::front(&mut f.state, &request),
        Front::Continue(Some(d)) if d == Duration::from_millis(5)
    ));
    assert!(matches!(http::front(&mut f.state, &request), Front::Drop));
    assert!(matches!(http::front(&mut f.state, &request), Front::Reset));
    // Then the 429, and the block it starts: an early retry is refused too.
    let throttled = f.call("GET", &path, None);
    assert_eq!((error(&throttled).0, error(&throttled).1), (429, 971));
    assert_eq!(throttled.retry_after, Some(7));
    assert_eq!(error(&f.call("GET", &path, None)).0, 429);
    assert!(f.state.faults.is_empty());
}

#[test]
fn write_faults_let_reads_pass_and_wait_for_a_write() {
    let mut f = Fixture::new();
    let path = f.records_path();
    f.state.write_faults.push_back(CfFault::ServerError(502));
    assert_eq!(f.call("GET", &path, None).status, StatusCode::OK);
    let failed = f.call("POST", &path, Some(a("w", "192.0.2.1")));
    assert_eq!(error(&failed).0, 502);
    assert!(f.state.zones[0].records.is_empty());
    assert!(f.state.write_faults.is_empty());
    assert_eq!(f.create(a("w", "192.0.2.1")).status, StatusCode::OK);
}

#[test]
fn batch_unsupported_spares_single_calls() {
    let mut f = Fixture::new();
    f.state.batch_unsupported = 2;
    assert_eq!(f.create(a("w", "192.0.2.1")).status, StatusCode::OK);
    assert_eq!(
        error(&f.batch(json!({"posts": [a("w", "192.0.2.2")]}))).0,
        405
    );
    assert_eq!(f.list("").status, StatusCode::OK);
    assert_eq!(error(&f.batch(json!({}))).0, 405);
    assert_eq!(
        f.batch(json!({"posts": [a("w", "192.0.2.2")]})).status,
        StatusCode::OK
    );
    assert_eq!(f.contents().len(), 2);
}

#[test]
fn stats_name_each_kind_of_request() {
    let mut f = Fixture::new();
    let created = f.created(a("w", "192.0.2.1"));
    let path = format!("{}/{}", f.records_path(), created["id"].as_str().unwrap());
    f.call("GET", &path, None);
    f.call("PATCH", &path, Some(json!({"ttl": 60})));
    f.call("PUT", &path, Some(a("w", "192.0.2.2")));
    f.call("DELETE", &path, None);
    f.list("");
    f.call("GET", "/zones", None);
    f.batch(json!({}));
    f.call("GET", "/elsewhere", None);
    let requests = &f.state.stats.requests;
    for (key, n) in [
        ("POST dns_records", 1),
        ("GET dns_records", 2),
        ("PATCH dns_records", 1),
        ("PUT dns_records", 1),
        ("DELETE dns_records", 1),
        ("GET zones", 1),
        ("POST batch", 1),
        ("unknown", 1),
    ] {
        assert_eq!(requests.get(key), Some(&n), "{key}: {requests:?}");
    }
    assert_eq!(f.state.stats.total(), 9);
    assert_eq!(f.state.stats.failed, 1);
}

/// A whole HTTP/1.1 request with a bearer token, for [`probe::first_read`].
fn raw_request(server: &CloudflareServer, method: &str, path: &str, body: &str) -> String {
    let base = server.url();
    let host = base
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap();
    format!(
        "{method} /client/v4{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn addr(server: &CloudflareServer) -> std::net::SocketAddr {
    let base = server.url();
    base.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn reset_ends_the_connection_with_a_tcp_reset_and_drop_with_a_clean_close() {
    let server = CloudflareServer::start();
    let zone = server.create_zone("example.com");
    server.add_token(TOKEN, true);
    let records = format!("/zones/{zone}/dns_records");
    let list = raw_request(&server, "GET", &records, "");

    server.fail_next(1, CfFault::Drop);
    let dropped = probe::connect(addr(&server));
    let dropped_socket = dropped.server_socket;
    assert_eq!(
        { dropped }.first_read(&list).unwrap(),
        0,
        "Drop: end of stream, no byte"
    );

    server.fail_next(1, CfFault::Reset);
    let mut reset = probe::connect(addr(&server));
    assert_eq!(
        reset.first_read(&list).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "Reset: connection reset by peer"
    );
    assert!(probe::first_read(addr(&server), &list).unwrap() > 0);

    // A reset write is not applied, and the next one goes through.
    server.fail_next_writes(1, CfFault::Reset);
    let body = json!({"type": "A", "name": "reset", "content": "192.0.2.1", "ttl": 300});
    let write = raw_request(&server, "POST", &records, &body.to_string());
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
    assert_eq!(server.pending_faults(), 0);

    // Neither keeps the server's sockets (hyper's and the duplicate) open.
    assert_eq!(probe::settle_fds_of(dropped_socket, 0), 0);
    assert_eq!(probe::settle_fds_of(reset.server_socket, 0), 0);
}

impl Fixture {
    /// A request with the edit token that arrives at `now`.
    fn call_at(&mut self, method: &str, path: &str, now: Instant) -> Answer {
        let request = Request {
            method: Method::from_bytes(method.as_bytes()).unwrap(),
            path: format!("/client/v4{path}"),
            query: String::new(),
            authorization: Some(format!("Bearer {TOKEN}")),
            body: Vec::new(),
        };
        match http::front_at(&mut self.state, &request, now) {
            Front::Reply(answer) => answer,
            Front::Continue(None) => http::back(&mut self.state, &request, now),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn an_injected_rate_limit_blocks_until_its_retry_after_and_waits_are_measured() {
    let mut f = Fixture::new();
    let path = f.records_path();
    f.state.window.limit = None;
    f.state.faults.extend([
        CfFault::RateLimited {
            retry_after_secs: 2,
        },
        CfFault::ServerError(503),
    ]);
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let limited = f.call_at("GET", &path, at(0));
    assert_eq!(error(&limited).0, 429);
    assert_eq!(limited.retry_after, Some(2));
    // Back too early: refused with the time left, the next fault kept for later.
    let early = f.call_at("GET", &path, at(1500));
    assert_eq!((error(&early).0, early.retry_after), (429, Some(1)));
    assert_eq!(f.state.faults.len(), 1);
    // Waited as told (from the early 429's second): the fault, then served.
    assert_eq!(error(&f.call_at("GET", &path, at(2500))).0, 503);
    assert_eq!(f.call_at("GET", &path, at(2600)).status, StatusCode::OK);
    let stats = &f.state.stats;
    assert_eq!(
        (
            stats.rate_limited,
            stats.early_retries,
            stats.ignored_retry_after
        ),
        (2, 1, 1)
    );
    let ms = Duration::from_millis;
    assert_eq!(
        stats.retry_waits,
        [
            RetryWait {
                retry_after: Duration::from_secs(2),
                waited: ms(1500)
            },
            RetryWait {
                retry_after: Duration::from_secs(1),
                waited: ms(1000)
            },
        ]
    );
    assert!(!stats.retry_waits[0].patient() && stats.retry_waits[1].patient());

    assert_eq!(f.state.stats.ignored_retry_after, 1);
}

#[test]
fn writes_that_meet_a_changed_zone_count_as_conflicts() {
    let mut f = Fixture::new();
    let created = f.created(a("w", "192.0.2.1"));
    let id = created["id"].as_str().unwrap().to_owned();
    let record = format!("{}/{id}", f.records_path());
    // An identical record: 81058.
    assert_eq!(error(&f.create(a("w", "192.0.2.1"))).1, 81058);
    assert_eq!(f.state.stats.conflicts, 1);
    assert_eq!(f.call("DELETE", &record, None).status, StatusCode::OK);
    // Gone: deleting or patching it again, alone or in a batch, is 81044.
    assert_eq!(error(&f.call("DELETE", &record, None)).1, 81044);
    assert_eq!(
        error(&f.call("PATCH", &record, Some(json!({"ttl": 60})))).1,
        81044
    );
    let batch = f.batch(json!({"deletes": [{"id": id}], "posts": [a("v", "192.0.2.2")]}));
    assert_eq!(error(&batch).1, 81044);
    assert_eq!(f.state.stats.conflicts, 4);
    // Reading a record that is gone is no conflict, nor is another refusal.
    assert_eq!(error(&f.call("GET", &record, None)).1, 81044);
    assert_eq!(error(&f.create(a("w", "not-an-address"))).1, 9005);
    assert_eq!(f.state.stats.conflicts, 4);
}

#[test]
fn a_held_request_waits_for_the_test_then_is_served_or_dropped() {
    use crate::{Release, Requests};
    let server = CloudflareServer::start();
    let zone = server.create_zone("example.com");
    server.add_token(TOKEN, true);
    let records = format!("/zones/{zone}/dns_records");
    let body = json!({"type": "A", "name": "held", "content": "192.0.2.1", "ttl": 300});
    let write = raw_request(&server, "POST", &records, &body.to_string());
    let read = raw_request(&server, "GET", &records, "");

    server.hold(1, Requests::Writes);
    assert!(probe::first_read(addr(&server), &read).unwrap() > 0);
    assert_eq!(server.seen_since_hold(), 0, "reads are not counted");
    std::thread::scope(|s| {
        let held = s.spawn(|| probe::first_read(addr(&server), &write));
        assert!(server.wait_held(Duration::from_secs(10)));
        assert!(!held.is_finished());
        assert!(server.values(&zone, "held.example.com", "A").is_empty());
        server.release(Release::Serve);
        assert_eq!(server.values(&zone, "held.example.com", "A"), ["192.0.2.1"]);
        assert!(held.join().unwrap().unwrap() > 0, "answered");
    });
    assert_eq!(server.seen_since_hold(), 1);

    server.hold(2, Requests::Any);
    let other = json!({"type": "A", "name": "dropped", "content": "192.0.2.2", "ttl": 300});
    let other = raw_request(&server, "POST", &records, &other.to_string());
    assert!(probe::first_read(addr(&server), &read).unwrap() > 0);
    std::thread::scope(|s| {
        let held = s.spawn(|| probe::first_read(addr(&server), &other));
        assert!(server.wait_held(Duration::from_secs(10)));
        assert_eq!(server.seen_since_hold(), 2);
        server.release(Release::Drop);
        assert_eq!(held.join().unwrap().unwrap(), 0, "closed without an answer");
    });
    assert!(server.values(&zone, "dropped.example.com", "A").is_empty());
    assert!(probe::first_read(addr(&server), &read).unwrap() > 0);
    assert_eq!(server.seen_since_hold(), 3, "counted after the hold too");
    assert!(!server.is_holding());
}
