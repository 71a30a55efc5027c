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
    /// Refused for want of a right: credentials, a token or a key that are
    /// wrong, expired, or lack a permission. Will not pass by trying again;
    /// says which right is missing.
    Denied(anyhow::Error),
    /// Will not pass by trying again: invalid, not found, not an answer the
    /// provider gives. Says what to do.
    Permanent(anyhow::Error),
}

impl Fail {
    pub fn permanent(message: impl fmt::Display) -> Fail {
        Fail::Permanent(anyhow::anyhow!("{message}"))
    }

    pub fn denied(message: impl fmt::Display) -> Fail {
        Fail::Denied(anyhow::anyhow!("{message}"))
    }

    /// The same failure, its message led by `context` (which provider,
    /// doing what).
    pub fn context(self, context: impl fmt::Display) -> Fail {
        match self {
            Fail::Busy { why, retry_after } => Fail::Busy {
                why: format!("{context}: {why}"),
                retry_after,
            },
            Fail::Transient(m) => Fail::Transient(format!("{context}: {m}")),
            Fail::Conflict(m) => Fail::Conflict(format!("{context}: {m}")),
            Fail::Denied(e) => Fail::Denied(e.context(context.to_string())),
            Fail::Permanent(e) => Fail::Permanent(e.context(context.to_string())),
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Busy { why, .. } => write!(f, "busy: {why}"),
            Fail::Transient(m) | Fail::Conflict(m) => f.write_str(m),
            Fail::Denied(e) | Fail::Permanent(e) => write!(f, "{e:#}"),
        }
    }
}

/// Its message already holds every cause (`{e:#}`), so it names no source.
impl std::error::Error for Fail {}

/// The provider does not know the zone id it was given (the zone was
/// deleted, and perhaps made again under a new id), or cannot say whether it
/// does (Cloudflare answers an id outside the token's scope alike): carried
/// inside a [`Fail::Permanent`] or [`Fail::Denied`], so that an id
/// remembered from an earlier run is looked up anew instead of tried again.
#[derive(Debug)]
pub struct ZoneGone(pub String);

impl fmt::Display for ZoneGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ZoneGone {}

impl ZoneGone {
    /// Whether `e`, however much context was put in front of it, says so.
    pub fn within(e: &anyhow::Error) -> bool {
        e.chain().any(|c| c.is::<ZoneGone>())
    }
}
