//! Where the queries go out and the answers come in: one UDP socket per
//! address family on an ephemeral port, and the interfaces to ask on.
//!
//! The sockets are never bound to 5353 and never join the group: a query from
//! another port is a one-shot "legacy unicast" query (RFC 6762 §5.1, §6.7)
//! that every responder answers by unicast to its sender. So discover needs
//! no port shared with avahi-daemon or dnsreg's own responder, and sees
//! nothing but the answers to its own questions (a stray multicast announcement
//! could not be told from a forged one anyway). Each query is sent once per
//! interface with IP_MULTICAST_IF (IPV6_MULTICAST_IF) set to it: without it,
//! a host with no route for 224.0.0.0/4 (no default route) gets ENETUNREACH.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::fail::Fail;

/// RFC 6762 §3 and §20.
const PORT: u16 = 5353;
const GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb);

/// An interface to ask on: its name, an IPv4 address to send from, its
/// index if it has IPv6, and its subnets (address, prefix length).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Link {
    pub(super) name: String,
    pub(super) v4: Option<Ipv4Addr>,
    pub(super) v6: Option<u32>,
    pub(super) nets: Vec<(IpAddr, u8)>,
}

/// RFC 6762 §11: an answer is taken only from the local link, an address in
/// one of the interfaces' subnets (or IPv6 link-local); anything else is
/// dropped, whatever it says.
pub(super) fn on_link(links: &[Link], from: IpAddr) -> bool {
    let within = |net: IpAddr, prefix: u8| match (net, from) {
        (IpAddr::V4(n), IpAddr::V4(f)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            u32::from(n) & mask == u32::from(f) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(f)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            u128::from(n) & mask == u128::from(f) & mask
        }
        _ => false,
    };
    let link_local = matches!(from, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
    link_local
        || links
            .iter()
            .flat_map(|l| &l.nets)
            .any(|&(net, prefix)| within(net, prefix))
}

/// Every interface that is up (running), not loopback, can multicast and has
/// an address; `only`, if given, by name.
pub(super) fn links(only: Option<&str>) -> Result<Vec<Link>, Fail> {
    let all = if_addrs::get_if_addrs()
        .map_err(|e| Fail::Transient(crate::net::interfaces_unlisted(&e)))?;
    let mut out: Vec<Link> = Vec::new();
    for iface in all {
        if !iface.is_oper_up() || iface.is_loopback() || iface.is_p2p() || !multicast(&iface.name) {
            continue;
        }
        if only.is_some_and(|o| o != iface.name) {
            continue;
        }
        let at = match out.iter().position(|l| l.name == iface.name) {
            Some(i) => i,
            None => {
                out.push(Link {
                    name: iface.name.clone(),
                    v4: None,
                    v6: None,
                    nets: Vec::new(),
                });
                out.len() - 1
            }
        };
        let prefix = match &iface.addr {
            if_addrs::IfAddr::V4(a) => a.prefixlen,
            if_addrs::IfAddr::V6(a) => a.prefixlen,
        };
        out[at].nets.push((iface.ip(), prefix));
        match iface.ip() {
            IpAddr::V4(ip) => out[at].v4 = out[at].v4.or(Some(ip)),
            IpAddr::V6(_) => out[at].v6 = iface.index,
        }
    }
    if out.is_empty() {
        return Err(Fail::Transient(match only {
            Some(name) => format!(
                "interface {name} is not up with multicast and an address (see `ip addr show {name}`)"
            ),
            None => "no network interface is up with multicast and an address".into(),
        }));
    }
    Ok(out)
}

/// IFF_MULTICAST in /sys/class/net/NAME/flags; an interface whose flags
/// cannot be read is tried anyway.
fn multicast(name: &str) -> bool {
    const IFF_MULTICAST: u32 = 0x1000;
    std::fs::read_to_string(format!("/sys/class/net/{name}/flags"))
        .ok()
        .and_then(|s| u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok())
        .is_none_or(|flags| flags & IFF_MULTICAST != 0)
}

/// The sockets of one round.
pub(super) struct Sockets {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    links: Vec<Link>,
}

impl Sockets {
    pub(super) fn open(links: Vec<Link>) -> Result<Sockets, Fail> {
        let opening =
            |e: io::Error| Fail::Transient(format!("opening a UDP socket for multicast DNS: {e}"));
        let v4 = if links.iter().any(|l| l.v4.is_some()) {
            Some(socket(Domain::IPV4).map_err(opening)?)
        } else {
            None
        };
        // IPv6 is a bonus: a host without it still asks over IPv4.
        let v6 = if links.iter().any(|l| l.v6.is_some()) {
            socket(Domain::IPV6)
                .inspect_err(|e| tracing::debug!("discover: no IPv6 multicast DNS: {e}"))
                .ok()
        } else {
            None
        };
        Ok(Sockets { v4, v6, links })
    }

    /// The interfaces asked on, for messages.
    pub(super) fn names(&self) -> String {
        let names: Vec<&str> = self.links.iter().map(|l| l.name.as_str()).collect();
        names.join(", ")
    }

    /// Sends each packet on every interface and family; an error only if
    /// nothing could be sent at all.
    pub(super) async fn send(&self, packets: &[Vec<u8>]) -> Result<(), Fail> {
        let (mut sent, mut last) = (0, None);
        for link in &self.links {
            for packet in packets {
                match self.send_on(link, packet).await {
                    Ok(n) => sent += n,
                    Err(e) => {
                        tracing::debug!("discover: multicast DNS on {}: {e}", link.name);
                        last = Some(format!("{}: {e}", link.name));
                    }
                }
            }
        }
        match (sent, last) {
            (0, Some(e)) => Err(Fail::Transient(format!(
                "sending the multicast DNS query: {e}"
            ))),
            _ => Ok(()),
        }
    }

    /// One packet on one interface, by each family it has; how many went out.
    async fn send_on(&self, link: &Link, packet: &[u8]) -> io::Result<usize> {
        let mut sent = 0;
        if let (Some(socket), Some(ip)) = (&self.v4, link.v4) {
            socket2::SockRef::from(socket).set_multicast_if_v4(&ip)?;
            socket
                .send_to(packet, SocketAddrV4::new(GROUP_V4, PORT))
                .await?;
            sent += 1;
        }
        if let (Some(socket), Some(index)) = (&self.v6, link.v6) {
            socket2::SockRef::from(socket).set_multicast_if_v6(index)?;
            let to = SocketAddrV6::new(GROUP_V6, PORT, 0, index);
            match socket.send_to(packet, to).await {
                Ok(_) => sent += 1,
                Err(e) => tracing::debug!("discover: IPv6 multicast DNS on {}: {e}", link.name),
            }
        }
        Ok(sent)
    }

    /// Hands every datagram from port 5353 to `take` until `until`.
    pub(super) async fn receive(&self, until: Instant, mut take: impl FnMut(&[u8])) {
        let mut buf4 = vec![0u8; 9000];
        let mut buf6 = vec![0u8; 9000];
        loop {
            let got = tokio::time::timeout_at(until, async {
                tokio::select! {
                    r = recv(self.v4.as_ref(), &mut buf4) => r.map(|(n, from)| (n, from, 4)),
                    r = recv(self.v6.as_ref(), &mut buf6) => r.map(|(n, from)| (n, from, 6)),
                }
            })
            .await;
            let (n, from, family) = match got {
                Err(_) => return,
                Ok(Err(e)) => {
                    tracing::debug!("discover: receiving multicast DNS: {e}");
                    continue;
                }
                Ok(Ok(got)) => got,
            };
            // RFC 6762 §6.7: answers to a legacy query still come from port 5353.
            if from.port() == PORT && on_link(&self.links, from.ip()) {
                take(if family == 4 { &buf4[..n] } else { &buf6[..n] });
            }
        }
    }
}

/// A datagram from `socket`, or never if there is none.
async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// A UDP socket on an ephemeral port, for tokio, with the multicast TTL
/// RFC 6762 §11 asks for (255) and loopback on, so that a responder on this
/// very host (avahi-daemon, `dnsreg run`) hears the query too.
fn socket(domain: Domain) -> io::Result<UdpSocket> {
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    let any: SocketAddr = if domain == Domain::IPV6 {
        socket.set_only_v6(true)?;
        socket.set_multicast_hops_v6(255)?;
        socket.set_multicast_loop_v6(true)?;
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        socket.set_multicast_ttl_v4(255)?;
        socket.set_multicast_loop_v4(true)?;
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    socket.bind(&any.into())?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}
