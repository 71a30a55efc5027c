//! Announced values: when a waiting instance looks, what it remembers
//! once carried, and a leaving carrier that keeps carrying.

use super::*;

/// Where one listing shows every waiting instance (Route53), how far apart
/// each instance's looks are, per instance in the zone: a fleet of N waiting
/// together looks about 4 times a second in all, under half of Route53's 10
/// requests per second, so that its looks never crowd out the writes that
/// carry it.
pub(super) const LOOK_SPACING: Duration = Duration::from_millis(250);
/// Where a throttled provider told an instance that a fleet is at it, but it
/// has not seen how many they are yet: its first look comes this long after
/// its announcement, at most (and at least a twentieth of it).
pub(super) const FIRST_LOOK_CROWDED: Duration = Duration::from_secs(20);
/// The longest a leaving instance of a crowd waits before its first look: a
/// one-shot `leave` has minutes, and must not spend them waiting.
pub(super) const LEAVING_FIRST_LOOK: Duration = Duration::from_secs(35);
/// How often a leaving instance that carried others looks again for more to
/// carry (see [`keep_carrying`]).
pub(super) const CARRY_ROUND: Duration = Duration::from_secs(2);

/// The memory of a join whose announcement `plan` left `after`, as it will
/// be once a peer carries it: its registry's wanted lines owned (as the
/// carrier flips them), its own rrsets as the announcement wrote them.
/// `None` where the provider cannot tell what an edit leaves.
pub(super) fn once_carried<P: Provider>(
    p: &P,
    intent: &Intent,
    ctx: &Ctx,
    plan: &Plan,
    after: &P::Snapshot,
) -> Option<serde_json::Value> {
    let announced = Registry::parse(&plan.registry);
    let carried = Registry {
        owned: announced.owned.union(&announced.wanted).cloned().collect(),
        wanted: Values::new(),
        dropped: Values::new(),
        lease: announced.lease,
    };
    let values = if carried.owned.is_empty() {
        Values::new()
    } else {
        carried.to_values(&ctx.registry.name).ok()?
    };
    let ttl = p.ttl(after, &ctx.registry)?;
    let mut edit = Edit::default();
    set_exactly(&mut edit, &ctx.registry, &plan.registry, &values, ttl);
    let snap = p.applied(after, &edit)?;
    remember(p, intent, ctx, &snap, &carried.owned)
}

/// A leaving instance whose write carried other instances' announced values
/// stays the fleet's carrier while its stop allows: when a fleet scales in
/// together, announcements come in over the time the provider's rate takes,
/// and the waiting instances look seldom (see `look_after`). A carrier that
/// stopped after one write left the rest to whoever was first in line at
/// its next look, which came too late (measured with 200 agents on Route53
/// simple routing: 104 announced removals not carried when their stops
/// ended). Every `CARRY_ROUND` it lists the registries and carries what is
/// pending, until two listings in a row show nothing pending or its stop is
/// near. Each write is conditional like any other: one racing another
/// carrier is refused and the next round sees what it did. Returns the
/// values carried.
pub(super) async fn keep_carrying<P: Provider>(
    p: &P,
    intent: &Intent,
    ctx: &Ctx,
    mut last: P::Snapshot,
    tries: &mut Attempts<'_>,
) -> usize {
    // Only its shared rrsets are read again (its own are gone, as its last
    // write left them).
    let intent = Intent {
        desired: Vec::new(),
        known: intent
            .known
            .iter()
            .filter(|v| intent.is_shared(&v.key(), &ctx.registry))
            .cloned()
            .collect(),
        memory: None,
        ..intent.clone()
    };
    let intent = &intent;
    let mut carried = 0;
    let mut quiet = 0;
    while tries.deadline.saturating_duration_since(Instant::now()) > CARRY_ROUND * 2 && quiet < 2 {
        tries.sleep(CARRY_ROUND).await;
        let Ok(listed) = attempt(tries, "listing ownership registries", || p.registries()).await
        else {
            break;
        };
        let pending = listed
            .0
            .iter()
            .filter(|(label, _)| **label != ctx.label)
            .map(|(_, values)| Registry::parse(values))
            .any(|r| waiting(&r, ctx.now));
        if !pending {
            quiet += 1;
            continue;
        }
        quiet = 0;
        let Ok((plan, snap, _)) = observe(
            p,
            intent,
            ctx,
            How::Materialise,
            Some(&last),
            Some(listed),
            tries,
        )
        .await
        else {
            break;
        };
        if plan.edit.is_empty() {
            continue;
        }
        tracing::debug!(provider = p.name(), "carrying for others:\n{}", plan.edit);
        match p.write(&snap, &plan.edit).await {
            Ok(written) => {
                carried += plan.outcome.carried;
                last = written.after;
            }
            // Another carrier wrote first, or the provider is busy (its
            // pacer holds the next request back): the next round sees.
            Err(Fail::Conflict(_) | Fail::Busy { .. }) => {}
            Err(_) => break,
        }
    }
    carried
}

/// Whether a registry has announced values waiting to be carried, and is
/// still alive to want them.
pub(super) fn waiting(r: &Registry, now: u64) -> bool {
    !r.expired(now) && (!r.wanted.is_empty() || !r.dropped.is_empty())
}

/// How long an instance that announced waits before it looks whether it was
/// carried, where one listing shows every waiting instance: about
/// `LOOK_SPACING` per instance its last look saw `waiters` (only they look,
/// so their looks stay a small share of the provider's rate however many
/// they are), drawn at random so that the looks spread out; before it has
/// looked, up to `FIRST_LOOK_CROWDED` when the provider is throttling
/// (`crowded`: many are at it), else a couple of seconds. Spaced by the
/// whole fleet instead, the last few of a join storm, each waiting for
/// another to carry it, looked half a minute apart, and the last three of
/// 200 were carried 52 s after the rest. Never more than a quarter of the
/// time `left`, so that a leave near its deadline still looks, and carries,
/// in time.
pub(super) fn look_after(
    waiters: Option<usize>,
    crowded: bool,
    left: Duration,
    leaving: bool,
) -> Duration {
    let span = match waiters {
        Some(n) => LOOK_SPACING
            .saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))
            .max(Duration::from_secs(2)),
        // A crowd leaving together (a scale-in) announces all at once: its
        // first looks spread over half of what is left of the stop (up to
        // `LEAVING_FIRST_LOOK`), so that they do not take the rate from the
        // announcements and carrying writes (measured with 200 on Route53:
        // looked within 20 s, a third of the looks found nothing carried yet
        // and came again).
        None if crowded && leaving => (left / 2).clamp(FIRST_LOOK_CROWDED, LEAVING_FIRST_LOOK),
        None if crowded => FIRST_LOOK_CROWDED,
        None => Duration::from_secs(2),
    };
    let (lo, hi) = match waiters {
        Some(_) => (span / 2, span * 3 / 2),
        None => (span / 20, span),
    };
    let cap = if leaving && waiters.is_none() {
        left / 2
    } else {
        left / 4
    };
    crate::retry::uniform(lo, hi)
        .min(cap)
        .max(Duration::from_millis(500))
}
