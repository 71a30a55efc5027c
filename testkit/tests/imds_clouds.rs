//! The metadata stand-in plays GCP, Azure, DigitalOcean, Hetzner, OpenStack,
//! OCI and Alibaba as strictly as it plays AWS.
//!
//! Requests are written by hand over a `TcpStream` so that the tests see exactly
//! what a client would: status line, headers and body, or no answer at all.

use std::time::{Duration, Instant};

use testkit::imds::{CloudKind, ImdsFault, ImdsServer, Instance};

mod common;

use common::{send, try_send};

fn start(kind: CloudKind) -> ImdsServer {
    ImdsServer::start_cloud(kind, Instance::example(kind))
}

/// GET with these headers, asserting a 200; the body.
fn value(server: &ImdsServer, path: &str, headers: &[(&str, &str)]) -> String {
    let answer = send(server, "GET", path, headers);
    assert_eq!(answer.status, 200, "GET {path}: {answer:?}");
    answer.body
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|error| panic!("{error}: {body}"))
}

const GOOGLE: &[(&str, &str)] = &[("Metadata-Flavor", "Google")];
const AZURE: &[(&str, &str)] = &[("Metadata", "true")];
const ORACLE: &[(&str, &str)] = &[("Authorization", "Bearer Oracle")];

#[test]
fn gcp_serves_every_key_with_its_flavor_header() {
    let server = start(CloudKind::Gcp);
    let get = |path: &str| value(&server, &format!("/computeMetadata/v1/{path}"), GOOGLE);
    assert_eq!(get("instance/id"), "4519316482377391234");
    assert_eq!(get("instance/hostname"), "web-1.c.dnsreg-demo.internal");
    assert_eq!(get("instance/name"), "web-1");
    assert_eq!(
        get("instance/zone"),
        "projects/123456789012/zones/us-central1-a"
    );
    assert_eq!(get("instance/network-interfaces/0/ip"), "10.128.0.2");
    assert_eq!(
        get("instance/network-interfaces/0/access-configs/0/external-ip"),
        "203.0.113.10"
    );
    assert_eq!(get("instance/preempted"), "FALSE");
    assert_eq!(get("instance/maintenance-event"), "NONE");
    assert_eq!(get("project/project-id"), "dnsreg-demo");
    let answer = send(&server, "GET", "/computeMetadata/v1/instance/id", GOOGLE);
    assert_eq!(answer.header("metadata-flavor"), Some("Google"));
    assert_eq!(answer.header("content-type"), Some("application/text"));

    let listing = get("instance/network-interfaces/0/");
    assert!(
        listing.lines().any(|line| line == "access-configs/"),
        "{listing}"
    );
    assert!(listing.lines().any(|line| line == "ip"), "{listing}");
    let moved = send(&server, "GET", "/computeMetadata/v1/instance", GOOGLE);
    assert_eq!(moved.status, 301);
    assert_eq!(
        moved.header("location"),
        Some("/computeMetadata/v1/instance/")
    );

    let all = json(&get("instance/?recursive=true"));
    assert_eq!(all["id"], 4519316482377391234_u64);
    assert_eq!(
        all["networkInterfaces"][0]["accessConfigs"][0]["externalIp"],
        "203.0.113.10"
    );
    assert_eq!(all["zone"], "projects/123456789012/zones/us-central1-a");
}

#[test]
fn gcp_refuses_requests_without_the_flavor_header_or_through_a_proxy() {
    let server = start(CloudKind::Gcp);
    let bare = send(&server, "GET", "/computeMetadata/v1/instance/id", &[]);
    assert_eq!(bare.status, 403);
    assert!(bare.body.contains("Metadata-Flavor"), "{}", bare.body);
    let wrong = send(
        &server,
        "GET",
        "/computeMetadata/v1/instance/id",
        &[("Metadata-Flavor", "Amazon")],
    );
    assert_eq!(wrong.status, 403);
    let proxied = send(
        &server,
        "GET",
        "/computeMetadata/v1/instance/id",
        &[
            ("Metadata-Flavor", "Google"),
            ("X-Forwarded-For", "192.0.2.1"),
        ],
    );
    assert_eq!(proxied.status, 403);
}

#[test]
fn gcp_without_public_address_has_no_access_config_and_unknown_is_404() {
    let server = ImdsServer::start_cloud(
        CloudKind::Gcp,
        Instance {
            public_ipv4: None,
            ipv6: Some("2600:1900:4000:1::2".to_owned()),
            ..Instance::example(CloudKind::Gcp)
        },
    );
    for path in [
        "instance/network-interfaces/0/access-configs/0/external-ip",
        "instance/no-such-key",
        "instance/id/",
    ] {
        let answer = send(
            &server,
            "GET",
            &format!("/computeMetadata/v1/{path}"),
            GOOGLE,
        );
        assert_eq!(answer.status, 404, "{path}: {answer:?}");
        assert_eq!(answer.header("metadata-flavor"), Some("Google"));
    }
    assert_eq!(
        value(
            &server,
            "/computeMetadata/v1/instance/network-interfaces/0/ipv6s",
            GOOGLE
        ),
        "2600:1900:4000:1::2"
    );
}

#[test]
fn gcp_preemption_and_runtime_changes_show_at_once() {
    let server = start(CloudKind::Gcp);
    server.set_termination_notice(true);
    assert_eq!(
        value(&server, "/computeMetadata/v1/instance/preempted", GOOGLE),
        "TRUE"
    );
    server.set_termination_notice(false);
    assert_eq!(
        value(&server, "/computeMetadata/v1/instance/preempted", GOOGLE),
        "FALSE"
    );
    server.update_instance(|instance| instance.public_ipv4 = Some("203.0.113.99".to_owned()));
    assert_eq!(
        value(
            &server,
            "/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip",
            GOOGLE
        ),
        "203.0.113.99"
    );
    assert_eq!(
        server.cloud_instance().public_ipv4.as_deref(),
        Some("203.0.113.99")
    );
    assert_eq!(server.kind(), CloudKind::Gcp);
}

const AZURE_INSTANCE: &str = "/metadata/instance?api-version=2021-02-01";

#[test]
fn azure_serves_the_instance_document() {
    let server = start(CloudKind::Azure);
    let document = json(&value(&server, AZURE_INSTANCE, AZURE));
    let compute = &document["compute"];
    assert_eq!(compute["vmId"], "02aab8a4-74ef-476e-8182-f6d2ba4166a6");
    assert_eq!(compute["name"], "web-1");
    assert_eq!(compute["location"], "westeurope");
    assert_eq!(compute["zone"], "1");
    assert_eq!(compute["osProfile"]["computerName"], "web-1");
    let address = &document["network"]["interface"][0]["ipv4"]["ipAddress"][0];
    assert_eq!(address["privateIpAddress"], "10.1.0.4");
    assert_eq!(address["publicIpAddress"], "203.0.113.11");
    assert_eq!(
        document["network"]["interface"][0]["ipv6"]["ipAddress"],
        serde_json::json!([])
    );
    // Another documented version, and a leaf read as text.
    assert_eq!(
        json(&value(
            &server,
            "/metadata/instance?api-version=2019-06-01",
            AZURE
        ))["compute"]["vmId"],
        "02aab8a4-74ef-476e-8182-f6d2ba4166a6"
    );
    assert_eq!(
        value(
            &server,
            "/metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress?api-version=2021-02-01&format=text",
            AZURE
        ),
        "10.1.0.4"
    );
    let leaf_as_json = send(
        &server,
        "GET",
        "/metadata/instance/compute/vmId?api-version=2021-02-01",
        AZURE,
    );
    assert_eq!(leaf_as_json.status, 400);
}

#[test]
fn azure_public_address_absent_is_an_empty_string() {
    let server = ImdsServer::start_cloud(
        CloudKind::Azure,
        Instance {
            public_ipv4: None,
            ipv6: Some("ace:cab:deca::4".to_owned()),
            ..Instance::example(CloudKind::Azure)
        },
    );
    let document = json(&value(&server, AZURE_INSTANCE, AZURE));
    let interface = &document["network"]["interface"][0];
    assert_eq!(interface["ipv4"]["ipAddress"][0]["publicIpAddress"], "");
    assert_eq!(
        interface["ipv6"]["ipAddress"][0]["privateIpAddress"],
        "ace:cab:deca::4"
    );
    server.update_instance(|instance| instance.public_ipv4 = Some("203.0.113.50".to_owned()));
    let document = json(&value(&server, AZURE_INSTANCE, AZURE));
    assert_eq!(
        document["network"]["interface"][0]["ipv4"]["ipAddress"][0]["publicIpAddress"],
        "203.0.113.50"
    );
}

#[test]
fn azure_requires_the_metadata_header_and_a_known_api_version() {
    let server = start(CloudKind::Azure);
    let bare = send(&server, "GET", AZURE_INSTANCE, &[]);
    assert_eq!(bare.status, 400);
    assert!(
        json(&bare.body)["error"]
            .as_str()
            .unwrap()
            .contains("metadata header")
    );
    let proxied = send(
        &server,
        "GET",
        AZURE_INSTANCE,
        &[("Metadata", "true"), ("X-Forwarded-For", "192.0.2.1")],
    );
    assert_eq!(proxied.status, 400);

    for path in [
        "/metadata/instance",
        "/metadata/instance?api-version=2099-01-01",
    ] {
        let answer = send(&server, "GET", path, AZURE);
        assert_eq!(answer.status, 400, "{path}");
        let body = json(&answer.body);
        assert!(
            body["error"].as_str().unwrap().contains("api-version"),
            "{body}"
        );
        let newest = body["newest-versions"].as_array().unwrap();
        assert_eq!(newest.len(), 3);
        assert!(
            newest
                .iter()
                .all(|version| version.as_str().unwrap().len() == 10),
            "{body}"
        );
    }
    let unknown = send(
        &server,
        "GET",
        "/metadata/nothing?api-version=2021-02-01",
        AZURE,
    );
    assert_eq!(unknown.status, 404);
    let method = send(&server, "PUT", AZURE_INSTANCE, AZURE);
    assert_eq!(method.status, 405);
}

#[test]
fn azure_scheduled_events_follow_the_knobs() {
    let server = start(CloudKind::Azure);
    let events = |server: &ImdsServer| {
        json(&value(
            server,
            "/metadata/scheduledevents?api-version=2020-07-01",
            AZURE,
        ))
    };
    let empty = events(&server);
    assert_eq!(empty["Events"], serde_json::json!([]));
    let before = empty["DocumentIncarnation"].as_u64().unwrap();

    server.set_termination_notice(true);
    let preempt = events(&server);
    assert!(preempt["DocumentIncarnation"].as_u64().unwrap() > before);
    let event = &preempt["Events"][0];
    assert_eq!(event["EventType"], "Preempt");
    assert_eq!(event["ResourceType"], "VirtualMachine");
    assert_eq!(event["Resources"], serde_json::json!(["web-1"]));
    assert_eq!(event["EventStatus"], "Scheduled");
    assert!(
        event["NotBefore"].as_str().unwrap().ends_with(" GMT"),
        "{event}"
    );
    assert!(event["EventId"].is_string());

    server.set_azure_event(Some("Reboot"));
    assert_eq!(events(&server)["Events"][0]["EventType"], "Reboot");
    server.set_azure_event(None);
    assert_eq!(events(&server)["Events"], serde_json::json!([]));
    let missing = send(&server, "GET", "/metadata/scheduledevents", AZURE);
    assert_eq!(missing.status, 400);
}

#[test]
fn digitalocean_serves_its_paths_and_document() {
    let server = start(CloudKind::DigitalOcean);
    let get = |path: &str| value(&server, &format!("/metadata/v1/{path}"), &[]);
    assert_eq!(get("id"), "2756294");
    assert_eq!(get("hostname"), "web-1");
    assert_eq!(get("region"), "nyc3");
    assert_eq!(get("interfaces/public/0/ipv4/address"), "203.0.113.12");
    assert_eq!(get("interfaces/private/0/ipv4/address"), "10.108.0.2");
    assert!(get("interfaces/").lines().any(|line| line == "public/"));
    let document = json(&value(&server, "/metadata/v1.json", &[]));
    assert_eq!(document["droplet_id"], 2756294);
    assert_eq!(
        document["interfaces"]["public"][0]["ipv4"]["ip_address"],
        "203.0.113.12"
    );
    assert_eq!(
        send(
            &server,
            "GET",
            "/metadata/v1/interfaces/public/0/ipv6/address",
            &[]
        )
        .status,
        404
    );
    assert_eq!(
        send(&server, "GET", "/metadata/v1/nothing", &[]).status,
        404
    );

    server.update_instance(|instance| {
        instance.public_ipv4 = None;
        instance.ipv6 = Some("2604:a880:800:10::1:2".to_owned());
    });
    assert_eq!(
        send(
            &server,
            "GET",
            "/metadata/v1/interfaces/public/0/ipv4/address",
            &[]
        )
        .status,
        404
    );
    server.update_instance(|instance| instance.public_ipv4 = Some("203.0.113.13".to_owned()));
    assert_eq!(
        get("interfaces/public/0/ipv6/address"),
        "2604:a880:800:10::1:2"
    );
    server.set_termination_notice(true); // DigitalOcean has none: nothing changes.
    assert_eq!(get("id"), "2756294");
}

#[test]
fn hetzner_serves_yaml_and_single_keys() {
    let server = start(CloudKind::Hetzner);
    let document = value(&server, "/hetzner/v1/metadata", &[]);
    for line in [
        "hostname: web-1",
        "instance-id: 42517383",
        "public-ipv4: 203.0.113.13",
        "region: eu-central",
        "availability-zone: fsn1-dc14",
    ] {
        assert!(document.lines().any(|l| l == line), "{line} in {document}");
    }
    assert_eq!(
        value(&server, "/hetzner/v1/metadata/instance-id", &[]),
        "42517383"
    );
    assert_eq!(
        value(&server, "/hetzner/v1/metadata/hostname", &[]),
        "web-1"
    );
    assert_eq!(
        value(&server, "/hetzner/v1/metadata/availability-zone", &[]),
        "fsn1-dc14"
    );
    let networks = value(&server, "/hetzner/v1/metadata/private-networks", &[]);
    assert!(networks.starts_with("- ip: 10.0.0.2\n"), "{networks}");
    assert_eq!(
        send(&server, "GET", "/hetzner/v1/metadata/nothing", &[]).status,
        404
    );

    server.update_instance(|instance| {
        instance.public_ipv4 = None;
        instance.private_ipv4 = String::new();
    });
    assert_eq!(
        send(&server, "GET", "/hetzner/v1/metadata/public-ipv4", &[]).status,
        404
    );
    assert!(!value(&server, "/hetzner/v1/metadata", &[]).contains("public-ipv4"));
    assert_eq!(
        value(&server, "/hetzner/v1/metadata/private-networks", &[]),
        "[]\n"
    );
}

#[test]
fn openstack_serves_meta_data_json_and_the_ec2_tree() {
    let server = ImdsServer::start_cloud(
        CloudKind::OpenStack,
        Instance {
            hostname: "web-1.novalocal".to_owned(),
            ..Instance::example(CloudKind::OpenStack)
        },
    );
    let meta = json(&value(&server, "/openstack/latest/meta_data.json", &[]));
    assert_eq!(meta["uuid"], "d8e02d56-2648-49a3-bf97-6be8f1204f38");
    assert_eq!(meta["hostname"], "web-1.novalocal");
    assert_eq!(meta["name"], "web-1");
    assert_eq!(meta["availability_zone"], "nova");
    let get = |path: &str| value(&server, &format!("/latest/meta-data/{path}"), &[]);
    assert_eq!(get("local-ipv4"), "10.0.0.11");
    assert_eq!(get("public-ipv4"), "203.0.113.14");
    assert_eq!(get("instance-id"), "i-d8e02d56");
    assert_eq!(get("hostname"), "web-1.novalocal");
    assert!(
        value(&server, "/openstack/", &[])
            .lines()
            .any(|line| line == "latest/")
    );
    let missing = send(&server, "GET", "/openstack/latest/user_data", &[]);
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("404 Not Found"));

    server.update_instance(|instance| instance.public_ipv4 = None);
    assert_eq!(
        get("public-ipv4"),
        "",
        "Nova serves an empty value without a floating IP"
    );
}

#[test]
fn oracle_requires_its_bearer_header_and_hides_the_public_address() {
    let server = start(CloudKind::Oracle);
    let document = json(&value(&server, "/opc/v2/instance/", ORACLE));
    assert!(
        document["id"]
            .as_str()
            .unwrap()
            .starts_with("ocid1.instance.oc1.")
    );
    assert_eq!(document["displayName"], "web-1");
    assert_eq!(document["hostname"], "web-1");
    assert_eq!(document["region"], "fra");
    assert_eq!(document["canonicalRegionName"], "eu-frankfurt-1");
    assert_eq!(document["availabilityDomain"], "Uocm:EU-FRANKFURT-1-AD-1");
    assert_eq!(
        value(&server, "/opc/v2/instance/canonicalRegionName", ORACLE),
        "eu-frankfurt-1"
    );
    let vnics = json(&value(&server, "/opc/v2/vnics/", ORACLE));
    assert_eq!(vnics[0]["privateIp"], "10.0.0.12");
    let everything = format!("{document}{vnics}");
    assert!(
        !everything.contains("203.0.113.15"),
        "OCI metadata has no public address"
    );

    assert_eq!(send(&server, "GET", "/opc/v2/instance/", &[]).status, 401);
    assert_eq!(
        send(
            &server,
            "GET",
            "/opc/v2/instance/",
            &[("Authorization", "Bearer Amazon")]
        )
        .status,
        401
    );
    let proxied = send(
        &server,
        "GET",
        "/opc/v2/instance/",
        &[
            ("Authorization", "Bearer Oracle"),
            ("X-Forwarded-For", "192.0.2.1"),
        ],
    );
    assert_eq!(proxied.status, 403);
    assert_eq!(send(&server, "GET", "/opc/v1/instance/", &[]).status, 404);
    assert_eq!(
        send(&server, "GET", "/opc/v2/instance/nothing", ORACLE).status,
        404
    );

    server.update_instance(|instance| instance.private_ipv4 = "10.0.0.99".to_owned());
    assert_eq!(
        json(&value(&server, "/opc/v2/vnics/", ORACLE))[0]["privateIp"],
        "10.0.0.99"
    );
}

fn alibaba_token(server: &ImdsServer) -> String {
    let answer = send(
        server,
        "PUT",
        "/latest/api/token",
        &[("X-aliyun-ecs-metadata-token-ttl-seconds", "21600")],
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.header("x-aliyun-ecs-metadata-token-ttl-seconds"),
        Some("21600")
    );
    answer.body
}

#[test]
fn alibaba_token_flow_then_metadata() {
    let server = start(CloudKind::Alibaba);
    let token = alibaba_token(&server);
    let header = [("X-aliyun-ecs-metadata-token", token.as_str())];
    let get = |path: &str| value(&server, &format!("/latest/meta-data/{path}"), &header);
    assert_eq!(get("instance-id"), "i-bp1hygp5b04o5k7xwe9v");
    assert_eq!(get("region-id"), "cn-hangzhou");
    assert_eq!(get("zone-id"), "cn-hangzhou-i");
    assert_eq!(get("hostname"), "iZbp1hygp5b04o5k7xwe9vZ");
    assert_eq!(get("private-ipv4"), "10.0.0.13");
    assert_eq!(get("public-ipv4"), "203.0.113.16");
    assert_eq!(get("eipv4"), "203.0.113.16");

    assert_eq!(
        send(&server, "GET", "/latest/meta-data/instance-id", &[]).status,
        403
    );
    let stale = [("X-aliyun-ecs-metadata-token", "not-a-token")];
    assert_eq!(
        send(&server, "GET", "/latest/meta-data/instance-id", &stale).status,
        401
    );
    for ttl in ["0", "21601", "soon"] {
        let answer = send(
            &server,
            "PUT",
            "/latest/api/token",
            &[("X-aliyun-ecs-metadata-token-ttl-seconds", ttl)],
        );
        assert_eq!(answer.status, 400, "ttl {ttl}");
    }
    let proxied = send(
        &server,
        "PUT",
        "/latest/api/token",
        &[
            ("X-aliyun-ecs-metadata-token-ttl-seconds", "60"),
            ("X-Forwarded-For", "192.0.2.1"),
        ],
    );
    assert_eq!(proxied.status, 403);

    server.update_instance(|instance| instance.public_ipv4 = None);
    for path in ["public-ipv4", "eipv4", "nothing"] {
        let answer = send(
            &server,
            "GET",
            &format!("/latest/meta-data/{path}"),
            &header,
        );
        assert_eq!(answer.status, 404, "{path}");
    }
    assert_eq!(
        send(
            &server,
            "GET",
            "/latest/meta-data/instance/spot/termination-time",
            &header
        )
        .status,
        404
    );
    server.set_termination_notice(true);
    assert!(get("instance/spot/termination-time").ends_with('Z'));

    server.allow_imdsv1(true);
    assert_eq!(
        value(&server, "/latest/meta-data/instance-id", &[]),
        "i-bp1hygp5b04o5k7xwe9v"
    );
}

/// Each cloud's happy read, for the fault tests.
fn happy_request(kind: CloudKind) -> (&'static str, &'static [(&'static str, &'static str)]) {
    match kind {
        CloudKind::Aws | CloudKind::Alibaba => (
            "/latest/api/token",
            &[
                ("X-aws-ec2-metadata-token-ttl-seconds", "60"),
                ("X-aliyun-ecs-metadata-token-ttl-seconds", "60"),
            ],
        ),
        CloudKind::Gcp => ("/computeMetadata/v1/instance/id", GOOGLE),
        CloudKind::Azure => (AZURE_INSTANCE, AZURE),
        CloudKind::DigitalOcean => ("/metadata/v1/id", &[]),
        CloudKind::Hetzner => ("/hetzner/v1/metadata/instance-id", &[]),
        CloudKind::OpenStack => ("/openstack/latest/meta_data.json", &[]),
        CloudKind::Oracle => ("/opc/v2/instance/", ORACLE),
    }
}

fn method(kind: CloudKind) -> &'static str {
    if matches!(kind, CloudKind::Aws | CloudKind::Alibaba) {
        "PUT"
    } else {
        "GET"
    }
}

#[test]
fn every_fault_applies_to_every_cloud_and_requests_are_logged() {
    for kind in CloudKind::ALL {
        let server = start(kind);
        let (path, headers) = happy_request(kind);
        let method = method(kind);
        assert_eq!(send(&server, method, path, headers).status, 200, "{kind:?}");

        server.set_fault(ImdsFault::Status(503));
        assert_eq!(send(&server, method, path, headers).status, 503, "{kind:?}");

        server.set_fault(ImdsFault::Garbage);
        let garbage = send(&server, method, path, headers);
        assert_eq!(garbage.status, 200, "{kind:?}");
        assert!(garbage.body.contains("<html>"), "{kind:?}");

        server.set_fault(ImdsFault::Slow(Duration::from_millis(300)));
        let started = Instant::now();
        assert_eq!(send(&server, method, path, headers).status, 200, "{kind:?}");
        assert!(started.elapsed() >= Duration::from_millis(300), "{kind:?}");

        server.set_fault(ImdsFault::HopLimit);
        let swallowed = try_send(&server, method, path, headers, Duration::from_millis(300));
        assert!(
            swallowed.is_err(),
            "{kind:?}: the answer must never come: {swallowed:?}"
        );

        server.set_fault(ImdsFault::None);
        let log = server.requests();
        assert_eq!(log.len(), 5, "{kind:?}: {log:?}");
        assert_eq!(log[0], format!("{method} {path}"), "{kind:?}");
    }
}

#[test]
fn aws_is_reachable_through_the_neutral_api() {
    let server = start(CloudKind::Aws);
    assert_eq!(server.kind(), CloudKind::Aws);
    assert_eq!(server.cloud_instance(), Instance::example(CloudKind::Aws));
    assert_eq!(server.instance().instance_id, "i-0123456789abcdef0");
    server.update_instance(|instance| instance.public_ipv4 = None);
    assert_eq!(server.instance().public_ipv4, None);
    let token = send(
        &server,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
    )
    .body;
    server.set_termination_notice(true);
    let notice = value(
        &server,
        "/latest/meta-data/spot/instance-action",
        &[("X-aws-ec2-metadata-token", &token)],
    );
    assert!(notice.contains("terminate"), "{notice}");
}

#[test]
fn start_cloud_on_binds_the_given_address() {
    let server = ImdsServer::start_cloud_on(
        "127.0.0.1:0".parse().unwrap(),
        CloudKind::Hetzner,
        Instance::example(CloudKind::Hetzner),
    )
    .expect("binds");
    assert!(server.url().starts_with("http://127.0.0.1:"));
    assert_eq!(server.kind(), CloudKind::Hetzner);
}
