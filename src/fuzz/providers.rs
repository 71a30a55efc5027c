//! What an instance does with a provider (Cloudflare, Route53): the parts
//! the two providers' targets share.

use proptest::prelude::*;

use super::mutate::{Mutation, apply, mutation};

/// An absolute name the tests write correctly.
pub(super) fn name(s: &str) -> crate::record::DomainName {
    crate::record::DomainName::new(s).unwrap()
}

/// The value the providers' targets publish, and the rrsets they read:
/// `www A` (where it goes), a registry and an SRV rrset.
pub(super) fn mine_and_keys() -> (
    crate::record::Value,
    std::collections::BTreeSet<crate::record::RrKey>,
) {
    use crate::record::{RType, RrKey};
    let mine = crate::record::Value::from_line("www.example.com. A 203.0.113.7").unwrap();
    let keys = [
        mine.key(),
        RrKey {
            name: name("i-1._dnsreg.example.com"),
            rtype: RType::TXT,
        },
        RrKey {
            name: name("_x._tcp.example.com"),
            rtype: RType::SRV,
        },
    ]
    .into();
    (mine, keys)
}

/// Panics unless every value `snapshot` holds lies at the key it was read
/// for; asks each key's TTL.
pub(super) fn values_at_their_keys<P: crate::provider::Provider>(
    p: &P,
    snapshot: &P::Snapshot,
    keys: &std::collections::BTreeSet<crate::record::RrKey>,
) {
    for k in keys {
        for v in p.values(snapshot, k) {
            assert_eq!(v.key(), *k, "a value read for {k} is at another key");
        }
        let _ = p.ttl(snapshot, k);
    }
}

/// Panics unless every label a registry listing names is one DNS label;
/// parses each registry.
pub(super) fn registries_are_labels(
    registries: &std::collections::BTreeMap<String, crate::provider::Values>,
) {
    for (label, values) in registries {
        assert!(!label.is_empty() && !label.contains('.'), "{label:?}");
        let _ = crate::registry::Registry::parse(values);
    }
}

/// An edit adding `v` at its rrset with TTL 60.
pub(super) fn adding(v: &crate::record::Value) -> crate::provider::Edit {
    let mut edit = crate::provider::Edit::default();
    edit.add.insert(
        v.key(),
        vec![crate::record::Record {
            value: v.clone(),
            ttl: 60,
        }],
    );
    edit
}

/// An API answer's body: one of the corpus's seeds, mutated, or raw bytes.
#[derive(Clone, Debug)]
pub(super) enum Body {
    Seed(usize, Vec<Mutation>),
    Raw(Vec<u8>),
}

impl Body {
    /// Mostly a mutated seed of the `n`, sometimes raw bytes.
    pub(super) fn strategy(n: usize) -> impl Strategy<Value = Body> {
        prop_oneof![
            8 => (0..n, prop::collection::vec(mutation(), 0..5)).prop_map(|(i, m)| Body::Seed(i, m)),
            1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Body::Raw),
        ]
    }

    /// The bytes, with `tokens` of the target among those mutations insert.
    pub(super) fn bytes(&self, seeds: &[Vec<u8>], tokens: &[&[u8]]) -> Vec<u8> {
        match self {
            Body::Seed(i, m) => apply(&seeds[*i], m, seeds, tokens),
            Body::Raw(b) => b.clone(),
        }
    }
}
