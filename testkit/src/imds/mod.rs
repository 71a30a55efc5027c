//! A strict stand-in for a cloud's instance metadata service: AWS, GCP, Azure,
//! DigitalOcean, Hetzner Cloud, OpenStack, Oracle Cloud (OCI) and Alibaba Cloud.
//!
//! dnsreg learns who its machine is from the instance metadata service. This
//! server plays that service on loopback so that tests, and users trying a
//! configuration, can run dnsreg away from a cloud. It is strict where the real
//! service is strict: the headers each cloud requires (IMDSv2 and Alibaba
//! session tokens, GCP's `Metadata-Flavor`, Azure's `Metadata` and
//! `api-version`, OCI's `Authorization: Bearer Oracle`), forwarded requests
//! refused where the cloud refuses them, and an absent item answered as that
//! cloud answers it (a 404 with its own body, or Azure's empty string), never an
//! invented value. It also misbehaves on demand ([`ImdsFault`]), so that each
//! failure dnsreg must survive (a dead, slow, hijacked or
//! unreachable-from-a-container service) can be produced at will.
//!
//! The front of the server (request log, faults) is shared by every cloud; each
//! cloud is one file below that answers a request from its own state: `aws`,
//! `gcp`, `azure`, `digitalocean`, `hetzner`, `openstack`, `oracle`, `alibaba`.
//! AWS keeps its own richer instance type ([`AwsInstance`]); the others share
//! the cloud-neutral [`Instance`], which AWS also accepts (mapped both ways).
//! Each file's opening comment names the documentation it follows.

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

mod alibaba;
mod aws;
mod azure;
mod digitalocean;
mod gcp;
mod hetzner;
mod openstack;
mod oracle;

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

/// The clouds whose metadata service this server can play.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloudKind {
    Aws,
    Gcp,
    Azure,
    DigitalOcean,
    Hetzner,
    OpenStack,
    Oracle,
    Alibaba,
}

impl CloudKind {
    /// Every cloud, in a fixed order.
    pub const ALL: [CloudKind; 8] = [
        CloudKind::Aws,
        CloudKind::Gcp,
        CloudKind::Azure,
        CloudKind::DigitalOcean,
        CloudKind::Hetzner,
        CloudKind::OpenStack,
        CloudKind::Oracle,
        CloudKind::Alibaba,
    ];

    /// The lowercase name dnsreg's `metadata = "..."` uses.
    pub fn name(self) -> &'static str {
        match self {
            CloudKind::Aws => "aws",
            CloudKind::Gcp => "gcp",
            CloudKind::Azure => "azure",
            CloudKind::DigitalOcean => "digitalocean",
            CloudKind::Hetzner => "hetzner",
            CloudKind::OpenStack => "openstack",
            CloudKind::Oracle => "oracle",
            CloudKind::Alibaba => "alibaba",
        }
    }

    /// The inverse of [`CloudKind::name`].
    pub fn from_name(name: &str) -> Option<CloudKind> {
        CloudKind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// A cloud-neutral instance for the non-AWS clouds (and AWS, mapped onto
/// [`AwsInstance`]). Each value is written as that cloud writes it; each cloud's
/// file says where each field is served (and which ones the cloud does not
/// serve at all, such as OCI's public address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// GCP numeric, Azure vmId UUID, DigitalOcean numeric, Hetzner numeric,
    /// OpenStack UUID, OCI ocid, Alibaba `i-…`, AWS `i-…`.
    pub instance_id: String,
    /// As the cloud serves it (GCP a FQDN, the others a short name).
    pub hostname: String,
    /// us-central1, westeurope, nyc3, eu-central (Hetzner's network zone),
    /// RegionOne, eu-frankfurt-1, cn-hangzhou.
    pub region: String,
    /// Zone, availability domain or availability zone as the cloud names it
    /// (Azure: `"1"`..`"3"` or empty; DigitalOcean has none and repeats the region).
    pub zone: String,
    /// The primary interface's private address (Hetzner: empty means no
    /// private network attached).
    pub private_ipv4: String,
    /// `None`: no public address (Azure also serves an empty string for a
    /// Standard-SKU public IP, which this `None` models too).
    pub public_ipv4: Option<String>,
    pub ipv6: Option<String>,
}

impl Instance {
    /// Realistic values for `kind`: public 203.0.113.x, private 10.x.
    pub fn example(kind: CloudKind) -> Instance {
        let (instance_id, hostname, region, zone, private, public, ipv6) = match kind {
            CloudKind::Aws => {
                return aws_to_instance(&AwsInstance::default());
            }
            CloudKind::Gcp => (
                "4519316482377391234",
                "web-1.c.dnsreg-demo.internal",
                "us-central1",
                "us-central1-a",
                "10.128.0.2",
                "203.0.113.10",
                None,
            ),
            CloudKind::Azure => (
                "02aab8a4-74ef-476e-8182-f6d2ba4166a6",
                "web-1",
                "westeurope",
                "1",
                "10.1.0.4",
                "203.0.113.11",
                None,
            ),
            CloudKind::DigitalOcean => (
                "2756294",
                "web-1",
                "nyc3",
                "nyc3",
                "10.108.0.2",
                "203.0.113.12",
                None,
            ),
            CloudKind::Hetzner => (
                "42517383",
                "web-1",
                "eu-central",
                "fsn1-dc14",
                "10.0.0.2",
                "203.0.113.13",
                None,
            ),
            CloudKind::OpenStack => (
                "d8e02d56-2648-49a3-bf97-6be8f1204f38",
                "web-1",
                "RegionOne",
                "nova",
                "10.0.0.11",
                "203.0.113.14",
                None,
            ),
            CloudKind::Oracle => (
                "ocid1.instance.oc1.eu-frankfurt-1.antheljtqgzqicqcdmxsmb3bqxcs5ni4oexvwfx3t6o7swbezqfkfhsjmoqa",
                "web-1",
                "eu-frankfurt-1",
                "Uocm:EU-FRANKFURT-1-AD-1",
                "10.0.0.12",
                "203.0.113.15",
                None,
            ),
            CloudKind::Alibaba => (
                "i-bp1hygp5b04o5k7xwe9v",
                "iZbp1hygp5b04o5k7xwe9vZ",
                "cn-hangzhou",
                "cn-hangzhou-i",
                "10.0.0.13",
                "203.0.113.16",
                None,
            ),
        };
        Instance {
            instance_id: instance_id.to_owned(),
            hostname: hostname.to_owned(),
            region: region.to_owned(),
            zone: zone.to_owned(),
            private_ipv4: private.to_owned(),
            public_ipv4: Some(public.to_owned()),
            ipv6,
        }
    }
}

fn aws_to_instance(aws: &AwsInstance) -> Instance {
    Instance {
        instance_id: aws.instance_id.clone(),
        hostname: aws.hostname.clone(),
        region: aws.region.clone(),
        zone: aws.availability_zone.clone(),
        private_ipv4: aws.local_ipv4.clone(),
        public_ipv4: aws.public_ipv4.clone(),
        ipv6: aws.ipv6.clone(),
    }
}

/// Copies the neutral fields onto `aws`, keeping what only AWS has (the MAC).
fn instance_onto_aws(instance: Instance, aws: &mut AwsInstance) {
    aws.instance_id = instance.instance_id;
    aws.hostname = instance.hostname;
    aws.region = instance.region;
    aws.availability_zone = instance.zone;
    aws.local_ipv4 = instance.private_ipv4;
    aws.public_ipv4 = instance.public_ipv4;
    aws.ipv6 = instance.ipv6;
}

/// How the metadata service misbehaves. Every request is logged first, whatever
/// the fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImdsFault {
    /// Behave.
    None,
    /// Answer every request with this status and the service's own error body
    /// (503 is what an overloaded or throttled service returns).
    Status(u16),
    /// Wait this long before each answer (then answer normally), to exercise
    /// client timeouts.
    Slow(Duration),
    /// Answer every request, the token `PUT` included, with 200 and an HTML page,
    /// as a captive portal or a misrouted proxy on the metadata address would.
    /// A client must validate what it reads, not trust a 200.
    Garbage,
    /// The session-token `PUT` never gets an answer, as inside a container when
    /// the instance's PUT response hop limit is 1 and the reply is dropped one
    /// hop short. Requests without a token still get their usual 401 (or data,
    /// if IMDSv1 is allowed); tokens issued earlier stay valid. That is AWS and
    /// Alibaba (the clouds with a token `PUT`); on every other cloud no request
    /// gets an answer at all (a metadata service out of reach, held open
    /// forever).
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
    /// `"METHOD /path"` (`?query` appended when there is one), in arrival order.
    requests: Vec<String>,
    cloud: Cloud,
}

/// The cloud this server plays, with that cloud's state.
enum Cloud {
    Aws(aws::Aws),
    Gcp(gcp::Gcp),
    Azure(azure::Azure),
    DigitalOcean(digitalocean::DigitalOcean),
    Hetzner(hetzner::Hetzner),
    OpenStack(openstack::OpenStack),
    Oracle(oracle::Oracle),
    Alibaba(alibaba::Alibaba),
}

impl Cloud {
    fn new(kind: CloudKind, instance: Instance) -> Cloud {
        match kind {
            CloudKind::Aws => {
                let mut aws = AwsInstance::default();
                instance_onto_aws(instance, &mut aws);
                Cloud::Aws(aws::Aws::new(aws))
            }
            CloudKind::Gcp => Cloud::Gcp(gcp::Gcp::new(instance)),
            CloudKind::Azure => Cloud::Azure(azure::Azure::new(instance)),
            CloudKind::DigitalOcean => {
                Cloud::DigitalOcean(digitalocean::DigitalOcean::new(instance))
            }
            CloudKind::Hetzner => Cloud::Hetzner(hetzner::Hetzner::new(instance)),
            CloudKind::OpenStack => Cloud::OpenStack(openstack::OpenStack::new(instance)),
            CloudKind::Oracle => Cloud::Oracle(oracle::Oracle::new(instance)),
            CloudKind::Alibaba => Cloud::Alibaba(alibaba::Alibaba::new(instance)),
        }
    }

    fn kind(&self) -> CloudKind {
        match self {
            Cloud::Aws(_) => CloudKind::Aws,
            Cloud::Gcp(_) => CloudKind::Gcp,
            Cloud::Azure(_) => CloudKind::Azure,
            Cloud::DigitalOcean(_) => CloudKind::DigitalOcean,
            Cloud::Hetzner(_) => CloudKind::Hetzner,
            Cloud::OpenStack(_) => CloudKind::OpenStack,
            Cloud::Oracle(_) => CloudKind::Oracle,
            Cloud::Alibaba(_) => CloudKind::Alibaba,
        }
    }

    /// The neutral instance of every cloud but AWS (which keeps [`AwsInstance`]).
    fn neutral(&mut self) -> Option<&mut Instance> {
        match self {
            Cloud::Aws(_) => None,
            Cloud::Gcp(cloud) => Some(&mut cloud.instance),
            Cloud::Azure(cloud) => Some(&mut cloud.instance),
            Cloud::DigitalOcean(cloud) => Some(&mut cloud.instance),
            Cloud::Hetzner(cloud) => Some(&mut cloud.instance),
            Cloud::OpenStack(cloud) => Some(&mut cloud.instance),
            Cloud::Oracle(cloud) => Some(&mut cloud.instance),
            Cloud::Alibaba(cloud) => Some(&mut cloud.instance),
        }
    }

    fn answer(&mut self, request: &Request) -> Reply {
        match self {
            Cloud::Aws(cloud) => cloud.answer(request),
            Cloud::Gcp(cloud) => Reply::Answer(cloud.answer(request)),
            Cloud::Azure(cloud) => Reply::Answer(cloud.answer(request)),
            Cloud::DigitalOcean(cloud) => Reply::Answer(cloud.answer(request)),
            Cloud::Hetzner(cloud) => Reply::Answer(cloud.answer(request)),
            Cloud::OpenStack(cloud) => Reply::Answer(cloud.answer(request)),
            Cloud::Oracle(cloud) => Reply::Answer(cloud.answer(request)),
            Cloud::Alibaba(cloud) => cloud.answer(request),
        }
    }

    /// The cloud's own answer for an error status (the [`ImdsFault::Status`] fault).
    fn error(kind: CloudKind, status: StatusCode) -> Response {
        match kind {
            CloudKind::Aws => error_page(status),
            CloudKind::Gcp => gcp::error(status),
            CloudKind::Azure => azure::error(status, status.canonical_reason().unwrap_or("Error")),
            CloudKind::DigitalOcean => digitalocean::error(status),
            CloudKind::Hetzner => hetzner::error(status),
            CloudKind::OpenStack => openstack::error(status),
            CloudKind::Oracle => oracle::error(status),
            CloudKind::Alibaba => alibaba::error(status),
        }
    }

    /// Whether [`ImdsFault::HopLimit`] swallows only the token `PUT` (the cloud
    /// answers it) or every request.
    fn has_token_put(kind: CloudKind) -> bool {
        matches!(kind, CloudKind::Aws | CloudKind::Alibaba)
    }
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

    /// Starts `kind`'s metadata service on a free loopback port; panics if it
    /// cannot bind. `CloudKind::Aws` is [`ImdsServer::start`] with `instance`
    /// mapped onto [`AwsInstance::default`] (which keeps its MAC).
    pub fn start_cloud(kind: CloudKind, instance: Instance) -> ImdsServer {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        ImdsServer::start_cloud_on(loopback, kind, instance)
            .expect("the metadata stand-in binds a loopback port")
    }

    /// Starts `kind`'s metadata service on `addr` (port 0 picks a free port).
    pub fn start_cloud_on(
        addr: SocketAddr,
        kind: CloudKind,
        instance: Instance,
    ) -> std::io::Result<ImdsServer> {
        ImdsServer::spawn(addr, Cloud::new(kind, instance))
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

    /// `http://127.0.0.1:PORT`, the value for dnsreg's `metadata_endpoint` (or,
    /// on AWS, `AWS_EC2_METADATA_SERVICE_ENDPOINT`).
    pub fn url(&self) -> String {
        self.running.url()
    }

    /// The cloud this server plays.
    pub fn kind(&self) -> CloudKind {
        lock(&self.shared).cloud.kind()
    }

    /// The instance as currently served, in the cloud-neutral form (on AWS,
    /// mapped from [`AwsInstance`]).
    pub fn cloud_instance(&self) -> Instance {
        let mut state = lock(&self.shared);
        match &mut state.cloud {
            Cloud::Aws(aws) => aws_to_instance(&aws.instance),
            cloud => cloud.neutral().expect("not AWS").clone(),
        }
    }

    /// Changes the instance on any cloud; the next request sees the change.
    /// Tokens stay valid. On AWS the change is mapped onto [`AwsInstance`].
    pub fn update_instance(&self, f: impl FnOnce(&mut Instance)) {
        let mut state = lock(&self.shared);
        match &mut state.cloud {
            Cloud::Aws(aws) => {
                let mut instance = aws_to_instance(&aws.instance);
                f(&mut instance);
                instance_onto_aws(instance, &mut aws.instance);
            }
            cloud => f(cloud.neutral().expect("not AWS")),
        }
    }

    /// The cloud's own termination signal: on AWS a spot `terminate` notice
    /// two minutes ahead; on GCP `instance/preempted` = `TRUE`; on Azure one
    /// scheduled `Preempt` event; on Alibaba a spot
    /// `instance/spot/termination-time` two minutes ahead. DigitalOcean,
    /// Hetzner, OpenStack and OCI publish no termination signal in their
    /// metadata: there it does nothing. `false` withdraws the signal.
    pub fn set_termination_notice(&self, on: bool) {
        let kind = self.kind();
        match kind {
            CloudKind::Aws => self.set_spot_action(on.then_some("terminate")),
            CloudKind::Azure => self.set_azure_event(on.then_some("Preempt")),
            _ => {
                let soon = rfc3339(SystemTime::now() + Duration::from_secs(120));
                let mut state = lock(&self.shared);
                match &mut state.cloud {
                    Cloud::Gcp(gcp) => gcp.preempted = on,
                    Cloud::Alibaba(alibaba) => alibaba.termination_time = on.then_some(soon),
                    _ => {}
                }
            }
        }
    }

    /// Azure only (panics elsewhere): replace the scheduled events with one
    /// event of this type (`Preempt`, `Terminate`, `Reboot`, `Redeploy`,
    /// `Freeze`), `NotBefore` a few minutes ahead; `None`: no events. Each call
    /// increments `DocumentIncarnation`.
    pub fn set_azure_event(&self, event_type: Option<&str>) {
        let mut state = lock(&self.shared);
        let kind = state.cloud.kind();
        let Cloud::Azure(azure) = &mut state.cloud else {
            panic!("set_azure_event is an Azure knob, but this server plays {kind:?}");
        };
        azure.set_event(event_type);
    }

    /// The instance as currently served (AWS only; panics on another cloud).
    pub fn instance(&self) -> AwsInstance {
        self.with_aws(|aws| aws.instance.clone())
    }

    /// Changes the instance; the next request sees the change. Tokens stay valid.
    /// AWS only (panics on another cloud; see [`ImdsServer::update_instance`]).
    pub fn update(&self, f: impl FnOnce(&mut AwsInstance)) {
        self.with_aws(|aws| f(&mut aws.instance));
    }

    /// `Some("terminate")` (or `"stop"`, `"hibernate"`) posts a spot interruption
    /// notice two minutes ahead, served at `spot/instance-action` (and, for
    /// terminate, `spot/termination-time`); `None` withdraws it (404 again).
    /// AWS only.
    pub fn set_spot_action(&self, action: Option<&str>) {
        let notice = action.map(|action| aws::SpotNotice {
            action: action.to_owned(),
            time: rfc3339(SystemTime::now() + Duration::from_secs(120)),
        });
        self.with_aws(|aws| aws.spot = notice);
    }

    /// Sets `autoscaling/target-lifecycle-state` (default `InService`; Auto
    /// Scaling writes `Terminated` when it scales the instance in). AWS only.
    pub fn set_lifecycle_state(&self, state: &str) {
        self.with_aws(|aws| aws.lifecycle_state = state.to_owned());
    }

    /// Makes the service misbehave from the next request on.
    pub fn set_fault(&self, fault: ImdsFault) {
        lock(&self.shared).fault = fault;
    }

    /// `true`: requests without a token are answered (IMDSv1, `HttpTokens =
    /// optional`; on Alibaba, normal mode beside the hardened one). Default
    /// `false`: tokens required, as on current AMIs and Alibaba's hardened mode.
    /// AWS and Alibaba only.
    pub fn allow_imdsv1(&self, allow: bool) {
        let mut state = lock(&self.shared);
        match &mut state.cloud {
            Cloud::Aws(aws) => aws.allow_v1 = allow,
            Cloud::Alibaba(alibaba) => alibaba.allow_normal = allow,
            cloud => panic!(
                "allow_imdsv1 is an AWS and Alibaba knob, but this server plays {:?}",
                cloud.kind()
            ),
        }
    }

    /// Every request so far as `"METHOD /path"` (with `?query` when the request
    /// had one, as Azure's and GCP's do), in arrival order.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared).requests.clone()
    }

    fn with_aws<T>(&self, f: impl FnOnce(&mut aws::Aws) -> T) -> T {
        let mut state = lock(&self.shared);
        let kind = state.cloud.kind();
        let Cloud::Aws(aws) = &mut state.cloud else {
            panic!("this is an AWS knob, but this server plays {kind:?}");
        };
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
    /// The query parameters, decoded, in order.
    query: Vec<(String, String)>,
    headers: HeaderMap,
    /// The [`ImdsFault::HopLimit`] fault is on.
    hop_limited: bool,
}

impl Request {
    /// The first value of query parameter `name`.
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The header's value, if present and readable.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Whether the request says it went through a proxy, which several metadata
    /// services refuse (an SSRF through a proxy must not reach them).
    fn forwarded(&self) -> bool {
        ["forwarded", "x-forwarded-for", "x-forwarded-host"]
            .iter()
            .any(|name| self.headers.contains_key(*name))
    }

    fn is_read(&self) -> bool {
        self.method == Method::GET || self.method == Method::HEAD
    }
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
    let (fault, kind) = {
        let mut state = lock(&shared);
        let logged = match uri.query() {
            Some(query) => format!("{method} {path}?{query}"),
            None => format!("{method} {path}"),
        };
        state.requests.push(logged);
        (state.fault.clone(), state.cloud.kind())
    };
    match fault {
        ImdsFault::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Cloud::error(kind, status);
        }
        ImdsFault::Garbage => return garbage_page(),
        ImdsFault::Slow(delay) => tokio::time::sleep(delay).await,
        ImdsFault::HopLimit if !Cloud::has_token_put(kind) => {
            return std::future::pending().await;
        }
        ImdsFault::None | ImdsFault::HopLimit => {}
    }
    let request = Request {
        method,
        path,
        query: uri
            .query()
            .map(|q| crate::query::Query::parse(q).pairs)
            .unwrap_or_default(),
        headers,
        hop_limited: fault == ImdsFault::HopLimit,
    };
    let reply = lock(&shared).cloud.answer(&request);
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

    /// The node at `path` (segments below this node, empty ones ignored) and
    /// its depth, or `None`.
    fn lookup(&self, path: &str) -> Option<(&Node, usize)> {
        let mut node = self;
        let mut depth = 0;
        for segment in path.split('/').filter(|segment| !segment.is_empty()) {
            let Node::Dir(entries) = node else {
                return None;
            };
            let (_, child) = entries.iter().find(|(key, _)| key == segment)?;
            node = child;
            depth += 1;
        }
        Some((node, depth))
    }

    /// A directory's keys one per line, sub-directories marked with a slash:
    /// the listing format of the EC2-style services (GCP, OpenStack, Alibaba).
    fn listing(entries: &[(String, Node)]) -> String {
        let lines: Vec<String> = entries
            .iter()
            .map(|(key, child)| match child {
                Node::Dir(_) => format!("{key}/"),
                Node::Value(_) => key.clone(),
            })
            .collect();
        lines.join("\n")
    }

    /// Answers `path` the IMDS way: the value, or the listing of a directory
    /// (asked for with or without a trailing slash), or 404.
    fn resolve(&self, path: &str) -> Response {
        let trailing_slash = path.ends_with('/');
        let Some((node, depth)) = self.lookup(path) else {
            return error_page(StatusCode::NOT_FOUND);
        };
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

/// A response with these headers (content type first) and body.
fn reply(status: StatusCode, headers: &[(&'static str, &'static str)], body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    response
}

/// A fresh random session token of `len` letters and digits.
fn new_token(len: usize) -> String {
    use rand::RngExt;
    use rand::distr::Alphanumeric;
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
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
