//! The AWS CLI and boto3, unchanged, against the Route53 stand-in.
//!
//! If the stand-in's wire format were only right for the Rust SDK, it would be a
//! private dialect. These tests drive it with two independent clients
//! (botocore's REST-XML parser, as used by the AWS CLI v1 and boto3) through the
//! operations dnsreg relies on: create-hosted-zone, list-hosted-zones-by-name,
//! change-resource-record-sets (CREATE, a conflicting CREATE that must fail with
//! InvalidChangeBatch, a DELETE+CREATE swap), list-resource-record-sets across
//! pages, and get-change until INSYNC.
//!
//! The tools come from the virtualenv `scripts/setup-test-env` creates
//! (`$DNSREG_VENV`, else `<workspace>/.venv`). Without it these tests fail and
//! say so; they never skip. Every process gets a scrubbed environment: test
//! credentials, empty config files, a fresh HOME, and the instance metadata
//! service disabled, so nothing reaches real AWS or 169.254.169.254.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use testkit::route53::Route53Server;

/// The virtualenv's `bin` directory, or a failure saying how to create it.
fn venv_bin() -> PathBuf {
    let venv = match std::env::var_os("DNSREG_VENV") {
        Some(v) => PathBuf::from(v),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(".venv"),
    };
    let bin = venv.join("bin");
    for tool in ["aws", "python"] {
        assert!(
            bin.join(tool).is_file(),
            "{} is missing: run scripts/setup-test-env (it installs the AWS CLI and boto3 into {}), \
             or point DNSREG_VENV at a virtualenv that has them",
            bin.join(tool).display(),
            venv.display()
        );
    }
    bin
}

/// A private scratch directory with empty AWS config and credentials files.
struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "testkit-r53-clients-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config"), "").unwrap();
        std::fs::write(dir.join("credentials"), "").unwrap();
        Sandbox { dir }
    }

    /// `program` with only the environment a hermetic AWS client needs.
    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .env("LANG", "C.UTF-8")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", self.dir.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.dir.join("credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1");
        command
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn show(output: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `aws route53 <args> --endpoint-url URL --output json`.
fn aws(sandbox: &Sandbox, bin: &Path, server: &Route53Server, args: &[&str]) -> Output {
    sandbox
        .command(&bin.join("aws"))
        .arg("route53")
        .args(args)
        .args(["--endpoint-url", &server.url(), "--output", "json"])
        .output()
        .expect("run the AWS CLI")
}

/// Like [`aws`], and the command must succeed; returns its JSON output.
fn aws_ok(sandbox: &Sandbox, bin: &Path, server: &Route53Server, args: &[&str]) -> Value {
    let output = aws(sandbox, bin, server, args);
    assert!(
        output.status.success(),
        "aws route53 {args:?} failed:\n{}",
        show(&output)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("aws route53 {args:?}: not JSON ({e}):\n{}", show(&output)))
}

fn a_change(action: &str, name: &str, values: &[&str]) -> Value {
    serde_json::json!({
        "Action": action,
        "ResourceRecordSet": {
            "Name": name,
            "Type": "A",
            "TTL": 60,
            "ResourceRecords": values.iter().map(|v| serde_json::json!({"Value": v})).collect::<Vec<_>>(),
        }
    })
}

fn change_batch(changes: &[Value]) -> String {
    serde_json::json!({"Comment": "cli", "Changes": changes}).to_string()
}

#[test]
fn aws_cli_drives_the_stand_in() {
    let bin = venv_bin();
    let sandbox = Sandbox::new();
    let server = Route53Server::start();
    server.set_insync_after(Duration::from_millis(300));
    // botocore's signatures are recomputed and must match.
    server.set_credentials(Some(("test", "test")));

    let created = aws_ok(
        &sandbox,
        &bin,
        &server,
        &[
            "create-hosted-zone",
            "--name",
            "example.com",
            "--caller-reference",
            "cli-1",
        ],
    );
    assert_eq!(created["HostedZone"]["Name"], "example.com.");
    assert_eq!(created["ChangeInfo"]["Status"], "PENDING");
    assert_eq!(
        created["DelegationSet"]["NameServers"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    let zone_id = created["HostedZone"]["Id"].as_str().unwrap().to_owned();
    assert!(zone_id.starts_with("/hostedzone/Z"), "{zone_id}");
    assert!(
        created["Location"].as_str().unwrap().ends_with(&zone_id),
        "{created}"
    );
    let bare = zone_id.trim_start_matches("/hostedzone/").to_owned();

    let by_name = aws_ok(
        &sandbox,
        &bin,
        &server,
        &["list-hosted-zones-by-name", "--dns-name", "example.com"],
    );
    assert_eq!(by_name["HostedZones"][0]["Id"], zone_id.as_str());
    assert_eq!(by_name["IsTruncated"], false);

    let create = change_batch(&[a_change("CREATE", "www.example.com", &["192.0.2.1"])]);
    let changed = aws_ok(
        &sandbox,
        &bin,
        &server,
        &[
            "change-resource-record-sets",
            "--hosted-zone-id",
            &zone_id,
            "--change-batch",
            &create,
        ],
    );
    let change_id = changed["ChangeInfo"]["Id"].as_str().unwrap().to_owned();
    assert!(change_id.starts_with("/change/C"), "{changed}");
    assert_eq!(changed["ChangeInfo"]["Comment"], "cli");

    // The conflicting CREATE fails, and the CLI names the error code and message.
    let conflict = change_batch(&[a_change("CREATE", "www.example.com", &["192.0.2.9"])]);
    let output = aws(
        &sandbox,
        &bin,
        &server,
        &[
            "change-resource-record-sets",
            "--hosted-zone-id",
            &bare,
            "--change-batch",
            &conflict,
        ],
    );
    assert!(!output.status.success(), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "An error occurred (InvalidChangeBatch) when calling the ChangeResourceRecordSets operation: \
             [Tried to create resource record set [name='www.example.com.', type='A'] but it already exists]"
        ),
        "{}",
        show(&output)
    );

    let swap = change_batch(&[
        a_change("DELETE", "www.example.com", &["192.0.2.1"]),
        a_change("CREATE", "www.example.com", &["192.0.2.1", "192.0.2.2"]),
    ]);
    aws_ok(
        &sandbox,
        &bin,
        &server,
        &[
            "change-resource-record-sets",
            "--hosted-zone-id",
            &bare,
            "--change-batch",
            &swap,
        ],
    );
    assert_eq!(
        server.values(&bare, "www.example.com", "A"),
        ["192.0.2.1", "192.0.2.2"]
    );

    // More record sets than a page holds; the CLI follows NextRecordName/Type/Identifier.
    for i in 0..330 {
        let mut set = testkit::route53::RrSet::simple(
            "svc.example.com",
            "A",
            60,
            &[&format!("10.2.{}.{}", i / 200, i % 200)],
        );
        set.set_identifier = Some(format!("i-{i:04}"));
        set.multivalue_answer = Some(true);
        server.put_rrset(&bare, set);
    }
    server.reset_stats();
    let listed = aws_ok(
        &sandbox,
        &bin,
        &server,
        &["list-resource-record-sets", "--hosted-zone-id", &bare],
    );
    let sets = listed["ResourceRecordSets"].as_array().unwrap();
    assert_eq!(sets.len(), 333, "NS, SOA, www and 330 members");
    let expected: Vec<(String, Option<String>)> = server
        .rrsets(&bare)
        .into_iter()
        .map(|s| (s.name, s.set_identifier))
        .collect();
    let got: Vec<(String, Option<String>)> = sets
        .iter()
        .map(|s| {
            (
                s["Name"].as_str().unwrap().to_owned(),
                s["SetIdentifier"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        server.stats().requests["ListResourceRecordSets"],
        2,
        "two pages of at most 300"
    );
    let first_page = aws_ok(
        &sandbox,
        &bin,
        &server,
        &[
            "list-resource-record-sets",
            "--hosted-zone-id",
            &bare,
            "--max-items",
            "5",
        ],
    );
    assert_eq!(
        first_page["ResourceRecordSets"].as_array().map(Vec::len),
        Some(5)
    );
    assert!(first_page["NextToken"].is_string(), "{first_page}");

    // get-change: PENDING, then INSYNC.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut statuses = Vec::new();
    loop {
        let info = aws_ok(&sandbox, &bin, &server, &["get-change", "--id", &change_id]);
        let status = info["ChangeInfo"]["Status"].as_str().unwrap().to_owned();
        statuses.push(status.clone());
        if status == "INSYNC" {
            break;
        }
        assert!(Instant::now() < deadline, "never INSYNC: {statuses:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let pending = aws_ok(
        &sandbox,
        &bin,
        &server,
        &[
            "change-resource-record-sets",
            "--hosted-zone-id",
            &bare,
            "--change-batch",
            &change_batch(&[a_change("CREATE", "new.example.com", &["192.0.2.3"])]),
        ],
    );
    assert_eq!(pending["ChangeInfo"]["Status"], "PENDING");
}

const BOTO3_SCRIPT: &str = r#"
import json, os, time
import boto3

client = boto3.client("route53", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1")
out = {}
zone = client.create_hosted_zone(Name="example.net", CallerReference="boto3-1")
zone_id = zone["HostedZone"]["Id"]
out["zone_id"] = zone_id
out["zone_name"] = zone["HostedZone"]["Name"]
out["by_name"] = [z["Name"] for z in client.list_hosted_zones_by_name(DNSName="example.net")["HostedZones"]]

def a(action, name, values, set_id=None):
    rrset = {"Name": name, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": v} for v in values]}
    if set_id is not None:
        rrset["SetIdentifier"] = set_id
        rrset["MultiValueAnswer"] = True
    return {"Action": action, "ResourceRecordSet": rrset}

def change(changes):
    return client.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})

created = change([a("CREATE", "www.example.net", ["198.51.100.1"])])
out["change_id"] = created["ChangeInfo"]["Id"]
out["first_status"] = created["ChangeInfo"]["Status"]

try:
    change([a("CREATE", "www.example.net", ["198.51.100.9"])])
    out["conflict"] = "no error"
except client.exceptions.InvalidChangeBatch as e:
    out["conflict"] = {"class": type(e).__name__, "code": e.response["Error"]["Code"], "message": e.response["Error"]["Message"],
                       "status": e.response["ResponseMetadata"]["HTTPStatusCode"], "request_id": e.response["ResponseMetadata"].get("RequestId")}

change([a("DELETE", "www.example.net", ["198.51.100.1"]), a("CREATE", "www.example.net", ["198.51.100.1", "198.51.100.2"])])

for start in range(0, 340, 85):
    change([a("CREATE", "svc.example.net", ["10.3.%d.%d" % (i // 200, i % 200)], "i-%04d" % i) for i in range(start, min(start + 85, 340))])

pages = []
seen = []
for page in client.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone_id):
    pages.append(len(page["ResourceRecordSets"]))
    seen.extend([s["Name"], s.get("SetIdentifier")] for s in page["ResourceRecordSets"])
out["pages"] = pages
out["seen"] = seen

statuses = []
deadline = time.time() + 30
while True:
    status = client.get_change(Id=out["change_id"])["ChangeInfo"]["Status"]
    statuses.append(status)
    if status == "INSYNC" or time.time() > deadline:
        break
    time.sleep(0.1)
out["statuses"] = statuses

try:
    client.get_hosted_zone(Id="ZNOSUCHZONE")
except client.exceptions.NoSuchHostedZone as e:
    out["no_such_zone"] = e.response["Error"]["Code"]
print(json.dumps(out))
"#;

#[test]
fn boto3_drives_the_stand_in() {
    let bin = venv_bin();
    let sandbox = Sandbox::new();
    let server = Route53Server::start();
    server.set_insync_after(Duration::from_millis(300));
    server.set_credentials(Some(("test", "test")));
    let output = sandbox
        .command(&bin.join("python"))
        .args(["-c", BOTO3_SCRIPT])
        .env("ENDPOINT", server.url())
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "the boto3 script failed:\n{}",
        show(&output)
    );
    let out: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", show(&output)));

    assert_eq!(out["zone_name"], "example.net.");
    assert_eq!(out["by_name"][0], "example.net.");
    assert_eq!(out["first_status"], "PENDING");
    let conflict = &out["conflict"];
    assert_eq!(conflict["class"], "InvalidChangeBatch", "{out}");
    assert_eq!(conflict["code"], "InvalidChangeBatch");
    assert_eq!(conflict["status"], 400);
    assert_eq!(
        conflict["message"],
        "[Tried to create resource record set [name='www.example.net.', type='A'] but it already exists]"
    );
    assert!(
        conflict["request_id"]
            .as_str()
            .is_some_and(|id| id.len() == 36),
        "{conflict}"
    );

    let bare = out["zone_id"]
        .as_str()
        .unwrap()
        .trim_start_matches("/hostedzone/")
        .to_owned();
    assert_eq!(
        server.values(&bare, "www.example.net", "A"),
        ["198.51.100.1", "198.51.100.2"]
    );
    assert_eq!(
        out["pages"],
        serde_json::json!([300, 43]),
        "NS, SOA, www and 340 members in pages of 300"
    );
    let expected: Vec<Value> = server
        .rrsets(&bare)
        .into_iter()
        .map(|s| serde_json::json!([s.name, s.set_identifier]))
        .collect();
    assert_eq!(
        out["seen"].as_array().unwrap(),
        &expected,
        "every record set once, in Route53 order"
    );
    let statuses = out["statuses"].as_array().unwrap();
    assert_eq!(statuses.last().unwrap(), "INSYNC", "{statuses:?}");
    assert_eq!(out["no_such_zone"], "NoSuchHostedZone");
    assert_eq!(server.stats().applied_batches, 6);
}
