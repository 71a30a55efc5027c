//! The validated configuration: checked types, past which nothing re-checks
//! strings, and the errors that list what was wrong instead. A leaf: `config`
//! reads and checks a file (or flags) into these types, and `plan`, `metadata`
//! and the rest read them, so none of them depends on how they were read.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use crate::record::DomainName;

/// Where configuration comes from when `-c` is not given.
pub const DEFAULT_PATH: &str = "/etc/dnsreg/dnsreg.toml";
/// Where the state file lives when `[agent] state_dir` is not given.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/dnsreg";

// ---------------------------------------------------------------------------
// The validated configuration
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub instance: InstanceConfig,
    pub providers: Vec<ProviderConfig>,
    pub records: Vec<RecordSpec>,
    pub agent: AgentConfig,
    /// Health checks: records are published only while all pass.
    pub checks: Vec<CheckConfig>,
    /// Crash cleanup; `None`: off.
    pub lease: Option<LeaseConfig>,
}

/// One `[[check]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckConfig {
    /// `check[N]`, for messages.
    pub origin: String,
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive passes that make a failing check pass.
    pub rise: u32,
    /// Consecutive failures that make a passing check fail.
    pub fall: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// GET; a 2xx answer passes.
    Http(String),
    /// A TCP connection that opens passes.
    Tcp(ServerAddr),
    /// Exit status 0 passes. No shell: the program and its arguments.
    Exec(Vec<String>),
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Probe::Http(url) => write!(f, "http {url}"),
            Probe::Tcp(addr) => write!(f, "tcp {addr}"),
            Probe::Exec(argv) => write!(f, "exec {}", argv.join(" ")),
        }
    }
}

/// `[lease]`: the registry carries an expiry, refreshed every ttl/3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    pub ttl: Duration,
    /// Remove the records of instances whose lease expired, at each reconcile.
    pub reap: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InstanceConfig {
    pub metadata: MetadataKind,
    pub address: AddressKind,
    pub ipv6: bool,
    pub id: Option<String>,
    pub ipv4: Option<Ipv4Addr>,
    pub hostname: Option<String>,
    pub region: Option<String>,
    pub metadata_endpoint: Option<String>,
}

/// Where the instance's identity comes from (README.md, "Metadata").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataKind {
    /// Detect the cloud: DMI, cloud-init's instance data, then short probes.
    Auto,
    Aws,
    Gcp,
    Azure,
    DigitalOcean,
    Hetzner,
    OpenStack,
    Oracle,
    Alibaba,
    /// Joyent Triton / SmartOS, through `mdata-get`.
    Triton,
    /// Everything from `[instance]` overrides.
    None,
}

impl MetadataKind {
    /// Every kind, in the order the documentation lists them.
    pub const ALL: [MetadataKind; 11] = [
        MetadataKind::Auto,
        MetadataKind::Aws,
        MetadataKind::Gcp,
        MetadataKind::Azure,
        MetadataKind::DigitalOcean,
        MetadataKind::Hetzner,
        MetadataKind::OpenStack,
        MetadataKind::Oracle,
        MetadataKind::Alibaba,
        MetadataKind::Triton,
        MetadataKind::None,
    ];

    /// The name written in `[instance] metadata` and `--metadata`.
    pub fn name(self) -> &'static str {
        match self {
            MetadataKind::Auto => "auto",
            MetadataKind::Aws => "aws",
            MetadataKind::Gcp => "gcp",
            MetadataKind::Azure => "azure",
            MetadataKind::DigitalOcean => "digitalocean",
            MetadataKind::Hetzner => "hetzner",
            MetadataKind::OpenStack => "openstack",
            MetadataKind::Oracle => "oracle",
            MetadataKind::Alibaba => "alibaba",
            MetadataKind::Triton => "triton",
            MetadataKind::None => "none",
        }
    }

    pub fn from_name(name: &str) -> Option<MetadataKind> {
        MetadataKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The name, as [`MetadataKind::name`] gives it.
impl std::fmt::Display for MetadataKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressKind {
    Public,
    Private,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProviderConfig {
    /// The table name under `[providers]`, used in `providers = [...]` lists.
    pub name: String,
    pub kind: ProviderKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ProviderKind {
    Route53(Route53Config),
    Cloudflare(CloudflareConfig),
    Rfc2136(Rfc2136Config),
    Mdns(MdnsConfig),
}

/// `type = "mdns"`: multicast DNS on the local segment (RFC 6762/6763).
/// `dnsreg run` answers for the records itself; one-shot `join`/`leave`
/// write and remove an Avahi static service file instead.
#[derive(Clone, Debug, PartialEq)]
pub struct MdnsConfig {
    /// The domain every name published ends in (`local`).
    pub domain: DomainName,
    /// The interfaces to answer on, by name; empty: every interface.
    pub interfaces: Vec<String>,
    /// The Avahi static service file of one-shot `join`/`leave`.
    pub service_file: PathBuf,
}

/// `type = "rfc2136"`: a primary server that takes dynamic updates (BIND, Knot, …).
#[derive(Clone, Debug, PartialEq)]
pub struct Rfc2136Config {
    pub zone: DomainName,
    /// `host` or `host:port` (port 53 when absent); resolved when connecting.
    pub server: ServerAddr,
    /// The TSIG key file (`tsig-keygen` format), checked here and read again at
    /// connect; `None`: updates go unsigned (servers that allow by address).
    pub tsig_key_file: Option<PathBuf>,
}

/// A DNS server's address as written: an IP, `IP:port`, `[IPv6]:port`, or a host name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAddr {
    pub host: String,
    pub port: u16,
}

impl ServerAddr {
    pub fn parse(s: &str) -> Option<ServerAddr> {
        if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
            return Some(ServerAddr {
                host: sa.ip().to_string(),
                port: sa.port(),
            });
        }
        if let Ok(ip) = s.parse::<std::net::IpAddr>() {
            return Some(ServerAddr {
                host: ip.to_string(),
                port: 53,
            });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().ok().filter(|p| *p > 0)?),
            None => (s, 53),
        };
        DomainName::new(host).ok()?;
        Some(ServerAddr {
            host: host.trim_end_matches('.').to_string(),
            port,
        })
    }
}

impl std::fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct CloudflareConfig {
    pub zone: DomainName,
    /// The zone's id, when given: then it is never looked up.
    pub zone_id: Option<String>,
    /// The API token's file; `None`: `CLOUDFLARE_API_TOKEN`.
    pub token_file: Option<PathBuf>,
    /// Proxy A/AAAA records through Cloudflare (orange cloud).
    pub proxied: bool,
    pub endpoint: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Route53Config {
    pub zone: ZoneRef,
    pub routing: Routing,
    pub endpoint: Option<String>,
}

/// A hosted zone: named (its id is looked up once in an instance's life), by
/// id (its name likewise), or both (never looked up).
#[derive(Clone, Debug, PartialEq)]
pub enum ZoneRef {
    Name(DomainName),
    Id(String),
    Both(DomainName, String),
}

/// How Route53 keeps shared names (docs/design.md, "Who else claims a value").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    /// One rrset per name, shared: changed by atomic DELETE + CREATE batches.
    Simple,
    /// One rrset per instance per name (SetIdentifier = instance id).
    Multivalue,
}

/// A name template: `{instance_id}` and friends, checked to name known variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(String);

/// The variables a template may use (README.md, "Configuration walkthrough").
pub const TEMPLATE_VARS: [&str; 6] = [
    "instance_id",
    "hostname",
    "region",
    "ipv4",
    "ipv4_dashed",
    "ipv6",
];

impl Template {
    /// Checks that every `{...}` names a known variable.
    pub fn new(text: &str) -> Result<Template, String> {
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                return Err(format!("`{text}` has a `{{` without its `}}`"));
            };
            let var = &rest[open + 1..open + close];
            if !TEMPLATE_VARS.contains(&var) {
                return Err(format!(
                    "`{text}` uses the unknown variable `{{{var}}}`; known: {}",
                    TEMPLATE_VARS.map(|v| format!("{{{v}}}")).join(", ")
                ));
            }
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("`{text}` has a `}}` without its `{{`"));
        }
        Ok(Template(text.to_string()))
    }

    /// Fills in the variables; `lookup` answers for each variable name.
    pub fn expand(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = self.0.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = open + rest[open..].find('}').expect("checked in Template::new");
            let var = &rest[open + 1..close];
            match lookup(var) {
                Some(v) => out.push_str(&v),
                None => {
                    return Err(format!(
                        "`{}` needs {{{var}}}, which this instance does not have",
                        self.0
                    ));
                }
            }
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One `[[host]]`, `[[round_robin]]`, `[[srv]]` or `[[service]]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordSpec {
    /// Where it was written, e.g. `round_robin[1]`, for messages.
    pub origin: String,
    pub providers: Vec<String>,
    pub ttl: u32,
    pub kind: SpecKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SpecKind {
    /// A/AAAA owned by this instance alone.
    Host { name: Template },
    /// This instance's address in a shared A/AAAA rrset.
    RoundRobin { name: Template },
    /// This instance's line in a shared SRV rrset (RFC 2782).
    Srv {
        name: Template,
        priority: u16,
        weight: u16,
        port: u16,
        target: Template,
    },
    /// RFC 6763 DNS-SD: PTR at `<service_type>.<zone>` (shared), SRV + TXT at the
    /// instance's service name (owned).
    Service {
        service_type: String,
        instance: Template,
        port: u16,
        priority: u16,
        weight: u16,
        target: Template,
        txt: Vec<(String, String)>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct AgentConfig {
    pub reconcile_interval: Duration,
    /// How often to ask the cloud for termination/preemption notices.
    pub notice_interval: Duration,
    pub drain: Duration,
    pub stop_timeout: Duration,
    /// The first join of `run` waits a random while up to this long, so that
    /// a fleet booting together reaches the provider at its rate instead of
    /// all at once; at the stop, the first throttled retry is spread over it
    /// too (at most three quarters of `stop_timeout`). Zero by default.
    pub join_spread: Duration,
    pub state_dir: PathBuf,
    /// Prometheus metrics written for node_exporter's textfile collector.
    pub metrics_textfile: Option<PathBuf>,
    /// Prometheus metrics served at `GET /metrics` on this address.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            reconcile_interval: Duration::from_secs(60),
            // AWS asks for every 5 s; the spot notice comes two minutes ahead.
            notice_interval: Duration::from_secs(5),
            drain: Duration::ZERO,
            stop_timeout: Duration::from_secs(20),
            join_spread: Duration::ZERO,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            metrics_textfile: None,
            metrics_listen: None,
        }
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// One thing wrong with a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    /// The key's path, e.g. `srv[0].target`.
    pub key: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// Every problem of one configuration. Exit code 2.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file, or `command line` for flags.
    pub source_name: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{} has {n} problem{}",
            self.source_name,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {}", self.source_name)?;
            if let Some(line) = p.line {
                write!(f, ":{line}")?;
            }
            if p.key.is_empty() {
                write!(f, ": {}", p.message)?;
            } else {
                write!(f, ": {}: {}", p.key, p.message)?;
            }
        }
        Ok(())
    }
}

/// A usage or configuration problem found after parsing (exit code 2): nothing
/// was changed in DNS.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_take_every_usual_form() {
        let p = |s: &str| ServerAddr::parse(s).map(|a| a.to_string());
        assert_eq!(p("192.0.2.53").as_deref(), Some("192.0.2.53:53"));
        assert_eq!(p("192.0.2.53:5353").as_deref(), Some("192.0.2.53:5353"));
        assert_eq!(p("2001:db8::53").as_deref(), Some("[2001:db8::53]:53"));
        assert_eq!(
            p("[2001:db8::53]:5353").as_deref(),
            Some("[2001:db8::53]:5353")
        );
        assert_eq!(p("ns1.example.com").as_deref(), Some("ns1.example.com:53"));
        assert_eq!(
            p("ns1.example.com:53").as_deref(),
            Some("ns1.example.com:53")
        );
        for bad in ["", "not a server", "ns1:0", "ns1:http", "192.0.2.53:99999"] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }
    #[test]
    fn templates_know_their_variables() {
        assert!(Template::new("{instance_id}.hosts").is_ok());
        assert!(
            Template::new("{nope}")
                .unwrap_err()
                .contains("unknown variable `{nope}`")
        );
        assert!(Template::new("{ipv4").is_err());
        let t = Template::new("web-{ipv4_dashed}").unwrap();
        assert_eq!(
            t.expand(|v| (v == "ipv4_dashed").then(|| "1-2-3-4".into()))
                .unwrap(),
            "web-1-2-3-4"
        );
    }
}
