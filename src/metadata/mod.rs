//! Who is this machine? Instance metadata, read once at start and again on each
//! reconcile (addresses can change).
//!
//! Each cloud is one file (its client, its `probe` for `auto`, its part of
//! [`notice`]); `http` holds the plumbing they share. This module owns the
//! [`Identity`] they all produce, the choice of source (`[instance] metadata`),
//! detection for `auto`, and the `[instance]` overrides applied on top. A 404
//! from a metadata service means "absent" (no public IPv4, no IPv6), never
//! "broken".

mod alibaba;
mod aws;
mod azure;
mod digitalocean;
mod gcp;
mod hetzner;
mod http;
mod openstack;
mod oracle;
pub(crate) mod triton;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{AddressKind, InstanceConfig, MetadataKind};
use crate::plan::Vars;

pub use aws::Aws;
pub use http::error_chain;

/// What metadata says about this instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The metadata source's name (`aws`, `gcp`, …, `triton`), or `none` when
    /// everything came from `[instance]`.
    pub cloud: String,
    /// How the cloud was chosen, for `whoami`.
    pub detected_by: String,
    pub instance_id: String,
    pub region: Option<String>,
    pub availability_zone: Option<String>,
    pub hostname: Option<String>,
    pub public_ipv4: Option<Ipv4Addr>,
    pub private_ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
}

/// A metadata failure: which cloud, which URL, what came back.
#[derive(Debug, thiserror::Error)]
#[error("{cloud} metadata: {}: {}", printable(url), printable(what))]
pub struct MetadataError {
    pub cloud: &'static str,
    pub url: String,
    pub what: String,
}

/// `s` with control characters escaped (`\u{1b}`): what a metadata service
/// said is shown, never let loose on the operator's terminal.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Refuses an identity whose strings hold control characters (no cloud
/// writes them, and they would reach terminals, logs and DNS names), or
/// whose hostname or region is no DNS name: they go into record names
/// (`{hostname}`, `{region}`), and a name the metadata service made
/// unusable is its failure (exit 1), not the configuration's.
fn usable_identity(cloud: &'static str, id: &Identity) -> Result<(), MetadataError> {
    for (field, value) in [
        ("instance id", Some(&id.instance_id)),
        ("region", id.region.as_ref()),
        ("availability zone", id.availability_zone.as_ref()),
        ("hostname", id.hostname.as_ref()),
    ] {
        if let Some(v) = value
            && v.chars().any(char::is_control)
        {
            return Err(MetadataError {
                cloud,
                url: "its answers".into(),
                what: format!("the {field} {v:?} holds control characters; no cloud writes them"),
            });
        }
    }
    for (field, value) in [
        ("hostname", id.hostname.as_ref()),
        ("region", id.region.as_ref()),
    ] {
        if let Some(v) = value
            && !is_dns_name(v)
        {
            return Err(MetadataError {
                cloud,
                url: "its answers".into(),
                what: format!(
                    "the {field} {v:?} is not a DNS name (labels of 1 to 63 letters, digits, `-` or `_`, separated by dots); set [instance] {field} to the one to use"
                ),
            });
        }
    }
    Ok(())
}

/// Whether `s` is a DNS name as record names take it: dot-separated labels
/// of 1 to 63 letters, digits, `-` or `_`, 253 characters in all (a final
/// dot allowed).
fn is_dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// Reads this instance's identity as the configuration says, overrides applied.
pub async fn identify(cfg: &InstanceConfig) -> Result<Identity, MetadataError> {
    let mut identity = match cfg.metadata {
        MetadataKind::None => Identity {
            cloud: "none".into(),
            detected_by: "metadata = \"none\": [instance] settings only".into(),
            instance_id: String::new(),
            region: None,
            availability_zone: None,
            hostname: None,
            public_ipv4: None,
            private_ipv4: None,
            ipv6: None,
        },
        MetadataKind::Auto => detect(cfg).await?,
        kind => {
            let by = format!("metadata = \"{}\"", kind.name());
            read(kind, cfg.metadata_endpoint.as_deref(), &by).await?
        }
    };
    if let Some(id) = &cfg.id {
        identity.instance_id.clone_from(id);
    }
    if let Some(ip) = cfg.ipv4 {
        // An override is the address to publish, whichever kind is configured.
        match cfg.address {
            AddressKind::Public => identity.public_ipv4 = Some(ip),
            AddressKind::Private => identity.private_ipv4 = Some(ip),
        }
    }
    if cfg.hostname.is_some() {
        identity.hostname.clone_from(&cfg.hostname);
    }
    if cfg.region.is_some() {
        identity.region.clone_from(&cfg.region);
    }
    Ok(identity)
}

/// Reads the identity from one source; `base` overrides the cloud's address.
async fn read(
    kind: MetadataKind,
    base: Option<&str>,
    detected_by: &str,
) -> Result<Identity, MetadataError> {
    let id = match kind {
        MetadataKind::Aws => Aws::new(base).identity(detected_by).await,
        MetadataKind::Gcp => gcp::identity(base, detected_by).await,
        MetadataKind::Azure => azure::identity(base, detected_by).await,
        MetadataKind::DigitalOcean => digitalocean::identity(base, detected_by).await,
        MetadataKind::Hetzner => hetzner::identity(base, detected_by).await,
        MetadataKind::OpenStack => openstack::identity(base, detected_by).await,
        MetadataKind::Oracle => oracle::identity(base, detected_by).await,
        MetadataKind::Alibaba => alibaba::identity(base, detected_by).await,
        MetadataKind::Triton => triton::identity(base, detected_by).await,
        MetadataKind::Auto | MetadataKind::None => {
            unreachable!("auto and none are not metadata services")
        }
    }?;
    usable_identity(kind.name(), &id)?;
    Ok(id)
}

/// [`read`] for a cloud `auto` chose: a failure also says what chose it, so
/// that a machine detected wrongly is told where the wrong idea came from.
async fn read_detected(
    kind: MetadataKind,
    base: Option<&str>,
    why: &str,
) -> Result<Identity, MetadataError> {
    let by = format!("auto: {why}");
    read(kind, base, &by).await.map_err(|mut e| {
        e.what = format!(
            "{} (the cloud chosen by {by}; set [instance] metadata to say which)",
            e.what
        );
        e
    })
}

/// The clouds `auto` probes over HTTP, all at once.
const PROBED: [MetadataKind; 8] = [
    MetadataKind::Aws,
    MetadataKind::Gcp,
    MetadataKind::Azure,
    MetadataKind::DigitalOcean,
    MetadataKind::Hetzner,
    MetadataKind::OpenStack,
    MetadataKind::Oracle,
    MetadataKind::Alibaba,
];

/// One cloud's probe: does its metadata service answer, quickly, as itself?
async fn probe(kind: MetadataKind, base: Option<&str>) -> bool {
    let probing = async {
        match kind {
            MetadataKind::Aws => Aws::new(base).probe().await,
            MetadataKind::Gcp => gcp::probe(base).await,
            MetadataKind::Azure => azure::probe(base).await,
            MetadataKind::DigitalOcean => digitalocean::probe(base).await,
            MetadataKind::Hetzner => hetzner::probe(base).await,
            MetadataKind::OpenStack => openstack::probe(base).await,
            MetadataKind::Oracle => oracle::probe(base).await,
            MetadataKind::Alibaba => alibaba::probe(base).await,
            _ => false,
        }
    };
    tokio::time::timeout(http::PROBE_TIMEOUT, probing)
        .await
        .unwrap_or(false)
}

/// The DMI strings cloud-init's `tools/ds-identify` reads.
#[derive(Debug, Default)]
pub struct Dmi {
    pub sys_vendor: String,
    pub product_name: String,
    pub product_serial: String,
    pub product_uuid: String,
    pub chassis_asset_tag: String,
}

impl Dmi {
    /// From `/sys/class/dmi/id`, or `DNSREG_DMI_DIR`; unreadable files are empty.
    pub fn read() -> Dmi {
        let dir = PathBuf::from(
            std::env::var("DNSREG_DMI_DIR").unwrap_or_else(|_| "/sys/class/dmi/id".into()),
        );
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        Dmi {
            sys_vendor: read("sys_vendor"),
            product_name: read("product_name"),
            product_serial: read("product_serial"),
            product_uuid: read("product_uuid"),
            chassis_asset_tag: read("chassis_asset_tag"),
        }
    }

    /// The cloud these strings name, and which string said so.
    pub fn cloud(&self) -> Option<(MetadataKind, String)> {
        let says = |key: &str, v: &str| format!("DMI {key} is {v:?}");
        let (vendor, product, tag) = (
            self.sys_vendor.as_str(),
            self.product_name.as_str(),
            self.chassis_asset_tag.as_str(),
        );
        if vendor == "Amazon EC2" {
            return Some((MetadataKind::Aws, says("sys_vendor", vendor)));
        }
        // Xen-era EC2 instances: the UUID starts with "ec2" (either byte order).
        if self.product_uuid.to_ascii_lowercase().starts_with("ec2") {
            return Some((MetadataKind::Aws, says("product_uuid", &self.product_uuid)));
        }
        if product == "Google Compute Engine" {
            return Some((MetadataKind::Gcp, says("product_name", product)));
        }
        if self.product_serial.starts_with("GoogleCloud-") {
            return Some((
                MetadataKind::Gcp,
                says("product_serial", &self.product_serial),
            ));
        }
        // Azure's fixed chassis asset tag.
        if tag == "7783-7084-3265-9085-8269-3286-77" {
            return Some((MetadataKind::Azure, says("chassis_asset_tag", tag)));
        }
        if vendor == "DigitalOcean" {
            return Some((MetadataKind::DigitalOcean, says("sys_vendor", vendor)));
        }
        if vendor == "Hetzner" {
            return Some((MetadataKind::Hetzner, says("sys_vendor", vendor)));
        }
        if tag == "OracleCloud.com" {
            return Some((MetadataKind::Oracle, says("chassis_asset_tag", tag)));
        }
        if product == "Alibaba Cloud ECS" {
            return Some((MetadataKind::Alibaba, says("product_name", product)));
        }
        if product.starts_with("SmartDC") || vendor == "Joyent" {
            let (key, v) = if product.starts_with("SmartDC") {
                ("product_name", product)
            } else {
                ("sys_vendor", vendor)
            };
            return Some((MetadataKind::Triton, says(key, v)));
        }
        if matches!(product, "OpenStack Nova" | "OpenStack Compute") {
            return Some((MetadataKind::OpenStack, says("product_name", product)));
        }
        // OpenStack clouds that brand their chassis (as ds-identify lists them).
        if matches!(
            tag,
            "HUAWEICLOUD" | "OpenTelekomCloud" | "SAP CCloud VM" | "Samsung Cloud Platform"
        ) {
            return Some((MetadataKind::OpenStack, says("chassis_asset_tag", tag)));
        }
        None
    }
}

/// The cloud cloud-init found, from `instance-data.json`'s `v1.cloud_name`
/// (else `v1.platform`), and what said so.
pub fn cloud_init_cloud(path: &Path) -> Option<(MetadataKind, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    for key in ["cloud_name", "platform"] {
        let Some(name) = v.pointer(&format!("/v1/{key}")).and_then(|n| n.as_str()) else {
            continue;
        };
        let kind = match name.to_ascii_lowercase().as_str() {
            "aws" | "ec2" => MetadataKind::Aws,
            "gce" | "gcp" => MetadataKind::Gcp,
            "azure" => MetadataKind::Azure,
            "digitalocean" => MetadataKind::DigitalOcean,
            "hetzner" => MetadataKind::Hetzner,
            "openstack" => MetadataKind::OpenStack,
            "oracle" => MetadataKind::Oracle,
            "aliyun" | "alibaba" => MetadataKind::Alibaba,
            "joyent" | "smartos" | "triton" => MetadataKind::Triton,
            _ => continue,
        };
        return Some((kind, format!("{} v1.{key} is {name:?}", path.display())));
    }
    None
}

fn cloud_init_path() -> PathBuf {
    PathBuf::from(
        std::env::var("DNSREG_CLOUD_INIT_DATA")
            .unwrap_or_else(|_| "/run/cloud-init/instance-data.json".into()),
    )
}

/// `auto`: first without a network call (DMI as cloud-init's ds-identify reads
/// it, then cloud-init's own verdict), then every HTTP cloud probed at once,
/// each for at most 300 ms; the first that answers as itself wins.
async fn detect(cfg: &InstanceConfig) -> Result<Identity, MetadataError> {
    detect_from(
        &Dmi::read(),
        &cloud_init_path(),
        cfg.metadata_endpoint.as_deref(),
        std::env::var_os("AWS_EC2_METADATA_SERVICE_ENDPOINT").is_some(),
    )
    .await
}

/// [`detect`] from explicit sources: the DMI strings, cloud-init's
/// instance-data path, the configured endpoint, and whether
/// `AWS_EC2_METADATA_SERVICE_ENDPOINT` (which names AWS) is set.
async fn detect_from(
    dmi: &Dmi,
    data: &Path,
    base: Option<&str>,
    aws_endpoint_set: bool,
) -> Result<Identity, MetadataError> {
    if let Some((kind, why)) = dmi.cloud() {
        return read_detected(kind, base, &why).await;
    }
    if let Some((kind, why)) = cloud_init_cloud(data) {
        return read_detected(kind, base, &why).await;
    }
    if base.is_none() && aws_endpoint_set {
        return read_detected(
            MetadataKind::Aws,
            None,
            "AWS_EC2_METADATA_SERVICE_ENDPOINT is set",
        )
        .await;
    }
    let mut probes = tokio::task::JoinSet::new();
    for kind in PROBED {
        let base = base.map(str::to_string);
        probes.spawn(async move { (kind, probe(kind, base.as_deref()).await) });
    }
    while let Some(done) = probes.join_next().await {
        if let Ok((kind, true)) = done {
            probes.abort_all();
            let by = format!("the {} metadata service answered", kind.name());
            return read_detected(kind, base, &by).await;
        }
    }
    let names: Vec<&str> = PROBED.iter().map(|k| k.name()).collect();
    Err(MetadataError {
        cloud: "auto",
        url: base
            .map(str::to_string)
            .unwrap_or_else(|| http::default_base("http://169.254.169.254")),
        what: format!(
            "no cloud recognised: DMI names no known cloud, {} says none, and no metadata service answered within {} ms ({}); set [instance] metadata to the cloud's name, or metadata = \"none\" with id and ipv4",
            data.display(),
            http::PROBE_TIMEOUT.as_millis(),
            names.join(", ")
        ),
    })
}

/// A cloud's warning that this instance is about to go away.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Notice {
    /// Reclaimed capacity: a spot/preemptible instance interrupted (AWS spot
    /// `instance-action`, GCP `preempted`, Azure `Preempt`, Alibaba spot).
    Preempt {
        cloud: &'static str,
        /// What the cloud said, for logs.
        what: String,
        /// When, as the cloud wrote it, if it said.
        at: Option<String>,
    },
    /// A termination: an Auto Scaling scale-in, an Azure `Terminate` event.
    Terminate {
        cloud: &'static str,
        what: String,
        at: Option<String>,
    },
}

impl Notice {
    pub fn cloud(&self) -> &'static str {
        match self {
            Notice::Preempt { cloud, .. } | Notice::Terminate { cloud, .. } => cloud,
        }
    }

    pub fn at(&self) -> Option<&str> {
        match self {
            Notice::Preempt { at, .. } | Notice::Terminate { at, .. } => at.as_deref(),
        }
    }
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, cloud, what, at) = match self {
            Notice::Preempt { cloud, what, at } => ("preemption", cloud, what, at),
            Notice::Terminate { cloud, what, at } => ("termination", cloud, what, at),
        };
        write!(f, "{cloud} {kind} notice: {what}")?;
        if let Some(at) = at {
            write!(f, " (at {at})")?;
        }
        Ok(())
    }
}

/// Asks the cloud `identity` came from whether this instance is about to be
/// terminated or preempted. `None`: no notice, or a cloud without notices
/// (DigitalOcean, Hetzner, OpenStack, Oracle, Triton, none).
pub async fn notice(
    cfg: &InstanceConfig,
    identity: &Identity,
) -> Result<Option<Notice>, MetadataError> {
    let base = cfg.metadata_endpoint.as_deref();
    match MetadataKind::from_name(&identity.cloud) {
        Some(MetadataKind::Aws) => Aws::new(base).notice().await,
        Some(MetadataKind::Gcp) => gcp::notice(base).await,
        Some(MetadataKind::Azure) => azure::notice(base).await,
        Some(MetadataKind::Alibaba) => alibaba::notice(base).await,
        _ => Ok(None),
    }
}

/// Why `ip` can be no machine's address in DNS, if it cannot: the
/// unspecified, loopback, broadcast, multicast and link-local addresses
/// (private ranges are fine where they are wanted).
pub fn unusable_ipv4(ip: std::net::Ipv4Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("the unspecified address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_broadcast() {
        Some("the broadcast address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else {
        None
    }
}

/// [`unusable_ipv4`] for IPv6: unspecified, loopback, multicast, link-local.
pub fn unusable_ipv6(ip: std::net::Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("the unspecified address")
    } else if ip.is_loopback() {
        Some("the loopback address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if ip.is_unicast_link_local() {
        Some("a link-local address")
    } else {
        None
    }
}

/// Why an identity cannot be published, and whose answer is to blame: the
/// configuration's (exit 2, as `check` would say) or the metadata
/// service's (exit 1: what this machine was told cannot be used).
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Metadata(String),
}

/// The template variables for `identity` under the configuration's choices.
pub fn vars(identity: &Identity, cfg: &InstanceConfig) -> Result<Vars, Unusable> {
    // Without a metadata service, every value is the configuration's.
    let blame = |from_config: bool, why: String| {
        if from_config || identity.cloud == "none" {
            Unusable::Config(why)
        } else {
            Unusable::Metadata(why)
        }
    };
    if identity.instance_id.is_empty() {
        return Err(blame(
            true,
            "the instance has no id; set [instance] id (or --instance-id)".into(),
        ));
    }
    let ipv4 = match cfg.address {
        AddressKind::Public => identity.public_ipv4.ok_or_else(|| {
            let why = match identity.cloud.as_str() {
                "azure" => " (Azure metadata leaves publicIpAddress empty for Standard-SKU public IPs)",
                "oracle" => " (OCI metadata does not show public IPs)",
                _ => "",
            };
            blame(false, format!(
                "instance {} has no public IPv4 address{why}; publish its private one with [instance] address = \"private\" (--address private), or set [instance] ipv4 (--ipv4)",
                identity.instance_id
            ))
        })?,
        AddressKind::Private => identity.private_ipv4.ok_or_else(|| {
            blame(
                false,
                format!(
                    "instance {} has no private IPv4 address; set [instance] ipv4",
                    identity.instance_id
                ),
            )
        })?,
    };
    let from = || {
        if cfg.ipv4.is_some() {
            "[instance] ipv4".to_string()
        } else {
            format!("{} metadata", identity.cloud)
        }
    };
    if let Some(why) = unusable_ipv4(ipv4) {
        return Err(blame(
            cfg.ipv4.is_some(),
            format!(
                "instance {}: {ipv4} (from {}) is {why}, which no other machine can reach; set [instance] ipv4 (--ipv4) to the address to publish",
                identity.instance_id,
                from()
            ),
        ));
    }
    let ipv6 = if cfg.ipv6 { identity.ipv6 } else { None };
    if let Some(ip) = ipv6
        && let Some(why) = unusable_ipv6(ip)
    {
        return Err(blame(
            false,
            format!(
                "instance {}: {ip} (from {} metadata) is {why}, which no other machine can reach; set ipv6 = false to publish no AAAA",
                identity.instance_id, identity.cloud
            ),
        ));
    }
    Ok(Vars {
        instance_id: identity.instance_id.clone(),
        hostname: identity.hostname.clone(),
        region: identity.region.clone(),
        ipv4,
        ipv6,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};
    use testkit::imds::{CloudKind, ImdsServer, Instance};

    fn dmi(vendor: &str, product: &str, tag: &str, uuid: &str) -> Dmi {
        Dmi {
            sys_vendor: vendor.into(),
            product_name: product.into(),
            product_uuid: uuid.into(),
            chassis_asset_tag: tag.into(),
            ..Dmi::default()
        }
    }

    #[test]
    fn dmi_names_each_cloud_as_ds_identify_does() {
        let cases = [
            (dmi("Amazon EC2", "m5.large", "", ""), MetadataKind::Aws),
            (
                dmi(
                    "Xen",
                    "HVM domU",
                    "",
                    "EC2E1916-9099-7CAF-FD21-012345ABCDEF",
                ),
                MetadataKind::Aws,
            ),
            (
                dmi("Google", "Google Compute Engine", "", ""),
                MetadataKind::Gcp,
            ),
            (
                dmi(
                    "Microsoft Corporation",
                    "Virtual Machine",
                    "7783-7084-3265-9085-8269-3286-77",
                    "",
                ),
                MetadataKind::Azure,
            ),
            (
                dmi("DigitalOcean", "Droplet", "", ""),
                MetadataKind::DigitalOcean,
            ),
            (dmi("Hetzner", "vServer", "", ""), MetadataKind::Hetzner),
            (
                dmi("OpenStack Foundation", "OpenStack Nova", "", ""),
                MetadataKind::OpenStack,
            ),
            (
                dmi("QEMU", "Standard PC", "OracleCloud.com", ""),
                MetadataKind::Oracle,
            ),
            (
                dmi("Alibaba Cloud", "Alibaba Cloud ECS", "", ""),
                MetadataKind::Alibaba,
            ),
            (dmi("Joyent", "SmartDC HVM", "", ""), MetadataKind::Triton),
        ];
        for (d, want) in cases {
            assert_eq!(d.cloud().map(|(k, _)| k), Some(want), "{d:?}");
        }
        assert_eq!(dmi("QEMU", "Standard PC (Q35)", "", "").cloud(), None);
        assert_eq!(Dmi::default().cloud(), None);
    }

    #[test]
    fn cloud_init_instance_data_names_the_cloud() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("instance-data.json");
        for (name, want) in [
            ("aws", MetadataKind::Aws),
            ("gce", MetadataKind::Gcp),
            ("azure", MetadataKind::Azure),
            ("aliyun", MetadataKind::Alibaba),
            ("joyent", MetadataKind::Triton),
        ] {
            std::fs::write(
                &path,
                format!(r#"{{"v1": {{"cloud_name": "{name}", "platform": "x"}}}}"#),
            )
            .unwrap();
            let (kind, why) = cloud_init_cloud(&path).unwrap();
            assert_eq!(kind, want);
            assert!(why.contains("v1.cloud_name"), "{why}");
        }
        // An unknown cloud_name falls back to the platform.
        std::fs::write(
            &path,
            r#"{"v1": {"cloud_name": "unknown", "platform": "openstack"}}"#,
        )
        .unwrap();
        assert_eq!(
            cloud_init_cloud(&path).map(|(k, _)| k),
            Some(MetadataKind::OpenStack)
        );
        std::fs::write(&path, "not json").unwrap();
        assert_eq!(cloud_init_cloud(&path), None);
        assert_eq!(cloud_init_cloud(&dir.path().join("missing.json")), None);
    }

    #[tokio::test]
    async fn probes_find_each_http_cloud() {
        for kind in [
            CloudKind::Aws,
            CloudKind::Gcp,
            CloudKind::Azure,
            CloudKind::DigitalOcean,
            CloudKind::Hetzner,
            CloudKind::OpenStack,
            CloudKind::Oracle,
            CloudKind::Alibaba,
        ] {
            let want = Instance::example(kind);
            let imds = ImdsServer::start_cloud(kind, want.clone());
            let none = Path::new("/nonexistent/instance-data.json");
            let id = detect_from(&Dmi::default(), none, Some(&imds.url()), false)
                .await
                .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert_eq!(id.cloud, kind.name(), "{kind:?}: {id:?}");
            assert_eq!(id.instance_id, want.instance_id);
            assert!(id.detected_by.contains("answered"), "{}", id.detected_by);
        }
    }

    #[tokio::test]
    async fn dmi_wins_without_probing() {
        let imds = ImdsServer::start_cloud(CloudKind::Gcp, Instance::example(CloudKind::Gcp));
        let none = Path::new("/nonexistent/instance-data.json");
        let d = dmi("Google", "Google Compute Engine", "", "");
        let id = detect_from(&d, none, Some(&imds.url()), false)
            .await
            .unwrap();
        assert_eq!(id.cloud, "gcp");
        assert_eq!(
            id.detected_by,
            "auto: DMI product_name is \"Google Compute Engine\""
        );
    }

    /// A loopback port that accepts connections and never answers.
    async fn silent_port() -> (tokio::net::TcpListener, String) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        (l, url)
    }

    #[tokio::test]
    async fn a_silent_service_is_given_up_on_quickly() {
        let (listener, url) = silent_port().await;
        // Accept and hold every connection, answering nothing.
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let none = Path::new("/nonexistent/instance-data.json");
        let start = Instant::now();
        let e = detect_from(&Dmi::default(), none, Some(&url), false)
            .await
            .unwrap_err();
        assert!(
            start.elapsed() < Duration::from_millis(900),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(e.cloud, "auto");
        assert!(e.to_string().contains("no cloud recognised"), "{e}");
        hold.abort();
    }

    #[tokio::test]
    async fn a_refused_connection_is_given_up_on_at_once() {
        let (listener, url) = silent_port().await;
        drop(listener);
        let none = Path::new("/nonexistent/instance-data.json");
        let start = Instant::now();
        let e = detect_from(&Dmi::default(), none, Some(&url), false)
            .await
            .unwrap_err();
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
        assert!(
            e.to_string()
                .starts_with(&format!("auto metadata: {url}: ")),
            "{e}"
        );
    }

    #[test]
    fn a_missing_public_address_says_what_to_configure() {
        let cfg = InstanceConfig {
            metadata: MetadataKind::Azure,
            address: AddressKind::Public,
            ipv6: false,
            id: None,
            ipv4: None,
            hostname: None,
            region: None,
            metadata_endpoint: None,
        };
        let identity = Identity {
            cloud: "azure".into(),
            detected_by: "test".into(),
            instance_id: "02aab8a4-74ef-476e-8182-f6d2ba4166a6".into(),
            region: None,
            availability_zone: None,
            hostname: None,
            public_ipv4: None,
            private_ipv4: Some(Ipv4Addr::new(10, 1, 0, 4)),
            ipv6: None,
        };
        let e = vars(&identity, &cfg).unwrap_err();
        assert!(
            matches!(e, Unusable::Metadata(_)),
            "Azure's answer is to blame: {e:?}"
        );
        let e = e.to_string();
        assert!(
            e.contains("Standard-SKU") && e.contains("address = \"private\"") && e.contains("ipv4"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn notice_asks_the_cloud_the_identity_came_from() {
        let imds = ImdsServer::start_cloud(CloudKind::Gcp, Instance::example(CloudKind::Gcp));
        let cfg = InstanceConfig {
            metadata: MetadataKind::Gcp,
            address: AddressKind::Public,
            ipv6: false,
            id: None,
            ipv4: None,
            hostname: None,
            region: None,
            metadata_endpoint: Some(imds.url()),
        };
        let identity = identify(&cfg).await.unwrap();
        assert_eq!(notice(&cfg, &identity).await.unwrap(), None);
        imds.set_termination_notice(true);
        let n = notice(&cfg, &identity).await.unwrap().unwrap();
        assert_eq!(
            n.to_string(),
            "gcp preemption notice: instance/preempted is TRUE"
        );
        // Clouds without notices say none, without asking anything.
        let hetzner = Identity {
            cloud: "hetzner".into(),
            ..identity
        };
        assert_eq!(notice(&cfg, &hetzner).await.unwrap(), None);
    }
}
