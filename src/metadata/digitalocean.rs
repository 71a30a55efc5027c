//! DigitalOcean Droplet metadata.
//!
//! "Metadata API" (docs.digitalocean.com/reference/api/metadata-api/): plain
//! text under `http://169.254.169.254/metadata/v1/`, no header, one value per
//! path; interfaces under `interfaces/public/0/…` and `interfaces/private/0/…`
//! (the private one exists only with VPC networking; 404 = absent). Droplets
//! have a region and no zones. No termination notices.

use super::cloud::Cloud;
use super::http::{self, Http};
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
    let instance_id = http.instance_id(&format!("{ROOT}/id"), &[]).await?;
    let mut id = Identity::of(MetadataKind::DigitalOcean, detected_by, instance_id);
    id.region = get(&http, "region").await?;
    id.hostname = get(&http, "hostname").await?;
    let interface = |item: &str| format!("{ROOT}/interfaces/{item}/address");
    id.public_ipv4 = http.address(&interface("public/0/ipv4"), &[]).await?;
    id.private_ipv4 = http.address(&interface("private/0/ipv4"), &[]).await?;
    id.ipv6 = http.address(&interface("public/0/ipv6"), &[]).await?;
    Ok(id)
}

/// DigitalOcean, as the agent sees it.
pub struct DigitalOcean;

impl Cloud for DigitalOcean {
    fn kind(&self) -> MetadataKind {
        MetadataKind::DigitalOcean
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
        let s = Stand::example(&DigitalOcean);
        let id = s.identity_of_the_instance().await;
        assert_eq!(id.region.as_deref(), Some(s.want.region.as_str()));
        s.has_the_public_ipv4(&id);
        assert_eq!(id.ipv6.map(|i| i.to_string()), s.want.ipv6);
        assert!(s.probe().await);
    }

    #[tokio::test]
    async fn an_html_page_is_not_an_instance_id() {
        let s = Stand::example(&DigitalOcean);
        s.imds.set_fault(ImdsFault::Garbage);
        assert!(!s.probe().await);
        s.fails_naming("/metadata/v1/id: ").await;
    }
}
