//! Who is this machine? Instance metadata, read once at start and again on each
//! reconcile (addresses can change).
//!
//! Each cloud is one file; this module owns the [`Identity`] they all produce,
//! the choice of source (`[instance] metadata`), detection for `auto`, and the
//! `[instance]` overrides applied on top. A 404 from a metadata service means
//! "absent" (no public IPv4, no IPv6), never "broken".

mod aws;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::Serialize;

use crate::config::{AddressKind, InstanceConfig, MetadataKind};
use crate::plan::Vars;

pub use aws::{Aws, error_chain};

/// What metadata says about this instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// `aws`, or `none` when everything came from `[instance]`.
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
#[error("{cloud} metadata: {url}: {what}")]
pub struct MetadataError {
    pub cloud: &'static str,
    pub url: String,
    pub what: String,
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
        MetadataKind::Aws => {
            Aws::new(cfg.metadata_endpoint.as_deref())
                .identity("metadata = \"aws\"")
                .await?
        }
        MetadataKind::Auto => detect(cfg).await?,
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

/// `auto`: AWS is recognised without a network call from DMI (as cloud-init's
/// ds-identify does) or from an explicit endpoint; otherwise one short probe.
async fn detect(cfg: &InstanceConfig) -> Result<Identity, MetadataError> {
    let dmi =
        Path::new(&std::env::var("DNSREG_DMI_DIR").unwrap_or_else(|_| "/sys/class/dmi/id".into()))
            .to_path_buf();
    let read = |f: &str| {
        std::fs::read_to_string(dmi.join(f))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let (vendor, uuid) = (read("sys_vendor"), read("product_uuid"));
    let aws = Aws::new(cfg.metadata_endpoint.as_deref());
    if vendor == "Amazon EC2" || uuid.to_ascii_lowercase().starts_with("ec2") {
        return aws
            .identity(&format!(
                "auto: DMI says {}",
                if vendor.is_empty() { &uuid } else { &vendor }
            ))
            .await;
    }
    if cfg.metadata_endpoint.is_some()
        || std::env::var_os("AWS_EC2_METADATA_SERVICE_ENDPOINT").is_some()
    {
        return aws
            .identity("auto: an AWS metadata endpoint is configured")
            .await;
    }
    if aws.probe().await {
        return aws
            .identity("auto: the AWS metadata service answered")
            .await;
    }
    Err(MetadataError {
        cloud: "auto",
        url: aws.base().to_string(),
        what: "no cloud recognised (DMI has no known vendor and the AWS metadata service did not answer); set [instance] metadata = \"aws\", or metadata = \"none\" with id and ipv4".into(),
    })
}

/// The template variables for `identity` under the configuration's choices.
pub fn vars(identity: &Identity, cfg: &InstanceConfig) -> Result<Vars, String> {
    if identity.instance_id.is_empty() {
        return Err("the instance has no id; set [instance] id (or --instance-id)".into());
    }
    let ipv4 = match cfg.address {
        AddressKind::Public => identity.public_ipv4.ok_or_else(|| {
            format!(
                "instance {} has no public IPv4 address; publish its private one with [instance] address = \"private\" (--address private), or set ipv4",
                identity.instance_id
            )
        })?,
        AddressKind::Private => identity
            .private_ipv4
            .ok_or_else(|| format!("instance {} has no private IPv4 address; set [instance] ipv4", identity.instance_id))?,
    };
    Ok(Vars {
        instance_id: identity.instance_id.clone(),
        hostname: identity.hostname.clone(),
        region: identity.region.clone(),
        ipv4,
        ipv6: if cfg.ipv6 { identity.ipv6 } else { None },
    })
}
