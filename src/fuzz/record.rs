//! Record values as other machines write them: Route53's and Cloudflare's
//! presentation of record data, the registry lines every instance reads from
//! every other instance's TXT rrset, and the line form of the state file.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::{Input, Target, cases, corpus};
use crate::record::{DomainName, RData, RType, RrKey, Value};
use crate::registry::{self, Registry};

const TYPES: [RType; 5] = [RType::A, RType::AAAA, RType::SRV, RType::TXT, RType::PTR];

const TOKENS: &[&[u8]] = &[
    b"A",
    b"AAAA",
    b"SRV",
    b"TXT",
    b"PTR",
    b" A ",
    b" TXT \"",
    b"\\032",
    b"\\\"",
    b"\\",
    b"\" \"",
    b"example.com.",
    b"_dnsreg.",
    b"dnsreg1 ",
    b"dnsreg1-want ",
    b"dnsreg1-drop ",
    b"dnsreg1-lease ",
    b"::ffff:1.2.3.4",
    b"1.2.3.4",
];

fn zone() -> DomainName {
    DomainName::new("example.com").unwrap()
}

/// Whatever a line parses to, its canonical form parses back to it.
fn check_line(text: &str) {
    if let Some(v) = Value::from_line(text) {
        let line = v.to_line();
        assert_eq!(
            Value::from_line(&line).as_ref(),
            Some(&v),
            "the line form {line:?} does not parse back"
        );
        // The JSON form (state file, Cloudflare memory) too.
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), v);
        let key = v.key();
        assert_eq!(key.to_string().parse::<RrKey>().as_ref(), Ok(&key));
    }
    let _ = serde_json::from_str::<Value>(&serde_json::to_string(text).unwrap());
    for t in TYPES {
        if let Some(d) = RData::parse(t, text) {
            assert_eq!(d.rtype(), t);
            let shown = d.to_string();
            assert_eq!(
                RData::parse(t, &shown).as_ref(),
                Some(&d),
                "{t} data {shown:?} does not parse back"
            );
        }
    }
    match DomainName::new(text) {
        Ok(n) => {
            assert!(n.as_str().ends_with('.') && n.as_str().len() <= 254);
            assert_eq!(DomainName::new(n.as_str()).as_ref(), Ok(&n));
            let _ = registry::label_of(&n, &zone());
            let _ = n.is_in(&zone());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let _ = DomainName::resolve(text, &zone());
    if let Ok(k) = text.parse::<RrKey>() {
        assert_eq!(k.to_string().parse::<RrKey>().as_ref(), Ok(&k));
    }
    let _ = registry::instance_label(text);
}

#[test]
fn record_lines() {
    let t = Target::new("record-line");
    let seeds = corpus("record-line");
    t.run_bytes(&seeds, TOKENS, |i: &Input| {
        let text = i.text();
        check_line(&text);
        for line in text.lines() {
            check_line(line);
        }
    });
}

/// A registry rrset as read from another instance: whatever its strings,
/// parsing gives what writing it back and parsing again gives.
fn check_registry(text: &str) {
    let name = registry::name(&zone(), "i-0abc").unwrap();
    let values: registry::Values = text
        .split('\n')
        .map(|line| Value {
            name: name.clone(),
            // A TXT record of several strings is read as their concatenation.
            data: RData::Txt(line.split('\u{1}').map(str::to_string).collect()),
        })
        .collect();
    let r = Registry::parse(&values);
    let _ = r.expired(registry::unix_now());
    let _ = r.claims().count();
    let _ = registry::claimants(&values);
    if let Ok(written) = r.to_values(&name) {
        let again = Registry::parse(&written);
        let mut want = r.clone();
        if written.is_empty() {
            // An empty registry is written as nothing at all, lease included.
            want.lease = None;
        }
        assert_eq!(again, want, "the registry does not read back as written");
    }
    for v in r.claims() {
        let key = registry::claim_key(&zone(), v);
        assert!(key.name.is_in(&registry::root(&zone())));
    }
}

#[test]
fn registry_lines() {
    let t = Target::new("registry");
    let seeds = corpus("registry");
    t.run_bytes(&seeds, TOKENS, |i: &Input| check_registry(&i.text()));
}

// ---------------------------------------------------------------------------
// Generated values: every value dnsreg can hold survives its line form
// ---------------------------------------------------------------------------

fn name() -> impl Strategy<Value = DomainName> {
    // Labels that are always valid (no hyphen at either end), so that no
    // generated name is rejected.
    let end = prop::sample::select(b"abz09_".to_vec());
    let label = (
        end.clone(),
        prop::collection::vec(prop::sample::select(b"abz09-_".to_vec()), 0..10),
        end,
    )
        .prop_map(|(a, mid, b)| {
            let mut l = vec![a];
            if !mid.is_empty() {
                l.extend(mid);
                l.push(b);
            }
            String::from_utf8(l).unwrap()
        });
    prop::collection::vec(label, 1..5)
        .prop_map(|labels| DomainName::new(&labels.join(".")).unwrap())
}

fn rdata() -> impl Strategy<Value = RData> {
    let text = prop::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter);
    prop_oneof![
        any::<u32>().prop_map(|a| RData::A(Ipv4Addr::from(a))),
        any::<u128>().prop_map(|a| RData::Aaaa(Ipv6Addr::from(a))),
        (any::<u16>(), any::<u16>(), any::<u16>(), name()).prop_map(|(p, w, port, t)| {
            RData::Srv {
                priority: p,
                weight: w,
                port,
                target: t,
            }
        }),
        prop::collection::vec(text, 1..4).prop_map(RData::Txt),
        name().prop_map(RData::Ptr),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    (name(), rdata()).prop_map(|(name, data)| Value { name, data })
}

#[test]
fn generated_values_round_trip() {
    let t = Target::new("record-generated");
    t.run(
        &[],
        |_| unreachable!(),
        (
            value(),
            prop::collection::btree_set(value(), 0..6),
            any::<Option<u64>>(),
        ),
        cases(super::DEFAULT_CASES),
        |(v, _, _)| v.to_line().into_bytes(),
        |(v, others, lease): &(Value, BTreeSet<Value>, Option<u64>)| {
            let line = v.to_line();
            assert_eq!(Value::from_line(&line).as_ref(), Some(v), "line {line:?}");
            let json = serde_json::to_string(v).unwrap();
            assert_eq!(serde_json::from_str::<Value>(&json).as_ref().ok(), Some(v));
            // A registry holding these values reads back as written.
            let name = registry::name(&zone(), "i-1").unwrap();
            let r = Registry {
                owned: others.clone(),
                wanted: [v.clone()].into(),
                dropped: BTreeSet::new(),
                lease: *lease,
            };
            if let Ok(written) = r.to_values(&name) {
                assert_eq!(Registry::parse(&written), r);
            }
        },
    );
}
