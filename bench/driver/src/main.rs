//! `bench`: dnsreg measured against the ways people publish DNS from user-data
//! today, side by side, on the stand-ins (run through `scripts/bench`).
//!
//! Five parts, each printed as a table and written as JSON and markdown:
//!
//! 1. Join and leave latency (process start → the provider confirms) and the
//!    API requests they cost, per provider: `dnsreg join`/`leave` against the
//!    baselines in `bench/baseline/` (the AWS CLI for Route53, curl for
//!    Cloudflare, nsupdate for BIND), each making the same changes. Requests are
//!    counted by the stand-ins (Route53, Cloudflare) and by a counting proxy in
//!    front of a real `named` (RFC 2136).
//! 2. Footprint: idle memory and CPU of `dnsreg run` (measured by
//!    `scripts/footprint`, read from its JSON) and the binary's size.
//! 3. Fleets: N agents (`dnsreg run`) started together join one round-robin
//!    name and one SRV rrset, then are stopped together (SIGTERM), for every
//!    provider (Route53 with multivalue and with simple routing, Cloudflare,
//!    RFC 2136 on a real BIND), each at its documented rate limit; the time
//!    until the zone converged is set against the floor the limit allows. A
//!    short-stop scenario has agents stopped well under that floor, and
//!    surviving peers reap what they left.
//! 4. The AWS CLI baseline doing the same joins at once.
//! 5. Multicast DNS on one segment (measured by `bench/mdns.py`, read from its
//!    JSON, rendered by [`mdns`]).
//!
//! Every figure is observed, never assumed: records are checked in the
//! stand-ins' state after each step (sampled while a fleet converges), and a
//! latency run whose records are not as they should be stops the benchmark.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

mod mdns;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value as Json, json};
use testkit::bind::{Bind, BindOptions};
use testkit::cloudflare::{CLOUDFLARE_RATE_LIMIT, CloudflareServer, DnsRecord};
use testkit::dnsproxy::DnsProxy;
use testkit::route53::{Quota, Route53Server, RrSet};

const ZONE: &str = "example.com";
const PORT: u16 = 8080;
const CF_TOKEN: &str = "bench-cloudflare-token";
const AWS_KEY: (&str, &str) = (
    "AKIABENCHMARK0000001",
    "bench/secret/key/0000000000000000000000",
);
/// Where today's Route53 request quota is documented (cited in the output).
const ROUTE53_CURRENT_SOURCE: &str = "Route 53 Developer Guide, \"Throttling for Amazon Route 53 API requests\": \
the account-level bucket for all actions combined, maximum capacity (burst) 50, refill 10 per second; \
over it, HTTP 400 Throttling \"Rate exceeded\"";
/// Where Route53's legacy account rate is documented.
const ROUTE53_LEGACY_SOURCE: &str = "Route 53 Developer Guide, \"Quotas\" → \"Maximums on API requests\": \
\"five requests per second per AWS account\" (no burst named; the stand-in holds one second's worth); \
over it, HTTP 400 Throttling \"Rate exceeded\"";
/// PriorRequestNotComplete, injected at this rate.
const PRIOR_REQUEST_SHARE: f64 = 0.05;
const PRIOR_REQUEST_SOURCE: &str = "Route 53 Developer Guide, \"Quotas\", and the knowledge-center article \
\"How can I avoid Route 53 API throttling errors?\": HTTP 400 PriorRequestNotComplete when a change arrives \
while Route53 is still processing a prior request; injected here into 5 % of the change batches that pass \
the rate limit (seeded, so repeatable), not applied";
/// Why Route53 simple routing is not run past a few hundred agents.
const ROUTE53_BATCH_SOURCE: &str = "Route 53 Developer Guide, \"Quotas\" → \"Maximums on API requests\": \
at most 1,000 ResourceRecord elements in one ChangeResourceRecordSets request";
const CLOUDFLARE_SOURCE: &str = "Cloudflare Fundamentals, \"Rate limits\": \"Client API per user/account token \
1200/5 minutes\"; past it, \"all API calls for the next five minutes will be blocked, receiving a HTTP 429\"";
/// What the fleets' BIND is run with, and why.
const BIND_LIMIT_NOTE: &str = "none; BIND's `max-records-per-type` (default 100 since BIND 9.18.28 and 9.20, \
ISC's mitigation of CVE-2024-1737: an UPDATE that would make an rrset of more records is refused, SERVFAIL \
\"too many records\") is lifted (0), as a fleet sharing one name of more than 100 machines needs";
/// A value a person put in the shared round-robin rrset: the fleet must never touch it.
const PERSONS_VALUE: &str = "192.0.2.250";
/// The least `[agent] stop_timeout` the fleets get (dnsreg's default).
const MIN_STOP_TIMEOUT_SECS: u64 = 20;
/// How often a converging fleet's zone is looked at.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

const USAGE: &str = "\
usage: bench --dnsreg BIN --aws BIN --baselines DIR --out DIR [--runs N]
             [--only latency,fleet,spread,legacy,reap,baseline] [--providers route53-multivalue,route53-simple,cloudflare,rfc2136]
             [--fleet N,N,...] [--simple-max N] [--spread N,N,...] [--legacy N,N,...] [--reap N] [--fleet-deadline SECS] [--stop-factor X]
             [--baseline-fleet N,N,...] [--footprint FILE] [--mdns FILE] [--command TEXT] [--revision TEXT]
       bench --render RESULTS_JSON --out DIR     (writes DIR/latest.md again from saved results)

  --only             parts to run (default all): latency (join/leave latency per provider), fleet (the
                     fleets of --fleet per provider), spread (route53-multivalue and -simple with `[agent] join_spread`
                     set as README says, N / rate, N of --spread), legacy (route53-multivalue at Route53's legacy 5/s,
                     N of --legacy), reap (the short-stop scenario, N of --reap), baseline (AWS CLI fleets)
  --providers        fleet flavours (default all; env BENCH_PROVIDERS when the flag is absent)
  --fleet            fleet sizes (default 10,200,1000)
  --simple-max       route53-simple runs only at N up to this (default 200): see ROUTE53_BATCH_SOURCE
  --spread           sizes for the join_spread rows (default 200,1000; empty for none)
  --legacy           sizes for the legacy-quota rows (default 200; empty for none)
  --reap             the short-stop scenario's fleet size (default 200; 0 for none)
  --fleet-deadline   how long each fleet phase may take, in seconds (default 600)
  --stop-factor      the fleets' stop_timeout as this multiple of the leave floor (default 1.3; 2 for
                     route53-simple), to check how README sizes a stop; the rows say it";

/// Parts of the benchmark (`--only`).
const PARTS: [&str; 6] = ["latency", "fleet", "spread", "legacy", "reap", "baseline"];

struct Options {
    dnsreg: PathBuf,
    aws: PathBuf,
    baselines: PathBuf,
    out: PathBuf,
    runs: usize,
    only: Vec<String>,
    providers: Vec<Flavor>,
    fleet: Vec<usize>,
    simple_max: usize,
    legacy: Vec<usize>,
    spread: Vec<usize>,
    reap: usize,
    fleet_deadline: Duration,
    /// `stop_timeout` as a multiple of the leave floor, instead of 1.3 (2 for
    /// Route53 simple routing): to check README's sizing of a stop.
    stop_factor: Option<f64>,
    baseline_fleet: Vec<usize>,
    footprint: Option<PathBuf>,
    /// The multicast DNS figures `bench/mdns.py` wrote.
    mdns: Option<PathBuf>,
    command: String,
    revision: String,
    render: Option<PathBuf>,
}

impl Options {
    fn runs_part(&self, part: &str) -> bool {
        self.only.iter().any(|p| p == part)
    }
    fn runs_flavor(&self, f: Flavor) -> bool {
        self.providers.contains(&f)
    }
}

fn parse_list(s: &str) -> Result<Vec<usize>> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.trim()
                .parse()
                .with_context(|| format!("not a number: {p:?}"))
        })
        .collect()
}

fn parse_providers(s: &str) -> Result<Vec<Flavor>> {
    let list: Vec<Flavor> = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| Flavor::parse(p.trim()))
        .collect::<Result<_>>()?;
    Ok(if list.is_empty() {
        Flavor::ALL.to_vec()
    } else {
        list
    })
}

fn options() -> Result<Options> {
    let mut args = std::env::args().skip(1);
    let mut o = Options {
        dnsreg: PathBuf::new(),
        aws: PathBuf::new(),
        baselines: PathBuf::new(),
        out: PathBuf::new(),
        runs: 20,
        only: PARTS.iter().map(|p| p.to_string()).collect(),
        providers: parse_providers(&std::env::var("BENCH_PROVIDERS").unwrap_or_default())
            .context("BENCH_PROVIDERS")?,
        fleet: vec![10, 200, 1000],
        simple_max: 200,
        legacy: vec![200],
        spread: vec![200, 1000],
        reap: 200,
        fleet_deadline: Duration::from_secs(600),
        stop_factor: None,
        baseline_fleet: vec![10, 50],
        footprint: None,
        mdns: None,
        command: "scripts/bench".into(),
        revision: String::new(),
        render: None,
    };
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--dnsreg" => o.dnsreg = value()?.into(),
            "--aws" => o.aws = value()?.into(),
            "--baselines" => o.baselines = value()?.into(),
            "--out" => o.out = value()?.into(),
            "--runs" => o.runs = value()?.parse().context("--runs")?,
            "--only" => {
                let parts: Vec<String> = value()?
                    .split(',')
                    .filter(|p| !p.trim().is_empty())
                    .map(|p| p.trim().to_string())
                    .collect();
                for p in &parts {
                    ensure!(
                        PARTS.contains(&p.as_str()),
                        "--only: no part {p:?} (parts: {})",
                        PARTS.join(", ")
                    );
                }
                o.only = parts;
            }
            "--providers" => o.providers = parse_providers(&value()?)?,
            "--fleet" => o.fleet = parse_list(&value()?)?,
            "--simple-max" => o.simple_max = value()?.parse().context("--simple-max")?,
            "--legacy" => o.legacy = parse_list(&value()?)?,
            "--spread" => o.spread = parse_list(&value()?)?,
            "--reap" => o.reap = value()?.parse().context("--reap")?,
            "--fleet-deadline" => {
                o.fleet_deadline =
                    Duration::from_secs(value()?.parse().context("--fleet-deadline")?)
            }
            "--stop-factor" => {
                let f: f64 = value()?.parse().context("--stop-factor")?;
                ensure!(f > 0.0, "--stop-factor must be above 0");
                o.stop_factor = Some(f);
            }
            "--baseline-fleet" => o.baseline_fleet = parse_list(&value()?)?,
            "--footprint" => o.footprint = Some(value()?.into()),
            "--mdns" => o.mdns = Some(value()?.into()),
            "--command" => o.command = value()?,
            "--revision" => o.revision = value()?,
            "--render" => o.render = Some(value()?.into()),
            _ => bail!("unknown argument {flag}\n{USAGE}"),
        }
    }
    ensure!(!o.out.as_os_str().is_empty(), "--out is required\n{USAGE}");
    if o.render.is_some() {
        return Ok(o);
    }
    for (name, p) in [
        ("--dnsreg", &o.dnsreg),
        ("--aws", &o.aws),
        ("--baselines", &o.baselines),
    ] {
        ensure!(p.exists(), "{name} {}: not found\n{USAGE}", p.display());
    }
    ensure!(o.runs >= 1, "--runs must be at least 1");
    ensure!(
        o.fleet
            .iter()
            .chain(&o.legacy)
            .chain(&o.spread)
            .all(|n| *n >= 1),
        "fleet sizes must be at least 1"
    );
    Ok(o)
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// A scratch directory removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("dnsreg-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    /// Removed, unless BENCH_KEEP is set (the agents' logs, to read after).
    fn drop(&mut self) {
        if std::env::var_os("BENCH_KEEP").is_some() {
            eprintln!("bench: kept {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Cuts a command off from the user's environment and from every real
/// endpoint: AWS config files empty, instance metadata pointed at a closed
/// loopback port (nothing here should ask it), credentials for the stand-in.
fn isolated(program: &Path, home: &Path) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("LANG", "C.UTF-8")
        .env("AWS_ACCESS_KEY_ID", AWS_KEY.0)
        .env("AWS_SECRET_ACCESS_KEY", AWS_KEY.1)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")
        .env("DNSREG_METADATA_PROBE_ROOT", "http://127.0.0.1:9")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    // To read what the agents did (with BENCH_KEEP): DNSREG_LOG=debug scripts/bench …
    if let Some(filter) = std::env::var_os("DNSREG_LOG") {
        c.env("DNSREG_LOG", filter);
    }
    c
}

/// Runs `c` to completion; fails with its output unless it exits 0.
fn run_ok(mut c: Command, what: &str) -> Result<Duration> {
    let start = Instant::now();
    let out = c.output().with_context(|| format!("{what}: start {c:?}"))?;
    let took = start.elapsed();
    ensure!(
        out.status.success(),
        "{what}: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(took)
}

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

/// Median and 95th percentile (nearest rank) of durations, in milliseconds.
fn summary(samples: &[Duration]) -> (f64, f64) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let i = ((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1;
        ms[i]
    };
    let median = if ms.len() % 2 == 1 {
        ms[ms.len() / 2]
    } else {
        (ms[ms.len() / 2 - 1] + ms[ms.len() / 2]) / 2.0
    };
    (median, rank(0.95))
}

/// Requests counted by a stand-in, per kind.
type Counts = BTreeMap<String, u64>;

fn delta(after: &Counts, before: &Counts) -> Counts {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

fn total(c: &Counts) -> u64 {
    c.values().sum()
}

fn describe(c: &Counts) -> String {
    c.iter()
        .map(|(k, v)| format!("{v}× {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------
// Part 1: latency and requests, per provider
// ---------------------------------------------------------------------------

/// One machine's identity.
#[derive(Clone)]
struct Machine {
    id: String,
    ipv4: String,
}

impl Machine {
    fn nth(group: u8, n: usize) -> Machine {
        Machine {
            id: format!("i-0bench{group:02}{n:08}"),
            ipv4: format!("10.{group}.{}.{}", n / 250, n % 250 + 1),
        }
    }

    fn host(&self) -> String {
        format!("{}.{ZONE}.", self.id)
    }

    fn srv_line(&self) -> String {
        format!("0 0 {PORT} {}", self.host())
    }
}

/// A provider under test, with the stand-in (or real server) behind it.
trait Target {
    fn name(&self) -> &'static str;
    /// The baseline script in bench/baseline/ and what it uses.
    fn baseline(&self) -> (&'static str, &'static str);
    /// The `[providers.p]` table's body.
    fn provider_table(&self) -> String;
    /// Environment for dnsreg and the baseline alike.
    fn env(&self, c: &mut Command);
    /// Requests received so far, per kind.
    fn counts(&self) -> Counts;
    /// Whether the machine's A record and SRV line are both there (true) or
    /// both gone (false); an error if only one is.
    fn published(&self, m: &Machine) -> Result<bool>;
    /// The fewest requests that make the change, with what they are.
    fn minimum(&self) -> (u64, &'static str);
}

struct Route53Target {
    r53: Route53Server,
    zone_id: String,
}

impl Route53Target {
    fn start() -> Route53Target {
        let r53 = Route53Server::start();
        // SigV4 verified as AWS does: both clients sign every request.
        r53.set_credentials(Some(AWS_KEY));
        let zone_id = r53.create_zone(ZONE);
        Route53Target { r53, zone_id }
    }
}

impl Target for Route53Target {
    fn name(&self) -> &'static str {
        "route53"
    }
    fn baseline(&self) -> (&'static str, &'static str) {
        (
            "route53.sh",
            "aws route53 change-resource-record-sets + wait",
        )
    }
    fn provider_table(&self) -> String {
        format!("type = \"route53\"\nzone = \"{ZONE}\"")
    }
    fn env(&self, c: &mut Command) {
        c.env("AWS_ENDPOINT_URL_ROUTE_53", self.r53.url())
            .env("ZONE_ID", &self.zone_id);
    }
    fn counts(&self) -> Counts {
        self.r53.stats().requests
    }
    fn published(&self, m: &Machine) -> Result<bool> {
        let a = self
            .r53
            .values(&self.zone_id, &m.host(), "A")
            .contains(&m.ipv4);
        let srv = self
            .r53
            .values(
                &self.zone_id,
                &format!("_v1._theservice._tcp.{ZONE}."),
                "SRV",
            )
            .contains(&m.srv_line());
        ensure!(
            a == srv,
            "route53: {}: A present {a}, SRV line present {srv}",
            m.id
        );
        Ok(a)
    }
    fn minimum(&self) -> (u64, &'static str) {
        (
            1,
            "one ChangeResourceRecordSets, zone id known, no confirmation",
        )
    }
}

struct CloudflareTarget {
    cf: CloudflareServer,
    zone_id: String,
}

impl CloudflareTarget {
    fn start() -> CloudflareTarget {
        let cf = CloudflareServer::start();
        cf.add_token(CF_TOKEN, true);
        let zone_id = cf.create_zone(ZONE);
        CloudflareTarget { cf, zone_id }
    }
}

impl Target for CloudflareTarget {
    fn name(&self) -> &'static str {
        "cloudflare"
    }
    fn baseline(&self) -> (&'static str, &'static str) {
        ("cloudflare.sh", "curl + jq, one call per record")
    }
    fn provider_table(&self) -> String {
        format!(
            "type = \"cloudflare\"\nzone = \"{ZONE}\"\nendpoint = \"{}\"",
            self.cf.url()
        )
    }
    fn env(&self, c: &mut Command) {
        c.env("CLOUDFLARE_API_TOKEN", CF_TOKEN)
            .env("CF_API", self.cf.url());
    }
    fn counts(&self) -> Counts {
        self.cf.stats().requests
    }
    fn published(&self, m: &Machine) -> Result<bool> {
        let host = m.host();
        let host = host.trim_end_matches('.');
        let a = self.cf.values(&self.zone_id, host, "A").contains(&m.ipv4);
        let line = format!("0 0 {PORT} {host}");
        let srv = self
            .cf
            .values(
                &self.zone_id,
                &format!("_v1._theservice._tcp.{ZONE}"),
                "SRV",
            )
            .contains(&line);
        ensure!(
            a == srv,
            "cloudflare: {}: A present {a}, SRV line present {srv}",
            m.id
        );
        Ok(a)
    }
    fn minimum(&self) -> (u64, &'static str) {
        (1, "one POST dns_records/batch, zone id known")
    }
}

struct Rfc2136Target {
    proxy: DnsProxy,
    bind: Bind,
}

impl Rfc2136Target {
    fn start() -> Rfc2136Target {
        let bind = Bind::start();
        // Counts every message; forwards them unchanged (TSIG stays valid).
        let proxy = DnsProxy::start(bind.addr());
        Rfc2136Target { proxy, bind }
    }
}

impl Target for Rfc2136Target {
    fn name(&self) -> &'static str {
        "rfc2136"
    }
    fn baseline(&self) -> (&'static str, &'static str) {
        ("rfc2136.sh", "nsupdate, one UPDATE")
    }
    fn provider_table(&self) -> String {
        format!(
            "type = \"rfc2136\"\nzone = \"{ZONE}\"\nserver = \"{}\"\ntsig_key_file = \"{}\"",
            self.proxy.addr(),
            self.bind.key_file().display()
        )
    }
    fn env(&self, c: &mut Command) {
        c.env("SERVER_IP", self.proxy.addr().ip().to_string())
            .env("SERVER_PORT", self.proxy.addr().port().to_string())
            .env("TSIG_KEY_FILE", self.bind.key_file());
    }
    fn counts(&self) -> Counts {
        let s = self.proxy.stats();
        let mut c = Counts::new();
        c.insert("query".into(), s.queries);
        c.insert("UPDATE".into(), s.updates);
        c.insert("AXFR".into(), s.transfers);
        c
    }
    fn published(&self, m: &Machine) -> Result<bool> {
        let a = self.bind.values(&m.host(), "A").contains(&m.ipv4);
        let srv = self
            .bind
            .values(&format!("_v1._theservice._tcp.{ZONE}."), "SRV")
            .contains(&m.srv_line());
        ensure!(
            a == srv,
            "rfc2136: {}: A present {a}, SRV line present {srv}",
            m.id
        );
        Ok(a)
    }
    fn minimum(&self) -> (u64, &'static str) {
        (1, "one UPDATE message")
    }
}

/// The configuration of one machine: its own A record, its line in the SRV
/// rrset, and (for the fleet) its address in the round-robin name `www`.
fn config(target_table: &str, m: &Machine, state: &Path, round_robin: bool, agent: &str) -> String {
    let mut s = format!(
        "[instance]\nmetadata = \"none\"\nid = \"{}\"\nipv4 = \"{}\"\n\n[providers.p]\n{target_table}\n\n\
         [[host]]\nproviders = [\"p\"]\nname = \"{{instance_id}}\"\nttl = 60\n\n\
         [[srv]]\nproviders = [\"p\"]\nname = \"_v1._theservice._tcp\"\nport = {PORT}\ntarget = \"{{instance_id}}\"\nttl = 60\n\n",
        m.id, m.ipv4
    );
    if round_robin {
        s.push_str("[[round_robin]]\nproviders = [\"p\"]\nname = \"www\"\nttl = 60\n\n");
    }
    let _ = write!(s, "[agent]\nstate_dir = \"{}\"\n{agent}", state.display());
    s
}

/// Samples of one command kind.
#[derive(Default)]
struct Samples {
    times: Vec<Duration>,
    requests: Vec<Counts>,
}

impl Samples {
    fn json(&self) -> Json {
        let (median, p95) = summary(&self.times);
        let per_run: Vec<u64> = self.requests.iter().map(total).collect();
        json!({
            "runs": self.times.len(),
            "median_ms": median,
            "p95_ms": p95,
            "requests_median": median_u64(&per_run),
            "requests_min": per_run.iter().min(),
            "requests_max": per_run.iter().max(),
            "requests_first_run": describe(self.requests.first().unwrap_or(&Counts::new())),
        })
    }
}

fn median_u64(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Runs one measured step and checks what it left in the zone.
fn step(
    t: &dyn Target,
    mut c: Command,
    m: &Machine,
    expect_published: bool,
    what: &str,
    into: &mut Samples,
) -> Result<()> {
    t.env(&mut c);
    let before = t.counts();
    let took = run_ok(c, what)?;
    let after = t.counts();
    let published = t.published(m)?;
    ensure!(
        published == expect_published,
        "{what}: exited 0, but the records are {} in the provider",
        if published {
            "still there"
        } else {
            "not there"
        }
    );
    into.times.push(took);
    into.requests.push(delta(&after, &before));
    Ok(())
}

fn latency(o: &Options, t: &dyn Target, group: u8) -> Result<Json> {
    let scratch = Scratch::new(t.name())?;
    let (script, how) = t.baseline();
    let script = o.baselines.join(script);
    let (mut dj, mut dl, mut bj, mut bl) = Default::default();
    for n in 0..o.runs {
        // A new machine each time, so that no run finds another's state.
        let m = Machine::nth(group, n);
        let state = scratch.0.join(format!("state-{n}"));
        let cfg = scratch.0.join(format!("dnsreg-{n}.toml"));
        std::fs::write(&cfg, config(&t.provider_table(), &m, &state, false, ""))?;
        let dnsreg = |action: &str| {
            let mut c = isolated(&o.dnsreg, &scratch.0);
            c.arg("-q").arg("-c").arg(&cfg).arg(action);
            c
        };
        let baseline = |action: &str, m: &Machine| {
            let mut c = isolated(Path::new("bash"), &scratch.0);
            c.arg(&script)
                .arg(action)
                .env("PATH", path_with(&o.aws))
                .env("ZONE", ZONE)
                .env("INSTANCE_ID", &m.id)
                .env("IPV4", &m.ipv4)
                .env("PORT", PORT.to_string());
            c
        };
        let what = |who: &str, action: &str| format!("{} {who} {action} (run {n})", t.name());
        step(
            t,
            dnsreg("join"),
            &m,
            true,
            &what("dnsreg", "join"),
            &mut dj,
        )?;
        step(
            t,
            dnsreg("leave"),
            &m,
            false,
            &what("dnsreg", "leave"),
            &mut dl,
        )?;
        // The baseline publishes a second machine, so that the zone it finds is
        // the same as dnsreg found (dnsreg's leave removed everything of its own).
        let b = Machine::nth(group + 100, n);
        step(
            t,
            baseline("join", &b),
            &b,
            true,
            &what("baseline", "join"),
            &mut bj,
        )?;
        step(
            t,
            baseline("leave", &b),
            &b,
            false,
            &what("baseline", "leave"),
            &mut bl,
        )?;
        eprint!(".");
    }
    eprintln!(" {}", t.name());
    let (min, min_what) = t.minimum();
    Ok(json!({
        "provider": t.name(),
        "baseline": how,
        "dnsreg_join": dj.json(),
        "dnsreg_leave": dl.json(),
        "baseline_join": bj.json(),
        "baseline_leave": bl.json(),
        "minimum_requests": min,
        "minimum_requests_what": min_what,
    }))
}

/// PATH with the directory of `tool` first (the AWS CLI from the bench venv).
fn path_with(tool: &Path) -> String {
    let dir = tool.parent().unwrap_or(Path::new("."));
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

// ---------------------------------------------------------------------------
// Part 3: fleets
// ---------------------------------------------------------------------------

/// A provider and its routing, as a fleet uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    Route53Multivalue,
    Route53Simple,
    Cloudflare,
    Rfc2136,
}

impl Flavor {
    const ALL: [Flavor; 4] = [
        Flavor::Route53Multivalue,
        Flavor::Route53Simple,
        Flavor::Cloudflare,
        Flavor::Rfc2136,
    ];

    fn name(self) -> &'static str {
        match self {
            Flavor::Route53Multivalue => "route53-multivalue",
            Flavor::Route53Simple => "route53-simple",
            Flavor::Cloudflare => "cloudflare",
            Flavor::Rfc2136 => "rfc2136",
        }
    }

    fn parse(s: &str) -> Result<Flavor> {
        Flavor::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .with_context(|| {
                format!(
                    "no provider {s:?} (one of {})",
                    Flavor::ALL.map(Flavor::name).join(", ")
                )
            })
    }

    /// The fewest requests one agent's join (or leave) can take with the
    /// zone id given: one change, except that a shared simple rrset must be
    /// read before its conditional rewrite.
    fn requests_per_change(self) -> f64 {
        match self {
            Flavor::Route53Simple => 2.0,
            _ => 1.0,
        }
    }
}

/// A provider's request limit as a token bucket: what the floor is computed from.
#[derive(Clone, Copy, Debug)]
struct Limit {
    /// "current", "legacy", "cloudflare".
    name: &'static str,
    rate: f64,
    burst: f64,
    source: &'static str,
}

impl Limit {
    fn route53(quota: Quota) -> Limit {
        let legacy = quota == Quota::LEGACY;
        Limit {
            name: if legacy { "legacy" } else { "current" },
            rate: quota.rate,
            burst: quota.burst,
            source: if legacy {
                ROUTE53_LEGACY_SOURCE
            } else {
                ROUTE53_CURRENT_SOURCE
            },
        }
    }

    fn cloudflare() -> Limit {
        let (requests, window) = CLOUDFLARE_RATE_LIMIT;
        Limit {
            name: "cloudflare",
            rate: f64::from(requests) / window.as_secs_f64(),
            burst: f64::from(requests),
            source: CLOUDFLARE_SOURCE,
        }
    }

    /// The least time `requests` requests take: a full bucket's worth at
    /// once, the rest at the refill rate.
    fn floor_secs(&self, requests: f64) -> f64 {
        (requests - self.burst).max(0.0) / self.rate
    }

    fn json(&self) -> Json {
        json!({"name": self.name, "rate_per_second": self.rate, "burst": self.burst, "source": self.source})
    }
}

/// One value in a zone, normalised across providers: absolute lowercase
/// name with the trailing dot, type, value (SRV targets absolute too).
type Rec = (String, String, String);

fn rec(name: &str, rtype: &str, value: &str) -> Rec {
    let mut name = name.to_ascii_lowercase();
    if !name.ends_with('.') {
        name.push('.');
    }
    let mut value = value.to_string();
    if rtype == "SRV" && !value.ends_with('.') {
        value.push('.');
    }
    (name, rtype.to_string(), value)
}

/// A machine's three values: its A record, its address in `www`, its SRV line.
fn values_of(m: &Machine) -> [Rec; 3] {
    [
        rec(&m.host(), "A", &m.ipv4),
        rec(&format!("www.{ZONE}."), "A", &m.ipv4),
        rec(
            &format!("_v1._theservice._tcp.{ZONE}."),
            "SRV",
            &m.srv_line(),
        ),
    ]
}

fn persons_rec() -> Rec {
    rec(&format!("www.{ZONE}."), "A", PERSONS_VALUE)
}

/// Counters of a provider (cumulative; a phase's are the difference).
#[derive(Clone, Debug, Default)]
struct Tally {
    requests: Counts,
    /// Refused by the rate limit (Route53 Throttling, Cloudflare 429).
    throttled: u64,
    prior_request_not_complete: Option<u64>,
    /// Route53 InvalidChangeBatch; Cloudflare answers with success false
    /// other than 429; RFC 2136 UPDATEs whose prerequisites failed (from
    /// named's log).
    conflicts: Option<u64>,
    /// Cloudflare: requests that came while the user was blocked.
    early_retries: Option<u64>,
}

impl Tally {
    fn since(&self, before: &Tally) -> Tally {
        let minus = |a: Option<u64>, b: Option<u64>| a.map(|a| a.saturating_sub(b.unwrap_or(0)));
        Tally {
            requests: delta(&self.requests, &before.requests),
            throttled: self.throttled.saturating_sub(before.throttled),
            prior_request_not_complete: minus(
                self.prior_request_not_complete,
                before.prior_request_not_complete,
            ),
            conflicts: minus(self.conflicts, before.conflicts),
            early_retries: minus(self.early_retries, before.early_retries),
        }
    }

    fn json(&self, n: usize) -> Json {
        let total = total(&self.requests);
        let accepted = total.saturating_sub(self.throttled);
        let n = n.max(1) as f64;
        json!({
            "requests": total,
            "requests_per_agent": total as f64 / n,
            "accepted": accepted,
            "accepted_per_agent": accepted as f64 / n,
            "throttled": self.throttled,
            "throttled_share": if total == 0 { 0.0 } else { self.throttled as f64 / total as f64 },
            "prior_request_not_complete": self.prior_request_not_complete,
            "conflicts": self.conflicts,
            "early_retries": self.early_retries,
            "requests_by_kind": self.requests,
        })
    }
}

/// The provider a fleet runs against, with its zone ready: a person's value
/// in `www`, the limits set.
enum Backend {
    Route53 {
        server: Route53Server,
        zone_id: String,
        quota: Quota,
        multivalue: bool,
    },
    Cloudflare {
        server: CloudflareServer,
        zone_id: String,
    },
    Rfc2136 {
        bind: Bind,
        proxy: DnsProxy,
    },
}

impl Backend {
    /// `quota` is Route53's (ignored elsewhere); `seed` draws PriorRequestNotComplete.
    fn start(flavor: Flavor, quota: Quota, seed: u64) -> Backend {
        match flavor {
            Flavor::Route53Multivalue | Flavor::Route53Simple => {
                let server = Route53Server::start();
                // SigV4 verified as AWS does.
                server.set_credentials(Some(AWS_KEY));
                let zone_id = server.create_zone(ZONE);
                let multivalue = flavor == Flavor::Route53Multivalue;
                let mut persons = RrSet::simple(&format!("www.{ZONE}."), "A", 60, &[PERSONS_VALUE]);
                if multivalue {
                    // Beside multivalue rrsets, a person's value is one too.
                    persons.set_identifier = Some("by-hand".into());
                    persons.multivalue_answer = Some(true);
                }
                server.put_rrset(&zone_id, persons);
                server.set_quota(Some(quota));
                server.set_prior_request_not_complete(PRIOR_REQUEST_SHARE, seed);
                Backend::Route53 {
                    server,
                    zone_id,
                    quota,
                    multivalue,
                }
            }
            Flavor::Cloudflare => {
                let server = CloudflareServer::start();
                server.add_token(CF_TOKEN, true);
                let zone_id = server.create_zone(ZONE);
                server.put_record(
                    &zone_id,
                    DnsRecord::new(&format!("www.{ZONE}"), "A", PERSONS_VALUE, 60),
                );
                server.set_rate_limit(Some(CLOUDFLARE_RATE_LIMIT));
                Backend::Cloudflare { server, zone_id }
            }
            Flavor::Rfc2136 => {
                let bind = Bind::start_with(BindOptions {
                    max_records_per_type: Some(0),
                    ..BindOptions::default()
                });
                check_bind_record_limit(&bind);
                // Counts every message; forwards them unchanged (TSIG stays valid).
                let proxy = DnsProxy::start(bind.addr());
                bind.nsupdate(&format!("update add www.{ZONE}. 60 A {PERSONS_VALUE}"));
                Backend::Rfc2136 { bind, proxy }
            }
        }
    }

    fn limit(&self) -> Option<Limit> {
        match self {
            Backend::Route53 { quota, .. } => Some(Limit::route53(*quota)),
            Backend::Cloudflare { .. } => Some(Limit::cloudflare()),
            Backend::Rfc2136 { .. } => None,
        }
    }

    /// The `[providers.p]` table's body: the zone id given, so that no agent looks it up.
    fn provider_table(&self) -> String {
        match self {
            Backend::Route53 {
                server,
                zone_id,
                multivalue,
                ..
            } => format!(
                "type = \"route53\"\nzone = \"{ZONE}\"\nzone_id = \"{zone_id}\"\nendpoint = \"{}\"\nrouting = \"{}\"",
                server.url(),
                if *multivalue { "multivalue" } else { "simple" }
            ),
            Backend::Cloudflare { server, zone_id } => format!(
                "type = \"cloudflare\"\nzone = \"{ZONE}\"\nzone_id = \"{zone_id}\"\nendpoint = \"{}\"",
                server.url()
            ),
            Backend::Rfc2136 { bind, proxy } => format!(
                "type = \"rfc2136\"\nzone = \"{ZONE}\"\nserver = \"{}\"\ntsig_key_file = \"{}\"",
                proxy.addr(),
                bind.key_file().display()
            ),
        }
    }

    fn env(&self, c: &mut Command) {
        if let Backend::Cloudflare { .. } = self {
            c.env("CLOUDFLARE_API_TOKEN", CF_TOKEN);
        }
    }

    /// Every value in the zone now (SOA and NS aside), or None if it could
    /// not be read this time (BIND busy).
    fn zone(&self) -> Option<HashSet<Rec>> {
        match self {
            Backend::Route53 {
                server, zone_id, ..
            } => Some(
                server
                    .rrsets(zone_id)
                    .into_iter()
                    .filter(|r| r.rtype != "SOA" && r.rtype != "NS")
                    .flat_map(|r| {
                        let (name, rtype) = (r.name, r.rtype);
                        r.records.into_iter().map(move |v| rec(&name, &rtype, &v))
                    })
                    .collect(),
            ),
            Backend::Cloudflare { server, zone_id } => Some(
                server
                    .records(zone_id)
                    .into_iter()
                    .map(|r| rec(&r.name, &r.rtype, &r.content))
                    .collect(),
            ),
            Backend::Rfc2136 { bind, .. } => axfr(bind),
        }
    }

    /// Counters so far.
    fn tally(&self) -> Tally {
        match self {
            Backend::Route53 { server, .. } => {
                let s = server.stats();
                Tally {
                    requests: s.requests.clone(),
                    throttled: s.throttled,
                    prior_request_not_complete: Some(s.prior_request_not_complete),
                    conflicts: Some(s.invalid_change_batch),
                    early_retries: None,
                }
            }
            Backend::Cloudflare { server, .. } => {
                let s = server.stats();
                Tally {
                    requests: s.requests.clone(),
                    throttled: s.rate_limited,
                    prior_request_not_complete: None,
                    conflicts: Some(s.failed.saturating_sub(s.rate_limited)),
                    early_retries: Some(s.early_retries),
                }
            }
            Backend::Rfc2136 { bind, proxy } => {
                let s = proxy.stats();
                let mut requests = Counts::new();
                requests.insert("query".into(), s.queries);
                requests.insert("UPDATE".into(), s.updates);
                requests.insert("AXFR".into(), s.transfers);
                // named logs each refused UPDATE ("update unsuccessful: …:
                // … prerequisite not satisfied (NXRRSET)").
                let refused = bind
                    .log()
                    .lines()
                    .filter(|l| l.contains("prerequisite not satisfied"))
                    .count() as u64;
                Tally {
                    requests,
                    throttled: 0,
                    prior_request_not_complete: None,
                    conflicts: Some(refused),
                    early_retries: None,
                }
            }
        }
    }

    /// Limits as fresh as after a quiet while (a full bucket, an empty
    /// Cloudflare window, no block): each phase starts from there.
    fn fresh_limits(&self) {
        match self {
            Backend::Route53 { server, quota, .. } => server.set_quota(Some(*quota)),
            Backend::Cloudflare { server, .. } => {
                server.set_rate_limit(Some(CLOUDFLARE_RATE_LIMIT))
            }
            Backend::Rfc2136 { .. } => {}
        }
    }
}

/// BIND 9.18.28 and later refuse to make an rrset of more than 100 records
/// (`max-records-per-type`, default 100: ISC's mitigation of CVE-2024-1737),
/// answering SERVFAIL ("too many records"); a round-robin name shared by 200
/// or 1,000 machines needs it raised, as an operator running such a fleet
/// would. The fleets' BIND is started with it lifted; this checks it took.
fn check_bind_record_limit(bind: &Bind) {
    // Proof: an rrset of 101 records goes in (and out again).
    let probe = format!("bench-limit-probe.{ZONE}.");
    let adds: String = (0..101)
        .map(|i| format!("update add {probe} 60 A 10.255.0.{}\n", i + 1))
        .collect();
    if let Err(e) = bind.try_nsupdate(ZONE, &adds) {
        panic!("BIND still refuses an rrset of 101 records after max-records-per-type 0: {e}");
    }
    bind.nsupdate(&format!("update delete {probe} A"));
}

/// The zone from BIND by AXFR (signed with the key), directly (not through
/// the counting proxy); None when dig fails (BIND busy: the sample is skipped).
fn axfr(bind: &Bind) -> Option<HashSet<Rec>> {
    let apex = format!("{ZONE}.");
    let out = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &bind.addr().port().to_string(),
            "+tries=1",
            "+time=5",
            "-k",
        ])
        .arg(bind.key_file())
        .args(["+noall", "+answer", "+onesoa", &apex, "AXFR"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("; Transfer failed") || !text.contains("SOA") {
        return None;
    }
    let ns = format!("ns.{apex}");
    Some(
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() < 5 || l.starts_with(';') {
                    return None;
                }
                let (name, rtype) = (f[0], f[3]);
                if (name == apex && (rtype == "SOA" || rtype == "NS")) || name == ns {
                    return None;
                }
                Some(rec(name, rtype, &f[4..].join(" ")))
            })
            .collect(),
    )
}

/// The zone as lines, sorted, into the scratch directory (kept with BENCH_KEEP).
fn dump_zone(zone: &HashSet<Rec>, path: &Path) {
    let mut lines: Vec<String> = zone
        .iter()
        .map(|(name, rtype, value)| format!("{name} {rtype} {value}\n"))
        .collect();
    lines.sort();
    let _ = std::fs::write(path, lines.concat());
}

/// One `dnsreg run` of a fleet.
struct Agent {
    child: Child,
    status: Option<ExitStatus>,
    log: PathBuf,
}

impl Agent {
    fn running(&self) -> bool {
        self.status.is_none()
    }
}

impl Drop for Agent {
    /// An agent the bench leaves (an error on the way) does not outlive it.
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What the agents need that is the same for each: the binary and the backend.
struct Spawner<'a> {
    o: &'a Options,
    backend: &'a Backend,
    dir: &'a Path,
}

impl Spawner<'_> {
    /// Writes `m`'s configuration (the `[agent]` settings after state_dir,
    /// and anything after them, in `agent`) and starts `dnsreg -c FILE run`,
    /// its stdout and stderr into its own log.
    fn spawn(&self, tag: &str, m: &Machine, agent: &str) -> Result<Agent> {
        let dir = self.dir.join(format!("{tag}-{}", m.id));
        std::fs::create_dir_all(&dir)?;
        let cfg = dir.join("dnsreg.toml");
        std::fs::write(
            &cfg,
            config(
                &self.backend.provider_table(),
                m,
                &dir.join("state"),
                true,
                agent,
            ),
        )?;
        let log_path = dir.join("agent.log");
        let log = std::fs::File::create(&log_path)?;
        let mut c = isolated(&self.o.dnsreg, &dir);
        self.backend.env(&mut c);
        c.arg("-c")
            .arg(&cfg)
            .arg("run")
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = c.spawn().context("start dnsreg run")?;
        Ok(Agent {
            child,
            status: None,
            log: log_path,
        })
    }
}

/// `[agent]` settings of a fleet's agents (after `state_dir`).
fn agent_settings(stop_timeout_secs: u64, join_spread_secs: Option<u64>) -> String {
    let mut s = format!("reconcile_interval = \"300s\"\nstop_timeout = \"{stop_timeout_secs}s\"\n");
    if let Some(j) = join_spread_secs {
        s += &format!("join_spread = \"{j}s\"\n");
    }
    s
}

/// Looks for exits; returns how many agents exited just now.
fn poll(agents: &mut [Agent]) -> Result<usize> {
    let mut exited = 0;
    for a in agents.iter_mut().filter(|a| a.running()) {
        if let Some(s) = a.child.try_wait()? {
            a.status = Some(s);
            exited += 1;
        }
    }
    Ok(exited)
}

/// SIGTERM to the agents still running (our own children, by pid; an
/// agent not yet waited for keeps its pid, so none can be another's).
fn sigterm(agents: &[&Agent]) -> Result<()> {
    let pids: Vec<String> = agents
        .iter()
        .filter(|a| a.running())
        .map(|a| a.child.id().to_string())
        .collect();
    if pids.is_empty() {
        return Ok(());
    }
    let status = Command::new("kill")
        .arg("-TERM")
        .args(&pids)
        .status()
        .context("run kill -TERM")?;
    ensure!(status.success(), "kill -TERM failed: {status}");
    Ok(())
}

/// Kills what still runs (at a deadline) and waits for it; returns how many.
fn kill_rest(agents: &mut [Agent]) -> Result<usize> {
    let mut killed = 0;
    for a in agents.iter_mut().filter(|a| a.running()) {
        let _ = a.child.kill();
        a.status = Some(a.child.wait()?);
        killed += 1;
    }
    Ok(killed)
}

/// CPU seconds this process (the stand-ins, the sampler) used so far.
fn own_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// A phase being watched: the zone sampled every [`SAMPLE_EVERY`], values
/// seen and lost, the counts over time.
struct Watch {
    start: Instant,
    cpu_at_start: f64,
    seen: Vec<[bool; 3]>,
    lost: Vec<[bool; 3]>,
    /// (seconds, machines with all three values) at each change.
    published_series: Vec<(f64, usize)>,
    /// (seconds, machines with any value left) at each change.
    remaining_series: Vec<(f64, usize)>,
    persons_missing: bool,
    samples: usize,
    failed_reads: usize,
    last_sample: Option<Instant>,
    max_gap: Duration,
    last: Option<(usize, usize)>,
    /// Each machine's values at the last sample.
    present: Vec<[bool; 3]>,
}

impl Watch {
    fn new(n: usize, start: Instant) -> Watch {
        Watch {
            start,
            cpu_at_start: own_cpu_secs(),
            seen: vec![[false; 3]; n],
            lost: vec![[false; 3]; n],
            published_series: Vec::new(),
            remaining_series: Vec::new(),
            persons_missing: false,
            samples: 0,
            failed_reads: 0,
            last_sample: None,
            max_gap: Duration::ZERO,
            last: None,
            present: vec![[false; 3]; n],
        }
    }

    /// Looks at the zone once: (machines published, machines with anything
    /// left), or None if it could not be read. A value seen and then gone
    /// while `running[i]` is lost.
    fn sample(
        &mut self,
        backend: &Backend,
        values: &[[Rec; 3]],
        running: &dyn Fn(usize) -> bool,
    ) -> Option<(usize, usize)> {
        let now = Instant::now();
        if let Some(last) = self.last_sample {
            self.max_gap = self.max_gap.max(now - last);
        }
        self.last_sample = Some(now);
        let Some(zone) = backend.zone() else {
            self.failed_reads += 1;
            return None;
        };
        self.samples += 1;
        let t = self.start.elapsed().as_secs_f64();
        self.persons_missing |= !zone.contains(&persons_rec());
        let (mut published, mut remaining) = (0, 0);
        for (i, v) in values.iter().enumerate() {
            let here = [
                zone.contains(&v[0]),
                zone.contains(&v[1]),
                zone.contains(&v[2]),
            ];
            for (k, &is_here) in here.iter().enumerate() {
                if self.seen[i][k] && !is_here && running(i) {
                    self.lost[i][k] = true;
                }
                self.seen[i][k] |= is_here;
            }
            self.present[i] = here;
            published += usize::from(here.iter().all(|b| *b));
            remaining += usize::from(here.iter().any(|b| *b));
        }
        let first = self.last.is_none();
        let (p0, r0) = self.last.unwrap_or((usize::MAX, usize::MAX));
        if first || p0 != published {
            self.published_series.push((t, published));
        }
        if first || r0 != remaining {
            self.remaining_series.push((t, remaining));
        }
        self.last = Some((published, remaining));
        Some((published, remaining))
    }

    fn values_lost(&self) -> usize {
        self.lost.iter().flatten().filter(|b| **b).count()
    }

    /// The series closed with the last count at `t` (so a flat end is drawn).
    fn close(&mut self) {
        let t = self.start.elapsed().as_secs_f64();
        if let Some((p, r)) = self.last {
            self.published_series.push((t, p));
            self.remaining_series.push((t, r));
        }
    }

    fn json(&self) -> Json {
        json!({
            "samples": self.samples,
            "failed_reads": self.failed_reads,
            "max_gap_secs": self.max_gap.as_secs_f64(),
            "bench_cpu_secs": own_cpu_secs() - self.cpu_at_start,
        })
    }
}

fn series(s: &[(f64, usize)]) -> Json {
    Json::Array(
        s.iter()
            .map(|(t, c)| json!([(t * 1000.0).round() / 1000.0, c]))
            .collect(),
    )
}

/// Waits `SAMPLE_EVERY` less what the sample took.
fn pace(since: Instant) {
    if let Some(rest) = SAMPLE_EVERY.checked_sub(since.elapsed()) {
        std::thread::sleep(rest);
    }
}

/// Error lines the agents logged in a phase (between log offsets), by kind:
/// how many agents logged each kind, with one example line.
fn agent_errors(agents: &[Agent], from: &[u64], to: Option<&[u64]>) -> (usize, Json) {
    agent_lines(agents, from, to, false)
}

/// The same with the warnings too (` WARN ` lines).
fn agent_lines(
    agents: &[Agent],
    from: &[u64],
    to: Option<&[u64]>,
    warnings: bool,
) -> (usize, Json) {
    let mut kinds: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut agents_with = 0;
    for (i, a) in agents.iter().enumerate() {
        let bytes = std::fs::read(&a.log).unwrap_or_default();
        let start = (from[i] as usize).min(bytes.len());
        let end = to.map_or(bytes.len(), |t| (t[i] as usize).clamp(start, bytes.len()));
        let text = String::from_utf8_lossy(&bytes[start..end]);
        let mut mine = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with("dnsreg: ")
                || line.contains(" ERROR ")
                || (warnings && line.contains(" WARN "))
            {
                mine.insert(error_kind(line), line.to_string());
            }
        }
        agents_with += usize::from(!mine.is_empty());
        for (kind, line) in mine {
            kinds.entry(kind).or_insert((0, line)).0 += 1;
        }
    }
    let mut list: Vec<(usize, String)> = kinds.into_values().collect();
    list.sort_by_key(|e| std::cmp::Reverse(e.0));
    let json = list
        .iter()
        .take(5)
        .map(|(agents, example)| json!({"agents": agents, "example": example}))
        .collect();
    (agents_with, Json::Array(json))
}

/// An error line without its timestamp, numbers and instance names: what it says.
fn error_kind(line: &str) -> String {
    let text = match (line.find(" ERROR "), line.find(" WARN ")) {
        (Some(i), _) => &line[i + 7..],
        (None, Some(i)) => &line[i + 6..],
        _ => line,
    };
    let mut kind = String::new();
    let mut digits = false;
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            if !digits {
                kind.push('#');
            }
            digits = true;
        } else {
            kind.push(ch);
            digits = false;
        }
    }
    kind
}

fn log_offsets(agents: &[Agent]) -> Vec<u64> {
    agents
        .iter()
        .map(|a| std::fs::metadata(&a.log).map_or(0, |m| m.len()))
        .collect()
}

/// The `stop_timeout` README tells an operator to give a fleet: 1.3 × the
/// leave floor, and twice it for Route53 simple routing, whose leaves each
/// take an announcement, a look and a share of the carrying writes; rounded
/// up, at least 20 s.
fn stop_timeout_for(limit: Option<&Limit>, flavor: Flavor, n: usize, factor: Option<f64>) -> u64 {
    let floor = limit.map_or(0.0, |l| {
        l.floor_secs(n as f64 * flavor.requests_per_change())
    });
    let factor = factor.unwrap_or(if flavor == Flavor::Route53Simple {
        2.0
    } else {
        1.3
    });
    ((floor * factor).ceil() as u64).max(MIN_STOP_TIMEOUT_SECS)
}

/// One fleet: N agents started together, all published, then SIGTERM to all.
/// With `spread`, the agents' `[agent] join_spread` is what README tells an
/// operator to set: the fleet's requests at the provider's rate, N × R_min / rate.
fn fleet(o: &Options, flavor: Flavor, quota: Quota, n: usize, spread: bool) -> Result<Json> {
    let deadline = o.fleet_deadline;
    let seed = 0x00be_7c4e_u64 ^ ((n as u64) << 8) ^ (flavor as u64);
    let backend = Backend::start(flavor, quota, seed);
    let limit = backend.limit();
    let scratch = Scratch::new(&format!("fleet-{}-{n}", flavor.name()))?;
    let stop_timeout = stop_timeout_for(limit.as_ref(), flavor, n, o.stop_factor);
    let floor = limit
        .as_ref()
        .map(|l| l.floor_secs(n as f64 * flavor.requests_per_change()));
    let machines: Vec<Machine> = (0..n).map(|i| Machine::nth(50, i)).collect();
    let values: Vec<[Rec; 3]> = machines.iter().map(values_of).collect();
    let spawner = Spawner {
        o,
        backend: &backend,
        dir: &scratch.0,
    };
    let zone_before = backend.zone().context("read the zone before the fleet")?;
    let join_spread = limit
        .as_ref()
        .filter(|_| spread)
        .map(|l| (n as f64 * flavor.requests_per_change() / l.rate).ceil() as u64);
    let settings = agent_settings(stop_timeout, join_spread);

    // Join: all at once.
    let tally0 = backend.tally();
    let start = Instant::now();
    let mut agents = Vec::with_capacity(n);
    for m in &machines {
        agents.push(spawner.spawn("agent", m, &settings)?);
    }
    let spawned_in = start.elapsed().as_secs_f64();
    let mut watch = Watch::new(n, start);
    watch.published_series.push((0.0, 0));
    let mut joined = None;
    let mut published = 0;
    loop {
        let t = Instant::now();
        poll(&mut agents)?;
        let running: Vec<bool> = agents.iter().map(Agent::running).collect();
        if let Some((p, _)) = watch.sample(&backend, &values, &|i| running[i]) {
            published = p;
            if p == n {
                joined = Some(start.elapsed());
                break;
            }
        }
        if agents.iter().all(|a| !a.running()) || start.elapsed() > deadline {
            break;
        }
        pace(t);
    }
    watch.close();
    let join_tally = backend.tally().since(&tally0);
    let exited_in_join = agents.iter().filter(|a| !a.running()).count();
    let offsets = log_offsets(&agents);
    let (join_error_agents, join_errors) = agent_errors(&agents, &vec![0; n], Some(&offsets));
    let join_secs = joined.map(|d| d.as_secs_f64());
    eprintln!(
        "  join: {} ({published} of {n} published), {:.1} requests per agent, {} throttled",
        join_secs.map_or(format!("not within {}s", deadline.as_secs()), |s| format!(
            "{s:.1}s"
        )),
        total(&join_tally.requests) as f64 / n as f64,
        join_tally.throttled
    );

    // Leave: SIGTERM to every agent at once, as a scale-in of the whole fleet,
    // the provider's limits as after a quiet while; over when all exited and
    // nothing of theirs is left (or all exited, or at the deadline).
    backend.fresh_limits();
    let tally1 = backend.tally();
    let refs: Vec<&Agent> = agents.iter().collect();
    sigterm(&refs)?;
    let start = Instant::now();
    let mut leave_watch = Watch::new(n, start);
    leave_watch.remaining_series.push((0.0, n));
    let mut removed = None;
    let mut remaining = n;
    let mut exited_at = None;
    loop {
        let t = Instant::now();
        poll(&mut agents)?;
        if let Some((_, r)) = leave_watch.sample(&backend, &values, &|_| false) {
            remaining = r;
            if r == 0 && removed.is_none() {
                removed = Some(start.elapsed());
            }
        }
        let all_exited = agents.iter().all(|a| !a.running());
        if all_exited && exited_at.is_none() {
            exited_at = Some(start.elapsed());
        }
        // All had exited before the look at the zone above: it says what they left.
        if all_exited || start.elapsed() > deadline {
            break;
        }
        pace(t);
    }
    leave_watch.close();
    let leave_tally = backend.tally().since(&tally1);
    let killed = kill_rest(&mut agents)?;
    let exited_nonzero = agents
        .iter()
        .filter(|a| a.status.is_some_and(|s| !s.success()))
        .count();
    let (leave_error_agents, leave_errors) = agent_errors(&agents, &offsets, None);
    let zone_after = backend.zone().context("read the zone after the fleet")?;
    dump_zone(&zone_after, &scratch.0.join("zone-after.txt"));
    let values_left: usize = values
        .iter()
        .flatten()
        .filter(|v| zone_after.contains(v))
        .count();
    let agents_left_behind = values
        .iter()
        .filter(|v| v.iter().any(|r| zone_after.contains(r)))
        .count();
    let exited_zero_with_values_left = agents
        .iter()
        .zip(&values)
        .filter(|(a, v)| {
            a.status.is_some_and(|s| s.success()) && v.iter().any(|r| zone_after.contains(r))
        })
        .count();
    // An agent that took one of its own values for someone else's.
    let own_left_alone = agents
        .iter()
        .zip(&machines)
        .filter(|(a, m)| {
            std::fs::read_to_string(&a.log).is_ok_and(|log| {
                log.lines().any(|l| {
                    l.contains("put there by someone else: left alone")
                        && (l.contains(&format!("{}.", m.id))
                            || l.contains(&format!(" {}", m.ipv4)))
                })
            })
        })
        .count();
    let fleet_values: HashSet<&Rec> = values.iter().flatten().collect();
    let other_left: Vec<String> = zone_after
        .difference(&zone_before)
        .filter(|r| !fleet_values.contains(r))
        .map(|(name, rtype, value)| format!("{name} {rtype} {value}"))
        .collect();
    let persons_kept = !watch.persons_missing
        && !leave_watch.persons_missing
        && zone_after.contains(&persons_rec());
    let leave_secs = removed.map(|d| d.as_secs_f64());
    eprintln!(
        "  leave: {} ({remaining} of {n} with values left), {:.1} requests per agent, {exited_nonzero} exited non-zero",
        match (leave_secs, exited_at) {
            (Some(s), _) => format!("{s:.1}s"),
            (None, Some(e)) => format!("never (all exited after {:.1}s)", e.as_secs_f64()),
            (None, None) => format!("not within {}s", deadline.as_secs()),
        },
        total(&leave_tally.requests) as f64 / n as f64,
    );
    let ratio = |secs: Option<f64>| match (secs, floor) {
        (Some(s), Some(f)) if f > 0.0 => Some(s / f),
        _ => None,
    };
    let mut join = join_tally.json(n);
    let extra = json!({
        "secs": join_secs,
        "floor_ratio": ratio(join_secs),
        "published": published,
        "values_lost": watch.values_lost(),
        "agents_exited": exited_in_join,
        "agents_with_errors": join_error_agents,
        "errors": join_errors,
        "spawned_in_secs": spawned_in,
        "sampling": watch.json(),
        "series": series(&watch.published_series),
    });
    merge(&mut join, extra);
    let mut leave = leave_tally.json(n);
    merge(
        &mut leave,
        json!({
            "secs": leave_secs,
            "floor_ratio": ratio(leave_secs),
            "all_exited_secs": exited_at.map(|d| d.as_secs_f64()),
            "exited_nonzero": exited_nonzero,
            "killed_at_deadline": killed,
            "values_left": values_left,
            "exited_zero_with_values_left": exited_zero_with_values_left,
            "own_values_taken_for_foreign": own_left_alone,
            "agents_left_behind": agents_left_behind,
            "other_records_left": other_left,
            "persons_value_kept": persons_kept,
            "agents_with_errors": leave_error_agents,
            "errors": leave_errors,
            "sampling": leave_watch.json(),
            "series": series(&leave_watch.remaining_series),
        }),
    );
    Ok(json!({
        "provider": flavor.name(),
        "limit": limit.map(|l| l.json()),
        "n": n,
        "deadline_secs": deadline.as_secs(),
        "stop_timeout_secs": stop_timeout,
        "stop_factor": o.stop_factor,
        "join_spread_secs": join_spread,
        "requests_per_change_min": flavor.requests_per_change(),
        "floor_secs": floor,
        "prior_request_not_complete_seed": matches!(backend, Backend::Route53 { .. }).then_some(seed),
        "join": join,
        "leave": leave,
    }))
}

fn merge(into: &mut Json, from: Json) {
    if let (Some(a), Json::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

/// A fleet size route53-simple does not run, and why.
fn simple_skipped(n: usize, max: usize) -> Json {
    json!({
        "provider": Flavor::Route53Simple.name(),
        "n": n,
        "skipped": format!(
            "not run above N = {max}: every agent rewrites the shared rrsets whole (a DELETE of the n values \
             there and a CREATE of n + 1), 2n + 1 ResourceRecord elements in one batch, and Route53 refuses a \
             batch of more than 1,000 ({ROUTE53_BATCH_SOURCE}), so `www` cannot hold 500 or more values that way; \
             use routing = \"multivalue\" for such a fleet"
        ),
    })
}

/// The short-stop scenario: N agents with a lease stopped with a stop_timeout
/// well under the leave floor, and 3 survivors (started first, reap = true)
/// that remove what the N left once their leases ran out.
fn reap(o: &Options, n: usize) -> Result<Json> {
    const SURVIVORS: usize = 3;
    const LEASE: &str = "[lease]\nttl = \"60s\"\n";
    let deadline = o.fleet_deadline;
    let flavor = Flavor::Route53Multivalue;
    let seed = 0x00be_7c4e_u64 ^ 0x4ea9 ^ ((n as u64) << 8);
    let backend = Backend::start(flavor, Quota::CURRENT, seed);
    let limit = backend.limit().expect("route53 has a limit");
    let floor = limit.floor_secs(n as f64);
    let scratch = Scratch::new(&format!("reap-{n}"))?;
    let spawner = Spawner {
        o,
        backend: &backend,
        dir: &scratch.0,
    };
    let survivors_m: Vec<Machine> = (0..SURVIVORS).map(|i| Machine::nth(71, i)).collect();
    let fleet_m: Vec<Machine> = (0..n).map(|i| Machine::nth(70, i)).collect();
    let all_values: Vec<[Rec; 3]> = fleet_m.iter().chain(&survivors_m).map(values_of).collect();

    // The survivors first, published before the fleet starts.
    let survivor_settings = format!(
        "{}\n{LEASE}reap = true\n",
        agent_settings(MIN_STOP_TIMEOUT_SECS, None)
    );
    let mut survivors = Vec::new();
    for m in &survivors_m {
        survivors.push(spawner.spawn("survivor", m, &survivor_settings)?);
    }
    let survivor_values = &all_values[n..];
    let start = Instant::now();
    let mut w = Watch::new(SURVIVORS, start);
    loop {
        let t = Instant::now();
        poll(&mut survivors)?;
        if w.sample(&backend, survivor_values, &|_| true)
            .is_some_and(|(p, _)| p == SURVIVORS)
        {
            break;
        }
        ensure!(
            survivors.iter().all(Agent::running),
            "reap: a survivor exited before it published (see its log under {})",
            scratch.0.display()
        );
        ensure!(
            start.elapsed() < deadline,
            "reap: the survivors did not publish within {deadline:?}"
        );
        pace(t);
    }

    // The fleet: published, then SIGTERM with a 5 s stop_timeout.
    let fleet_settings = format!("reconcile_interval = \"300s\"\nstop_timeout = \"5s\"\n\n{LEASE}");
    let start = Instant::now();
    let mut agents = Vec::with_capacity(n);
    for m in &fleet_m {
        agents.push(spawner.spawn("agent", m, &fleet_settings)?);
    }
    let mut watch = Watch::new(n + SURVIVORS, start);
    let mut joined = None;
    loop {
        let t = Instant::now();
        poll(&mut agents)?;
        poll(&mut survivors)?;
        let running: Vec<bool> = agents
            .iter()
            .chain(&survivors)
            .map(Agent::running)
            .collect();
        if watch
            .sample(&backend, &all_values, &|i| running[i])
            .is_some_and(|(p, _)| p == n + SURVIVORS)
        {
            joined = Some(start.elapsed().as_secs_f64());
            break;
        }
        if agents.iter().all(|a| !a.running()) || start.elapsed() > deadline {
            break;
        }
        pace(t);
    }
    let offsets = log_offsets(&agents);
    eprintln!(
        "  join: {}",
        joined.map_or(format!("not within {}s", deadline.as_secs()), |s| format!(
            "{s:.1}s"
        ))
    );

    backend.fresh_limits();
    let tally0 = backend.tally();
    let refs: Vec<&Agent> = agents.iter().collect();
    sigterm(&refs)?;
    let start = Instant::now();
    // Reaping is due within a lease and two reconciles of the survivors (plus
    // the removals at the rate): wait four leases, then it is a miss.
    let reap_deadline = deadline.min(Duration::from_secs(240));
    // The survivors' values must stay throughout: the fleet's are expected to go.
    let mut w = Watch::new(n + SURVIVORS, start);
    w.remaining_series.push((0.0, n + SURVIVORS));
    let mut exited_at = None;
    let mut left_at_exit = None;
    let mut reaped = None;
    loop {
        let t = Instant::now();
        poll(&mut agents)?;
        poll(&mut survivors)?;
        let sample = w.sample(&backend, &all_values, &|i| i >= n);
        if exited_at.is_none() && agents.iter().all(|a| !a.running()) {
            exited_at = Some(start.elapsed().as_secs_f64());
        }
        if sample.is_some() && exited_at.is_some() {
            let fleet_present = &w.present[..n];
            if left_at_exit.is_none() {
                let values: usize = fleet_present.iter().flatten().filter(|b| **b).count();
                let machines = fleet_present
                    .iter()
                    .filter(|v| v.iter().any(|b| *b))
                    .count();
                left_at_exit = Some((values, machines));
                eprintln!(
                    "  the {n} exited after {:.1}s, leaving {values} values of {machines} agents",
                    start.elapsed().as_secs_f64()
                );
            }
            if !fleet_present.iter().flatten().any(|b| *b) {
                reaped = Some(start.elapsed().as_secs_f64());
                break;
            }
        }
        if start.elapsed() > reap_deadline {
            break;
        }
        pace(t);
    }
    w.close();
    let tally = backend.tally().since(&tally0);
    let killed = kill_rest(&mut agents)?;
    let exited_nonzero = agents
        .iter()
        .filter(|a| a.status.is_some_and(|s| !s.success()))
        .count();
    let (stop_error_agents, stop_errors) = agent_errors(&agents, &offsets, None);
    eprintln!(
        "  reaped after {}",
        reaped.map_or(format!("not within {}s", deadline.as_secs()), |s| format!(
            "{s:.1}s"
        ))
    );

    // Then the survivors stop, and take theirs out.
    let survivors_running = survivors.iter().filter(|a| a.running()).count();
    let refs: Vec<&Agent> = survivors.iter().collect();
    sigterm(&refs)?;
    let stop = Instant::now();
    while survivors.iter().any(Agent::running) && stop.elapsed() < Duration::from_secs(120) {
        poll(&mut survivors)?;
        std::thread::sleep(SAMPLE_EVERY);
    }
    let survivors_killed = kill_rest(&mut survivors)?;
    let (survivor_error_agents, survivor_errors) =
        agent_lines(&survivors, &[0; SURVIVORS], None, true);
    let survivors_failed = survivors
        .iter()
        .filter(|a| a.status.is_some_and(|s| !s.success()))
        .count();
    let zone_after = backend.zone().context("read the zone after the fleet")?;
    dump_zone(&zone_after, &scratch.0.join("zone-after.txt"));
    let left_after = all_values
        .iter()
        .flatten()
        .filter(|v| zone_after.contains(v))
        .count();
    // What is left is a finding: one plain `dnsreg reap` (the first
    // survivor's configuration), the account to itself, says whether reaping
    // can take it out at all, and what it says about it.
    let one_shot = if left_after > 0 {
        backend.fresh_limits();
        let cfg = scratch
            .0
            .join(format!("survivor-{}", survivors_m[0].id))
            .join("dnsreg.toml");
        let mut c = isolated(Path::new("timeout"), &scratch.0);
        c.arg("180").arg(&o.dnsreg).arg("-c").arg(&cfg).arg("reap");
        let started = Instant::now();
        let out = c.output().context("run dnsreg reap")?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let zone = backend.zone().context("read the zone after dnsreg reap")?;
        dump_zone(&zone, &scratch.0.join("zone-after-reap.txt"));
        let lines: Vec<&str> = text.lines().collect();
        json!({
            "exit": out.status.code(),
            "secs": started.elapsed().as_secs_f64(),
            "reaped_instances": lines.iter().filter(|l| l.contains(": reaped ")).count(),
            "values_left": all_values.iter().flatten().filter(|v| zone.contains(v)).count(),
            "registries_left": zone.iter().filter(|r| r.0.contains("._dnsreg.")).map(|r| &r.0).collect::<HashSet<_>>().len(),
            "output_head": lines.iter().take(12).collect::<Vec<_>>(),
        })
    } else {
        Json::Null
    };
    let persons_kept =
        !watch.persons_missing && !w.persons_missing && zone_after.contains(&persons_rec());
    let survivors_lost: usize = w.lost[n..].iter().flatten().filter(|b| **b).count()
        + watch.lost[n..].iter().flatten().filter(|b| **b).count();
    Ok(json!({
        "provider": flavor.name(),
        "limit": limit.json(),
        "n": n,
        "survivors": SURVIVORS,
        "stop_timeout_secs": 5,
        "lease_ttl_secs": 60,
        "leave_floor_secs": floor,
        "deadline_secs": deadline.as_secs(),
        "join_secs": joined,
        "join_values_lost": watch.values_lost(),
        "all_exited_secs": exited_at,
        "exited_nonzero": exited_nonzero,
        "killed_at_deadline": killed,
        "values_left_at_exit": left_at_exit.map(|v| v.0),
        "agents_left_at_exit": left_at_exit.map(|v| v.1),
        "reaped_secs": reaped,
        "reap_deadline_secs": reap_deadline.as_secs(),
        "stop_errors": stop_errors,
        "survivor_errors": survivor_errors,
        "survivors_with_errors": survivor_error_agents,
        "agents_with_stop_errors": stop_error_agents,
        "survivors_values_lost": survivors_lost,
        "survivors_running_at_end": survivors_running,
        "survivors_exited_nonzero": survivors_failed,
        "survivors_killed": survivors_killed,
        "values_left_after_survivors_stopped": left_after,
        "registries_left_after_survivors_stopped": zone_after
            .iter()
            .filter(|r| r.0.contains("._dnsreg."))
            .map(|r| &r.0)
            .collect::<HashSet<_>>()
            .len(),
        "one_shot_reap_after": one_shot,
        "machines_left_after_survivors_stopped": fleet_m
            .iter()
            .zip(&all_values)
            .filter(|(_, v)| v.iter().any(|r| zone_after.contains(r)))
            .map(|(m, _)| m.id.clone())
            .collect::<Vec<_>>(),
        "other_records_left": zone_after
            .iter()
            .filter(|r| !all_values.iter().flatten().any(|v| v == *r) && **r != persons_rec())
            .map(|(name, rtype, value)| format!("{name} {rtype} {value}"))
            .collect::<Vec<_>>(),
        "persons_value_kept": persons_kept,
        "after_sigterm": tally.json(n),
        "series": series(&w.remaining_series),
    }))
}

/// The same N joins done the baseline's way, all at once, on the same
/// Route53 stand-in as the route53-simple fleets (today's quota, 5 %
/// PriorRequestNotComplete, SigV4).
fn baseline_fleet(o: &Options, n: usize) -> Result<Json> {
    let scratch = Scratch::new(&format!("baseline-fleet-{n}"))?;
    let backend = Backend::start(
        Flavor::Route53Simple,
        Quota::CURRENT,
        0x00ba_5e00 ^ n as u64,
    );
    let Backend::Route53 {
        server, zone_id, ..
    } = &backend
    else {
        unreachable!("started as route53")
    };
    let machines: Vec<Machine> = (0..n).map(|i| Machine::nth(60, i)).collect();
    let values: Vec<[Rec; 3]> = machines.iter().map(values_of).collect();
    let start = Instant::now();
    let mut children = Vec::new();
    for (i, m) in machines.iter().enumerate() {
        let dir = scratch.0.join(format!("cli-{i}"));
        std::fs::create_dir_all(&dir)?;
        let mut c = isolated(Path::new("bash"), &dir);
        c.arg(o.baselines.join("route53.sh"))
            .arg("join")
            .env("PATH", path_with(&o.aws))
            .env("ZONE", ZONE)
            .env("ZONE_ID", zone_id)
            .env("AWS_ENDPOINT_URL_ROUTE_53", server.url())
            .env("INSTANCE_ID", &m.id)
            .env("IPV4", &m.ipv4)
            .env("RR_NAME", "www")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("cli.log"))?);
        children.push(Agent {
            child: c.spawn().context("start the AWS CLI baseline")?,
            status: None,
            log: dir.join("cli.log"),
        });
    }
    let mut watch = Watch::new(n, start);
    watch.published_series.push((0.0, 0));
    loop {
        let t = Instant::now();
        poll(&mut children)?;
        let running: Vec<bool> = children.iter().map(Agent::running).collect();
        watch.sample(&backend, &values, &|i| running[i]);
        if children.iter().all(|a| !a.running()) || start.elapsed() > o.fleet_deadline {
            break;
        }
        pace(t);
    }
    watch.close();
    let secs = start.elapsed().as_secs_f64();
    kill_rest(&mut children)?;
    let failed = children
        .iter()
        .filter(|a| a.status.is_some_and(|s| !s.success()))
        .count();
    let tally = backend.tally();
    let zone = backend.zone().context("read the zone")?;
    let www_kept = values.iter().filter(|v| zone.contains(&v[1])).count();
    let srv_kept = values.iter().filter(|v| zone.contains(&v[2])).count();
    let published = values
        .iter()
        .filter(|v| v.iter().all(|r| zone.contains(r)))
        .count();
    let mut r = tally.json(n);
    merge(
        &mut r,
        json!({
            "n": n,
            "secs": secs,
            "failed_exits": failed,
            "published": published,
            "www_values_kept": www_kept,
            "srv_lines_kept": srv_kept,
            "lost": (n - www_kept) + (n - srv_kept),
            "values_lost_while_running": watch.values_lost(),
            "persons_value_kept": !watch.persons_missing && zone.contains(&persons_rec()),
            "series": series(&watch.published_series),
        }),
    );
    Ok(r)
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

fn num(v: &Json) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn latency_markdown(r: &Json, s: &mut String) {
    let _ = writeln!(
        s,
        "### Join and leave: process start → the provider confirms ({} runs each)\n",
        r["runs"]
    );
    s.push_str(
        "| provider | step | dnsreg median / p95 | baseline median / p95 | baseline ÷ dnsreg (median) | requests dnsreg | requests baseline | minimum |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for p in r["latency"].as_array().into_iter().flatten() {
        for step in ["join", "leave"] {
            let d = &p[format!("dnsreg_{step}")];
            let b = &p[format!("baseline_{step}")];
            let _ = writeln!(
                s,
                "| {} ({}) | {step} | {:.0} / {:.0} ms | {:.0} / {:.0} ms | {:.1}× | {} | {} | {} |",
                p["provider"].as_str().unwrap_or(""),
                p["baseline"].as_str().unwrap_or(""),
                num(&d["median_ms"]),
                num(&d["p95_ms"]),
                num(&b["median_ms"]),
                num(&b["p95_ms"]),
                num(&b["median_ms"]) / num(&d["median_ms"]),
                d["requests_median"],
                b["requests_median"],
                p["minimum_requests"],
            );
        }
    }
    let _ = writeln!(
        s,
        "\nEach step publishes (or removes) one machine's A record and its line in a shared SRV rrset. \
         dnsreg's change is conditional on what it read of the rrsets it shares, or on the provider's own atomic checks, \
         so no other machine's value is lost, and it writes its ownership registry in the same change; \
         the one-shot commands wait until Route53 reports the change INSYNC (the stand-in does {} ms after a change). \
         The baselines write blind: the AWS CLI UPSERTs whole rrsets (another machine's SRV line would be replaced; \
         its leave, a DELETE naming one line, is refused once others share the rrset) and is given the zone id; \
         curl posts one record per call, not atomically; nsupdate sends one UPDATE without prerequisites. \
         None keeps a record of what it published. \"minimum\" is the fewest requests that can make the change.",
        r["route53_insync_after_ms"]
    );
    s.push_str("\nRequests per step, first run (counted by the stand-ins; RFC 2136 by a proxy in front of BIND):\n\n");
    for p in r["latency"].as_array().into_iter().flatten() {
        for who in ["dnsreg", "baseline"] {
            for step in ["join", "leave"] {
                let _ = writeln!(
                    s,
                    "- {} {who} {step}: {}",
                    p["provider"].as_str().unwrap_or(""),
                    p[format!("{who}_{step}")]["requests_first_run"]
                        .as_str()
                        .unwrap_or("")
                );
            }
        }
        let _ = writeln!(
            s,
            "- {} minimum: {}",
            p["provider"].as_str().unwrap_or(""),
            p["minimum_requests_what"].as_str().unwrap_or("")
        );
    }
}

fn footprint_markdown(r: &Json, s: &mut String) {
    let fp = &r["footprint"];
    s.push_str("\n### Footprint\n\n");
    let _ = writeln!(
        s,
        "| binary size | idle resident memory (anonymous + file-backed) | CPU over {} s idle | threads |\n|---|---|---|---|",
        fp["window_s"]
            .as_f64()
            .map_or("?".into(), |w| format!("{w:.0}"))
    );
    if fp.is_object() {
        let kib = |k: &str| num(&fp[k]) / 1024.0;
        let _ = writeln!(
            s,
            "| {:.1} MiB | {:.1} MiB ({:.1} + {:.1}) | {} ms ({:.3} % of one core) | {} |",
            num(&fp["binary_bytes"]) / 1048576.0,
            kib("rss_kib"),
            kib("rss_anon_kib"),
            kib("rss_file_kib"),
            fp["cpu_ms"],
            num(&fp["cpu_ms"]) / (num(&fp["window_s"]) * 10.0),
            fp["threads"],
        );
    } else {
        let _ = writeln!(
            s,
            "| {:.1} MiB | not measured | | |",
            num(&r["binary_bytes"]) / 1048576.0
        );
    }
    if let Some(b) = r["baseline_install_kib"].as_f64() {
        let _ = writeln!(
            s,
            "\nFor comparison, the AWS CLI v1 (awscli + botocore and their dependencies in a venv) takes {:.0} MiB on disk.",
            b / 1024.0
        );
    }
}

/// A number as a person writes it: 10, 1200, 0.25.
fn fmt_num(v: &Json) -> String {
    match v.as_f64() {
        Some(x) if x.fract() == 0.0 => format!("{x:.0}"),
        Some(x) => format!("{x}"),
        None => "?".into(),
    }
}

/// "12.3 s", or what there was at the deadline (or when all had exited).
fn phase_secs(p: &Json, deadline: &Json, done_key: &str, n: &Json) -> String {
    if let (None, Some(exited)) = (p["secs"].as_f64(), p["all_exited_secs"].as_f64()) {
        return format!(
            "never: {} agents' values left when all had exited ({exited:.1} s)",
            p["agents_left_behind"]
        );
    }
    match p["secs"].as_f64() {
        Some(s) => format!("{s:.1} s"),
        None => match p[done_key].as_u64() {
            Some(k) => format!("not within {deadline} s ({k} of {n})"),
            None => format!("not within {deadline} s"),
        },
    }
}

/// "2.1× of 15.0 s", "– (floor 0 s)", "–".
fn floor_cell(p: &Json, floor: &Json) -> String {
    match (p["floor_ratio"].as_f64(), floor.as_f64()) {
        (Some(r), Some(f)) => format!("{r:.1}× of {f:.1} s"),
        (None, Some(f)) if f <= 0.0 => "– (floor 0)".into(),
        (None, Some(f)) => format!("– (floor {f:.1} s)"),
        _ => "–".into(),
    }
}

fn per_agent(p: &Json) -> String {
    format!(
        "{:.2} ({:.2})",
        num(&p["requests_per_agent"]),
        num(&p["accepted_per_agent"])
    )
}

fn share(p: &Json) -> String {
    format!("{:.0} %", num(&p["throttled_share"]) * 100.0)
}

fn opt(v: &Json) -> String {
    if v.is_null() {
        "–".into()
    } else {
        v.to_string()
    }
}

fn left_behind(l: &Json) -> String {
    let values = l["values_left"].as_u64().unwrap_or(0);
    let other = l["other_records_left"].as_array().map_or(0, Vec::len);
    let mut s = if values == 0 {
        "0".to_string()
    } else {
        format!("{values} values of {} agents", l["agents_left_behind"])
    };
    if other > 0 {
        let _ = write!(s, " + {other} other records");
    }
    s
}

fn kept(v: &Json) -> &'static str {
    if *v == Json::Bool(true) {
        "kept"
    } else {
        "TOUCHED"
    }
}

/// The fleet section: one table per provider, the short stop, the baseline,
/// and plainly what misses.
fn fleet_markdown(r: &Json, s: &mut String) {
    let fleets: Vec<&Json> = r["fleet"].as_array().into_iter().flatten().collect();
    let reap = r["reap"].as_array().cloned().unwrap_or_default();
    let bf = r["baseline_fleet"].as_array().cloned().unwrap_or_default();
    if fleets.is_empty() && reap.is_empty() && bf.is_empty() {
        return;
    }
    let q = &r["quotas"];
    let _ = writeln!(
        s,
        "\n### Fleets: N agents started together, then stopped together\n\n\
         Each agent is `dnsreg run` with its own configuration and state directory (`[instance] metadata = \"none\"`, \
         its own instance id and address) and publishes its A record (`{{instance_id}}`), its address in the round-robin \
         name `www` and its line in the SRV rrset `_v1._theservice._tcp`; `www` also holds a value a person put there, \
         which must survive everything. The agents are given the zone id (no agent looks the zone up), \
         `reconcile_interval = \"300s\"` and a `stop_timeout` of 1.3 × the leave floor (twice it for Route53 simple routing; at least 20 s). \
         **Join**: all N started at once; the zone is read every {} ms; *all published* is the time until every agent's \
         three values are there; a value seen and then gone while its agent runs is *lost*. \
         **Leave** (scale-in): SIGTERM to all at once, with the provider's limits as after a quiet while (a full bucket, \
         an empty window); *all removed* is the time until no value of theirs is left; *left behind* is what is there \
         once all have exited. Rows marked *join_spread* set `[agent] join_spread` to N × R_min / rate, as README \
         tells an operator who knows how many machines may start at once: each agent's first join waits a random \
         while up to it, and at the stop its first throttled retry is spread over it too.\n\n\
         Limits, as documented: Route53 {} requests/s with a burst of {} ({}); PriorRequestNotComplete {} ({}); \
         every request's SigV4 signature verified. Legacy rows: {} requests/s, burst {} ({}). \
         Cloudflare {} requests per {} s per user ({}). BIND (RFC 2136): no rate limit; {}.\n\n\
         **Floor**: the least time the fleet's requests can take, `max(0, N × R_min − burst) / rate`, \
         with R_min = 1 request per join and per leave (one change, the zone id known), and 2 for Route53 simple routing \
         (a read of the shared rrsets, then their conditional rewrite). Where the whole fleet fits in the burst \
         (Cloudflare up to 1,200 agents, Route53 up to 50) the floor is 0: the ratio is \"–\" and the time stands alone; \
         BIND has no floor. *Requests / agent* counts everything the provider received, throttled requests included \
         (accepted ones in parentheses); the floor's R_min is 1 (2): **above 1.3 × that, or above 1.3 × the floor, is a miss**, \
         listed below the tables.",
        SAMPLE_EVERY.as_millis(),
        fmt_num(&q["route53_current"]["rate_per_second"]),
        fmt_num(&q["route53_current"]["burst"]),
        q["route53_current"]["source"].as_str().unwrap_or(""),
        q["route53_prior_request_not_complete"]["share"]
            .as_f64()
            .map_or("–".into(), |p| format!(
                "in {:.0} % of change batches",
                p * 100.0
            )),
        q["route53_prior_request_not_complete"]["source"]
            .as_str()
            .unwrap_or(""),
        fmt_num(&q["route53_legacy"]["rate_per_second"]),
        fmt_num(&q["route53_legacy"]["burst"]),
        q["route53_legacy"]["source"].as_str().unwrap_or(""),
        fmt_num(&q["cloudflare"]["burst"]),
        (num(&q["cloudflare"]["burst"]) / num(&q["cloudflare"]["rate_per_second"])).round(),
        q["cloudflare"]["source"].as_str().unwrap_or(""),
        q["rfc2136"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches("none; "),
    );

    let mut misses: Vec<String> = Vec::new();
    let mut errors = String::new();
    for (flavor, title) in [
        (
            Flavor::Route53Multivalue,
            "Route53, `routing = \"multivalue\"` (one rrset per instance per name)",
        ),
        (
            Flavor::Route53Simple,
            "Route53, `routing = \"simple\"` (shared rrsets, conditional rewrites)",
        ),
        (
            Flavor::Cloudflare,
            "Cloudflare (one record per value, one batch per change)",
        ),
        (
            Flavor::Rfc2136,
            "RFC 2136, a real BIND (UPDATE with prerequisites)",
        ),
    ] {
        let rows: Vec<&&Json> = fleets
            .iter()
            .filter(|f| f["provider"] == flavor.name())
            .collect();
        if rows.is_empty() {
            continue;
        }
        let (extra_head, conflicts_head) = match flavor {
            Flavor::Route53Multivalue | Flavor::Route53Simple => {
                ("PriorRequestNotComplete", "conflicts (InvalidChangeBatch)")
            }
            Flavor::Cloudflare => ("early retries (during a block)", "refused (not 429)"),
            Flavor::Rfc2136 => ("", "prerequisites failed"),
        };
        let _ = writeln!(s, "\n#### {title}\n");
        let mut head = vec![
            "N",
            "join: all published",
            "÷ floor",
            "requests / agent (accepted)",
        ];
        if flavor != Flavor::Rfc2136 {
            head.push("throttled");
            head.push(extra_head);
        }
        head.extend([
            conflicts_head,
            "values lost",
            "agents exited",
            "leave: all removed",
            "÷ floor",
            "requests / agent (accepted)",
        ]);
        if flavor != Flavor::Rfc2136 {
            head.push("throttled");
        }
        head.extend(["exited non-zero", "left behind", "person's value"]);
        let _ = writeln!(s, "| {} |", head.join(" | "));
        let _ = writeln!(s, "|{}", "---|".repeat(head.len()));
        let mut notes = String::new();
        let mut spawned = Vec::new();
        for f in rows {
            let n = &f["n"];
            let limit_name = f["limit"]["name"].as_str().unwrap_or("");
            let mut label = if limit_name == "legacy" {
                format!("{n} (legacy 5/s)")
            } else if let Some(j) = f["join_spread_secs"].as_u64() {
                format!("{n} (join_spread {j} s)")
            } else {
                n.to_string()
            };
            if let (Some(factor), Some(stop)) =
                (f["stop_factor"].as_f64(), f["stop_timeout_secs"].as_u64())
            {
                label = format!("{label} (stop_timeout {stop} s, {factor} × floor)");
            }
            let who = format!("{} N={label}", flavor.name());
            if let Some(why) = f["skipped"].as_str() {
                let _ = writeln!(
                    s,
                    "| {label} | not run (below) |{}",
                    " |".repeat(head.len() - 2)
                );
                let _ = writeln!(notes, "\nN = {label}: {why}.");
                continue;
            }
            let (j, l) = (&f["join"], &f["leave"]);
            spawned.push(format!(
                "{:.1} s for N = {label}",
                num(&j["spawned_in_secs"])
            ));
            let mut row = vec![
                label.clone(),
                phase_secs(j, &f["deadline_secs"], "published", n),
                floor_cell(j, &f["floor_secs"]),
                per_agent(j),
            ];
            if flavor != Flavor::Rfc2136 {
                row.push(share(j));
                row.push(opt(if flavor == Flavor::Cloudflare {
                    &j["early_retries"]
                } else {
                    &j["prior_request_not_complete"]
                }));
            }
            row.extend([
                opt(&j["conflicts"]),
                j["values_lost"].to_string(),
                j["agents_exited"].to_string(),
                phase_secs(l, &f["deadline_secs"], "", n),
                floor_cell(l, &f["floor_secs"]),
                per_agent(l),
            ]);
            if flavor != Flavor::Rfc2136 {
                row.push(share(l));
            }
            let killed = l["killed_at_deadline"].as_u64().unwrap_or(0);
            row.extend([
                if killed > 0 {
                    format!("{} ({killed} killed at the deadline)", l["exited_nonzero"])
                } else {
                    l["exited_nonzero"].to_string()
                },
                left_behind(l),
                kept(&l["persons_value_kept"]).to_string(),
            ]);
            let _ = writeln!(s, "| {} |", row.join(" | "));

            // What misses, said plainly.
            let min = num(&f["requests_per_change_min"]);
            for (phase, p, what) in [("join", j, "published"), ("leave", l, "removed")] {
                if p["secs"].is_null() && p["all_exited_secs"].is_number() {
                    misses.push(format!(
                        "{who}: {phase}: never all {what}: values of {} agents still there when all had exited",
                        p["agents_left_behind"]
                    ));
                } else if p["secs"].is_null() {
                    misses.push(format!(
                        "{who}: {phase}: not all {what} within {} s",
                        f["deadline_secs"]
                    ));
                } else if let Some(ratio) = p["floor_ratio"].as_f64().filter(|r| *r > 1.3) {
                    misses.push(format!(
                        "{who}: {phase}: {:.1} s, {ratio:.1}× the floor of {:.1} s",
                        num(&p["secs"]),
                        num(&f["floor_secs"])
                    ));
                }
                let per = num(&p["requests_per_agent"]);
                if per > 1.3 * min {
                    misses.push(format!(
                        "{who}: {phase}: {per:.2} requests per agent ({:.2} accepted), more than 1.3 × the {min} the floor counts",
                        num(&p["accepted_per_agent"])
                    ));
                }
            }
            for (v, what) in [
                (
                    &l["exited_zero_with_values_left"],
                    "agents exited 0 (success) with their values still in the zone",
                ),
                (
                    &l["own_values_taken_for_foreign"],
                    "agents logged one of their own values as \"already there, put there by someone else: left alone\" (so never owned it, and did not remove it)",
                ),
                (&j["values_lost"], "values lost while their agents ran"),
                (&j["agents_exited"], "agents exited during the join"),
                (&l["exited_nonzero"], "agents exited non-zero on SIGTERM"),
                (&l["values_left"], "values left behind after all exited"),
            ] {
                if v.as_u64().unwrap_or(0) > 0 {
                    misses.push(format!("{who}: {v} {what}"));
                }
            }
            if l["persons_value_kept"] != true {
                misses.push(format!("{who}: the person's value in `www` was touched"));
            }
            for (phase, p) in [("join", j), ("leave", l)] {
                if let Some(e) = p["errors"].as_array().and_then(|e| e.first()) {
                    let _ = writeln!(
                        errors,
                        "- {who}, {phase} ({} agents logged errors; this one by {}): `` {} ``",
                        p["agents_with_errors"],
                        e["agents"],
                        e["example"].as_str().unwrap_or("")
                    );
                }
            }
        }
        if !spawned.is_empty() {
            let _ = writeln!(
                s,
                "\nStarting the N processes took {} (inside the join time).",
                spawned.join(", ")
            );
        }
        s.push_str(&notes);
    }

    let mut reap_notes = String::new();
    if !reap.is_empty() {
        let _ = writeln!(
            s,
            "\n#### Short stop: survivors reap what a stopped fleet left\n\n\
             N agents on Route53 (multivalue, today's quota) with `[lease] ttl = \"60s\"` are stopped together with \
             `stop_timeout = \"5s\"`, well under the leave floor; three agents with the same lease and `reap = true`, \
             started before them and kept running, remove what the N left once their leases run out (a lease is renewed \
             every ttl/3; the survivors reap at each reconcile, every 20 s). *Reaped after* counts from the SIGTERM.\n\n\
             | N stopped | leave floor | all exited after | exited non-zero | left when all had exited | reaped after | \
             requests / stopped agent (accepted) | throttled | survivors' values lost | survivors stopped cleanly | left at the end | person's value |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for x in &reap {
            let t = &x["after_sigterm"];
            let _ = writeln!(
                s,
                "| {} | {:.1} s | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                x["n"],
                num(&x["leave_floor_secs"]),
                x["all_exited_secs"]
                    .as_f64()
                    .map_or("–".into(), |v| format!("{v:.1} s")),
                x["exited_nonzero"],
                match (
                    x["values_left_at_exit"].as_u64(),
                    x["agents_left_at_exit"].as_u64()
                ) {
                    (Some(v), Some(a)) => format!("{v} values of {a} agents"),
                    _ => "–".into(),
                },
                x["reaped_secs"].as_f64().map_or_else(
                    || format!("not within {} s", opt(&x["reap_deadline_secs"])),
                    |v| format!("{v:.1} s")
                ),
                per_agent(t),
                share(t),
                x["survivors_values_lost"],
                if x["survivors_exited_nonzero"] == 0 && x["survivors_killed"] == 0 {
                    "yes".to_string()
                } else {
                    format!(
                        "no ({} non-zero, {} killed)",
                        x["survivors_exited_nonzero"], x["survivors_killed"]
                    )
                },
                x["values_left_after_survivors_stopped"],
                kept(&x["persons_value_kept"]),
            );
            let who = format!("short stop N={}", x["n"]);
            let one = &x["one_shot_reap_after"];
            if one.is_object() {
                let _ = writeln!(
                    reap_notes,
                    "\nN = {}: after the survivors stopped, {} values were left and {} ownership registries \
                     (`<instance>._dnsreg.{ZONE}` TXT, which list what an instance owns and hold its lease). \
                     One `dnsreg reap` then, the account to itself, exited {} after {:.0} s, reporting {} instances reaped; \
                     values left after it: {}, registries left: {}.",
                    x["n"],
                    x["values_left_after_survivors_stopped"],
                    x["registries_left_after_survivors_stopped"],
                    opt(&one["exit"]),
                    num(&one["secs"]),
                    one["reaped_instances"],
                    one["values_left"],
                    one["registries_left"],
                );
                if one["values_left"].as_u64().unwrap_or(0) > 0
                    && one["reaped_instances"].as_u64().unwrap_or(0) > 0
                {
                    misses.push(format!(
                        "{who}: `dnsreg reap` reported {} instances reaped and removed their registries, \
                         yet {} of the stopped fleet's values are still in the zone (before it: {}), listed by no registry any more",
                        one["reaped_instances"],
                        one["values_left"],
                        x["values_left_after_survivors_stopped"]
                    ));
                }
            }
            if x["reaped_secs"].is_null() {
                misses.push(format!(
                    "{who}: the survivors did not reap everything within {} s",
                    opt(&x["reap_deadline_secs"])
                ));
            }
            for (v, what) in [
                (&x["survivors_values_lost"], "survivors' values lost"),
                (
                    &x["values_left_after_survivors_stopped"],
                    "values left after the survivors stopped",
                ),
                (&x["join_values_lost"], "values lost during the join"),
            ] {
                if v.as_u64().unwrap_or(0) > 0 {
                    misses.push(format!("{who}: {v} {what}"));
                }
            }
            if x["persons_value_kept"] != true {
                misses.push(format!("{who}: the person's value in `www` was touched"));
            }
            if let Some(e) = x["survivor_errors"].as_array().and_then(|e| e.first()) {
                let _ = writeln!(
                    errors,
                    "- {who}, the survivors ({} of {} logged errors or warnings; this one by {}): `` {} ``",
                    x["survivors_with_errors"],
                    x["survivors"],
                    e["agents"],
                    e["example"].as_str().unwrap_or("")
                );
            }
            if let Some(e) = x["stop_errors"].as_array().and_then(|e| e.first()) {
                let _ = writeln!(
                    errors,
                    "- {who}, stop ({} agents logged errors; this one by {}): `` {} ``",
                    x["agents_with_stop_errors"],
                    e["agents"],
                    e["example"].as_str().unwrap_or("")
                );
            }
        }
    }

    s.push_str(&reap_notes);
    if !misses.is_empty() {
        let _ = writeln!(
            s,
            "\n**What misses** (ratio or requests above 1.3×, anything lost, left or failed):\n"
        );
        for m in &misses {
            let _ = writeln!(s, "- {m}");
        }
    } else if !fleets.is_empty() {
        s.push_str("\nNothing misses: every ratio and every request count within 1.3×, nothing lost, left or failed.\n");
    }
    if !errors.is_empty() {
        let _ = write!(
            s,
            "\nErrors the agents logged (the most common kind per phase, one example line):\n\n{errors}"
        );
    }

    if !bf.is_empty() {
        s.push_str(
            "\n#### The baseline: the same joins with the AWS CLI\n\n\
             N `bench/baseline/route53.sh join` with `RR_NAME=www` at once, on the same Route53 stand-in as the simple-routing \
             fleets (today's quota, PriorRequestNotComplete, SigV4): an UPSERT of each rrset holding only this machine's value, \
             then the waiter. It has no safety for shared rrsets: each UPSERT replaces the rrset, and the numbers show it.\n\n\
             | N | all CLIs done | requests (accepted) | throttled | CLIs failed | `www` addresses kept | SRV lines kept | values lost | machines fully published | person's value |\n\
             |---|---|---|---|---|---|---|---|---|---|\n",
        );
        for f in &bf {
            let _ = writeln!(
                s,
                "| {} | {:.1} s | {} ({}) | {} | {} | {} of {} | {} of {} | {} | {} of {} | {} |",
                f["n"],
                num(&f["secs"]),
                f["requests"],
                f["accepted"],
                share(f),
                f["failed_exits"],
                f["www_values_kept"],
                f["n"],
                f["srv_lines_kept"],
                f["n"],
                f["lost"],
                f["published"],
                f["n"],
                if f["persons_value_kept"] == true {
                    "kept"
                } else {
                    "lost"
                },
            );
        }
    }
}

fn markdown(r: &Json) -> String {
    let mut s = String::new();
    if r["latency"].as_array().is_some_and(|l| !l.is_empty()) {
        latency_markdown(r, &mut s);
    }
    let ran = |part: &str| {
        r["parts"]
            .as_array()
            .is_none_or(|p| p.iter().any(|x| x == part))
    };
    if r["footprint"].is_object() || ran("latency") {
        footprint_markdown(r, &mut s);
    }
    fleet_markdown(r, &mut s);
    mdns::markdown(r, &mut s);
    s
}

/// nproc, RAM, kernel of this machine.
fn machine() -> Json {
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    json!({
        "nproc": std::thread::available_parallelism().map_or(0, usize::from),
        "ram_mib": mem_kib / 1024,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "arch": std::env::consts::ARCH,
    })
}

/// Raises the soft open-file limit to the hard one when a fleet needs more
/// than it allows (a socket or two per agent in the stand-ins, plus logs);
/// says so if that is not enough.
fn open_files_for(n: usize) {
    let needed = 4 * n as u64 + 512;
    let soft = || -> Option<(u64, String)> {
        let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        let f: Vec<&str> = line.split_whitespace().collect();
        Some((f.get(3)?.parse().ok()?, f.get(4)?.to_string()))
    };
    let Some((current, hard)) = soft() else {
        return;
    };
    if current >= needed {
        return;
    }
    // prlimit (util-linux) on ourselves: this crate has no libc binding.
    let _ = Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!("--nofile={hard}:{hard}"))
        .status();
    if let Some((now, _)) = soft()
        && now < needed
    {
        eprintln!(
            "bench: warning: open files limited to {now}, a fleet of {n} may need {needed} (raise `ulimit -n`)"
        );
    }
}

/// The JSON a script wrote for a part (`--footprint`, `--mdns`), or null.
fn read_json(path: Option<&Path>) -> Result<Json> {
    let Some(p) = path else {
        return Ok(Json::Null);
    };
    let text = std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parse {}", p.display()))
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("bench: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let o = options()?;
    std::fs::create_dir_all(&o.out).with_context(|| format!("create {}", o.out.display()))?;
    if let Some(path) = &o.render {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let results: Json =
            serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
        let md = markdown(&results);
        std::fs::write(o.out.join("latest.md"), &md)?;
        println!("{md}");
        return Ok(());
    }
    let started = std::time::SystemTime::now();
    let biggest = o
        .fleet
        .iter()
        .chain(&o.legacy)
        .chain(&o.baseline_fleet)
        .chain(std::iter::once(&o.reap))
        .max()
        .copied()
        .unwrap_or(0);
    open_files_for(biggest + 8);

    let mut latency_results = Vec::new();
    if o.runs_part("latency") {
        eprintln!("bench: join/leave latency, {} runs per provider", o.runs);
        let targets: Vec<(Box<dyn Target>, u8)> = vec![
            (Box::new(Route53Target::start()), 1),
            (Box::new(CloudflareTarget::start()), 2),
            (Box::new(Rfc2136Target::start()), 3),
        ];
        for (t, group) in &targets {
            latency_results.push(latency(&o, t.as_ref(), *group)?);
        }
    }

    let mut fleet_results = Vec::new();
    let mut sizes = o.fleet.clone();
    sizes.sort_unstable();
    if o.runs_part("fleet") {
        for flavor in Flavor::ALL.into_iter().filter(|f| o.runs_flavor(*f)) {
            for &n in &sizes {
                if flavor == Flavor::Route53Simple && n > o.simple_max {
                    eprintln!(
                        "bench: fleet {} N={n}: not run (above --simple-max {}: a shared rrset of that many values cannot be rewritten in one Route53 batch)",
                        flavor.name(),
                        o.simple_max
                    );
                    fleet_results.push(simple_skipped(n, o.simple_max));
                    continue;
                }
                eprintln!("bench: fleet {} N={n}", flavor.name());
                fleet_results.push(fleet(&o, flavor, Quota::CURRENT, n, false)?);
            }
        }
    }
    if o.runs_part("legacy") && o.runs_flavor(Flavor::Route53Multivalue) {
        for &n in &o.legacy {
            eprintln!(
                "bench: fleet {} N={n} at the legacy quota",
                Flavor::Route53Multivalue.name()
            );
            fleet_results.push(fleet(
                &o,
                Flavor::Route53Multivalue,
                Quota::LEGACY,
                n,
                false,
            )?);
        }
    }
    for flavor in [Flavor::Route53Multivalue, Flavor::Route53Simple] {
        if !o.runs_part("spread") || !o.runs_flavor(flavor) {
            continue;
        }
        for &n in o
            .spread
            .iter()
            .filter(|&&n| flavor != Flavor::Route53Simple || n <= o.simple_max)
        {
            eprintln!("bench: fleet {} N={n} with join_spread", flavor.name());
            fleet_results.push(fleet(&o, flavor, Quota::CURRENT, n, true)?);
        }
    }
    // Rows by provider, then by N, the join_spread and then the legacy rows
    // after the current ones.
    fleet_results.sort_by_key(|f| {
        (
            Flavor::ALL
                .iter()
                .position(|x| f["provider"] == x.name())
                .unwrap_or(9),
            f["limit"]["name"] == "legacy",
            f["join_spread_secs"].is_u64(),
            f["n"].as_u64().unwrap_or(0),
        )
    });
    let mut reap_results = Vec::new();
    if o.runs_part("reap") && o.reap > 0 && o.runs_flavor(Flavor::Route53Multivalue) {
        eprintln!("bench: short stop, N={} reaped by 3 survivors", o.reap);
        reap_results.push(reap(&o, o.reap)?);
    }
    let mut baseline_fleet_results = Vec::new();
    if o.runs_part("baseline") {
        for &n in &o.baseline_fleet {
            eprintln!("bench: baseline fleet of {n} AWS CLI joins");
            let r = baseline_fleet(&o, n)?;
            eprintln!(
                "  {:.1}s, {} requests, {} of {n} fully published, {} values lost",
                num(&r["secs"]),
                r["requests"],
                r["published"],
                r["lost"]
            );
            baseline_fleet_results.push(r);
        }
    }

    let footprint = read_json(o.footprint.as_deref())?;
    let mdns = read_json(o.mdns.as_deref())?;
    let binary_bytes = std::fs::metadata(&o.dnsreg)?.len();
    let baseline_install_kib = std::env::var("BENCH_BASELINE_INSTALL_KIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    let results = json!({
        "command": o.command,
        "revision": o.revision,
        "machine": machine(),
        "date_unix": started.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "dnsreg": o.dnsreg.display().to_string(),
        "parts": o.only,
        "runs": o.runs,
        "quotas": {
            "route53_current": Limit::route53(Quota::CURRENT).json(),
            "route53_legacy": Limit::route53(Quota::LEGACY).json(),
            "route53_prior_request_not_complete": {"share": PRIOR_REQUEST_SHARE, "source": PRIOR_REQUEST_SOURCE},
            "route53_batch": {"max_resource_records": 1000, "source": ROUTE53_BATCH_SOURCE},
            "cloudflare": Limit::cloudflare().json(),
            "rfc2136": BIND_LIMIT_NOTE,
        },
        "route53_insync_after_ms": testkit::route53::DEFAULT_INSYNC_AFTER.as_millis() as u64,
        "latency": latency_results,
        "binary_bytes": binary_bytes,
        "footprint": footprint,
        "mdns": mdns,
        "baseline_install_kib": baseline_install_kib,
        "fleet": fleet_results,
        "reap": reap_results,
        "baseline_fleet": baseline_fleet_results,
    });
    let md = markdown(&results);
    std::fs::write(
        o.out.join("latest.json"),
        serde_json::to_string_pretty(&results)? + "\n",
    )?;
    std::fs::write(o.out.join("latest.md"), &md)?;
    println!("{md}");
    Ok(())
}
