//! The OpenStack (Nova) metadata service: its own `/openstack/` tree and the
//! EC2-compatible `/latest/meta-data/`.
//!
//! Follows Nova's "Metadata service" documentation and cloud-init's
//! `DataSourceOpenStack.py` / `helpers/openstack.py`: no header and no token
//! (Nova does not implement IMDSv2); `meta_data.json` carries `uuid`, `name`,
//! `hostname`, `availability_zone`, `project_id`; the EC2 tree's `instance-id`
//! is Nova's EC2-style id (`i-` and eight hex digits), not the UUID; an instance
//! without a floating IP serves `public-ipv4` as an empty value, as Nova does.
//! The region is not part of Nova's metadata (it lives in the Keystone
//! catalogue), so it is not served.

use super::*;

const PROJECT_ID: &str = "8d3f3b4cf2d94b7c9a7b0e5f1c2d3e4f";

pub(super) struct OpenStack {
    pub(super) instance: Instance,
}

impl OpenStack {
    pub(super) fn new(instance: Instance) -> OpenStack {
        OpenStack { instance }
    }

    pub(super) fn answer(&self, request: &Request) -> Response {
        if !request.is_read() {
            return error(StatusCode::METHOD_NOT_ALLOWED);
        }
        match self.tree().lookup(&request.path) {
            Some((Node::Value(_), _)) if request.path.ends_with('/') => {
                error(StatusCode::NOT_FOUND)
            }
            Some((Node::Value(value), _)) => {
                let content_type = if request.path.ends_with(".json") {
                    "application/json"
                } else {
                    "text/plain; charset=UTF-8"
                };
                reply(
                    StatusCode::OK,
                    &[("content-type", content_type)],
                    value.clone(),
                )
            }
            Some((Node::Dir(entries), _)) => reply(
                StatusCode::OK,
                &[("content-type", "text/plain; charset=UTF-8")],
                Node::listing(entries),
            ),
            None => error(StatusCode::NOT_FOUND),
        }
    }

    fn tree(&self) -> Node {
        let openstack_version = || {
            Some(Node::dir([
                ("meta_data.json", Node::value(self.meta_data().to_string())),
                (
                    "network_data.json",
                    Node::value(self.network_data().to_string()),
                ),
                ("vendor_data.json", Node::value("{}")),
                ("vendor_data2.json", Node::value("{}")),
            ]))
        };
        let openstack = Node::dir([
            ("2012-08-10", openstack_version()),
            ("2013-04-04", openstack_version()),
            ("2016-06-30", openstack_version()),
            ("2018-08-27", openstack_version()),
            ("2020-10-14", openstack_version()),
            ("latest", openstack_version()),
        ]);
        let ec2 = || Some(Node::dir([("meta-data", Some(self.ec2_meta_data()))]));
        Node::dir([
            ("2009-04-04", ec2()),
            ("latest", ec2()),
            ("openstack", Some(openstack)),
        ])
    }

    fn name(&self) -> String {
        self.instance
            .hostname
            .split('.')
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// `meta_data.json`.
    fn meta_data(&self) -> serde_json::Value {
        let instance = &self.instance;
        serde_json::json!({
            "uuid": instance.instance_id,
            "meta": {},
            "hostname": instance.hostname,
            "name": self.name(),
            "launch_index": 0,
            "availability_zone": instance.zone,
            "random_seed": "",
            "project_id": PROJECT_ID,
            "devices": [],
            "dedicated_cpus": [],
        })
    }

    /// `network_data.json`: one port, its IPv4 (and IPv6) network.
    fn network_data(&self) -> serde_json::Value {
        let instance = &self.instance;
        let mut networks = vec![serde_json::json!({
            "id": "network0",
            "type": "ipv4",
            "link": "tap1a81968a-79",
            "ip_address": instance.private_ipv4,
            "netmask": "255.255.255.0",
            "routes": [],
            "network_id": "da5bb487-5193-4a65-a3df-4a0055a8c0d7",
        })];
        if let Some(ipv6) = &instance.ipv6 {
            networks.push(serde_json::json!({
                "id": "network1",
                "type": "ipv6",
                "link": "tap1a81968a-79",
                "ip_address": ipv6,
                "netmask": "ffff:ffff:ffff:ffff::",
                "routes": [],
                "network_id": "da5bb487-5193-4a65-a3df-4a0055a8c0d7",
            }));
        }
        serde_json::json!({
            "links": [{ "id": "tap1a81968a-79", "type": "ovs", "ethernet_mac_address": "fa:16:3e:9c:bf:3d", "mtu": 1450, "vif_id": "1a81968a-797a-400f-8a80-567f997eb93f" }],
            "networks": networks,
            "services": [],
        })
    }

    /// The EC2-compatible `meta-data/` tree.
    fn ec2_meta_data(&self) -> Node {
        let instance = &self.instance;
        let hex: String = instance
            .instance_id
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(8)
            .collect();
        Node::dir([
            ("ami-id", Node::value("ami-00000001")),
            ("ami-launch-index", Node::value("0")),
            ("ami-manifest-path", Node::value("FIXME")),
            ("hostname", Node::value(&instance.hostname)),
            ("instance-action", Node::value("none")),
            ("instance-id", Node::value(format!("i-{hex:0>8}"))),
            ("instance-type", Node::value("m1.small")),
            ("local-hostname", Node::value(&instance.hostname)),
            ("local-ipv4", Node::value(&instance.private_ipv4)),
            (
                "placement",
                Some(Node::dir([(
                    "availability-zone",
                    Node::value(&instance.zone),
                )])),
            ),
            ("public-hostname", Node::value(&instance.hostname)),
            // Nova writes the floating IP, or nothing.
            (
                "public-ipv4",
                Node::value(instance.public_ipv4.clone().unwrap_or_default()),
            ),
            ("reservation-id", Node::value("r-3r1kzqbn")),
            ("security-groups", Node::value("default")),
        ])
    }
}

/// Nova's (webob's) error page.
pub(super) fn error(status: StatusCode) -> Response {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let detail = match status {
        StatusCode::NOT_FOUND => "The resource could not be found.",
        _ => "",
    };
    let body = format!(
        "<html>\n <head>\n  <title>{title}</title>\n </head>\n <body>\n  <h1>{title}</h1>\n  {detail}<br /><br />\n\n\n\n </body>\n</html>"
    );
    reply(
        status,
        &[("content-type", "text/html; charset=UTF-8")],
        body,
    )
}
