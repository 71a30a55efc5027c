//! The messages: our values as hickory's records and back, the queries
//! that read an rrset and what their answers mean, and the UPDATE that
//! carries an edit (its prerequisites, deletes and adds) and what the
//! server's answer to it means.

use std::collections::BTreeSet;

use hickory_proto::op::{DnsResponse, Message, OpCode, Query, ResponseCode, UpdateMessage as _};
use hickory_proto::rr::rdata::{A, AAAA, PTR, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData as HData, Record as HRecord, RecordType};

use super::transport::{Verdict, with_edns};
use super::{Rfc2136, RrSet, Snapshot};
use crate::provider::{Edit, Fail, Written};
use crate::record::{DomainName, RData, RType, RrKey, Value};
use crate::registry;

// Conversions between our values and hickory's records.

pub(super) fn hname(name: &DomainName) -> Name {
    Name::from_ascii(name.as_str()).expect("a validated domain name is a DNS name")
}

fn htype(t: RType) -> RecordType {
    match t {
        RType::A => RecordType::A,
        RType::AAAA => RecordType::AAAA,
        RType::SRV => RecordType::SRV,
        RType::TXT => RecordType::TXT,
        RType::PTR => RecordType::PTR,
    }
}

fn hdata(data: &RData) -> HData {
    match data {
        RData::A(ip) => HData::A(A(*ip)),
        RData::Aaaa(ip) => HData::AAAA(AAAA(*ip)),
        RData::Srv {
            priority,
            weight,
            port,
            target,
        } => HData::SRV(SRV::new(*priority, *weight, *port, hname(target))),
        RData::Txt(strings) => HData::TXT(TXT::new(strings.clone())),
        RData::Ptr(target) => HData::PTR(PTR(hname(target))),
    }
}

pub(super) fn hrecord(value: &Value, ttl: u32) -> HRecord {
    HRecord::from_rdata(hname(&value.name), ttl, hdata(&value.data))
}

/// Our value for a record read from the server; `None` for data we never
/// publish (non-UTF-8 TXT, say), which is then never ours to touch.
pub(super) fn value_of(key: &RrKey, data: &HData) -> Option<Value> {
    let data = match data {
        HData::A(a) => RData::A(a.0),
        HData::AAAA(a) => RData::Aaaa(a.0),
        HData::SRV(s) => RData::Srv {
            priority: s.priority,
            weight: s.weight,
            port: s.port,
            target: DomainName::new(&s.target.to_ascii()).ok()?,
        },
        HData::TXT(t) => RData::Txt(
            t.txt_data
                .iter()
                .map(|s| String::from_utf8(s.to_vec()).ok())
                .collect::<Option<Vec<_>>>()?,
        ),
        HData::PTR(p) => RData::Ptr(DomainName::new(&p.0.to_ascii()).ok()?),
        _ => return None,
    };
    Some(Value {
        name: key.name.clone(),
        data,
    })
}

impl Rfc2136 {
    /// One query, one attempt, counted in the metrics.
    pub(super) async fn query(
        &self,
        name: &DomainName,
        rtype: RecordType,
    ) -> Result<DnsResponse, Fail> {
        use crate::metrics::Outcome;
        let result = self.query_once(name, rtype).await;
        let outcome = result.as_ref().err().map_or(Outcome::Ok, Outcome::of_fail);
        crate::metrics::get().request(&self.name, "query", outcome);
        result
    }

    async fn query_once(&self, name: &DomainName, rtype: RecordType) -> Result<DnsResponse, Fail> {
        let t = self.transport();
        let mut message = Message::query();
        message.metadata.recursion_desired = false;
        message.add_query(Query::query(hname(name), rtype));
        with_edns(&mut message);
        let answer = t.send(message).await?;
        match answer.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            ResponseCode::ServFail => return Err(Fail::Transient("SERVFAIL".into())),
            code => {
                return Err(Fail::permanent(format!(
                    "the server answered {code}: does it serve zone {} (is it the zone's primary)?",
                    self.zone.without_dot()
                )));
            }
        }
        if !answer.metadata.authoritative {
            return Err(Fail::permanent(format!(
                "the server is not authoritative for {}: point `server` at the zone's primary",
                self.zone.without_dot()
            )));
        }
        Ok(answer)
    }

    pub(super) async fn read_one(&self, key: &RrKey) -> Result<RrSet, Fail> {
        let answer = self.query(&key.name, htype(key.rtype)).await?;
        let qname = hname(&key.name);
        let raw: Vec<HRecord> = answer
            .answers
            .iter()
            .filter(|r| r.name == qname && r.record_type() == htype(key.rtype))
            .cloned()
            .collect();
        Ok(RrSet {
            values: raw.iter().filter_map(|r| value_of(key, &r.data)).collect(),
            ttl: raw.iter().map(|r| r.ttl).min(),
            raw,
        })
    }

    /// The UPDATE message for `edit` against `snapshot`.
    pub(super) fn update_message(&self, snapshot: &Snapshot, edit: &Edit) -> Message {
        let origin = hname(&self.zone);
        let mut message = Message::query();
        message.metadata.op_code = OpCode::Update;
        message.metadata.recursion_desired = false;
        let mut zone = Query::new();
        zone.set_name(origin)
            .set_query_class(DNSClass::IN)
            .set_query_type(RecordType::SOA);
        message.add_zone(zone);

        let empty = RrSet::default();
        let ownership = registry::root(&self.zone);
        // Ownership rrsets the edit rests on without changing them (presumed
        // from memory): each exactly as presumed.
        let changed = edit.keys();
        for key in edit
            .guard
            .iter()
            .filter(|k| k.name.is_in(&ownership) && !changed.contains(*k))
        {
            require_exactly(&mut message, key, snapshot.sets.get(key).unwrap_or(&empty));
        }
        for key in changed {
            let current = snapshot.sets.get(&key).unwrap_or(&empty);
            // Prerequisite, for the ownership rrsets (registries and claims)
            // only: the rrset is exactly what we read (RFC 2136 §2.4.2), or
            // absent (§2.4.3); TTL 0 and class IN / NONE as the RFC says. The
            // records themselves change value by value, guarded by the claims.
            if key.name.is_in(&ownership) {
                require_exactly(&mut message, &key, current);
            }
            // Deletes of single RRs (§2.5.4): class NONE, TTL 0, the exact data
            // as the server holds it.
            let removed: BTreeSet<&Value> = edit.remove.get(&key).into_iter().flatten().collect();
            for r in &current.raw {
                if value_of(&key, &r.data).is_some_and(|v| removed.contains(&v)) {
                    let mut r = r.clone();
                    r.ttl = 0;
                    r.dns_class = DNSClass::NONE;
                    message.add_update(r);
                }
            }
            // Adds (§2.5.1). The rrset's TTL after the edit is `edit.ttl`; when
            // it changes, the values that stay are added again with it (a
            // duplicate RR replaces the zone's, §3.4.2.2), so the rrset keeps
            // one TTL.
            let ttl = edit.ttl.get(&key).copied();
            for rec in edit.add.get(&key).into_iter().flatten() {
                message.add_update(hrecord(&rec.value, ttl.unwrap_or(rec.ttl)));
            }
            if let Some(ttl) = ttl
                && current.ttl.is_some_and(|now| now != ttl)
            {
                for r in &current.raw {
                    if value_of(&key, &r.data).is_some_and(|v| removed.contains(&v)) {
                        continue;
                    }
                    let mut r = r.clone();
                    r.ttl = ttl;
                    r.dns_class = DNSClass::IN;
                    message.add_update(r);
                }
            }
        }
        with_edns(&mut message);
        message
    }

    /// One UPDATE, one attempt.
    pub(super) async fn update(
        &self,
        snapshot: &Snapshot,
        edit: &Edit,
    ) -> Result<Written<Snapshot>, Fail> {
        let message = self.update_message(snapshot, edit);
        let t = self.transport();
        let answer = t
            .send(message)
            .await
            .map_err(|f| f.context(format!("{}: sending the update", self.what())))?;
        if answer.metadata.response_code == ResponseCode::ServFail {
            return Err(Fail::Transient(format!(
                "{}: sending the update: SERVFAIL",
                self.what()
            )));
        }
        let key = t
            .key
            .as_deref()
            .unwrap_or("no key (tsig_key_file is not set)");
        match answer.metadata.response_code {
            ResponseCode::NoError => Ok(Written {
                after: applied(snapshot, edit),
                change: None,
            }),
            // A prerequisite failed: someone changed an rrset since we read it.
            code @ (ResponseCode::NXRRSet
            | ResponseCode::YXRRSet
            | ResponseCode::NXDomain
            | ResponseCode::YXDomain) => Err(Fail::Conflict(format!(
                "the server answered {code}: an rrset changed since it was read"
            ))),
            // BIND answers a signature out of its time window with a signed
            // NOTAUTH whose TSIG record says BADTIME (and Knot one its ACL
            // refuses with BADKEY): a signed query tells which.
            ResponseCode::NotAuth => Err(Fail::Denied(anyhow::anyhow!(
                "{}: the server refused the update with NOTAUTH: {}",
                self.what(),
                match t.tsig_verdict().await {
                    Verdict::Refused(error, skew) => t.refusal(error, skew),
                    Verdict::Accepted => format!(
                        "it takes {key} for this zone but not for this update: allow the key to update it (BIND `update-policy` or `allow-update`, Knot `acl … action: update` with the record types, PowerDNS `TSIG-ALLOW-DNSUPDATE`), or point `server` at the zone's primary"
                    ),
                    Verdict::Unknown => format!(
                        "it does not accept {key} for this zone, or is not the zone's primary"
                    ),
                }
            ))),
            ResponseCode::Refused => Err(Fail::Denied(anyhow::anyhow!(
                "{}: the server refused the update (REFUSED): the zone does not allow updates with {key}; in BIND: `allow-update {{ key \"NAME\"; }};` or an update-policy granting it",
                self.what()
            ))),
            ResponseCode::NotZone => Err(Fail::Permanent(anyhow::anyhow!(
                "{}: the server answered NOTZONE: a name is outside zone {}",
                self.what(),
                self.zone.without_dot()
            ))),
            code => Err(Fail::Permanent(anyhow::anyhow!(
                "{}: the server refused the update: {code}",
                self.what()
            ))),
        }
    }
}

/// The prerequisite that the rrset at `key` is exactly `current` (RFC 2136
/// §2.4.2), or absent when `current` is empty (§2.4.3); TTL 0 and class IN
/// or NONE as the RFC says.
fn require_exactly(message: &mut Message, key: &RrKey, current: &RrSet) {
    if current.raw.is_empty() {
        let mut absent = HRecord::update0(hname(&key.name), 0, htype(key.rtype));
        absent.dns_class = DNSClass::NONE;
        message.add_pre_requisite(absent);
    }
    for r in &current.raw {
        let mut r = r.clone();
        r.ttl = 0;
        r.dns_class = DNSClass::IN;
        message.add_pre_requisite(r);
    }
}

/// `snapshot` with `edit` applied: what the server holds at those rrsets
/// once the UPDATE is accepted.
fn applied(snapshot: &Snapshot, edit: &Edit) -> Snapshot {
    let mut after = snapshot.clone();
    for key in edit.keys() {
        let set = after.sets.entry(key.clone()).or_default();
        let mut values = set.values.clone();
        for v in edit.remove.get(&key).into_iter().flatten() {
            values.remove(v);
        }
        let mut ttl = edit.ttl.get(&key).copied().or(set.ttl);
        for r in edit.add.get(&key).into_iter().flatten() {
            values.insert(r.value.clone());
            ttl = ttl.or(Some(r.ttl));
        }
        *set = RrSet::of(values, ttl);
    }
    after
}
