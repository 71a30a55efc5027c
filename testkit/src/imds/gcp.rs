//! The Google Compute Engine metadata server (`/computeMetadata/v1/`).
//!
//! Follows "About VM metadata" and "Access VM metadata" (Compute Engine docs)
//! and cloud-init's `DataSourceGCE.py`: every request needs
//! `Metadata-Flavor: Google` (else 403) and is refused when it carries
//! `X-Forwarded-For`; every answer carries `Metadata-Flavor: Google`; values are
//! `application/text`; a directory asked for without its trailing slash is a
//! 301 to the slashed path; `?recursive=true` answers a directory as JSON with
//! camelCase keys and arrays for numbered directories; `instance/zone` is the
//! full `projects/NUMBER/zones/ZONE` path; an instance without an external
//! address has no access config, so `.../access-configs/0/external-ip` is a 404.

use super::*;

const NUMERIC_PROJECT_ID: &str = "123456789012";

pub(super) struct Gcp {
    pub(super) instance: Instance,
    /// `instance/preempted`: `TRUE` once the preemption notice is out.
    pub(super) preempted: bool,
}

impl Gcp {
    pub(super) fn new(instance: Instance) -> Gcp {
        Gcp {
            instance,
            preempted: false,
        }
    }

    pub(super) fn answer(&self, request: &Request) -> Response {
        if request.forwarded() {
            return forbidden(
                "Your client does not have permission to get this URL from this server: requests carrying X-Forwarded-For are refused.",
            );
        }
        if request.header("metadata-flavor") != Some("Google") {
            return forbidden(&format!(
                "Your client does not have permission to get URL <code>{}</code> from this server. Missing Metadata-Flavor:Google header.",
                request.path
            ));
        }
        if !request.is_read() {
            return error(StatusCode::METHOD_NOT_ALLOWED);
        }
        let tree = Node::dir([(
            "computeMetadata",
            Some(Node::dir([("v1", Some(self.tree()))])),
        )]);
        let Some((node, _)) = tree.lookup(&request.path) else {
            return error(StatusCode::NOT_FOUND);
        };
        let recursive = request.param("recursive") == Some("true");
        let json = request.param("alt") == Some("json") || recursive;
        match node {
            Node::Value(_) if request.path.ends_with('/') => error(StatusCode::NOT_FOUND),
            Node::Value(value) if json => answer_json(serde_json::Value::from(value.as_str())),
            Node::Value(value) => ok("application/text", value.clone()),
            Node::Dir(_) if !request.path.ends_with('/') && !recursive => {
                // The server redirects a directory to its slashed path.
                let mut response = ok("text/html", String::new());
                *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
                let location = format!("{}/", request.path);
                if let Ok(location) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(header::LOCATION, location);
                }
                response
            }
            Node::Dir(_) if recursive => answer_json(to_json(node)),
            Node::Dir(entries) if json => answer_json(serde_json::Value::from(
                entries
                    .iter()
                    .map(|(key, child)| match child {
                        Node::Dir(_) => format!("{key}/"),
                        Node::Value(_) => key.clone(),
                    })
                    .collect::<Vec<_>>(),
            )),
            Node::Dir(entries) => {
                let mut listing = Node::listing(entries);
                if !listing.is_empty() {
                    listing.push('\n');
                }
                ok("application/text", listing)
            }
        }
    }

    /// `instance/` and `project/`, built from the current state.
    fn tree(&self) -> Node {
        let instance = &self.instance;
        let name = instance
            .hostname
            .split('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        let project = project_id(&instance.hostname);
        let access_configs = match &instance.public_ipv4 {
            Some(ip) => Node::dir([(
                "0",
                Some(Node::dir([
                    ("external-ip", Node::value(ip)),
                    ("type", Node::value("ONE_TO_ONE_NAT")),
                ])),
            )]),
            None => Node::Dir(Vec::new()),
        };
        let interface = Node::dir([
            ("access-configs", Some(access_configs)),
            ("dns-servers", Node::value("169.254.169.254")),
            ("gateway", Node::value(gateway(&instance.private_ipv4))),
            ("ip", Node::value(&instance.private_ipv4)),
            ("ipv6s", instance.ipv6.clone().map(Node::Value)),
            ("mac", Node::value("42:01:0a:80:00:02")),
            ("mtu", Node::value("1460")),
            (
                "network",
                Node::value(format!("projects/{NUMERIC_PROJECT_ID}/networks/default")),
            ),
            ("subnetmask", Node::value("255.255.240.0")),
        ]);
        let instance_dir = Node::dir([
            ("attributes", Some(Node::Dir(Vec::new()))),
            ("cpu-platform", Node::value("Intel Broadwell")),
            ("description", Node::value("")),
            ("hostname", Node::value(&instance.hostname)),
            ("id", Node::value(&instance.instance_id)),
            (
                "image",
                Node::value("projects/debian-cloud/global/images/debian-12-bookworm-v20240110"),
            ),
            (
                "machine-type",
                Node::value(format!(
                    "projects/{NUMERIC_PROJECT_ID}/machineTypes/e2-medium"
                )),
            ),
            ("maintenance-event", Node::value("NONE")),
            ("name", Node::value(name)),
            (
                "network-interfaces",
                Some(Node::dir([("0", Some(interface))])),
            ),
            (
                "preempted",
                Node::value(if self.preempted { "TRUE" } else { "FALSE" }),
            ),
            (
                "scheduling",
                Some(Node::dir([
                    ("automatic-restart", Node::value("FALSE")),
                    ("on-host-maintenance", Node::value("TERMINATE")),
                    ("preemptible", Node::value("TRUE")),
                ])),
            ),
            ("tags", Node::value("[]")),
            (
                "zone",
                Node::value(format!(
                    "projects/{NUMERIC_PROJECT_ID}/zones/{}",
                    instance.zone
                )),
            ),
        ]);
        let project_dir = Node::dir([
            ("attributes", Some(Node::Dir(Vec::new()))),
            ("numeric-project-id", Node::value(NUMERIC_PROJECT_ID)),
            ("project-id", Node::value(project)),
        ]);
        Node::dir([
            ("instance", Some(instance_dir)),
            ("project", Some(project_dir)),
        ])
    }
}

/// The project id inside `NAME.c.PROJECT.internal` (`dnsreg-demo` otherwise).
fn project_id(hostname: &str) -> String {
    let labels: Vec<&str> = hostname.split('.').collect();
    match labels.as_slice() {
        [_, "c", project, "internal"] => (*project).to_owned(),
        _ => "dnsreg-demo".to_owned(),
    }
}

/// The subnet's first address, which GCP uses as the gateway.
fn gateway(ip: &str) -> String {
    match ip.rsplit_once('.') {
        Some((network, _)) => format!("{network}.1"),
        None => ip.to_owned(),
    }
}

/// `?recursive=true`: keys in camelCase, numbered directories as arrays, the
/// instance id as a number, as the metadata server writes them.
fn to_json(node: &Node) -> serde_json::Value {
    match node {
        Node::Value(value) => serde_json::Value::from(value.as_str()),
        Node::Dir(entries)
            if !entries.is_empty()
                && entries.iter().all(|(key, _)| key.parse::<usize>().is_ok()) =>
        {
            serde_json::Value::Array(entries.iter().map(|(_, child)| to_json(child)).collect())
        }
        Node::Dir(entries) => {
            let map = entries
                .iter()
                .map(|(key, child)| {
                    let value = match child {
                        Node::Value(id) if key == "id" => id.parse::<u64>().map_or_else(
                            |_| serde_json::Value::from(id.as_str()),
                            serde_json::Value::from,
                        ),
                        Node::Value(tags) if key == "tags" => serde_json::from_str(tags)
                            .unwrap_or_else(|_| serde_json::Value::from(tags.as_str())),
                        _ => to_json(child),
                    };
                    (camel_case(key), value)
                })
                .collect();
            serde_json::Value::Object(map)
        }
    }
}

fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn ok(content_type: &'static str, body: String) -> Response {
    with_flavor(reply(
        StatusCode::OK,
        &[("content-type", content_type)],
        body,
    ))
}

fn answer_json(value: serde_json::Value) -> Response {
    ok("application/json", value.to_string())
}

fn with_flavor(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert("metadata-flavor", HeaderValue::from_static("Google"));
    headers.insert(
        header::SERVER,
        HeaderValue::from_static("Metadata Server for VM"),
    );
    response
}

fn forbidden(message: &str) -> Response {
    google_page(StatusCode::FORBIDDEN, message)
}

/// The metadata server's error answer: Google's small HTML error page.
pub(super) fn error(status: StatusCode) -> Response {
    let message = match status {
        StatusCode::NOT_FOUND => "The requested URL was not found on this server.",
        _ => "That’s an error.",
    };
    google_page(status, message)
}

fn google_page(status: StatusCode, message: &str) -> Response {
    let code = status.as_u16();
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  \
         <title>Error {code} ({reason})!!1</title>\n  \
         <p><b>{code}.</b> <ins>That’s an error.</ins>\n  \
         <p>{message}  <ins>That’s all we know.</ins>\n"
    );
    with_flavor(reply(
        status,
        &[("content-type", "text/html; charset=UTF-8")],
        body,
    ))
}
