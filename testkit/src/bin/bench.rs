//! `bench`: dnsreg measured against the ways people publish DNS from user-data
//! today, side by side, on the stand-ins (issue #8; run through `scripts/bench`).
//!
//! Three parts, each printed as a table and written as JSON and markdown:
//!
//! 1. Join and leave latency (process start → the provider confirms) and the
//!    API requests they cost, per provider: `dnsreg join`/`leave` against the
//!    baselines in `bench/baseline/` (the AWS CLI for Route53, curl for
//!    Cloudflare, nsupdate for BIND), each making the same changes. Requests are
//!    counted by the stand-ins (Route53, Cloudflare) and by a counting proxy in
//!    front of a real `named` (RFC 2136).
//! 2. Footprint: idle memory and CPU of `dnsreg run` (measured by
//!    `scripts/footprint`, read from its JSON) and the binary's size.
//! 3. A fleet: N agents (`dnsreg run`) join one round-robin name and one SRV
//!    rrset at once against the Route53 stand-in throttled at Route53's
//!    documented account rate, then leave on SIGTERM; and the AWS CLI baseline
//!    doing the same joins at once.
//!
//! Every figure is observed, never assumed: records are checked in the
//! stand-ins' state after each step, and a run whose records are not as they
//! should be stops the benchmark.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value as Json, json};
use testkit::bind::Bind;
use testkit::cloudflare::{CLOUDFLARE_RATE_LIMIT, CloudflareServer};
use testkit::dnsproxy::DnsProxy;
use testkit::route53::{ROUTE53_ACCOUNT_RATE, Route53Server, RrSet};

const ZONE: &str = "example.com";
const PORT: u16 = 8080;
const CF_TOKEN: &str = "bench-cloudflare-token";
const AWS_KEY: (&str, &str) = (
    "AKIABENCHMARK0000001",
    "bench/secret/key/0000000000000000000000",
);
/// Where Route53's account rate is documented (cited in the output).
const ROUTE53_RATE_SOURCE: &str = "Route 53 Developer Guide, \"Quotas\" → \"Maximums on API requests\": \
\"five requests per second per AWS account\"; over it, HTTP 400 Throttling \"Rate exceeded\"";
/// A value a person put in the shared round-robin rrset: the fleet must never touch it.
const PERSONS_VALUE: &str = "192.0.2.250";

const USAGE: &str = "\
usage: bench --dnsreg BIN --aws BIN --baselines DIR --out DIR [--runs N] [--fleet N,N,...]
             [--baseline-fleet N,N,...] [--footprint FILE] [--command TEXT] [--revision TEXT] [--machine TEXT]
       bench --render RESULTS_JSON --out DIR     (writes DIR/latest.md again from saved results)";

struct Options {
    dnsreg: PathBuf,
    aws: PathBuf,
    baselines: PathBuf,
    out: PathBuf,
    runs: usize,
    fleet: Vec<usize>,
    baseline_fleet: Vec<usize>,
    footprint: Option<PathBuf>,
    command: String,
    revision: String,
    machine: String,
    render: Option<PathBuf>,
}

fn parse_list(s: &str) -> Result<Vec<usize>> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().with_context(|| format!("not a number: {p:?}")))
        .collect()
}

fn options() -> Result<Options> {
    let mut args = std::env::args().skip(1);
    let mut o = Options {
        dnsreg: PathBuf::new(),
        aws: PathBuf::new(),
        baselines: PathBuf::new(),
        out: PathBuf::new(),
        runs: 20,
        fleet: vec![10, 50, 200],
        baseline_fleet: vec![10, 50],
        footprint: None,
        command: "scripts/bench".into(),
        revision: String::new(),
        machine: String::new(),
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
            "--fleet" => o.fleet = parse_list(&value()?)?,
            "--baseline-fleet" => o.baseline_fleet = parse_list(&value()?)?,
            "--footprint" => o.footprint = Some(value()?.into()),
            "--command" => o.command = value()?,
            "--revision" => o.revision = value()?,
            "--machine" => o.machine = value()?,
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
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
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

/// Sends SIGTERM to these processes (our own children, by pid).
fn sigterm(children: &[Child]) -> Result<()> {
    let mut kill = Command::new("kill");
    kill.arg("-TERM");
    for c in children {
        kill.arg(c.id().to_string());
    }
    let status = kill.status().context("run kill -TERM")?;
    ensure!(status.success(), "kill -TERM failed: {status}");
    Ok(())
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
// Part 3: the fleet
// ---------------------------------------------------------------------------

struct Fleet<'a> {
    r53: &'a Route53Server,
    zone_id: &'a str,
    machines: Vec<Machine>,
}

/// Each machine's three values (its A record, its address in `www`, its SRV
/// line): whether each is in the zone now.
type Presence = Vec<[bool; 3]>;

impl Fleet<'_> {
    fn www(&self) -> Vec<String> {
        self.r53.values(self.zone_id, &format!("www.{ZONE}."), "A")
    }
    fn srv(&self) -> Vec<String> {
        self.r53.values(
            self.zone_id,
            &format!("_v1._theservice._tcp.{ZONE}."),
            "SRV",
        )
    }
    fn presence(&self) -> Presence {
        let rrsets = self.r53.rrsets(self.zone_id);
        let at = |name: &str, rtype: &str| -> Vec<String> {
            rrsets
                .iter()
                .filter(|r| r.name == name && r.rtype == rtype)
                .flat_map(|r| r.records.clone())
                .collect()
        };
        let www = at(&format!("www.{ZONE}."), "A");
        let srv = at(&format!("_v1._theservice._tcp.{ZONE}."), "SRV");
        self.machines
            .iter()
            .map(|m| {
                [
                    at(&m.host(), "A").contains(&m.ipv4),
                    www.contains(&m.ipv4),
                    srv.contains(&m.srv_line()),
                ]
            })
            .collect()
    }
    fn persons_value_kept(&self) -> bool {
        self.www().iter().any(|v| v == PERSONS_VALUE)
    }
}

fn published(p: &Presence) -> usize {
    p.iter().filter(|v| v.iter().all(|b| *b)).count()
}

fn remaining(p: &Presence) -> usize {
    p.iter().filter(|v| v.iter().any(|b| *b)).count()
}

/// `BENCH_FLEET_ROUTING=multivalue`: the fleet uses `routing = "multivalue"`
/// (one rrset per instance per name) instead of shared simple rrsets.
fn fleet_multivalue() -> bool {
    std::env::var("BENCH_FLEET_ROUTING").is_ok_and(|r| r == "multivalue")
}

fn fleet_zone() -> (Route53Server, String) {
    let r53 = Route53Server::start();
    r53.set_credentials(Some(AWS_KEY));
    let zone_id = r53.create_zone(ZONE);
    let mut persons = RrSet::simple(&format!("www.{ZONE}."), "A", 60, &[PERSONS_VALUE]);
    if fleet_multivalue() {
        // Beside multivalue rrsets, a person's value is one too.
        persons.set_identifier = Some("by-hand".into());
        persons.multivalue_answer = Some(true);
    }
    r53.put_rrset(&zone_id, persons);
    r53.set_rate_limit(Some(ROUTE53_ACCOUNT_RATE));
    (r53, zone_id)
}

/// The least time `requests` requests can take at the account rate, the token
/// bucket starting full (one second's worth).
fn floor_secs(requests: usize) -> f64 {
    (requests as f64 - ROUTE53_ACCOUNT_RATE.max(1.0)).max(0.0) / ROUTE53_ACCOUNT_RATE
}

fn fleet(o: &Options, n: usize, deadline: Duration) -> Result<Json> {
    let scratch = Scratch::new(&format!("fleet-{n}"))?;
    let (r53, zone_id) = fleet_zone();
    let f = Fleet {
        r53: &r53,
        zone_id: &zone_id,
        machines: (0..n).map(|i| Machine::nth(50, i)).collect(),
    };
    let mut table = format!(
        "type = \"route53\"\nzone = \"{ZONE}\"\nendpoint = \"{}\"",
        r53.url()
    );
    if fleet_multivalue() {
        table.push_str("\nrouting = \"multivalue\"");
    }
    // As shipped, but with room to leave: at five requests a second, a fleet
    // of 200 needs longer than the default 20 s to take its records out.
    let agent = "reconcile_interval = \"60s\"\nstop_timeout = \"15m\"\n";
    let mut commands = Vec::new();
    for (i, m) in f.machines.iter().enumerate() {
        let dir = scratch.0.join(format!("agent-{i}"));
        std::fs::create_dir_all(&dir)?;
        let cfg = dir.join("dnsreg.toml");
        std::fs::write(&cfg, config(&table, m, &dir.join("state"), true, agent))?;
        let mut c = isolated(&o.dnsreg, &dir);
        c.arg("-c")
            .arg(&cfg)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("agent.log"))?);
        commands.push(c);
    }

    // Join: all at once. A value seen in the zone and gone again while its
    // agent runs is lost (clobbered by another writer).
    let start = Instant::now();
    let mut agents: Vec<Child> = Vec::new();
    for mut c in commands {
        agents.push(c.spawn().context("start dnsreg run")?);
    }
    let mut seen = vec![[false; 3]; n];
    let mut lost = vec![[false; 3]; n];
    let mut joined = None;
    while start.elapsed() < deadline {
        let now = f.presence();
        for i in 0..n {
            for k in 0..3 {
                lost[i][k] |= seen[i][k] && !now[i][k];
                seen[i][k] |= now[i][k];
            }
        }
        if published(&now) == n {
            joined = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let join_stats = r53.stats();
    let join_secs = joined.map(|d| d.as_secs_f64());
    let published_at_join = published(&f.presence());
    let values_lost: usize = lost.iter().flatten().filter(|b| **b).count();
    let persons_after_join = f.persons_value_kept();
    if joined.is_none() {
        eprintln!(
            "fleet {n}: join not converged after {deadline:?}: {published_at_join} of {n} published"
        );
    }

    // Leave: SIGTERM to every agent at once, as a scale-in of the whole fleet;
    // over when nothing of theirs is left and all have exited, or at the deadline.
    r53.reset_stats();
    sigterm(&agents)?;
    let start = Instant::now();
    let mut statuses: Vec<Option<std::process::ExitStatus>> = vec![None; n];
    let mut left = None;
    loop {
        for (a, s) in agents.iter_mut().zip(statuses.iter_mut()) {
            if s.is_none() {
                *s = a.try_wait()?;
            }
        }
        if left.is_none() && remaining(&f.presence()) == 0 {
            left = Some(start.elapsed());
        }
        let all_exited = statuses.iter().all(Option::is_some);
        if all_exited || start.elapsed() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let leave_stats = r53.stats();
    let still_running = statuses.iter().filter(|s| s.is_none()).count();
    for (a, s) in agents.iter_mut().zip(statuses.iter_mut()) {
        if s.is_none() {
            let _ = a.kill();
            *s = Some(a.wait()?);
        }
    }
    let failed_exits = statuses
        .iter()
        .filter(|s| s.is_some_and(|s| !s.success()))
        .count();
    let left_behind = remaining(&f.presence());
    let persons_after_leave = f.persons_value_kept();
    // What the agents said when something failed: the last error line of the
    // first agent that logged one, per phase.
    let logs: Vec<String> = (0..n)
        .map(|i| {
            std::fs::read_to_string(scratch.0.join(format!("agent-{i}/agent.log")))
                .unwrap_or_default()
        })
        .collect();
    let first_error = |prefix: &str| {
        logs.iter().find_map(|l| {
            l.lines()
                .rfind(|line| line.starts_with(prefix))
                .map(str::to_string)
        })
    };
    let agents_with = |prefix: &str| {
        logs.iter()
            .filter(|l| l.lines().any(|line| line.starts_with(prefix)))
            .count()
    };
    ensure!(
        persons_after_join && persons_after_leave,
        "fleet {n}: the value a person put in www.{ZONE} was touched"
    );
    let join_floor = floor_secs(n);
    let leave_floor = floor_secs(n);
    Ok(json!({
        "n": n,
        "deadline_secs": deadline.as_secs(),
        "join_secs": join_secs,
        "join_floor_secs": join_floor,
        "join_ratio": join_secs.map(|s| s / join_floor.max(f64::EPSILON)),
        "join_requests": join_stats.total(),
        "join_requests_per_agent": join_stats.total() as f64 / n as f64,
        "join_throttled": join_stats.throttled,
        "join_conflicts": join_stats.invalid_change_batch,
        "join_requests_by_action": join_stats.requests,
        "published_at_deadline": published_at_join,
        "lost": values_lost,
        "agents_with_join_errors": agents_with("dnsreg: join"),
        "example_join_error": first_error("dnsreg: join"),
        "leave_secs": left.map(|d| d.as_secs_f64()),
        "leave_floor_secs": leave_floor,
        "leave_ratio": left.map(|d| d.as_secs_f64() / leave_floor.max(f64::EPSILON)),
        "leave_requests": leave_stats.total(),
        "leave_throttled": leave_stats.throttled,
        "leave_conflicts": leave_stats.invalid_change_batch,
        "leave_requests_by_action": leave_stats.requests,
        "left_behind": left_behind,
        "failed_exits": failed_exits,
        "killed_at_deadline": still_running,
        "example_leave_error": first_error("dnsreg: leave"),
        "persons_value_kept": persons_after_leave,
    }))
}

/// The same N joins done the baseline's way, all at once.
fn baseline_fleet(o: &Options, n: usize) -> Result<Json> {
    let scratch = Scratch::new(&format!("baseline-fleet-{n}"))?;
    let (r53, zone_id) = fleet_zone();
    let f = Fleet {
        r53: &r53,
        zone_id: &zone_id,
        machines: (0..n).map(|i| Machine::nth(60, i)).collect(),
    };
    let start = Instant::now();
    let mut children = Vec::new();
    for (i, m) in f.machines.iter().enumerate() {
        let dir = scratch.0.join(format!("cli-{i}"));
        std::fs::create_dir_all(&dir)?;
        let mut c = isolated(Path::new("bash"), &dir);
        c.arg(o.baselines.join("route53.sh"))
            .arg("join")
            .env("PATH", path_with(&o.aws))
            .env("ZONE", ZONE)
            .env("ZONE_ID", &zone_id)
            .env("AWS_ENDPOINT_URL_ROUTE_53", r53.url())
            .env("INSTANCE_ID", &m.id)
            .env("IPV4", &m.ipv4)
            .env("RR_NAME", "www")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("cli.log"))?);
        children.push(c.spawn().context("start the AWS CLI baseline")?);
    }
    let mut failed = 0;
    for mut c in children {
        if !c.wait()?.success() {
            failed += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let stats = r53.stats();
    let www = f.www();
    let srv = f.srv();
    let www_kept = f.machines.iter().filter(|m| www.contains(&m.ipv4)).count();
    let srv_kept = f
        .machines
        .iter()
        .filter(|m| srv.contains(&m.srv_line()))
        .count();
    Ok(json!({
        "n": n,
        "secs": secs,
        "requests": stats.total(),
        "throttled": stats.throttled,
        "failed_exits": failed,
        "www_values_kept": www_kept,
        "srv_lines_kept": srv_kept,
        "lost": (n - www_kept) + (n - srv_kept),
        "persons_value_kept": f.persons_value_kept(),
    }))
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

fn num(v: &Json) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn secs_or(v: &Json, deadline: &Json) -> String {
    v.as_f64().map_or_else(
        || format!("not within {} s", deadline),
        |s| format!("{s:.1} s"),
    )
}

fn markdown(r: &Json) -> String {
    let mut s = String::new();
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
         dnsreg reads before it writes: the zone id, the rrsets it shares (its change is conditional on them, \
         so no other machine's value is lost) and its ownership registry, which it writes in the same change; \
         on Route53 it waits for INSYNC, asking first after 500 ms (the stand-in reports INSYNC {} ms after a change). \
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

    let _ = writeln!(
        s,
        "\n### Fleet: N agents join one round-robin name and one SRV rrset at once, then leave\n\n\
         Route53 stand-in throttled at {} requests/s for the whole account ({ROUTE53_RATE_SOURCE}). \
         Each agent (`dnsreg run`) publishes its A record, its address in `www` and its SRV line; \
         `www` also holds a value a person put there. The floor is the least time N change requests \
         take at that rate (the bucket starts with one second's worth); leave is SIGTERM to every agent at once. \
         Routing: `{}`.\n",
        ROUTE53_ACCOUNT_RATE,
        r["fleet_routing"].as_str().unwrap_or("simple")
    );
    s.push_str(
        "| N | join: all published | ÷ floor | published | requests (per agent) | throttled | conflicts | values lost | \
         leave: all removed | ÷ floor | requests | throttled | agents failed | agents left behind | person's value |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut errors = String::new();
    for f in r["fleet"].as_array().into_iter().flatten() {
        let ratio = |k: &str| {
            f[k].as_f64()
                .map_or("–".to_string(), |x| format!("{x:.1}×"))
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} of {} | {} ({:.1}) | {} | {} | {} | {} | {} | {} | {} | {} | {} of {} | {} |",
            f["n"],
            secs_or(&f["join_secs"], &f["deadline_secs"]),
            ratio("join_ratio"),
            f["published_at_deadline"],
            f["n"],
            f["join_requests"],
            num(&f["join_requests_per_agent"]),
            f["join_throttled"],
            f["join_conflicts"],
            f["lost"],
            secs_or(&f["leave_secs"], &f["deadline_secs"]),
            ratio("leave_ratio"),
            f["leave_requests"],
            f["leave_throttled"],
            match f["killed_at_deadline"].as_u64().unwrap_or(0) {
                0 => f["failed_exits"].to_string(),
                killed => format!(
                    "{} ({killed} still leaving at the deadline, killed)",
                    f["failed_exits"]
                ),
            },
            f["left_behind"],
            f["n"],
            if f["persons_value_kept"] == true {
                "kept"
            } else {
                "TOUCHED"
            },
        );
        for (phase, key, count) in [
            ("join", "example_join_error", &f["agents_with_join_errors"]),
            ("leave", "example_leave_error", &f["failed_exits"]),
        ] {
            if let Some(e) = f[key].as_str() {
                let _ = writeln!(
                    errors,
                    "- N={}, {phase} ({count} agents): `` {e} ``",
                    f["n"]
                );
            }
        }
    }
    if !errors.is_empty() {
        let _ = write!(
            s,
            "\nErrors the agents logged (one example per phase):\n\n{errors}"
        );
    }
    let bf = r["baseline_fleet"].as_array().cloned().unwrap_or_default();
    if !bf.is_empty() {
        s.push_str(
            "\nThe baseline, the same N joins at once with the AWS CLI (`bench/baseline/route53.sh join` with `RR_NAME=www`: \
             an UPSERT of each shared rrset holding this machine's value, then the waiter). It has no safety for shared rrsets: \
             each UPSERT replaces the rrset.\n\n\
             | N | all CLIs done | requests | throttled | CLIs failed | `www` addresses kept | SRV lines kept | values lost | person's value |\n\
             |---|---|---|---|---|---|---|---|---|\n",
        );
        for f in &bf {
            let _ = writeln!(
                s,
                "| {} | {:.1} s | {} | {} | {} | {} of {} | {} of {} | {} | {} |",
                f["n"],
                num(&f["secs"]),
                f["requests"],
                f["throttled"],
                f["failed_exits"],
                f["www_values_kept"],
                f["n"],
                f["srv_lines_kept"],
                f["n"],
                f["lost"],
                if f["persons_value_kept"] == true {
                    "kept"
                } else {
                    "lost"
                },
            );
        }
    }
    s
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

    eprintln!("bench: join/leave latency, {} runs per provider", o.runs);
    let mut latency_results = Vec::new();
    let targets: Vec<(Box<dyn Target>, u8)> = vec![
        (Box::new(Route53Target::start()), 1),
        (Box::new(CloudflareTarget::start()), 2),
        (Box::new(Rfc2136Target::start()), 3),
    ];
    for (t, group) in &targets {
        latency_results.push(latency(&o, t.as_ref(), *group)?);
    }
    drop(targets);

    let mut fleet_results = Vec::new();
    for &n in &o.fleet {
        eprintln!("bench: fleet of {n} agents");
        // Long enough for several reconciles; bounded so that a full run
        // stays near 15 minutes even when a fleet does not converge.
        let deadline = Duration::from_secs((60 + n as u64).min(180));
        let r = fleet(&o, n, deadline)?;
        eprintln!("  {r}");
        fleet_results.push(r);
    }
    let mut baseline_fleet_results = Vec::new();
    for &n in &o.baseline_fleet {
        eprintln!("bench: baseline fleet of {n} AWS CLI joins");
        let r = baseline_fleet(&o, n)?;
        eprintln!("  {r}");
        baseline_fleet_results.push(r);
    }

    let footprint = match &o.footprint {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parse {}", p.display()))?
        }
        None => Json::Null,
    };
    let binary_bytes = std::fs::metadata(&o.dnsreg)?.len();
    let baseline_install_kib = std::env::var("BENCH_BASELINE_INSTALL_KIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    let results = json!({
        "command": o.command,
        "revision": o.revision,
        "machine": o.machine,
        "date_unix": started.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "dnsreg": o.dnsreg.display().to_string(),
        "runs": o.runs,
        "route53_rate_per_second": ROUTE53_ACCOUNT_RATE,
        "route53_rate_source": ROUTE53_RATE_SOURCE,
        "route53_insync_after_ms": testkit::route53::DEFAULT_INSYNC_AFTER.as_millis() as u64,
        "cloudflare_rate_limit": format!("{} requests per {:?}", CLOUDFLARE_RATE_LIMIT.0, CLOUDFLARE_RATE_LIMIT.1),
        "latency": latency_results,
        "binary_bytes": binary_bytes,
        "footprint": footprint,
        "baseline_install_kib": baseline_install_kib,
        "fleet_routing": if fleet_multivalue() { "multivalue" } else { "simple" },
        "fleet": fleet_results,
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
