//! Oracle Cloud Infrastructure instance metadata, IMDSv2.
//!
//! "Getting Instance Metadata": `http://169.254.169.254/opc/v2/instance/` (a JSON
//! document: `id`, `hostname`, `canonicalRegionName`, `availabilityDomain`)
//! and `/opc/v2/vnics/` (a JSON array: `privateIp`, `ipv6Addresses`), every
//! request with `Authorization: Bearer Oracle` (v2 refuses requests without
//! it). OCI metadata does not show the public IP: the identity has none, and
//! the error from [`super::vars`] says what to configure. No termination notices.

use super::cloud::Cloud;
use super::http::{self, Http, parse_ip, str_at};
use super::{Identity, MetadataError};
use crate::config::MetadataKind;

const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
const HEADERS: [(&str, &str); 1] = [("Authorization", "Bearer Oracle")];
pub const INSTANCE_PATH: &str = "/opc/v2/instance/";
pub const VNICS_PATH: &str = "/opc/v2/vnics/";

fn client(base: Option<&str>) -> Http {
    Http::new("oracle", http::base(base, DEFAULT_ENDPOINT))
}

/// Does OCI's IMDSv2 answer with an instance document?
async fn probe(base: Option<&str>) -> bool {
    client(base)
        .probe_json(INSTANCE_PATH, &HEADERS, |v| {
            str_at(v, "/id").is_some() && str_at(v, "/availabilityDomain").is_some()
        })
        .await
}

async fn identity(base: Option<&str>, detected_by: &str) -> Result<Identity, MetadataError> {
    let http = client(base);
    let doc = http
        .document(INSTANCE_PATH, &HEADERS, "HTTP 404: no instance document")
        .await?;
    let instance_id = http.id_in(INSTANCE_PATH, &doc, "/id", "id")?;
    let mut id = Identity::of(MetadataKind::Oracle, detected_by, instance_id);
    id.region = str_at(&doc, "/canonicalRegionName")
        .or_else(|| str_at(&doc, "/region"))
        .map(str::to_string);
    id.availability_zone = str_at(&doc, "/availabilityDomain").map(str::to_string);
    id.hostname = str_at(&doc, "/hostname").map(str::to_string);
    let vnics = http.json(VNICS_PATH, &HEADERS).await?;
    let first = vnics.as_ref().and_then(|v| v.get(0));
    if vnics.is_some() && first.is_none() {
        return Err(http.err(VNICS_PATH, "expected a JSON array of VNICs"));
    }
    id.private_ipv4 = parse_ip(
        &http,
        VNICS_PATH,
        first.and_then(|n| str_at(n, "/privateIp")),
    )?;
    id.ipv6 = parse_ip(
        &http,
        VNICS_PATH,
        first.and_then(|n| str_at(n, "/ipv6Addresses/0")),
    )?;
    Ok(id)
}

/// Oracle Cloud Infrastructure, as the agent sees it.
pub struct Oracle;

impl Cloud for Oracle {
    fn kind(&self) -> MetadataKind {
        MetadataKind::Oracle
    }

    super::cloud::read_by_module_fns!();

    fn no_public_ipv4_why(&self) -> &'static str {
        "OCI metadata does not show public IPs"
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::metadata::testing::Stand;
    use testkit::imds::ImdsFault;

    #[tokio::test]
    async fn reads_the_identity_with_the_bearer_header() {
        let s = Stand::example(&Oracle);
        let id = s.identity_of_the_instance().await;
        s.has_the_private_ipv4(&id);
        assert!(s.probe().await);
    }

    #[tokio::test]
    async fn a_refusal_is_named() {
        let s = Stand::example(&Oracle);
        s.fault_is_named(
            ImdsFault::Status(401),
            &format!("{INSTANCE_PATH}: HTTP 401"),
        )
        .await;
    }

    /// An IPv6-enabled VNIC lists `ipv6Addresses`; the first is the instance's,
    /// and one that is no address is refused, naming the URL and what came back.
    #[tokio::test]
    async fn an_ipv6_vnic_gives_its_address_and_a_malformed_one_is_refused() {
        let good = "2603:c020:8000:1200:a3e2:81e0:b4c3:8a31";
        let (s, id) = Stand::gives_the_ipv6(&Oracle, good).await;
        assert_eq!(id.private_ipv4, Some(Ipv4Addr::new(10, 0, 0, 12)));
        let bad = "2603:c020:8000:1200:a3e2:81e0:b4c3";
        s.refuses_the_ipv6(bad, VNICS_PATH, bad).await;
    }
}
