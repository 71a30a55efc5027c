//! One retry policy for every call that crosses the network.
//!
//! Capped exponential backoff with full jitter (SPEC §3 rule 7), as described in
//! AWS's "Exponential Backoff And Jitter": a fleet that fails together must not
//! retry together. What counts as transient is decided by the caller.

use std::time::Duration;

/// How often and how patiently to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay's upper bound.
    pub base: Duration,
    /// No delay exceeds this.
    pub cap: Duration,
    /// Attempts in all, the first included.
    pub attempts: u32,
}

impl Backoff {
    /// For single API calls: throttling, 5xx, timeouts. Patient, because a
    /// fleet starting at once is throttled by design (Route53 allows five
    /// requests per second per account): at most about two minutes of waiting.
    pub const API: Backoff = Backoff {
        base: Duration::from_millis(250),
        cap: Duration::from_secs(20),
        attempts: 12,
    };
    /// For throttling: the service is up and answering, only busy, and a fleet
    /// that starts at once is throttled by design. Retried far longer than
    /// other failures (about six minutes of waiting); callers bound the whole
    /// by their own deadline (a join's, or `stop_timeout`), so a leave at
    /// shutdown keeps trying as long as it is allowed to.
    pub const THROTTLED: Backoff = Backoff {
        base: Duration::from_millis(500),
        cap: Duration::from_secs(20),
        attempts: 40,
    };
    /// For instance metadata, which is local and either answers fast or is absent.
    pub const METADATA: Backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(1),
        attempts: 4,
    };

    /// The delay before attempt `n + 1` (n counts from 0): uniform in
    /// `[0, min(cap, base * 2^n)]`.
    pub fn delay(&self, n: u32) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << n.min(20)).min(self.cap);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::random_range(0..=millis))
    }
}

/// Runs `op` until it succeeds, fails permanently (`transient` says no), or the
/// attempts run out; the last error is returned.
pub async fn retry<T, E, F, Fut>(
    policy: Backoff,
    op: F,
    transient: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    retry_by(op, |e| transient(e).then_some(policy)).await
}

/// The same with the policy chosen per error (`None`: permanent), so that
/// throttling can be waited out longer than a failing server. The attempt
/// count runs across policies.
pub async fn retry_by<T, E, F, Fut>(
    mut op: F,
    policy: impl Fn(&E) -> Option<Backoff>,
) -> Result<T, E>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut n = 0;
    loop {
        match op(n).await {
            Ok(v) => return Ok(v),
            Err(e) => match policy(&e) {
                Some(p) if n + 1 < p.attempts => {
                    tokio::time::sleep(p.delay(n)).await;
                    n += 1;
                }
                _ => return Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(800),
            attempts: 10,
        };
        for n in 0..30 {
            let bound = Duration::from_millis((100u64 << n.min(10)).min(800));
            for _ in 0..50 {
                assert!(b.delay(n) <= bound);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_then_gives_up() {
        let b = Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(10),
            attempts: 3,
        };
        let mut calls = 0;
        let r: Result<(), &str> = retry(
            b,
            |_| {
                calls += 1;
                async { Err("busy") }
            },
            |_| true,
        )
        .await;
        assert_eq!(r, Err("busy"));
        assert_eq!(calls, 3);
        let mut calls = 0;
        let r: Result<(), &str> = retry(
            b,
            |_| {
                calls += 1;
                async { Err("denied") }
            },
            |_| false,
        )
        .await;
        assert_eq!(r, Err("denied"));
        assert_eq!(calls, 1);
        let r: Result<u32, &str> = retry(
            b,
            |n| async move { if n < 2 { Err("busy") } else { Ok(n) } },
            |_| true,
        )
        .await;
        assert_eq!(r, Ok(2));
    }

    #[tokio::test(start_paused = true)]
    async fn each_error_gets_its_own_policy() {
        let short = Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(10),
            attempts: 3,
        };
        let long = Backoff {
            attempts: 30,
            ..short
        };
        // Busy 20 times: more than `short` allows, within `long`.
        let mut calls = 0;
        let r: Result<u32, &str> = retry_by(
            |n| {
                calls += 1;
                async move { if n < 20 { Err("throttled") } else { Ok(n) } }
            },
            |e| Some(if *e == "throttled" { long } else { short }),
        )
        .await;
        assert_eq!(r, Ok(20));
        assert_eq!(calls, 21);
        // A failing server gives up after `short`'s attempts.
        let mut calls = 0;
        let r: Result<u32, &str> = retry_by(
            |_| {
                calls += 1;
                async { Err("down") }
            },
            |e| Some(if *e == "throttled" { long } else { short }),
        )
        .await;
        assert_eq!(r, Err("down"));
        assert_eq!(calls, 3);
    }
}
