//! The records `plan` wants through an mdns provider, as what the responder
//! registers: one DNS-SD service instance (RFC 6763 §4: PTR, SRV, TXT, and
//! its target host's A/AAAA) per registration. A pure function, so that what
//! is published is decided apart from the sockets.
//!
//! mdns-sd publishes addresses only with a service (keepsimple1/mdns-sd#374): a `[[host]]` that no service points at is
//! registered as a placeholder instance of [`PLACEHOLDER_TYPE`], port 0,
//! named after the host, so that its name still resolves.

use std::collections::BTreeMap;
use std::net::IpAddr;

use mdns_sd::ServiceInfo;

use crate::record::{DomainName, RData, Record, Value};
use crate::registry::Values;

/// The service type of a host published without a service: Apple's
/// `_device-info._tcp`, which carries a host's description and which
/// browsers of real services do not list.
pub const PLACEHOLDER_TYPE: &str = "_device-info._tcp";

/// One service instance for the responder to register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// `_http._tcp.local.`
    pub service_type: String,
    /// The instance label, `web1`.
    pub instance: String,
    /// The SRV target, `web1.local.`
    pub host: String,
    pub addresses: Vec<IpAddr>,
    pub port: u16,
    /// TXT `key=value` pairs, in order; a key alone has an empty value.
    pub txt: Vec<(String, String)>,
    /// The records it publishes, of those asked for.
    pub values: Values,
}

impl Registration {
    /// `web1._http._tcp.local.`: what the responder knows it by.
    pub fn fullname(&self) -> String {
        format!("{}.{}", self.instance, self.service_type)
    }

    /// What mdns-sd registers: probed first (RFC 6762 §8.1) when `probe`.
    pub fn service_info(&self, probe: bool) -> Result<ServiceInfo, mdns_sd::Error> {
        let txt: Vec<(&str, &str)> = self
            .txt
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut info = ServiceInfo::new(
            &self.service_type,
            &self.instance,
            &self.host,
            &self.addresses[..],
            self.port,
            &txt[..],
        )?;
        info.set_requires_probe(probe);
        Ok(info)
    }
}

/// The registrations that publish `records`, by full name; or what cannot be
/// published (a name outside `domain`, an SRV target without an address).
pub fn registrations(
    records: &[Record],
    domain: &DomainName,
) -> Result<BTreeMap<String, Registration>, String> {
    let mut addresses: BTreeMap<&DomainName, Vec<(IpAddr, &Value)>> = BTreeMap::new();
    for r in records {
        if !r.value.name.is_in(domain) {
            return Err(format!(
                "{} is outside {domain}, where multicast DNS answers",
                r.value.name
            ));
        }
        let ip = match r.value.data {
            RData::A(ip) => IpAddr::V4(ip),
            RData::Aaaa(ip) => IpAddr::V6(ip),
            _ => continue,
        };
        addresses
            .entry(&r.value.name)
            .or_default()
            .push((ip, &r.value));
    }
    let mut out = BTreeMap::new();
    let mut targets = Vec::new();
    for r in records {
        let RData::Ptr(instance_name) = &r.value.data else {
            continue;
        };
        let reg = service(records, &r.value, instance_name, &addresses)?;
        targets.push(reg.host.clone());
        out.insert(reg.fullname(), reg);
    }
    for (host, addrs) in &addresses {
        if targets.iter().any(|t| t == host.as_str()) {
            continue;
        }
        let reg = Registration {
            service_type: format!("{PLACEHOLDER_TYPE}.{domain}"),
            instance: first_label(host).to_string(),
            host: host.to_string(),
            addresses: addrs.iter().map(|(ip, _)| *ip).collect(),
            port: 0,
            txt: Vec::new(),
            values: addrs.iter().map(|(_, v)| (*v).clone()).collect(),
        };
        out.insert(reg.fullname(), reg);
    }
    Ok(out)
}

/// The registration of the instance a PTR record `ptr` points at.
fn service(
    records: &[Record],
    ptr: &Value,
    instance_name: &DomainName,
    addresses: &BTreeMap<&DomainName, Vec<(IpAddr, &Value)>>,
) -> Result<Registration, String> {
    let at = |r: &&Record| &r.value.name == instance_name;
    let srv = records
        .iter()
        .filter(at)
        .find(|r| matches!(r.value.data, RData::Srv { .. }))
        .ok_or_else(|| format!("{instance_name} has a PTR but no SRV record"))?;
    let RData::Srv { port, target, .. } = &srv.value.data else {
        unreachable!("found as SRV");
    };
    let txt_record = records
        .iter()
        .filter(at)
        .find(|r| matches!(r.value.data, RData::Txt(_)));
    let txt = match txt_record.map(|r| &r.value.data) {
        Some(RData::Txt(strings)) => strings
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| match s.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (s.clone(), String::new()),
            })
            .collect(),
        _ => Vec::new(),
    };
    let host_addrs = addresses.get(target).ok_or_else(|| {
        format!("{instance_name} points at {target}, which has no address published with it")
    })?;
    let service_type = ptr.name.to_string();
    let instance = instance_name
        .as_str()
        .strip_suffix(&format!(".{service_type}"))
        .unwrap_or_else(|| first_label(instance_name))
        .to_string();
    let mut values: Values = [ptr.clone(), srv.value.clone()].into_iter().collect();
    values.extend(txt_record.map(|r| r.value.clone()));
    values.extend(host_addrs.iter().map(|(_, v)| (*v).clone()));
    Ok(Registration {
        service_type,
        instance,
        host: target.to_string(),
        addresses: host_addrs.iter().map(|(ip, _)| *ip).collect(),
        port: *port,
        txt,
        values,
    })
}

fn first_label(name: &DomainName) -> &str {
    name.as_str().split('.').next().unwrap_or_default()
}

/// Whether `ip` lies in the subnet of one of `links` (address and prefix
/// length): mdns-sd announces an address only on such an interface
/// (mdns-sd's `valid_ip_on_intf`), and says nothing about the others.
pub fn on_link(ip: IpAddr, links: &[(IpAddr, u8)]) -> bool {
    links.iter().any(|(addr, prefix)| match (ip, addr) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(*b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(*prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(*b) & mask
        }
        _ => false,
    })
}
