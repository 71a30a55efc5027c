use super::*;
use crate::record::{RData, Value};
use hickory_proto::op::{OpCode, UpdateMessage as _};
use hickory_proto::rr::DNSClass;

fn value(name: &str, data: RData) -> Value {
    Value {
        name: DomainName::new(name).unwrap(),
        data,
    }
}

#[test]
fn values_survive_the_trip_through_hickory_records() {
    for v in [
        value("a.example.com", RData::A("192.0.2.1".parse().unwrap())),
        value("a.example.com", RData::Aaaa("2001:db8::1".parse().unwrap())),
        value(
            "_x._tcp.example.com",
            RData::Srv {
                priority: 1,
                weight: 2,
                port: 8080,
                target: DomainName::new("h.example.com").unwrap(),
            },
        ),
        value(
            "i._dnsreg.example.com",
            RData::Txt(vec![
                "dnsreg1 a.example.com. A 192.0.2.1".into(),
                "b=2".into(),
            ]),
        ),
        value(
            "_http._tcp.example.com",
            RData::Ptr(DomainName::new("web._http._tcp.example.com").unwrap()),
        ),
    ] {
        let r = hrecord(&v, 60);
        assert_eq!(r.ttl, 60);
        assert_eq!(value_of(&v.key(), &r.data), Some(v.clone()));
    }
}

fn snapshot(key: &RrKey, values: &[&Value], ttl: u32) -> Snapshot {
    let mut s = Snapshot::default();
    s.sets.insert(
        key.clone(),
        RrSet {
            raw: values.iter().map(|v| hrecord(v, ttl)).collect(),
            values: values.iter().map(|v| (*v).clone()).collect(),
            ttl: Some(ttl),
        },
    );
    s
}

fn provider() -> Rfc2136 {
    Rfc2136::unchecked(
        "ns",
        Rfc2136Config {
            zone: DomainName::new("example.com").unwrap(),
            server: crate::config::ServerAddr::parse("127.0.0.1:53").unwrap(),
            tsig_key_file: None,
        },
    )
}

fn txt(name: &str, text: &str) -> Value {
    value(name, RData::Txt(vec![text.into()]))
}

fn record(value: &Value, ttl: u32) -> crate::record::Record {
    crate::record::Record {
        value: value.clone(),
        ttl,
    }
}

#[test]
fn an_update_guards_only_the_ownership_rrsets_and_names_single_records() {
    let a1 = value("www.example.com", RData::A("192.0.2.1".parse().unwrap()));
    let a2 = value("www.example.com", RData::A("192.0.2.2".parse().unwrap()));
    let a3 = value("www.example.com", RData::A("192.0.2.3".parse().unwrap()));
    let zone = DomainName::new("example.com").unwrap();
    let claim = registry::claim_name(&zone, &a3);
    let held = txt(claim.as_str(), "i-2");
    let mine = txt(
        "i-1._dnsreg.example.com",
        "dnsreg1 www.example.com. A 192.0.2.3",
    );
    let key = a1.key();
    let mut snap = snapshot(&key, &[&a1, &a2], 60);
    snap.sets.extend(snapshot(&held.key(), &[&held], 60).sets);
    let mut edit = Edit::default();
    edit.add.insert(key.clone(), vec![record(&a3, 30)]);
    edit.remove.insert(key.clone(), vec![a2.clone()]);
    edit.ttl.insert(key.clone(), 60);
    edit.add
        .insert(held.key(), vec![record(&txt(claim.as_str(), "i-1"), 60)]);
    edit.add.insert(mine.key(), vec![record(&mine, 60)]);
    let m = provider().update_message(&snap, &edit);
    assert_eq!(m.metadata.op_code, OpCode::Update);
    // Prerequisites: the claim exactly as read (TTL 0, class IN) and the
    // new registry absent (class NONE); none on www, which others write
    // too and which changes value by value.
    let pre = m.prerequisites();
    assert_eq!(pre.len(), 2, "{pre:?}");
    let on = |name: &DomainName| pre.iter().find(|r| r.name == hname(name)).unwrap();
    let c = on(&claim);
    assert_eq!((c.ttl, c.dns_class), (0, DNSClass::IN));
    assert_eq!(value_of(&held.key(), &c.data), Some(held.clone()));
    assert_eq!(on(&mine.name).dns_class, DNSClass::NONE);
    assert!(pre.iter().all(|r| r.name != hname(&a1.name)));
    // Updates: delete a2 (class NONE), add a3 at the rrset's TTL; a1 untouched.
    let up: Vec<&HRecord> = m
        .updates()
        .iter()
        .filter(|r| r.name == hname(&a1.name))
        .collect();
    assert_eq!(up.len(), 2, "{up:?}");
    assert_eq!(up[0].dns_class, DNSClass::NONE);
    assert_eq!(value_of(&key, &up[0].data), Some(a2));
    assert_eq!(up[1].dns_class, DNSClass::IN);
    assert_eq!(up[1].ttl, 60);
    assert_eq!(value_of(&key, &up[1].data), Some(a3));
}

#[test]
fn a_ttl_change_re_adds_the_values_that_stay() {
    let a1 = value("www.example.com", RData::A("192.0.2.1".parse().unwrap()));
    let key = a1.key();
    let snap = snapshot(&key, &[&a1], 300);
    let mut edit = Edit::default();
    edit.ttl.insert(key.clone(), 60);
    let m = provider().update_message(&snap, &edit);
    assert!(m.prerequisites().is_empty());
    let up = m.updates();
    assert_eq!(up.len(), 1);
    assert_eq!((up[0].ttl, up[0].dns_class), (60, DNSClass::IN));
}

/// A busy server (BIND's SERVFAIL past `transfers-out`) is paced like
/// throttling, tried until the deadline, not given up after a few
/// transient tries; a refused key is counted as denied; saying where and
/// what was being done keeps each what it is.
#[test]
fn a_busy_server_is_throttling_and_a_refused_key_is_denied() {
    use crate::metrics::Outcome;
    let busy = Fail::Busy {
        why: "SERVFAIL (too many transfers at once?)".into(),
        retry_after: None,
    };
    assert!(matches!(Outcome::of_fail(&busy), Outcome::Throttled));
    let busy = busy.context("rfc2136: listing");
    assert!(matches!(
        busy,
        Fail::Busy {
            retry_after: None,
            ..
        }
    ));
    assert_eq!(
        busy.to_string(),
        "busy: rfc2136: listing: SERVFAIL (too many transfers at once?)"
    );
    let flaky = Fail::Transient("connection reset".into()).context("rfc2136: listing");
    assert!(matches!(Outcome::of_fail(&flaky), Outcome::Error));
    assert!(matches!(flaky, Fail::Transient(_)));
    let refused = Fail::denied("BADSIG: another secret").context("rfc2136: listing");
    assert!(matches!(Outcome::of_fail(&refused), Outcome::Denied));
}
