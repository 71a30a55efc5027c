//! What `dnsreg discover` prints: one place to connect to per line, or a
//! JSON array.

use std::fmt::Write as _;
use std::net::IpAddr;

use hickory_resolver::proto::rr::rdata::SRV;
use serde::Serialize;

use super::Request;
use super::txt::Txt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// From an SRV rrset at NAME.
    Srv,
    /// A DNS-SD instance of the service type NAME.
    DnsSd,
    /// An A or AAAA record of NAME.
    Address,
}

/// One place to connect to; the JSON output is an array of these.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Endpoint {
    pub kind: Kind,
    /// The SRV target without its final dot, or the address.
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    pub ttl: u32,
    /// DNS-SD: the instance's own name (the first label of its PTR target).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// DNS-SD: the instance's TXT attributes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txt: Option<Txt>,
    /// `--resolve`: the target's IPv4 then IPv6 addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<IpAddr>>,
}

impl Endpoint {
    pub(crate) fn srv(srv: &SRV, ttl: u32, dnssd: Option<(String, Txt)>) -> Endpoint {
        let (kind, instance, txt) = match dnssd {
            Some((i, t)) => (Kind::DnsSd, Some(i), Some(t)),
            None => (Kind::Srv, None, None),
        };
        let target = srv.target.to_string();
        Endpoint {
            kind,
            target: target.strip_suffix('.').unwrap_or(&target).to_string(),
            port: Some(srv.port),
            priority: Some(srv.priority),
            weight: Some(srv.weight),
            ttl,
            instance,
            txt,
            addresses: None,
        }
    }

    pub(crate) fn address(ip: IpAddr, ttl: u32, port: Option<u16>) -> Endpoint {
        Endpoint {
            kind: Kind::Address,
            target: ip.to_string(),
            port,
            priority: None,
            weight: None,
            ttl,
            instance: None,
            txt: None,
            addresses: None,
        }
    }

    /// Text lines: `host:port`, then for DNS-SD the instance and each TXT
    /// attribute, all TAB-separated (`cut -f1` gives the endpoints). With
    /// `--resolve`, one line per address in place of the target.
    pub(crate) fn lines(&self) -> Vec<String> {
        let hosts: Vec<String> = match &self.addresses {
            Some(addrs) => addrs.iter().map(|a| a.to_string()).collect(),
            None => vec![self.target.clone()],
        };
        let mut rest = String::new();
        if let Some(instance) = &self.instance {
            rest.push('\t');
            rest.push_str(&escape(instance));
        }
        for (k, v) in self.txt.iter().flat_map(|t| t.0.iter()) {
            rest.push('\t');
            rest.push_str(&escape(k));
            if let Some(v) = v {
                rest.push('=');
                rest.push_str(&escape(v));
            }
        }
        hosts
            .iter()
            .map(|h| format!("{}{rest}", host_port(h, self.port)))
            .collect()
    }
}

/// `host:port`, IPv6 literals in brackets; the bare host without a port.
fn host_port(host: &str, port: Option<u16>) -> String {
    match port {
        None => host.to_string(),
        Some(p) if host.contains(':') => format!("[{host}]:{p}"),
        Some(p) => format!("{host}:{p}"),
    }
}

/// Keeps one endpoint on one line and fields TAB-separated: backslash, TAB,
/// newline and other control characters are written as escapes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

pub(super) fn print(endpoints: &[Endpoint], request: &Request) -> anyhow::Result<()> {
    let shown = if request.one {
        &endpoints[..endpoints.len().min(1)]
    } else {
        endpoints
    };
    if request.json {
        println!("{}", serde_json::to_string_pretty(shown)?);
        return Ok(());
    }
    let mut lines: Vec<String> = shown.iter().flat_map(Endpoint::lines).collect();
    if request.one {
        lines.truncate(1);
    }
    for line in lines {
        println!("{line}");
    }
    Ok(())
}
