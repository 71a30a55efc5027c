//! The conformance battery: the ownership and safety rules (docs/design.md,
//! "Ownership"), proven the same way against every provider.
//!
//! A test here is written once, generically over a [`Backend`] (a stand-in or a
//! real server holding the zone `example.com`), and [`battery!`] instantiates it
//! as a `#[test]` per provider, e.g. `battery::route53::a_value_put_there_by_hand_survives_join_and_leave`.
//! What only one provider has (Route53's multivalue routing and request counts,
//! Cloudflare's comments and tokens, TSIG) stays in that provider's own file.
//! The idea is hickory-dns's `zone_handler_battery`.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;
use testkit::imds::{AwsInstance, ImdsServer};

use crate::util::isolate;

mod backends;
mod tests;

pub use backends::{CloudflareBackend, Rfc2136Backend, Route53Backend};
pub use tests::FULL;

/// One provider under test: a stand-in (or real server) holding one zone `example.com`.
pub trait Backend: Sized {
    /// "route53", "cloudflare", "rfc2136": used in messages.
    fn name(&self) -> &'static str;
    /// Starts the server(s) with the zone; `dir` is the test's scratch directory.
    fn start(dir: &Path) -> Self;
    /// Sets on a `dnsreg` command whatever environment this provider needs (endpoint URLs, tokens).
    fn env(&self, cmd: &mut Command);
    /// The flags that select this provider on a one-shot command, e.g.
    /// ["--provider","route53","--zone","example.com"] (+ "--endpoint", url, for cloudflare).
    fn provider_flags(&self) -> Vec<String>;
    /// The body of a `[providers.NAME]` TOML table (type, zone, endpoint, …) for config-file tests.
    fn provider_table(&self) -> String;
    /// Values at `name` (relative to example.com unless it ends with '.') and `rtype`, sorted,
    /// in ONE canonical presentation across providers: A/AAAA addresses as usual; SRV
    /// "prio weight port target." with an absolute target with trailing dot; PTR/CNAME absolute
    /// with trailing dot; TXT as the quoted strings joined by a space, e.g. "\"a=1\" \"b=2\"".
    fn values(&self, name: &str, rtype: &str) -> Vec<String>;
    /// The rrset's TTL (for cloudflare: the lowest TTL of the records at that name/type).
    fn ttl(&self, name: &str, rtype: &str) -> Option<u32>;
    /// The TTL the one value is served with (the rrset's, or on cloudflare its record's).
    fn ttl_of(&self, name: &str, rtype: &str, value: &str) -> Option<u32> {
        self.values(name, rtype)
            .iter()
            .any(|v| v == value)
            .then(|| self.ttl(name, rtype))
            .flatten()
    }
    /// Whether each record keeps a TTL of its own (cloudflare), so that a value
    /// dnsreg adds to a name where others are has the configured TTL, theirs
    /// keeping theirs; else the rrset has one TTL and an added value takes it.
    fn ttl_per_record(&self) -> bool {
        false
    }
    /// Whether claims on shared values are kept by name (rfc2136): each
    /// shared value dnsreg publishes has a claim rrset naming its instances
    /// (see `util::claim_name`).
    fn claims_by_name(&self) -> bool {
        false
    }
    /// Adds one value by hand, as a person or another tool would (not marked as dnsreg's).
    fn put_by_hand(&self, name: &str, rtype: &str, value: &str, ttl: u32);
    /// Takes one value out by hand, whoever put it there (on Cloudflare: deletes
    /// the record holding it), as a person tidying the zone would.
    fn remove_by_hand(&self, name: &str, rtype: &str, value: &str);
    /// Every record in the zone except the zone's own apex SOA/NS (and, for BIND, the ns. glue),
    /// as canonical "name. TYPE value" lines sorted — used to assert "the zone is empty" / exact contents.
    fn records(&self) -> Vec<String>;
    /// Makes the next few requests fail the way this provider fails transiently (throttling, 5xx,
    /// dropped connections); returns false if the provider has no way to inject faults.
    fn inject_transient_faults(&self) -> bool;
    /// Faults injected and not met by a request yet.
    fn pending_faults(&self) -> usize {
        0
    }
    /// Every time the server told the client when to come back (a
    /// `Retry-After`), what it said and how long the client really waited,
    /// as the server measured it; `None` where the provider says no such
    /// thing.
    fn retry_waits(&self) -> Option<Vec<(std::time::Duration, std::time::Duration)>> {
        None
    }

    /// Throttles requests the way the real service does, scaled so that 50 agents
    /// starting at once are held back within a short test; false if the provider
    /// has no such limit.
    fn limit_rate_for_a_fleet(&self) -> bool {
        false
    }
    /// While the fleet's processes run (started, not yet waited for): makes
    /// sure what the test means to provoke happens whatever the timing (a
    /// loaded machine spreads the fleet's starts). Nothing by default.
    fn contend(&self) {}
    /// After 50 agents joined at once: panics unless the server saw what the
    /// fleet test means to provoke (throttled requests, conflicting writes), so
    /// that a pass proves something. Nothing to check by default.
    fn assert_the_fleet_contended(&self) {}
}

/// A provider under test, the AWS metadata stand-in describing the instance
/// (`i-0123456789abcdef0`, public 203.0.113.7, private 10.0.0.5), and a scratch
/// directory. Derefs to the backend, so its handle (`r53`, `cf`, `bind`) is at hand.
pub struct World<B: Backend> {
    pub backend: B,
    pub imds: ImdsServer,
    pub dir: TempDir,
}

impl<B: Backend> World<B> {
    pub fn new() -> World<B> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dmi")).unwrap();
        World {
            backend: B::start(dir.path()),
            imds: ImdsServer::start(AwsInstance::default()),
            dir,
        }
    }

    /// `dnsreg` with every endpoint pointed at the stand-ins, nothing else reachable:
    /// no real metadata address, no real cloud, no user's AWS config.
    pub fn dnsreg(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dnsreg"));
        isolate(&mut c, self.dir.path());
        c.env("AWS_EC2_METADATA_SERVICE_ENDPOINT", self.imds.url())
            .env("DNSREG_DMI_DIR", self.dir.path().join("dmi"));
        self.backend.env(&mut c);
        c
    }

    /// `dnsreg CMD <provider flags> ARGS --state-dir …`: a one-shot command
    /// configured from flags alone, as the instance the metadata stand-in
    /// describes. `args` is split at spaces.
    pub fn flags(&self, cmd: &str, args: &str) -> Command {
        let mut c = self.dnsreg();
        c.arg(cmd)
            .args(self.backend.provider_flags())
            .args(args.split_whitespace())
            .arg("--state-dir")
            .arg(self.state_dir());
        c
    }

    /// The same as instance `id` with address `ip` (`--metadata none`), with a
    /// state directory of its own: many instances in one test.
    pub fn instance(&self, cmd: &str, id: &str, ip: &str, args: &str) -> Command {
        let mut c = self.dnsreg();
        c.arg(cmd)
            .args(self.backend.provider_flags())
            .args(args.split_whitespace())
            .args(["--metadata", "none", "--instance-id", id, "--ipv4", ip])
            .arg("--state-dir")
            .arg(self.state_dir().join(id));
        c
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Writes a configuration file; `{state_dir}` in the text is filled in, and
    /// `{provider}` with the body of this provider's `[providers.NAME]` table.
    pub fn config(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let text = text
            .replace("{provider}", &self.backend.provider_table())
            .replace("{state_dir}", &self.state_dir().display().to_string());
        std::fs::write(&path, text).unwrap();
        path
    }

    /// See [`Backend::values`].
    pub fn values(&self, name: &str, rtype: &str) -> Vec<String> {
        self.backend.values(name, rtype)
    }

    /// See [`Backend::records`].
    pub fn records(&self) -> Vec<String> {
        self.backend.records()
    }
}

impl<B: Backend> Deref for World<B> {
    type Target = B;

    fn deref(&self) -> &B {
        &self.backend
    }
}

/// `battery!(MODULE, BACKEND)` instantiates every battery test as a `#[test]`
/// in `battery::MODULE`; `battery!(MODULE, BACKEND, without [TEST, …])` leaves
/// those out for a backend that cannot run them (a name that is not a battery
/// test does not compile), rather than letting them pass without testing anything.
macro_rules! battery {
    ($module:ident, $backend:ty $(, without [$($skip:ident),* $(,)?])? $(,)?) => {
        mod $module {
            #[allow(unused_imports, reason = "for a backend named by a relative path")]
            use super::*;

            macro_rules! instantiate {
                $($( ($skip) => {
                    const _: fn() = $crate::battery::tests::$skip::<$backend>;
                }; )*)?
                ($test:ident) => {
                    #[test]
                    fn $test() {
                        $crate::battery::tests::$test::<$backend>()
                    }
                };
            }
            instantiate!(join_and_leave_are_idempotent_and_status_follows);
            instantiate!(a_config_file_publishes_every_kind_of_record);
            instantiate!(a_value_put_there_by_hand_survives_join_and_leave);
            instantiate!(our_own_address_put_there_by_hand_is_not_claimed);
            instantiate!(an_address_change_between_runs_is_cleaned_up);
            instantiate!(an_old_address_now_used_by_another_instance_is_not_removed);
            instantiate!(transient_failures_are_retried);
            instantiate!(an_unknown_zone_is_a_clear_runtime_error);
            instantiate!(a_changed_ttl_reaches_our_own_rrsets_but_not_shared_ones);
            instantiate!(fifty_agents_join_and_leave_one_name_concurrently);
            instantiate!(ipv6_adds_aaaa_records_beside_the_a_records);
            instantiate!(address_private_publishes_the_private_address);
        }
    };
}

battery!(route53, Route53Backend);
battery!(cloudflare, CloudflareBackend);
// BIND cannot be made to fail transiently on request, so the retry test is left
// out rather than passing without testing anything.
battery!(
    rfc2136,
    backends::Rfc2136Backend,
    without[transient_failures_are_retried]
);
