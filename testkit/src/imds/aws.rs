//! The AWS EC2 instance metadata service (IMDSv2).

use super::*;

const TOKEN_PATH: &str = "/latest/api/token";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
/// Six hours: the longest session IMDSv2 grants.
const MAX_TTL_SECONDS: u64 = 21_600;

pub(super) struct Aws {
    pub(super) instance: AwsInstance,
    pub(super) spot: Option<SpotNotice>,
    pub(super) lifecycle_state: String,
    pub(super) allow_v1: bool,
    /// Session token -> end of its validity.
    tokens: HashMap<String, Instant>,
    launched: String,
}

pub(super) struct SpotNotice {
    pub(super) action: String,
    pub(super) time: String,
}

impl Aws {
    pub(super) fn new(instance: AwsInstance) -> Aws {
        Aws {
            instance,
            spot: None,
            lifecycle_state: "InService".to_owned(),
            allow_v1: false,
            tokens: HashMap::new(),
            launched: rfc3339(SystemTime::now()),
        }
    }

    pub(super) fn answer(&mut self, request: &Request) -> Reply {
        let method = &request.method;
        if request.path == TOKEN_PATH {
            return self.token(request);
        }
        if *method == Method::PUT && request.path.ends_with("/api/token") {
            // "Issuing PUT requests to any version-specific path ... will
            // result in the metadata service returning 403 Forbidden".
            return Reply::Answer(error_page(StatusCode::FORBIDDEN));
        }
        if *method != Method::GET && *method != Method::HEAD {
            return Reply::Answer(error_page(StatusCode::METHOD_NOT_ALLOWED));
        }
        if !self.authorized(&request.headers) {
            return Reply::Answer(error_page(StatusCode::UNAUTHORIZED));
        }
        Reply::Answer(self.tree().resolve(&request.path))
    }

    /// `PUT /latest/api/token`: a session token valid for the requested TTL.
    fn token(&mut self, request: &Request) -> Reply {
        if request.method != Method::PUT {
            return Reply::Answer(error_page(StatusCode::METHOD_NOT_ALLOWED));
        }
        if request.hop_limited {
            return Reply::Dropped;
        }
        if request.headers.contains_key("x-forwarded-for") {
            // IMDSv2 refuses token requests that went through a proxy.
            return Reply::Answer(error_page(StatusCode::FORBIDDEN));
        }
        let ttl = request
            .headers
            .get(TTL_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok())
            .filter(|ttl| (1..=MAX_TTL_SECONDS).contains(ttl));
        let Some(ttl) = ttl else {
            return Reply::Answer(error_page(StatusCode::BAD_REQUEST));
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

    /// A present token must be valid, even when IMDSv1 is allowed; an absent
    /// one is fine only when IMDSv1 is allowed.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        match headers.get(TOKEN_HEADER) {
            Some(token) => {
                let token = token.to_str().unwrap_or_default();
                self.tokens
                    .get(token)
                    .is_some_and(|expiry| *expiry > Instant::now())
            }
            None => self.allow_v1,
        }
    }

    /// Everything served, built from the current state.
    fn tree(&self) -> Node {
        let instance = &self.instance;
        let public_hostname = instance
            .public_ipv4
            .as_deref()
            .map(|ip| public_hostname(ip, &instance.region));
        let interface = Node::dir([
            ("device-number", Node::value("0")),
            (
                "interface-id",
                Node::value(format!("eni-{}", hex_suffix(&instance.instance_id))),
            ),
            ("ipv6s", instance.ipv6.clone().map(Node::Value)),
            ("local-hostname", Node::value(&instance.hostname)),
            ("local-ipv4s", Node::value(&instance.local_ipv4)),
            ("mac", Node::value(&instance.mac)),
            ("owner-id", Node::value(ACCOUNT_ID)),
            ("public-hostname", public_hostname.clone().map(Node::Value)),
            (
                "public-ipv4s",
                instance.public_ipv4.clone().map(Node::Value),
            ),
            (
                "subnet-id",
                Node::value(format!("subnet-{}", hex_suffix(&instance.instance_id))),
            ),
            (
                "vpc-id",
                Node::value(format!("vpc-{}", hex_suffix(&instance.instance_id))),
            ),
        ]);
        let macs = Node::Dir(vec![(instance.mac.clone(), interface)]);
        let spot = self.spot.as_ref().map(|notice| {
            let instance_action = format!(
                "{{\"action\": {}, \"time\": \"{}\"}}",
                serde_json::Value::from(notice.action.as_str()),
                notice.time
            );
            let termination_time =
                (notice.action == "terminate").then(|| Node::Value(notice.time.clone()));
            Node::dir([
                ("instance-action", Some(Node::Value(instance_action))),
                ("termination-time", termination_time),
            ])
        });
        let meta_data = Node::dir([
            ("ami-id", Node::value(IMAGE_ID)),
            ("ami-launch-index", Node::value("0")),
            (
                "autoscaling",
                Some(Node::dir([(
                    "target-lifecycle-state",
                    Node::value(&self.lifecycle_state),
                )])),
            ),
            ("hostname", Node::value(&instance.hostname)),
            ("instance-id", Node::value(&instance.instance_id)),
            ("instance-type", Node::value(INSTANCE_TYPE)),
            ("local-hostname", Node::value(&instance.hostname)),
            ("local-ipv4", Node::value(&instance.local_ipv4)),
            ("mac", Node::value(&instance.mac)),
            (
                "network",
                Some(Node::dir([(
                    "interfaces",
                    Some(Node::dir([("macs", Some(macs))])),
                )])),
            ),
            (
                "placement",
                Some(Node::dir([
                    (
                        "availability-zone",
                        Node::value(&instance.availability_zone),
                    ),
                    ("region", Node::value(&instance.region)),
                ])),
            ),
            ("public-hostname", public_hostname.map(Node::Value)),
            ("public-ipv4", instance.public_ipv4.clone().map(Node::Value)),
            (
                "services",
                Some(Node::dir([
                    ("domain", Node::value("amazonaws.com")),
                    ("partition", Node::value("aws")),
                ])),
            ),
            ("spot", spot),
        ]);
        let dynamic = Node::dir([(
            "instance-identity",
            Some(Node::dir([(
                "document",
                Node::value(self.identity_document()),
            )])),
        )]);
        let latest = Node::dir([("dynamic", Some(dynamic)), ("meta-data", Some(meta_data))]);
        Node::dir([("latest", Some(latest))])
    }

    /// `dynamic/instance-identity/document`, pretty-printed as EC2 does.
    fn identity_document(&self) -> String {
        let instance = &self.instance;
        let document = serde_json::json!({
            "accountId": ACCOUNT_ID,
            "architecture": "x86_64",
            "availabilityZone": instance.availability_zone,
            "billingProducts": null,
            "devpayProductCodes": null,
            "marketplaceProductCodes": null,
            "imageId": IMAGE_ID,
            "instanceId": instance.instance_id,
            "instanceType": INSTANCE_TYPE,
            "kernelId": null,
            "pendingTime": self.launched,
            "privateIp": instance.local_ipv4,
            "ramdiskId": null,
            "region": instance.region,
            "version": "2017-09-30",
        });
        serde_json::to_string_pretty(&document).expect("a JSON value serializes")
    }
}

const ACCOUNT_ID: &str = "123456789012";
const IMAGE_ID: &str = "ami-0abcdef1234567890";
const INSTANCE_TYPE: &str = "t3.micro";

/// EC2's public DNS name for an address: `ec2-203-0-113-7.compute-1.amazonaws.com`
/// in us-east-1, `ec2-...<region>.compute.amazonaws.com` elsewhere.
fn public_hostname(ip: &str, region: &str) -> String {
    let dashed = ip.replace('.', "-");
    if region == "us-east-1" {
        format!("ec2-{dashed}.compute-1.amazonaws.com")
    } else {
        format!("ec2-{dashed}.{region}.compute.amazonaws.com")
    }
}

/// The instance id's hex part, reused to make related ids look consistent.
fn hex_suffix(instance_id: &str) -> &str {
    instance_id.strip_prefix("i-").unwrap_or(instance_id)
}
