//! Metadata: `dnsreg whoami` on every cloud, against the metadata stand-in
//! (`testkit::imds`) and, for Triton, a script playing `mdata-get`. Detection
//! from DMI and cloud-init fixtures, probes, and how quickly a missing service
//! is given up on. Nothing here can reach a real metadata address: every
//! command has DNSREG_DMI_DIR, DNSREG_CLOUD_INIT_DATA and
//! DNSREG_METADATA_PROBE_ROOT pointed at fixtures and loopback.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use testkit::imds::{CloudKind, ImdsServer, Instance};

use crate::util::{Env, TcpPort, isolate, output_within, run_expect, stderr, stdout};

/// A scratch directory with an empty DMI dir, and `dnsreg` pointed at it.
struct Box {
    dir: tempfile::TempDir,
}

impl Box {
    fn new() -> Box {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dmi")).unwrap();
        Box { dir }
    }

    /// `dnsreg` with no AWS endpoint variable, probes sent to `probe_root`.
    fn dnsreg(&self, probe_root: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dnsreg"));
        isolate(&mut c, self.dir.path());
        c.env_remove("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            .env("DNSREG_DMI_DIR", self.dir.path().join("dmi"))
            .env(
                "DNSREG_CLOUD_INIT_DATA",
                self.dir.path().join("instance-data.json"),
            )
            .env("DNSREG_METADATA_PROBE_ROOT", probe_root)
            .env("DNSREG_MDATA_GET", self.dir.path().join("no-mdata-get"));
        c
    }

    fn dmi(&self, file: &str, value: &str) {
        std::fs::write(self.dir.path().join("dmi").join(file), format!("{value}\n")).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn whoami_json(c: &mut Command) -> serde_json::Value {
    let out = run_expect(c.args(["whoami", "--json"]), 0);
    serde_json::from_str(&stdout(&out)).unwrap()
}

#[test]
fn whoami_detects_gcp_from_dmi() {
    let want = Instance::example(CloudKind::Gcp);
    let imds = ImdsServer::start_cloud(CloudKind::Gcp, want.clone());
    let b = Box::new();
    b.dmi("product_name", "Google Compute Engine");
    let id = whoami_json(&mut b.dnsreg(&imds.url()));
    assert_eq!(id["cloud"], "gcp");
    assert_eq!(id["instance_id"], want.instance_id.as_str());
    assert_eq!(id["region"], want.region.as_str());
    assert_eq!(id["availability_zone"], want.zone.as_str());
    assert_eq!(
        id["detected_by"],
        "auto: DMI product_name is \"Google Compute Engine\""
    );
}

#[test]
fn whoami_detects_azure_from_cloud_init_instance_data() {
    let want = Instance::example(CloudKind::Azure);
    let imds = ImdsServer::start_cloud(CloudKind::Azure, want.clone());
    let b = Box::new();
    std::fs::write(
        b.path("instance-data.json"),
        r#"{"v1": {"cloud_name": "azure", "platform": "azure", "region": "westeurope"}}"#,
    )
    .unwrap();
    let id = whoami_json(&mut b.dnsreg(&imds.url()));
    assert_eq!(id["cloud"], "azure");
    assert_eq!(id["instance_id"], want.instance_id.as_str());
    assert!(
        id["detected_by"]
            .as_str()
            .unwrap()
            .contains("v1.cloud_name is \"azure\""),
        "{id}"
    );
}

#[test]
fn whoami_finds_each_http_cloud_by_probing() {
    for kind in [
        CloudKind::Aws,
        CloudKind::Gcp,
        CloudKind::Azure,
        CloudKind::DigitalOcean,
        CloudKind::Hetzner,
        CloudKind::OpenStack,
        CloudKind::Oracle,
        CloudKind::Alibaba,
    ] {
        let want = Instance::example(kind);
        let imds = ImdsServer::start_cloud(kind, want.clone());
        let b = Box::new();
        let id = whoami_json(&mut b.dnsreg(&imds.url()));
        assert_eq!(id["cloud"], kind.name(), "{id}");
        assert_eq!(id["instance_id"], want.instance_id.as_str(), "{id}");
        assert_eq!(
            id["private_ipv4"],
            want.private_ipv4.as_str(),
            "{kind:?}: {id}"
        );
        assert_eq!(
            id["detected_by"],
            format!("auto: the {} metadata service answered", kind.name())
        );
    }
}

#[test]
fn an_explicit_cloud_reads_its_endpoint() {
    let want = Instance::example(CloudKind::Hetzner);
    let imds = ImdsServer::start_cloud(CloudKind::Hetzner, want.clone());
    let b = Box::new();
    let out = run_expect(
        b.dnsreg("http://127.0.0.1:9").args([
            "whoami",
            "--metadata",
            "hetzner",
            "--metadata-endpoint",
            &imds.url(),
        ]),
        0,
    );
    let text = stdout(&out);
    assert!(
        text.contains("cloud:        hetzner (metadata = \"hetzner\")"),
        "{text}"
    );
    assert!(
        text.contains(&format!("instance id:  {}", want.instance_id)),
        "{text}"
    );
    assert!(
        text.contains(&format!("public ipv4:  {}", want.public_ipv4.unwrap())),
        "{text}"
    );
}

/// How long `whoami` may take, process start included, when no metadata
/// service answers. The probes run at once, each cut off at 300 ms: the
/// in-process tests in src/metadata hold them to that, without a process to
/// start. This bound is for the whole binary on a loaded machine, and catches
/// a `whoami` that makes its user wait: probes without their cut-off, left to
/// the client's 2 s timeout and its retries (about 9 s), or no timeout at all
/// (the command is killed then, and the test fails rather than hangs).
const GIVEN_UP_WITHIN: Duration = Duration::from_secs(5);

#[test]
fn a_silent_metadata_service_is_given_up_on_in_well_under_a_second() {
    // Accepts connections, never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let b = Box::new();
    let start = Instant::now();
    let out = output_within(b.dnsreg(&url).arg("whoami"), GIVEN_UP_WITHIN);
    eprintln!(
        "whoami gave up on a silent service in {:?}",
        start.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("auto metadata: {url}: no cloud recognised")),
        "{}",
        stderr(&out)
    );
    drop(listener);
}

#[test]
fn a_refused_metadata_port_is_given_up_on_at_once() {
    // Bound, not listening: connections are refused, and no other process
    // can start answering there.
    let port = TcpPort::new();
    let url = format!("http://{}", port.addr());
    let b = Box::new();
    let start = Instant::now();
    let out = output_within(b.dnsreg(&url).arg("whoami"), GIVEN_UP_WITHIN);
    eprintln!("whoami gave up on a refused port in {:?}", start.elapsed());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("auto metadata: {url}: no cloud recognised")),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("set [instance] metadata to the cloud's name"),
        "{}",
        stderr(&out)
    );
}

/// A script that plays `mdata-get` on a Triton instance.
fn mdata_get(b: &Box, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = b.path("mdata-get");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn triton_reads_mdata_get() {
    let b = Box::new();
    let script = mdata_get(
        &b,
        r#"case "$1" in
  sdc:uuid) echo 4ad0f5f3-8e3e-4a1a-b7a5-2c0d1d4c7a11 ;;
  sdc:hostname) echo web-1 ;;
  sdc:datacenter_name) echo us-east-1 ;;
  sdc:nics) echo '[{"interface":"net0","ip":"10.88.0.7","nic_tag":"internal","primary":false},{"interface":"net1","ip":"203.0.113.20","ips":["203.0.113.20/24","2001:db8::20/64"],"nic_tag":"external","primary":true}]' ;;
  *) echo "No metadata for '$1'" >&2; exit 1 ;;
esac"#,
    );
    // DMI says SmartOS, so auto chooses Triton without any network call.
    b.dmi("product_name", "SmartDC HVM");
    let id = whoami_json(
        b.dnsreg("http://127.0.0.1:9")
            .env("DNSREG_MDATA_GET", &script),
    );
    assert_eq!(id["cloud"], "triton");
    assert_eq!(id["instance_id"], "4ad0f5f3-8e3e-4a1a-b7a5-2c0d1d4c7a11");
    assert_eq!(id["region"], "us-east-1");
    assert_eq!(id["hostname"], "web-1");
    assert_eq!(id["public_ipv4"], "203.0.113.20");
    assert_eq!(id["private_ipv4"], "10.88.0.7");
    assert_eq!(id["ipv6"], "2001:db8::20");
}

#[test]
fn a_failing_mdata_get_is_named() {
    let b = Box::new();
    let script = mdata_get(&b, "echo 'failed to connect to metadata agent' >&2; exit 2");
    let out = run_expect(
        b.dnsreg("http://127.0.0.1:9")
            .env("DNSREG_MDATA_GET", &script)
            .args(["whoami", "--metadata", "triton"]),
        1,
    );
    let want = format!(
        "triton metadata: {} sdc:uuid: exit 2: \"failed to connect to metadata agent\"",
        script.display()
    );
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
}

#[test]
fn azure_without_a_visible_public_address_says_what_to_configure() {
    let env = Env::new();
    let imds = ImdsServer::start_cloud(
        CloudKind::Azure,
        Instance {
            public_ipv4: None,
            ..Instance::example(CloudKind::Azure)
        },
    );
    let mut c = env.flags(
        "join",
        &format!(
            "--name www --metadata azure --metadata-endpoint {}",
            imds.url()
        ),
    );
    let out = run_expect(&mut c, 1);
    let e = stderr(&out);
    assert!(
        e.contains("Standard-SKU") && e.contains("address = \"private\"") && e.contains("ipv4"),
        "{e}"
    );
    assert_eq!(
        env.r53.stats().requests.get("ChangeResourceRecordSets"),
        None
    );
}

#[test]
fn every_metadata_source_is_accepted_and_a_wrong_one_is_listed() {
    let env = Env::new();
    for kind in [
        "auto",
        "aws",
        "gcp",
        "azure",
        "digitalocean",
        "hetzner",
        "openstack",
        "oracle",
        "alibaba",
        "triton",
    ] {
        let config = env.config(
            "m.toml",
            &format!(
                "[instance]\nmetadata = \"{kind}\"\n\n[providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\n\n[[round_robin]]\nproviders = [\"r53\"]\nname = \"www\"\n"
            ),
        );
        run_expect(env.dnsreg().arg("-c").arg(&config).arg("check"), 0);
    }
    let config = env.config(
        "m.toml",
        "[instance]\nmetadata = \"vultr\"\n\n[providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\n",
    );
    let out = run_expect(env.dnsreg().arg("-c").arg(&config).arg("check"), 2);
    assert!(
        stderr(&out)
            .contains("`vultr` is not a metadata source; write one of \"auto\", \"aws\", \"gcp\""),
        "{}",
        stderr(&out)
    );
}
