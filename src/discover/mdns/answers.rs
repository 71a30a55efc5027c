//! What the records heard so far say, with the precedence of unicast
//! discover (SRV at NAME, else PTR, else A/AAAA), and which questions are
//! still open: a pure function of the records, so that it is unit-tested
//! without a network.

use std::net::IpAddr;

use hickory_proto::rr::rdata::SRV;
use hickory_proto::rr::{Name, Record, RecordType};

use crate::discover::Request;
use crate::discover::endpoint::Endpoint;
use crate::discover::lookup::{address, instance_label, instances, srv_records};
use crate::discover::order::{SrvAnswer, classify_srv, order, order_instances, shuffle};
use crate::discover::txt::{Txt, txt_of};
use crate::fail::Fail;

/// Every record heard in one round, each once.
#[derive(Debug, Default)]
pub(super) struct Heard(Vec<Record>);

impl Heard {
    pub(super) fn add(&mut self, records: Vec<Record>) {
        for r in records {
            let known = self.0.iter().any(|k| {
                k.name == r.name && k.record_type() == r.record_type() && k.data == r.data
            });
            if !known {
                self.0.push(r);
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The records of one type at `name`.
    fn at(&self, name: &Name, rtype: RecordType) -> Vec<Record> {
        self.0
            .iter()
            .filter(|r| r.record_type() == rtype && r.name == *name)
            .cloned()
            .collect()
    }

    /// IPv4 then IPv6 addresses of `target`, without IPv6 link-local ones.
    fn addresses(&self, target: &Name) -> Vec<IpAddr> {
        [RecordType::A, RecordType::AAAA]
            .into_iter()
            .flat_map(|t| self.at(target, t))
            .filter_map(|r| address(&r.data).filter(usable))
            .collect()
    }
}

/// Whether an address can be printed: an IPv6 link-local one (fe80::/10,
/// which avahi-daemon publishes even over IPv4) is useless without its zone
/// (`%eth0`), which an address alone cannot carry.
pub(super) fn usable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => true,
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 != 0xfe80,
    }
}

/// What to do next.
#[derive(Debug)]
pub(super) enum Step {
    /// Enough is known: print these.
    Done(Vec<Endpoint>),
    /// Ask these and listen again.
    Ask(Vec<(Name, RecordType)>),
    /// Nothing to print this round.
    Failed(Fail),
}

/// The first questions: what NAME is, as unicast discover asks them.
pub(super) fn first_questions(name: &Name) -> Vec<(Name, RecordType)> {
    [
        RecordType::SRV,
        RecordType::PTR,
        RecordType::A,
        RecordType::AAAA,
    ]
    .into_iter()
    .map(|t| (name.clone(), t))
    .collect()
}

/// What `heard` says about the request; `last` when no more questions can be
/// asked this round, so that what is complete is printed and the rest dropped.
pub(super) fn step(heard: &Heard, request: &Request, last: bool) -> Step {
    let name = &request.name;
    if heard.is_empty() {
        return if last {
            Step::Failed(Fail::Transient(format!("no responder answered for {name}")))
        } else {
            Step::Ask(first_questions(name))
        };
    }
    let srv = srv_records(heard.at(name, RecordType::SRV));
    // `--instance` is a filter over DNS-SD instances: an SRV rrset at NAME is not one.
    if !srv.is_empty() && request.instance.is_none() {
        return match classify_srv(srv) {
            SrvAnswer::Unavailable => Step::Failed(Fail::Transient(
                "service decidedly not available: its only SRV record has target \".\" (RFC 2782)"
                    .into(),
            )),
            SrvAnswer::Targets(t) => {
                let endpoints = order(t)
                    .into_iter()
                    .map(|(srv, ttl)| (Endpoint::srv(&srv, ttl, None), srv.target))
                    .collect();
                resolve(heard, request, endpoints, last)
            }
        };
    }
    let found = instances(heard.at(name, RecordType::PTR));
    if !found.is_empty() || request.instance.is_some() {
        return match request.pick(found) {
            Ok(chosen) => browse(heard, request, &chosen, last),
            Err(f) => Step::Failed(f),
        };
    }
    let mut endpoints: Vec<Endpoint> = [RecordType::A, RecordType::AAAA]
        .into_iter()
        .flat_map(|t| heard.at(name, t))
        .filter_map(|r| {
            address(&r.data)
                .filter(usable)
                .map(|ip| Endpoint::address(ip, r.ttl, request.port))
        })
        .collect();
    if endpoints.is_empty() {
        return Step::Failed(Fail::Transient(format!(
            "no SRV, PTR, A or AAAA records for {name}"
        )));
    }
    // IPv4 first (A records were taken first); within a family, a random order.
    let v4 = endpoints.iter().filter(|e| !e.target.contains(':')).count();
    let mut rng = rand::rng();
    let mut draw = |max| rand::RngExt::random_range(&mut rng, 0..=max);
    shuffle(&mut endpoints[..v4], &mut draw);
    shuffle(&mut endpoints[v4..], &mut draw);
    Step::Done(endpoints)
}

/// An instance's own name and its TXT attributes.
type DnsSd = (String, Txt);

/// DNS-SD (RFC 6763 §4): each instance's SRV and TXT, asked for when an
/// answer's additionals did not bring them.
fn browse(heard: &Heard, request: &Request, chosen: &[Name], last: bool) -> Step {
    let mut found: Vec<(SRV, u32, Option<DnsSd>)> = Vec::new();
    let mut missing = Vec::new();
    for instance in chosen {
        let srv = srv_records(heard.at(instance, RecordType::SRV));
        let txt = heard.at(instance, RecordType::TXT);
        if srv.is_empty() {
            missing.push((instance.clone(), RecordType::SRV));
        }
        if txt.is_empty() {
            // RFC 6763 §6: TXT is required, but an endpoint without it is still one.
            missing.push((instance.clone(), RecordType::TXT));
        }
        if let SrvAnswer::Targets(t) = classify_srv(srv) {
            let dnssd = (instance_label(instance), txt_of(&txt));
            found.extend(
                t.into_iter()
                    .map(|(srv, ttl)| (srv, ttl, Some(dnssd.clone()))),
            );
        }
    }
    if !missing.is_empty() && !last {
        return Step::Ask(missing);
    }
    if found.is_empty() {
        return Step::Failed(Fail::Transient(format!(
            "{} instance{} named, none answered with its SRV record",
            chosen.len(),
            if chosen.len() == 1 { "" } else { "s" }
        )));
    }
    let endpoints = order_instances(found)
        .into_iter()
        .map(|(srv, ttl, dnssd)| (Endpoint::srv(&srv, ttl, dnssd), srv.target))
        .collect();
    resolve(heard, request, endpoints, last)
}

/// `--resolve`: each target's addresses, asked for when not yet heard;
/// targets without one are dropped at the last step.
fn resolve(heard: &Heard, request: &Request, endpoints: Vec<(Endpoint, Name)>, last: bool) -> Step {
    if !request.resolve {
        return Step::Done(endpoints.into_iter().map(|(e, _)| e).collect());
    }
    let mut missing: Vec<(Name, RecordType)> = Vec::new();
    let mut out = Vec::new();
    for (mut endpoint, target) in endpoints {
        let addrs = heard.addresses(&target);
        if addrs.is_empty() {
            if !missing.iter().any(|(n, _)| *n == target) {
                missing.push((target.clone(), RecordType::A));
                missing.push((target, RecordType::AAAA));
            }
            continue;
        }
        endpoint.addresses = Some(addrs);
        out.push(endpoint);
    }
    if !missing.is_empty() && !last {
        return Step::Ask(missing);
    }
    if out.is_empty() {
        return Step::Failed(Fail::Transient(format!(
            "{} SRV target{} but no address for any",
            missing.len() / 2,
            if missing.len() == 2 { "" } else { "s" }
        )));
    }
    Step::Done(out)
}
