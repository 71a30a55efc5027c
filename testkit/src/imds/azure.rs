//! The Azure Instance Metadata Service (`/metadata/instance`,
//! `/metadata/scheduledevents`, `/metadata/versions`).
//!
//! Follows "Azure Instance Metadata Service" and "Scheduled Events" (Azure
//! docs) and cloud-init's `sources/azure/imds.py`: every request needs
//! `Metadata: true` (else 400) and is refused when it carries `X-Forwarded-For`;
//! `api-version` is required and must be one the service knows (else 400 with
//! `newest-versions`); only `GET` reads; a leaf is read with `format=text`; an
//! absent public address is an empty `publicIpAddress` (also what a
//! Standard-SKU public IP looks like), never a missing key or a 404.

use super::*;

/// The instance API versions the service accepts, oldest first.
const INSTANCE_VERSIONS: &[&str] = &[
    "2017-03-01",
    "2017-04-02",
    "2017-08-01",
    "2017-10-01",
    "2017-12-01",
    "2018-02-01",
    "2018-04-02",
    "2018-10-01",
    "2019-02-01",
    "2019-03-11",
    "2019-04-30",
    "2019-06-01",
    "2019-06-04",
    "2019-08-01",
    "2019-08-15",
    "2019-11-01",
    "2020-06-01",
    "2020-07-15",
    "2020-09-01",
    "2020-10-01",
    "2020-12-01",
    "2021-01-01",
    "2021-02-01",
    "2021-03-01",
    "2021-05-01",
    "2021-10-01",
    "2021-11-01",
    "2021-11-15",
    "2021-12-13",
    "2023-07-01",
];

/// The scheduled events API versions, oldest first.
const EVENTS_VERSIONS: &[&str] = &[
    "2017-03-01",
    "2017-08-01",
    "2017-11-01",
    "2019-01-01",
    "2019-08-01",
    "2020-07-01",
];

const SUBSCRIPTION: &str = "8d10da13-8125-4ba9-a717-bf7490507b3d";
const RESOURCE_GROUP: &str = "dnsreg-rg";

pub(super) struct Azure {
    pub(super) instance: Instance,
    /// `DocumentIncarnation`: bumped whenever the events change.
    incarnation: u64,
    events: Vec<serde_json::Value>,
}

impl Azure {
    pub(super) fn new(instance: Instance) -> Azure {
        Azure {
            instance,
            incarnation: 0,
            events: Vec::new(),
        }
    }

    /// One scheduled event of `event_type` (or none), as the platform posts it.
    pub(super) fn set_event(&mut self, event_type: Option<&str>) {
        self.incarnation += 1;
        self.events = match event_type {
            None => Vec::new(),
            Some(event_type) => {
                // A Spot eviction gives at least 30 s; other events 5-15 min.
                let ahead = if event_type == "Preempt" { 30 } else { 600 };
                let not_before = http_date(SystemTime::now() + Duration::from_secs(ahead));
                let duration: i64 = match event_type {
                    "Freeze" => 5,
                    _ => -1,
                };
                vec![serde_json::json!({
                    "EventId": format!("{}-{:04}-4B8E-B3E1-{:012}", "C7061BAC", self.incarnation, self.incarnation),
                    "EventStatus": "Scheduled",
                    "EventType": event_type,
                    "ResourceType": "VirtualMachine",
                    "Resources": [self.instance.hostname],
                    "NotBefore": not_before,
                    "Description": "",
                    "EventSource": "Platform",
                    "DurationInSeconds": duration,
                })]
            }
        };
    }

    pub(super) fn answer(&self, request: &Request) -> Response {
        if request.forwarded() {
            return error(
                StatusCode::BAD_REQUEST,
                "Bad request. Requests with the X-Forwarded-For header are not supported. For more information refer to aka.ms/azureimds",
            );
        }
        if request.header("metadata") != Some("true") {
            return error(
                StatusCode::BAD_REQUEST,
                "Bad request. Required metadata header not specified",
            );
        }
        let path = request.path.trim_end_matches('/');
        let (versions, rest) = if path == "/metadata/versions" {
            if !request.is_read() {
                return method_not_allowed();
            }
            return json(&serde_json::json!({ "apiVersions": INSTANCE_VERSIONS }));
        } else if let Some(rest) = path.strip_prefix("/metadata/instance") {
            (INSTANCE_VERSIONS, rest)
        } else if path == "/metadata/scheduledevents" {
            (EVENTS_VERSIONS, "")
        } else {
            return error(StatusCode::NOT_FOUND, "Not found");
        };
        if !rest.is_empty() && !rest.starts_with('/') {
            return error(StatusCode::NOT_FOUND, "Not found");
        }
        match request.param("api-version") {
            None => return version_error(versions, "api-version was not specified in the request"),
            Some(version) if !versions.contains(&version) => {
                return version_error(
                    versions,
                    "api-version is invalid or was not specified in the request",
                );
            }
            Some(_) => {}
        }
        if versions == EVENTS_VERSIONS {
            return match request.method {
                Method::GET => json(&serde_json::json!({
                    "DocumentIncarnation": self.incarnation,
                    "Events": self.events,
                })),
                // Approving an event (StartRequests) is accepted; the stand-in
                // does not model what approval changes.
                Method::POST => reply(
                    StatusCode::OK,
                    &[("content-type", "application/json; charset=utf-8")],
                    String::new(),
                ),
                _ => method_not_allowed(),
            };
        }
        if request.method != Method::GET {
            return method_not_allowed();
        }
        let mut node = &self.document();
        for segment in rest.split('/').filter(|segment| !segment.is_empty()) {
            let child = match node {
                serde_json::Value::Object(map) => map.get(segment),
                serde_json::Value::Array(items) => {
                    segment.parse::<usize>().ok().and_then(|i| items.get(i))
                }
                _ => None,
            };
            match child {
                Some(child) => node = child,
                None => return error(StatusCode::NOT_FOUND, "Not found"),
            }
        }
        let leaf = !node.is_object() && !node.is_array();
        match (leaf, request.param("format").unwrap_or("json")) {
            (true, "text") => {
                let text = match node {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                reply(
                    StatusCode::OK,
                    &[("content-type", "text/plain; charset=utf-8")],
                    text,
                )
            }
            (false, "json") => json(node),
            (true, _) => error(
                StatusCode::BAD_REQUEST,
                "Bad request. The format parameter must be text for a leaf node. For more information refer to aka.ms/azureimds",
            ),
            (false, _) => error(
                StatusCode::BAD_REQUEST,
                "Bad request. The format parameter must be json for a non-leaf node. For more information refer to aka.ms/azureimds",
            ),
        }
    }

    /// The whole `/metadata/instance` document.
    fn document(&self) -> serde_json::Value {
        let instance = &self.instance;
        let name = &instance.hostname;
        let ipv6: Vec<serde_json::Value> = instance
            .ipv6
            .iter()
            .map(|ip| serde_json::json!({ "privateIpAddress": ip }))
            .collect();
        serde_json::json!({
            "compute": {
                "azEnvironment": "AzurePublicCloud",
                "isHostCompatibilityLayerVm": "false",
                "licenseType": "",
                "location": instance.region,
                "name": name,
                "offer": "0001-com-ubuntu-server-jammy",
                "osProfile": {
                    "adminUsername": "azureuser",
                    "computerName": name,
                    "disablePasswordAuthentication": "true",
                },
                "osType": "Linux",
                "placementGroupId": "",
                "plan": { "name": "", "product": "", "publisher": "" },
                "platformFaultDomain": "0",
                "platformUpdateDomain": "0",
                "priority": "Spot",
                "provider": "Microsoft.Compute",
                "publicKeys": [],
                "publisher": "canonical",
                "resourceGroupName": RESOURCE_GROUP,
                "resourceId": format!(
                    "/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Compute/virtualMachines/{name}"
                ),
                "securityProfile": { "secureBootEnabled": "true", "virtualTpmEnabled": "true" },
                "sku": "22_04-lts-gen2",
                "subscriptionId": SUBSCRIPTION,
                "tags": "",
                "tagsList": [],
                "userData": "",
                "version": "22.04.202401100",
                "vmId": instance.instance_id,
                "vmScaleSetName": "",
                "vmSize": "Standard_B2s",
                "zone": instance.zone,
            },
            "network": {
                "interface": [{
                    "ipv4": {
                        "ipAddress": [{
                            "privateIpAddress": instance.private_ipv4,
                            // Empty, not absent: no public IP, or a Standard SKU one.
                            "publicIpAddress": instance.public_ipv4.clone().unwrap_or_default(),
                        }],
                        "subnet": [{ "address": subnet(&instance.private_ipv4), "prefix": "24" }],
                    },
                    "ipv6": { "ipAddress": ipv6 },
                    "macAddress": "000D3A2B4C5D",
                }],
            },
        })
    }
}

/// The /24 network holding `ip`.
fn subnet(ip: &str) -> String {
    match ip.rsplit_once('.') {
        Some((network, _)) => format!("{network}.0"),
        None => ip.to_owned(),
    }
}

fn json(value: &serde_json::Value) -> Response {
    reply(
        StatusCode::OK,
        &[("content-type", "application/json; charset=utf-8")],
        value.to_string(),
    )
}

fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed. Only GET is supported.",
    )
}

/// 400 naming the three newest versions, as IMDS answers a bad `api-version`.
fn version_error(versions: &[&str], problem: &str) -> Response {
    let newest: Vec<&str> = versions.iter().rev().take(3).copied().collect();
    let body = serde_json::json!({
        "error": format!("Bad request. {problem}. For more information refer to aka.ms/azureimds"),
        "newest-versions": newest,
    });
    reply(
        StatusCode::BAD_REQUEST,
        &[("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
}

/// IMDS's error answer: `{"error": "..."}`.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    reply(
        status,
        &[("content-type", "application/json; charset=utf-8")],
        serde_json::json!({ "error": message }).to_string(),
    )
}

/// `Mon, 19 Sep 2016 18:29:47 GMT`, the form of `NotBefore`.
fn http_date(time: SystemTime) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let days = seconds / 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    let of_day = seconds % 86_400;
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}
