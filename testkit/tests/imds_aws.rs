//! The AWS IMDS stand-in behaves like IMDSv2 where dnsreg depends on it.
//!
//! Requests are written by hand over a `TcpStream` so that the tests see exactly
//! what a client would: status line, headers and body, or no answer at all.

use std::time::{Duration, Instant};

use testkit::imds::{AwsInstance, ImdsFault, ImdsServer};

mod common;

use common::{Answer, send, try_send};

fn session(server: &ImdsServer) -> String {
    let answer = send(
        server,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "21600")],
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body
}

fn get(server: &ImdsServer, token: &str, path: &str) -> Answer {
    send(server, "GET", path, &[("X-aws-ec2-metadata-token", token)])
}

/// The value at `path`, asserting a 200.
fn value(server: &ImdsServer, token: &str, path: &str) -> String {
    let answer = get(server, token, path);
    assert_eq!(answer.status, 200, "GET {path}: {answer:?}");
    answer.body
}

fn assert_not_found(answer: &Answer) {
    assert_eq!(answer.status, 404, "{answer:?}");
    assert_eq!(answer.header("content-type"), Some("text/html"));
    assert!(
        answer.body.contains("<title>404 - Not Found</title>"),
        "{}",
        answer.body
    );
}

#[test]
fn token_then_metadata() {
    let server = ImdsServer::start(AwsInstance::default());
    let answer = send(
        &server,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "21600")],
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("text/plain"));
    assert_eq!(
        answer.header("x-aws-ec2-metadata-token-ttl-seconds"),
        Some("21600")
    );
    assert!(
        answer.body.len() >= 40 && answer.body.chars().all(|c| c.is_ascii_alphanumeric()),
        "{}",
        answer.body
    );
    let token = answer.body;

    let meta = |path: &str| value(&server, &token, &format!("/latest/meta-data/{path}"));
    assert_eq!(meta("instance-id"), "i-0123456789abcdef0");
    assert_eq!(meta("placement/region"), "us-east-1");
    assert_eq!(meta("placement/availability-zone"), "us-east-1a");
    assert_eq!(meta("local-ipv4"), "10.0.0.5");
    assert_eq!(meta("public-ipv4"), "203.0.113.7");
    assert_eq!(meta("hostname"), "ip-10-0-0-5.ec2.internal");
    assert_eq!(meta("local-hostname"), "ip-10-0-0-5.ec2.internal");
    assert_eq!(
        meta("public-hostname"),
        "ec2-203-0-113-7.compute-1.amazonaws.com"
    );
    assert_eq!(meta("mac"), "0e:49:61:0f:c3:11");
    assert_eq!(
        meta("network/interfaces/macs/0e:49:61:0f:c3:11/local-ipv4s"),
        "10.0.0.5"
    );
    assert_eq!(
        meta("network/interfaces/macs/0e:49:61:0f:c3:11/public-ipv4s"),
        "203.0.113.7"
    );
    assert_eq!(meta("autoscaling/target-lifecycle-state"), "InService");

    // A second token works alongside the first: tokens are independent sessions.
    let other = session(&server);
    assert_ne!(other, token);
    assert_eq!(
        value(&server, &other, "/latest/meta-data/instance-id"),
        "i-0123456789abcdef0"
    );
    assert_eq!(
        value(&server, &token, "/latest/meta-data/instance-id"),
        "i-0123456789abcdef0"
    );
}

#[test]
fn head_is_allowed_and_other_methods_are_not() {
    let server = ImdsServer::start(AwsInstance::default());
    let token = session(&server);
    let head = send(
        &server,
        "HEAD",
        "/latest/meta-data/instance-id",
        &[("X-aws-ec2-metadata-token", &token)],
    );
    assert_eq!(head.status, 200);
    assert_eq!(head.body, "");
    let post = send(
        &server,
        "POST",
        "/latest/meta-data/instance-id",
        &[("X-aws-ec2-metadata-token", &token)],
    );
    assert_eq!(post.status, 405);
    let get_token = send(
        &server,
        "GET",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
    );
    assert_eq!(get_token.status, 405);
}

#[test]
fn metadata_without_a_valid_token_is_401() {
    let server = ImdsServer::start(AwsInstance::default());
    let missing = send(&server, "GET", "/latest/meta-data/instance-id", &[]);
    assert_eq!(missing.status, 401);
    assert_eq!(missing.header("content-type"), Some("text/html"));
    assert!(
        missing.body.contains("401 - Unauthorized"),
        "{}",
        missing.body
    );
    assert_eq!(
        get(&server, "not-a-token", "/latest/meta-data/instance-id").status,
        401
    );
    // The token is checked before the path: an unknown path is still a 401.
    assert_eq!(
        send(&server, "GET", "/latest/meta-data/nothing-here", &[]).status,
        401
    );
}

#[test]
fn imdsv1_knob_allows_tokenless_requests_but_not_bad_tokens() {
    let server = ImdsServer::start(AwsInstance::default());
    server.allow_imdsv1(true);
    let answer = send(&server, "GET", "/latest/meta-data/instance-id", &[]);
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "i-0123456789abcdef0")
    );
    assert_eq!(
        get(&server, "not-a-token", "/latest/meta-data/instance-id").status,
        401
    );
    server.allow_imdsv1(false);
    assert_eq!(
        send(&server, "GET", "/latest/meta-data/instance-id", &[]).status,
        401
    );
}

#[test]
fn token_ttl_must_be_between_1_and_21600_seconds() {
    let server = ImdsServer::start(AwsInstance::default());
    let put = |ttl: Option<&str>| {
        let headers: Vec<(&str, &str)> = ttl
            .map(|ttl| ("X-aws-ec2-metadata-token-ttl-seconds", ttl))
            .into_iter()
            .collect();
        send(&server, "PUT", "/latest/api/token", &headers).status
    };
    assert_eq!(put(None), 400);
    assert_eq!(put(Some("0")), 400);
    assert_eq!(put(Some("21601")), 400);
    assert_eq!(put(Some("-5")), 400);
    assert_eq!(put(Some("sixty")), 400);
    assert_eq!(put(Some("1")), 200);
    assert_eq!(put(Some("21600")), 200);
}

#[test]
fn token_expires_after_its_ttl() {
    let server = ImdsServer::start(AwsInstance::default());
    let answer = send(
        &server,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "1")],
    );
    assert_eq!(answer.status, 200);
    assert_eq!(
        get(&server, &answer.body, "/latest/meta-data/instance-id").status,
        200
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        get(&server, &answer.body, "/latest/meta-data/instance-id").status,
        401
    );
}

#[test]
fn token_requests_through_a_proxy_or_on_a_versioned_path_are_403() {
    let server = ImdsServer::start(AwsInstance::default());
    let forwarded = send(
        &server,
        "PUT",
        "/latest/api/token",
        &[
            ("X-aws-ec2-metadata-token-ttl-seconds", "60"),
            ("X-Forwarded-For", "198.51.100.9"),
        ],
    );
    assert_eq!(forwarded.status, 403);
    let versioned = send(
        &server,
        "PUT",
        "/2021-03-23/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
    );
    assert_eq!(versioned.status, 403);
}

#[test]
fn absent_items_and_unknown_paths_are_404() {
    let instance = AwsInstance {
        public_ipv4: None,
        ..AwsInstance::default()
    };
    let server = ImdsServer::start(instance);
    let token = session(&server);
    for path in [
        "/latest/meta-data/public-ipv4",
        "/latest/meta-data/public-hostname",
        "/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/ipv6s",
        "/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/public-ipv4s",
        "/latest/meta-data/spot/instance-action",
        "/latest/meta-data/no-such-item",
        "/latest/meta-data/instance-id/",
        "/latest/user-data",
        "/2009-04-04/meta-data/instance-id",
    ] {
        assert_not_found(&get(&server, &token, path));
    }
}

#[test]
fn directories_list_their_keys_one_per_line() {
    let server = ImdsServer::start(AwsInstance {
        public_ipv4: None,
        ..AwsInstance::default()
    });
    let token = session(&server);
    let top = value(&server, &token, "/latest/meta-data/");
    let keys: Vec<&str> = top.lines().collect();
    for key in [
        "instance-id",
        "local-ipv4",
        "mac",
        "placement/",
        "network/",
        "autoscaling/",
        "hostname",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert!(
        !keys.contains(&"public-ipv4"),
        "an instance without public address lists none: {keys:?}"
    );
    assert!(!top.ends_with('\n'));
    assert_eq!(
        value(&server, &token, "/latest/meta-data/placement/"),
        "availability-zone\nregion"
    );
    assert_eq!(
        value(&server, &token, "/latest/meta-data/placement"),
        "availability-zone\nregion"
    );
    assert_eq!(
        value(
            &server,
            &token,
            "/latest/meta-data/network/interfaces/macs/"
        ),
        "0e:49:61:0f:c3:11/"
    );
    assert_eq!(value(&server, &token, "/"), "latest");
    assert_eq!(value(&server, &token, "/latest/"), "dynamic\nmeta-data");
}

#[test]
fn runtime_updates_show_on_the_next_request() {
    let server = ImdsServer::start(AwsInstance::default());
    let token = session(&server);
    server.update(|instance| {
        instance.public_ipv4 = Some("198.51.100.20".to_owned());
        instance.ipv6 = Some("2001:db8::5".to_owned());
    });
    assert_eq!(
        server.instance().public_ipv4.as_deref(),
        Some("198.51.100.20")
    );
    assert_eq!(
        value(&server, &token, "/latest/meta-data/public-ipv4"),
        "198.51.100.20"
    );
    assert_eq!(
        value(&server, &token, "/latest/meta-data/public-hostname"),
        "ec2-198-51-100-20.compute-1.amazonaws.com"
    );
    assert_eq!(
        value(
            &server,
            &token,
            "/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/ipv6s"
        ),
        "2001:db8::5"
    );
    server.update(|instance| instance.public_ipv4 = None);
    assert_not_found(&get(&server, &token, "/latest/meta-data/public-ipv4"));
}

#[test]
fn public_hostname_outside_us_east_1_names_the_region() {
    let server = ImdsServer::start(AwsInstance {
        region: "eu-west-1".to_owned(),
        availability_zone: "eu-west-1b".to_owned(),
        ..AwsInstance::default()
    });
    let token = session(&server);
    assert_eq!(
        value(&server, &token, "/latest/meta-data/public-hostname"),
        "ec2-203-0-113-7.eu-west-1.compute.amazonaws.com"
    );
}

#[test]
fn spot_notice_appears_and_withdraws() {
    let server = ImdsServer::start(AwsInstance::default());
    let token = session(&server);
    assert_not_found(&get(
        &server,
        &token,
        "/latest/meta-data/spot/instance-action",
    ));
    server.set_spot_action(Some("terminate"));
    let notice: serde_json::Value = serde_json::from_str(&value(
        &server,
        &token,
        "/latest/meta-data/spot/instance-action",
    ))
    .unwrap();
    assert_eq!(notice["action"], "terminate");
    let time = notice["time"].as_str().unwrap();
    assert!(is_imds_time(time), "{time}");
    assert_eq!(
        value(&server, &token, "/latest/meta-data/spot/termination-time"),
        time
    );
    server.set_spot_action(Some("stop"));
    let notice: serde_json::Value = serde_json::from_str(&value(
        &server,
        &token,
        "/latest/meta-data/spot/instance-action",
    ))
    .unwrap();
    assert_eq!(notice["action"], "stop");
    assert_not_found(&get(
        &server,
        &token,
        "/latest/meta-data/spot/termination-time",
    ));
    server.set_spot_action(None);
    assert_not_found(&get(
        &server,
        &token,
        "/latest/meta-data/spot/instance-action",
    ));
}

/// `2017-09-18T08:22:00Z`
fn is_imds_time(time: &str) -> bool {
    let bytes = time.as_bytes();
    bytes.len() == 20
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b'T',
            13 | 16 => *b == b':',
            19 => *b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

#[test]
fn lifecycle_state_follows_the_knob() {
    let server = ImdsServer::start(AwsInstance::default());
    let token = session(&server);
    assert_eq!(
        value(
            &server,
            &token,
            "/latest/meta-data/autoscaling/target-lifecycle-state"
        ),
        "InService"
    );
    server.set_lifecycle_state("Terminated");
    assert_eq!(
        value(
            &server,
            &token,
            "/latest/meta-data/autoscaling/target-lifecycle-state"
        ),
        "Terminated"
    );
}

#[test]
fn identity_document_is_json_about_this_instance() {
    let server = ImdsServer::start(AwsInstance::default());
    let token = session(&server);
    let document: serde_json::Value = serde_json::from_str(&value(
        &server,
        &token,
        "/latest/dynamic/instance-identity/document",
    ))
    .unwrap();
    assert_eq!(document["instanceId"], "i-0123456789abcdef0");
    assert_eq!(document["region"], "us-east-1");
    assert_eq!(document["availabilityZone"], "us-east-1a");
    assert_eq!(document["privateIp"], "10.0.0.5");
    assert!(is_imds_time(document["pendingTime"].as_str().unwrap()));
}

#[test]
fn status_fault_answers_everything_with_that_status() {
    let server = ImdsServer::start(AwsInstance::default());
    let token = session(&server);
    server.set_fault(ImdsFault::Status(503));
    let put = send(
        &server,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
    );
    assert_eq!(put.status, 503);
    assert!(
        put.body.contains("503 - Service Unavailable"),
        "{}",
        put.body
    );
    assert_eq!(
        get(&server, &token, "/latest/meta-data/instance-id").status,
        503
    );
    server.set_fault(ImdsFault::Status(500));
    assert_eq!(
        get(&server, &token, "/latest/meta-data/instance-id").status,
        500
    );
    server.set_fault(ImdsFault::None);
    assert_eq!(
        value(&server, &token, "/latest/meta-data/instance-id"),
        "i-0123456789abcdef0"
    );
}

#[test]
fn slow_fault_delays_each_answer() {
    let server = ImdsServer::start(AwsInstance::default());
    server.set_fault(ImdsFault::Slow(Duration::from_millis(400)));
    let started = Instant::now();
    let token = session(&server);
    assert!(started.elapsed() >= Duration::from_millis(400));
    let started = Instant::now();
    assert_eq!(
        value(&server, &token, "/latest/meta-data/instance-id"),
        "i-0123456789abcdef0"
    );
    assert!(started.elapsed() >= Duration::from_millis(400));
    // A client with a shorter timeout gives up.
    let timed_out = try_send(
        &server,
        "GET",
        "/latest/meta-data/instance-id",
        &[("X-aws-ec2-metadata-token", &token)],
        Duration::from_millis(100),
    );
    assert!(timed_out.is_err(), "{timed_out:?}");
}

#[test]
fn garbage_fault_answers_200_with_html_everywhere() {
    let server = ImdsServer::start(AwsInstance::default());
    server.set_fault(ImdsFault::Garbage);
    let put = send(
        &server,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
    );
    assert_eq!(put.status, 200);
    assert!(put.header("content-type").unwrap().starts_with("text/html"));
    assert!(put.body.contains("<html>"));
    let answer = send(
        &server,
        "GET",
        "/latest/meta-data/public-ipv4",
        &[("X-aws-ec2-metadata-token", "whatever")],
    );
    assert_eq!(answer.status, 200);
    assert!(answer.body.contains("<html>"));
}

#[test]
fn hop_limit_fault_swallows_the_token_reply_only() {
    let server = ImdsServer::start(AwsInstance::default());
    let earlier = session(&server);
    server.set_fault(ImdsFault::HopLimit);
    let put = try_send(
        &server,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
        Duration::from_millis(500),
    );
    assert!(put.is_err(), "the token PUT must get no answer: {put:?}");
    assert_eq!(
        send(&server, "GET", "/latest/meta-data/instance-id", &[]).status,
        401
    );
    assert_eq!(
        value(&server, &earlier, "/latest/meta-data/instance-id"),
        "i-0123456789abcdef0"
    );
    // What SDKs fall back to when IMDSv1 is allowed.
    server.allow_imdsv1(true);
    assert_eq!(
        send(&server, "GET", "/latest/meta-data/instance-id", &[]).status,
        200
    );
    server.set_fault(ImdsFault::None);
    session(&server);
}

#[test]
fn requests_are_logged_in_order_whatever_the_fault() {
    let server = ImdsServer::start(AwsInstance::default());
    let token = session(&server);
    get(&server, &token, "/latest/meta-data/instance-id");
    server.set_fault(ImdsFault::Status(503));
    send(&server, "GET", "/latest/meta-data/placement/region", &[]);
    assert_eq!(
        server.requests(),
        [
            "PUT /latest/api/token",
            "GET /latest/meta-data/instance-id",
            "GET /latest/meta-data/placement/region"
        ]
    );
}

#[test]
fn start_on_binds_the_given_address() {
    let server =
        ImdsServer::start_on("127.0.0.1:0".parse().unwrap(), AwsInstance::default()).unwrap();
    assert!(server.url().starts_with("http://127.0.0.1:"));
    let taken = server.url().trim_start_matches("http://").parse().unwrap();
    assert!(
        ImdsServer::start_on(taken, AwsInstance::default()).is_err(),
        "a taken port is an error, not a panic"
    );
}
