//! Hetzner Cloud server metadata.
//!
//! "Server Metadata" (docs.hetzner.cloud): `http://169.254.169.254/hetzner/v1/metadata`
//! is one YAML document, and each top-level key is also served on its own
//! (`/hetzner/v1/metadata/instance-id`, `…/public-ipv4`, …), which is what is
//! read here: no YAML parser for a handful of scalars. The private address
//! comes from `private-networks` (a YAML list of `ip:` entries), IPv6 from the
//! `network-config` document's static addresses. No termination notices.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::cloud::Cloud;
use super::http::{self, Http, parse_ip};
use super::{Identity, MetadataError};
use crate::config::MetadataKind;

const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
const ROOT: &str = "/hetzner/v1/metadata";

fn client(base: Option<&str>) -> Http {
    Http::new("hetzner", http::base(base, DEFAULT_ENDPOINT))
}

/// Does the Hetzner metadata service answer with a numeric id?
async fn probe(base: Option<&str>) -> bool {
    client(base)
        .probe_numeric_id(&format!("{ROOT}/instance-id"))
        .await
}

async fn get(http: &Http, item: &str) -> Result<Option<String>, MetadataError> {
    http.value(&format!("{ROOT}/{item}"), &[]).await
}

/// The value of the first `key: value` line, YAML scalars only (quotes dropped).
fn yaml_values<'a>(doc: &'a str, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    doc.lines().filter_map(move |l| {
        let l = l.trim_start().trim_start_matches("- ").trim_start();
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        Some(v.trim().trim_matches(|c| c == '"' || c == '\''))
    })
}

/// The first global IPv6 address among `network-config`'s static subnets
/// (`address: 2a01:4f8:c17:b8f::1/64`); IPv4 and link-local ones are passed
/// over, and anything else is an error, not silently no IPv6.
fn first_ipv6(http: &Http, doc: &str) -> Result<Option<Ipv6Addr>, MetadataError> {
    for a in yaml_values(doc, "address") {
        let ip = a.split('/').next().unwrap_or_default();
        match ip.parse::<Ipv6Addr>() {
            Ok(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => {}
            Ok(v6) => return Ok(Some(v6)),
            Err(_) if ip.parse::<Ipv4Addr>().is_ok() => {}
            Err(_) => return Err(http.not_an_address(&format!("{ROOT}/network-config"), a)),
        }
    }
    Ok(None)
}

async fn identity(base: Option<&str>, detected_by: &str) -> Result<Identity, MetadataError> {
    let http = client(base);
    let instance_id = http
        .instance_id(&format!("{ROOT}/instance-id"), &[])
        .await?;
    let mut id = Identity::of(MetadataKind::Hetzner, detected_by, instance_id);
    id.region = get(&http, "region").await?;
    id.availability_zone = get(&http, "availability-zone").await?;
    id.hostname = get(&http, "hostname").await?;
    id.public_ipv4 = http.address(&format!("{ROOT}/public-ipv4"), &[]).await?;
    let private = get(&http, "private-networks")
        .await?
        .and_then(|doc| yaml_values(&doc, "ip").next().map(str::to_string));
    id.private_ipv4 = parse_ip(
        &http,
        &format!("{ROOT}/private-networks"),
        private.as_deref(),
    )?;
    id.ipv6 = match get(&http, "network-config").await? {
        Some(doc) => first_ipv6(&http, &doc)?,
        None => None,
    };
    Ok(id)
}

/// Hetzner Cloud, as the agent sees it.
pub struct Hetzner;

impl Cloud for Hetzner {
    fn kind(&self) -> MetadataKind {
        MetadataKind::Hetzner
    }

    super::cloud::read_by_module_fns!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::testing::Stand;
    use testkit::imds::ImdsFault;

    #[test]
    fn reads_scalars_from_yaml_lists() {
        let doc = "- ip: 10.0.0.2\n  alias_ips: []\n  interface_num: 1\n";
        assert_eq!(yaml_values(doc, "ip").next(), Some("10.0.0.2"));
        let net = "config:\n- type: physical\n  subnets:\n  - address: 2a01:4f8:c17:1::1/64\n    type: static\n";
        assert_eq!(
            yaml_values(net, "address").next(),
            Some("2a01:4f8:c17:1::1/64")
        );
    }

    #[test]
    fn ipv4_and_link_local_addresses_are_passed_over() {
        let http = client(Some("http://192.0.2.1"));
        let doc = "config:\n- subnets:\n  - address: 10.0.0.2/24\n    type: static\n  - address: fe80::9400:2ff:fe8a:1b3c/64\n    type: static\n  - address: 2a01:4f8:c17:b8f::1/64\n    ipv6: true\n    type: static\n";
        assert_eq!(
            first_ipv6(&http, doc).unwrap(),
            Some("2a01:4f8:c17:b8f::1".parse().unwrap())
        );
        let v4_only = "config:\n- subnets:\n  - ipv4: true\n    type: dhcp\n";
        assert_eq!(first_ipv6(&http, v4_only).unwrap(), None);
    }

    #[tokio::test]
    async fn reads_the_identity_key_by_key() {
        let s = Stand::example(&Hetzner);
        let id = s.identity_of_the_instance().await;
        assert_eq!(id.hostname.as_deref(), Some(s.want.hostname.as_str()));
        s.has_the_public_ipv4(&id);
        assert!(s.probe().await);
    }

    #[tokio::test]
    async fn a_server_error_is_named() {
        let s = Stand::example(&Hetzner);
        s.fault_is_named(
            ImdsFault::Status(503),
            "/hetzner/v1/metadata/instance-id: HTTP 503",
        )
        .await;
    }

    /// The static IPv6 subnet of `network-config` gives the address (without
    /// its prefix length); one that is no address is refused, naming the URL
    /// and what came back, rather than leaving the instance silently without
    /// AAAA records.
    #[tokio::test]
    async fn network_config_gives_the_ipv6_and_a_malformed_one_is_refused() {
        let (s, id) = Stand::gives_the_ipv6(&Hetzner, "2a01:4f8:c17:b8f::1").await;
        assert_eq!(id.public_ipv4, Some(Ipv4Addr::new(203, 0, 113, 13)));
        let (bad, path) = ("2a01:4f8:c17:b8f::g1", format!("{ROOT}/network-config"));
        s.refuses_the_ipv6(bad, &path, &format!("{bad}/64")).await;
    }
}
