//! The happy path against moto, an independent Route53 implementation: our
//! requests have shapes another implementation accepts. (moto is lenient, so
//! the semantics are proven against the strict stand-in, not here.)

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{isolate, run_expect, venv_bin};

struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto(dir: &std::path::Path) -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = Command::new(venv_bin("moto_server"));
    isolate(&mut c, dir);
    let child = c
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto { child, url }
}

fn aws(dir: &std::path::Path, url: &str, args: &[&str]) -> serde_json::Value {
    let mut c = Command::new(venv_bin("aws"));
    isolate(&mut c, dir);
    let out = run_expect(
        c.args(["--endpoint-url", url, "--output", "json", "route53"])
            .args(args),
        0,
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

#[test]
fn join_and_leave_work_against_moto() {
    let dir = tempfile::tempdir().unwrap();
    let moto = start_moto(dir.path());
    let zone = aws(
        dir.path(),
        &moto.url,
        &[
            "create-hosted-zone",
            "--name",
            "example.org",
            "--caller-reference",
            "dnsreg-test",
        ],
    );
    let zone_id = zone["HostedZone"]["Id"]
        .as_str()
        .unwrap()
        .trim_start_matches("/hostedzone/")
        .to_string();

    let dnsreg = |cmd: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dnsreg"));
        isolate(&mut c, dir.path());
        c.env("AWS_ENDPOINT_URL_ROUTE_53", &moto.url)
            .args([
                cmd,
                "--provider",
                "route53",
                "--zone",
                "example.org",
                "--service",
                "_v1._theservice._tcp",
                "--port",
                "8080",
                "--name",
                "www",
            ])
            .args([
                "--metadata",
                "none",
                "--instance-id",
                "i-moto",
                "--ipv4",
                "198.51.100.1",
            ])
            .arg("--state-dir")
            .arg(dir.path().join("state"));
        run_expect(&mut c, 0);
    };
    let listed = || -> Vec<String> {
        let got = aws(
            dir.path(),
            &moto.url,
            &["list-resource-record-sets", "--hosted-zone-id", &zone_id],
        );
        let mut out: Vec<String> = got["ResourceRecordSets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["Type"] != "SOA" && r["Type"] != "NS")
            .flat_map(|r| {
                r["ResourceRecords"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| {
                        format!(
                            "{} {} {}",
                            r["Name"].as_str().unwrap(),
                            r["Type"].as_str().unwrap(),
                            v["Value"].as_str().unwrap()
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .filter(|l| !l.contains("._dnsreg."))
            .collect();
        out.sort();
        out
    };

    dnsreg("join");
    assert_eq!(
        listed(),
        vec![
            "198-51-100-1.example.org. A 198.51.100.1",
            "_v1._theservice._tcp.example.org. SRV 0 0 8080 198-51-100-1.example.org.",
            "www.example.org. A 198.51.100.1",
        ]
    );
    dnsreg("leave");
    assert_eq!(listed(), Vec::<String>::new());
}
