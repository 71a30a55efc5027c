use super::api::{ApiMessage, BatchRefused, RecordJson, classify, needed, value_of};
use crate::fail::Fail;
use reqwest::{Method, StatusCode};
use serde_json::{Value as Json, json};

fn rec(rtype: &str, content: &str, data: Option<Json>) -> RecordJson {
    RecordJson {
        id: "x".into(),
        name: "_a._tcp.example.com".into(),
        rtype: rtype.into(),
        content: content.into(),
        ttl: 60,
        proxied: false,
        comment: None,
        data,
        priority: Some(5),
    }
}

#[test]
fn srv_is_read_from_data_or_content() {
    let want = "_a._tcp.example.com. SRV 5 10 8080 h1.example.com.";
    let from_data = rec(
        "SRV",
        "10 8080 h1.example.com",
        Some(json!({"priority": 5, "weight": 10, "port": 8080, "target": "h1.example.com"})),
    );
    assert_eq!(value_of(&from_data).unwrap().to_line(), want);
    assert_eq!(
        value_of(&rec("SRV", "10 8080 h1.example.com", None))
            .unwrap()
            .to_line(),
        want
    );
    assert_eq!(
        value_of(&rec("SRV", "5 10 8080 h1.example.com", None))
            .unwrap()
            .to_line(),
        want
    );
}

#[test]
fn txt_content_quoted_or_bare() {
    let quoted = value_of(&rec("TXT", "\"dnsreg1 a b\"", None)).unwrap();
    let bare = value_of(&rec("TXT", "dnsreg1 a b", None)).unwrap();
    assert_eq!(quoted, bare);
}

#[test]
fn errors_are_classified() {
    let e = |code: i64| {
        vec![ApiMessage {
            code,
            message: "m".into(),
        }]
    };
    assert!(matches!(
        classify(StatusCode::BAD_REQUEST, &e(81058), true, "X"),
        Fail::Conflict(_)
    ));
    assert!(matches!(
        classify(StatusCode::NOT_FOUND, &e(81044), false, "X"),
        Fail::Conflict(_)
    ));
    assert!(matches!(
        classify(StatusCode::TOO_MANY_REQUESTS, &e(971), false, "X"),
        Fail::Busy { .. }
    ));
    assert!(matches!(
        classify(StatusCode::BAD_GATEWAY, &[], true, "X"),
        Fail::Transient(_)
    ));
    let refused = classify(StatusCode::NOT_FOUND, &e(7000), true, "X");
    assert!(BatchRefused::within(&refused).is_some(), "{refused}");
    let not_found = classify(StatusCode::NOT_FOUND, &e(10000), false, "X");
    assert!(matches!(not_found, Fail::Permanent(_)), "{not_found}");
    assert!(BatchRefused::within(&not_found).is_none());
    // A zone id Cloudflare does not know, on any path: to be looked up anew.
    for (code, batch) in [(7003, false), (7003, true), (7000, false)] {
        let Fail::Permanent(gone) = classify(StatusCode::BAD_REQUEST, &e(code), batch, "X") else {
            panic!("{code}")
        };
        let gone = gone.context("cf: reading");
        assert!(crate::fail::ZoneGone::within(&gone), "{gone:#}");
    }
    let needs = needed(&Method::POST, "/zones/z/dns_records/batch");
    let Fail::Denied(m) = classify(StatusCode::FORBIDDEN, &e(10000), false, needs) else {
        panic!()
    };
    assert!(
        m.to_string()
            .contains("needs Zone → DNS → Edit (to change records)"),
        "{m}"
    );
    assert!(needed(&Method::GET, "/zones").contains("Zone → Zone → Read"));
    assert!(needed(&Method::GET, "/zones/z/dns_records").contains("DNS → Read or Edit"));
    let Fail::Denied(m) = classify(StatusCode::UNAUTHORIZED, &e(9109), false, "X") else {
        panic!()
    };
    assert!(m.to_string().contains("refused the API token"), "{m}");
}
