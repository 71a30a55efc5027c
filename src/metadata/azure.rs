//! Azure Instance Metadata Service.
//!
//! "Azure Instance Metadata Service for virtual machines": one JSON document at
//! `/metadata/instance?api-version=…`, every request with `Metadata: true` (and
//! refused without it), the api-version pinned so the shape cannot change
//! under us. A Standard-SKU public IP is not shown to the VM: `publicIpAddress`
//! is empty, and the identity then has no public IPv4 (the error from
//! [`super::vars`] says what to configure). Termination: "Azure Metadata
//! Service: Scheduled Events", `Preempt` (Spot eviction) and `Terminate`
//! events naming this VM.

use serde_json::Value;

use super::cloud::Cloud;
use super::http::{self, Http, parse_ip, str_at};
use super::{Identity, MetadataError, Notice};
use crate::config::MetadataKind;

const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
const HEADERS: [(&str, &str); 1] = [("Metadata", "true")];
pub const INSTANCE_PATH: &str = "/metadata/instance?api-version=2021-02-01";
pub const EVENTS_PATH: &str = "/metadata/scheduledevents?api-version=2020-07-01";

fn client(base: Option<&str>) -> Http {
    Http::new("azure", http::base(base, DEFAULT_ENDPOINT))
}

/// Does IMDS answer at `base` with an instance document?
async fn probe(base: Option<&str>) -> bool {
    client(base)
        .probe_json(INSTANCE_PATH, &HEADERS, |v| {
            str_at(v, "/compute/vmId").is_some()
        })
        .await
}

async fn document(http: &Http) -> Result<Value, MetadataError> {
    http.document(INSTANCE_PATH, &HEADERS, "HTTP 404: no instance document")
        .await
}

async fn identity(base: Option<&str>, detected_by: &str) -> Result<Identity, MetadataError> {
    let http = client(base);
    let doc = document(&http).await?;
    let instance_id = http.id_in(INSTANCE_PATH, &doc, "/compute/vmId", "compute.vmId")?;
    let mut id = Identity::of(MetadataKind::Azure, detected_by, instance_id);
    id.region = str_at(&doc, "/compute/location").map(str::to_string);
    // `zone` is "1", "2", "3" (or empty outside availability zones): shown as
    // location-zone, the way the portal names it.
    id.availability_zone = match (str_at(&doc, "/compute/zone"), id.region.as_deref()) {
        (Some(z), Some(r)) => Some(format!("{r}-{z}")),
        (Some(z), None) => Some(z.to_string()),
        _ => None,
    };
    id.hostname = str_at(&doc, "/compute/osProfile/computerName")
        .or_else(|| str_at(&doc, "/compute/name"))
        .map(str::to_string);
    let nic = "/network/interface/0";
    id.private_ipv4 = parse_ip(
        &http,
        INSTANCE_PATH,
        str_at(&doc, &format!("{nic}/ipv4/ipAddress/0/privateIpAddress")),
    )?;
    // Empty for Standard-SKU public addresses: absent, not broken.
    id.public_ipv4 = parse_ip(
        &http,
        INSTANCE_PATH,
        str_at(&doc, &format!("{nic}/ipv4/ipAddress/0/publicIpAddress")),
    )?;
    id.ipv6 = parse_ip(
        &http,
        INSTANCE_PATH,
        str_at(&doc, &format!("{nic}/ipv6/ipAddress/0/privateIpAddress")),
    )?;
    if id.public_ipv4.is_none() {
        tracing::info!(
            "azure metadata shows no public IPv4 (Standard-SKU public addresses are not visible to the VM); publish the private address with [instance] address = \"private\", or set [instance] ipv4"
        );
    }
    Ok(id)
}

/// A scheduled `Preempt` or `Terminate` event for this VM.
async fn notice(base: Option<&str>) -> Result<Option<Notice>, MetadataError> {
    let http = client(base);
    let Some(events) = http.json(EVENTS_PATH, &HEADERS).await? else {
        return Ok(None);
    };
    let Some(list) = events.get("Events").and_then(Value::as_array) else {
        return Err(http.err(EVENTS_PATH, "the answer has no Events array"));
    };
    if list.is_empty() {
        return Ok(None);
    }
    // Events name the VMs they affect by name; others in the same
    // availability set are not our business.
    let name = document(&http)
        .await
        .ok()
        .and_then(|d| str_at(&d, "/compute/name").map(str::to_string));
    for e in list {
        let kind = str_at(e, "/EventType").unwrap_or_default();
        if !matches!(kind, "Preempt" | "Terminate") {
            continue;
        }
        let resources: Vec<&str> = e
            .get("Resources")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let ours = match &name {
            Some(n) => resources.is_empty() || resources.iter().any(|r| r.eq_ignore_ascii_case(n)),
            None => true,
        };
        if !ours {
            continue;
        }
        let at = str_at(e, "/NotBefore").map(str::to_string);
        let what = format!(
            "scheduled event {kind} {}",
            str_at(e, "/EventId").unwrap_or_default()
        )
        .trim_end()
        .to_string();
        return Ok(Some(if kind == "Preempt" {
            Notice::Preempt {
                cloud: "azure",
                what,
                at,
            }
        } else {
            Notice::Terminate {
                cloud: "azure",
                what,
                at,
            }
        }));
    }
    Ok(None)
}

/// Azure, as the agent sees it.
pub struct Azure;

impl Cloud for Azure {
    fn kind(&self) -> MetadataKind {
        MetadataKind::Azure
    }

    super::cloud::read_by_module_fns!(notice);

    fn no_public_ipv4_why(&self) -> &'static str {
        "Azure metadata leaves publicIpAddress empty for Standard-SKU public IPs"
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::metadata::testing::{Stand, failure};
    use testkit::imds::ImdsFault;

    #[tokio::test]
    async fn reads_the_identity_with_the_metadata_header() {
        let s = Stand::example(&Azure);
        let id = s.identity_of_the_instance().await;
        assert_eq!(id.region.as_deref(), Some(s.want.region.as_str()));
        s.has_the_private_ipv4(&id);
        s.has_the_public_ipv4(&id);
        assert!(s.probe().await);
    }

    #[tokio::test]
    async fn an_empty_standard_sku_public_ip_is_absent() {
        let s = Stand::serving(&Azure, |i| i.public_ipv4 = None);
        let id = s.identity().await;
        assert_eq!(id.public_ipv4, None);
        assert!(id.private_ipv4.is_some());
    }

    #[tokio::test]
    async fn preempt_and_terminate_events_are_notices() {
        let s = Stand::example(&Azure);
        assert_eq!(notice(Some(&s.url())).await.unwrap(), None);
        s.imds.set_azure_event(Some("Preempt"));
        let n = notice(Some(&s.url())).await.unwrap().unwrap();
        assert!(matches!(n, Notice::Preempt { cloud: "azure", .. }), "{n:?}");
        s.imds.set_azure_event(Some("Terminate"));
        let n = notice(Some(&s.url())).await.unwrap().unwrap();
        assert!(
            matches!(n, Notice::Terminate { cloud: "azure", .. }),
            "{n:?}"
        );
        s.imds.set_azure_event(Some("Freeze"));
        assert_eq!(notice(Some(&s.url())).await.unwrap(), None);
    }

    #[tokio::test]
    async fn failures_name_the_cloud_url_and_answer() {
        let s = Stand::example(&Azure);
        s.fault_is_named(ImdsFault::Garbage, &format!("{INSTANCE_PATH}: "))
            .await;
        s.imds.set_fault(ImdsFault::Status(400));
        let e = failure(&Azure, &s.url()).await;
        assert!(e.contains("HTTP 400"), "{e}");
    }

    /// A dual-stack NIC: `network.interface[0].ipv6.ipAddress[0].privateIpAddress`
    /// holds its IPv6 address; one that is no address is refused, naming the
    /// URL and what came back.
    #[tokio::test]
    async fn a_dual_stack_nic_gives_its_ipv6_and_a_malformed_one_is_refused() {
        let (s, id) = Stand::gives_the_ipv6(&Azure, "ace:cab:deca:deed::4").await;
        assert_eq!(id.private_ipv4, Some(Ipv4Addr::new(10, 1, 0, 4)));
        let bad = "ace:cab:deca:deed::4%eth0";
        s.refuses_the_ipv6(bad, INSTANCE_PATH, bad).await;
    }
}
