//! Google Compute Engine metadata.
//!
//! "About VM metadata" / "Query VM metadata": `http://metadata.google.internal/computeMetadata/v1/`,
//! every request with `Metadata-Flavor: Google`, and every genuine answer
//! carries the same header back (that is how a probe tells GCE from anything
//! else answering at the address). The zone comes as
//! `projects/NUMBER/zones/ZONE`; the region is the zone minus its last `-x`.
//! Preemption: `instance/preempted` turns `TRUE` ("Detect if a VM was preempted").

use super::cloud::Cloud;
use super::http::{self, Call, Http, parse_ip};
use super::{Identity, MetadataError, Notice};
use crate::config::MetadataKind;

const DEFAULT_ENDPOINT: &str = "http://metadata.google.internal";
const FLAVOR: [(&str, &str); 1] = [("Metadata-Flavor", "Google")];
const ROOT: &str = "/computeMetadata/v1/instance";

fn client(base: Option<&str>) -> Http {
    Http::new("gcp", http::base(base, DEFAULT_ENDPOINT))
}

/// Is GCE's metadata server answering at `base` (signed with its flavor header)?
async fn probe(base: Option<&str>) -> bool {
    let http = client(base);
    let path = format!("{ROOT}/id");
    match http.probe(Call::get(&path, &FLAVOR)).await {
        Some(r) => {
            r.status.is_success()
                && r.headers
                    .get("metadata-flavor")
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"Google"))
                && http::plausible_id(r.body.trim())
        }
        None => false,
    }
}

async fn get(http: &Http, item: &str) -> Result<Option<String>, MetadataError> {
    http.value(&format!("{ROOT}/{item}"), &FLAVOR).await
}

/// `projects/123/zones/us-central1-a` → (`us-central1-a`, `us-central1`).
pub fn zone_and_region(zone_path: &str) -> (String, String) {
    let zone = zone_path
        .rsplit('/')
        .next()
        .unwrap_or(zone_path)
        .to_string();
    let region = match zone.rsplit_once('-') {
        Some((r, _)) => r.to_string(),
        None => zone.clone(),
    };
    (zone, region)
}

async fn identity(base: Option<&str>, detected_by: &str) -> Result<Identity, MetadataError> {
    let http = client(base);
    let instance_id = http.instance_id(&format!("{ROOT}/id"), &FLAVOR).await?;
    let mut id = Identity::of(MetadataKind::Gcp, detected_by, instance_id);
    (id.availability_zone, id.region) = match get(&http, "zone").await? {
        Some(z) if z.contains("/zones/") => {
            let (zone, region) = zone_and_region(&z);
            (Some(zone), Some(region))
        }
        Some(z) => {
            return Err(http.err(
                &format!("{ROOT}/zone"),
                format!(
                    "not a zone path (projects/N/zones/Z): {:?}",
                    http::shown(&z)
                ),
            ));
        }
        None => (None, None),
    };
    id.hostname = get(&http, "hostname").await?;
    let nic = "network-interfaces/0";
    id.private_ipv4 = http.address(&format!("{ROOT}/{nic}/ip"), &FLAVOR).await?;
    // An ephemeral or static external address is the first access config's.
    let external = format!("{ROOT}/{nic}/access-configs/0/external-ip");
    id.public_ipv4 = http.address(&external, &FLAVOR).await?;
    // Dual-stack interfaces: the external IPv6 address, else the internal one.
    for item in [format!("{nic}/external-ipv6"), format!("{nic}/ipv6s")] {
        if id.ipv6.is_some() {
            break;
        }
        let first = get(&http, &item).await?.and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.trim().trim_end_matches('/').to_string())
        });
        id.ipv6 = parse_ip(&http, &format!("{ROOT}/{item}"), first.as_deref())?;
    }
    Ok(id)
}

/// A Spot or preemptible VM being reclaimed: `instance/preempted` = `TRUE`.
async fn notice(base: Option<&str>) -> Result<Option<Notice>, MetadataError> {
    let http = client(base);
    match get(&http, "preempted").await? {
        Some(v) if v.eq_ignore_ascii_case("TRUE") => Ok(Some(Notice::Preempt {
            cloud: "gcp",
            what: "instance/preempted is TRUE".into(),
            at: None,
        })),
        Some(v) if v.eq_ignore_ascii_case("FALSE") => Ok(None),
        Some(v) => Err(http.err(
            &format!("{ROOT}/preempted"),
            format!("expected TRUE or FALSE, got {:?}", http::shown(&v)),
        )),
        None => Ok(None),
    }
}

/// Google Compute Engine, as the agent sees it.
pub struct Gcp;

impl Cloud for Gcp {
    fn kind(&self) -> MetadataKind {
        MetadataKind::Gcp
    }

    super::cloud::read_by_module_fns!(notice);
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::metadata::testing::{Stand, failure};
    use testkit::imds::ImdsFault;

    #[test]
    fn the_region_is_the_zone_minus_its_last_part() {
        assert_eq!(
            zone_and_region("projects/123456789/zones/us-central1-a"),
            ("us-central1-a".into(), "us-central1".into())
        );
        assert_eq!(
            zone_and_region("projects/1/zones/europe-west4-b"),
            ("europe-west4-b".into(), "europe-west4".into())
        );
    }

    #[tokio::test]
    async fn reads_the_identity_with_the_flavor_header() {
        let s = Stand::example(&Gcp);
        let id = s.identity_of_the_instance().await;
        assert_eq!(id.availability_zone.as_deref(), Some(s.want.zone.as_str()));
        assert_eq!(id.region.as_deref(), Some(s.want.region.as_str()));
        s.has_the_private_ipv4(&id);
        s.has_the_public_ipv4(&id);
        assert!(s.probe().await);
    }

    #[tokio::test]
    async fn no_external_address_is_absent_not_broken() {
        let s = Stand::serving(&Gcp, |i| {
            i.public_ipv4 = None;
            i.ipv6 = None;
        });
        let id = s.identity().await;
        assert_eq!(id.public_ipv4, None);
        assert_eq!(id.ipv6, None);
    }

    #[tokio::test]
    async fn preemption_is_a_notice() {
        let s = Stand::example(&Gcp);
        assert_eq!(notice(Some(&s.url())).await.unwrap(), None);
        s.imds.set_termination_notice(true);
        let n = notice(Some(&s.url())).await.unwrap().unwrap();
        assert_eq!(n.cloud(), "gcp");
        assert!(matches!(n, Notice::Preempt { .. }));
    }

    #[tokio::test]
    async fn failures_name_the_cloud_url_and_answer() {
        let s = Stand::example(&Gcp);
        s.fault_is_named(
            ImdsFault::Status(403),
            "/computeMetadata/v1/instance/id: HTTP 403",
        )
        .await;
        s.imds.set_fault(ImdsFault::Garbage);
        assert!(!s.probe().await);
        let e = failure(&Gcp, &s.url()).await;
        assert!(e.starts_with("gcp metadata: "), "{e}");
    }

    /// A dual-stack interface: `network-interfaces/0/ipv6s` holds its IPv6
    /// address (the item gRPC's and Google's own clients read); a value that is
    /// no address is refused, naming the URL and what came back.
    #[tokio::test]
    async fn a_dual_stack_interface_gives_its_ipv6_and_a_malformed_one_is_refused() {
        let (s, id) = Stand::gives_the_ipv6(&Gcp, "2600:1900:4000:7a1e:0:1::").await;
        assert_eq!(id.public_ipv4, Some(Ipv4Addr::new(203, 0, 113, 10)));
        let path = "/computeMetadata/v1/instance/network-interfaces/0/ipv6s";
        assert!(
            s.imds.requests().contains(&format!("GET {path}")),
            "{:?}",
            s.imds.requests()
        );
        let bad = "2600:1900:4000:7a1e::1::2";
        s.refuses_the_ipv6(bad, path, bad).await;
    }
}
