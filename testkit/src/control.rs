//! `dnsreg-testkit serve --control ADDR`: the stand-ins' knobs and state over HTTP.
//!
//! Tests in Rust drive the stand-ins through their handles; a script, or a
//! machine booted beside them (scripts/boot-test), cannot. This small plain-text
//! API gives it the few knobs that matter from outside the process — post a
//! termination notice, change the instance's address — and reads the zones back,
//! so that the script checks what the stand-in holds, not what dnsreg says.
//! Answers are plain text, one item per line, for `curl` and `grep`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use testkit::Running;
use testkit::cloudflare::CloudflareServer;
use testkit::imds::{CloudKind, ImdsServer};
use testkit::route53::Route53Server;

const HELP: &str = "\
dnsreg-testkit control: plain-text knobs and state of the running stand-ins

POST   /imds/termination-notice      the cloud's own notice (AWS: spot terminate;
                                     GCP: preempted; Azure: Preempt; Alibaba: spot)
DELETE /imds/termination-notice      withdraw it
PUT    /imds/spot-action             body terminate|stop|hibernate (AWS)
DELETE /imds/spot-action             withdraw it (AWS)
PUT    /imds/lifecycle-state         body e.g. Terminated (AWS Auto Scaling)
PUT    /imds/public-ipv4             body an IPv4 address, or none
GET    /imds/requests                every request so far, one per line
GET    /route53/zones/NAME/rrsets    NAME. TYPE TTL VALUE, one line per value
GET    /cloudflare/zones/NAME/records   NAME TYPE TTL CONTENT COMMENT, one per record
";

/// What the control API reaches: the stand-ins that run, and the Cloudflare
/// zones by name (the handle knows them by id only).
pub(crate) struct Handles {
    pub(crate) route53: Option<Arc<Route53Server>>,
    pub(crate) imds: Option<Arc<ImdsServer>>,
    pub(crate) cloudflare: Option<Arc<CloudflareServer>>,
    /// `(name, id)` of each Cloudflare zone created.
    pub(crate) cloudflare_zones: Vec<(String, String)>,
}

type Answer = (StatusCode, String);

/// Serves the control API on `addr` until the returned value is dropped.
pub(crate) fn start(addr: SocketAddr, handles: Handles) -> std::io::Result<Running> {
    let router = Router::new()
        .route("/", get(|| async { HELP }))
        .route(
            "/imds/termination-notice",
            axum::routing::post(|s: State<Arc<Handles>>| async move { notice(&s, true) })
                .delete(|s: State<Arc<Handles>>| async move { notice(&s, false) }),
        )
        .route(
            "/imds/spot-action",
            put(|s: State<Arc<Handles>>, body: String| async move { spot(&s, Some(body)) })
                .delete(|s: State<Arc<Handles>>| async move { spot(&s, None) }),
        )
        .route("/imds/lifecycle-state", put(lifecycle))
        .route("/imds/public-ipv4", put(public_ipv4))
        .route("/imds/requests", get(requests))
        .route("/route53/zones/{zone}/rrsets", get(route53_rrsets))
        .route("/cloudflare/zones/{zone}/records", get(cloudflare_records))
        .with_state(Arc::new(handles));
    Running::spawn(addr, router)
}

fn ok(text: impl Into<String>) -> Answer {
    (StatusCode::OK, text.into())
}

fn refused(text: impl Into<String>) -> Answer {
    (StatusCode::CONFLICT, format!("{}\n", text.into()))
}

fn imds(handles: &Handles) -> Result<&ImdsServer, Answer> {
    handles
        .imds
        .as_deref()
        .ok_or_else(|| refused("the metadata stand-in is off (--imds off)"))
}

/// The AWS knobs panic on another cloud: refuse first.
fn aws(handles: &Handles) -> Result<&ImdsServer, Answer> {
    let imds = imds(handles)?;
    match imds.kind() {
        CloudKind::Aws => Ok(imds),
        other => Err(refused(format!(
            "this is an AWS knob, but the metadata stand-in plays {}",
            other.name()
        ))),
    }
}

fn notice(handles: &Handles, on: bool) -> Answer {
    match imds(handles) {
        Ok(imds) => {
            imds.set_termination_notice(on);
            ok(if on {
                "termination notice posted\n"
            } else {
                "termination notice withdrawn\n"
            })
        }
        Err(answer) => answer,
    }
}

fn spot(handles: &Handles, action: Option<String>) -> Answer {
    let imds = match aws(handles) {
        Ok(imds) => imds,
        Err(answer) => return answer,
    };
    match action.as_deref().map(str::trim) {
        Some(action @ ("terminate" | "stop" | "hibernate")) => {
            imds.set_spot_action(Some(action));
            ok(format!("spot {action} notice posted\n"))
        }
        Some(other) => (
            StatusCode::BAD_REQUEST,
            format!("'{other}' is not a spot action: write terminate, stop or hibernate\n"),
        ),
        None => {
            imds.set_spot_action(None);
            ok("spot notice withdrawn\n")
        }
    }
}

async fn lifecycle(State(handles): State<Arc<Handles>>, body: String) -> Answer {
    let state = body.trim();
    if state.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "write the state in the body, e.g. Terminated\n".into(),
        );
    }
    match aws(&handles) {
        Ok(imds) => {
            imds.set_lifecycle_state(state);
            ok(format!("target-lifecycle-state {state}\n"))
        }
        Err(answer) => answer,
    }
}

async fn public_ipv4(State(handles): State<Arc<Handles>>, body: String) -> Answer {
    let value = body.trim();
    let address = match value {
        "none" => None,
        ip => match ip.parse::<std::net::Ipv4Addr>() {
            Ok(ip) => Some(ip.to_string()),
            Err(_) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("'{value}' is not an IPv4 address (or none)\n"),
                );
            }
        },
    };
    match imds(&handles) {
        Ok(imds) => {
            imds.update_instance(|i| i.public_ipv4 = address.clone());
            ok(format!(
                "public-ipv4 {}\n",
                address.as_deref().unwrap_or("none")
            ))
        }
        Err(answer) => answer,
    }
}

async fn requests(State(handles): State<Arc<Handles>>) -> Answer {
    match imds(&handles) {
        Ok(imds) => ok(imds
            .requests()
            .iter()
            .map(|r| format!("{r}\n"))
            .collect::<String>()),
        Err(answer) => answer,
    }
}

async fn route53_rrsets(State(handles): State<Arc<Handles>>, Path(zone): Path<String>) -> Answer {
    let Some(route53) = handles.route53.as_deref() else {
        return refused("the Route53 stand-in is off (--route53 off)");
    };
    let Some(id) = route53.zone_id(&zone) else {
        return (StatusCode::NOT_FOUND, format!("no hosted zone {zone}\n"));
    };
    let mut lines = String::new();
    for rrset in route53.rrsets(&id) {
        for value in &rrset.records {
            lines.push_str(&format!(
                "{} {} {} {value}\n",
                rrset.name, rrset.rtype, rrset.ttl
            ));
        }
    }
    ok(lines)
}

async fn cloudflare_records(
    State(handles): State<Arc<Handles>>,
    Path(zone): Path<String>,
) -> Answer {
    let Some(cloudflare) = handles.cloudflare.as_deref() else {
        return refused("the Cloudflare stand-in is off (--cloudflare off)");
    };
    let wanted = zone.trim_end_matches('.').to_ascii_lowercase();
    let Some((_, id)) = handles
        .cloudflare_zones
        .iter()
        .find(|(name, id)| *name == wanted || *id == zone)
    else {
        return (
            StatusCode::NOT_FOUND,
            format!("no Cloudflare zone {zone}\n"),
        );
    };
    let mut lines = String::new();
    for record in cloudflare.records(id) {
        lines.push_str(&format!(
            "{} {} {} {} {}\n",
            record.name,
            record.rtype,
            record.ttl,
            record.content,
            record.comment.as_deref().unwrap_or("-")
        ));
    }
    ok(lines)
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use testkit::imds::AwsInstance;

    use super::*;

    /// One request over a fresh connection: the status line's code and the body.
    fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
        call_with(addr, method, path, "", body)
    }

    fn call_with(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &str,
        body: &str,
    ) -> (u16, String) {
        let mut stream = std::net::TcpStream::connect(addr).expect("server reachable");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("request sent");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("answer read");
        let code = answer[9..12].parse().expect("a status code");
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
        (code, body.unwrap_or_default())
    }

    #[test]
    fn notices_reach_the_metadata_and_zones_read_back() {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let route53 = Arc::new(Route53Server::start_on(loopback).unwrap());
        route53.create_zone("example.com");
        let imds = Arc::new(ImdsServer::start_on(loopback, AwsInstance::default()).unwrap());
        let running = start(
            loopback,
            Handles {
                route53: Some(route53),
                imds: Some(imds.clone()),
                cloudflare: None,
                cloudflare_zones: Vec::new(),
            },
        )
        .unwrap();
        let addr = running.addr();

        let (code, zone) = call(addr, "GET", "/route53/zones/example.com/rrsets", "");
        assert_eq!(code, 200);
        assert!(zone.contains("example.com. SOA "), "{zone}");
        assert_eq!(
            call(addr, "GET", "/route53/zones/example.org/rrsets", "").0,
            404
        );

        assert_eq!(call(addr, "POST", "/imds/termination-notice", "").0, 200);
        // What the instance now reads from its metadata service (IMDSv2).
        let metadata: SocketAddr = imds.url().trim_start_matches("http://").parse().unwrap();
        let (_, token) = call_with(
            metadata,
            "PUT",
            "/latest/api/token",
            "X-aws-ec2-metadata-token-ttl-seconds: 60\r\n",
            "",
        );
        let (code, action) = call_with(
            metadata,
            "GET",
            "/latest/meta-data/spot/instance-action",
            &format!("X-aws-ec2-metadata-token: {}\r\n", token.trim()),
            "",
        );
        assert_eq!(code, 200, "{action}");
        assert!(action.contains("terminate"), "{action}");
        assert_eq!(call(addr, "PUT", "/imds/spot-action", "reboot").0, 400);
        assert_eq!(
            call(addr, "PUT", "/imds/public-ipv4", "203.0.113.99").0,
            200
        );
        assert_eq!(imds.instance().public_ipv4.as_deref(), Some("203.0.113.99"));
        let (code, refused) = call(addr, "GET", "/cloudflare/zones/example.com/records", "");
        assert_eq!(code, 409);
        assert!(refused.contains("--cloudflare off"), "{refused}");
    }
}
