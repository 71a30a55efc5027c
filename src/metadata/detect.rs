//! `[instance] metadata = "auto"`: which cloud is this? First what the
//! machine says without a network call (DMI, as cloud-init's ds-identify reads
//! it, then cloud-init's own verdict), then every HTTP cloud probed at once.

use std::path::{Path, PathBuf};

use super::{CLOUDS, Cloud, Identity, MetadataError, http, read};
use crate::config::{InstanceConfig, MetadataKind};

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
fn probed() -> impl Iterator<Item = &'static dyn Cloud> {
    CLOUDS.into_iter().filter(|c| c.probed())
}

/// One cloud's probe: does its metadata service answer, quickly, as itself?
async fn probe(cloud: &dyn Cloud, base: Option<&str>) -> bool {
    tokio::time::timeout(http::PROBE_TIMEOUT, cloud.probe(base))
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
pub(super) async fn detect(cfg: &InstanceConfig) -> Result<Identity, MetadataError> {
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
    for cloud in probed() {
        let base = base.map(str::to_string);
        probes.spawn(async move { (cloud, probe(cloud, base.as_deref()).await) });
    }
    while let Some(done) = probes.join_next().await {
        if let Ok((cloud, true)) = done {
            probes.abort_all();
            let by = format!("the {} metadata service answered", cloud.name());
            return read_detected(cloud.kind(), base, &by).await;
        }
    }
    let names: Vec<&str> = probed().map(|c| c.name()).collect();
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
            assert_eq!(id.cloud.name(), kind.name(), "{kind:?}: {id:?}");
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
        assert_eq!(id.cloud, MetadataKind::Gcp);
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

    /// Detection with no DMI and no cloud-init data, probing `url` only: how
    /// it failed, and how long it took to.
    async fn fail_to_detect(url: &str) -> (MetadataError, Duration) {
        let none = Path::new("/nonexistent/instance-data.json");
        let start = Instant::now();
        let e = detect_from(&Dmi::default(), none, Some(url), false)
            .await
            .unwrap_err();
        (e, start.elapsed())
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
        let (e, took) = fail_to_detect(&url).await;
        assert!(took < Duration::from_millis(900), "{took:?}");
        assert_eq!(e.cloud, "auto");
        assert!(e.to_string().contains("no cloud recognised"), "{e}");
        hold.abort();
    }

    #[tokio::test]
    async fn a_refused_connection_is_given_up_on_at_once() {
        let (listener, url) = silent_port().await;
        drop(listener);
        let (e, took) = fail_to_detect(&url).await;
        assert!(took < Duration::from_millis(500), "{took:?}");
        assert!(
            e.to_string()
                .starts_with(&format!("auto metadata: {url}: ")),
            "{e}"
        );
    }
}
