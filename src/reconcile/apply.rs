//! The loop around [`decide`]: read, decide, write, and on contention
//! announce and wait to be carried.

use super::*;

/// What the loop is doing with shared rrsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Read, decide, write (carrying peers' announced values when `How::Materialise`).
    Write(How),
    /// Write this instance's want/drop lines.
    Announce,
    /// Wait, then see whether a peer carried them.
    Await(u32),
}

/// Brings the provider's zone to this instance's intent (see the module
/// comment). Idempotent. Gives up at `intent.deadline`.
pub async fn apply<P: Provider>(p: &P, intent: &Intent) -> anyhow::Result<Outcome> {
    let ctx = ctx_of(p, intent)?;
    let mut tries = Attempts::new(p.name(), intent.deadline)
        .with(p.transient_backoff())
        .paced(p.pacer());
    // Without a memory (a new instance), what it would remember is nothing at
    // all: a first join writes without reading, and only a refused write
    // (something was there after all) costs a read.
    let memory: Option<P::Snapshot> = Some(
        intent
            .memory
            .as_ref()
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .unwrap_or_default(),
    );
    let mut trust_memory = true;
    let mut conflicts = 0u32;
    // The last write refused as a conflict, and the registry it would have
    // left: its answer may have been lost after it was applied (a timeout,
    // then a retry the provider refused because the change was already made).
    // Finding exactly that registry on the next read means the write landed.
    let mut refused: Option<(Outcome, Values)> = None;
    // Values this instance announced, to report what peers did for it.
    let mut announced: Option<Plan> = None;
    // What the writes that landed so far added and removed.
    let mut landed = Outcome::default();
    // Registries listed while waiting, for the write that follows.
    let mut prelisted: Option<(BTreeMap<String, Values>, P::Snapshot)> = None;
    // Who was waiting at this instance's last look (where one listing shows
    // it), and whether it carries at this one.
    let mut last_pending: Option<BTreeSet<String>> = None;
    let mut carry = true;
    // What this instance's announcement left of its own rrsets.
    let mut announced_after: Option<P::Snapshot> = None;
    // What a look showed of this instance's own rrsets, for the carrying
    // write that follows it.
    let mut looked: Option<P::Snapshot> = None;
    // How many instances the last listing showed waiting to be carried.
    let mut waiters: Option<usize> = None;
    let contention = Duration::from_secs(60);
    let mut step = if !p.keeps_apart()
        && p.rewrites_rrsets()
        && intent.shares_any(&ctx.registry)
        && p.pacer().busy_within(contention)
    {
        Step::Announce
    } else {
        Step::Write(How::Direct)
    };
    let writes_shared = !p.keeps_apart() && p.rewrites_rrsets() && intent.shares_any(&ctx.registry);
    // At the deadline of a leave whose removal is announced, with a lease to
    // fall back on: the rest is the peers' and reapers' work.
    let handoff = |announced: &Option<Plan>, conflicts: u32| -> Option<Outcome> {
        let plan = announced
            .as_ref()
            .filter(|_| intent.leaving && intent.lease.is_some())?;
        let mine = Registry::parse(&plan.registry);
        Some(Outcome {
            handed_off: true,
            conflicts,
            owned: Values::new(),
            announced: mine.dropped.iter().cloned().collect(),
            ..plan.outcome.clone()
        })
    };
    loop {
        p.pacer().fit(tries.deadline);
        if tries.expired() {
            if let Some(out) = handoff(&announced, conflicts) {
                return Ok(out);
            }
            return Err(OutOfTime(format!(
                "{}: gave up after {}{}{}",
                p.name(),
                humantime::format_duration(intent.deadline),
                if conflicts > 0 {
                    format!(" and {conflicts} conflicting writes")
                } else {
                    String::new()
                },
                p.pacer()
                    .last_busy()
                    .map(|b| format!(" (the provider kept saying it is busy: {b})"))
                    .unwrap_or_default()
            ))
            .into());
        }
        if let Step::Await(round) = step {
            // Give peers a moment to carry the announced values, then look.
            let wait = if p.lists_cheaply() {
                look_after(
                    waiters,
                    p.pacer().busy_within(contention),
                    tries.deadline.saturating_duration_since(Instant::now()),
                    intent.leaving,
                )
            } else {
                Backoff {
                    base: Duration::from_secs(2),
                    cap: Duration::from_secs(30),
                    attempts: u32::MAX,
                }
                .delay(round)
                .max(Duration::from_millis(500))
            };
            tries.sleep(wait).await;
            // Where listing every registry costs one request, look at all of
            // them: an instance that finds its lines still waiting carries
            // them and everyone else's at once. The looks are spread so
            // thinly (see `look_after`) that one write usually carries every
            // instance that announced since the last, and the others find
            // their lines carried when they look.
            let reg = if p.lists_cheaply() {
                let listed = match attempt(&mut tries, "listing ownership registries", || {
                    p.registries()
                })
                .await
                {
                    Ok(l) => l,
                    Err(e) => return handoff(&announced, conflicts).ok_or(e),
                };
                let parsed: BTreeMap<String, Registry> = listed
                    .0
                    .iter()
                    .map(|(l, v)| (l.clone(), Registry::parse(v)))
                    .collect();
                let pending: BTreeSet<String> = parsed
                    .iter()
                    .filter(|(_, r)| waiting(r, ctx.now))
                    .map(|(l, _)| l.clone())
                    .collect();
                waiters = Some(pending.len());
                // Carry when first in line, or when nobody carried anyone
                // since the last look: else a carrier is at work, and a
                // second one would only race it. A leave carries at every
                // look after its first: it has a stop to keep, and a
                // carrier at work would have carried it by then (measured:
                // with the first in line starved of requests, nobody
                // carried a scale-in's announcements for half its stop).
                let first = pending.first() == Some(&ctx.label);
                let progress = last_pending
                    .as_ref()
                    .is_some_and(|before| before.iter().any(|l| !pending.contains(l)));
                carry = first || (last_pending.is_some() && (intent.leaving || !progress));
                last_pending = Some(pending);
                let mine = parsed.get(&ctx.label).cloned().unwrap_or_default();
                prelisted = Some(listed);
                mine
            } else {
                let keys = BTreeSet::from([ctx.registry.clone()]);
                let snap = match attempt(&mut tries, "reading this instance's registry", || {
                    p.read(&keys)
                })
                .await
                {
                    Ok(s) => s,
                    Err(e) => return handoff(&announced, conflicts).ok_or(e),
                };
                Registry::parse(&p.values(&snap, &ctx.registry))
            };
            tracing::debug!(
                provider = p.name(),
                round,
                ?waiters,
                "waiting: this instance's lines {}",
                if reg.wanted.is_empty() && reg.dropped.is_empty() {
                    "carried"
                } else {
                    "still pending"
                }
            );
            if reg.wanted.is_empty() && reg.dropped.is_empty() {
                // Carried by a peer: report what the announcement asked for.
                let plan = announced.take().unwrap_or_else(|| Plan {
                    edit: Edit::default(),
                    outcome: Outcome::default(),
                    registry: Values::new(),
                    announces: false,
                });
                let mine = Registry::parse(&plan.registry);
                let mut out = plan.outcome;
                out.added.extend(
                    mine.wanted
                        .iter()
                        .filter(|v| reg.owned.contains(*v))
                        .cloned(),
                );
                out.removed.extend(mine.dropped.iter().cloned());
                out.foreign.clear();
                out.by_peers = mine.wanted.len() + mine.dropped.len();
                out.conflicts = conflicts;
                // The registry was rewritten by a peer: remembered as the
                // listing showed it, with this instance's own rrsets as its
                // announcement left them; else read, not presumed, next time.
                out.memory = match (prelisted.take(), announced_after.take()) {
                    (Some((_, mut seen)), Some(after)) => {
                        p.merge(&mut seen, after);
                        remember(p, intent, &ctx, &seen, &reg.owned)
                    }
                    _ => None,
                };
                out.owned = reg.owned;
                return Ok(merged(out, &landed));
            }
            if !carry {
                prelisted = None;
                step = Step::Await(round + 1);
                continue;
            }
            // Still waiting: carry them, and everyone's. Its own rrsets
            // are as its announcement left them, its registry as just
            // listed: presumed, so that only the shared rrsets are read
            // (a request each on Route53 once the zone is large).
            looked = match (&prelisted, &announced_after) {
                (Some((_, listed)), Some(after)) => {
                    let mut m = listed.clone();
                    p.merge(&mut m, after.clone());
                    Some(m)
                }
                _ => None,
            };
            step = Step::Write(How::Materialise);
            continue;
        }
        let how = match step {
            Step::Write(h) => h,
            Step::Announce => How::Announce,
            Step::Await(_) => unreachable!("handled above"),
        };
        if how == How::Direct && writes_shared && p.pacer().busy_within(contention) {
            // The provider is throttling: a fleet is at it. Announce instead of racing.
            step = Step::Announce;
            continue;
        }
        let looked_now = looked.take();
        let (mut plan, snap, presumed) = match observe(
            p,
            intent,
            &ctx,
            how,
            looked_now
                .as_ref()
                .or(memory.as_ref().filter(|_| trust_memory)),
            prelisted.take(),
            &mut tries,
        )
        .await
        {
            Err(e) if e.is::<Crowded>() => {
                tracing::debug!(
                    provider = p.name(),
                    "throttled while reading: announcing instead"
                );
                step = Step::Announce;
                continue;
            }
            r => r?,
        };
        if how == How::Direct
            && writes_shared
            && !plan.edit.is_empty()
            && p.pacer().busy_within(contention)
        {
            // The provider started throttling while this was read: a fleet is
            // at it, and the write would only race. Announce instead.
            step = Step::Announce;
            continue;
        }
        plan.outcome.conflicts = conflicts;
        if plan.edit.is_empty() && !presumed.is_empty() {
            // Nothing to do, says memory; but a memory is checked only by a
            // write. Check it in one request where the provider can, else read.
            trust_memory = false;
            match p.check(&snap, &presumed).await {
                Ok(Some(true)) => {
                    plan.outcome.memory = remember(p, intent, &ctx, &snap, &plan.outcome.owned);
                    return Ok(merged(plan.outcome, &landed));
                }
                Ok(Some(false)) => {
                    tracing::debug!(
                        provider = p.name(),
                        "this instance's records changed behind its back; reading them"
                    );
                }
                Ok(None) => {}
                Err(f) => tries.after("checking this instance's records", f).await?,
            }
            continue;
        }
        if plan.edit.is_empty() {
            if let Some((landed_refused, _)) =
                refused.take().filter(|(_, left)| *left == plan.registry)
            {
                // Report what that write did, not "already published".
                return Ok(merged(
                    Outcome {
                        memory: remember(p, intent, &ctx, &snap, &plan.outcome.owned),
                        owned: plan.outcome.owned,
                        conflicts,
                        ..landed_refused
                    },
                    &landed,
                ));
            }
            if plan.announces {
                // Announced already (an earlier try whose answer was lost): wait for peers.
                announced.get_or_insert(plan);
                step = Step::Await(0);
                continue;
            }
            plan.outcome.memory = remember(p, intent, &ctx, &snap, &plan.outcome.owned);
            return Ok(merged(plan.outcome, &landed));
        }
        // What was presumed and is not changed is guarded: the decision
        // rested on it, so the write applies only if it holds.
        let changed = plan.edit.keys();
        plan.edit.guard.extend(
            presumed
                .iter()
                .filter(|k| !changed.contains(*k) && !p.values(&snap, k).is_empty())
                .cloned(),
        );
        tracing::debug!(provider = p.name(), ?how, "writing:\n{}", plan.edit);
        let direct_shared = how == How::Direct
            && writes_shared
            && plan
                .edit
                .keys()
                .iter()
                .any(|k| intent.is_shared(k, &ctx.registry));
        let result = loop {
            let r = p.write(&snap, &plan.edit).await;
            match r {
                // Throttled: nothing was applied, and the write is
                // conditional on what it presumes, so the same write is sent
                // again once the pacer allows (reading again would only cost
                // more of the budget a fleet is short of). A direct write of
                // shared rrsets announces instead (below).
                Err(Fail::Busy { .. }) if !direct_shared && !tries.expired() => {
                    p.pacer().fit(tries.deadline);
                }
                r => break r,
            }
        };
        match result {
            Ok(written) => {
                if plan.announces {
                    tracing::debug!(
                        provider = p.name(),
                        "announced; waiting for a peer to carry it"
                    );
                    if !intent.leaving {
                        intent.checkpoint.keep(once_carried(
                            p,
                            intent,
                            &ctx,
                            &plan,
                            &written.after,
                        ));
                    }
                    landed = merged(plan.outcome.clone(), &landed);
                    announced = Some(plan);
                    announced_after = Some(written.after);
                    trust_memory = false;
                    step = Step::Await(0);
                    continue;
                }
                let mut out = plan.outcome;
                if let Some(a) = announced.take() {
                    // Some of what was announced was carried meanwhile; report it all.
                    let mine = Registry::parse(&a.registry);
                    for v in mine.wanted.iter().filter(|v| out.owned.contains(*v)) {
                        if !out.added.contains(v) {
                            out.added.push(v.clone());
                        }
                    }
                    // A dropped value still there after this write was handed
                    // over to an instance that wants it, not removed.
                    for v in &mine.dropped {
                        if !out.removed.contains(v)
                            && !p.values(&written.after, &v.key()).contains(v)
                        {
                            out.removed.push(v.clone());
                        }
                    }
                }
                out.memory = remember(p, intent, &ctx, &written.after, &out.owned);
                out.change = written.change.clone();
                if how == How::Materialise && intent.leaving && out.carried > 0 {
                    out.carried += keep_carrying(p, intent, &ctx, written.after, &mut tries).await;
                }
                return Ok(merged(out, &landed));
            }
            Err(Fail::Conflict(why)) => {
                conflicts += 1;
                trust_memory = false;
                refused = (!plan.announces).then(|| (plan.outcome.clone(), plan.registry.clone()));
                tracing::debug!(provider = p.name(), conflicts, %why, ?how, "conflict, reading again");
                step = match how {
                    // Shared rrsets raced: announce rather than race again.
                    How::Direct if direct_shared => Step::Announce,
                    How::Materialise => Step::Await(conflicts),
                    _ => {
                        tries
                            .sleep(
                                Backoff {
                                    base: Duration::from_millis(100),
                                    cap: Duration::from_secs(5),
                                    attempts: u32::MAX,
                                }
                                .delay(conflicts.min(10)),
                            )
                            .await;
                        step
                    }
                };
            }
            Err(Fail::Busy { .. }) if direct_shared => {
                // Throttled: a fleet is at it, and by the time this write
                // goes through what it read will have changed. Announce
                // (memory still holds: nothing was applied).
                step = Step::Announce;
            }
            Err(f) => tries.after("writing the change", f).await?,
        }
    }
}

/// `out` with what earlier writes of the same operation added and removed.
pub(super) fn merged(mut out: Outcome, earlier: &Outcome) -> Outcome {
    for v in &earlier.added {
        if !out.added.contains(v) && !out.removed.contains(v) {
            out.added.push(v.clone());
        }
    }
    for v in &earlier.removed {
        if !out.removed.contains(v) && !out.added.contains(v) {
            out.removed.push(v.clone());
        }
    }
    out
}
