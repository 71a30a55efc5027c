//! `dnsreg discover NAME`: the client side of what the agent publishes.
//!
//! A machine that needs a service (a worker looking for its master, a proxy
//! looking for its backends) finds it by DNS the same way the agent put it
//! there: SRV per RFC 2782, DNS-SD per RFC 6763, or plain A/AAAA. This module
//! owns the lookup (through hickory-resolver, never `dig`), the RFC 2782
//! ordering, the RFC 6763 TXT parsing, `--wait` polling, and the output format.
//!
//! What NAME means is decided from one round of four parallel queries (SRV,
//! PTR, A and AAAA of NAME), in this order of precedence:
//!
//! 1. SRV records at NAME: the service's endpoints, ordered per RFC 2782;
//! 2. else PTR records at NAME: a DNS-SD service type; each PTR names an
//!    instance, whose SRV and TXT are read (RFC 6763 §4, §6);
//! 3. else the A and AAAA records of NAME.
//!
//! Why a round found nothing to print (no answer, an error answer, nothing
//! there yet) is a [`Fail::Transient`], said as a person should read it:
//! each may pass (the service not published yet, the network still coming
//! up at boot), so `--wait` asks again until its deadline.
//!
//! A query that fails (timeout, SERVFAIL, REFUSED) decides nothing: the
//! attempt fails rather than falling through to a lower kind, so a flaky
//! server never turns an SRV service into a host name.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::Name;
use tokio::time::Instant;

use crate::cli::DiscoverArgs;
use crate::config::UsageError;
use crate::retry::Backoff;

mod endpoint;
mod lookup;
mod mdns;
mod order;
mod txt;

// What the fuzz targets and the unit tests reach by this module's path.
#[cfg(test)]
pub(crate) use endpoint::Endpoint;
#[cfg(test)]
pub(crate) use lookup::{address, instance_label, instances, srv_records};
#[cfg(test)]
pub(crate) use order::{SrvAnswer, classify_srv, order, rfc2782_order};
#[cfg(test)]
pub(crate) use txt::{parse_txt, txt_of};

use crate::fail::Fail;
use endpoint::Endpoint as Found;
use endpoint::print;

/// Per-query timeout with `--server`: a loopback or LAN server answers in
/// milliseconds; 2 s and one retry bound an unreachable one (hickory counts
/// `attempts` as retries after the first try).
const SERVER_TIMEOUT: Duration = Duration::from_secs(2);
const SERVER_ATTEMPTS: usize = 1;

/// Polling with `--wait`: jittered, growing to at most 2 s between rounds, so
/// that a fleet waiting for one master does not ask in lockstep.
const POLL: Backoff = Backoff {
    base: Duration::from_millis(500),
    cap: Duration::from_secs(2),
    attempts: u32::MAX,
};

/// With `--wait`, the last round starts this long before the deadline.
const LAST_ROUND: Duration = Duration::from_millis(100);

/// Runs `dnsreg discover`.
pub async fn run(args: &DiscoverArgs) -> anyhow::Result<ExitCode> {
    let request = Request::parse(args)?;
    let label = format!("discover {}", args.name);
    let start = Instant::now();
    let deadline = request.wait.map(|w| start + w);
    let mut round = 0;
    let mut last: Option<Fail> = None;
    loop {
        let result = match deadline {
            // No round outlives the deadline; one cut short keeps the last reason.
            Some(d) => match tokio::time::timeout_at(d, attempt(&request)).await {
                Ok(result) => result,
                Err(_) => Err(last
                    .take()
                    .unwrap_or_else(|| Fail::Transient("no answer (timed out)".into()))),
            },
            None => attempt(&request).await,
        };
        let failure = match result {
            Ok(endpoints) => {
                print(&endpoints, &request)?;
                return Ok(ExitCode::SUCCESS);
            }
            Err(f) => f,
        };
        // What will not pass by asking again ends the wait at once.
        let (Some(deadline), Fail::Transient(_)) = (deadline, &failure) else {
            return Err(anyhow!("{label}: {failure} (asked {})", request.asked));
        };
        // The next round starts a little before the deadline at the latest, so
        // that the last one has time to be answered.
        let now = Instant::now();
        let latest = deadline.checked_sub(LAST_ROUND).unwrap_or(start);
        if now >= latest {
            return Err(anyhow!(
                "{label}: nothing answered within {} (asked {}); last try: {failure}",
                humantime::format_duration(request.wait.unwrap_or_default()),
                request.asked
            ));
        }
        tracing::debug!("{label}: {failure}; asking again");
        last = Some(failure);
        let pause = POLL.delay(round).max(Duration::from_millis(100));
        tokio::time::sleep_until((now + pause).min(latest)).await;
        round = round.saturating_add(1);
    }
}

/// One round, by multicast DNS or by unicast DNS.
async fn attempt(request: &Request) -> Result<Vec<Found>, Fail> {
    if request.mdns {
        mdns::attempt(request).await
    } else {
        lookup::attempt(request).await
    }
}

// ---------------------------------------------------------------------------
// The request
// ---------------------------------------------------------------------------

/// Where to ask.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Upstream {
    /// /etc/resolv.conf: its servers, options and search domains.
    System,
    /// One server, NAME taken as absolute, nothing else consulted.
    Server(SocketAddr),
}

/// The checked command line.
#[derive(Debug)]
pub(crate) struct Request {
    name: Name,
    upstream: Upstream,
    /// Servers as the user should read them in messages.
    asked: String,
    wait: Option<Duration>,
    one: bool,
    json: bool,
    resolve: bool,
    port: Option<u16>,
    /// Ask by multicast DNS (RFC 6762) instead of a DNS server.
    mdns: bool,
    /// `--interface`: multicast DNS on this interface only.
    interface: Option<String>,
    /// `--instance`: the one DNS-SD instance wanted, by its own name.
    instance: Option<String>,
}

impl Request {
    pub(crate) fn parse(args: &DiscoverArgs) -> Result<Request, UsageError> {
        let mut name = Name::from_utf8(&args.name).map_err(|e| {
            UsageError(format!(
                "discover {}: not a domain name ({e}); expected e.g. _http._tcp.example.com",
                args.name
            ))
        })?;
        let mdns = args.mdns || is_local(&name);
        if mdns {
            name = mdns_name(name, &args.name)?;
        }
        check_scope(args, mdns)?;
        let upstream = match &args.server {
            Some(s) => Upstream::Server(
                parse_server(s).map_err(|e| UsageError(format!("discover {}: {e}", args.name)))?,
            ),
            None => Upstream::System,
        };
        let asked = match &upstream {
            _ if mdns => "by multicast DNS".into(),
            Upstream::Server(addr) => {
                // With one chosen server there is no search list: NAME is absolute.
                name.set_fqdn(true);
                addr.to_string()
            }
            Upstream::System => system_servers(),
        };
        let wait = args
            .wait
            .as_deref()
            .map(|w| {
                let bad = |why: String| {
                    UsageError(format!(
                        "discover {}: --wait {w}: {why}; expected a duration such as 30s or 5m",
                        args.name
                    ))
                };
                match humantime::parse_duration(w) {
                    Ok(d) if d > crate::config::MAX_DURATION => Err(bad(format!(
                        "longer than {}",
                        humantime::format_duration(crate::config::MAX_DURATION)
                    ))),
                    Ok(d) => Ok(d),
                    Err(e) => Err(bad(e.to_string())),
                }
            })
            .transpose()?;
        Ok(Request {
            name,
            upstream,
            asked,
            wait,
            one: args.one,
            json: args.json,
            resolve: args.resolve,
            port: args.port,
            mdns,
            interface: args.interface.clone(),
            instance: args.instance.clone(),
        })
    }

    /// `--instance`: of the DNS-SD instances a browse found, the one wanted
    /// (its first label, compared as DNS compares names: ASCII case aside);
    /// without the flag, all of them.
    fn pick(&self, found: Vec<Name>) -> Result<Vec<Name>, Fail> {
        let Some(wanted) = &self.instance else {
            return Ok(found);
        };
        if found.is_empty() {
            return Err(Fail::Transient(format!(
                "no DNS-SD instances (PTR records) at {}",
                self.name
            )));
        }
        let labels: Vec<String> = found.iter().map(lookup::instance_label).collect();
        let chosen: Vec<Name> = found
            .iter()
            .zip(&labels)
            .filter(|(_, label)| label.eq_ignore_ascii_case(wanted))
            .map(|(n, _)| n.clone())
            .collect();
        if chosen.is_empty() {
            return Err(Fail::Transient(format!(
                "no instance called {wanted:?} among {}",
                labels
                    .iter()
                    .map(|l| format!("{l:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(chosen)
    }

    /// A resolver with an empty cache: every `--wait` round sees fresh data.
    fn resolver(&self) -> Result<TokioResolver, Fail> {
        let (config, mut options) = match &self.upstream {
            Upstream::System => hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| Fail::Transient(format!("reading /etc/resolv.conf: {e}")))?,
            Upstream::Server(addr) => {
                // UDP, and TCP when the answer is truncated (a large shared rrset).
                // (hickory-resolver 0.26 has `try_tcp_on_error` but never reads it.)
                let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                    .into_iter()
                    .map(|mut c| {
                        c.port = addr.port();
                        c
                    })
                    .collect();
                let server = NameServerConfig::new(addr.ip(), true, connections);
                let mut options = ResolverOpts::default();
                options.timeout = SERVER_TIMEOUT;
                options.attempts = SERVER_ATTEMPTS;
                options.use_hosts_file = ResolveHosts::Never;
                (
                    ResolverConfig::from_parts(None, vec![], vec![server]),
                    options,
                )
            }
        };
        // No answer outlives this round (the resolver is built afresh for each).
        options.cache_size = 0;
        TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .map_err(|e| Fail::Transient(format!("setting up the resolver: {e}")))
    }
}

/// Whether `name` is under `.local` (RFC 6762 §3: multicast DNS's own domain).
fn is_local(name: &Name) -> bool {
    name.iter()
        .next_back()
        .is_some_and(|l| l.eq_ignore_ascii_case(b"local"))
}

/// NAME for multicast DNS: absolute (there is no search list), and under
/// `.local` (`--mdns _http._tcp` asks for `_http._tcp.local.`).
fn mdns_name(mut name: Name, given: &str) -> Result<Name, UsageError> {
    if !is_local(&name) {
        name = name
            .append_label("local")
            .map_err(|e| UsageError(format!("discover {given}: {e}")))?;
    }
    name.set_fqdn(true);
    Ok(name)
}

/// The flags that only make sense for some NAMEs or some ways of asking.
fn check_scope(args: &DiscoverArgs, mdns: bool) -> Result<(), UsageError> {
    let given = &args.name;
    if mdns && args.server.is_some() {
        return Err(UsageError(format!(
            "discover {given}: --server asks one DNS server, but a name under .local is asked by \
             multicast DNS on the local segment (RFC 6762); leave out --server, or ask for a name \
             outside .local"
        )));
    }
    if !mdns && args.interface.is_some() {
        return Err(UsageError(format!(
            "discover {given}: --interface is for multicast DNS: a name under .local, or --mdns"
        )));
    }
    if args.instance.is_some() && !is_service_type(given) {
        return Err(UsageError(format!(
            "discover {given}: --instance picks a DNS-SD instance, so NAME must be a service type \
             such as _http._tcp.local or _http._tcp.example.com (not an SRV or host name)"
        )));
    }
    Ok(())
}

/// A DNS-SD service type (RFC 6763 §7): `_service._tcp` or `_service._udp`
/// at the front, or a subtype `_sub._sub._service._tcp`.
fn is_service_type(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    let proto = |l: &str| l.eq_ignore_ascii_case("_tcp") || l.eq_ignore_ascii_case("_udp");
    match labels.as_slice() {
        [s, p, ..] if s.starts_with('_') && proto(p) => true,
        [_, sub, s, p, ..] => sub.eq_ignore_ascii_case("_sub") && s.starts_with('_') && proto(p),
        _ => false,
    }
}

/// `--server`: an IP address, or IP:PORT (`[v6]:port`); port 53 by default.
pub(crate) fn parse_server(s: &str) -> Result<SocketAddr, UsageError> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = s.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| {
            UsageError(format!(
                "--server {s}: not an IP address or IP:PORT (e.g. 192.0.2.53, 127.0.0.1:5353, [2001:db8::53]:53)"
            ))
        })
}

/// /etc/resolv.conf's servers, for messages.
fn system_servers() -> String {
    match hickory_resolver::system_conf::read_system_conf() {
        Ok((config, _)) => {
            let list: Vec<String> = config
                .name_servers()
                .iter()
                .map(|ns| {
                    let port = ns.connections.first().map_or(53, |c| c.port);
                    SocketAddr::new(ns.ip, port).to_string()
                })
                .collect();
            format!("{} from /etc/resolv.conf", list.join(", "))
        }
        Err(_) => "the servers of /etc/resolv.conf".into(),
    }
}

#[cfg(test)]
mod tests;
