//! The Oracle Cloud (OCI) instance metadata service, version 2 (`/opc/v2/`).
//!
//! Follows OCI's "Getting Instance Metadata" and cloud-init's
//! `DataSourceOracle.py`: every request needs `Authorization: Bearer Oracle`
//! (else 401); requests carrying `Forwarded`, `X-Forwarded-For` or
//! `X-Forwarded-Host` are refused; the v1 endpoints (`/opc/v1/`, `/openstack/`)
//! are 404, as on an instance with IMDSv1 disabled. `/opc/v2/instance/` is one
//! JSON document (`id`, `displayName`, `hostname`, `region` (the short key on
//! older regions), `canonicalRegionName`, `availabilityDomain`, ...), each of
//! its keys also readable on its own below it; `/opc/v2/vnics/` is a JSON array
//! with `privateIp` (and `ipv6Addresses`). OCI's metadata does not expose the
//! public address at all: an instance's `public_ipv4` is never served.

use super::*;

const COMPARTMENT: &str =
    "ocid1.compartment.oc1..aaaaaaaa4fbsm6nduzzrpfvnm4g3z3x6hxyhyzhrdqgrdyxdovfiqaqvcnsa";
const TENANCY: &str =
    "ocid1.tenancy.oc1..aaaaaaaaba3pv6wkcr4jqae5f15p2b2m2yt2j6rx32uzr4h25vqstifsfdsq";

pub(super) struct Oracle {
    pub(super) instance: Instance,
}

impl Oracle {
    pub(super) fn new(instance: Instance) -> Oracle {
        Oracle { instance }
    }

    pub(super) fn answer(&self, request: &Request) -> Response {
        if request.forwarded() {
            return error(StatusCode::FORBIDDEN);
        }
        let Some(rest) = request.path.strip_prefix("/opc/v2/") else {
            return error(StatusCode::NOT_FOUND);
        };
        if request.header("authorization") != Some("Bearer Oracle") {
            return error(StatusCode::UNAUTHORIZED);
        }
        if !request.is_read() {
            return error(StatusCode::METHOD_NOT_ALLOWED);
        }
        let mut segments = rest.split('/').filter(|segment| !segment.is_empty());
        let document = match segments.next() {
            Some("instance") => self.instance_document(),
            Some("vnics") => self.vnics(),
            _ => return error(StatusCode::NOT_FOUND),
        };
        let mut node = &document;
        for segment in segments {
            let child = match node {
                serde_json::Value::Object(map) => map.get(segment),
                serde_json::Value::Array(items) => {
                    segment.parse::<usize>().ok().and_then(|i| items.get(i))
                }
                _ => None,
            };
            match child {
                Some(child) => node = child,
                None => return error(StatusCode::NOT_FOUND),
            }
        }
        match node {
            serde_json::Value::String(text) => reply(
                StatusCode::OK,
                &[("content-type", "text/plain")],
                text.clone(),
            ),
            serde_json::Value::Object(_) | serde_json::Value::Array(_) => reply(
                StatusCode::OK,
                &[("content-type", "application/json")],
                serde_json::to_string_pretty(node).expect("a JSON value serializes"),
            ),
            other => reply(
                StatusCode::OK,
                &[("content-type", "text/plain")],
                other.to_string(),
            ),
        }
    }

    /// `/opc/v2/instance/`.
    fn instance_document(&self) -> serde_json::Value {
        let instance = &self.instance;
        let (key, short) = region_key(&instance.region);
        let ad_number = instance.zone.rsplit('-').next().unwrap_or("1");
        serde_json::json!({
            "availabilityDomain": instance.zone,
            "faultDomain": "FAULT-DOMAIN-2",
            "compartmentId": COMPARTMENT,
            "displayName": instance.hostname,
            "hostname": instance.hostname,
            "id": instance.instance_id,
            "image": format!("ocid1.image.oc1.{}.aaaaaaaaxxmwgx2kbcvwj5ucw5hauwl7m5yhtyr3xmcoudfpaxqdhfnzvnmq", instance.region),
            "metadata": { "ssh_authorized_keys": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDnsregDemoKey dnsreg" },
            "region": short,
            "canonicalRegionName": instance.region,
            "ociAdName": format!("{}-ad-{ad_number}", key.to_lowercase()),
            "regionInfo": {
                "realmKey": "oc1",
                "realmDomainComponent": "oraclecloud.com",
                "regionKey": key,
                "regionIdentifier": instance.region,
            },
            "shape": "VM.Standard.E4.Flex",
            "shapeConfig": { "ocpus": 1.0, "memoryInGBs": 16.0 },
            "state": "Running",
            "tenantId": TENANCY,
            "timeCreated": 1_704_067_200_000_u64,
            "definedTags": {},
            "freeformTags": {},
        })
    }

    /// `/opc/v2/vnics/`: the primary VNIC. No public address: OCI's metadata
    /// has none to give.
    fn vnics(&self) -> serde_json::Value {
        let instance = &self.instance;
        let network = instance
            .private_ipv4
            .rsplit_once('.')
            .map_or(instance.private_ipv4.as_str(), |(network, _)| network);
        let mut vnic = serde_json::json!({
            "vnicId": format!("ocid1.vnic.oc1.{}.abtheljsbwhtoxvt2nf5xd3evcoscw3bkxbtq7yzdmtlkh6z3dvbtqvxwxoq", instance.region),
            "privateIp": instance.private_ipv4,
            "vlanTag": 0,
            "macAddr": "02:00:17:00:a1:b2",
            "virtualRouterIp": format!("{network}.1"),
            "subnetCidrBlock": format!("{network}.0/24"),
            "nicIndex": 0,
        });
        if let Some(ipv6) = &instance.ipv6 {
            vnic["ipv6Addresses"] = serde_json::json!([ipv6]);
            vnic["ipv6SubnetCidrBlock"] = serde_json::Value::from("2603:c020:8000:1200::/64");
            vnic["ipv6VirtualRouterIp"] = serde_json::Value::from("fe80::200:17ff:fe00:1");
        }
        serde_json::json!([vnic])
    }
}

/// The region key and what `region` holds: the lowercase key on the older
/// regions, the full name on the others.
fn region_key(region: &str) -> (String, String) {
    let known = [
        ("us-ashburn-1", "IAD"),
        ("us-phoenix-1", "PHX"),
        ("eu-frankfurt-1", "FRA"),
        ("uk-london-1", "LHR"),
    ];
    match known.iter().find(|(name, _)| *name == region) {
        Some((_, key)) => ((*key).to_owned(), key.to_lowercase()),
        None => {
            let key: String = region
                .split('-')
                .nth(1)
                .unwrap_or(region)
                .chars()
                .take(3)
                .collect();
            (key.to_uppercase(), region.to_owned())
        }
    }
}

/// The service's error answer: OCI's `{"code", "message"}` JSON.
pub(super) fn error(status: StatusCode) -> Response {
    let code = match status {
        StatusCode::UNAUTHORIZED => "NotAuthenticated",
        StatusCode::FORBIDDEN => "NotAuthorized",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::TOO_MANY_REQUESTS => "TooManyRequests",
        _ => "InternalServerError",
    };
    let body = serde_json::json!({
        "code": code,
        "message": status.canonical_reason().unwrap_or("Error"),
    });
    reply(
        status,
        &[("content-type", "application/json")],
        body.to_string(),
    )
}
