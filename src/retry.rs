//! One retry policy for every call that crosses the network.
//!
//! Capped exponential backoff with full jitter, as described in AWS's
//! "Exponential Backoff And Jitter": a fleet that fails together must not retry
//! together. What counts as transient is decided by the caller. A provider's
//! rate limit is kept by one [`Pacer`] per provider, which every request of the
//! process waits on: throttling slows the whole process down, not one call.

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
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_earlier_request_not_complete_waits_seconds_doubling_and_leaves_throttling_alone() {
        let p = Pacer::new(Backoff::BUSY);
        // A crowd: three refusals, and where they left the window.
        for _ in 0..3 {
            p.busy("Throttling: Rate exceeded", None);
        }
        let pressure = p.lock().pressure;
        tokio::time::advance(Duration::from_secs(60)).await;
        let s = Duration::from_secs;
        // 1-2 s, 2-4, 4-8, 8-16, then 16-20 and no more.
        for (n, (lo, hi)) in [(1, 2), (2, 4), (4, 8), (8, 16), (16, 20), (16, 20)]
            .into_iter()
            .enumerate()
        {
            let now = Instant::now();
            p.prior_not_complete("PriorRequestNotComplete: still processing");
            let wait = p.lock().not_before.unwrap() - now;
            assert!(wait >= s(lo) && wait <= s(hi), "answer {n}: {wait:?}");
            assert_eq!(
                p.lock().pressure,
                pressure,
                "the throttling window is as it was"
            );
            // Busy, and said so in messages, but not a crowd at it.
            assert!(!p.busy_within(s(1)), "answer {n}: taken for throttling");
            assert!(
                p.last_busy()
                    .is_some_and(|b| b.starts_with("PriorRequestNotComplete")),
                "answer {n}"
            );
            tokio::time::advance(wait).await;
        }
        // Answered: the next such answer starts from a second again.
        p.ok();
        let now = Instant::now();
        p.prior_not_complete("PriorRequestNotComplete: still processing");
        let wait = p.lock().not_before.unwrap() - now;
        assert!(wait >= s(1) && wait <= s(2), "{wait:?}");
    }

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

    #[test]
    fn delays_fill_their_whole_window() {
        // Full jitter: the draws cover [0, min(cap, base * 2^n)], so the
        // largest of many comes close to that bound, which doubles per attempt.
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(800),
            attempts: 10,
        };
        for n in 0..6 {
            let bound = Duration::from_millis((100u64 << n).min(800));
            let longest = (0..500).map(|_| b.delay(n)).max().unwrap();
            assert!(
                longest > bound * 3 / 4 && longest <= bound,
                "attempt {n}: longest {longest:?} of a window of {bound:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_without_retry_after_holds_requests_back_in_growing_windows() {
        let policy = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(8),
            attempts: u32::MAX,
        };
        // One refusal: a wait up to the policy's first second.
        let mut once = Vec::new();
        // Four in a row: up to 8 s (1, 2, 4, then 8).
        let mut four = Vec::new();
        for (refusals, waits) in [(1, &mut once), (4, &mut four)] {
            for _ in 0..50 {
                let pacer = Pacer::new(policy);
                for _ in 0..refusals {
                    pacer.busy("Throttling", None);
                }
                let t = Instant::now();
                pacer.ready().await;
                waits.push(t.elapsed());
            }
        }
        let longest = |w: &[Duration]| w.iter().max().copied().unwrap();
        assert!(longest(&once) <= Duration::from_secs(1), "{once:?}");
        assert!(longest(&once) > Duration::from_millis(500), "{once:?}");
        assert!(longest(&four) <= Duration::from_secs(8), "{four:?}");
        assert!(longest(&four) > Duration::from_secs(5), "{four:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_waited_then_spread_over_a_quarter_more() {
        let ra = Duration::from_secs(40);
        let mut waits = Vec::new();
        for _ in 0..50 {
            let pacer = Pacer::new(Backoff {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(60),
                attempts: u32::MAX,
            });
            pacer.busy("429", Some(ra));
            let t = Instant::now();
            pacer.ready().await;
            waits.push(t.elapsed());
        }
        assert!(
            waits.iter().all(|w| *w >= ra && *w <= ra + ra / 4),
            "{waits:?}"
        );
        // Spread over the whole quarter, not the policy's first second.
        assert!(waits.iter().any(|w| *w > ra + ra / 8), "{waits:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_draws_the_next_try_within_it_never_before_retry_after() {
        let long = Backoff {
            base: Duration::from_secs(1000),
            cap: Duration::from_secs(1000),
            attempts: u32::MAX,
        };
        let within = Duration::from_secs(10);
        // Throttled far beyond the deadline: the next try is drawn anew within it.
        let mut waits = Vec::new();
        for _ in 0..20 {
            let pacer = Pacer::new(long);
            for _ in 0..5 {
                pacer.busy("Throttling", None);
            }
            let t = Instant::now();
            pacer.fit(t + within);
            pacer.ready().await;
            waits.push(t.elapsed());
        }
        assert!(waits.iter().all(|w| *w <= within), "{waits:?}");
        assert!(waits.iter().any(|w| *w > within / 2), "{waits:?}");
        // The provider asked for 5 s, within the deadline: drawn between the two.
        for _ in 0..20 {
            let pacer = Pacer::new(long);
            pacer.busy("429", Some(Duration::from_secs(5)));
            pacer.busy("Throttling", None);
            pacer.busy("Throttling", None);
            let t = Instant::now();
            pacer.fit(t + within);
            pacer.ready().await;
            let w = t.elapsed();
            assert!(w >= Duration::from_secs(5) && w <= within, "{w:?}");
        }
        // The provider asked for longer than the deadline: that is kept.
        let pacer = Pacer::new(long);
        pacer.busy("429", Some(Duration::from_secs(100)));
        let t = Instant::now();
        pacer.fit(t + within);
        pacer.ready().await;
        assert!(t.elapsed() >= Duration::from_secs(100), "{:?}", t.elapsed());
        // A deadline already past, or a next try already before the deadline,
        // changes nothing.
        let pacer = Pacer::new(long);
        for _ in 0..5 {
            pacer.busy("Throttling", None);
        }
        let t = Instant::now();
        let before = pacer.lock().not_before;
        pacer.fit(t - Duration::from_secs(1));
        assert_eq!(pacer.lock().not_before, before);
        for _ in 0..10 {
            let pacer = Pacer::new(Backoff {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(1),
                attempts: u32::MAX,
            });
            pacer.busy("Throttling", None);
            let t = Instant::now();
            pacer.fit(t + Duration::from_secs(100));
            pacer.ready().await;
            assert!(t.elapsed() <= Duration::from_secs(1), "{:?}", t.elapsed());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_next_try_leaves_room_before_the_deadline_and_a_reached_deadline_draws_none() {
        let long = Backoff {
            base: Duration::from_secs(1000),
            cap: Duration::from_secs(1000),
            attempts: u32::MAX,
        };
        // Due well before the deadline: it stands.
        let pacer = Pacer::new(long);
        pacer.busy("Throttling", None);
        let due = pacer.lock().not_before.unwrap();
        pacer.fit(due + FIT_MARGIN * 2);
        pacer.ready().await;
        assert_eq!(Instant::now(), due);
        // Due exactly at the deadline, or within the margin before it: the
        // answer would come too late, so it is drawn anew before the margin.
        for before in [Duration::ZERO, FIT_MARGIN / 2] {
            for _ in 0..20 {
                let pacer = Pacer::new(long);
                pacer.busy("Throttling", None);
                let t = Instant::now();
                let due = pacer.lock().not_before.unwrap();
                let deadline = due + before;
                pacer.fit(deadline);
                pacer.ready().await;
                let margin = FIT_MARGIN.min((deadline - t) / 10);
                assert!(
                    Instant::now() + margin <= deadline,
                    "sent {:?} before its deadline",
                    deadline - Instant::now()
                );
            }
        }
        // The deadline is now: no time is left to draw a try in, and the
        // throttled provider is not sent one at once.
        for _ in 0..20 {
            let pacer = Pacer::new(long);
            pacer.busy("Throttling", None);
            let t = Instant::now();
            let due = pacer.lock().not_before.unwrap();
            pacer.fit(t);
            pacer.ready().await;
            assert_eq!(Instant::now(), due);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn busy_within_is_the_last_refusal_s_age() {
        let pacer = Pacer::new(Backoff::BUSY);
        assert!(!pacer.busy_within(Duration::from_secs(60)), "never refused");
        pacer.busy("Throttling", None);
        assert!(pacer.busy_within(Duration::from_secs(60)));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(
            !pacer.busy_within(Duration::from_secs(60)),
            "a refusal a whole `within` ago is out of it"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!pacer.busy_within(Duration::from_secs(60)));
        assert!(pacer.busy_within(Duration::from_secs(120)));
    }

    #[test]
    fn a_uniform_draw_lies_between_its_bounds_and_reaches_both_ends() {
        let (lo, hi) = (Duration::from_secs(2), Duration::from_secs(3));
        let draws: Vec<Duration> = (0..500).map(|_| uniform(lo, hi)).collect();
        assert!(draws.iter().all(|d| *d >= lo && *d <= hi), "{draws:?}");
        let (least, most) = (draws.iter().min().unwrap(), draws.iter().max().unwrap());
        assert!(*least < lo + Duration::from_millis(100), "{least:?}");
        assert!(*most > hi - Duration::from_millis(100), "{most:?}");
        assert_eq!(uniform(lo, lo), lo);
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

    #[test]
    fn a_fleet_told_its_size_spreads_its_first_retries_over_it_once() {
        use rand::SeedableRng;
        SEEDED.with(|r| *r.borrow_mut() = Some(rand::rngs::StdRng::seed_from_u64(7)));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let over = Duration::from_secs(100);
            let waits: Vec<Duration> = (0..200)
                .map(|_| {
                    let pacer = Pacer::new(Backoff::BUSY);
                    pacer.spread(over);
                    let now = Instant::now();
                    pacer.busy("Throttling", None);
                    let first = pacer.lock().not_before.unwrap() - now;
                    // Once: a second refusal in a row, and a first one after
                    // an answer, are the policy's again.
                    pacer.busy("Throttling", None);
                    let second = pacer.lock().not_before.unwrap() - now;
                    assert!(second <= first.max(Duration::from_secs(2)), "{second:?}");
                    pacer.ok();
                    pacer.busy("Throttling", None);
                    assert!(
                        pacer.lock().not_before.unwrap() - now <= first.max(Duration::from_secs(2))
                    );
                    first
                })
                .collect();
            assert!(waits.iter().all(|w| *w <= over), "{waits:?}");
            // Spread over the whole, not within the policy's first second:
            // about a tenth in each tenth of it.
            for tenth in 0..10u32 {
                let (lo, hi) = (over * tenth / 10, over * (tenth + 1) / 10);
                let n = waits.iter().filter(|w| **w >= lo && **w < hi).count();
                assert!((8..=40).contains(&n), "{n} of 200 in [{lo:?}, {hi:?})");
            }
        });
        SEEDED.with(|r| *r.borrow_mut() = None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_provider_holds_every_request_back_and_retry_after_is_kept() {
        let pacer = Pacer::new(Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(8),
            attempts: u32::MAX,
        });
        let t0 = Instant::now();
        pacer.ready().await;
        assert_eq!(t0.elapsed(), Duration::ZERO, "not busy: no wait");
        // Retry-After 30 s: nothing before it, at most a quarter more after it.
        pacer.busy("429", Some(Duration::from_secs(30)));
        pacer.ready().await;
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_secs(30) && waited <= Duration::from_millis(37_500),
            "{waited:?}"
        );
        assert!(pacer.busy_within(Duration::from_secs(60)));
        // Without Retry-After: the windows grow, capped.
        for _ in 0..10 {
            pacer.busy("Throttling", None);
        }
        assert_eq!(pacer.lock().level(), 11);
        let t1 = Instant::now();
        pacer.ready().await;
        assert!(t1.elapsed() <= Duration::from_secs(8), "{:?}", t1.elapsed());
        // An answer takes a quarter of a refusal away: the pressure stays.
        pacer.ok();
        assert_eq!(pacer.lock().pressure, 43);
        assert_eq!(pacer.last_busy().as_deref(), Some("Throttling"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_pressure_of_refusals_decays_a_quarter_per_answer() {
        let policy = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(64),
            attempts: u32::MAX,
        };
        let pacer = Pacer::new(policy);
        for _ in 0..3 {
            pacer.busy("Throttling", None);
        }
        assert_eq!(pacer.lock().level(), 3);
        // Five answers: three refusals' worth less five quarters.
        for _ in 0..5 {
            pacer.ok();
        }
        assert_eq!(pacer.lock().pressure, 7);
        assert_eq!(pacer.lock().level(), 1);
        // An answer holds nothing back.
        pacer.lock().not_before = None;
        pacer.ok();
        assert_eq!(pacer.lock().not_before, None);
        // A refusal now starts from the window it left off at (up to 2 s), not 1 s.
        let waits: Vec<Duration> = (0..200)
            .map(|_| {
                let p = Pacer::new(policy);
                p.lock().pressure = 7;
                let now = Instant::now();
                p.busy("Throttling", None);
                p.lock().not_before.unwrap() - now
            })
            .collect();
        assert!(
            waits.iter().all(|w| *w <= Duration::from_secs(2)),
            "{waits:?}"
        );
        assert!(
            waits.iter().any(|w| *w > Duration::from_millis(1500)),
            "{waits:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_provider_halves_the_pressure_every_half_minute_after_the_window() {
        let pacer = Pacer::new(Backoff::BUSY);
        for _ in 0..6 {
            pacer.busy("Throttling", None);
        }
        let end = pacer.lock().not_before.unwrap();
        // Within the window and just after it: nothing decays.
        tokio::time::sleep_until(end + Duration::from_secs(29)).await;
        pacer.ok();
        assert_eq!(pacer.lock().pressure, 23);
        // A minute of quiet after the window: halved twice.
        tokio::time::sleep_until(end + Duration::from_secs(61)).await;
        pacer.ok();
        assert_eq!(pacer.lock().pressure, 23 / 4 - 1);
        // Long quiet: gone, and a refusal starts from the first window again.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        pacer.ok();
        assert_eq!(pacer.lock().pressure, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn each_quiet_half_minute_halves_the_pressure_once_however_the_answers_fall() {
        let pacer = Pacer::new(Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(1),
            attempts: u32::MAX,
        });
        for _ in 0..25 {
            pacer.busy("Throttling", None);
        }
        assert_eq!(pacer.lock().pressure, 100);
        let end = pacer.lock().not_before.unwrap();
        // Half a minute of quiet after the window (and a second): halved once.
        tokio::time::sleep_until(end + Duration::from_secs(31)).await;
        pacer.ok();
        assert_eq!(pacer.lock().pressure, 100 / 2 - 1);
        // A minute later: two more half minutes, counted from the last one
        // that halved it, not from the window's end again.
        tokio::time::sleep_until(end + Duration::from_secs(91)).await;
        pacer.ok();
        assert_eq!(pacer.lock().pressure, 49 / 4 - 1);
        // 29 s on: no further half minute has passed since those two.
        tokio::time::sleep_until(end + Duration::from_secs(119)).await;
        pacer.ok();
        assert_eq!(pacer.lock().pressure, 11 - 1);
        // One more second: it has.
        tokio::time::sleep_until(end + Duration::from_secs(120)).await;
        pacer.ok();
        assert_eq!(pacer.lock().pressure, 10 / 2 - 1);
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
