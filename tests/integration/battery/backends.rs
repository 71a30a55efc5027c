//! The providers the battery runs against, each showing its zone in the one
//! canonical presentation [`Backend`] describes.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testkit::bind::Bind;
use testkit::cloudflare::{CfFault, CloudflareServer, DnsRecord};
use testkit::route53::{Fault, Route53Server, RrSet};

use super::Backend;
use crate::util::{CF_TOKEN, ZONE, absolute};

fn strings<const N: usize>(s: [&str; N]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------
// Route53: the strict stand-in
// ---------------------------------------------------------------------------

/// The strict Route53 stand-in with the hosted zone `example.com`; its endpoint
/// reaches dnsreg through `AWS_ENDPOINT_URL_ROUTE_53`, in flags and files alike.
pub struct Route53Backend {
    pub r53: Route53Server,
    pub zone_id: String,
}

impl Backend for Route53Backend {
    fn name(&self) -> &'static str {
        "route53"
    }

    fn start(_dir: &Path) -> Route53Backend {
        let r53 = Route53Server::start();
        r53.set_insync_after(Duration::from_millis(50));
        let zone_id = r53.create_zone(ZONE);
        Route53Backend { r53, zone_id }
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("AWS_ENDPOINT_URL_ROUTE_53", self.r53.url());
    }

    fn provider_flags(&self) -> Vec<String> {
        strings(["--provider", "route53", "--zone", ZONE])
    }

    fn provider_table(&self) -> String {
        format!("type = \"route53\"\nzone = \"{ZONE}\"")
    }

    /// Across SetIdentifiers (multivalue routing) too.
    fn values(&self, name: &str, rtype: &str) -> Vec<String> {
        self.r53.values(&self.zone_id, &absolute(name), rtype)
    }

    /// With several rrsets there (multivalue routing), the lowest TTL.
    fn ttl(&self, name: &str, rtype: &str) -> Option<u32> {
        let name = absolute(name);
        self.r53
            .rrsets(&self.zone_id)
            .into_iter()
            .filter(|r| r.name == name && r.rtype == rtype)
            .map(|r| r.ttl)
            .min()
    }

    /// Into the simple-routing rrset there, which takes `ttl` (Route53 keeps one
    /// TTL per rrset, as the console does when a person edits it).
    fn put_by_hand(&self, name: &str, rtype: &str, value: &str, ttl: u32) {
        let name = absolute(name);
        let mut values: Vec<String> = self
            .r53
            .rrsets(&self.zone_id)
            .into_iter()
            .find(|r| r.name == name && r.rtype == rtype && r.set_identifier.is_none())
            .map(|r| r.records)
            .unwrap_or_default();
        values.push(value.to_string());
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        self.r53
            .put_rrset(&self.zone_id, RrSet::simple(&name, rtype, ttl, &values));
    }

    /// Out of the simple-routing rrset there (the rrset goes with its last value).
    fn remove_by_hand(&self, name: &str, rtype: &str, value: &str) {
        let name = absolute(name);
        let Some(rrset) = self
            .r53
            .rrsets(&self.zone_id)
            .into_iter()
            .find(|r| r.name == name && r.rtype == rtype && r.set_identifier.is_none())
        else {
            return;
        };
        let rest: Vec<&str> = rrset
            .records
            .iter()
            .map(String::as_str)
            .filter(|v| *v != value)
            .collect();
        if rest.is_empty() {
            self.r53.remove_rrset(&self.zone_id, &name, rtype, None);
        } else {
            self.r53
                .put_rrset(&self.zone_id, RrSet::simple(&name, rtype, rrset.ttl, &rest));
        }
    }

    fn records(&self) -> Vec<String> {
        let apex = format!("{ZONE}.");
        let mut out: Vec<String> = self
            .r53
            .rrsets(&self.zone_id)
            .into_iter()
            .filter(|r| !(r.name == apex && (r.rtype == "SOA" || r.rtype == "NS")))
            .flat_map(|r| {
                r.records
                    .iter()
                    .map(|v| format!("{} {} {v}", r.name, r.rtype))
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort();
        out
    }

    /// Throttling, both kinds of 5xx, and a connection closed without an answer.
    /// (PriorRequestNotComplete, which only a change batch meets, is route53.rs's.)
    fn inject_transient_faults(&self) -> bool {
        self.r53.fail_next(2, Fault::Throttling);
        self.r53.fail_next(1, Fault::InternalError);
        self.r53.fail_next(1, Fault::ServiceUnavailable);
        self.r53.fail_next(1, Fault::Drop);
        true
    }

    fn pending_faults(&self) -> usize {
        self.r53.pending_faults()
    }

    /// Faster than the real account rate (five a second) so that the test
    /// stays short, slow enough that the fleet is throttled.
    fn limit_rate_for_a_fleet(&self) -> bool {
        self.r53.set_rate_limit(Some(40.0));
        // The fleet's first change batch is held (see `contend`).
        self.r53.hold(1, testkit::Requests::Writes);
        true
    }

    /// The fleet's first change batch (a direct write of the shared names)
    /// is let through only once another instance's address is at `www`:
    /// it then applies against what it read before, and Route53 refuses it
    /// (InvalidChangeBatch), however the starts were spread. (Under load the
    /// 50 processes started too far apart to conflict on their own.)
    fn contend(&self) {
        if !self.r53.wait_held(Duration::from_secs(60)) {
            return;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while self
            .r53
            .values(&self.zone_id, "www.example.com.", "A")
            .is_empty()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.r53.release(testkit::Release::Serve);
    }

    /// Throttled, and conflicting change batches (DELETE of an rrset another
    /// instance just changed) re-read and retried.
    fn assert_the_fleet_contended(&self) {
        let stats = self.r53.stats();
        eprintln!("route53 after the fleet joined: {stats:?}");
        assert!(stats.throttled > 0, "the fleet was throttled: {stats:?}");
        assert!(
            stats.invalid_change_batch > 0,
            "the fleet had conflicts to resolve: {stats:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Cloudflare: the strict stand-in
// ---------------------------------------------------------------------------

/// The strict Cloudflare stand-in with the zone `example.com` and one token with
/// DNS edit permission, given in `CLOUDFLARE_API_TOKEN`.
pub struct CloudflareBackend {
    pub cf: CloudflareServer,
    pub zone_id: String,
}

/// A target name in canonical form: absolute, with its trailing dot.
fn dotted(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// The last space-separated field of `value` (a target name) passed through `f`.
fn map_target(value: &str, f: impl Fn(&str) -> String) -> String {
    match value.rsplit_once(' ') {
        Some((head, target)) => format!("{head} {}", f(target)),
        None => f(value),
    }
}

impl CloudflareBackend {
    /// Cloudflare's content (names without trailing dot, TXT as written) in
    /// the canonical presentation.
    fn canonical(rtype: &str, content: &str) -> String {
        match rtype {
            "SRV" | "MX" | "PTR" | "CNAME" | "NS" => map_target(content, dotted),
            "TXT" if !content.starts_with('"') => {
                format!("\"{}\"", content.replace('\\', "\\\\").replace('"', "\\\""))
            }
            _ => content.to_string(),
        }
    }

    /// A canonical value as a person types it into the dashboard.
    fn content(rtype: &str, value: &str) -> String {
        match rtype {
            "SRV" | "MX" | "PTR" | "CNAME" | "NS" => {
                map_target(value, |t| t.trim_end_matches('.').to_string())
            }
            _ => value.to_string(),
        }
    }

    fn fqdn(name: &str) -> String {
        absolute(name).trim_end_matches('.').to_string()
    }
}

impl Backend for CloudflareBackend {
    fn name(&self) -> &'static str {
        "cloudflare"
    }

    fn start(_dir: &Path) -> CloudflareBackend {
        let cf = CloudflareServer::start();
        let zone_id = cf.create_zone(ZONE);
        cf.add_token(CF_TOKEN, true);
        CloudflareBackend { cf, zone_id }
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("CLOUDFLARE_API_TOKEN", CF_TOKEN);
    }

    fn provider_flags(&self) -> Vec<String> {
        let mut f = strings(["--provider", "cloudflare", "--zone", ZONE, "--endpoint"]);
        f.push(self.cf.url());
        f
    }

    fn provider_table(&self) -> String {
        format!(
            "type = \"cloudflare\"\nzone = \"{ZONE}\"\nendpoint = \"{}\"",
            self.cf.url()
        )
    }

    fn values(&self, name: &str, rtype: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .cf
            .values(&self.zone_id, &Self::fqdn(name), rtype)
            .iter()
            .map(|c| Self::canonical(rtype, c))
            .collect();
        v.sort();
        v
    }

    /// Each record has a TTL of its own; where they differ, the lowest, which is
    /// what resolvers use for the whole rrset (RFC 2181 §5.2).
    fn ttl(&self, name: &str, rtype: &str) -> Option<u32> {
        let name = Self::fqdn(name);
        self.cf
            .records(&self.zone_id)
            .into_iter()
            .filter(|r| r.name == name && r.rtype == rtype)
            .map(|r| r.ttl)
            .min()
    }

    fn ttl_of(&self, name: &str, rtype: &str, value: &str) -> Option<u32> {
        let name = Self::fqdn(name);
        let content = Self::content(rtype, value);
        self.cf
            .records(&self.zone_id)
            .into_iter()
            .find(|r| r.name == name && r.rtype == rtype && r.content == content)
            .map(|r| r.ttl)
    }

    fn ttl_per_record(&self) -> bool {
        true
    }

    /// A record of its own, without comment, as made in the dashboard.
    fn put_by_hand(&self, name: &str, rtype: &str, value: &str, ttl: u32) {
        self.cf.put_record(
            &self.zone_id,
            DnsRecord::new(&Self::fqdn(name), rtype, &Self::content(rtype, value), ttl),
        );
    }

    /// Deletes every record at the name holding the value, marked as
    /// anyone's or no one's.
    fn remove_by_hand(&self, name: &str, rtype: &str, value: &str) {
        let name = Self::fqdn(name);
        let content = Self::content(rtype, value);
        for r in self.cf.records(&self.zone_id) {
            if r.name == name && r.rtype == rtype && r.content == content {
                self.cf.delete_record(&self.zone_id, &r.id);
            }
        }
    }

    fn records(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .cf
            .records(&self.zone_id)
            .into_iter()
            .map(|r| {
                format!(
                    "{}. {} {}",
                    r.name,
                    r.rtype,
                    Self::canonical(&r.rtype, &r.content)
                )
            })
            .collect();
        out.sort();
        out
    }

    /// HTTP 429 with Retry-After (and the block until then that comes with
    /// it), 502, a connection closed without an answer, 503.
    fn inject_transient_faults(&self) -> bool {
        self.cf.fail_next(
            1,
            CfFault::RateLimited {
                retry_after_secs: 1,
            },
        );
        self.cf.fail_next(1, CfFault::ServerError(502));
        self.cf.fail_next(1, CfFault::Drop);
        self.cf.fail_next(1, CfFault::ServerError(503));
        true
    }

    fn pending_faults(&self) -> usize {
        self.cf.pending_faults()
    }

    fn retry_waits(&self) -> Option<Vec<(Duration, Duration)>> {
        let stats = self.cf.stats();
        Some(
            stats
                .retry_waits
                .iter()
                .map(|w| (w.retry_after, w.waited))
                .collect(),
        )
    }

    /// A tighter window than Cloudflare's 1,200 per five minutes, so that the
    /// fleet is throttled.
    fn limit_rate_for_a_fleet(&self) -> bool {
        // 50 joins are about 100 requests (a zone lookup and a batch each).
        self.cf.set_rate_limit(Some((30, Duration::from_secs(2))));
        true
    }

    fn assert_the_fleet_contended(&self) {
        let stats = self.cf.stats();
        eprintln!("cloudflare after the fleet joined: {stats:?}");
        assert!(stats.rate_limited > 0, "the fleet was throttled: {stats:?}");
    }
}

// ---------------------------------------------------------------------------
// RFC 2136: a real BIND
// ---------------------------------------------------------------------------

/// A real BIND (`named` on loopback) serving `example.com`, taking updates and
/// transfers signed with an hmac-sha256 key; read with dig, written by hand
/// with nsupdate.
pub struct Rfc2136Backend {
    pub bind: Bind,
    /// Where dnsreg sends its messages: BIND itself, or something in front.
    pub server: std::net::SocketAddr,
}

impl Rfc2136Backend {
    /// The zone served by `bind`, with dnsreg pointed at `server`.
    pub fn behind(bind: Bind, server: std::net::SocketAddr) -> Rfc2136Backend {
        Rfc2136Backend { bind, server }
    }
}

impl Backend for Rfc2136Backend {
    fn name(&self) -> &'static str {
        "rfc2136"
    }

    fn start(_dir: &Path) -> Rfc2136Backend {
        let bind = Bind::start();
        let server = bind.addr();
        Rfc2136Backend::behind(bind, server)
    }

    /// Server and key travel in flags and files.
    fn env(&self, _cmd: &mut Command) {}

    fn provider_flags(&self) -> Vec<String> {
        let mut f = strings(["--provider", "rfc2136", "--zone", ZONE, "--server"]);
        f.push(self.server.to_string());
        f.push("--tsig-key-file".into());
        f.push(self.bind.key_file().display().to_string());
        f
    }

    fn provider_table(&self) -> String {
        format!(
            "type = \"rfc2136\"\nzone = \"{ZONE}\"\nserver = \"{}\"\ntsig_key_file = \"{}\"",
            self.server,
            self.bind.key_file().display()
        )
    }

    fn values(&self, name: &str, rtype: &str) -> Vec<String> {
        self.bind.values(&absolute(name), rtype)
    }

    fn ttl(&self, name: &str, rtype: &str) -> Option<u32> {
        self.bind.ttl(&absolute(name), rtype)
    }

    fn claims_by_name(&self) -> bool {
        true
    }

    /// With nsupdate; BIND gives the whole rrset the TTL of the last RR added.
    fn put_by_hand(&self, name: &str, rtype: &str, value: &str, ttl: u32) {
        self.bind.nsupdate(&format!(
            "update add {} {ttl} {rtype} {value}",
            absolute(name)
        ));
    }

    /// With nsupdate.
    fn remove_by_hand(&self, name: &str, rtype: &str, value: &str) {
        self.bind
            .nsupdate(&format!("update delete {} {rtype} {value}", absolute(name)));
    }

    /// From a zone transfer, without the TTL column.
    fn records(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .bind
            .records()
            .iter()
            .map(|line| {
                let f: Vec<&str> = line.splitn(3, ' ').collect();
                format!("{} {}", f[0], f[2])
            })
            .collect();
        out.sort();
        out
    }

    /// BIND answers or it does not; there is no knob for a transient failure.
    fn inject_transient_faults(&self) -> bool {
        false
    }

    /// Fifty agents at once on the same rrsets: each UPDATE is guarded only
    /// by the instance's own registry and its values' claims, so none fails
    /// its prerequisites (BIND logs each that does), however many write the
    /// shared rrsets at once. Guarding the shared rrsets whole, as dnsreg
    /// once did, failed dozens.
    fn assert_the_fleet_contended(&self) {
        let log = self.bind.log();
        let updates = log.matches("adding an RR").count();
        let conflicts = log.matches("prerequisite not satisfied").count();
        eprintln!(
            "rfc2136 after the fleet joined: {updates} RRs added, {conflicts} UPDATEs failed their prerequisites"
        );
        assert!(
            updates >= 150,
            "the fleet's values were added; named's log:\n{log}"
        );
        assert_eq!(conflicts, 0, "no write conflicted; named's log:\n{log}");
    }
}
