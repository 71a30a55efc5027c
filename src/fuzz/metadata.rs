//! Every cloud's metadata answers, as dnsreg reads them over HTTP: the
//! identity (`whoami`, and the names and addresses it publishes) and the
//! termination notices, each cloud through its own client.
//!
//! A fake metadata service on loopback answers each request from the cloud's
//! corpus, `tests/fuzz-corpus/metadata-<cloud>/` (one file per request,
//! recorded from the testkit stand-in: `METHOD!path!with!slashes`), each answer
//! mutated on its own or replaced, with a status picked per answer; a path
//! not in the corpus gets a fuzzed answer too. 5xx answers are left out: they
//! are retried with real pauses (unit tests cover that), which would cost
//! seconds a case.

use std::net::Ipv4Addr;
use std::time::Duration;

use proptest::prelude::*;

use super::fake_http::{FakeHttp, Request, Response};
use super::{Mutation, Target, apply, cases, corpus, mutation, runtime};
use crate::config::{AddressKind, Config, InstanceConfig, MetadataKind};
use crate::metadata::{self, Identity};
use crate::record::DomainName;

const TOKENS: &[&[u8]] = &[
    b"{\"",
    b"\":\"",
    b"\"}",
    b"\": {\"",
    b"[{\"",
    b"null",
    b"\"\"",
    b"0.0.0.0",
    b"127.0.0.1",
    b"169.254.169.254",
    b"255.255.255.255",
    b"::",
    b"::1",
    b"fe80::1",
    b"ff02::1",
    b"2001:db8::1/64",
    b"projects/1/zones/",
    b"/zones/",
    b"TRUE",
    b"Terminated",
    b"Preempt",
    b"\n- ",
    b"\n  - ",
    b": ",
    b"<html><body>Login</body></html>",
];

/// One answer of the fake service.
#[derive(Clone, Debug)]
enum Body {
    /// The recorded answer, mutated.
    Seed(Vec<Mutation>),
    Raw(Vec<u8>),
}

#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    body: Body,
}

#[derive(Clone, Debug)]
struct Case {
    /// One per corpus file, in its order.
    answers: Vec<Answer>,
    /// For a path the corpus does not have.
    other: (u16, Vec<u8>),
    private: bool,
    ipv6: bool,
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        24 => Just(200),
        2 => Just(404),
        1 => Just(401),
        1 => Just(403),
        1 => Just(400),
        1 => Just(302),
        1 => Just(204),
        1 => Just(429),
    ]
}

fn answer() -> impl Strategy<Value = Answer> {
    let body = prop_oneof![
        6 => prop::collection::vec(mutation(), 0..4).prop_map(Body::Seed),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Body::Raw),
    ];
    (status(), body).prop_map(|(status, body)| Answer { status, body })
}

fn case(n: usize) -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(answer(), n),
        (
            prop_oneof![3 => Just(404u16), 1 => status()],
            prop::collection::vec(any::<u8>(), 0..32),
        ),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(answers, other, private, ipv6)| Case {
            answers,
            other,
            private,
            ipv6,
        })
}

/// `METHOD!path!...` for a request.
fn file_name(method: &str, path: &str) -> String {
    format!("{method}{}", path.replace('/', "!"))
}

/// The configuration the identity is planned through: every variable a
/// metadata service supplies ends up in a DNS name.
fn planned() -> Config {
    crate::config::parse(
        "fuzz.toml",
        "[instance]\nmetadata = \"none\"\nid = \"i-1\"\nipv4 = \"203.0.113.7\"\n\
         [providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\n\
         [[host]]\nproviders = [\"r53\"]\nname = \"{instance_id}\"\n\
         [[host]]\nproviders = [\"r53\"]\nname = \"{hostname}.{region}\"\n\
         [[round_robin]]\nproviders = [\"r53\"]\nname = \"{ipv4_dashed}\"\n\
         [[srv]]\nproviders = [\"r53\"]\nname = \"_x._tcp\"\nport = 1\ntarget = \"{instance_id}\"\n\
         [[service]]\nproviders = [\"r53\"]\ntype = \"_x._tcp\"\ninstance = \"{hostname}\"\nport = 1\ntarget = \"{instance_id}\"\n",
    )
    .expect("the planning configuration")
}

fn no_control(what: &str, s: &str) {
    assert!(
        !s.chars().any(char::is_control),
        "{what} holds control characters: {s:?}"
    );
}

/// Reads the identity and the notice as the agent does; returns whether the
/// identity was read.
async fn read_all(kind: MetadataKind, cfg: &InstanceConfig, config: &Config) -> bool {
    let zone = DomainName::new("example.com").unwrap();
    let identity = metadata::identify(cfg).await;
    let read = identity.is_ok();
    match identity {
        Ok(id) => {
            assert_eq!(id.cloud, kind);
            no_control("the instance id", &id.instance_id);
            for v in [&id.region, &id.availability_zone, &id.hostname]
                .into_iter()
                .flatten()
            {
                no_control("a metadata value", v);
            }
            let _ = serde_json::to_string(&id).unwrap();
            if let Ok(vars) = metadata::vars(&id, cfg) {
                assert!(metadata::unusable_ipv4(vars.ipv4).is_none());
                match crate::plan::desired(config, "r53", &zone, &vars) {
                    Ok(d) => {
                        for r in &d.records {
                            assert!(r.value.name.is_in(&zone), "{}", r.value);
                        }
                    }
                    Err(problems) => assert!(!problems.is_empty()),
                }
            }
        }
        // Shown to the operator: nothing the service said may reach the
        // terminal raw.
        Err(e) => no_control("the error", &e.to_string()),
    }
    let identity = Identity {
        cloud: kind,
        detected_by: "fuzz".into(),
        instance_id: "i-1".into(),
        region: None,
        availability_zone: None,
        hostname: None,
        public_ipv4: Some(Ipv4Addr::new(203, 0, 113, 7)),
        private_ipv4: None,
        ipv6: None,
    };
    match metadata::notice(cfg, &identity).await {
        Ok(Some(n)) => {
            assert_eq!(n.cloud(), kind.name());
            let _ = n.to_string();
        }
        Ok(None) => {}
        Err(e) => no_control("the error", &e.to_string()),
    }
    read
}

fn run_cloud(kind: MetadataKind, target: &'static str) {
    let t = Target::new(target);
    let files = corpus(target);
    let seeds: Vec<Vec<u8>> = files.iter().map(|(_, b)| b.clone()).collect();
    let names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    let rt = runtime();
    let fake = rt.block_on(FakeHttp::start());
    let config = planned();
    let bodies = |c: &Case| -> Vec<(u16, Vec<u8>)> {
        c.answers
            .iter()
            .zip(&seeds)
            .map(|(a, seed)| {
                let body = match &a.body {
                    Body::Seed(m) => apply(seed, m, &seeds, TOKENS),
                    Body::Raw(b) => b.clone(),
                };
                (a.status, body)
            })
            .collect()
    };
    let unchanged = Case::recorded(seeds.len());
    let check = |c: &Case| {
        serve(&fake, names.clone(), bodies(c), c.other.clone());
        let cfg = c.instance(kind, &fake.url);
        let read = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), read_all(kind, &cfg, &config))
                .await
                .expect("the metadata readers did not return within 30 s")
        });
        // The harness reaches the parser: the recorded answers are an identity.
        assert!(
            read || !c.is_recorded(),
            "the recorded answers are no identity"
        );
        assert!(
            fake.requests() < 100,
            "{} requests for one identity and notice",
            fake.requests()
        );
    };
    t.run(
        &[(String::from("(the recorded answers)"), Vec::new())],
        |_| unchanged.clone(),
        case(seeds.len()),
        cases(super::DEFAULT_CASES / 4),
        |c| bodies(c).into_iter().flat_map(|(_, b)| b).collect(),
        check,
    );
}

/// Makes `fake` answer a request for the corpus file `names[i]` with
/// `answers[i]`, and any other with `other`.
fn serve(fake: &FakeHttp, names: Vec<String>, answers: Vec<(u16, Vec<u8>)>, other: (u16, Vec<u8>)) {
    fake.set(move |r: &Request| {
        let (status, body) = names
            .iter()
            .position(|n| *n == file_name(&r.method, &r.path))
            .map_or_else(|| other.clone(), |i| answers[i].clone());
        let body = if status == 204 { Vec::new() } else { body };
        Response::new(status, body).header("Metadata-Flavor", "Google")
    });
}

impl Case {
    /// The recorded answers of `n` corpus files, unchanged, and a 404 for
    /// any other path.
    fn recorded(n: usize) -> Case {
        Case {
            answers: (0..n)
                .map(|_| Answer {
                    status: 200,
                    body: Body::Seed(Vec::new()),
                })
                .collect(),
            other: (404, Vec::new()),
            private: false,
            ipv6: true,
        }
    }

    /// Whether every answer is the recorded one, unchanged.
    fn is_recorded(&self) -> bool {
        self.answers
            .iter()
            .all(|a| a.status == 200 && matches!(&a.body, Body::Seed(m) if m.is_empty()))
    }

    /// The instance's configuration in this case: the cloud `kind`, its
    /// metadata service at `endpoint`.
    fn instance(&self, kind: MetadataKind, endpoint: &str) -> InstanceConfig {
        InstanceConfig {
            metadata: kind,
            address: if self.private {
                AddressKind::Private
            } else {
                AddressKind::Public
            },
            ipv6: self.ipv6,
            id: None,
            ipv4: None,
            hostname: None,
            region: None,
            metadata_endpoint: Some(endpoint.to_string()),
        }
    }
}

#[test]
fn metadata_aws() {
    run_cloud(MetadataKind::Aws, "metadata-aws");
}

#[test]
fn metadata_gcp() {
    run_cloud(MetadataKind::Gcp, "metadata-gcp");
}

#[test]
fn metadata_azure() {
    run_cloud(MetadataKind::Azure, "metadata-azure");
}

#[test]
fn metadata_digitalocean() {
    run_cloud(MetadataKind::DigitalOcean, "metadata-digitalocean");
}

#[test]
fn metadata_hetzner() {
    run_cloud(MetadataKind::Hetzner, "metadata-hetzner");
}

#[test]
fn metadata_openstack() {
    run_cloud(MetadataKind::OpenStack, "metadata-openstack");
}

#[test]
fn metadata_oracle() {
    run_cloud(MetadataKind::Oracle, "metadata-oracle");
}

#[test]
fn metadata_alibaba() {
    run_cloud(MetadataKind::Alibaba, "metadata-alibaba");
}

/// cloud-init's `instance-data.json` (written from what the metadata service
/// said), and the DMI strings, as `auto` reads them.
#[test]
fn metadata_local() {
    let t = Target::new("metadata-local");
    let seeds = corpus("metadata-local");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("instance-data.json");
    t.run_bytes(&seeds, TOKENS, |i| {
        std::fs::write(&path, &i.0).unwrap();
        if let Some((_, why)) = metadata::cloud_init_cloud(&path) {
            assert!(!why.is_empty());
        }
        let text = i.text();
        let mut parts = text.split('\n').map(|s| s.trim().to_string());
        let mut next = || parts.next().unwrap_or_default();
        let dmi = metadata::Dmi {
            sys_vendor: next(),
            product_name: next(),
            product_serial: next(),
            product_uuid: next(),
            chassis_asset_tag: next(),
        };
        let _ = dmi.cloud();
    });
}

// ---------------------------------------------------------------------------
// Recording the corpus from the testkit stand-in
// ---------------------------------------------------------------------------

/// Sends `r` to `addr` as it came, and returns the status and body.
pub(super) fn forward(addr: &str, r: &Request) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("the stand-in");
    let mut head = format!(
        "{} {}{}{} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        r.method,
        r.path,
        if r.query.is_empty() { "" } else { "?" },
        r.query,
        r.body.len()
    );
    for (k, v) in &r.headers {
        if !["host", "connection", "content-length"].contains(&k.to_ascii_lowercase().as_str()) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&r.body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        !head.contains("transfer-encoding: chunked"),
        "chunked answers are not recorded"
    );
    (status, out[end..].to_vec())
}

/// Writes `tests/fuzz-corpus/metadata-<cloud>/`: every answer dnsreg gets
/// from the stand-in while reading the identity and the notices (these set).
/// Run with `cargo test --bin dnsreg write_metadata_corpus -- --ignored`.
#[test]
#[ignore = "writes tests/fuzz-corpus/metadata-*"]
fn write_metadata_corpus() {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use testkit::imds::{AwsInstance, CloudKind, ImdsServer, Instance};

    let rt = runtime();
    let fake = rt.block_on(FakeHttp::start());
    for kind in CloudKind::ALL {
        let ipv6 = Some("2001:db8::7".to_string());
        let servers: Vec<ImdsServer> = if kind == CloudKind::Aws {
            let spot = ImdsServer::start(AwsInstance {
                ipv6: ipv6.clone(),
                ..AwsInstance::default()
            });
            spot.set_spot_action(Some("terminate"));
            let scale_in = ImdsServer::start(AwsInstance::default());
            scale_in.set_lifecycle_state("Terminated");
            vec![spot, scale_in]
        } else {
            let s = ImdsServer::start_cloud(
                kind,
                Instance {
                    ipv6: ipv6.clone(),
                    ..Instance::example(kind)
                },
            );
            if kind == CloudKind::Azure {
                s.set_azure_event(Some("Preempt"));
            } else {
                s.set_termination_notice(true);
            }
            vec![s]
        };
        let recorded: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
        let metadata_kind = MetadataKind::from_name(kind.name()).unwrap();
        for server in &servers {
            let addr = server.url().trim_start_matches("http://").to_string();
            let rec = recorded.clone();
            fake.set(move |r: &Request| {
                let (status, body) = forward(&addr, r);
                if (200..300).contains(&status) {
                    rec.lock()
                        .unwrap()
                        .insert(file_name(&r.method, &r.path), body.clone());
                }
                Response::new(status, body).header("Metadata-Flavor", "Google")
            });
            let cfg = InstanceConfig {
                metadata: metadata_kind,
                address: AddressKind::Public,
                ipv6: true,
                id: None,
                ipv4: None,
                hostname: None,
                region: None,
                metadata_endpoint: Some(fake.url.clone()),
            };
            assert!(rt.block_on(read_all(metadata_kind, &cfg, &planned())));
        }
        let dir = super::corpus_dir(&format!("metadata-{}", kind.name()));
        std::fs::create_dir_all(&dir).unwrap();
        for (file, body) in recorded.lock().unwrap().iter() {
            std::fs::write(dir.join(file), body).unwrap();
        }
    }
}

/// Triton's `sdc:nics`, as `mdata-get` prints it: JSON the identity's
/// addresses are read from. (`mdata-get` itself is a command named by
/// `DNSREG_MDATA_GET`, which a test cannot set: the process environment is
/// shared by every test, and changing it takes `unsafe`, which the crate
/// forbids; its exit codes are covered by the integration tests.)
#[test]
fn metadata_triton() {
    use crate::metadata::triton::addresses;
    let t = Target::new("metadata-triton");
    let seeds = corpus("metadata-triton");
    t.run_bytes(&seeds, TOKENS, |i| {
        // As `identity` reads it: JSON, an array of NICs.
        let Ok(v) = serde_json::from_str::<serde_json::Value>(i.text().trim()) else {
            return;
        };
        let Some(nics) = v.as_array() else {
            return;
        };
        let (_, _, ipv6) = addresses(nics);
        if let Some(ip) = ipv6 {
            assert!(!ip.is_unicast_link_local(), "{ip}");
        }
    });
}
