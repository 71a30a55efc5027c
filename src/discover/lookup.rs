//! One round of queries: SRV, PTR, A and AAAA of NAME at once, and what
//! they say NAME is (see the module above); a DNS-SD browse, and
//! `--resolve`.

use std::net::IpAddr;

use futures_util::future::join_all;
use hickory_resolver::TokioResolver;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::rdata::SRV;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

use super::Request;
use super::endpoint::Endpoint;
use super::order::{SrvAnswer, classify_srv, order, order_instances, shuffle};
use super::txt::txt_of;
use crate::fail::Fail;

/// The records of one type at `name`; none (NXDOMAIN, NODATA) is not an error.
async fn query(
    resolver: &TokioResolver,
    name: &Name,
    rtype: RecordType,
) -> Result<Vec<Record>, Fail> {
    match resolver.lookup(name.clone(), rtype).await {
        Ok(lookup) => Ok(lookup
            .answers()
            .iter()
            .filter(|r| r.record_type() == rtype)
            .cloned()
            .collect()),
        Err(e) if e.is_no_records_found() => Ok(Vec::new()),
        Err(e) => Err(Fail::Transient(format!(
            "{rtype} query for {name}: {}",
            describe(&e)
        ))),
    }
}

/// A resolver error as a person should read it.
fn describe(e: &NetError) -> String {
    match e {
        NetError::Timeout => "no answer (timed out)".into(),
        NetError::Io(io) => format!("no answer ({io})"),
        NetError::NoConnections => "no answer (no connection to the server)".into(),
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => {
            "the server refused (REFUSED): ask one authoritative for the name, or a resolver that serves you"
                .into()
        }
        NetError::Dns(DnsError::ResponseCode(code)) => {
            format!("the server answered {} ({code})", u16::from(*code))
        }
        other => other.to_string(),
    }
}

pub(super) async fn attempt(request: &Request) -> Result<Vec<Endpoint>, Fail> {
    let resolver = request.resolver()?;
    let name = &request.name;
    let (srv, ptr, a, aaaa) = tokio::join!(
        query(&resolver, name, RecordType::SRV),
        query(&resolver, name, RecordType::PTR),
        query(&resolver, name, RecordType::A),
        query(&resolver, name, RecordType::AAAA),
    );

    let srv = srv_records(srv?);
    // `--instance` is a filter over DNS-SD instances: an SRV rrset at NAME is not one.
    if !srv.is_empty() && request.instance.is_none() {
        let targets = match classify_srv(srv) {
            SrvAnswer::Unavailable => {
                return Err(Fail::Transient(
                    "service decidedly not available: its only SRV record has target \".\" (RFC 2782)"
                        .into(),
                ));
            }
            SrvAnswer::Targets(t) => t,
        };
        let endpoints = order(targets)
            .into_iter()
            .map(|(srv, ttl)| Endpoint::srv(&srv, ttl, None))
            .collect();
        return finish(&resolver, request, endpoints).await;
    }

    let instances = instances(ptr?);
    if !instances.is_empty() || request.instance.is_some() {
        return browse(&resolver, request, request.pick(instances)?).await;
    }

    // Plain addresses: one family failing while the other answers is still an
    // answer. A round-robin name has no weights: IPv4 first, each family in a
    // random order.
    let (mut endpoints, mut errors) = (Vec::new(), Vec::new());
    let mut rng = rand::rng();
    for result in [a, aaaa] {
        match result {
            Ok(records) => {
                let mut family: Vec<Endpoint> = records
                    .into_iter()
                    .filter_map(|r| {
                        address(&r.data).map(|ip| Endpoint::address(ip, r.ttl, request.port))
                    })
                    .collect();
                shuffle(&mut family, &mut |max| {
                    rand::RngExt::random_range(&mut rng, 0..=max)
                });
                endpoints.extend(family);
            }
            Err(e) => errors.push(e),
        }
    }
    if endpoints.is_empty() {
        return Err(match errors.into_iter().next() {
            Some(e) => e,
            None => Fail::Transient("no SRV, PTR, A or AAAA records".into()),
        });
    }
    for e in errors {
        tracing::warn!("discover {name}: {e}; using the other address family");
    }
    Ok(endpoints)
}

/// DNS-SD browse (RFC 6763 §4): each PTR names an instance; its SRV says where
/// and its TXT says what.
async fn browse(
    resolver: &TokioResolver,
    request: &Request,
    instances: Vec<Name>,
) -> Result<Vec<Endpoint>, Fail> {
    let lookups = instances.iter().map(|instance| async move {
        let (srv, txt) = tokio::join!(
            query(resolver, instance, RecordType::SRV),
            query(resolver, instance, RecordType::TXT),
        );
        (instance, srv, txt)
    });
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for (instance, srv, txt) in join_all(lookups).await {
        let srv = match srv {
            Ok(srv) => srv_records(srv),
            Err(e) => {
                problems.push(format!("instance {instance}: {e}"));
                continue;
            }
        };
        let txt = match txt {
            Ok(txt) => txt,
            Err(e) => {
                // RFC 6763 §6: TXT is required, but an endpoint without it is still one.
                tracing::warn!("discover: instance {instance}: {e}");
                Vec::new()
            }
        };
        let txt = txt_of(&txt);
        let label = instance_label(instance);
        match classify_srv(srv) {
            SrvAnswer::Targets(t) if !t.is_empty() => {
                found.extend(
                    t.into_iter()
                        .map(|(srv, ttl)| (srv, ttl, Some((label.clone(), txt.clone())))),
                );
            }
            _ => problems.push(format!("instance {instance}: no SRV record")),
        }
    }
    if found.is_empty() {
        return Err(Fail::Transient(format!(
            "PTR records name {} instance{}, none usable: {}",
            instances.len(),
            if instances.len() == 1 { "" } else { "s" },
            problems.join("; ")
        )));
    }
    for p in &problems {
        tracing::warn!("discover {}: {p}", request.name);
    }
    let endpoints = order_instances(found)
        .into_iter()
        .map(|(srv, ttl, dnssd)| Endpoint::srv(&srv, ttl, dnssd))
        .collect();
    finish(resolver, request, endpoints).await
}

/// `--resolve`: the addresses of each target; targets without one are dropped.
async fn finish(
    resolver: &TokioResolver,
    request: &Request,
    mut endpoints: Vec<Endpoint>,
) -> Result<Vec<Endpoint>, Fail> {
    if !request.resolve {
        return Ok(endpoints);
    }
    let lookups = endpoints.iter().map(|e| async move {
        let mut name = Name::from_utf8(&e.target).ok()?;
        name.set_fqdn(true);
        let (a, aaaa) = tokio::join!(
            query(resolver, &name, RecordType::A),
            query(resolver, &name, RecordType::AAAA),
        );
        let mut out = Vec::new();
        for result in [a, aaaa] {
            match result {
                Ok(v) => out.extend(v.iter().filter_map(|r| address(&r.data))),
                Err(err) => tracing::warn!("discover: target {}: {err}", e.target),
            }
        }
        Some(out)
    });
    let addresses = join_all(lookups).await;
    for (e, addrs) in endpoints.iter_mut().zip(addresses) {
        e.addresses = Some(addrs.unwrap_or_default());
    }
    let before = endpoints.len();
    endpoints.retain(|e| e.addresses.as_ref().is_some_and(|a| !a.is_empty()));
    if endpoints.is_empty() {
        return Err(Fail::Transient(format!(
            "{before} SRV target{} but no address for any",
            if before == 1 { "" } else { "s" }
        )));
    }
    Ok(endpoints)
}

pub(crate) fn address(data: &RData) -> Option<IpAddr> {
    match data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    }
}

/// The DNS-SD instances a browse answer names: PTR targets one label below
/// the PTR's owner (`<Instance>.<Service>.<Domain>`, RFC 6763 §4.1). Other
/// PTRs are not a service browse: hickory, for one, answers a PTR query for
/// `localhost` with `localhost.` itself.
pub(crate) fn instances(ptr: Vec<Record>) -> Vec<Name> {
    let mut out: Vec<Name> = ptr
        .into_iter()
        .filter_map(|r| match r.data {
            RData::PTR(p)
                if p.0.num_labels() == r.name.num_labels() + 1 && r.name.zone_of(&p.0) =>
            {
                Some(p.0)
            }
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

pub(crate) fn srv_records(records: Vec<Record>) -> Vec<(SRV, u32)> {
    records
        .into_iter()
        .filter_map(|r| match r.data {
            RData::SRV(s) => Some((s, r.ttl)),
            _ => None,
        })
        .collect()
}

/// An instance's own name: the first label of `<Instance>.<Service>.<Domain>`
/// (RFC 6763 §4.1), which may hold spaces and dots.
pub(crate) fn instance_label(name: &Name) -> String {
    name.iter()
        .next()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .unwrap_or_default()
}
