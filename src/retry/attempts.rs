//! One operation's retries and deadline: busy answers wait on the pacer,
//! failures that may pass back off, anything else ends it.

use std::time::Duration;

use tokio::time::Instant;

use super::{Backoff, Pacer};
use crate::fail::Fail;

/// An operation that ran out of its deadline while the provider was busy or
/// contended (as opposed to one that was refused): the next try may well
/// succeed, and a leave's records are then left for a reaper.
#[derive(Debug)]
pub struct OutOfTime(pub String);

impl std::fmt::Display for OutOfTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OutOfTime {}

/// Retries one operation's calls: busy answers wait on the provider's pacer
/// (the provider already knows), failures that may pass get a capped backoff
/// and about a dozen tries, anything else ends the operation. All of it within
/// one deadline.
pub struct Attempts<'a> {
    provider: &'a str,
    pub deadline: Instant,
    transient: u32,
    policy: Backoff,
    pacer: Option<&'a Pacer>,
}

impl<'a> Attempts<'a> {
    pub fn new(provider: &'a str, deadline: Duration) -> Attempts<'a> {
        Attempts {
            provider,
            deadline: Instant::now() + deadline,
            transient: 0,
            policy: Backoff::API,
            pacer: None,
        }
    }

    /// Paced by `pacer`: a throttled retry never waits past the deadline
    /// (see [`Pacer::fit`]).
    pub fn paced(mut self, pacer: &'a Pacer) -> Attempts<'a> {
        self.pacer = Some(pacer);
        self
    }

    /// With another policy for failures that may pass.
    pub fn with(mut self, policy: Backoff) -> Attempts<'a> {
        self.policy = policy;
        self
    }

    /// After `fail` while `doing`: returns once it is worth trying again, or
    /// the error that ends the operation.
    pub async fn after(&mut self, doing: &str, fail: Fail) -> anyhow::Result<()> {
        let provider = self.provider;
        match fail {
            Fail::Denied(e) | Fail::Permanent(e) => Err(e.context(format!("{provider}: {doing}"))),
            Fail::Conflict(m) => Err(anyhow::anyhow!("{provider}: {doing}: {m}")),
            Fail::Busy { why, .. } => {
                if Instant::now() >= self.deadline {
                    return Err(OutOfTime(format!(
                        "{provider}: {doing}: still busy at the deadline: {why}"
                    ))
                    .into());
                }
                crate::metrics::get().retry(provider, "throttled");
                Ok(())
            }
            Fail::Transient(m) => {
                self.transient += 1;
                if self.transient >= self.policy.attempts || Instant::now() >= self.deadline {
                    anyhow::bail!(
                        "{provider}: {doing}: still failing after {} attempts: {m}",
                        self.transient
                    );
                }
                tracing::debug!(provider, attempt = self.transient, doing, "{m}; retrying");
                crate::metrics::get().retry(provider, "transient");
                self.sleep(self.policy.delay(self.transient - 1)).await;
                Ok(())
            }
        }
    }

    /// A request about to be sent comes before the deadline, whatever
    /// window the pacer's refusals opened (see [`Pacer::fit`]). Measured
    /// without it: a leaving instance refused seven times in a row was sent
    /// away for 56 s with 48 s of its stop left, and its records stayed.
    fn fit(&self) {
        if let Some(pacer) = self.pacer {
            pacer.fit(self.deadline);
        }
    }

    pub async fn sleep(&self, d: Duration) {
        tokio::time::sleep_until(self.deadline.min(Instant::now() + d)).await;
    }

    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }
}

/// A read for a direct write of shared rrsets was throttled: a fleet is at
/// it, and racing it would only waste requests. The instance announces
/// instead, without reading them.
#[derive(Debug)]
pub struct Crowded;

impl std::fmt::Display for Crowded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the provider is throttling a fleet")
    }
}

impl std::error::Error for Crowded {}

/// [`attempt`], except that with `crowd` a throttled answer ends it with
/// [`Crowded`] instead of waiting to try again.
pub async fn attempt_unless_crowded<T, F, Fut>(
    tries: &mut Attempts<'_>,
    doing: &str,
    crowd: bool,
    mut op: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Fail>>,
{
    loop {
        tries.fit();
        match op().await {
            Ok(v) => return Ok(v),
            Err(Fail::Busy { .. }) if crowd => return Err(Crowded.into()),
            Err(f) => tries.after(doing, f).await?,
        }
    }
}

/// Calls `op` until it succeeds or [`Attempts::after`] gives up.
pub async fn attempt<T, F, Fut>(tries: &mut Attempts<'_>, doing: &str, op: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Fail>>,
{
    attempt_unless_crowded(tries, doing, false, op).await
}
