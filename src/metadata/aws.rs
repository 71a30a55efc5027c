//! AWS EC2 instance metadata, IMDSv2.
//!
//! The token flow of "Use the Instance Metadata Service to access instance
//! metadata": `PUT /latest/api/token`, then GETs with the token. Endpoint from
//! `metadata_endpoint`, else `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else the
//! link-local default. Every call is short and retried a few times; a token
//! request that never answers is the IMDSv2 hop limit inside a container, and the
//! error says how to fix it.

use std::net::Ipv6Addr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use tokio::sync::Mutex;

use super::cloud::{Cloud, Pending};
use super::http::{self, Call, Http, check_id, describe, parse_ip, shown};
use super::{Identity, MetadataError, Notice};
use crate::config::MetadataKind;

const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
const TOKEN_TTL_SECONDS: &str = "21600";
const TOKEN_PATH: &str = "/latest/api/token";
const HOP_LIMIT: &str = "the IMDSv2 token request got no answer in time; inside a container this is the instance's metadata hop limit: raise it to 2 (aws ec2 modify-instance-metadata-options --http-put-response-hop-limit 2 --instance-id ...)";

/// One conversation with IMDS, holding its IMDSv2 token.
struct Imds {
    http: Http,
    token: Mutex<Option<String>>,
}

impl Imds {
    /// `endpoint`, else `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else the default
    /// (or `DNSREG_METADATA_PROBE_ROOT`).
    pub fn new(endpoint: Option<&str>) -> Imds {
        let env = std::env::var("AWS_EC2_METADATA_SERVICE_ENDPOINT").ok();
        let base = http::base(endpoint.or(env.as_deref()), DEFAULT_ENDPOINT);
        Imds {
            http: Http::new("aws", base),
            token: Mutex::new(None),
        }
    }

    /// Does an IMDSv2 token request answer quickly? Used by `auto` detection.
    pub async fn probe(&self) -> bool {
        let headers = [("X-aws-ec2-metadata-token-ttl-seconds", "60")];
        let reply = self
            .http
            .probe(Call {
                method: Method::PUT,
                ..Call::get(TOKEN_PATH, &headers)
            })
            .await;
        matches!(reply, Some(r) if r.status.is_success() && plausible_token(r.body.trim()))
    }

    async fn token(&self, refresh: bool) -> Result<String, MetadataError> {
        let mut cached = self.token.lock().await;
        if !refresh && let Some(t) = cached.as_ref() {
            return Ok(t.clone());
        }
        let headers = [("X-aws-ec2-metadata-token-ttl-seconds", TOKEN_TTL_SECONDS)];
        let reply = self
            .http
            .request(&Call {
                method: Method::PUT,
                // IMDS answers in milliseconds; a token that has not come in a
                // second is not coming (the hop limit drops it).
                timeout: Some(Duration::from_secs(1)),
                on_timeout: Some(HOP_LIMIT),
                ..Call::get(TOKEN_PATH, &headers)
            })
            .await?;
        if !reply.status.is_success() {
            return Err(self.http.err(
                TOKEN_PATH,
                format!("the token request was refused with HTTP {}", reply.status),
            ));
        }
        let token = reply.body.trim().to_string();
        if !plausible_token(&token) {
            return Err(self.http.err(TOKEN_PATH, format!("the answer is not an IMDSv2 token: {:?}; is something else answering at this address?", shown(&token))));
        }
        *cached = Some(token.clone());
        Ok(token)
    }

    /// GETs a metadata path; `Ok(None)` for 404 (absent).
    pub async fn get(&self, path: &str) -> Result<Option<String>, MetadataError> {
        let path = format!("/latest/meta-data/{path}");
        let mut token = self.token(false).await?;
        for attempt in 0..2 {
            let headers = [("X-aws-ec2-metadata-token", token.as_str())];
            let reply = self.http.request(&Call::get(&path, &headers)).await?;
            match reply.status {
                s if s.is_success() => return Ok(Some(reply.body.trim().to_string())),
                StatusCode::NOT_FOUND => return Ok(None),
                // An expired or foreign token: get a fresh one, once.
                StatusCode::UNAUTHORIZED if attempt == 0 => token = self.token(true).await?,
                StatusCode::UNAUTHORIZED => {
                    return Err(self.http.err(&path, "HTTP 401 with a fresh IMDSv2 token"));
                }
                s => return Err(self.http.err(&path, describe(s, &reply.body))),
            }
        }
        unreachable!("the loop returns on its second pass")
    }

    async fn required(&self, path: &str) -> Result<String, MetadataError> {
        self.get(path).await?.ok_or_else(|| {
            self.http.err(
                &format!("/latest/meta-data/{path}"),
                "HTTP 404: the instance has no such value",
            )
        })
    }

    fn parse<T: std::str::FromStr>(
        &self,
        path: &str,
        v: Option<String>,
    ) -> Result<Option<T>, MetadataError> {
        parse_ip(
            &self.http,
            &format!("/latest/meta-data/{path}"),
            v.as_deref(),
        )
    }

    /// The whole identity.
    pub async fn identity(&self, detected_by: &str) -> Result<Identity, MetadataError> {
        let instance_id = self.required("instance-id").await?;
        // A captive portal or a proxy answers 200 with a page: say so rather than
        // publish a web page as a DNS name.
        if instance_id.len() > 64 {
            return Err(self.http.err("/latest/meta-data/instance-id", format!("the answer is not an instance id: {:?}; is something else answering at this address?", shown(&instance_id))));
        }
        check_id(&self.http, "/latest/meta-data/instance-id", &instance_id)?;
        let mut id = Identity::of(MetadataKind::Aws, detected_by, instance_id);
        id.availability_zone = self.get("placement/availability-zone").await?;
        id.region = match self.get("placement/region").await? {
            Some(r) => Some(r),
            // Older instances: the region is the zone minus its letter.
            None => id.availability_zone.as_ref().map(|z| {
                z.trim_end_matches(|c: char| c.is_ascii_alphabetic())
                    .to_string()
            }),
        };
        id.hostname = self.get("local-hostname").await?;
        id.private_ipv4 = self.parse("local-ipv4", self.get("local-ipv4").await?)?;
        id.public_ipv4 = self.parse("public-ipv4", self.get("public-ipv4").await?)?;
        id.ipv6 = match self.get("mac").await? {
            Some(mac) => {
                let path = format!("network/interfaces/macs/{mac}/ipv6s");
                let first = self
                    .get(&path)
                    .await?
                    .and_then(|s| s.lines().next().map(str::to_string));
                self.parse::<Ipv6Addr>(&path, first)?
            }
            None => None,
        };
        Ok(id)
    }

    /// A spot interruption (`spot/instance-action`) or an Auto Scaling
    /// scale-in (`autoscaling/target-lifecycle-state` = `Terminated`), from
    /// "Spot Instance interruption notices" and "Retrieve the target lifecycle
    /// state through instance metadata".
    pub async fn notice(&self) -> Result<Option<Notice>, MetadataError> {
        if let Some(body) = self.get("spot/instance-action").await? {
            let path = "/latest/meta-data/spot/instance-action";
            let v = self.http.parse_json(path, &body)?;
            let action = http::str_at(&v, "/action").unwrap_or("terminate");
            return Ok(Some(Notice::Preempt {
                cloud: "aws",
                what: format!("spot instance-action {action}"),
                at: http::str_at(&v, "/time").map(str::to_string),
            }));
        }
        if let Some(state) = self.get("autoscaling/target-lifecycle-state").await?
            && state.trim() == "Terminated"
        {
            return Ok(Some(Notice::Terminate {
                cloud: "aws",
                what: "auto scaling target lifecycle state Terminated".into(),
                at: None,
            }));
        }
        Ok(None)
    }
}

fn plausible_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= 512 && token.chars().all(|c| c.is_ascii_graphic())
}

/// AWS EC2, as the agent sees it.
pub struct Aws;

impl Cloud for Aws {
    fn kind(&self) -> MetadataKind {
        MetadataKind::Aws
    }

    fn probe<'a>(&'a self, base: Option<&'a str>) -> Pending<'a, bool> {
        Box::pin(async move { Imds::new(base).probe().await })
    }

    fn identity<'a>(
        &'a self,
        base: Option<&'a str>,
        detected_by: &'a str,
    ) -> Pending<'a, Result<Identity, MetadataError>> {
        Box::pin(async move { Imds::new(base).identity(detected_by).await })
    }

    fn has_notices(&self) -> bool {
        true
    }

    fn notice<'a>(
        &'a self,
        base: Option<&'a str>,
    ) -> Pending<'a, Result<Option<Notice>, MetadataError>> {
        Box::pin(async move { Imds::new(base).notice().await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::testing::failure;
    use crate::retry::Backoff;
    use testkit::imds::{AwsInstance, ImdsFault, ImdsServer};

    #[tokio::test]
    async fn reads_the_identity_with_a_token() {
        let imds = ImdsServer::start(AwsInstance {
            ipv6: Some("2001:db8::5".into()),
            ..AwsInstance::default()
        });
        let id = Imds::new(Some(&imds.url())).identity("test").await.unwrap();
        assert_eq!(id.instance_id, "i-0123456789abcdef0");
        assert_eq!(id.region.as_deref(), Some("us-east-1"));
        assert_eq!(id.public_ipv4, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(id.private_ipv4, Some("10.0.0.5".parse().unwrap()));
        assert_eq!(id.ipv6, Some("2001:db8::5".parse().unwrap()));
        // One token for the whole identity.
        assert_eq!(
            imds.requests()
                .iter()
                .filter(|r| r.starts_with("PUT"))
                .count(),
            1
        );
    }

    #[tokio::test]
    async fn a_404_means_absent() {
        let imds = ImdsServer::start(AwsInstance {
            public_ipv4: None,
            ipv6: None,
            ..AwsInstance::default()
        });
        let id = Imds::new(Some(&imds.url())).identity("test").await.unwrap();
        assert_eq!(id.public_ipv4, None);
        assert_eq!(id.ipv6, None);
    }

    #[tokio::test]
    async fn failures_name_the_cloud_and_url() {
        let imds = ImdsServer::start(AwsInstance::default());
        imds.set_fault(ImdsFault::Status(500));
        let e = failure(&Aws, &imds.url()).await;
        assert_eq!(
            e,
            format!(
                "aws metadata: {}/latest/api/token: HTTP 500 Internal Server Error",
                imds.url()
            )
        );
        // Retried a bounded number of times.
        assert_eq!(imds.requests().len(), Backoff::METADATA.attempts as usize);

        imds.set_fault(ImdsFault::Garbage);
        let e = failure(&Aws, &imds.url()).await;
        assert!(e.contains("is not an IMDSv2 token"), "{e}");
    }

    #[tokio::test]
    async fn a_token_that_never_comes_is_the_hop_limit() {
        let imds = ImdsServer::start(AwsInstance::default());
        imds.set_fault(ImdsFault::HopLimit);
        let e = failure(&Aws, &imds.url()).await;
        assert!(
            e.contains("hop limit") && e.contains("--http-put-response-hop-limit 2"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn spot_and_scale_in_are_notices() {
        let imds = ImdsServer::start(AwsInstance::default());
        let aws = Imds::new(Some(&imds.url()));
        assert_eq!(aws.notice().await.unwrap(), None);
        imds.set_lifecycle_state("Terminated");
        let n = aws.notice().await.unwrap().unwrap();
        assert!(matches!(n, Notice::Terminate { cloud: "aws", .. }), "{n:?}");
        imds.set_spot_action(Some("terminate"));
        let n = aws.notice().await.unwrap().unwrap();
        assert!(matches!(n, Notice::Preempt { cloud: "aws", .. }), "{n:?}");
        assert!(n.at().is_some(), "{n:?}");
    }
}
