//! One retry policy for every call that crosses the network.
//!
//! Capped exponential backoff with full jitter, as described in AWS's
//! "Exponential Backoff And Jitter": a fleet that fails together must not retry
//! together. What counts as transient is decided by the caller. A provider's
//! rate limit is kept by one [`Pacer`] per provider, which every request of the
//! process waits on: throttling slows the whole process down, not one call.

mod attempts;

pub use attempts::{Attempts, Crowded, OutOfTime, attempt, attempt_unless_crowded};

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

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
    /// fleet starting at once is throttled by design (Route53 allows ten
    /// requests per second per account, after a burst of fifty): at most
    /// about two minutes of waiting.
    pub const API: Backoff = Backoff {
        base: Duration::from_millis(250),
        cap: Duration::from_secs(20),
        attempts: 12,
    };
    /// For a provider that throttles a fleet starting together: the first
    /// throttled request tells that the account's burst is used up, so the
    /// next try waits up to a second, and each further one twice as long, up to
    /// half a minute. Up to a minute, the unlucky few of a crowd of 200
    /// announced 45-50 s into the storm and were its tail; the simulated fleet
    /// (`src/reconcile/tests.rs`) published in 80-100 s with a minute, 56-75 s
    /// with half of it, and `scripts/bench` agreed (README "Performance").
    pub const BUSY: Backoff = Backoff {
        base: Duration::from_secs(1),
        cap: Duration::from_secs(30),
        attempts: u32::MAX,
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
        Duration::from_millis(jitter(millis))
    }
}

/// A provider's request budget in this process: every request waits until the
/// pacer allows it, and a throttled answer pushes that moment back for all of
/// them (capped exponential backoff with full jitter, or exactly the
/// `Retry-After` the provider asked for, plus jitter so that a fleet does not
/// come back at the same instant).
///
/// The pressure a throttled answer leaves decays slowly: each answer that is
/// not throttled takes a quarter of one refusal's away, and it halves for
/// every half minute the provider has not throttled since its last window
/// ended. A fleet sharing an account's rate thus keeps the backoff window it
/// learned instead of starting again from a second after every success
/// (which, measured with 200 agents on Route53, kept three requests in four
/// throttled), and a later stop does not start from the windows of a storm
/// long past.
#[derive(Debug)]
pub struct Pacer {
    policy: Backoff,
    state: Mutex<PacerState>,
}

#[derive(Debug, Default)]
struct PacerState {
    /// How crowded the provider lately was, in quarters of a refusal: each
    /// throttled answer adds four, each other answer takes one away, and it
    /// halves every `QUIET_HALVING` after `quiet_since`. Its whole refusals
    /// (`pressure / 4`) pick the backoff window.
    pressure: u32,
    /// When the last refusal's window ended.
    quiet_since: Option<Instant>,
    not_before: Option<Instant>,
    /// Until when the provider itself said not to come back (Retry-After).
    asked_until: Option<Instant>,
    /// When the provider last said it was busy, and what it said.
    last_busy: Option<(Instant, String)>,
    /// When the provider last refused for its rate (not for "still working
    /// on an earlier request"): a crowd is at it.
    last_throttled: Option<Instant>,
    /// How long the next first "too many requests" spreads its retry over
    /// (once; see [`Pacer::spread`]).
    spread: Duration,
    /// "Still working on an earlier request" answers in a row (see
    /// [`Pacer::prior_not_complete`]).
    prior: u32,
}

/// How long before its deadline an operation's last request goes, at most
/// (see [`Pacer::fit`]).
const FIT_MARGIN: Duration = Duration::from_secs(1);

/// How long a quiet provider takes to halve a pacer's pressure.
const QUIET_HALVING: Duration = Duration::from_secs(30);

impl PacerState {
    /// Whole refusals' worth of pressure: the backoff step.
    fn level(&self) -> u32 {
        self.pressure / 4
    }

    /// Halves the pressure for each `QUIET_HALVING` that passed since the
    /// last refusal's window ended.
    fn decay(&mut self, now: Instant) {
        let Some(since) = self.quiet_since.filter(|t| *t < now) else {
            return;
        };
        let halvings = (now - since).as_secs() / QUIET_HALVING.as_secs();
        if halvings > 0 {
            self.pressure = self
                .pressure
                .checked_shr(u32::try_from(halvings).unwrap_or(u32::MAX))
                .unwrap_or(0);
            self.quiet_since =
                Some(since + QUIET_HALVING * u32::try_from(halvings).unwrap_or(u32::MAX));
        }
    }
}

impl Pacer {
    pub fn new(policy: Backoff) -> Pacer {
        Pacer {
            policy,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PacerState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until a request may be sent.
    pub async fn ready(&self) {
        loop {
            let until = self.lock().not_before;
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => return,
            }
        }
    }

    /// The provider answered "too many requests": wait `retry_after` when it
    /// said so, else back off further.
    pub fn busy(&self, why: &str, retry_after: Option<Duration>) {
        let mut s = self.lock();
        let now = Instant::now();
        s.decay(now);
        let wait = match retry_after {
            // Exactly as asked, then spread over a quarter more (at least a second).
            Some(ra) => {
                ra + Backoff {
                    base: (ra / 4).max(Duration::from_secs(1)),
                    ..self.policy
                }
                .delay(0)
            }
            // A fleet that was told its size: the first refusal spreads the
            // retry over the whole of it, once.
            None if s.pressure == 0 && !s.spread.is_zero() => {
                let over =
                    u64::try_from(std::mem::take(&mut s.spread).as_millis()).unwrap_or(u64::MAX);
                Duration::from_millis(jitter(over))
            }
            None => self.policy.delay(s.level()),
        };
        s.pressure = s.pressure.saturating_add(4);
        if let Some(ra) = retry_after {
            s.asked_until = Some(now + ra);
        }
        let until = now + wait;
        tracing::debug!(
            pressure = s.pressure,
            "busy ({why}); next request in {wait:?}"
        );
        s.not_before = Some(s.not_before.map_or(until, |t| t.max(until)));
        s.quiet_since = s.not_before;
        s.last_busy = Some((now, why.to_string()));
        s.last_throttled = Some(now);
    }

    /// The provider is still working on an earlier request (Route53's
    /// `PriorRequestNotComplete`: "wait, in intervals of increasing
    /// duration, before you try the request again"). That is not the
    /// account's rate: the throttling windows stay as they were, and the
    /// next request waits one to two seconds, twice as long at each such
    /// answer in a row, up to twenty. Taken as throttling, it sent an
    /// instance of a crowd, whose throttling window had grown to half a
    /// minute, away for that long once Route53 had already let its request
    /// through: the last of 200 agents starting together joined 26 s after
    /// such an answer (measured with `scripts/bench`, 5 % of change batches
    /// answered so).
    pub fn prior_not_complete(&self, why: &str) {
        let mut s = self.lock();
        let now = Instant::now();
        let step = Duration::from_secs(1) * (1u32 << s.prior.min(4));
        let wait = uniform(step, step * 2).min(Duration::from_secs(20));
        s.prior = s.prior.saturating_add(1);
        let until = now + wait;
        tracing::debug!("busy ({why}); next request in {wait:?}");
        s.not_before = Some(s.not_before.map_or(until, |t| t.max(until)));
        s.last_busy = Some((now, why.to_string()));
    }

    /// When the next request would come after `deadline`, or so close to it
    /// that its answer could not come back in time (within `FIT_MARGIN`, or
    /// a tenth of the time left), draws it anew within the time left before
    /// that, so that an operation with a deadline (a leave within
    /// `stop_timeout`) still tries, and a fleet stopping together does not
    /// all try at its last moment. Measured without the margin: an instance
    /// of 200 stopping together was sent away 12.2 s with 12.2 s of its stop
    /// left, and its records stayed.
    pub fn fit(&self, deadline: Instant) {
        let mut s = self.lock();
        let now = Instant::now();
        let margin = FIT_MARGIN.min(deadline.saturating_duration_since(now) / 10);
        let latest = deadline - margin;
        let asked = s.asked_until.filter(|t| *t > now);
        if let Some(t) = s.not_before
            && t > latest
            && latest > now
            && asked.is_none_or(|a| a < latest)
        {
            // Never before what the provider asked for.
            let from = asked.unwrap_or(now);
            let left = u64::try_from((latest - from).as_millis()).unwrap_or(0);
            s.not_before = Some(from + Duration::from_millis(jitter(left)));
        }
    }

    /// Makes the next first "too many requests" (with no Retry-After) wait a
    /// random while up to `over` instead of the policy's first delay, once.
    /// A fleet stopped together knows from `[agent] join_spread` how long its
    /// requests take at the provider's rate: the instances refused because
    /// the burst was used up come back spread over that time, at about the
    /// rate, instead of all again within a second.
    pub fn spread(&self, over: Duration) {
        self.lock().spread = over;
    }

    /// The provider answered (anything but "too many requests").
    pub fn ok(&self) {
        let mut s = self.lock();
        s.decay(Instant::now());
        s.pressure = s.pressure.saturating_sub(1);
        s.prior = 0;
    }

    /// Whether the provider throttled within the last `within`: refused for
    /// its rate, which tells that a crowd is at it. A "still working on an
    /// earlier request" does not: taken for one, it made a lone instance of
    /// ten look for its carrier up to 20 s later, as if in a crowd (a fleet
    /// of 10 published in 18.5 s instead of 1.3).
    pub fn busy_within(&self, within: Duration) -> bool {
        self.lock()
            .last_throttled
            .is_some_and(|t| t.elapsed() < within)
    }

    /// What the provider said the last time it was busy.
    pub fn last_busy(&self) -> Option<String> {
        self.lock().last_busy.as_ref().map(|(_, m)| m.clone())
    }
}

/// A uniform draw in `[lo, hi]` (seeded in tests, as every jitter here).
pub fn uniform(lo: Duration, hi: Duration) -> Duration {
    let span = u64::try_from(hi.saturating_sub(lo).as_millis()).unwrap_or(u64::MAX);
    lo + Duration::from_millis(jitter(span))
}

/// A uniform draw in `[0, max]`: the thread's generator, or in tests the
/// seeded one, so that a randomized schedule can be replayed from its seed.
pub fn jitter(max: u64) -> u64 {
    #[cfg(test)]
    if let Some(v) = SEEDED.with(|r| {
        r.borrow_mut()
            .as_mut()
            .map(|g| rand::RngExt::random_range(g, 0..=max))
    }) {
        return v;
    }
    rand::random_range(0..=max)
}

#[cfg(test)]
thread_local! {
    /// Set by a test to make every jitter on this thread come from a seed.
    pub static SEEDED: std::cell::RefCell<Option<rand::rngs::StdRng>> =
        const { std::cell::RefCell::new(None) };
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
mod tests;
