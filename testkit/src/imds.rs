//! A strict stand-in for a cloud's instance metadata service (AWS IMDS for now).
//!
//! dnsreg learns who its machine is from the instance metadata service. This
//! server plays that service on loopback so that tests, and users trying a
//! configuration, can run dnsreg away from a cloud. It is strict where the real
//! service is strict: IMDSv2 session tokens are required unless a test allows
//! IMDSv1, the token `PUT` checks its TTL and refuses forwarded requests, and an
//! absent item is a 404 with the service's own HTML body, never an empty 200.
//! It also misbehaves on demand ([`ImdsFault`]), so that each failure dnsreg
//! must survive (a dead, slow, hijacked or unreachable-from-a-container
//! service) can be produced at will.
//!
//! The front of the server (request log, faults) is shared by every cloud; each
//! cloud is one section below (`mod aws`) that answers a request from its own
//! state. Another cloud (GCP, Azure, ...) is another section, another [`Cloud`]
//! variant and another `start_*` constructor.
//!
//! AWS behaviour follows the EC2 User Guide: "Use IMDSv2" (how IMDSv2 works:
//! TTL of 1 s to 6 h, `X-Forwarded-For` refused, PUT response hop limit of 1),
//! "Retrieve instance metadata" (text/plain values, listings one per line,
//! 400/401/403/404 meanings, 403 for a token PUT on a version-specific path) and
//! "Instance metadata categories".

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;

use crate::Running;

/// Who the simulated EC2 instance is. Change it at run time with
/// [`ImdsServer::update`] (an EC2 stop/start changes `public_ipv4`, for example).
#[derive(Clone, Debug)]
pub struct AwsInstance {
    pub instance_id: String,
    pub region: String,
    pub availability_zone: String,
    /// The private DNS name, served as `hostname` and `local-hostname`.
    pub hostname: String,
    pub local_ipv4: String,
    /// `None`: the instance has no public address (`public-ipv4` is a 404).
    pub public_ipv4: Option<String>,
    /// `None`: the interface has no IPv6 address (`.../ipv6s` is a 404).
    pub ipv6: Option<String>,
    /// The primary interface's MAC address, lowercase as EC2 writes it.
    pub mac: String,
}

impl Default for AwsInstance {
    fn default() -> Self {
        AwsInstance {
            instance_id: "i-0123456789abcdef0".to_owned(),
            region: "us-east-1".to_owned(),
            availability_zone: "us-east-1a".to_owned(),
            hostname: "ip-10-0-0-5.ec2.internal".to_owned(),
            local_ipv4: "10.0.0.5".to_owned(),
            public_ipv4: Some("203.0.113.7".to_owned()),
            ipv6: None,
            mac: "0e:49:61:0f:c3:11".to_owned(),
        }
    }
}

/// How the metadata service misbehaves. Every request is logged first, whatever
/// the fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImdsFault {
    /// Behave.
    None,
    /// Answer every request with this status and the service's HTML error body
    /// (503 is what an overloaded or throttled service returns).
    Status(u16),
    /// Wait this long before each answer (then answer normally), to exercise
    /// client timeouts.
    Slow(Duration),
    /// Answer every request, the token `PUT` included, with 200 and an HTML page,
    /// as a captive portal or a misrouted proxy on the metadata address would.
    /// A client must validate what it reads, not trust a 200.
    Garbage,
    /// The IMDSv2 token `PUT` never gets an answer, as inside a container when
    /// the instance's PUT response hop limit is 1 and the reply is dropped one
    /// hop short. Requests without a token still get their usual 401 (or data,
    /// if IMDSv1 is allowed); tokens issued earlier stay valid.
    HopLimit,
}

/// A running metadata stand-in; it stops when dropped.
pub struct ImdsServer {
    shared: Shared,
    running: Running,
}

type Shared = Arc<Mutex<ServerState>>;

struct ServerState {
    fault: ImdsFault,
    /// `"METHOD /path"`, in arrival order.
    requests: Vec<String>,
    cloud: Cloud,
}

/// The cloud this server plays, with that cloud's state.
enum Cloud {
    Aws(aws::Aws),
}

impl ImdsServer {
    /// Starts an AWS IMDS on a free loopback port; panics if it cannot bind.
    pub fn start(instance: AwsInstance) -> ImdsServer {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        ImdsServer::start_on(loopback, instance).expect("the IMDS stand-in binds a loopback port")
    }

    /// Starts an AWS IMDS on `addr` (port 0 picks a free port).
    pub fn start_on(addr: SocketAddr, instance: AwsInstance) -> std::io::Result<ImdsServer> {
        ImdsServer::spawn(addr, Cloud::Aws(aws::Aws::new(instance)))
    }

    fn spawn(addr: SocketAddr, cloud: Cloud) -> std::io::Result<ImdsServer> {
        let shared: Shared = Arc::new(Mutex::new(ServerState {
            fault: ImdsFault::None,
            requests: Vec::new(),
            cloud,
        }));
        let router = Router::new().fallback(serve).with_state(shared.clone());
        let running = Running::spawn(addr, router)?;
        Ok(ImdsServer { shared, running })
    }

    /// `http://127.0.0.1:PORT`, the value for `AWS_EC2_METADATA_SERVICE_ENDPOINT`
    /// or dnsreg's `metadata_endpoint`.
    pub fn url(&self) -> String {
        self.running.url()
    }

    /// The instance as currently served.
    pub fn instance(&self) -> AwsInstance {
        self.with_aws(|aws| aws.instance.clone())
    }

    /// Changes the instance; the next request sees the change. Tokens stay valid.
    pub fn update(&self, f: impl FnOnce(&mut AwsInstance)) {
        self.with_aws(|aws| f(&mut aws.instance));
    }

    /// `Some("terminate")` (or `"stop"`, `"hibernate"`) posts a spot interruption
    /// notice two minutes ahead, served at `spot/instance-action` (and, for
    /// terminate, `spot/termination-time`); `None` withdraws it (404 again).
    pub fn set_spot_action(&self, action: Option<&str>) {
        let notice = action.map(|action| aws::SpotNotice {
            action: action.to_owned(),
            time: rfc3339(SystemTime::now() + Duration::from_secs(120)),
        });
        self.with_aws(|aws| aws.spot = notice);
    }

    /// Sets `autoscaling/target-lifecycle-state` (default `InService`; Auto
    /// Scaling writes `Terminated` when it scales the instance in).
    pub fn set_lifecycle_state(&self, state: &str) {
        self.with_aws(|aws| aws.lifecycle_state = state.to_owned());
    }

    /// Makes the service misbehave from the next request on.
    pub fn set_fault(&self, fault: ImdsFault) {
        lock(&self.shared).fault = fault;
    }

    /// `true`: requests without a token are answered (IMDSv1, `HttpTokens =
    /// optional`). Default `false`: IMDSv2 required, as on current AMIs.
    pub fn allow_imdsv1(&self, allow: bool) {
        self.with_aws(|aws| aws.allow_v1 = allow);
    }

    /// Every request so far as `"METHOD /path"`, in arrival order.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared).requests.clone()
    }

    fn with_aws<T>(&self, f: impl FnOnce(&mut aws::Aws) -> T) -> T {
        let mut state = lock(&self.shared);
        let Cloud::Aws(aws) = &mut state.cloud;
        f(aws)
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, ServerState> {
    // A panicking test thread must not take the server down with it.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a cloud section sees of a request.
struct Request {
    method: Method,
    path: String,
    headers: HeaderMap,
    /// The [`ImdsFault::HopLimit`] fault is on.
    hop_limited: bool,
}

/// What a cloud section decides.
enum Reply {
    Answer(Response),
    /// The answer never reaches the client.
    Dropped,
}

/// The shared front: log, apply the fault, hand over to the cloud.
async fn serve(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_owned();
    let fault = {
        let mut state = lock(&shared);
        state.requests.push(format!("{method} {path}"));
        state.fault.clone()
    };
    match fault {
        ImdsFault::Status(code) => {
            return error_page(
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            );
        }
        ImdsFault::Garbage => return garbage_page(),
        ImdsFault::Slow(delay) => tokio::time::sleep(delay).await,
        ImdsFault::None | ImdsFault::HopLimit => {}
    }
    let request = Request {
        method,
        path,
        headers,
        hop_limited: fault == ImdsFault::HopLimit,
    };
    let reply = match &mut lock(&shared).cloud {
        Cloud::Aws(aws) => aws.answer(&request),
    };
    match reply {
        Reply::Answer(response) => response,
        // Hold the connection open until the client gives up or the server stops.
        Reply::Dropped => std::future::pending().await,
    }
}

/// A 200 `text/plain` answer, as IMDS serves every value and listing.
fn text(body: String) -> Response {
    response(StatusCode::OK, "text/plain", body)
}

/// IMDS's error body: a small XHTML page titled with the status, `text/html`.
fn error_page(status: StatusCode) -> Response {
    let title = format!(
        "{} - {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n\
         <!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n\
         \t\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n\
         <html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n \
         <head>\n  <title>{title}</title>\n </head>\n \
         <body>\n  <h1>{title}</h1>\n </body>\n</html>\n"
    );
    response(status, "text/html", body)
}

/// What a captive portal answers to anything: 200 and a login page.
fn garbage_page() -> Response {
    let body = "<!DOCTYPE html>\n<html><head><title>Network login</title></head>\n\
                <body><h1>Sign in to continue</h1>\n\
                <form method=\"post\" action=\"/login\"><input name=\"user\"><input type=\"password\" name=\"pass\"></form>\n\
                </body></html>\n";
    response(StatusCode::OK, "text/html; charset=utf-8", body.to_owned())
}

fn response(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::SERVER, HeaderValue::from_static("EC2ws"));
    response
}

/// A metadata tree: a value, or a directory whose listing is its keys.
enum Node {
    Value(String),
    Dir(Vec<(String, Node)>),
}

impl Node {
    fn dir<const N: usize>(entries: [(&str, Option<Node>); N]) -> Node {
        let entries = entries
            .into_iter()
            .filter_map(|(key, node)| Some((key.to_owned(), node?)));
        Node::Dir(entries.collect())
    }

    fn value(value: impl Into<String>) -> Option<Node> {
        Some(Node::Value(value.into()))
    }

    /// Answers `path` (segments below this node): the value, or the listing of a
    /// directory (asked for with or without a trailing slash), or 404.
    fn resolve(&self, path: &str) -> Response {
        let trailing_slash = path.ends_with('/');
        let mut node = self;
        let mut depth = 0;
        for segment in path.split('/').filter(|segment| !segment.is_empty()) {
            let Node::Dir(entries) = node else {
                return error_page(StatusCode::NOT_FOUND);
            };
            let Some((_, child)) = entries.iter().find(|(key, _)| key == segment) else {
                return error_page(StatusCode::NOT_FOUND);
            };
            node = child;
            depth += 1;
        }
        match node {
            Node::Value(_) if trailing_slash => error_page(StatusCode::NOT_FOUND),
            Node::Value(value) => text(value.clone()),
            Node::Dir(entries) => {
                // Listings mark directories with a slash, except the two top
                // levels (`/` lists versions, `/latest/` the data kinds).
                let lines: Vec<String> = entries
                    .iter()
                    .map(|(key, child)| match child {
                        Node::Dir(_) if depth >= 2 => format!("{key}/"),
                        _ => key.clone(),
                    })
                    .collect();
                text(lines.join("\n"))
            }
        }
    }
}

/// The AWS EC2 instance metadata service.
mod aws {
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
            let token = new_token();
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

    fn new_token() -> String {
        use rand::RngExt;
        use rand::distr::Alphanumeric;
        rand::rng()
            .sample_iter(Alphanumeric)
            .take(56)
            .map(char::from)
            .collect()
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the form IMDS uses for times.
fn rfc3339(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let of_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`, from "chrono-Compatible Low-Level Date Algorithms").
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_are_right_around_leap_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_704_067_199)),
            "2023-12-31T23:59:59Z"
        );
    }
}
