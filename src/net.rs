//! Reading what another machine sent, within bounds; which endpoints may be
//! spoken to in plain http; which addresses another machine can reach.

/// Reads a response body as text, refusing one longer than `limit` bytes
/// before it is all in memory: a metadata service or an API answering with
/// gigabytes (broken, or hostile) must not take the machine's memory.
pub async fn read_capped(mut resp: reqwest::Response, limit: usize) -> Result<String, String> {
    if let Some(len) = resp.content_length()
        && len > limit as u64
    {
        return Err(too_long(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_long(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn too_long(limit: usize) -> String {
    format!(
        "the answer is longer than {} KiB, more than any real one",
        limit / 1024
    )
}

/// Plain http is allowed to loopback stand-ins only: credentials travel over TLS.
pub(crate) fn is_loopback_url(url: &str) -> bool {
    let rest = url.strip_prefix("http://").unwrap_or("");
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Why `ip` can be no machine's address in DNS, if it cannot: the
/// unspecified, loopback, broadcast, multicast and link-local addresses
/// (private ranges are fine where they are wanted).
pub fn unusable_ipv4(ip: std::net::Ipv4Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("the unspecified address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_broadcast() {
        Some("the broadcast address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else {
        None
    }
}

/// [`unusable_ipv4`] for IPv6: unspecified, loopback, multicast, link-local.
pub fn unusable_ipv6(ip: std::net::Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("the unspecified address")
    } else if ip.is_loopback() {
        Some("the loopback address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if ip.is_unicast_link_local() {
        Some("a link-local address")
    } else {
        None
    }
}

/// Why the machine's network interfaces could not be listed, with the usual
/// cause: getifaddrs(3) asks the kernel over a netlink socket, which a
/// systemd unit's RestrictAddressFamilies= may forbid.
pub fn interfaces_unlisted(e: &std::io::Error) -> String {
    format!(
        "cannot list the network interfaces ({e}); a systemd unit must allow netlink sockets for that (RestrictAddressFamilies= with AF_NETLINK, as the shipped dnsreg.service has)"
    )
}
