//! Hosted zones, their record sets, and the rules a change batch must obey.
//!
//! This is where Route53's semantics live, away from HTTP: record sets keyed and
//! ordered as ListResourceRecordSets orders them (name with labels reversed,
//! then type, then SetIdentifier), and [`Zone::apply`], which validates a whole
//! batch against a working copy, change after change, and commits it only when
//! every change passed ("Change Batches and Transactional Changes" in the
//! ChangeResourceRecordSets API reference). Error texts are Route53's as seen
//! in its answers ("Tried to create resource record set [...] but it already
//! exists", "... do not match the current values", "... but it was not found",
//! "RRSet with DNS name x. is not permitted in zone z.", the CNAME and
//! SetIdentifier conflicts, "A HostedZone must contain exactly one SOA
//! record."); the few rules whose wording was never seen (mixed routing
//! policies, multivalue on CNAME, SOA off the apex, several CNAME values) use
//! wording of the same style.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::RrSet;
use super::names::Name;
use super::values;

/// What a change does (the ChangeAction enumeration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Create,
    Delete,
    Upsert,
}

/// One validated-for-shape change of a batch.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub(crate) action: Action,
    pub(crate) name: Name,
    /// The record set as requested; its `name` is already Route53's printed form.
    pub(crate) set: RrSet,
}

/// The position of a record set in a zone: ListResourceRecordSets' order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    sort: Vec<u8>,
    rtype: String,
    set_id: Option<String>,
}

impl Key {
    pub(crate) fn new(name: &Name, rtype: &str, set_id: Option<&str>) -> Key {
        Key {
            sort: name.record_sort_key(),
            rtype: rtype.to_owned(),
            set_id: set_id.map(str::to_owned),
        }
    }
}

/// A hosted zone and everything in it.
#[derive(Clone, Debug)]
pub(crate) struct Zone {
    /// The bare id (`Z…`), without `/hostedzone/`.
    pub(crate) id: String,
    pub(crate) name: Name,
    pub(crate) caller_reference: String,
    pub(crate) comment: Option<String>,
    pub(crate) private: bool,
    /// The delegation set, without trailing dots (as GetHostedZone prints them).
    pub(crate) name_servers: Vec<String>,
    rrsets: BTreeMap<Key, RrSet>,
}

/// Where a listing starts: a name, optionally a type, optionally an identifier.
pub(crate) struct Start {
    pub(crate) name: Name,
    pub(crate) rtype: Option<String>,
    pub(crate) set_id: Option<String>,
}

/// One page of a listing, and where the next page starts.
pub(crate) struct Page {
    pub(crate) sets: Vec<RrSet>,
    pub(crate) next: Option<(String, String, Option<String>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    Simple,
    Weighted,
    MultiValue,
}

fn policy(set: &RrSet) -> Policy {
    if set.weight.is_some() {
        Policy::Weighted
    } else if set.multivalue_answer.is_some() {
        Policy::MultiValue
    } else {
        Policy::Simple
    }
}

/// `[name='www.example.com.', type='A']`, with `, set-identifier='…'` when set.
fn label(set: &RrSet) -> String {
    match &set.set_identifier {
        Some(id) => format!(
            "[name='{}', type='{}', set-identifier='{id}']",
            set.name, set.rtype
        ),
        None => format!("[name='{}', type='{}']", set.name, set.rtype),
    }
}

/// Same values in any order, same TTL and routing: what DELETE must match.
fn same_content(current: &RrSet, given: &RrSet) -> bool {
    let mut a = current.records.clone();
    let mut b = given.records.clone();
    a.sort();
    b.sort();
    current.ttl == given.ttl
        && current.weight == given.weight
        && current.multivalue_answer == given.multivalue_answer
        && current.set_identifier == given.set_identifier
        && a == b
}

impl Zone {
    /// A new zone holding the SOA and NS record sets Route53 creates for it
    /// ("NS and SOA records that Amazon Route 53 creates for a public hosted zone").
    pub(crate) fn new(
        id: String,
        name: Name,
        caller_reference: String,
        comment: Option<String>,
        private: bool,
        name_servers: Vec<String>,
    ) -> Zone {
        let mut zone = Zone {
            id,
            name,
            caller_reference,
            comment,
            private,
            name_servers,
            rrsets: BTreeMap::new(),
        };
        let apex = zone.name.to_string();
        let soa = format!(
            "{}. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400",
            zone.name_servers[0]
        );
        let ns: Vec<String> = zone.name_servers.iter().map(|n| format!("{n}.")).collect();
        let ns: Vec<&str> = ns.iter().map(String::as_str).collect();
        zone.put(RrSet::simple(&apex, "SOA", 900, &[&soa]));
        zone.put(RrSet::simple(&apex, "NS", 172_800, &ns));
        zone
    }

    /// Number of record sets, SOA and NS included (ResourceRecordSetCount).
    pub(crate) fn count(&self) -> usize {
        self.rrsets.len()
    }

    /// Every record set in listing order.
    pub(crate) fn all(&self) -> Vec<RrSet> {
        self.rrsets.values().cloned().collect()
    }

    /// Every record set named `name` with type `rtype`, whatever its SetIdentifier.
    pub(crate) fn at(&self, name: &Name, rtype: &str) -> Vec<RrSet> {
        let from = Key::new(name, rtype, None);
        self.rrsets
            .range(from..)
            .take_while(|(k, _)| k.sort == name.record_sort_key() && k.rtype == rtype)
            .map(|(_, set)| set.clone())
            .collect()
    }

    /// Replaces (or adds) the record set with `set`'s key, no questions asked.
    /// `set.name` must already be a name of this zone in printed form.
    pub(crate) fn put(&mut self, set: RrSet) {
        let name = Name::parse(&set.name).expect("record set names are checked before put");
        let key = Key::new(&name, &set.rtype, set.set_identifier.as_deref());
        self.rrsets.insert(key, set);
    }

    /// Removes the record set with this key, if there is one.
    pub(crate) fn remove(&mut self, name: &Name, rtype: &str, set_id: Option<&str>) {
        self.rrsets.remove(&Key::new(name, rtype, set_id));
    }

    /// Up to `max` record sets from `start` on, and where the next page begins.
    pub(crate) fn list(&self, start: Option<&Start>, max: usize) -> Page {
        let lower = match start {
            None => Bound::Unbounded,
            Some(s) => Bound::Included(Key {
                sort: s.name.record_sort_key(),
                rtype: s.rtype.clone().unwrap_or_default(),
                set_id: s.set_id.clone(),
            }),
        };
        let mut iter = self.rrsets.range((lower, Bound::Unbounded));
        let sets: Vec<RrSet> = iter
            .by_ref()
            .take(max)
            .map(|(_, set)| set.clone())
            .collect();
        let next = iter.next().map(|(_, set)| {
            (
                set.name.clone(),
                set.rtype.clone(),
                set.set_identifier.clone(),
            )
        });
        Page { sets, next }
    }

    /// Applies a batch all or nothing. `Err` holds every message, in order.
    pub(crate) fn apply(&mut self, changes: &[Change]) -> Result<(), Vec<String>> {
        let mut work = self.rrsets.clone();
        let mut errors = Vec::new();
        for change in changes {
            if let Err(mut problems) = self.apply_one(&mut work, change) {
                errors.append(&mut problems);
            }
        }
        let apex = self.name.record_sort_key();
        let soa = work
            .keys()
            .filter(|k| k.sort == apex && k.rtype == "SOA")
            .count();
        if soa != 1 {
            errors.push("A HostedZone must contain exactly one SOA record.".to_owned());
        }
        if !work.keys().any(|k| k.sort == apex && k.rtype == "NS") {
            errors.push(
                "A HostedZone must contain at least one NS record for the zone itself.".to_owned(),
            );
        }
        if errors.is_empty() {
            self.rrsets = work;
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn apply_one(
        &self,
        work: &mut BTreeMap<Key, RrSet>,
        change: &Change,
    ) -> Result<(), Vec<String>> {
        let set = &change.set;
        let zone = &self.name;
        if !change.name.is_within(zone) {
            return Err(vec![format!(
                "RRSet with DNS name {} is not permitted in zone {zone}",
                set.name
            )]);
        }
        let mut problems = Vec::new();
        for (i, value) in set.records.iter().enumerate() {
            if let Err(message) = values::check(&set.rtype, value) {
                problems.push(message);
            } else if set.records[..i].contains(value) {
                problems.push(format!("Duplicate Resource Record: '{value}'"));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let key = Key::new(&change.name, &set.rtype, set.set_identifier.as_deref());
        match change.action {
            Action::Delete => match work.get(&key) {
                None => Err(vec![format!(
                    "Tried to delete resource record set {} but it was not found",
                    label(set)
                )]),
                Some(current) if !same_content(current, set) => Err(vec![format!(
                    "Tried to delete resource record set {} but the values provided do not match the current values",
                    label(set)
                )]),
                Some(_) => {
                    work.remove(&key);
                    Ok(())
                }
            },
            Action::Create if work.contains_key(&key) => Err(vec![format!(
                "Tried to create resource record set {} but it already exists",
                label(set)
            )]),
            Action::Create | Action::Upsert => {
                self.check_placement(work, &key, change)?;
                work.insert(key, set.clone());
                Ok(())
            }
        }
    }

    /// The rules a new or replaced record set must satisfy against its neighbours.
    fn check_placement(
        &self,
        work: &BTreeMap<Key, RrSet>,
        key: &Key,
        change: &Change,
    ) -> Result<(), Vec<String>> {
        let set = &change.set;
        let zone = &self.name;
        let (name, rtype) = (&set.name, set.rtype.as_str());
        let at_apex = change.name == *zone;
        let fail = |message: String| Err(vec![message]);
        if rtype == "CNAME" && at_apex {
            return fail(format!(
                "RRSet of type CNAME with DNS name {name} is not permitted at apex in zone {zone}"
            ));
        }
        if rtype == "SOA" && !at_apex {
            return fail(format!(
                "RRSet of type SOA with DNS name {name} is not permitted because SOA records are only allowed at the apex of zone {zone}"
            ));
        }
        if matches!(rtype, "CNAME" | "SOA") && set.records.len() > 1 {
            return fail(format!(
                "Invalid Resource Record: FATAL problem: {rtype}RRSetHasMultipleValues (A record set of type {rtype} can have only one value) encountered with '{name}'"
            ));
        }
        match policy(set) {
            Policy::MultiValue if !values::MULTIVALUE_TYPES.contains(&rtype) => {
                return fail(format!(
                    "RRSet with DNS name {name}, type {rtype} cannot use multivalue answer routing; allowed types are {}",
                    values::MULTIVALUE_TYPES.join(", ")
                ));
            }
            Policy::Weighted if !values::WEIGHTED_TYPES.contains(&rtype) => {
                return fail(format!(
                    "RRSet with DNS name {name}, type {rtype} cannot use weighted routing; allowed types are {}",
                    values::WEIGHTED_TYPES.join(", ")
                ));
            }
            _ => {}
        }
        let same_name = work
            .range(
                Key {
                    sort: key.sort.clone(),
                    rtype: String::new(),
                    set_id: None,
                }..,
            )
            .take_while(|(k, _)| k.sort == key.sort);
        let mut problems = Vec::new();
        for (other_key, other) in same_name {
            if other_key == key {
                continue;
            }
            if other_key.rtype == rtype {
                match (&set.set_identifier, &other.set_identifier) {
                    (None, _) => {
                        problems.push(format!("RRSet with DNS name {name}, type {rtype} cannot be created as other RRSets exist with the same name and type."));
                    }
                    (Some(id), None) => problems.push(format!(
                        "RRSet with DNS name {name}, type {rtype}, SetIdentifier {id} cannot be created as a non-weighted set exists with the same name and type."
                    )),
                    (Some(id), Some(_)) if policy(other) != policy(set) => problems.push(format!(
                        "RRSet with DNS name {name}, type {rtype}, SetIdentifier {id} cannot be created because other RRSets with the same name and type use a different routing policy."
                    )),
                    _ => continue,
                }
                break;
            }
            if rtype == "CNAME" {
                problems.push(format!(
                    "RRSet of type CNAME with DNS name {name} is not permitted as it conflicts with other records with the same DNS name in zone {zone}"
                ));
                break;
            }
            if other_key.rtype == "CNAME" {
                // Two spaces before CNAME: Route53's own wording.
                problems.push(format!(
                    "RRSet of type {rtype} with DNS name {name} is not permitted because a conflicting RRSet of type  CNAME with the same DNS name already exists in zone {zone}"
                ));
                break;
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}
