//! What the running agent says it is doing: the status file (`agent.json`)
//! that `dnsreg status` reads, the metrics of the mode and the checks, and
//! the line `systemctl status` shows.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Mode, notify};
use crate::checks;
use crate::registry::unix_now;

/// The file in the state directory where the running agent says what it is
/// doing, for `dnsreg status`.
pub(super) const STATUS_FILE: &str = "agent.json";

/// What the agent is doing, in a word (the status file's `state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Identifying the instance, or waiting for the health checks.
    Starting,
    /// A sync to publish is under way.
    Publishing,
    /// Published, and kept true.
    Published,
    /// Records removed while the health checks fail.
    Withdrawn,
    /// Records removed for good after a termination notice.
    Terminating,
    /// SIGTERM: leaving, then draining.
    Stopping,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Publishing => "publishing",
            State::Published => "published",
            State::Withdrawn => "withdrawn",
            State::Terminating => "terminating",
            State::Stopping => "stopping",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the agent is doing, as `dnsreg status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub pid: u32,
    pub state: State,
    /// Why, in one line (failing checks, the notice, the last error).
    pub reason: String,
    /// Each health check's last result.
    #[serde(default)]
    pub checks: Vec<checks::CheckStatus>,
    /// Unix seconds of this status.
    pub since: u64,
}

impl AgentStatus {
    /// The running agent's status in `state_dir`, if an agent is running there.
    pub fn read(state_dir: &Path) -> Option<AgentStatus> {
        let bytes = std::fs::read(state_dir.join(STATUS_FILE)).ok()?;
        let status: AgentStatus = serde_json::from_slice(&bytes).ok()?;
        // A file left by an agent that is gone says nothing about now.
        Path::new(&format!("/proc/{}", status.pid))
            .exists()
            .then_some(status)
    }

    /// Says at once what a new mode means (a sync for it may take a while:
    /// up is "publishing" until it is done).
    pub(super) fn show(&mut self, mode: &Mode, state_dir: &Path) {
        (self.state, self.reason) = describe(mode);
        if *mode == Mode::Up {
            self.state = State::Publishing;
        }
        self.since = unix_now();
        self.write(state_dir);
    }

    pub(super) fn write(&self, state_dir: &Path) {
        // Every change of the agent's status passes here: the metrics of the
        // mode and the checks follow it, and the textfile is written anew
        // (after each sync and at each change of mode).
        let metrics = crate::metrics::get();
        metrics.mode(match self.state {
            State::Published => "publishing",
            other => other.as_str(),
        });
        metrics.checks(&self.checks);
        crate::metrics::flush();
        let path = state_dir.join(STATUS_FILE);
        let tmp = state_dir.join(format!(".{STATUS_FILE}.tmp"));
        let done = crate::state::create_private_dir(state_dir)
            .and_then(|()| crate::state::create_private_file(&tmp))
            .and_then(|mut f| {
                std::io::Write::write_all(
                    &mut f,
                    &serde_json::to_vec_pretty(self).unwrap_or_default(),
                )
            })
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = done {
            tracing::debug!("cannot write {}: {e}", path.display());
        }
        // The same line for `systemctl status`.
        let line = match self.reason.as_str() {
            "" => self.state.to_string(),
            why => format!("{}: {why}", self.state),
        };
        notify(&[sd_notify::NotifyState::Status(&line)]);
    }
}

impl std::fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "agent (pid {}): {}", self.pid, self.state)?;
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason)?;
        }
        Ok(())
    }
}

/// The agent's state and reason, as `dnsreg status` and `systemctl status` show them.
pub(super) fn describe(mode: &Mode) -> (State, String) {
    match mode {
        Mode::Up => (State::Published, String::new()),
        Mode::Withdrawn(why) => (State::Withdrawn, format!("health checks fail: {why}")),
        Mode::Terminating(n) => (State::Terminating, n.clone()),
    }
}
