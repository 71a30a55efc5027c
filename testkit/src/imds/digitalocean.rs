//! The DigitalOcean droplet metadata service (`/metadata/v1/`, `/metadata/v1.json`).
//!
//! Follows DigitalOcean's "Droplet Metadata" API reference and cloud-init's
//! `helpers/digitalocean.py`: no header is required; values are `text/plain`;
//! a directory lists its keys one per line, sub-directories with a slash;
//! `/metadata/v1.json` is the whole document. A droplet without a public
//! address has no `interfaces/public/` (404), one without IPv6 no `ipv6/`.

use super::*;

pub(super) struct DigitalOcean {
    pub(super) instance: Instance,
}

impl DigitalOcean {
    pub(super) fn new(instance: Instance) -> DigitalOcean {
        DigitalOcean { instance }
    }

    pub(super) fn answer(&self, request: &Request) -> Response {
        if !request.is_read() {
            return error(StatusCode::METHOD_NOT_ALLOWED);
        }
        if request.path == "/metadata/v1.json" {
            return reply(
                StatusCode::OK,
                &[("content-type", "application/json")],
                self.document().to_string(),
            );
        }
        let tree = Node::dir([("metadata", Some(Node::dir([("v1", Some(self.tree()))])))]);
        match tree.lookup(&request.path) {
            Some((Node::Value(_), _)) if request.path.ends_with('/') => {
                error(StatusCode::NOT_FOUND)
            }
            Some((Node::Value(value), _)) => text_plain(value.clone()),
            Some((Node::Dir(entries), _)) => text_plain(Node::listing(entries)),
            None => error(StatusCode::NOT_FOUND),
        }
    }

    fn tree(&self) -> Node {
        let instance = &self.instance;
        let public = instance.public_ipv4.as_ref().map(|ip| {
            let ipv6 = instance.ipv6.as_ref().map(|ip| {
                Node::dir([
                    ("address", Node::value(ip)),
                    ("cidr", Node::value("64")),
                    ("gateway", Node::value(ipv6_gateway(ip))),
                ])
            });
            Node::dir([(
                "0",
                Some(Node::dir([
                    (
                        "anchor_ipv4",
                        Some(Node::dir([
                            ("address", Node::value("10.17.0.5")),
                            ("gateway", Node::value("10.17.0.1")),
                            ("netmask", Node::value("255.255.0.0")),
                        ])),
                    ),
                    (
                        "ipv4",
                        Some(Node::dir([
                            ("address", Node::value(ip)),
                            ("gateway", Node::value(gateway(ip))),
                            ("netmask", Node::value("255.255.240.0")),
                        ])),
                    ),
                    ("ipv6", ipv6),
                    ("mac", Node::value("d2:9a:4b:1c:0e:01")),
                    ("type", Node::value("public")),
                ])),
            )])
        });
        let private = Node::dir([(
            "0",
            Some(Node::dir([
                (
                    "ipv4",
                    Some(Node::dir([
                        ("address", Node::value(&instance.private_ipv4)),
                        ("gateway", Node::value("0.0.0.0")),
                        ("netmask", Node::value("255.255.240.0")),
                    ])),
                ),
                ("mac", Node::value("d2:9a:4b:1c:0e:02")),
                ("type", Node::value("private")),
            ])),
        )]);
        Node::dir([
            (
                "dns",
                Some(Node::dir([(
                    "nameservers",
                    Node::value("67.207.67.2\n67.207.67.3"),
                )])),
            ),
            (
                "features",
                Some(Node::dir([("dhcp_enabled", Node::value("false"))])),
            ),
            (
                "floating_ip",
                Some(Node::dir([(
                    "ipv4",
                    Some(Node::dir([("active", Node::value("false"))])),
                )])),
            ),
            ("hostname", Node::value(&instance.hostname)),
            ("id", Node::value(&instance.instance_id)),
            (
                "interfaces",
                Some(Node::dir([("private", Some(private)), ("public", public)])),
            ),
            ("public-keys", Node::value("")),
            ("region", Node::value(&instance.region)),
            (
                "reserved_ip",
                Some(Node::dir([(
                    "ipv4",
                    Some(Node::dir([("active", Node::value("false"))])),
                )])),
            ),
            ("tags", Some(Node::Dir(Vec::new()))),
            ("user-data", Node::value("")),
            ("vendor-data", Node::value("")),
        ])
    }

    /// `/metadata/v1.json`.
    fn document(&self) -> serde_json::Value {
        let instance = &self.instance;
        let mut interfaces = serde_json::json!({
            "private": [{
                "ipv4": { "ip_address": instance.private_ipv4, "netmask": "255.255.240.0", "gateway": "0.0.0.0" },
                "mac": "d2:9a:4b:1c:0e:02",
                "type": "private",
            }],
        });
        if let Some(ip) = &instance.public_ipv4 {
            let mut public = serde_json::json!({
                "ipv4": { "ip_address": ip, "netmask": "255.255.240.0", "gateway": gateway(ip) },
                "anchor_ipv4": { "ip_address": "10.17.0.5", "netmask": "255.255.0.0", "gateway": "10.17.0.1" },
                "mac": "d2:9a:4b:1c:0e:01",
                "type": "public",
            });
            if let Some(ipv6) = &instance.ipv6 {
                public["ipv6"] = serde_json::json!({ "ip_address": ipv6, "cidr": 64, "gateway": ipv6_gateway(ipv6) });
            }
            interfaces["public"] = serde_json::json!([public]);
        }
        serde_json::json!({
            "droplet_id": instance.instance_id.parse::<u64>().map_or_else(|_| serde_json::Value::from(instance.instance_id.as_str()), serde_json::Value::from),
            "hostname": instance.hostname,
            "vendor_data": "",
            "public_keys": [],
            "auth_key": "",
            "region": instance.region,
            "interfaces": interfaces,
            "floating_ip": { "ipv4": { "active": false } },
            "reserved_ip": { "ipv4": { "active": false } },
            "dns": { "nameservers": ["67.207.67.2", "67.207.67.3"] },
            "tags": [],
            "features": { "dhcp_enabled": false },
        })
    }
}

fn gateway(ip: &str) -> String {
    match ip.rsplit_once('.') {
        Some((network, _)) => format!("{network}.1"),
        None => ip.to_owned(),
    }
}

fn ipv6_gateway(ip: &str) -> String {
    match ip.split_once("::") {
        Some((prefix, _)) => format!("{prefix}::1"),
        None => ip.to_owned(),
    }
}

fn text_plain(body: String) -> Response {
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
        status.canonical_reason().unwrap_or("error").to_lowercase()
    );
    reply(
        status,
        &[("content-type", "text/plain; charset=utf-8")],
        body,
    )
}
