//! The configuration: raw TOML (serde, unknown keys refused) validated into a
//! [`Config`] whose parts are checked types.
//!
//! Every problem found is reported with the file, the line and the key, and what
//! to write instead, as `dnsreg check` prints them; validation collects all of
//! them rather than stopping at the first. Past this module nothing re-checks
//! strings: names are templates known to expand to valid DNS names, durations
//! are durations.
//! The same validation serves a configuration built from command-line flags.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

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

// ---------------------------------------------------------------------------
// Raw TOML
// ---------------------------------------------------------------------------

type S<T> = Spanned<T>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub instance: Option<RawInstance>,
    #[serde(default)]
    pub providers: BTreeMap<String, S<RawProvider>>,
    #[serde(default)]
    pub host: Vec<S<RawName>>,
    #[serde(default)]
    pub round_robin: Vec<S<RawName>>,
    #[serde(default)]
    pub srv: Vec<S<RawSrv>>,
    #[serde(default)]
    pub service: Vec<S<RawService>>,
    #[serde(default)]
    pub check: Vec<S<RawCheck>>,
    #[serde(default)]
    pub lease: Option<S<RawLease>>,
    #[serde(default)]
    pub agent: Option<RawAgent>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawInstance {
    pub metadata: Option<S<String>>,
    pub address: Option<S<String>>,
    pub ipv6: Option<bool>,
    pub id: Option<S<String>>,
    pub ipv4: Option<S<String>>,
    pub hostname: Option<S<String>>,
    pub region: Option<S<String>>,
    pub metadata_endpoint: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    #[serde(rename = "type")]
    pub kind: S<String>,
    pub zone: Option<S<String>>,
    pub zone_id: Option<S<String>>,
    pub routing: Option<S<String>>,
    pub endpoint: Option<S<String>>,
    pub token_file: Option<S<String>>,
    pub proxied: Option<S<bool>>,
    pub server: Option<S<String>>,
    pub tsig_key_file: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawName {
    pub providers: S<Vec<String>>,
    pub name: S<String>,
    pub ttl: Option<S<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSrv {
    pub providers: S<Vec<String>>,
    pub name: S<String>,
    pub port: S<i64>,
    pub priority: Option<S<i64>>,
    pub weight: Option<S<i64>>,
    pub target: S<String>,
    pub ttl: Option<S<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub providers: S<Vec<String>>,
    #[serde(rename = "type")]
    pub service_type: S<String>,
    pub instance: S<String>,
    pub port: S<i64>,
    pub priority: Option<S<i64>>,
    pub weight: Option<S<i64>>,
    pub target: Option<S<String>>,
    #[serde(default)]
    pub txt: BTreeMap<String, String>,
    pub ttl: Option<S<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub http: Option<S<String>>,
    pub tcp: Option<S<String>>,
    pub exec: Option<S<Vec<String>>>,
    pub interval: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub rise: Option<S<i64>>,
    pub fall: Option<S<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLease {
    pub ttl: Option<S<String>>,
    pub reap: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub reconcile_interval: Option<S<String>>,
    pub notice_interval: Option<S<String>>,
    pub drain: Option<S<String>>,
    pub stop_timeout: Option<S<String>>,
    pub join_spread: Option<S<String>>,
    pub state_dir: Option<S<String>>,
    pub metrics_textfile: Option<S<String>>,
    pub metrics_listen: Option<S<String>>,
}

// ---------------------------------------------------------------------------
// Loading and validation
// ---------------------------------------------------------------------------

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let source_name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        source_name: source_name.clone(),
        problems: vec![Problem {
            line: None,
            key: String::new(),
            message: format!(
                "cannot read it: {e}; write a configuration there, point -c at one, or give the settings as flags (--provider, --zone, ...)"
            ),
        }],
    })?;
    parse(&source_name, &text)
}

/// Reads a configuration file for its `[instance]` table alone (`whoami`):
/// the file must parse, but providers and records need not be there or be
/// right, since nothing is published.
pub fn load_instance(path: &Path) -> Result<InstanceConfig, ConfigError> {
    let source_name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        source_name: source_name.clone(),
        problems: vec![Problem {
            line: None,
            key: String::new(),
            message: format!("cannot read it: {e}"),
        }],
    })?;
    let mut raw = parse_raw(&source_name, &text)?;
    let mut c = Checker {
        text: Some(&text),
        problems: Vec::new(),
    };
    let instance = validate_instance(&mut c, raw.instance.take().unwrap_or_default());
    if c.problems.is_empty() {
        Ok(instance)
    } else {
        Err(ConfigError {
            source_name,
            problems: c.problems,
        })
    }
}

/// Parses and validates configuration text; `source_name` is used in messages.
pub fn parse(source_name: &str, text: &str) -> Result<Config, ConfigError> {
    validate(source_name, Some(text), parse_raw(source_name, text)?)
}

/// The TOML of a configuration, its syntax and key names checked.
fn parse_raw(source_name: &str, text: &str) -> Result<RawConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        let snippet = line
            .and_then(|l| text.lines().nth(l - 1))
            .map(str::trim)
            .unwrap_or("");
        ConfigError {
            source_name: source_name.to_string(),
            problems: vec![Problem {
                line,
                key: if snippet.is_empty() {
                    String::new()
                } else {
                    format!("`{snippet}`")
                },
                message: e.message().trim().to_string(),
            }],
        }
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// The longest duration any setting takes: far beyond any sensible value,
/// and far from the arithmetic overflows (deadlines, lease expiry) of huge ones.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Whether two provider entries reach the same zone at the same service
/// (so far as a configuration can tell: Route53's public and private zones
/// may share a name, and are told apart by their ids when both are given).
fn same_zone(a: &ProviderConfig, b: &ProviderConfig) -> bool {
    match (&a.kind, &b.kind) {
        (ProviderKind::Route53(x), ProviderKind::Route53(y)) => {
            let parts = |z: &ZoneRef| match z {
                ZoneRef::Name(n) => (Some(n.clone()), None),
                ZoneRef::Id(i) => (None, Some(i.clone())),
                ZoneRef::Both(n, i) => (Some(n.clone()), Some(i.clone())),
            };
            let ((xn, xi), (yn, yi)) = (parts(&x.zone), parts(&y.zone));
            x.endpoint == y.endpoint
                && match (xi, yi) {
                    (Some(xi), Some(yi)) => xi == yi,
                    _ => xn.is_some() && xn == yn,
                }
        }
        (ProviderKind::Cloudflare(x), ProviderKind::Cloudflare(y)) => {
            x.endpoint == y.endpoint && x.zone == y.zone
        }
        (ProviderKind::Rfc2136(x), ProviderKind::Rfc2136(y)) => {
            x.server == y.server && x.zone == y.zone
        }
        _ => false,
    }
}

/// Collects problems with their lines while validating.
struct Checker<'a> {
    text: Option<&'a str>,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn line(&self, span: Range<usize>) -> Option<usize> {
        self.text.map(|t| line_of(t, span.start))
    }

    fn problem(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        let line = self.line(span);
        self.problems.push(Problem {
            line,
            key: key.into(),
            message: message.into(),
        });
    }

    fn u32_in<T: TryFrom<i64>>(&mut self, v: &S<i64>, key: &str, lo: i64, hi: i64) -> Option<T> {
        let n = *v.get_ref();
        if n < lo || n > hi {
            self.problem(
                v.span(),
                key,
                format!("{n} is out of range; write a whole number from {lo} to {hi}"),
            );
            return None;
        }
        T::try_from(n).ok()
    }

    fn duration(&mut self, v: &Option<S<String>>, key: &str, default: Duration) -> Duration {
        let Some(v) = v else { return default };
        match humantime::parse_duration(v.get_ref()) {
            Ok(d) if d > MAX_DURATION => {
                self.problem(
                    v.span(),
                    key,
                    format!(
                        "`{}` is longer than dnsreg allows for any duration ({}); write e.g. \"30s\", \"5m\" or \"1h\"",
                        v.get_ref(),
                        humantime::format_duration(MAX_DURATION)
                    ),
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.problem(
                    v.span(),
                    key,
                    format!(
                        "`{}` is not a duration ({e}); write e.g. \"30s\", \"5m\" or \"1h\"",
                        v.get_ref()
                    ),
                );
                default
            }
        }
    }

    fn template(&mut self, v: &S<String>, key: &str) -> Option<Template> {
        match Template::new(v.get_ref()) {
            Ok(t) => Some(t),
            Err(e) => {
                self.problem(v.span(), key, e);
                None
            }
        }
    }
}

/// Validates a raw configuration. `text` (when from a file) gives line numbers.
pub fn validate(
    source_name: &str,
    text: Option<&str>,
    mut raw: RawConfig,
) -> Result<Config, ConfigError> {
    let mut c = Checker {
        text,
        problems: Vec::new(),
    };

    let instance = validate_instance(&mut c, raw.instance.take().unwrap_or_default());

    let mut providers = Vec::new();
    for (name, p) in &raw.providers {
        if let Some(pc) = validate_provider(&mut c, name, p) {
            providers.push(pc);
        }
    }
    for (i, a) in providers.iter().enumerate() {
        for b in &providers[..i] {
            if same_zone(a, b) {
                let span = raw.providers.get(&a.name).map_or(0..0, S::span);
                c.problem(
                    span,
                    format!("providers.{}", a.name),
                    format!(
                        "names the same zone as providers.{}: each entry would take the other's records in the zone's registry for its own to remove; put all the records of one zone under one provider entry",
                        b.name
                    ),
                );
            }
        }
    }
    let known: BTreeSet<&str> = raw.providers.keys().map(String::as_str).collect();

    let mut records = Vec::new();
    let check_providers = |c: &mut Checker, v: &S<Vec<String>>, origin: &str| -> Vec<String> {
        if v.get_ref().is_empty() {
            c.problem(
                v.span(),
                format!("{origin}.providers"),
                "the list is empty; name at least one table of [providers]",
            );
        }
        for p in v.get_ref() {
            if !known.contains(p.as_str()) {
                let hint = if known.is_empty() {
                    "there are no [providers.NAME] tables; add one".to_string()
                } else {
                    format!(
                        "write one of: {}",
                        known
                            .iter()
                            .map(|k| format!("\"{k}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                c.problem(
                    v.span(),
                    format!("{origin}.providers"),
                    format!("there is no provider `{p}`; {hint}"),
                );
            }
        }
        v.get_ref().clone()
    };

    for (i, h) in raw.host.iter().enumerate() {
        let origin = format!("host[{i}]");
        let h = h.get_ref();
        let providers = check_providers(&mut c, &h.providers, &origin);
        let ttl = ttl(&mut c, &h.ttl, &origin);
        if let Some(name) = c.template(&h.name, &format!("{origin}.name")) {
            records.push(RecordSpec {
                origin,
                providers,
                ttl,
                kind: SpecKind::Host { name },
            });
        }
    }
    for (i, r) in raw.round_robin.iter().enumerate() {
        let origin = format!("round_robin[{i}]");
        let r = r.get_ref();
        let providers = check_providers(&mut c, &r.providers, &origin);
        let ttl = ttl(&mut c, &r.ttl, &origin);
        if let Some(name) = c.template(&r.name, &format!("{origin}.name")) {
            records.push(RecordSpec {
                origin,
                providers,
                ttl,
                kind: SpecKind::RoundRobin { name },
            });
        }
    }
    for (i, s) in raw.srv.iter().enumerate() {
        let origin = format!("srv[{i}]");
        let s = s.get_ref();
        let providers = check_providers(&mut c, &s.providers, &origin);
        let ttl = ttl(&mut c, &s.ttl, &origin);
        let port = c.u32_in::<u16>(&s.port, &format!("{origin}.port"), 1, 65535);
        let priority = s.priority.as_ref().map_or(Some(0), |v| {
            c.u32_in::<u16>(v, &format!("{origin}.priority"), 0, 65535)
        });
        let weight = s.weight.as_ref().map_or(Some(0), |v| {
            c.u32_in::<u16>(v, &format!("{origin}.weight"), 0, 65535)
        });
        let name = c.template(&s.name, &format!("{origin}.name"));
        let target = c.template(&s.target, &format!("{origin}.target"));
        if !s.name.get_ref().starts_with('_') {
            c.problem(
                s.name.span(),
                format!("{origin}.name"),
                format!("`{}` is not an SRV owner name; write `_service._proto`, e.g. \"_v1._theservice._tcp\" (RFC 2782)", s.name.get_ref()),
            );
        }
        if let (Some(port), Some(priority), Some(weight), Some(name), Some(target)) =
            (port, priority, weight, name, target)
        {
            records.push(RecordSpec {
                origin,
                providers,
                ttl,
                kind: SpecKind::Srv {
                    name,
                    priority,
                    weight,
                    port,
                    target,
                },
            });
        }
    }
    for (i, s) in raw.service.iter().enumerate() {
        let origin = format!("service[{i}]");
        let s = s.get_ref();
        let providers = check_providers(&mut c, &s.providers, &origin);
        let ttl = ttl(&mut c, &s.ttl, &origin);
        let port = c.u32_in::<u16>(&s.port, &format!("{origin}.port"), 1, 65535);
        let priority = s.priority.as_ref().map_or(Some(0), |v| {
            c.u32_in::<u16>(v, &format!("{origin}.priority"), 0, 65535)
        });
        let weight = s.weight.as_ref().map_or(Some(0), |v| {
            c.u32_in::<u16>(v, &format!("{origin}.weight"), 0, 65535)
        });
        let stype = s.service_type.get_ref();
        let labels: Vec<&str> = stype.split('.').collect();
        let type_ok = labels.len() == 2
            && labels[0].starts_with('_')
            && labels[0].len() >= 2
            && (labels[1] == "_tcp" || labels[1] == "_udp");
        if !type_ok {
            c.problem(
                s.service_type.span(),
                format!("{origin}.type"),
                format!("`{stype}` is not a DNS-SD service type; write `_name._tcp` or `_name._udp`, e.g. \"_http._tcp\" (RFC 6763 §7)"),
            );
        }
        let instance = c.template(&s.instance, &format!("{origin}.instance"));
        let target = match &s.target {
            Some(t) => c.template(t, &format!("{origin}.target")),
            None => {
                // Default: the one [[host]] name published through the same providers.
                let hosts: Vec<&S<RawName>> = raw
                    .host
                    .iter()
                    .filter(|h| {
                        h.get_ref()
                            .providers
                            .get_ref()
                            .iter()
                            .any(|p| s.providers.get_ref().contains(p))
                    })
                    .collect();
                if hosts.len() == 1 {
                    Template::new(hosts[0].get_ref().name.get_ref()).ok()
                } else {
                    c.problem(
                        s.instance.span(),
                        format!("{origin}.target"),
                        "missing: say which name the service's SRV record points at, e.g. target = \"{instance_id}\" with a [[host]] of that name",
                    );
                    None
                }
            }
        };
        let mut txt = Vec::new();
        for (k, v) in &s.txt {
            let pair = format!("{k}={v}");
            if k.is_empty() || k.contains('=') || pair.len() > 255 {
                c.problem(
                    s.instance.span(),
                    format!("{origin}.txt.{k}"),
                    "a TXT key must be non-empty without `=`, and `key=value` at most 255 characters (RFC 6763 §6)",
                );
            }
            txt.push((k.clone(), v.clone()));
        }
        if let (true, Some(port), Some(priority), Some(weight), Some(instance), Some(target)) =
            (type_ok, port, priority, weight, instance, target)
        {
            records.push(RecordSpec {
                origin,
                providers,
                ttl,
                kind: SpecKind::Service {
                    service_type: stype.clone(),
                    instance,
                    port,
                    priority,
                    weight,
                    target,
                    txt,
                },
            });
        }
    }

    let drain_span = raw
        .agent
        .as_ref()
        .and_then(|a| a.drain.as_ref())
        .map(S::span);
    let agent = validate_agent(&mut c, raw.agent.take().unwrap_or_default());

    // Cloudflare proxies only A/AAAA (and CNAME): an SRV, TXT or PTR record
    // cannot be proxied, so a spec that makes them must not go to such a provider.
    for r in &records {
        // Cloudflare takes TTLs of 1 (automatic) or 30 (Enterprise; 60 on the
        // other plans) to 86400 seconds ("Time to Live (TTL)" in its DNS docs).
        for pc in &providers {
            if matches!(pc.kind, ProviderKind::Cloudflare(_))
                && r.providers.contains(&pc.name)
                && r.ttl != 1
                && !(30..=86400).contains(&r.ttl)
            {
                let line = raw_line_for(&c, &raw, &r.origin);
                c.problems.push(Problem {
                    line,
                    key: format!("{}.ttl", r.origin),
                    message: format!(
                        "{} is not a TTL Cloudflare accepts (provider `{}`); write 1 (automatic) or 60 to 86400",
                        r.ttl, pc.name
                    ),
                });
            }
        }
        if !matches!(r.kind, SpecKind::Srv { .. } | SpecKind::Service { .. }) {
            continue;
        }
        for pc in &providers {
            if let ProviderKind::Cloudflare(cf) = &pc.kind
                && cf.proxied
                && r.providers.contains(&pc.name)
            {
                let line = raw_line_for(&c, &raw, &r.origin);
                c.problems.push(Problem {
                    line,
                    key: format!("{}.providers", r.origin),
                    message: format!(
                        "`{}` makes SRV/TXT/PTR records, which Cloudflare cannot proxy, but provider `{}` has proxied = true; set proxied = false there or route this spec to another provider",
                        r.origin, pc.name
                    ),
                });
            }
        }
    }
    if providers.is_empty() && raw.providers.is_empty() {
        c.problems.push(Problem {
            line: None,
            key: "providers".into(),
            message: "no provider is configured; add e.g. [providers.r53] with type = \"route53\" and zone = \"example.com\"".into(),
        });
    }
    if records.is_empty()
        && raw.host.is_empty()
        && raw.round_robin.is_empty()
        && raw.srv.is_empty()
        && raw.service.is_empty()
    {
        c.problems.push(Problem {
            line: None,
            key: String::new(),
            message: "no records are configured; add a [[host]], [[round_robin]], [[srv]] or [[service]] table".into(),
        });
    }

    let checks = raw
        .check
        .iter()
        .enumerate()
        .filter_map(|(i, ch)| validate_check(&mut c, i, ch))
        .collect();
    let lease = raw.lease.as_ref().map(|l| {
        let ttl = c.duration(&l.get_ref().ttl, "lease.ttl", Duration::from_secs(3600));
        if l.get_ref().ttl.is_none() {
            c.problem(l.span(), "lease.ttl", "missing; write e.g. ttl = \"1h\" (refreshed every ttl/3)");
        } else if ttl < Duration::from_secs(60) {
            c.problem(
                l.get_ref().ttl.as_ref().unwrap().span(),
                "lease.ttl",
                "must be at least 60s (each refresh is a write to every provider); write e.g. \"1h\"",
            );
        }
        LeaseConfig {
            ttl,
            reap: l.get_ref().reap.unwrap_or(false),
        }
    });
    if agent.drain >= agent.stop_timeout && !agent.drain.is_zero() {
        let span = drain_span;
        let message = format!(
            "drain ({}) must be shorter than stop_timeout ({}), which bounds the whole stop (removal, then drain)",
            humantime::format_duration(agent.drain),
            humantime::format_duration(agent.stop_timeout)
        );
        match span {
            Some(span) => c.problem(span, "agent.drain", message),
            None => c.problems.push(Problem {
                line: None,
                key: "agent.drain".into(),
                message,
            }),
        }
    }

    let config = Config {
        instance,
        providers,
        records,
        agent,
        checks,
        lease,
    };
    if c.problems.is_empty() {
        // Expanding with a sample identity catches bad names, names outside the
        // zone, SRV targets nobody publishes and colliding records, before any
        // network call.
        for p in crate::plan::check_sample(&config) {
            let line = raw_line_for(&c, &raw, &p.0);
            c.problems.push(Problem {
                line,
                key: p.0,
                message: p.1,
            });
        }
    }
    if c.problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError {
            source_name: source_name.to_string(),
            problems: c.problems,
        })
    }
}

/// The line of a record table, from its origin (`srv[2].target` → that table).
fn raw_line_for(c: &Checker, raw: &RawConfig, key: &str) -> Option<usize> {
    let (table, rest) = key.split_once('[')?;
    let index: usize = rest.split_once(']')?.0.parse().ok()?;
    let span = match table {
        "host" => raw.host.get(index)?.span(),
        "round_robin" => raw.round_robin.get(index)?.span(),
        "srv" => raw.srv.get(index)?.span(),
        "service" => raw.service.get(index)?.span(),
        _ => return None,
    };
    c.line(span)
}

fn ttl(c: &mut Checker, v: &Option<S<i64>>, origin: &str) -> u32 {
    match v {
        None => 60,
        // Route53 accepts 0..=2147483647; anything above a week is a mistake here.
        Some(v) => c
            .u32_in::<u32>(v, &format!("{origin}.ttl"), 1, 604_800)
            .unwrap_or(60),
    }
}

fn validate_instance(c: &mut Checker, raw: RawInstance) -> InstanceConfig {
    let metadata = match raw
        .metadata
        .as_ref()
        .map(|m| (m.get_ref().as_str(), m.span()))
    {
        None => MetadataKind::Auto,
        Some((name, span)) => match MetadataKind::from_name(name) {
            Some(kind) => kind,
            None => {
                let all: Vec<String> = MetadataKind::ALL
                    .iter()
                    .map(|k| format!("\"{}\"", k.name()))
                    .collect();
                c.problem(
                    span,
                    "instance.metadata",
                    format!(
                        "`{name}` is not a metadata source; write one of {}",
                        all.join(", ")
                    ),
                );
                MetadataKind::Auto
            }
        },
    };
    let address = match raw
        .address
        .as_ref()
        .map(|a| (a.get_ref().as_str(), a.span()))
    {
        None | Some(("public", _)) => AddressKind::Public,
        Some(("private", _)) => AddressKind::Private,
        Some((other, span)) => {
            c.problem(
                span,
                "instance.address",
                format!("`{other}` is not an address kind; write \"public\" or \"private\""),
            );
            AddressKind::Public
        }
    };
    let ipv4 = raw
        .ipv4
        .as_ref()
        .and_then(|v| match v.get_ref().parse::<Ipv4Addr>() {
            Ok(ip) => {
                if let Some(why) = crate::metadata::unusable_ipv4(ip) {
                    c.problem(
                        v.span(),
                        "instance.ipv4",
                        format!("{ip} is {why}, which no other machine can reach; write the address others should use"),
                    );
                }
                Some(ip)
            }
            Err(_) => {
                c.problem(
                    v.span(),
                    "instance.ipv4",
                    format!(
                        "`{}` is not an IPv4 address; write e.g. \"203.0.113.7\"",
                        v.get_ref()
                    ),
                );
                None
            }
        });
    let id = raw.id.as_ref().map(|v| {
        if let Err(e) = crate::registry::instance_label(v.get_ref()) {
            c.problem(v.span(), "instance.id", e);
        }
        v.get_ref().clone()
    });
    if metadata == MetadataKind::None && (raw.id.is_none() || raw.ipv4.is_none()) {
        c.problems.push(Problem {
            line: None,
            key: "instance".into(),
            message: "with metadata = \"none\", set both id and ipv4 in [instance]".into(),
        });
    }
    let metadata_endpoint = raw.metadata_endpoint.as_ref().map(|v| {
        let s = v.get_ref();
        if !(s.starts_with("http://") || s.starts_with("https://")) {
            c.problem(
                v.span(),
                "instance.metadata_endpoint",
                format!("`{s}` is not an http(s) URL; write e.g. \"http://127.0.0.1:1338\""),
            );
        }
        s.trim_end_matches('/').to_string()
    });
    InstanceConfig {
        metadata,
        address,
        ipv6: raw.ipv6.unwrap_or(false),
        id,
        ipv4,
        hostname: raw.hostname.map(|h| h.into_inner()),
        region: raw.region.map(|r| r.into_inner()),
        metadata_endpoint,
    }
}

fn validate_provider(c: &mut Checker, name: &str, p: &S<RawProvider>) -> Option<ProviderConfig> {
    let key = format!("providers.{name}");
    let raw = p.get_ref();
    if let Err(e) = crate::registry::instance_label(name) {
        c.problem(
            p.span(),
            key.clone(),
            format!("the table name is not usable: {e}"),
        );
    }
    match raw.kind.get_ref().as_str() {
        "route53" => {}
        "cloudflare" => return validate_cloudflare(c, name, p),
        "rfc2136" => return validate_rfc2136(c, name, p),
        other => {
            c.problem(
                raw.kind.span(),
                format!("{key}.type"),
                format!("`{other}` is not a provider type; write \"route53\", \"cloudflare\" or \"rfc2136\""),
            );
            return None;
        }
    }
    for (value, field) in [
        (raw.token_file.as_ref().map(S::span), "token_file"),
        (raw.proxied.as_ref().map(S::span), "proxied"),
        (raw.server.as_ref().map(S::span), "server"),
        (raw.tsig_key_file.as_ref().map(S::span), "tsig_key_file"),
    ] {
        if let Some(span) = value {
            let owner = if field.contains("token") || field == "proxied" {
                "cloudflare"
            } else {
                "rfc2136"
            };
            c.problem(
                span,
                format!("{key}.{field}"),
                format!("`{field}` is a{} {owner} setting; route53 takes its credentials from the AWS chain (environment, profile, instance role): remove it", if owner == "rfc2136" { "n" } else { "" }),
            );
        }
    }
    let hosted_zone_id = |c: &mut Checker, id: &S<String>| {
        let bare = id.get_ref().trim_start_matches("/hostedzone/");
        if !plausible_hosted_zone_id(bare) {
            c.problem(
                id.span(),
                format!("{key}.zone_id"),
                format!("`{bare}` is not a hosted zone id; write e.g. \"Z0123456789ABCDEFGHIJ\""),
            );
            None
        } else {
            Some(bare.to_string())
        }
    };
    let zone = match (&raw.zone, &raw.zone_id) {
        (Some(z), None) => match DomainName::new(z.get_ref()) {
            Ok(z) => Some(ZoneRef::Name(z)),
            Err(e) => {
                c.problem(
                    z.span(),
                    format!("{key}.zone"),
                    format!("{e}; write the zone's name, e.g. \"example.com\""),
                );
                None
            }
        },
        // Both: the zone is never looked up (for fleets: not even once per instance).
        (Some(z), Some(id)) => {
            let name = match DomainName::new(z.get_ref()) {
                Ok(z) => Some(z),
                Err(e) => {
                    c.problem(
                        z.span(),
                        format!("{key}.zone"),
                        format!("{e}; write the zone's name, e.g. \"example.com\""),
                    );
                    None
                }
            };
            let id = hosted_zone_id(c, id);
            Some(ZoneRef::Both(name?, id?))
        }
        (None, Some(id)) => {
            let id = id.get_ref().trim_start_matches("/hostedzone/");
            if !plausible_hosted_zone_id(id) {
                c.problem(
                    raw.zone_id.as_ref().unwrap().span(),
                    format!("{key}.zone_id"),
                    format!("`{id}` is not a hosted zone id; write e.g. \"Z0123456789ABCDEFGHIJ\""),
                );
                None
            } else {
                Some(ZoneRef::Id(id.to_string()))
            }
        }
        (None, None) => {
            c.problem(
                p.span(),
                format!("{key}.zone"),
                "missing; write zone = \"example.com\" (or zone_id = \"Z...\")",
            );
            None
        }
    };
    let routing = match raw
        .routing
        .as_ref()
        .map(|r| (r.get_ref().as_str(), r.span()))
    {
        None | Some(("simple", _)) => Routing::Simple,
        Some(("multivalue", _)) => Routing::Multivalue,
        Some((other, span)) => {
            c.problem(
                span,
                format!("{key}.routing"),
                format!("`{other}` is not a routing mode; write \"simple\" or \"multivalue\""),
            );
            Routing::Simple
        }
    };
    let endpoint = raw.endpoint.as_ref().map(|e| {
        let s = e.get_ref();
        if !(s.starts_with("https://") || s.starts_with("http://")) {
            c.problem(
                e.span(),
                format!("{key}.endpoint"),
                format!("`{s}` is not a URL; write e.g. \"https://route53.amazonaws.com\""),
            );
        } else if !s.starts_with("https://") && !crate::provider::is_loopback_url(s) {
            c.problem(
                e.span(),
                format!("{key}.endpoint"),
                format!("`{s}` is not https; credentials travel only over TLS (plain http only to a stand-in on loopback)"),
            );
        }
        s.clone()
    });
    Some(ProviderConfig {
        name: name.to_string(),
        kind: ProviderKind::Route53(Route53Config {
            zone: zone?,
            routing,
            endpoint,
        }),
    })
}

/// A Route53 hosted zone id as Route53 writes them (`Z0123456789ABCDEFGHIJ`,
/// at most 32 characters): it goes into every request's URL, and the SDK
/// panics building a URL over 64 KiB.
pub fn plausible_hosted_zone_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.chars().all(|c| c.is_ascii_alphanumeric())
}

/// `[providers.NAME]` with `type = "cloudflare"`.
fn validate_cloudflare(c: &mut Checker, name: &str, p: &S<RawProvider>) -> Option<ProviderConfig> {
    let key = format!("providers.{name}");
    let raw = p.get_ref();
    let zone_id = raw.zone_id.as_ref().and_then(|v| {
        let id = v.get_ref();
        if raw.zone.is_none() {
            c.problem(
                v.span(),
                format!("{key}.zone_id"),
                "cloudflare providers are named by zone; write zone = \"example.com\" too (zone_id alone is not enough to plan the names)",
            );
            None
        } else if id.len() != 32 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            c.problem(
                v.span(),
                format!("{key}.zone_id"),
                format!("`{id}` is not a Cloudflare zone id (32 hexadecimal characters, on the zone's Overview page)"),
            );
            None
        } else {
            Some(id.to_ascii_lowercase())
        }
    });
    if let Some(v) = &raw.routing {
        c.problem(
            v.span(),
            format!("{key}.routing"),
            "`routing` is a route53 setting; on cloudflare each value is its own record already: remove it",
        );
    }
    for (value, field) in [
        (raw.server.as_ref().map(S::span), "server"),
        (raw.tsig_key_file.as_ref().map(S::span), "tsig_key_file"),
    ] {
        if let Some(span) = value {
            c.problem(
                span,
                format!("{key}.{field}"),
                format!("`{field}` is an rfc2136 setting; cloudflare is reached over its API with token_file: remove it"),
            );
        }
    }
    let zone = match &raw.zone {
        Some(z) => match DomainName::new(z.get_ref()) {
            Ok(z) => Some(z),
            Err(e) => {
                c.problem(
                    z.span(),
                    format!("{key}.zone"),
                    format!("{e}; write the zone's name, e.g. \"example.com\""),
                );
                None
            }
        },
        None if raw.zone_id.is_some() => None,
        None => {
            c.problem(
                p.span(),
                format!("{key}.zone"),
                "missing; write zone = \"example.com\"",
            );
            None
        }
    };
    let token_file = raw.token_file.as_ref().and_then(|t| {
        let path = PathBuf::from(t.get_ref());
        // Checked without reading the secret: exists, is a readable file, not
        // readable by others (a warning: the agent still works).
        match std::fs::File::open(&path).and_then(|f| f.metadata()) {
            Ok(m) if m.is_file() && m.len() == 0 => {
                c.problem(
                    t.span(),
                    format!("{key}.token_file"),
                    format!("{} is empty; write the API token into it", path.display()),
                );
                None
            }
            Ok(m) if m.is_file() => {
                warn_if_others_can_read(&format!("{key}.token_file"), &path);
                Some(path)
            }
            Ok(_) => {
                c.problem(
                    t.span(),
                    format!("{key}.token_file"),
                    format!("{} is not a file; write the path of a file holding the API token", path.display()),
                );
                None
            }
            Err(e) => {
                c.problem(
                    t.span(),
                    format!("{key}.token_file"),
                    format!("cannot read {}: {e}; write the API token there (one line, mode 600) or drop token_file and set CLOUDFLARE_API_TOKEN", path.display()),
                );
                None
            }
        }
    });
    let endpoint = raw.endpoint.as_ref().map(|e| {
        let s = e.get_ref();
        if !(s.starts_with("https://") || s.starts_with("http://")) {
            c.problem(
                e.span(),
                format!("{key}.endpoint"),
                format!("`{s}` is not a URL; write e.g. \"https://api.cloudflare.com/client/v4\""),
            );
        } else if !s.starts_with("https://") && !crate::provider::is_loopback_url(s) {
            c.problem(
                e.span(),
                format!("{key}.endpoint"),
                format!("`{s}` is not https; credentials travel only over TLS (plain http only to a stand-in on loopback)"),
            );
        }
        s.clone()
    });
    if (raw.zone_id.is_some() && zone_id.is_none()) || raw.routing.is_some() {
        return None;
    }
    if raw.token_file.is_some() && token_file.is_none() {
        return None;
    }
    Some(ProviderConfig {
        name: name.to_string(),
        kind: ProviderKind::Cloudflare(CloudflareConfig {
            zone: zone?,
            zone_id,
            token_file,
            proxied: raw.proxied.as_ref().is_some_and(|v| *v.get_ref()),
            endpoint,
        }),
    })
}

/// One `[[check]]`: exactly one probe, sane timings.
fn validate_check(c: &mut Checker, i: usize, ch: &S<RawCheck>) -> Option<CheckConfig> {
    let origin = format!("check[{i}]");
    let raw = ch.get_ref();
    let probes = [raw.http.is_some(), raw.tcp.is_some(), raw.exec.is_some()];
    if probes.iter().filter(|p| **p).count() != 1 {
        c.problem(
            ch.span(),
            origin.clone(),
            "a check needs exactly one of http = \"http://127.0.0.1:8080/healthz\", tcp = \"127.0.0.1:8080\" or exec = [\"/usr/local/bin/healthy\"]",
        );
        return None;
    }
    let probe = if let Some(url) = &raw.http {
        let u = url.get_ref();
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            c.problem(
                url.span(),
                format!("{origin}.http"),
                format!(
                    "`{u}` is not an http(s) URL; write e.g. \"http://127.0.0.1:8080/healthz\""
                ),
            );
            None
        } else {
            Some(Probe::Http(u.clone()))
        }
    } else if let Some(addr) = &raw.tcp {
        match ServerAddr::parse(addr.get_ref()) {
            Some(a) if addr.get_ref().contains(':') => Some(Probe::Tcp(a)),
            _ => {
                c.problem(
                    addr.span(),
                    format!("{origin}.tcp"),
                    format!(
                        "`{}` is not host:port; write e.g. \"127.0.0.1:8080\"",
                        addr.get_ref()
                    ),
                );
                None
            }
        }
    } else if let Some(argv) = &raw.exec {
        let v = argv.get_ref();
        if v.is_empty() || v[0].is_empty() {
            c.problem(
                argv.span(),
                format!("{origin}.exec"),
                "the list is empty; write the program and its arguments, e.g. [\"/usr/bin/systemctl\", \"is-active\", \"nginx\"] (no shell)",
            );
            None
        } else {
            Some(Probe::Exec(v.clone()))
        }
    } else {
        None
    };
    let interval = c.duration(
        &raw.interval,
        &format!("{origin}.interval"),
        Duration::from_secs(5),
    );
    let timeout = c.duration(
        &raw.timeout,
        &format!("{origin}.timeout"),
        Duration::from_secs(2),
    );
    if interval < Duration::from_millis(100) {
        let span = raw.interval.as_ref().map_or(ch.span(), S::span);
        c.problem(
            span,
            format!("{origin}.interval"),
            "must be at least 100ms; write e.g. \"5s\"",
        );
    }
    if timeout.is_zero() || timeout > interval {
        let span = raw.timeout.as_ref().map_or(ch.span(), S::span);
        c.problem(
            span,
            format!("{origin}.timeout"),
            format!(
                "must be above zero and at most the interval ({}); write e.g. \"2s\"",
                humantime::format_duration(interval)
            ),
        );
    }
    let count = |c: &mut Checker, v: &Option<S<i64>>, key: &str, default: u32| -> u32 {
        match v {
            None => default,
            Some(n) => c
                .u32_in::<u32>(n, &format!("{origin}.{key}"), 1, 100)
                .unwrap_or(default),
        }
    };
    let rise = count(c, &raw.rise, "rise", 2);
    let fall = count(c, &raw.fall, "fall", 3);
    Some(CheckConfig {
        origin,
        probe: probe?,
        interval,
        timeout,
        rise,
        fall,
    })
}

/// What `dnsreg check` can say of a fleet's limits without knowing its size:
/// a Route53 provider with simple routing that instances share names through.
pub fn fleet_notes(config: &Config) -> Vec<String> {
    config
        .providers
        .iter()
        .filter(|p| matches!(&p.kind, ProviderKind::Route53(r) if r.routing == Routing::Simple))
        .filter_map(|p| {
            let shared: Vec<&str> = config
                .records
                .iter()
                .filter(|r| r.providers.contains(&p.name))
                .filter(|r| !matches!(r.kind, SpecKind::Host { .. }))
                .map(|r| r.origin.as_str())
                .collect();
            (!shared.is_empty()).then(|| {
                format!(
                    "providers.{}: with routing = \"simple\" the instances share one rrset per name ({}); Route53 rewrites it whole, in one change batch of at most 1,000 records and 32,000 characters, so a shared rrset holds about 450 addresses or 300 SRV lines at most, and instances joining or stopping at once take turns (measured: 200 stopped together left the values of 35 to 58 of them behind, even with stop_timeout twice the floor): for more than a few dozen per name at once, use routing = \"multivalue\", and give a fleet a [lease] so that survivors reap what a scale-in could not remove",
                    p.name,
                    shared.join(", ")
                )
            })
        })
        .collect()
}

/// A secret file others can read still works, but deserves a word.
fn warn_if_others_can_read(key: &str, path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path)
        && m.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "{key}: {} is readable by other users (mode {:o}); chmod 600 it",
            path.display(),
            m.permissions().mode() & 0o777
        );
    }
}

/// `[providers.NAME]` with `type = "rfc2136"`.
fn validate_rfc2136(c: &mut Checker, name: &str, p: &S<RawProvider>) -> Option<ProviderConfig> {
    let key = format!("providers.{name}");
    let raw = p.get_ref();
    let mut refused = false;
    for (value, field, why) in [
        (
            raw.zone_id.as_ref().map(S::span),
            "zone_id",
            "rfc2136 providers are named by zone; write zone = \"example.com\"",
        ),
        (
            raw.routing.as_ref().map(S::span),
            "routing",
            "`routing` is a route53 setting; RFC 2136 updates add and delete single records already: remove it",
        ),
        (
            raw.endpoint.as_ref().map(S::span),
            "endpoint",
            "rfc2136 providers are reached at `server`; write server = \"192.0.2.53:53\"",
        ),
        (
            raw.token_file.as_ref().map(S::span),
            "token_file",
            "`token_file` is a cloudflare setting; rfc2136 signs updates with tsig_key_file: remove it",
        ),
        (
            raw.proxied.as_ref().map(S::span),
            "proxied",
            "`proxied` is a cloudflare setting: remove it",
        ),
    ] {
        if let Some(span) = value {
            c.problem(span, format!("{key}.{field}"), why);
            refused = true;
        }
    }
    let zone = match &raw.zone {
        Some(z) => match DomainName::new(z.get_ref()) {
            Ok(z) => Some(z),
            Err(e) => {
                c.problem(
                    z.span(),
                    format!("{key}.zone"),
                    format!("{e}; write the zone's name, e.g. \"example.com\""),
                );
                None
            }
        },
        None => {
            c.problem(
                p.span(),
                format!("{key}.zone"),
                "missing; write zone = \"example.com\"",
            );
            None
        }
    };
    let server = match &raw.server {
        Some(v) => match ServerAddr::parse(v.get_ref()) {
            Some(a) => Some(a),
            None => {
                c.problem(
                    v.span(),
                    format!("{key}.server"),
                    format!("`{}` is not a server address; write an IP, IP:port or host:port, e.g. \"192.0.2.53:53\"", v.get_ref()),
                );
                None
            }
        },
        None => {
            c.problem(
                p.span(),
                format!("{key}.server"),
                "missing; write the primary server that takes updates, e.g. server = \"192.0.2.53:53\"",
            );
            None
        }
    };
    // The key is parsed here (no network) so that a wrong file is a
    // configuration error with its line, not a failure at the first update.
    let mut key_ok = true;
    let tsig_key_file = raw.tsig_key_file.as_ref().map(|t| {
        let path = PathBuf::from(t.get_ref());
        match crate::provider::rfc2136::TsigKey::load(&path) {
            Ok(_) => warn_if_others_can_read(&format!("{key}.tsig_key_file"), &path),
            Err(e) => {
                c.problem(t.span(), format!("{key}.tsig_key_file"), e);
                key_ok = false;
            }
        }
        path
    });
    if refused || !key_ok {
        return None;
    }
    Some(ProviderConfig {
        name: name.to_string(),
        kind: ProviderKind::Rfc2136(Rfc2136Config {
            zone: zone?,
            server: server?,
            tsig_key_file,
        }),
    })
}

fn validate_agent(c: &mut Checker, raw: RawAgent) -> AgentConfig {
    let d = AgentConfig::default();
    let reconcile_interval = c.duration(
        &raw.reconcile_interval,
        "agent.reconcile_interval",
        d.reconcile_interval,
    );
    if let Some(v) = &raw.reconcile_interval
        && reconcile_interval < Duration::from_secs(1)
    {
        c.problem(
            v.span(),
            "agent.reconcile_interval",
            "must be at least 1s; write e.g. \"60s\"",
        );
    }
    let notice_interval = c.duration(
        &raw.notice_interval,
        "agent.notice_interval",
        d.notice_interval,
    );
    if let Some(v) = &raw.notice_interval
        && !(Duration::from_millis(500)..=Duration::from_secs(60)).contains(&notice_interval)
    {
        c.problem(
            v.span(),
            "agent.notice_interval",
            "must be between 500ms and 60s (a spot notice gives two minutes); write e.g. \"5s\"",
        );
    }
    let stop_timeout = c.duration(&raw.stop_timeout, "agent.stop_timeout", d.stop_timeout);
    if let Some(v) = &raw.stop_timeout
        && stop_timeout < Duration::from_secs(1)
    {
        c.problem(
            v.span(),
            "agent.stop_timeout",
            "must be at least 1s, or nothing is removed at the stop; write e.g. \"20s\"",
        );
    }
    let metrics_textfile = raw.metrics_textfile.and_then(|v| {
        let path = PathBuf::from(v.get_ref());
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let fine = path.is_absolute()
            && path.file_name().is_some()
            && dir.is_some_and(std::path::Path::is_dir);
        if fine {
            Some(path)
        } else {
            c.problem(
                v.span(),
                "agent.metrics_textfile",
                format!(
                    "`{}` is not a file in an existing directory; write an absolute path in node_exporter's --collector.textfile.directory, e.g. \"/var/lib/prometheus/node-exporter/dnsreg.prom\"",
                    path.display()
                ),
            );
            None
        }
    });
    let metrics_listen = raw.metrics_listen.and_then(|v| match v.get_ref().parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            c.problem(
                v.span(),
                "agent.metrics_listen",
                format!(
                    "`{}` is not an address and port; write e.g. \"127.0.0.1:9469\"",
                    v.get_ref()
                ),
            );
            None
        }
    });
    AgentConfig {
        metrics_textfile,
        metrics_listen,
        reconcile_interval,
        notice_interval,
        drain: c.duration(&raw.drain, "agent.drain", d.drain),
        stop_timeout,
        join_spread: c.duration(&raw.join_spread, "agent.join_spread", d.join_spread),
        state_dir: raw
            .state_dir
            .map(|s| PathBuf::from(s.into_inner()))
            .unwrap_or(d.state_dir),
    }
}

// ---------------------------------------------------------------------------
// Configuration from flags
// ---------------------------------------------------------------------------

/// The main settings given as flags, for use without a file.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub provider: String,
    pub zone: Option<String>,
    pub zone_id: Option<String>,
    pub routing: Option<String>,
    pub endpoint: Option<String>,
    /// rfc2136: the primary server and the TSIG key file.
    pub server: Option<String>,
    pub tsig_key_file: Option<String>,
    /// SRV owner name: publishes a host record `{ipv4_dashed}` and this
    /// instance's line in the SRV rrset, as the original script did.
    pub service: Option<String>,
    pub port: Option<u16>,
    /// Round-robin names to join.
    pub names: Vec<String>,
    /// Host names (owned A records).
    pub hosts: Vec<String>,
    pub ttl: Option<u32>,
    pub metadata: Option<String>,
    pub metadata_endpoint: Option<String>,
    pub address: Option<String>,
    pub instance_id: Option<String>,
    pub ipv4: Option<String>,
    pub ipv6: bool,
    pub state_dir: Option<String>,
}

/// Builds and validates a configuration from flags, with the same checks as a file.
pub fn from_flags(f: &Flags) -> Result<Config, ConfigError> {
    let s = |v: &str| Spanned::new(0..0, v.to_string());
    let mut problems = Vec::new();
    let ttl = f.ttl.map(|t| Spanned::new(0..0, i64::from(t)));
    let providers = Spanned::new(0..0, vec![f.provider.clone()]);
    let mut raw = RawConfig {
        instance: Some(RawInstance {
            metadata: f.metadata.as_deref().map(s),
            address: f.address.as_deref().map(s),
            ipv6: Some(f.ipv6),
            id: f.instance_id.as_deref().map(s),
            ipv4: f.ipv4.as_deref().map(s),
            hostname: None,
            region: None,
            metadata_endpoint: f.metadata_endpoint.as_deref().map(s),
        }),
        ..RawConfig::default()
    };
    raw.providers.insert(
        f.provider.clone(),
        Spanned::new(
            0..0,
            RawProvider {
                kind: s(&f.provider),
                zone: f.zone.as_deref().map(s),
                zone_id: f.zone_id.as_deref().map(s),
                routing: f.routing.as_deref().map(s),
                endpoint: f.endpoint.as_deref().map(s),
                token_file: None,
                proxied: None,
                server: f.server.as_deref().map(s),
                tsig_key_file: f.tsig_key_file.as_deref().map(s),
            },
        ),
    );
    for h in &f.hosts {
        raw.host.push(Spanned::new(
            0..0,
            RawName {
                providers: providers.clone(),
                name: s(h),
                ttl: ttl.clone(),
            },
        ));
    }
    if let Some(service) = &f.service {
        let Some(port) = f.port else {
            return Err(ConfigError {
                source_name: "command line".into(),
                problems: vec![Problem {
                    line: None,
                    key: "--port".into(),
                    message: "--service needs --port, e.g. --port 8080".into(),
                }],
            });
        };
        if f.hosts.is_empty() {
            raw.host.push(Spanned::new(
                0..0,
                RawName {
                    providers: providers.clone(),
                    name: s("{ipv4_dashed}"),
                    ttl: ttl.clone(),
                },
            ));
        }
        let target = f
            .hosts
            .first()
            .cloned()
            .unwrap_or_else(|| "{ipv4_dashed}".into());
        raw.srv.push(Spanned::new(
            0..0,
            RawSrv {
                providers: providers.clone(),
                name: s(service),
                port: Spanned::new(0..0, i64::from(port)),
                priority: None,
                weight: None,
                target: s(&target),
                ttl: ttl.clone(),
            },
        ));
    } else if f.port.is_some() {
        problems.push(Problem {
            line: None,
            key: "--port".into(),
            message: "--port is only used with --service".into(),
        });
    }
    for n in &f.names {
        raw.round_robin.push(Spanned::new(
            0..0,
            RawName {
                providers: providers.clone(),
                name: s(n),
                ttl: ttl.clone(),
            },
        ));
    }
    if f.service.is_none() && f.names.is_empty() && f.hosts.is_empty() {
        problems.push(Problem {
            line: None,
            key: String::new(),
            message: "nothing to publish; add --service NAME --port N, --name NAME or --host NAME"
                .into(),
        });
    }
    raw.agent = Some(RawAgent {
        state_dir: f.state_dir.as_deref().map(s),
        ..RawAgent::default()
    });
    let result = validate("command line", None, raw);
    match result {
        Ok(c) if problems.is_empty() => Ok(c),
        Ok(_) => Err(ConfigError {
            source_name: "command line".into(),
            problems,
        }),
        Err(mut e) => {
            // Flag names read better than table paths on the command line.
            for p in &mut e.problems {
                p.key = flag_for(&p.key);
            }
            e.problems.extend(problems);
            Err(e)
        }
    }
}

fn flag_for(key: &str) -> String {
    let field = key.rsplit('.').next().unwrap_or(key);
    let flag = match field {
        "zone" => "--zone",
        "zone_id" => "--zone-id",
        "type" => "--provider",
        "routing" => "--routing",
        "endpoint" => "--endpoint",
        "name" if key.starts_with("srv") => "--service",
        "name" if key.starts_with("host") => "--host",
        "name" => "--name",
        "port" => "--port",
        "ttl" => "--ttl",
        "metadata" => "--metadata",
        "metadata_endpoint" => "--metadata-endpoint",
        "address" => "--address",
        "id" => "--instance-id",
        "ipv4" => "--ipv4",
        _ => return key.to_string(),
    };
    flag.to_string()
}

/// Just the `[instance]` part from flags, for `whoami`.
pub fn instance_from_flags(f: &Flags) -> Result<InstanceConfig, ConfigError> {
    let s = |v: &str| Spanned::new(0..0, v.to_string());
    let raw = RawInstance {
        metadata: f.metadata.as_deref().map(s),
        address: f.address.as_deref().map(s),
        ipv6: Some(f.ipv6),
        id: f.instance_id.as_deref().map(s),
        ipv4: f.ipv4.as_deref().map(s),
        hostname: None,
        region: None,
        metadata_endpoint: f.metadata_endpoint.as_deref().map(s),
    };
    let mut c = Checker {
        text: None,
        problems: Vec::new(),
    };
    let instance = validate_instance(&mut c, raw);
    if c.problems.is_empty() {
        Ok(instance)
    } else {
        for p in &mut c.problems {
            p.key = flag_for(&p.key);
        }
        Err(ConfigError {
            source_name: "command line".into(),
            problems: c.problems,
        })
    }
}

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
    fn an_rfc2136_provider_is_validated_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("tsig.key");
        std::fs::write(
            &key,
            "key \"dnsreg\" {\n\talgorithm hmac-sha512;\n\tsecret \"c2VjcmV0\";\n};\n",
        )
        .unwrap();
        let text = format!(
            "[instance]\nmetadata = \"none\"\nid = \"i-1\"\nipv4 = \"192.0.2.1\"\n\n[providers.ns]\ntype = \"rfc2136\"\nzone = \"example.test\"\nserver = \"192.0.2.53\"\ntsig_key_file = \"{}\"\n\n[[round_robin]]\nproviders = [\"ns\"]\nname = \"www\"\n",
            key.display()
        );
        let c = parse("t.toml", &text).unwrap();
        let ProviderKind::Rfc2136(r) = &c.providers[0].kind else {
            panic!("{:?}", c.providers[0]);
        };
        assert_eq!(r.server.to_string(), "192.0.2.53:53");
        assert_eq!(r.tsig_key_file.as_deref(), Some(key.as_path()));
        // A routing key of route53 is refused with where it belongs.
        let e = parse(
            "t.toml",
            &text.replace(
                "type = \"rfc2136\"",
                "type = \"rfc2136\"\nrouting = \"simple\"",
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("providers.ns.routing"), "{e}");
        assert!(e.contains("route53 setting"), "{e}");
    }

    const GOOD: &str = r#"
[instance]
metadata = "aws"
address = "public"

[providers.r53]
type = "route53"
zone = "example.com"
routing = "simple"

[[host]]
providers = ["r53"]
name = "{instance_id}"
ttl = 60

[[round_robin]]
providers = ["r53"]
name = "www"

[[srv]]
providers = ["r53"]
name = "_v1._theservice._tcp"
port = 8080
target = "{instance_id}"

[[service]]
providers = ["r53"]
type = "_http._tcp"
instance = "{hostname}"
port = 8080
txt = { path = "/", version = "1" }

[agent]
reconcile_interval = "30s"
stop_timeout = "15s"
join_spread = "100s"
state_dir = "/tmp/dnsreg-state"
"#;

    #[test]
    fn the_spec_example_validates() {
        let c = parse("t.toml", GOOD).unwrap();
        assert_eq!(c.providers.len(), 1);
        assert_eq!(c.records.len(), 4);
        assert_eq!(c.agent.reconcile_interval, Duration::from_secs(30));
        assert_eq!(c.agent.join_spread, Duration::from_secs(100));
        assert_eq!(
            parse("t.toml", &GOOD.replace("join_spread = \"100s\"\n", ""))
                .unwrap()
                .agent
                .join_spread,
            Duration::ZERO,
            "no spread unless asked"
        );
        match &c.records[3].kind {
            SpecKind::Service { target, txt, .. } => {
                assert_eq!(target.as_str(), "{instance_id}");
                assert_eq!(txt.len(), 2);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_keys_name_the_line() {
        let text = "[providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\n\n[[host]]\nproviders = [\"r53\"]\nnmae = \"x\"\n";
        let e = parse("t.toml", text).unwrap_err();
        assert_eq!(e.problems[0].line, Some(7));
        assert!(
            e.problems[0].message.contains("unknown field `nmae`"),
            "{e}"
        );
    }

    #[test]
    fn every_problem_is_listed_with_line_and_key() {
        let text = r#"[providers.r53]
type = "route53"
zone = "example.com"
routing = "weighted"

[[round_robin]]
providers = ["cf"]
name = "www"
ttl = 0

[[srv]]
providers = ["r53"]
name = "_x._tcp"
port = 70000
target = "{instance}"

[agent]
drain = "soon"
"#;
        let e = parse("t.toml", text).unwrap_err();
        let got: Vec<(Option<usize>, &str)> = e
            .problems
            .iter()
            .map(|p| (p.line, p.key.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some(4), "providers.r53.routing"),
                (Some(7), "round_robin[0].providers"),
                (Some(9), "round_robin[0].ttl"),
                (Some(14), "srv[0].port"),
                (Some(15), "srv[0].target"),
                (Some(18), "agent.drain"),
            ],
            "{e}"
        );
        let shown = e.to_string();
        assert!(shown.contains("t.toml:7: round_robin[0].providers: there is no provider `cf`; write one of: \"r53\""), "{shown}");
    }

    #[test]
    fn flags_build_the_original_scripts_records() {
        let f = Flags {
            provider: "route53".into(),
            zone: Some("unilans.net".into()),
            service: Some("_v1._theservice._tcp".into()),
            port: Some(8080),
            ..Flags::default()
        };
        let c = from_flags(&f).unwrap();
        assert_eq!(c.records.len(), 2);
        assert!(
            matches!(&c.records[0].kind, SpecKind::Host { name } if name.as_str() == "{ipv4_dashed}")
        );
        assert!(
            matches!(&c.records[1].kind, SpecKind::Srv { port: 8080, target, .. } if target.as_str() == "{ipv4_dashed}")
        );
    }

    #[test]
    fn flags_problems_name_flags() {
        let f = Flags {
            provider: "route53".into(),
            service: Some("_x._tcp".into()),
            port: Some(1),
            ..Flags::default()
        };
        let e = from_flags(&f).unwrap_err();
        assert!(e.problems.iter().any(|p| p.key == "--zone"), "{e}");
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
