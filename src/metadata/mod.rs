//! Who is this machine? Instance metadata, read once at start and again on each
//! reconcile (addresses can change).
//!
//! Each cloud is one file: its client, and one unit struct implementing
//! [`Cloud`] (its `probe` for `auto`, its identity, its [`notice`] if it has
//! any); [`cloud()`] finds it by kind. `http` holds the plumbing they share,
//! `detect` the choice of cloud for `auto`. This module owns the [`Identity`]
//! they all produce, the choice of source (`[instance] metadata`), and the
//! `[instance]` overrides applied on top. A 404 from a metadata service means
//! "absent" (no public IPv4, no IPv6), never "broken".

mod alibaba;
mod aws;
mod azure;
mod cloud;
mod detect;
mod digitalocean;
mod gcp;
mod hetzner;
mod http;
mod openstack;
mod oracle;
#[cfg(test)]
mod testing;
pub(crate) mod triton;

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::config::{AddressKind, InstanceConfig, MetadataKind};
pub use crate::net::{unusable_ipv4, unusable_ipv6};
use crate::plan::Vars;

pub use cloud::Cloud;
/// The fuzz targets feed DMI strings and cloud-init data to detection directly.
#[cfg(test)]
pub use detect::{Dmi, cloud_init_cloud};
pub use http::error_chain;

/// What metadata says about this instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The metadata source (`aws`, `gcp`, …, `triton`), or `none` when
    /// everything came from `[instance]`; shown and serialized by its name.
    #[serde(serialize_with = "cloud::serialize_kind")]
    pub cloud: MetadataKind,
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

impl Identity {
    /// An identity from `cloud` of which only the id is known yet: each reader
    /// starts from it and fills in the rest as it reads it.
    pub fn of(cloud: MetadataKind, detected_by: &str, instance_id: String) -> Identity {
        Identity {
            cloud,
            detected_by: detected_by.to_string(),
            instance_id,
            region: None,
            availability_zone: None,
            hostname: None,
            public_ipv4: None,
            private_ipv4: None,
            ipv6: None,
        }
    }
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
        MetadataKind::None => Identity::of(
            MetadataKind::None,
            "metadata = \"none\": [instance] settings only",
            String::new(),
        ),
        MetadataKind::Auto => detect::detect(cfg).await?,
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

/// Every cloud, in the order `[instance] metadata` lists them (and `auto`
/// probes them).
pub const CLOUDS: [&dyn Cloud; 9] = [
    &aws::Aws,
    &gcp::Gcp,
    &azure::Azure,
    &digitalocean::DigitalOcean,
    &hetzner::Hetzner,
    &openstack::OpenStack,
    &oracle::Oracle,
    &alibaba::Alibaba,
    &triton::Triton,
];

/// The cloud of `kind`; `None` for `auto` and `none`, which are not metadata
/// services.
pub fn cloud(kind: MetadataKind) -> Option<&'static dyn Cloud> {
    CLOUDS.into_iter().find(|c| c.kind() == kind)
}

/// Reads the identity from one source; `base` overrides the cloud's address.
async fn read(
    kind: MetadataKind,
    base: Option<&str>,
    detected_by: &str,
) -> Result<Identity, MetadataError> {
    let cloud = cloud(kind).expect("auto and none are not metadata services");
    let id = cloud.identity(base, detected_by).await?;
    usable_identity(cloud.name(), &id)?;
    Ok(id)
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
/// (one whose [`Cloud::has_notices`] is false, or none).
pub async fn notice(
    cfg: &InstanceConfig,
    identity: &Identity,
) -> Result<Option<Notice>, MetadataError> {
    match cloud(identity.cloud) {
        Some(c) => c.notice(cfg.metadata_endpoint.as_deref()).await,
        None => Ok(None),
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
        if from_config || identity.cloud == MetadataKind::None {
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
            let why = match cloud(identity.cloud).map(|c| c.no_public_ipv4_why()) {
                Some(why) if !why.is_empty() => format!(" ({why})"),
                _ => String::new(),
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
    use testkit::imds::{CloudKind, ImdsServer, Instance};

    #[test]
    fn a_dns_name_is_labels_of_letters_digits_hyphens_and_underscores() {
        for good in [
            "ip-10-0-0-7",
            "web_1.eu-west-1.compute.internal",
            "a.",
            &"a".repeat(63),
        ] {
            assert!(is_dns_name(good), "{good:?}");
        }
        let long = ["a"; 127].join(".");
        assert!(is_dns_name(&long), "253 characters");
        for bad in [
            "",
            ".",
            "my host",
            "<html>",
            "a..b",
            "host!",
            &"a".repeat(64),
            &format!("{long}.b"),
        ] {
            assert!(!is_dns_name(bad), "{bad:?}");
        }
    }

    /// `[instance]` reading `metadata` (at `endpoint`, if given) and
    /// publishing the public IPv4 address only, nothing overridden.
    fn instance(metadata: MetadataKind, endpoint: Option<String>) -> InstanceConfig {
        InstanceConfig {
            metadata,
            address: AddressKind::Public,
            ipv6: false,
            id: None,
            ipv4: None,
            hostname: None,
            region: None,
            metadata_endpoint: endpoint,
        }
    }

    #[test]
    fn a_missing_public_address_says_what_to_configure() {
        let cfg = instance(MetadataKind::Azure, None);
        let identity = Identity {
            private_ipv4: Some(Ipv4Addr::new(10, 1, 0, 4)),
            ..Identity::of(
                MetadataKind::Azure,
                "test",
                "02aab8a4-74ef-476e-8182-f6d2ba4166a6".into(),
            )
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
        let cfg = instance(MetadataKind::Gcp, Some(imds.url()));
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
            cloud: MetadataKind::Hetzner,
            ..identity
        };
        assert_eq!(notice(&cfg, &hetzner).await.unwrap(), None);
    }

    #[test]
    fn every_cloud_is_found_by_its_kind_and_named_as_configured() {
        for kind in MetadataKind::ALL {
            match cloud(kind) {
                Some(c) => {
                    assert_eq!(c.kind(), kind);
                    assert_eq!(c.name(), kind.to_string());
                }
                None => assert!(matches!(kind, MetadataKind::Auto | MetadataKind::None)),
            }
        }
    }

    #[test]
    fn whoami_json_names_the_cloud() {
        let identity = Identity::of(MetadataKind::DigitalOcean, "test", "1".into());
        let v = serde_json::to_value(&identity).unwrap();
        assert_eq!(v["cloud"], "digitalocean", "{v}");
    }

    #[tokio::test]
    async fn only_clouds_with_notices_are_asked() {
        let watched: Vec<&str> = CLOUDS
            .iter()
            .filter(|c| c.has_notices())
            .map(|c| c.name())
            .collect();
        assert_eq!(watched, ["aws", "gcp", "azure", "alibaba"]);
        // Nothing listens on the discard port: a request would fail.
        for c in CLOUDS.iter().filter(|c| !c.has_notices()) {
            let n = c.notice(Some("http://127.0.0.1:9")).await;
            assert_eq!(n.unwrap(), None, "{}", c.name());
        }
    }
}
