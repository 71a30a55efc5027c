//! Alibaba Cloud ECS instance metadata.
//!
//! "Obtain instance metadata": plain text under
//! `http://100.100.100.200/latest/meta-data/` (`instance-id`, `region-id`,
//! `zone-id`, `hostname`, `private-ipv4`, `eipv4` / `public-ipv4`). In
//! security-hardened mode a token is required: `PUT /latest/api/token` with
//! `X-aliyun-ecs-metadata-token-ttl-seconds`, then every GET with
//! `X-aliyun-ecs-metadata-token`. A token is always asked for; in normal mode
//! the GETs work without one. Spot reclaim: `instance/spot/termination-time`
//! ("Preemptible instances": present only once the instance is to be released).

use std::time::Duration;

use reqwest::{Method, StatusCode};

use super::cloud::Cloud;
use super::http::{self, Call, Http, check_id, describe, parse_ip};
use super::{Identity, MetadataError, Notice};
use crate::config::MetadataKind;

const DEFAULT_ENDPOINT: &str = "http://100.100.100.200";
const TOKEN_PATH: &str = "/latest/api/token";
const TTL_HEADER: &str = "X-aliyun-ecs-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "X-aliyun-ecs-metadata-token";
const ROOT: &str = "/latest/meta-data";

/// One conversation with ECS metadata, holding its hardened-mode token.
struct Ecs {
    http: Http,
    token: Option<String>,
}

impl Ecs {
    fn new(base: Option<&str>) -> Ecs {
        Ecs {
            http: Http::new("alibaba", http::base(base, DEFAULT_ENDPOINT)),
            token: None,
        }
    }

    /// Asks for a hardened-mode token; `None` when the service does not hand
    /// them out (normal mode only), an error when it is unreachable.
    async fn fetch_token(&mut self) -> Result<(), MetadataError> {
        let headers = [(TTL_HEADER, "21600")];
        let reply = self
            .http
            .request(&Call {
                method: Method::PUT,
                timeout: Some(Duration::from_secs(1)),
                ..Call::get(TOKEN_PATH, &headers)
            })
            .await?;
        let token = reply.body.trim();
        if reply.status.is_success()
            && !token.is_empty()
            && token.len() <= 512
            && token.chars().all(|c| c.is_ascii_graphic())
        {
            self.token = Some(token.to_string());
        }
        Ok(())
    }

    /// The token header, once there is a token; none in normal mode.
    fn token_header(&self) -> Vec<(&str, &str)> {
        self.token
            .as_deref()
            .map(|t| (TOKEN_HEADER, t))
            .into_iter()
            .collect()
    }

    async fn get(&self, item: &str) -> Result<Option<String>, MetadataError> {
        let path = format!("{ROOT}/{item}");
        let headers = self.token_header();
        let reply = self.http.request(&Call::get(&path, &headers)).await?;
        match reply.status {
            s if s.is_success() => Ok(Some(reply.body.trim().to_string()).filter(|s| !s.is_empty())),
            StatusCode::NOT_FOUND => Ok(None),
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) if self.token.is_none() => {
                Err(self.http.err(
                    &path,
                    format!(
                        "{}; the instance is in security-hardened mode and no token was issued by PUT {TOKEN_PATH}",
                        describe(s, &reply.body)
                    ),
                ))
            }
            s => Err(self.http.err(&path, describe(s, &reply.body))),
        }
    }
}

/// Does ECS metadata answer with a region id? (AWS has no `region-id`.)
async fn probe(base: Option<&str>) -> bool {
    let probing = async {
        let mut a = Ecs::new(base);
        let headers = [(TTL_HEADER, "60")];
        if let Some(r) = a
            .http
            .probe(Call {
                method: Method::PUT,
                ..Call::get(TOKEN_PATH, &headers)
            })
            .await
            && r.status.is_success()
        {
            a.token = Some(r.body.trim().to_string());
        }
        let path = format!("{ROOT}/region-id");
        let headers = a.token_header();
        match a.http.probe(Call::get(&path, &headers)).await {
            Some(r) => r.status.is_success() && http::plausible_id(r.body.trim()),
            None => false,
        }
    };
    tokio::time::timeout(http::PROBE_TIMEOUT, probing)
        .await
        .unwrap_or(false)
}

async fn identity(base: Option<&str>, detected_by: &str) -> Result<Identity, MetadataError> {
    let mut a = Ecs::new(base);
    a.fetch_token().await?;
    let id_path = format!("{ROOT}/instance-id");
    let instance_id = a.get("instance-id").await?.ok_or_else(|| {
        a.http
            .err(&id_path, "HTTP 404: the instance has no such value")
    })?;
    check_id(&a.http, &id_path, &instance_id)?;
    let mut id = Identity::of(MetadataKind::Alibaba, detected_by, instance_id);
    id.region = a.get("region-id").await?;
    id.availability_zone = a.get("zone-id").await?;
    id.hostname = a.get("hostname").await?;
    let private = a.get("private-ipv4").await?;
    id.private_ipv4 = parse_ip(&a.http, &format!("{ROOT}/private-ipv4"), private.as_deref())?;
    // An elastic IP when one is bound, else the instance's own public address.
    let (item, public) = match a.get("eipv4").await? {
        Some(ip) => ("eipv4", Some(ip)),
        None => ("public-ipv4", a.get("public-ipv4").await?),
    };
    id.public_ipv4 = parse_ip(&a.http, &format!("{ROOT}/{item}"), public.as_deref())?;
    id.ipv6 = match a.get("mac").await? {
        Some(mac) => {
            let item = format!("network/interfaces/macs/{mac}/ipv6s");
            let first = a.get(&item).await?.map(|s| {
                s.trim_matches(|c| c == '[' || c == ']')
                    .split([',', '\n'])
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            });
            parse_ip(&a.http, &format!("{ROOT}/{item}"), first.as_deref())?
        }
        None => None,
    };
    Ok(id)
}

/// A preemptible instance about to be released.
async fn notice(base: Option<&str>) -> Result<Option<Notice>, MetadataError> {
    let mut a = Ecs::new(base);
    a.fetch_token().await?;
    Ok(a.get("instance/spot/termination-time")
        .await?
        .map(|at| Notice::Preempt {
            cloud: "alibaba",
            what: "spot termination-time".into(),
            at: Some(at),
        }))
}

/// Alibaba Cloud ECS, as the agent sees it.
pub struct Alibaba;

impl Cloud for Alibaba {
    fn kind(&self) -> MetadataKind {
        MetadataKind::Alibaba
    }

    super::cloud::read_by_module_fns!(notice);
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::metadata::testing::Stand;
    use testkit::imds::ImdsFault;

    #[tokio::test]
    async fn reads_the_identity_with_a_hardened_mode_token() {
        let s = Stand::example(&Alibaba);
        let id = s.identity_of_the_instance().await;
        assert_eq!(id.region.as_deref(), Some(s.want.region.as_str()));
        assert_eq!(id.availability_zone.as_deref(), Some(s.want.zone.as_str()));
        s.has_the_public_ipv4(&id);
        s.has_the_private_ipv4(&id);
        let requests = s.imds.requests();
        assert!(
            requests.iter().any(|r| r.starts_with("PUT")),
            "{requests:?}"
        );
        assert!(s.probe().await);
    }

    #[tokio::test]
    async fn a_web_server_answering_200_is_not_alibaba() {
        // Something else on the metadata address (a captive portal, a
        // misrouted proxy) that refuses the token PUT and answers every GET
        // with 200 and a page: the status alone would claim the cloud; the
        // answer must also look like what Alibaba puts there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut buf = [0u8; 4096];
                let n = std::io::Read::read(&mut conn, &mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let reply = if head.starts_with("PUT") {
                    "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                } else {
                    let page = "<html><body>Welcome to the guest network</body></html>";
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                        page.len()
                    )
                };
                log.lock().unwrap().push(head);
                let _ = std::io::Write::write_all(&mut conn, reply.as_bytes());
            }
        });
        assert!(!probe(Some(&url)).await);
        let seen = seen.lock().unwrap().clone();
        assert!(
            seen.iter()
                .any(|r| r.starts_with("GET /latest/meta-data/region-id")),
            "the page was fetched and read: {seen:?}"
        );
    }

    #[tokio::test]
    async fn a_spot_release_is_a_notice() {
        let s = Stand::example(&Alibaba);
        assert_eq!(notice(Some(&s.url())).await.unwrap(), None);
        s.imds.set_termination_notice(true);
        let n = notice(Some(&s.url())).await.unwrap().unwrap();
        assert_eq!(n.cloud(), "alibaba");
    }

    #[tokio::test]
    async fn failures_are_named() {
        let s = Stand::example(&Alibaba);
        s.fault_is_named(ImdsFault::Status(500), &format!("{TOKEN_PATH}: HTTP 500"))
            .await;
    }

    /// An IPv6-enabled ENI: `network/interfaces/macs/<mac>/ipv6s` answers
    /// `[address]`; one that is no address is refused, naming the URL and what
    /// came back.
    #[tokio::test]
    async fn an_ipv6_eni_gives_its_address_and_a_malformed_one_is_refused() {
        let good = "2408:4005:39c:d300:e4e4:bf3c:8dd6:18ba";
        let (s, id) = Stand::gives_the_ipv6(&Alibaba, good).await;
        assert_eq!(id.public_ipv4, Some(Ipv4Addr::new(203, 0, 113, 16)));
        let item = "/latest/meta-data/network/interfaces/macs/00:16:3e:0f:2a:4b/ipv6s";
        assert!(
            s.imds.requests().contains(&format!("GET {item}")),
            "{:?}",
            s.imds.requests()
        );
        let bad = "2408:4005:39c:d300:e4e4:bf3c:8dd6:18bax";
        s.refuses_the_ipv6(bad, item, bad).await;
    }
}
