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
    mut op: F,
    transient: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut n = 0;
    loop {
        match op(n).await {
            Ok(v) => return Ok(v),
            Err(e) if n + 1 < policy.attempts && transient(&e) => {
                tokio::time::sleep(policy.delay(n)).await;
                n += 1;
            }
            Err(e) => return Err(e),
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
}
