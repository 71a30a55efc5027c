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

// ---------------------------------------------------------------------------
// Waiting for events instead of sleeping; bounding what must not hang
// ---------------------------------------------------------------------------

/// Polls `cond` every 50 ms until it holds; panics naming `what` after `limit`.
pub fn wait_until(limit: std::time::Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// What a child writes to one of its pipes, read in the background as it
/// comes: a test waits for the line that says something happened instead of
/// sleeping and hoping it did.
pub struct Said {
    text: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Said {
    /// Starts reading `pipe` (a child's `stdout` or `stderr`, taken) to its end.
    pub fn read(mut pipe: impl std::io::Read + Send + 'static) -> Said {
        let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let into = std::sync::Arc::clone(&text);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                into.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Said {
            text,
            reader: Some(reader),
        }
    }

    /// Everything read so far.
    pub fn now(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Waits until the text read so far contains `needle`; panics with all of
    /// it after `limit`.
    pub fn wait_for(&self, limit: std::time::Duration, needle: &str) {
        let deadline = std::time::Instant::now() + limit;
        while !self.now().contains(needle) {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after {limit:?} waiting for {needle:?} in:\n{}",
                self.now()
            );
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
    }

    /// Everything, once the pipe is closed (call it after the child exited).
    pub fn all(&mut self) -> String {
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        self.now()
    }
}

/// Runs `c` with its output captured, like [`Command::output`], but kills it
/// and panics (with what it said) if it is still running after `limit`: a
/// command that must not hang fails its test instead of hanging it.
pub fn output_within(c: &mut Command, limit: std::time::Duration) -> Output {
    let mut child = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("dnsreg runs");
    let mut out = Said::read(child.stdout.take().unwrap());
    let mut err = Said::read(child.stderr.take().unwrap());
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{c:?} still ran after {limit:?}\n--- stdout\n{}\n--- stderr\n{}",
                out.all(),
                err.all()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.all().into_bytes(),
        stderr: err.all().into_bytes(),
    }
}

/// A loopback TCP port held for a test, with nothing listening on it unless
/// [`TcpPort::listen`]: connections to it are refused, and no other socket
/// can take it meanwhile (it is bound with SO_REUSEPORT, which lets in only
/// sockets that ask for it too, as `listen` does). Unlike a port found free
/// and let go, it cannot be taken by another process before the test uses it.
pub struct TcpPort {
    _held: tokio::net::TcpSocket,
    addr: std::net::SocketAddr,
}

impl TcpPort {
    pub fn new() -> TcpPort {
        let held = tokio::net::TcpSocket::new_v4().unwrap();
        held.set_reuseport(true).unwrap();
        held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = held.local_addr().unwrap();
        TcpPort { _held: held, addr }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Listens on the port (connections complete; none is accepted) until the
    /// listener is dropped, when connections are refused again.
    pub fn listen(&self) -> std::net::TcpListener {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseport(true).unwrap();
        socket.bind(self.addr).unwrap();
        // tokio's listen registers with a reactor: a small one, for this call.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let _entered = rt.enter();
        socket.listen(128).unwrap().into_std().unwrap()
    }
}

/// Where claims are kept by name (RFC 2136), the owner name of the claim
/// rrset of the value whose canonical line is `line` (`NAME TYPE DATA`, as
/// [`World::records`] prints it): computed here independently of dnsreg, from
/// the format README documents (the first 16 bytes of the line's SHA-256, in
/// DNSSEC base32, under `_claims._dnsreg.<zone>`).
pub fn claim_name(line: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(line.as_bytes());
    format!(
        "{}._claims._dnsreg.{ZONE}.",
        data_encoding::BASE32_DNSSEC.encode(&digest[..16])
    )
}

/// The claims among `records` (canonical lines): claim name → the instance
/// labels it names.
pub fn claims(records: &[String]) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for r in records.iter().filter(|r| r.contains("._claims._dnsreg.")) {
        let (name, rest) = r.split_once(' ').unwrap();
        let label = rest.rsplit_once(' ').unwrap().1.trim_matches('"');
        out.entry(name.to_string())
            .or_default()
            .push(label.to_string());
    }
    for labels in out.values_mut() {
        labels.sort();
    }
    out
}

/// The claims expected for `owners`: each shared value's line and the
/// instances that publish it.
pub fn expected_claims<'a>(
    owners: impl IntoIterator<Item = (&'a str, String)>,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (id, line) in owners {
        out.entry(claim_name(&line))
            .or_default()
            .push(id.to_ascii_lowercase());
    }
    for labels in out.values_mut() {
        labels.sort();
        labels.dedup();
    }
    out
}

/// `[("Action", n), …]` as the map of request counts the stand-ins keep.
pub fn counts(pairs: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}
