use std::net::IpAddr;

use super::*;
use crate::record::{DomainName, RData};

fn name(s: &str) -> DomainName {
    DomainName::new(s).unwrap()
}

fn rec(n: &str, data: RData) -> Record {
    Record {
        value: Value {
            name: name(n),
            data,
        },
        ttl: 60,
    }
}

fn web() -> Vec<Record> {
    vec![
        rec("web1.local", RData::A("10.0.0.5".parse().unwrap())),
        rec("web1.local", RData::Aaaa("fd00::5".parse().unwrap())),
        rec(
            "_http._tcp.local",
            RData::Ptr(name("front._http._tcp.local")),
        ),
        rec(
            "front._http._tcp.local",
            RData::Srv {
                priority: 0,
                weight: 0,
                port: 8080,
                target: name("web1.local"),
            },
        ),
        rec(
            "front._http._tcp.local",
            RData::Txt(vec!["path=/".into(), "flag".into()]),
        ),
    ]
}

#[test]
fn a_service_becomes_one_registration_with_its_hosts_addresses() {
    let regs = registrations(&web(), &name("local")).unwrap();
    assert_eq!(regs.len(), 1, "{regs:?}");
    let r = &regs["front._http._tcp.local."];
    assert_eq!(r.service_type, "_http._tcp.local.");
    assert_eq!(r.instance, "front");
    assert_eq!(r.host, "web1.local.");
    assert_eq!(
        r.addresses,
        [
            "10.0.0.5".parse::<IpAddr>().unwrap(),
            "fd00::5".parse().unwrap()
        ]
    );
    assert_eq!(r.port, 8080);
    assert_eq!(
        r.txt,
        [("path".into(), "/".into()), ("flag".into(), String::new())]
    );
    // Every record asked for is published by it.
    let all: Values = web().into_iter().map(|r| r.value).collect();
    assert_eq!(r.values, all);
}

#[test]
fn a_host_without_a_service_gets_a_placeholder_and_an_empty_txt_none() {
    let mut records = web();
    records.push(rec("other.local", RData::A("10.0.0.6".parse().unwrap())));
    // RFC 6763 §6.1: the one empty string of a service without TXT data.
    records[4] = rec("front._http._tcp.local", RData::Txt(vec![String::new()]));
    let regs = registrations(&records, &name("local")).unwrap();
    assert_eq!(regs["front._http._tcp.local."].txt, []);
    let p = &regs[&format!("other.{PLACEHOLDER_TYPE}.local.")];
    assert_eq!(p.host, "other.local.");
    assert_eq!(p.port, 0);
    assert_eq!(p.addresses, ["10.0.0.6".parse::<IpAddr>().unwrap()]);
}

#[test]
fn nothing_wanted_is_no_registration_and_strays_are_refused() {
    assert!(registrations(&[], &name("local")).unwrap().is_empty());
    let e = registrations(
        &[rec(
            "web1.example.com",
            RData::A("10.0.0.5".parse().unwrap()),
        )],
        &name("local"),
    )
    .unwrap_err();
    assert!(e.contains("outside local."), "{e}");
    // A service whose host has no address cannot be registered.
    let e = registrations(&web()[2..], &name("local")).unwrap_err();
    assert!(e.contains("no address"), "{e}");
}

#[test]
fn change_between_registrations_lists_what_comes_and_goes() {
    let before = registrations(&web(), &name("local")).unwrap();
    let mut moved = web();
    moved[0] = rec("web1.local", RData::A("10.0.0.9".parse().unwrap()));
    let after = registrations(&moved, &name("local")).unwrap();
    let c = Change::between(&before, &after);
    assert_eq!(c.added, [moved[0].value.clone()]);
    assert_eq!(c.removed, [web()[0].value.clone()]);
    let gone = Change::between(&before, &Default::default());
    assert_eq!(gone.removed.len(), 5);
    assert!(gone.owned.is_empty());
}

#[test]
fn addresses_are_on_link_only_inside_an_interfaces_subnet() {
    let links: Vec<(IpAddr, u8)> = vec![
        ("10.53.53.1".parse().unwrap(), 24),
        ("fd53::1".parse().unwrap(), 64),
    ];
    assert!(on_link("10.53.53.200".parse().unwrap(), &links));
    assert!(on_link("fd53::ff".parse().unwrap(), &links));
    assert!(!on_link("203.0.113.5".parse().unwrap(), &links));
    assert!(!on_link("fd54::1".parse().unwrap(), &links));
    assert!(!on_link("10.53.53.1".parse().unwrap(), &[]));
}
