//! AWS EC2 instance metadata, IMDSv2.
//!
//! The token flow of "Use the Instance Metadata Service to access instance
//! metadata": `PUT /latest/api/token`, then GETs with the token. Endpoint from
//! `metadata_endpoint`, else `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else the
//! link-local default. Every call is short and retried a few times; a token
//! request that never answers is the IMDSv2 hop limit inside a container, and the
//! error says how to fix it.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use reqwest::StatusCode;
use tokio::sync::Mutex;

use super::{Identity, MetadataError};
use crate::retry::{Backoff, retry};

const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
const TOKEN_TTL_SECONDS: &str = "21600";

pub struct Aws {
    base: String,
    http: reqwest::Client,
    token: Mutex<Option<String>>,
}

enum Fail {
    /// Worth another try: connection refused, timeout, 5xx.
    Transient(String),
    Permanent(String),
}

impl Aws {
    pub fn new(endpoint: Option<&str>) -> Aws {
        let base = endpoint
            .map(str::to_string)
            .or_else(|| std::env::var("AWS_EC2_METADATA_SERVICE_ENDPOINT").ok())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
            .trim_end_matches('/')
            .to_string();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .expect("a plain HTTP client builds");
        Aws {
            base,
            http,
            token: Mutex::new(None),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Does an IMDSv2 token request answer quickly? Used by `auto` detection.
    pub async fn probe(&self) -> bool {
        let req = self
            .http
            .put(format!("{}/latest/api/token", self.base))
            .header("X-aws-ec2-metadata-token-ttl-seconds", "60")
            .timeout(Duration::from_millis(300));
        matches!(req.send().await, Ok(r) if r.status().is_success())
    }

    fn err(&self, path: &str, what: impl Into<String>) -> MetadataError {
        MetadataError {
            cloud: "aws",
            url: format!("{}{path}", self.base),
            what: what.into(),
        }
    }

    async fn token(&self, refresh: bool) -> Result<String, MetadataError> {
        let mut cached = self.token.lock().await;
        if !refresh && let Some(t) = cached.as_ref() {
            return Ok(t.clone());
        }
        let path = "/latest/api/token";
        let got = retry(
            Backoff::METADATA,
            |_| async {
                let resp = self
                    .http
                    .put(format!("{}{path}", self.base))
                    .header("X-aws-ec2-metadata-token-ttl-seconds", TOKEN_TTL_SECONDS)
                    // IMDS answers in milliseconds; a token that has not come in a
                    // second is not coming (the hop limit drops it).
                    .timeout(Duration::from_secs(1))
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().is_success() => r.text().await.map_err(|e| Fail::Transient(e.to_string())),
                    Ok(r) if r.status().is_server_error() => Err(Fail::Transient(format!("HTTP {}", r.status()))),
                    Ok(r) => Err(Fail::Permanent(format!("the token request was refused with HTTP {}", r.status()))),
                    Err(e) if e.is_timeout() => Err(Fail::Transient(
                        "the IMDSv2 token request got no answer in time; inside a container this is the instance's metadata hop limit: raise it to 2 (aws ec2 modify-instance-metadata-options --http-put-response-hop-limit 2 --instance-id ...)".into(),
                    )),
                    Err(e) => Err(Fail::Transient(format!("unreachable: {}", error_chain(&e)))),
                }
            },
            |f| matches!(f, Fail::Transient(_)),
        )
        .await
        .map_err(|f| match f {
            Fail::Transient(w) | Fail::Permanent(w) => self.err(path, w),
        })?;
        let token = got.trim().to_string();
        if token.is_empty() || token.len() > 512 || !token.chars().all(|c| c.is_ascii_graphic()) {
            let shown: String = token.chars().take(60).collect();
            return Err(self.err(path, format!("the answer is not an IMDSv2 token: {shown:?}; is something else answering at this address?")));
        }
        *cached = Some(token.clone());
        Ok(token)
    }

    /// GETs a metadata path; `Ok(None)` for 404 (absent).
    pub async fn get(&self, path: &str) -> Result<Option<String>, MetadataError> {
        let path = format!("/latest/meta-data/{path}");
        let mut token = self.token(false).await?;
        for attempt in 0..2 {
            let got = retry(
                Backoff::METADATA,
                |_| async {
                    let resp = self
                        .http
                        .get(format!("{}{path}", self.base))
                        .header("X-aws-ec2-metadata-token", &token)
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status() == StatusCode::NOT_FOUND => Ok((r.status(), None)),
                        Ok(r) if r.status() == StatusCode::UNAUTHORIZED => Ok((r.status(), None)),
                        Ok(r) if r.status().is_success() => {
                            let body =
                                r.text().await.map_err(|e| Fail::Transient(e.to_string()))?;
                            Ok((StatusCode::OK, Some(body)))
                        }
                        Ok(r) if r.status().is_server_error() => {
                            Err(Fail::Transient(format!("HTTP {}", r.status())))
                        }
                        Ok(r) => Err(Fail::Permanent(format!("HTTP {}", r.status()))),
                        Err(e) => Err(Fail::Transient(format!("unreachable: {}", error_chain(&e)))),
                    }
                },
                |f| matches!(f, Fail::Transient(_)),
            )
            .await
            .map_err(|f| match f {
                Fail::Transient(w) | Fail::Permanent(w) => self.err(&path, w),
            })?;
            match got {
                // An expired or foreign token: get a fresh one, once.
                (StatusCode::UNAUTHORIZED, _) if attempt == 0 => token = self.token(true).await?,
                (StatusCode::UNAUTHORIZED, _) => {
                    return Err(self.err(&path, "HTTP 401 with a fresh IMDSv2 token"));
                }
                (_, body) => return Ok(body.map(|b| b.trim().to_string())),
            }
        }
        unreachable!("the loop returns on its second pass")
    }

    async fn required(&self, path: &str) -> Result<String, MetadataError> {
        self.get(path).await?.ok_or_else(|| {
            self.err(
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
        v.map(|s| {
            s.parse::<T>().map_err(|_| {
                self.err(
                    &format!("/latest/meta-data/{path}"),
                    format!("not an address: {s:?}"),
                )
            })
        })
        .transpose()
    }

    /// The whole identity.
    pub async fn identity(&self, detected_by: &str) -> Result<Identity, MetadataError> {
        let instance_id = self.required("instance-id").await?;
        // A captive portal or a proxy answers 200 with a page: say so rather than
        // publish a web page as a DNS name.
        if instance_id.is_empty()
            || instance_id.len() > 64
            || !instance_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            let shown: String = instance_id.chars().take(60).collect();
            return Err(self.err("/latest/meta-data/instance-id", format!("the answer is not an instance id: {shown:?}; is something else answering at this address?")));
        }
        let availability_zone = self.get("placement/availability-zone").await?;
        let region = match self.get("placement/region").await? {
            Some(r) => Some(r),
            // Older instances: the region is the zone minus its letter.
            None => availability_zone.as_ref().map(|z| {
                z.trim_end_matches(|c: char| c.is_ascii_alphabetic())
                    .to_string()
            }),
        };
        let hostname = self.get("local-hostname").await?;
        let private_ipv4: Option<Ipv4Addr> =
            self.parse("local-ipv4", self.get("local-ipv4").await?)?;
        let public_ipv4: Option<Ipv4Addr> =
            self.parse("public-ipv4", self.get("public-ipv4").await?)?;
        let ipv6 = match self.get("mac").await? {
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
        Ok(Identity {
            cloud: "aws".into(),
            detected_by: detected_by.to_string(),
            instance_id,
            region,
            availability_zone,
            hostname,
            public_ipv4,
            private_ipv4,
            ipv6,
        })
    }
}

/// An error with its causes, `a: b: c`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::imds::{AwsInstance, ImdsFault, ImdsServer};

    #[tokio::test]
    async fn reads_the_identity_with_a_token() {
        let imds = ImdsServer::start(AwsInstance {
            ipv6: Some("2001:db8::5".into()),
            ..AwsInstance::default()
        });
        let id = Aws::new(Some(&imds.url())).identity("test").await.unwrap();
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
        let id = Aws::new(Some(&imds.url())).identity("test").await.unwrap();
        assert_eq!(id.public_ipv4, None);
        assert_eq!(id.ipv6, None);
    }

    #[tokio::test]
    async fn failures_name_the_cloud_and_url() {
        let imds = ImdsServer::start(AwsInstance::default());
        imds.set_fault(ImdsFault::Status(500));
        let e = Aws::new(Some(&imds.url()))
            .identity("test")
            .await
            .unwrap_err()
            .to_string();
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
        let e = Aws::new(Some(&imds.url()))
            .identity("test")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not an IMDSv2 token"), "{e}");
    }

    #[tokio::test]
    async fn a_token_that_never_comes_is_the_hop_limit() {
        let imds = ImdsServer::start(AwsInstance::default());
        imds.set_fault(ImdsFault::HopLimit);
        let e = Aws::new(Some(&imds.url()))
            .identity("test")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("hop limit") && e.contains("--http-put-response-hop-limit 2"),
            "{e}"
        );
    }
}
