//! OpenStack Nova metadata.
//!
//! "Metadata service" (docs.openstack.org/nova/latest/user/metadata.html): the
//! OpenStack document `http://169.254.169.254/openstack/latest/meta_data.json`
//! (`uuid`, `hostname`, `availability_zone`), IPv6 from `network_data.json`,
//! and the addresses from the EC2-compatible `/latest/meta-data/local-ipv4` and
//! `public-ipv4` (Nova knows its floating IPs; the OpenStack documents do
//! not). OpenStack metadata has no region. No termination notices.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use super::cloud::Cloud;
use super::http::{self, Http, parse_ip, str_at};
use super::{Identity, MetadataError};
use crate::config::MetadataKind;

const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
pub const META_DATA: &str = "/openstack/latest/meta_data.json";
const NETWORK_DATA: &str = "/openstack/latest/network_data.json";

fn client(base: Option<&str>) -> Http {
    Http::new("openstack", http::base(base, DEFAULT_ENDPOINT))
}

/// Does Nova answer with a `meta_data.json` that has a `uuid`?
async fn probe(base: Option<&str>) -> bool {
    client(base)
        .probe_json(META_DATA, &[], |v| str_at(v, "/uuid").is_some())
        .await
}

/// The first IPv6 `ip_address` among `network_data.json`'s networks; IPv4
/// ones are passed over, and anything else is an error, not silently no IPv6.
fn first_ipv6(http: &Http, net: &Value) -> Result<Option<Ipv6Addr>, MetadataError> {
    let addresses = net
        .get("networks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|n| str_at(n, "/ip_address"));
    for a in addresses {
        if a.parse::<Ipv4Addr>().is_err() {
            return parse_ip(http, NETWORK_DATA, Some(a));
        }
    }
    Ok(None)
}

async fn identity(base: Option<&str>, detected_by: &str) -> Result<Identity, MetadataError> {
    let http = client(base);
    let doc = http
        .document(META_DATA, &[], "HTTP 404: no meta_data.json")
        .await?;
    let instance_id = http.id_in(META_DATA, &doc, "/uuid", "uuid")?;
    let mut id = Identity::of(MetadataKind::OpenStack, detected_by, instance_id);
    id.availability_zone = str_at(&doc, "/availability_zone").map(str::to_string);
    id.hostname = str_at(&doc, "/hostname")
        .or_else(|| str_at(&doc, "/name"))
        .map(str::to_string);
    id.private_ipv4 = http.address("/latest/meta-data/local-ipv4", &[]).await?;
    id.public_ipv4 = http.address("/latest/meta-data/public-ipv4", &[]).await?;
    // network_data.json lists static IPv6 networks as {"type": "ipv6", "ip_address": …}.
    id.ipv6 = match http.json(NETWORK_DATA, &[]).await {
        Ok(Some(net)) => first_ipv6(&http, &net)?,
        // Older Nova has no network_data.json; IPv6 is optional, the rest is not.
        Ok(None) | Err(_) => None,
    };
    Ok(id)
}

/// OpenStack, as the agent sees it.
pub struct OpenStack;

impl Cloud for OpenStack {
    fn kind(&self) -> MetadataKind {
        MetadataKind::OpenStack
    }

    super::cloud::read_by_module_fns!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::testing::Stand;
    use testkit::imds::ImdsFault;

    #[tokio::test]
    async fn reads_the_identity() {
        let s = Stand::example(&OpenStack);
        let id = s.identity_of_the_instance().await;
        s.has_the_private_ipv4(&id);
        s.has_the_public_ipv4(&id);
        assert!(s.probe().await);
    }

    #[tokio::test]
    async fn garbage_is_named() {
        let s = Stand::example(&OpenStack);
        s.fault_is_named(ImdsFault::Garbage, &format!("{META_DATA}: "))
            .await;
    }

    /// `network_data.json` lists the port's IPv4 network and its static IPv6
    /// one; the IPv6 `ip_address` is the instance's, and one that is no
    /// address is refused, naming the URL and what came back, rather than
    /// leaving the instance silently without AAAA records.
    #[tokio::test]
    async fn network_data_gives_the_ipv6_and_a_malformed_one_is_refused() {
        let (s, id) = Stand::gives_the_ipv6(&OpenStack, "2001:db8:1234:5678::5").await;
        assert_eq!(id.private_ipv4, Some(Ipv4Addr::new(10, 0, 0, 11)));
        let bad = "2001:db8:1234:5678::5::6";
        s.refuses_the_ipv6(bad, NETWORK_DATA, bad).await;
    }
}
