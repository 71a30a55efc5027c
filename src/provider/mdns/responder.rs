//! The responder of `dnsreg run`: one mdns-sd daemon (its own thread, a
//! socket per family on port 5353, shared with avahi-daemon through
//! SO_REUSEADDR/SO_REUSEPORT), the registrations it holds, and what its
//! events said of them.
//!
//! mdns-sd probes each name (RFC 6762 §8.1), announces it twice (§8.3),
//! renames on a conflict met while probing (§9) and sends goodbyes (§10.1)
//! on `unregister` (twice, 120 ms apart) and on `shutdown` (once). Dropping
//! the daemon neither stops its thread nor says goodbye: [`Responder::close`]
//! must run at every end of the agent.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use mdns_sd::{DaemonEvent, IfKind, ServiceDaemon, UnregisterStatus};

use super::Change;
use super::events::{self, Heard};
use super::registrations::{Registration, on_link, registrations};
use crate::model::MdnsConfig;
use crate::record::{Record, Value};
use crate::registry::Values;

/// How long a join waits for its new registrations to be announced: probing
/// takes 0.75 to 1 s, a conflict another second or two.
const ANNOUNCE_WAIT: Duration = Duration::from_secs(4);
/// How long to wait for the daemon to confirm an unregister or a shutdown
/// (it answers once the goodbye has left, within milliseconds).
const REPLY_WAIT: Duration = Duration::from_secs(2);
/// After the first goodbye, the second goes out 120 ms later (mdns-sd's
/// `UnregisterResend`): a leave waits for it too.
const SECOND_GOODBYE: Duration = Duration::from_millis(200);

/// The running responder of one `[providers.NAME]`.
pub struct Responder {
    name: String,
    config: MdnsConfig,
    daemon: ServiceDaemon,
    registered: Registered,
    heard: Arc<Mutex<Heard>>,
}

/// The registrations, by the full name they were registered under.
type Registered = Arc<Mutex<BTreeMap<String, Registration>>>;

impl Responder {
    /// Checks that port 5353 can be shared, starts the daemon on the
    /// configured interfaces and a task that logs what it reports. No await:
    /// a start cut off half-way leaves no daemon behind.
    pub fn start(name: &str, config: &MdnsConfig) -> anyhow::Result<Responder> {
        preflight().with_context(|| format!("{name}: starting the mDNS responder"))?;
        let daemon = ServiceDaemon::new()
            .map_err(|e| anyhow::anyhow!("{name}: starting the mDNS responder: {e}"))?;
        let setup = || -> Result<mdns_sd::Receiver<mdns_sd::DaemonEvent>, mdns_sd::Error> {
            if !config.interfaces.is_empty() {
                daemon.disable_interface(IfKind::All)?;
                for i in &config.interfaces {
                    daemon.enable_interface(IfKind::Name(i.clone()))?;
                }
            }
            daemon.monitor()
        };
        let monitor = match setup() {
            Ok(m) => m,
            Err(e) => {
                let _ = daemon.shutdown();
                anyhow::bail!("{name}: starting the mDNS responder: {e}");
            }
        };
        let heard = Arc::new(Mutex::new(Heard::default()));
        let registered = Registered::default();
        let relink = Relink {
            name: name.to_string(),
            interfaces: config.interfaces.clone(),
            daemon: daemon.clone(),
            registered: Arc::clone(&registered),
            heard: Arc::clone(&heard),
        };
        events::spawn(name.to_string(), monitor, Arc::clone(&heard), move |e| {
            relink.follow(e);
        });
        tracing::info!(provider = %name, interfaces = ?config.interfaces, "mDNS responder started");
        Ok(Responder {
            name: name.to_string(),
            config: config.clone(),
            daemon,
            registered,
            heard,
        })
    }

    /// Registers what `records` ask for and unregisters the rest (all of
    /// it when `records` is empty): a leave returns once the goodbyes have
    /// gone out.
    pub async fn apply(&self, records: &[Record]) -> anyhow::Result<Change> {
        let wanted = registrations(records, &self.config.domain).map_err(anyhow::Error::msg)?;
        let before = self.current();
        let mut change = Change::default();
        let mut goodbyes = false;
        for (fullname, reg) in &before {
            if !wanted.contains_key(fullname) {
                self.unregister(fullname).await?;
                change.removed.extend(reg.values.iter().cloned());
                goodbyes = true;
            }
        }
        if goodbyes {
            tokio::time::sleep(SECOND_GOODBYE).await;
        }
        let mut new = Vec::new();
        for (fullname, reg) in &wanted {
            if before.get(fullname) == Some(reg) {
                continue;
            }
            self.warn_off_link(reg);
            warn_machine_host(&self.name, reg);
            // An update of a name already ours is announced again without
            // probing (RFC 6762 §8.4): probing, it would not answer for a second.
            self.register(reg, !before.contains_key(fullname))?;
            let old: Values = before
                .get(fullname)
                .map(|r| r.values.clone())
                .unwrap_or_default();
            change.added.extend(reg.values.difference(&old).cloned());
            change.removed.extend(old.difference(&reg.values).cloned());
            new.push(fullname.clone());
        }
        self.wait_announced(&new).await;
        change.owned = self
            .current()
            .values()
            .flat_map(|r| r.values.clone())
            .collect();
        // A host's address shared by two registrations is removed with one
        // and kept with the other.
        change.removed.retain(|v| !change.owned.contains(v));
        Ok(change)
    }

    /// What [`Responder::apply`] would change, without changing it.
    pub fn dry_run(&self, records: &[Record]) -> anyhow::Result<Change> {
        let wanted = registrations(records, &self.config.domain).map_err(anyhow::Error::msg)?;
        Ok(Change::between(&self.current(), &wanted))
    }

    /// Each of `records` and whether it is registered and announced now.
    pub fn presence(&self, records: &[Record]) -> Vec<(Value, bool)> {
        let current = self.current();
        let heard = lock(&self.heard);
        records
            .iter()
            .map(|r| {
                let present = current
                    .iter()
                    .any(|(f, reg)| reg.values.contains(&r.value) && heard.announced(f));
                (r.value.clone(), present)
            })
            .collect()
    }

    /// Stops the daemon: a goodbye for whatever is still registered, then
    /// its thread ends. Waits for it to say so.
    pub async fn close(&self) {
        let left = self.current().len();
        match self.daemon.shutdown() {
            Ok(rx) => match tokio::time::timeout(REPLY_WAIT, rx.recv_async()).await {
                Ok(Ok(_)) => tracing::info!(
                    provider = %self.name,
                    "mDNS responder stopped ({left} registration(s) said goodbye)"
                ),
                _ => {
                    tracing::warn!(provider = %self.name, "the mDNS responder did not confirm its shutdown")
                }
            },
            Err(e) => tracing::warn!(provider = %self.name, "stopping the mDNS responder: {e}"),
        }
        lock(&self.registered).clear();
    }

    fn current(&self) -> BTreeMap<String, Registration> {
        lock(&self.registered).clone()
    }

    fn register(&self, reg: &Registration, probe: bool) -> anyhow::Result<()> {
        reg.service_info(probe)
            .and_then(|info| self.daemon.register(info))
            .map_err(|e| anyhow::anyhow!("{}: registering {}: {e}", self.name, reg.fullname()))?;
        lock(&self.registered).insert(reg.fullname(), reg.clone());
        Ok(())
    }

    /// Unregisters `fullname` (the name it was registered under, renamed or
    /// not) and waits until its first goodbye has gone out.
    async fn unregister(&self, fullname: &str) -> anyhow::Result<()> {
        let rx = self
            .daemon
            .unregister(fullname)
            .map_err(|e| anyhow::anyhow!("{}: unregistering {fullname}: {e}", self.name))?;
        lock(&self.registered).remove(fullname);
        lock(&self.heard).forget(fullname);
        match tokio::time::timeout(REPLY_WAIT, rx.recv_async()).await {
            Ok(Ok(UnregisterStatus::OK)) => {
                tracing::info!(provider = %self.name, "mDNS: {fullname} unregistered (goodbye sent)");
            }
            Ok(Ok(UnregisterStatus::NotFound)) => {
                tracing::debug!(provider = %self.name, "mDNS: {fullname} was not registered");
            }
            _ => anyhow::bail!(
                "{}: the responder did not confirm that {fullname} said goodbye",
                self.name
            ),
        }
        Ok(())
    }

    /// Waits until each of `fullnames` has been announced, for at most
    /// [`ANNOUNCE_WAIT`]; says which were not.
    async fn wait_announced(&self, fullnames: &[String]) {
        let deadline = tokio::time::Instant::now() + ANNOUNCE_WAIT;
        loop {
            let missing: Vec<&String> = {
                let heard = lock(&self.heard);
                fullnames.iter().filter(|f| !heard.announced(f)).collect()
            };
            if missing.is_empty() {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    provider = %self.name,
                    "mDNS: {missing:?} registered but not announced yet (on no interface whose subnet holds their address?); the responder announces them as soon as it can"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// mdns-sd announces an address only on an interface whose subnet holds
    /// it, and says nothing of the others.
    fn warn_off_link(&self, reg: &Registration) {
        let links = local_links(&self.config.interfaces);
        let off: Vec<&IpAddr> = reg
            .addresses
            .iter()
            .filter(|ip| !on_link(**ip, &links))
            .collect();
        if !off.is_empty() {
            tracing::warn!(
                provider = %self.name,
                "mDNS: {off:?} of {} is on no local interface{}: multicast DNS announces only addresses of the segment; publish the address this machine has there ([instance] address = \"private\", or ipv4 = ...)",
                reg.host,
                if self.config.interfaces.is_empty() {
                    String::new()
                } else {
                    format!(" of {:?}", self.config.interfaces)
                }
            );
        }
    }
}

/// What the event task needs to follow addresses that come and go: mdns-sd
/// announces a registration on the interfaces that have an address in its
/// subnet when it is registered, and never on one that gets such an address
/// later (only its automatic-address services follow interfaces). An agent
/// started before DHCP answered, or a link that went down and up, would
/// otherwise stay silent until it stops.
struct Relink {
    name: String,
    interfaces: Vec<String>,
    daemon: ServiceDaemon,
    registered: Registered,
    heard: Arc<Mutex<Heard>>,
}

impl Relink {
    /// On an address gone, forgets the announcement of each registration no
    /// interface can carry now; on an address added, registers again (probing
    /// first, as on a new link: RFC 6762 §8) each one not announced that an
    /// interface can carry.
    fn follow(&self, event: &DaemonEvent) {
        let (gone, ip) = match event {
            DaemonEvent::IpDel(ip) => (true, ip),
            DaemonEvent::IpAdd(ip) => (false, ip),
            _ => return,
        };
        let links = local_links(&self.interfaces);
        let registered = lock(&self.registered).clone();
        let mut heard = lock(&self.heard);
        for (fullname, reg) in &registered {
            let carried = reg.addresses.iter().any(|a| on_link(*a, &links));
            if gone && !carried && heard.announced(fullname) {
                heard.forget(fullname);
                tracing::warn!(
                    provider = %self.name,
                    "mDNS: {ip} is gone and no interface carries {fullname} now; it is announced again when one does"
                );
            } else if !gone && carried && !heard.announced(fullname) {
                match reg
                    .service_info(true)
                    .and_then(|info| self.daemon.register(info))
                {
                    Ok(()) => tracing::info!(
                        provider = %self.name,
                        "mDNS: {ip} is up: announcing {fullname} there (probing first)"
                    ),
                    Err(e) => tracing::error!(
                        provider = %self.name,
                        "mDNS: {ip} is up, but registering {fullname} again failed: {e}"
                    ),
                }
            }
        }
    }
}

/// A host name the same as the machine's is avahi-daemon's too: two
/// responders with different address sets for one name rename or flush each
/// other's.
fn warn_machine_host(provider: &str, reg: &Registration) {
    let Ok(machine) = std::fs::read_to_string("/proc/sys/kernel/hostname") else {
        return;
    };
    let machine = machine.trim().to_ascii_lowercase();
    if !machine.is_empty() && reg.host.split('.').next() == Some(machine.as_str()) {
        tracing::warn!(
            provider = %provider,
            "mDNS: {} is this machine's host name, which avahi-daemon publishes too where it runs; give the [[host]] a name of its own (e.g. \"{machine}-web\")",
            reg.host
        );
    }
}

/// The addresses and prefix lengths of the local interfaces (those named
/// in `only`, when it names any).
fn local_links(only: &[String]) -> Vec<(IpAddr, u8)> {
    let Ok(ifs) = if_addrs::get_if_addrs() else {
        return Vec::new();
    };
    ifs.into_iter()
        .filter(|i| only.is_empty() || only.contains(&i.name))
        .map(|i| match i.addr {
            if_addrs::IfAddr::V4(a) => (IpAddr::V4(a.ip), a.prefixlen),
            if_addrs::IfAddr::V6(a) => (IpAddr::V6(a.ip), a.prefixlen),
        })
        .collect()
}

/// The interfaces listed, then port 5353 bound as mdns-sd binds it (SO_REUSEADDR + SO_REUSEPORT): a
/// process holding it without sharing leaves mdns-sd without a socket, and
/// it would then announce nothing and report no error.
fn preflight() -> anyhow::Result<()> {
    use socket2::{Domain, Protocol, Socket, Type};
    // mdns-sd lists the interfaces the same way, and answers on none
    // (silently) when it cannot.
    if_addrs::get_if_addrs()
        .map_err(|e| anyhow::anyhow!("{}", crate::net::interfaces_unlisted(&e)))?;
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    let addr = std::net::SocketAddr::from(([0, 0, 0, 0], 5353));
    socket.bind(&addr.into()).map_err(|e| {
        anyhow::anyhow!(
            "UDP port 5353 cannot be shared ({e}): another program holds it without SO_REUSEADDR (avahi-daemon with disallow-other-stacks=yes?); let it share the port or stop it"
        )
    })?;
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
