use super::api::{ApiMessage, CallError, RecordJson, classify, needed, value_of};
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
        CallError::Conflict(_)
    ));
    assert!(matches!(
        classify(StatusCode::NOT_FOUND, &e(81044), false, "X"),
        CallError::Conflict(_)
    ));
    assert!(matches!(
        classify(StatusCode::TOO_MANY_REQUESTS, &e(971), false, "X"),
        CallError::Busy(..)
    ));
    assert!(matches!(
        classify(StatusCode::BAD_GATEWAY, &[], true, "X"),
        CallError::Transient(_)
    ));
    assert!(matches!(
        classify(StatusCode::NOT_FOUND, &e(7000), true, "X"),
        CallError::BatchRefused(_)
    ));
    assert!(matches!(
        classify(StatusCode::NOT_FOUND, &e(7000), false, "X"),
        CallError::Permanent(_)
    ));
    let needs = needed(&Method::POST, "/zones/z/dns_records/batch");
    let CallError::Permanent(m) = classify(StatusCode::FORBIDDEN, &e(10000), false, needs) else {
        panic!()
    };
    assert!(
        m.contains("needs Zone → DNS → Edit (to change records)"),
        "{m}"
    );
    assert_eq!(
        crate::metrics::Outcome::of_text(&m),
        crate::metrics::Outcome::Denied
    );
    assert!(needed(&Method::GET, "/zones").contains("Zone → Zone → Read"));
    assert!(needed(&Method::GET, "/zones/z/dns_records").contains("DNS → Read or Edit"));
    let CallError::Permanent(m) = classify(StatusCode::UNAUTHORIZED, &e(9109), false, "X") else {
        panic!()
    };
    assert!(m.contains("refused the API token"), "{m}");
    assert_eq!(
        crate::metrics::Outcome::of_text(&m),
        crate::metrics::Outcome::Denied
    );
}
