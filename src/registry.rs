//! The ownership registry: what each instance says it published, kept in the
//! zone itself next to the records.
//!
//! Each instance has one TXT rrset, `<instance>._dnsreg.<zone>`, with one string
//! per line:
//!
//! - `dnsreg1 NAME TYPE DATA`: a value this instance owns (it is published, or
//!   goes in with the same atomic change);
//! - `dnsreg1-want NAME TYPE DATA`: a value this instance waits to have added to
//!   a shared rrset; any instance writing that rrset may add it for it,
//!   flipping the line to `dnsreg1` in the same atomic change (how a fleet that
//!   joins at once converges with one write per rrset and round, not one per
//!   instance: see `reconcile`);
//! - `dnsreg1-drop NAME TYPE DATA`: a value this instance (leaving) waits to
//!   have removed; whoever writes that rrset next removes it and the line;
//! - `dnsreg1-lease EXPIRY`: with `[lease]`, when the instance counts as dead
//!   (unix seconds), so that `reap` may remove what it left.
//!
//! Every registry lives under one subtree so that all of them can be listed in
//! one pass (for `reap`, and to see who else claims a value). Strings that are
//! none of these lines are ignored (and kept), so a later format can add lines.
//!
//! **Claims by name.** Where a listing of every registry needs a right a
//! machine should not need (RFC 2136: a zone transfer), who claims each value
//! is kept by name instead: a TXT rrset at
//! `<h>._claims._dnsreg.<zone>` ([`claim_name`]), with one string per claiming
//! instance's label, where `h` is derived from the value's line. An instance
//! reads the claims of just the values it wants or owns, with plain queries,
//! and changes them in the same atomic update as the values (see
//! `Provider::claims_by_name`).

use std::collections::BTreeSet;

use crate::record::{DomainName, RData, RType, RrKey, Value};

/// Values, as the provider contract speaks of them.
pub type Values = BTreeSet<Value>;

/// The prefix of an owned line: the format's version.
const OWNED: &str = "dnsreg1 ";
/// The prefix of a line asking for a value to be added.
const WANT: &str = "dnsreg1-want ";
/// The prefix of a line asking for a value to be removed.
const DROP: &str = "dnsreg1-drop ";
/// The lease line's prefix: `"dnsreg1-lease EXPIRY"`, unix seconds.
const LEASE: &str = "dnsreg1-lease ";

/// The label an instance id takes in DNS (its ownership registry name).
pub fn instance_label(id: &str) -> Result<String, String> {
    let label = id.to_ascii_lowercase();
    if label.is_empty()
        || label.len() > 63
        || !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "`{id}` cannot be used as a DNS label; use 1 to 63 letters, digits, `-` or `_`"
        ));
    }
    Ok(label)
}

/// The subtree that holds every instance's ownership registry record.
pub fn root(zone: &DomainName) -> DomainName {
    zone.child("_dnsreg").expect("`_dnsreg` is a valid label")
}

/// `<instance>._dnsreg.<zone>`: the TXT rrset of one instance's registry.
pub fn name(zone: &DomainName, instance_id: &str) -> Result<DomainName, String> {
    let label = instance_label(instance_id)?;
    root(zone).child(&label).map_err(|e| e.to_string())
}

/// The instance label of a registry name, if `name` is one (`<label>._dnsreg.<zone>`).
pub fn label_of(name: &DomainName, zone: &DomainName) -> Option<String> {
    let root = root(zone);
    if !name.is_in(&root) || *name == root {
        return None;
    }
    let rest = name.as_str().strip_suffix(root.as_str())?;
    let label = rest.strip_suffix('.')?;
    (!label.contains('.')).then(|| label.to_string())
}

/// The label under the registry subtree that holds claims kept by name.
const CLAIMS: &str = "_claims";

/// `<h>._claims._dnsreg.<zone>`: the TXT rrset naming the instances that claim
/// `value`, where claims are kept by name. `h` is the first 16 bytes of the
/// SHA-256 of the value's registry line (`NAME TYPE DATA`), in the lowercase
/// base32 DNSSEC uses for NSEC3 (26 characters): a label whatever the value.
pub fn claim_name(zone: &DomainName, value: &Value) -> DomainName {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(value.to_line().as_bytes());
    let label = data_encoding::BASE32_DNSSEC.encode(&digest[..16]);
    root(zone)
        .child(CLAIMS)
        .and_then(|c| c.child(&label))
        .expect("a base32 label under `_claims._dnsreg` is a valid name")
}

/// The claim rrset of `value` (see [`claim_name`]).
pub fn claim_key(zone: &DomainName, value: &Value) -> RrKey {
    RrKey {
        name: claim_name(zone, value),
        rtype: RType::TXT,
    }
}

/// The instance labels a claim rrset's TXT values name; strings that are not
/// a label are ignored.
pub fn claimants(values: &Values) -> BTreeSet<String> {
    values
        .iter()
        .filter_map(|v| match &v.data {
            RData::Txt(strings) => instance_label(&strings.concat()).ok(),
            _ => None,
        })
        .collect()
}

/// A claim rrset's TXT values naming exactly `labels`.
pub fn claim_values(name: &DomainName, labels: &BTreeSet<String>) -> Values {
    labels.iter().map(|l| txt(name, l.clone())).collect()
}

/// What one instance's registry rrset says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registry {
    /// The values the instance owns.
    pub owned: Values,
    /// Values it waits to have added to shared rrsets (`dnsreg1-want`).
    pub wanted: Values,
    /// Values it waits to have removed from shared rrsets (`dnsreg1-drop`).
    pub dropped: Values,
    /// When its lease expires (unix seconds), if it holds one (`[lease]`).
    pub lease: Option<u64>,
}

impl Registry {
    pub fn parse(values: &Values) -> Registry {
        let mut r = Registry::default();
        for v in values {
            let RData::Txt(strings) = &v.data else {
                continue;
            };
            let line = strings.concat();
            if let Some(rest) = line.strip_prefix(LEASE) {
                // Two lease lines (a torn manual edit): the later expiry counts.
                if let Ok(t) = rest.trim().parse::<u64>() {
                    r.lease = Some(r.lease.map_or(t, |l| l.max(t)));
                }
            } else if let Some(v) = line.strip_prefix(OWNED).and_then(Value::from_line) {
                r.owned.insert(v);
            } else if let Some(v) = line.strip_prefix(WANT).and_then(Value::from_line) {
                r.wanted.insert(v);
            } else if let Some(v) = line.strip_prefix(DROP).and_then(Value::from_line) {
                r.dropped.insert(v);
            }
        }
        r
    }

    /// Whether the lease ran out before `now` (unix seconds). Registries without
    /// a lease never expire: `reap` touches only instances that opted in.
    pub fn expired(&self, now: u64) -> bool {
        self.lease.is_some_and(|t| t < now)
    }

    /// Every value the instance still claims: owned or wanted (not dropped).
    pub fn claims(&self) -> impl Iterator<Item = &Value> {
        self.owned.iter().chain(self.wanted.iter())
    }

    /// The registry as TXT values at `name`, one per line; empty when there is
    /// nothing to say. Fails when a line is longer than a TXT string allows.
    pub fn to_values(&self, name: &DomainName) -> anyhow::Result<Values> {
        let lines = (self.owned.iter().map(|v| (OWNED, v)))
            .chain(self.wanted.iter().map(|v| (WANT, v)))
            .chain(self.dropped.iter().map(|v| (DROP, v)));
        let mut out = Values::new();
        for (prefix, v) in lines {
            let line = format!("{prefix}{}", v.to_line());
            anyhow::ensure!(
                line.len() <= 255,
                "the registry line for {v} is longer than a TXT string allows (255)"
            );
            out.insert(txt(name, line));
        }
        if let (Some(t), false) = (self.lease, out.is_empty()) {
            out.insert(txt(name, format!("{LEASE}{t}")));
        }
        Ok(out)
    }
}

fn txt(name: &DomainName, line: String) -> Value {
    Value {
        name: name.clone(),
        data: RData::Txt(vec![line]),
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(line: &str) -> Value {
        Value::from_line(line).unwrap()
    }

    #[test]
    fn lines_round_trip_and_unknown_ones_are_ignored() {
        let zone = DomainName::new("example.com").unwrap();
        let at = name(&zone, "i-1").unwrap();
        let r = Registry {
            owned: [v("www.example.com. A 192.0.2.1")].into(),
            wanted: [v("_a._tcp.example.com. SRV 0 0 80 h1.example.com.")].into(),
            dropped: [v("www.example.com. A 192.0.2.9")].into(),
            lease: Some(1_900_000_000),
        };
        let mut values = r.to_values(&at).unwrap();
        assert_eq!(values.len(), 4);
        values.insert(txt(&at, "dnsreg9-future something".into()));
        assert_eq!(Registry::parse(&values), r);
        // Nothing to say: no lease line either.
        let lonely = Registry {
            lease: Some(5),
            ..Registry::default()
        };
        assert!(lonely.to_values(&at).unwrap().is_empty());
    }

    #[test]
    fn an_instance_id_is_one_dns_label() {
        assert_eq!(instance_label("I-0ab_C").as_deref(), Ok("i-0ab_c"));
        assert!(instance_label(&"a".repeat(63)).is_ok());
        for bad in ["", &"a".repeat(64), "has.dot", "has space", "i/1", "é"] {
            assert!(instance_label(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_lease_runs_out_only_after_its_expiry_and_the_later_of_two_counts() {
        let zone = DomainName::new("example.com").unwrap();
        let at = name(&zone, "i-1").unwrap();
        let values: Values = [
            txt(&at, "dnsreg1-lease 100".into()),
            txt(&at, "dnsreg1-lease 200".into()),
        ]
        .into();
        let r = Registry::parse(&values);
        assert_eq!(r.lease, Some(200));
        assert!(!r.expired(199));
        assert!(!r.expired(200), "the expiry itself is still live");
        assert!(r.expired(201));
        assert!(!Registry::default().expired(u64::MAX), "no lease: never");
    }

    #[test]
    fn an_instance_claims_what_it_owns_and_wants_not_what_it_drops() {
        let r = Registry {
            owned: [v("www.example.com. A 192.0.2.1")].into(),
            wanted: [v("www.example.com. A 192.0.2.2")].into(),
            dropped: [v("www.example.com. A 192.0.2.3")].into(),
            lease: None,
        };
        let claims: Vec<&Value> = r.claims().collect();
        assert_eq!(
            claims,
            vec![
                &v("www.example.com. A 192.0.2.1"),
                &v("www.example.com. A 192.0.2.2")
            ]
        );
    }

    #[test]
    fn registry_names_are_found_in_the_zone_and_no_others() {
        let zone = DomainName::new("example.com").unwrap();
        let elsewhere = DomainName::new("i-1._dnsreg.example.org").unwrap();
        assert_eq!(label_of(&elsewhere, &zone), None);
        let plain = DomainName::new("www.example.com").unwrap();
        assert_eq!(label_of(&plain, &zone), None);
        assert!(unix_now() > 1_700_000_000);
    }

    #[test]
    fn a_value_has_one_claim_name_of_its_own_under_the_registry_subtree() {
        let zone = DomainName::new("example.com").unwrap();
        let a = v("www.example.com. A 192.0.2.1");
        let b = v("www.example.com. A 192.0.2.2");
        let n = claim_name(&zone, &a);
        assert_eq!(
            n,
            claim_name(&zone, &a.clone()),
            "the same value, the same name"
        );
        assert_ne!(n, claim_name(&zone, &b));
        assert!(n.as_str().ends_with("._claims._dnsreg.example.com."), "{n}");
        let label = n.as_str().split('.').next().unwrap();
        assert_eq!(label.len(), 26);
        assert!(
            label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        // Not a registry: a listing of registries never takes it for an instance.
        assert_eq!(label_of(&n, &zone), None);
        let labels: BTreeSet<String> = ["i-1".into(), "i-2".into()].into();
        let mut values = claim_values(&n, &labels);
        values.insert(txt(&n, "not a label.".into()));
        assert_eq!(claimants(&values), labels);
    }

    #[test]
    fn registry_names_and_labels() {
        let zone = DomainName::new("example.com").unwrap();
        let n = name(&zone, "I-0ABC").unwrap();
        assert_eq!(n.as_str(), "i-0abc._dnsreg.example.com.");
        assert_eq!(label_of(&n, &zone).as_deref(), Some("i-0abc"));
        assert_eq!(label_of(&root(&zone), &zone), None);
        let deeper = DomainName::new("x.i-0abc._dnsreg.example.com").unwrap();
        assert_eq!(label_of(&deeper, &zone), None);
        assert!(instance_label("has.dot").is_err());
    }
}
