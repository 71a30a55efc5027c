//! The local state file: what this instance published, per provider.
//!
//! Together with the ownership registry in the zone, it lets `leave` and the next
//! start remove records of an address the instance no longer has. It also
//! saves requests: the zone's id at the provider (looked up once in an
//! instance's life), and what this instance's last change left there, which
//! the next change is written against without reading first. It is written
//! before a change (the zone, its id, and whether a leave is under way) and
//! after it (what this instance owns, what the change left), always
//! atomically: a temporary file in the same directory, fsync, rename, fsync of
//! the directory. A crash at any point leaves either the old
//! or the new file, never a torn one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::provider::Values;

const FILE: &str = "state.json";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    pub instance_id: String,
    /// By provider name.
    pub providers: BTreeMap<String, ProviderState>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderState {
    pub zone: String,
    /// The provider's id for the zone (Route53 hosted zone, Cloudflare zone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_id: Option<String>,
    /// What this instance owned after its last change that completed.
    pub published: Values,
    /// A leave was started and not seen to complete.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub leaving: bool,
    /// What this instance's last change left at the provider, in the
    /// provider's own form (its rrsets or record ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<serde_json::Value>,
    /// A change the provider accepted and has not yet confirmed live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    /// How long the last confirmed change took to go live, in milliseconds:
    /// when to ask about the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_after_ms: Option<u64>,
}

/// A change accepted by the provider, not yet confirmed live everywhere.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    /// The provider's id for it (Route53: `C…`).
    pub change: String,
    /// When it was accepted, unix milliseconds.
    pub accepted_ms: u64,
}

pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(dir: &Path) -> StateFile {
        StateFile {
            path: dir.join(FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state; empty when the file does not exist. A file that cannot be read
    /// is an error: silently forgetting what we published would leak records.
    pub fn load(&self) -> anyhow::Result<State> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!("state file {} is damaged; move it away to start afresh (the ownership registry in DNS still knows what was published)", self.path.display())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State { version: 1, ..State::default() }),
            Err(e) => Err(e).with_context(|| format!("reading state file {}", self.path.display())),
        }
    }

    /// Replaces the file atomically.
    pub fn save(&self, state: &State) -> anyhow::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir)
            .with_context(|| format!("creating state directory {}", dir.display()))?;
        let tmp = dir.join(format!(".{FILE}.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = create_private_file(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write()
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })
            .with_context(|| format!("writing state file {}", self.path.display()))
    }
}

/// Creates `dir` and its missing parents readable by this user alone (0700);
/// an existing directory is left as it is (the operator's choice).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Creates (or truncates) a file readable by this user alone (0600): what
/// dnsreg writes names this machine's records and the zone's layout.
pub fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Value;

    #[test]
    fn saves_and_loads_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(&dir.path().join("sub"));
        assert_eq!(f.load().unwrap().providers.len(), 0);
        let mut s = State {
            version: 1,
            instance_id: "i-1".into(),
            ..State::default()
        };
        s.providers.insert(
            "r53".into(),
            ProviderState {
                zone: "example.com.".into(),
                zone_id: Some("Z1".into()),
                published: [Value::from_line("www.example.com. A 192.0.2.1").unwrap()].into(),
                leaving: true,
                memory: Some(serde_json::json!({"rrsets": {}})),
                pending: Some(Pending {
                    change: "C1".into(),
                    accepted_ms: 1,
                }),
                live_after_ms: Some(200),
            },
        );
        f.save(&s).unwrap();
        assert_eq!(f.load().unwrap(), s);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("state.json")]);
        // Readable by this user alone, whatever the umask.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("sub")), 0o700);
        assert_eq!(mode(&dir.path().join("sub/state.json")), 0o600);
        std::fs::write(f.path(), "{").unwrap();
        assert!(f.load().unwrap_err().to_string().contains("damaged"));
    }
}
