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
