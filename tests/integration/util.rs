//! Starting the binary and the stand-ins, and reading what they hold.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;
use testkit::imds::{AwsInstance, ImdsServer};
use testkit::route53::Route53Server;

pub const ZONE: &str = "example.com";

/// A Route53 stand-in with one zone, an AWS metadata stand-in, and a scratch directory.
pub struct Env {
    pub r53: Route53Server,
    pub imds: ImdsServer,
    pub zone_id: String,
    pub dir: TempDir,
}

impl Env {
    pub fn new() -> Env {
        let r53 = Route53Server::start();
        r53.set_insync_after(std::time::Duration::from_millis(50));
        let zone_id = r53.create_zone(ZONE);
        let imds = ImdsServer::start(AwsInstance::default());
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dmi")).unwrap();
        Env {
            r53,
            imds,
            zone_id,
            dir,
        }
    }

    /// `dnsreg` with every endpoint pointed at the stand-ins, nothing else reachable:
    /// no real metadata address, no real AWS, no user's AWS config.
    pub fn dnsreg(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dnsreg"));
        isolate(&mut c, self.dir.path());
        c.env("AWS_ENDPOINT_URL_ROUTE_53", self.r53.url())
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", self.imds.url())
            .env("DNSREG_DMI_DIR", self.dir.path().join("dmi"));
        c
    }

    /// `dnsreg CMD --provider route53 --zone example.com ARGS --state-dir …`: a
    /// one-shot command configured from flags alone, as the instance the
    /// metadata stand-in describes. `args` is split at spaces.
    pub fn flags(&self, cmd: &str, args: &str) -> Command {
        let mut c = self.dnsreg();
        c.args([cmd, "--provider", "route53", "--zone", ZONE])
            .args(args.split_whitespace())
            .arg("--state-dir")
            .arg(self.state_dir());
        c
    }

    /// The same as instance `id` with address `ip` (`--metadata none`), with a
    /// state directory of its own: many instances in one test.
    pub fn instance(&self, cmd: &str, id: &str, ip: &str, args: &str) -> Command {
        let mut c = self.dnsreg();
        c.args([cmd, "--provider", "route53", "--zone", ZONE])
            .args(args.split_whitespace())
            .args(["--metadata", "none", "--instance-id", id, "--ipv4", ip])
            .arg("--state-dir")
            .arg(self.state_dir().join(id));
        c
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Writes a configuration file; `{state_dir}` in the text is filled in.
    pub fn config(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(
            &path,
            text.replace("{state_dir}", &self.state_dir().display().to_string()),
        )
        .unwrap();
        path
    }

    /// The values at `name` (relative to the zone) and `rtype`, sorted.
    pub fn values(&self, name: &str, rtype: &str) -> Vec<String> {
        self.r53.values(&self.zone_id, &absolute(name), rtype)
    }

    /// Every rrset but the zone's own SOA and NS, as `name type [values]` lines.
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

/// A Cloudflare stand-in with one zone and one token, an AWS metadata stand-in,
/// and a scratch directory.
pub struct CfEnv {
    pub cf: testkit::cloudflare::CloudflareServer,
    pub imds: ImdsServer,
    pub zone_id: String,
    pub dir: TempDir,
}

impl CfEnv {
    pub fn new() -> CfEnv {
        let cf = testkit::cloudflare::CloudflareServer::start();
        let zone_id = cf.create_zone(ZONE);
        cf.add_token(CF_TOKEN, true);
        let imds = ImdsServer::start(AwsInstance::default());
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dmi")).unwrap();
        CfEnv {
            cf,
            imds,
            zone_id,
            dir,
        }
    }

    /// `dnsreg` pointed at the metadata stand-in, with the token in
    /// `CLOUDFLARE_API_TOKEN`; the Cloudflare endpoint goes in flags or config.
    pub fn dnsreg(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dnsreg"));
        isolate(&mut c, self.dir.path());
        c.env("AWS_EC2_METADATA_SERVICE_ENDPOINT", self.imds.url())
            .env("DNSREG_DMI_DIR", self.dir.path().join("dmi"))
            .env("CLOUDFLARE_API_TOKEN", CF_TOKEN);
        c
    }

    /// `dnsreg CMD --provider cloudflare --zone example.com --endpoint … ARGS --state-dir …`.
    pub fn flags(&self, cmd: &str, args: &str) -> Command {
        let mut c = self.dnsreg();
        c.args([
            cmd,
            "--provider",
            "cloudflare",
            "--zone",
            ZONE,
            "--endpoint",
        ])
        .arg(self.cf.url())
        .args(args.split_whitespace())
        .arg("--state-dir")
        .arg(self.state_dir());
        c
    }

    /// The same as instance `id` with address `ip`, with a state directory of its own.
    pub fn instance(&self, cmd: &str, id: &str, ip: &str, args: &str) -> Command {
        let mut c = self.dnsreg();
        c.args([
            cmd,
            "--provider",
            "cloudflare",
            "--zone",
            ZONE,
            "--endpoint",
        ])
        .arg(self.cf.url())
        .args(args.split_whitespace())
        .args(["--metadata", "none", "--instance-id", id, "--ipv4", ip])
        .arg("--state-dir")
        .arg(self.state_dir().join(id));
        c
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Writes a configuration file; `{state_dir}` and `{cf_endpoint}` are filled in.
    pub fn config(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(
            &path,
            text.replace("{state_dir}", &self.state_dir().display().to_string())
                .replace("{cf_endpoint}", &self.cf.url()),
        )
        .unwrap();
        path
    }

    /// The values at `name` (relative to the zone) and `rtype`, sorted, as the
    /// stand-in shows them (SRV "prio weight port target", names without dot).
    pub fn values(&self, name: &str, rtype: &str) -> Vec<String> {
        let abs = absolute(name);
        self.cf
            .values(&self.zone_id, abs.trim_end_matches('.'), rtype)
    }

    /// Every record, as `name type content [comment]` lines, sorted.
    pub fn records(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .cf
            .records(&self.zone_id)
            .into_iter()
            .map(|r| {
                format!(
                    "{} {} {} [{}]",
                    r.name,
                    r.rtype,
                    r.content,
                    r.comment.unwrap_or_default()
                )
            })
            .collect();
        out.sort();
        out
    }
}
