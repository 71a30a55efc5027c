//! One classification of a call that crossed the network and did not do what
//! it was asked: what the retry loop does next depends on it alone (wait for
//! the rate limit, back off and try again, read again, or stop), and so does
//! what the metrics count.

use std::fmt;
use std::time::Duration;

/// Why a call did not do what it was asked, classified for the retry loop.
#[derive(Debug)]
pub enum Fail {
    /// The provider's rate limit: it asks to come back later (after
    /// `retry_after` when it says). The provider's [`crate::retry::Pacer`] already knows.
    Busy {
        why: String,
        retry_after: Option<Duration>,
    },
    /// A failure that may pass: 5xx, a timeout, a connection reset.
    Transient(String),
    /// The zone changed since the snapshot (from `write` only): nothing was
    /// applied; read again and retry.
    Conflict(String),
    /// Will not pass by trying again: denied, invalid, not found. Says what to do.
    Permanent(anyhow::Error),
}

impl Fail {
    pub fn permanent(message: impl fmt::Display) -> Fail {
        Fail::Permanent(anyhow::anyhow!("{message}"))
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Busy { why, .. } => write!(f, "busy: {why}"),
            Fail::Transient(m) | Fail::Conflict(m) => f.write_str(m),
            Fail::Permanent(e) => write!(f, "{e:#}"),
        }
    }
}
