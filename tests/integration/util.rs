//! Starting the binary, isolated from the user's setup, and reading what it said.
//! The stand-ins and what they hold are the battery's [`World`].

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::battery::{Route53Backend, World};

pub const ZONE: &str = "example.com";

/// The battery's Route53 world (the stand-in with `example.com`, the AWS
/// metadata stand-in, a scratch directory): what the tests of the agent, the
/// configuration, the metadata sources, leases and crashes stand on. It derefs
/// to the [`World`], and so to the stand-in (`env.r53`, `env.zone_id`).
pub struct Env(World<Route53Backend>);

impl Env {
    pub fn new() -> Env {
        Env(World::new())
    }

    /// Every rrset but the zone's own SOA and NS, as `name type [values]` lines
    /// (`name type [set-id] values` under multivalue routing), values sorted and
    /// joined by ` | `: Route53's own view, one line per rrset, where
    /// [`World::records`] has one canonical line per value.
    pub fn records(&self) -> Vec<String> {
        self.r53
            .rrsets(&self.zone_id)
            .into_iter()
            .filter(|r| !(r.name == format!("{ZONE}.") && (r.rtype == "SOA" || r.rtype == "NS")))
            .map(|r| {
                let mut v = r.records.clone();
                v.sort();
                match &r.set_identifier {
                    Some(id) => format!("{} {} [{id}] {}", r.name, r.rtype, v.join(" | ")),
                    None => format!("{} {} {}", r.name, r.rtype, v.join(" | ")),
                }
            })
            .collect()
    }
}

impl Deref for Env {
    type Target = World<Route53Backend>;

    fn deref(&self) -> &World<Route53Backend> {
        &self.0
    }
}

/// `name` made absolute: relative names are in [`ZONE`].
pub fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.{ZONE}.")
    }
}

/// Cuts a command off from the user's AWS setup and from real endpoints.
pub fn isolate(c: &mut Command, dir: &Path) {
    // Empty AWS config files: nothing of the user's, and no warnings about missing ones.
    for f in ["aws-config", "aws-credentials"] {
        if !dir.join(f).exists() {
            std::fs::write(dir.join(f), "").unwrap();
        }
    }
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", dir.join("aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("aws-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        // Any metadata lookup that escapes the overrides fails fast on loopback.
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")
        .env("NO_COLOR", "1");
    hermetic(c, dir);
}

/// Points every input of cloud detection (`metadata = "auto"`) away from the
/// host: the DMI strings, cloud-init's instance-data.json and the metadata
/// addresses, so that a test run on a cloud VM never reads that VM's identity
/// nor asks its metadata service. The files are in `dir` and absent unless a
/// test plants them ([`plant_cloud_init`]); a test that serves metadata sets
/// its own endpoint after this.
pub fn hermetic(c: &mut Command, dir: &Path) {
    c.env("DNSREG_DMI_DIR", dir.join("dmi"))
        .env("DNSREG_CLOUD_INIT_DATA", dir.join("instance-data.json"))
        .env("DNSREG_METADATA_PROBE_ROOT", "http://127.0.0.1:9")
        .env("DNSREG_MDATA_GET", dir.join("no-mdata-get"));
}

/// Writes the instance-data.json that [`hermetic`] points detection at,
/// naming `cloud` as cloud-init's verdict.
pub fn plant_cloud_init(dir: &Path, cloud: &str) {
    std::fs::write(
        dir.join("instance-data.json"),
        format!(r#"{{"v1": {{"cloud_name": "{cloud}", "platform": "{cloud}"}}}}"#),
    )
    .unwrap();
}

/// Runs and returns the output; panics with both streams if the exit code differs.
pub fn run_expect(c: &mut Command, code: i32) -> Output {
    let out = c.output().expect("dnsreg runs");
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code of {c:?}\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The workspace's Python venv (scripts/setup-test-env); panics with how to make it.
pub fn venv_bin(tool: &str) -> PathBuf {
    let venv = std::env::var_os("DNSREG_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let path = venv.join("bin").join(tool);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup-test-env (or scripts/test, which runs it)",
        path.display()
    );
    path
}

/// The API token the Cloudflare stand-in knows, with DNS edit permission.
pub const CF_TOKEN: &str = "cf-test-token-7f3a9c2e5b1d";
