//! The Hetzner Cloud metadata service (`/hetzner/v1/metadata`).
//!
//! Follows Hetzner's "Server metadata" documentation and cloud-init's
//! `DataSourceHetzner.py` / `helpers/hetzner.py`: no header is required;
//! `/hetzner/v1/metadata` is one YAML document, `/hetzner/v1/metadata/KEY` one
//! of its top-level values, `/hetzner/v1/metadata/private-networks` a YAML list
//! of the attached private networks (`[]` when none), `/hetzner/v1/userdata` the
//! user data. A server without a public IPv4 has no `public-ipv4` (404). The
//! region is the network zone (`eu-central`), the zone the data centre
//! (`fsn1-dc14`); IPv6 appears only in `network-config`.

use super::*;

pub(super) struct Hetzner {
    pub(super) instance: Instance,
}

impl Hetzner {
    pub(super) fn new(instance: Instance) -> Hetzner {
        Hetzner { instance }
    }

    pub(super) fn answer(&self, request: &Request) -> Response {
        if !request.is_read() {
            return error(StatusCode::METHOD_NOT_ALLOWED);
        }
        let path = request.path.trim_end_matches('/');
        if path == "/hetzner/v1/userdata" {
            return text(String::new());
        }
        if path == "/hetzner/v1/metadata" {
            let body: String = self
                .keys()
                .into_iter()
                .map(|(key, value)| match value {
                    Yaml::Scalar(value) => format!("{key}: {value}\n"),
                    Yaml::Block(block) => format!("{key}:\n{block}"),
                })
                .collect();
            return text(body);
        }
        let Some(key) = path.strip_prefix("/hetzner/v1/metadata/") else {
            return error(StatusCode::NOT_FOUND);
        };
        if key == "private-networks" {
            return text(unindent(&self.private_networks()));
        }
        match self.keys().into_iter().find(|(name, _)| *name == key) {
            Some((_, Yaml::Scalar(value))) => text(value),
            Some((_, Yaml::Block(block))) => text(unindent(&block)),
            None => error(StatusCode::NOT_FOUND),
        }
    }

    /// The top-level keys of the metadata document, in Hetzner's order.
    fn keys(&self) -> Vec<(&'static str, Yaml)> {
        let instance = &self.instance;
        let mut keys = vec![
            ("availability-zone", Yaml::Scalar(instance.zone.clone())),
            ("hostname", Yaml::Scalar(instance.hostname.clone())),
            ("instance-id", Yaml::Scalar(instance.instance_id.clone())),
            ("local-ipv4", Yaml::Scalar("''".to_owned())),
            ("network-config", Yaml::Block(self.network_config())),
        ];
        if let Some(ip) = &instance.public_ipv4 {
            keys.push(("public-ipv4", Yaml::Scalar(ip.clone())));
        }
        keys.push(("public-keys", Yaml::Scalar("[]".to_owned())));
        keys.push(("region", Yaml::Scalar(instance.region.clone())));
        keys
    }

    /// cloud-init network configuration v1, indented by two.
    fn network_config(&self) -> String {
        let mut subnets = String::from("    - ipv4: true\n      type: dhcp\n");
        if let Some(ipv6) = &self.instance.ipv6 {
            subnets.push_str(&format!(
                "    - address: {ipv6}/64\n      dns_nameservers:\n      - 2a01:4ff:ff00::add:1\n      - 2a01:4ff:ff00::add:2\n      gateway: fe80::1\n      ipv6: true\n      type: static\n"
            ));
        }
        format!(
            "  config:\n  - mac_address: 96:00:02:8a:1b:3c\n    name: eth0\n    subnets:\n{subnets}    type: physical\n  version: 1\n"
        )
    }

    /// The private networks list, indented by two (`[]` without a private address).
    fn private_networks(&self) -> String {
        let ip = &self.instance.private_ipv4;
        if ip.is_empty() {
            return "  []\n".to_owned();
        }
        let network = ip
            .rsplit_once('.')
            .map_or(ip.as_str(), |(network, _)| network);
        format!(
            "  - ip: {ip}\n    alias_ips: []\n    interface_num: 1\n    mac_address: 86:00:00:2a:7d:e0\n    network_id: 1234567\n    network_name: dnsreg-net\n    network: 10.0.0.0/8\n    subnet: {network}.0/24\n    gateway: 10.0.0.1\n"
        )
    }
}

enum Yaml {
    Scalar(String),
    /// Lines indented by two, each ending in a newline.
    Block(String),
}

/// A block served on its own (`/metadata/private-networks`) loses the indentation.
fn unindent(block: &str) -> String {
    block
        .lines()
        .map(|line| line.strip_prefix("  ").unwrap_or(line))
        .map(|line| format!("{line}\n"))
        .collect()
}

fn text(body: String) -> Response {
    reply(
        StatusCode::OK,
        &[("content-type", "text/plain; charset=utf-8")],
        body,
    )
}

/// The service's error answer: a short `text/plain` line.
pub(super) fn error(status: StatusCode) -> Response {
    let body = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    reply(
        status,
        &[("content-type", "text/plain; charset=utf-8")],
        body,
    )
}
