//! DigitalOcean Droplet metadata.
//!
//! "Metadata API" (docs.digitalocean.com/reference/api/metadata-api/): plain
//! text under `http://169.254.169.254/metadata/v1/`, no header, one value per
//! path; interfaces under `interfaces/public/0/…` and `interfaces/private/0/…`
//! (the private one exists only with VPC networking; 404 = absent). Droplets
//! have a region and no zones. No termination notices.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::cloud::Cloud;
use super::http::{self, Http, check_id, parse_ip};
use super::{Identity, MetadataError};
use crate::config::MetadataKind;

const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
const ROOT: &str = "/metadata/v1";

fn client(base: Option<&str>) -> Http {
    Http::new("digitalocean", http::base(base, DEFAULT_ENDPOINT))
}

/// Does the Droplet metadata service answer with a numeric id?
async fn probe(base: Option<&str>) -> bool {
    client(base).probe_numeric_id(&format!("{ROOT}/id")).await
}

async fn get(http: &Http, item: &str) -> Result<Option<String>, MetadataError> {
    http.value(&format!("{ROOT}/{item}"), &[]).await
}

async fn identity(base: Option<&str>, detected_by: &str) -> Result<Identity, MetadataError> {
    let http = client(base);
    let id_path = format!("{ROOT}/id");
    let instance_id = http.required(&id_path, &[]).await?.trim().to_string();
    check_id(&http, &id_path, &instance_id)?;
    let region = get(&http, "region").await?;
    let hostname = get(&http, "hostname").await?;
    let addr = async |item: &str| -> Result<(String, Option<String>), MetadataError> {
        Ok((format!("{ROOT}/{item}"), get(&http, item).await?))
    };
    let (p, v) = addr("interfaces/public/0/ipv4/address").await?;
    let public_ipv4: Option<Ipv4Addr> = parse_ip(&http, &p, v.as_deref())?;
    let (p, v) = addr("interfaces/private/0/ipv4/address").await?;
    let private_ipv4: Option<Ipv4Addr> = parse_ip(&http, &p, v.as_deref())?;
    let (p, v) = addr("interfaces/public/0/ipv6/address").await?;
    let ipv6: Option<Ipv6Addr> = parse_ip(&http, &p, v.as_deref())?;
    Ok(Identity {
        cloud: MetadataKind::DigitalOcean,
        detected_by: detected_by.to_string(),
        instance_id,
        region,
        availability_zone: None,
        hostname,
        public_ipv4,
        private_ipv4,
        ipv6,
    })
}

/// DigitalOcean, as the agent sees it.
pub struct DigitalOcean;

impl Cloud for DigitalOcean {
    fn kind(&self) -> MetadataKind {
        MetadataKind::DigitalOcean
    }

    super::cloud::read_by_module_fns!();

    fn has_notices(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::imds::{CloudKind, ImdsFault, ImdsServer, Instance};

    #[tokio::test]
    async fn reads_the_identity() {
        let want = Instance::example(CloudKind::DigitalOcean);
        let imds = ImdsServer::start_cloud(CloudKind::DigitalOcean, want.clone());
        let id = identity(Some(&imds.url()), "test").await.unwrap();
        assert_eq!(id.cloud.to_string(), "digitalocean");
        assert_eq!(id.instance_id, want.instance_id);
        assert_eq!(id.region.as_deref(), Some(want.region.as_str()));
        assert_eq!(id.public_ipv4.map(|i| i.to_string()), want.public_ipv4);
        assert_eq!(id.ipv6.map(|i| i.to_string()), want.ipv6);
        assert!(probe(Some(&imds.url())).await);
    }

    #[tokio::test]
    async fn an_html_page_is_not_an_instance_id() {
        let imds = ImdsServer::start_cloud(
            CloudKind::DigitalOcean,
            Instance::example(CloudKind::DigitalOcean),
        );
        imds.set_fault(ImdsFault::Garbage);
        assert!(!probe(Some(&imds.url())).await);
        let e = identity(Some(&imds.url()), "test")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "digitalocean metadata: {}/metadata/v1/id: ",
                imds.url()
            )),
            "{e}"
        );
    }
}
