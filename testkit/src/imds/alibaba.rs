//! The Alibaba Cloud ECS metadata service (`100.100.100.200/latest/meta-data/`),
//! in security hardening mode.
//!
//! Follows Alibaba's "Instance metadata" (ECS User Guide) and cloud-init's
//! `DataSourceAliYun.py`: `PUT /latest/api/token` with
//! `X-aliyun-ecs-metadata-token-ttl-seconds` between 1 and 21600 issues a token
//! (else 400; `X-Forwarded-For` refused with 403); every read then carries
//! `X-aliyun-ecs-metadata-token`. Hardened mode answers a read without a token
//! with 403 (normal mode, [`ImdsServer::allow_imdsv1`], answers it); a wrong
//! or expired token is a 401. Values are `text/plain`, directories list their
//! keys one per line with sub-directories slashed. Without a public address
//! `public-ipv4` and `eipv4` are 404. A spot instance's reclaim notice is
//! `instance/spot/termination-time`.

use super::*;

const TOKEN_PATH: &str = "/latest/api/token";
const TOKEN_HEADER: &str = "x-aliyun-ecs-metadata-token";
const TTL_HEADER: &str = "x-aliyun-ecs-metadata-token-ttl-seconds";
const MAX_TTL_SECONDS: u64 = 21_600;
const MAC: &str = "00:16:3e:0f:2a:4b";

pub(super) struct Alibaba {
    pub(super) instance: Instance,
    /// Normal mode allowed beside the hardened one.
    pub(super) allow_normal: bool,
    /// `instance/spot/termination-time`, when the spot instance is being reclaimed.
    pub(super) termination_time: Option<String>,
    tokens: HashMap<String, Instant>,
}

impl Alibaba {
    pub(super) fn new(instance: Instance) -> Alibaba {
        Alibaba {
            instance,
            allow_normal: false,
            termination_time: None,
            tokens: HashMap::new(),
        }
    }

    pub(super) fn answer(&mut self, request: &Request) -> Reply {
        if request.path == TOKEN_PATH {
            return self.token(request);
        }
        if !request.is_read() {
            return Reply::Answer(error(StatusCode::METHOD_NOT_ALLOWED));
        }
        match request.header(TOKEN_HEADER) {
            Some(token) => {
                let valid = self
                    .tokens
                    .get(token)
                    .is_some_and(|expiry| *expiry > Instant::now());
                if !valid {
                    return Reply::Answer(error(StatusCode::UNAUTHORIZED));
                }
            }
            None if self.allow_normal => {}
            None => return Reply::Answer(error(StatusCode::FORBIDDEN)),
        }
        let tree = Node::dir([("latest", Some(self.tree()))]);
        Reply::Answer(match tree.lookup(&request.path) {
            Some((Node::Value(_), _)) if request.path.ends_with('/') => {
                error(StatusCode::NOT_FOUND)
            }
            Some((Node::Value(value), _)) => text(value.clone()),
            Some((Node::Dir(entries), _)) => text(Node::listing(entries)),
            None => error(StatusCode::NOT_FOUND),
        })
    }

    fn token(&mut self, request: &Request) -> Reply {
        if request.method != Method::PUT {
            return Reply::Answer(error(StatusCode::METHOD_NOT_ALLOWED));
        }
        if request.hop_limited {
            return Reply::Dropped;
        }
        if request.headers.contains_key("x-forwarded-for") {
            return Reply::Answer(error(StatusCode::FORBIDDEN));
        }
        let ttl = request
            .header(TTL_HEADER)
            .and_then(|value| value.parse::<u64>().ok())
            .filter(|ttl| (1..=MAX_TTL_SECONDS).contains(ttl));
        let Some(ttl) = ttl else {
            return Reply::Answer(error(StatusCode::BAD_REQUEST));
        };
        let now = Instant::now();
        self.tokens.retain(|_, expiry| *expiry > now);
        let token = new_token(56);
        self.tokens
            .insert(token.clone(), now + Duration::from_secs(ttl));
        let mut response = text(token);
        response
            .headers_mut()
            .insert(TTL_HEADER, HeaderValue::from(ttl));
        Reply::Answer(response)
    }

    /// `latest/`, built from the current state.
    fn tree(&self) -> Node {
        let instance = &self.instance;
        let suffix = instance
            .instance_id
            .strip_prefix("i-")
            .unwrap_or(&instance.instance_id);
        let network = instance
            .private_ipv4
            .rsplit_once('.')
            .map_or(instance.private_ipv4.as_str(), |(network, _)| network);
        let vpc_id = format!("vpc-{suffix}");
        let vswitch_id = format!("vsw-{suffix}");
        let spot = self
            .termination_time
            .as_ref()
            .map(|time| Node::dir([("termination-time", Node::value(time))]));
        let interface = Node::dir([
            ("gateway", Node::value(format!("{network}.253"))),
            (
                "ipv6s",
                instance
                    .ipv6
                    .as_ref()
                    .map(|ip| Node::Value(format!("[{ip}]"))),
            ),
            ("netmask", Node::value("255.255.255.0")),
            ("network-interface-id", Node::value(format!("eni-{suffix}"))),
            ("primary-ip-address", Node::value(&instance.private_ipv4)),
            (
                "private-ipv4s",
                Node::value(format!("[\"{}\"]", instance.private_ipv4)),
            ),
            ("vpc-cidr-block", Node::value("10.0.0.0/8")),
            ("vpc-id", Node::value(&vpc_id)),
            ("vswitch-cidr-block", Node::value(format!("{network}.0/24"))),
            ("vswitch-id", Node::value(&vswitch_id)),
        ]);
        let meta_data = Node::dir([
            (
                "dns-conf",
                Some(Node::dir([(
                    "nameservers",
                    Node::value("100.100.2.136\n100.100.2.138"),
                )])),
            ),
            ("eipv4", instance.public_ipv4.clone().map(Node::Value)),
            ("hostname", Node::value(&instance.hostname)),
            (
                "image-id",
                Node::value("aliyun_3_x64_20G_alibase_20240819.vhd"),
            ),
            (
                "instance",
                Some(Node::dir([
                    (
                        "instance-name",
                        Node::value(format!("launch-advisor-{suffix}")),
                    ),
                    ("instance-type", Node::value("ecs.g7.large")),
                    ("max-netbw-egress", Node::value("1228800")),
                    ("spot", spot),
                ])),
            ),
            ("instance-id", Node::value(&instance.instance_id)),
            ("mac", Node::value(MAC)),
            (
                "network",
                Some(Node::dir([(
                    "interfaces",
                    Some(Node::dir([(
                        "macs",
                        Some(Node::dir([(MAC, Some(interface))])),
                    )])),
                )])),
            ),
            ("network-type", Node::value("vpc")),
            (
                "ntp-conf",
                Some(Node::dir([(
                    "ntp-servers",
                    Node::value("ntp.cloud.aliyuncs.com"),
                )])),
            ),
            ("owner-account-id", Node::value("1609123456789012")),
            ("private-ipv4", Node::value(&instance.private_ipv4)),
            ("public-ipv4", instance.public_ipv4.clone().map(Node::Value)),
            ("region-id", Node::value(&instance.region)),
            (
                "serial-number",
                Node::value("4acd2b47-b328-4762-852f-998c0e7f1e3b"),
            ),
            (
                "source-address",
                Node::value("http://mirrors.cloud.aliyuncs.com"),
            ),
            ("vpc-cidr-block", Node::value("10.0.0.0/8")),
            ("vpc-id", Node::value(vpc_id)),
            ("vswitch-cidr-block", Node::value(format!("{network}.0/24"))),
            ("vswitch-id", Node::value(vswitch_id)),
            ("zone-id", Node::value(&instance.zone)),
        ]);
        Node::dir([("meta-data", Some(meta_data))])
    }
}

fn text(body: String) -> Response {
    reply(
        StatusCode::OK,
        &[("content-type", "text/plain"), ("server", "Tengine")],
        body,
    )
}

/// The service's error answer: the web server's small HTML page.
pub(super) fn error(status: StatusCode) -> Response {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let body = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>Tengine</center>\r\n</body>\r\n</html>\r\n"
    );
    reply(
        status,
        &[("content-type", "text/html"), ("server", "Tengine")],
        body,
    )
}
