//! The loop around [`decide`]: read, decide, write, and on contention
//! announce and wait to be carried.

use super::*;
use crate::provider::Written;

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

/// How recently the provider must have said it is busy for a fleet to be
/// taken to be at it: shared rrsets are then announced, not raced for.
const CONTENTION: Duration = Duration::from_secs(60);

/// Brings the provider's zone to this instance's intent (see the module
/// comment). Idempotent. Gives up at `intent.deadline`.
pub async fn apply<P: Provider>(p: &P, intent: &Intent) -> anyhow::Result<Outcome> {
    let mut op = Operation::new(p, intent)?;
    loop {
        if let Flow::Done(out) = op.round().await? {
            return Ok(*out);
        }
    }
}

/// What one round of [`apply`]'s loop leaves to do.
enum Flow {
    /// Go round again, at the operation's `step`.
    Next,
    /// Finished, with this outcome (boxed: it is large, and most rounds go on).
    Done(Box<Outcome>),
}

impl Flow {
    /// Finished, with `out`.
    fn done(out: Outcome) -> Flow {
        Flow::Done(Box::new(out))
    }
}

/// One join or leave at one provider: what the rounds of [`apply`]'s loop
/// share, and one method per thing a round does.
struct Operation<'a, P: Provider> {
    p: &'a P,
    intent: &'a Intent,
    ctx: Ctx,
    tries: Attempts<'a>,
    /// What this instance's last change left, to presume instead of reading.
    memory: Option<P::Snapshot>,
    /// Whether `memory` may still be presumed: not once a write or a check
    /// found the zone other than it says.
    trust_memory: bool,
    conflicts: u32,
    /// The last write refused as a conflict, and the registry it would have
    /// left: its answer may have been lost after it was applied (a timeout,
    /// then a retry the provider refused because the change was already made).
    /// Finding exactly that registry on the next read means the write landed.
    refused: Option<(Outcome, Values)>,
    /// Values this instance announced, to report what peers did for it.
    announced: Option<Plan>,
    /// What the writes that landed so far added and removed.
    landed: Outcome,
    /// Registries listed while waiting, for the write that follows.
    prelisted: Option<(BTreeMap<String, Values>, P::Snapshot)>,
    /// Who was waiting at this instance's last look (where one listing shows
    /// it), and whether it carries at this one.
    last_pending: Option<BTreeSet<String>>,
    carry: bool,
    /// What this instance's announcement left of its own rrsets.
    announced_after: Option<P::Snapshot>,
    /// What a look showed of this instance's own rrsets, for the carrying
    /// write that follows it.
    looked: Option<P::Snapshot>,
    /// How many instances the last listing showed waiting to be carried.
    waiters: Option<usize>,
    /// Whether this instance writes shared rrsets that other instances
    /// rewrite whole too: the writes that announce under contention.
    writes_shared: bool,
    step: Step,
}

impl<'a, P: Provider> Operation<'a, P> {
    /// The loop's state before its first round: memory trusted, and a first
    /// step that announces where a fleet is at shared rrsets already.
    fn new(p: &'a P, intent: &'a Intent) -> anyhow::Result<Self> {
        let ctx = ctx_of(p, intent)?;
        let tries = Attempts::new(p.name(), intent.deadline)
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
        let writes_shared =
            !p.keeps_apart() && p.rewrites_rrsets() && intent.shares_any(&ctx.registry);
        let step = if writes_shared && p.pacer().busy_within(CONTENTION) {
            Step::Announce
        } else {
            Step::Write(How::Direct)
        };
        Ok(Operation {
            p,
            intent,
            ctx,
            tries,
            memory,
            trust_memory: true,
            conflicts: 0,
            refused: None,
            announced: None,
            landed: Outcome::default(),
            prelisted: None,
            last_pending: None,
            carry: true,
            announced_after: None,
            looked: None,
            waiters: None,
            writes_shared,
            step,
        })
    }

    /// One round of the loop: the exit when time is out, else the step it is at.
    async fn round(&mut self) -> anyhow::Result<Flow> {
        self.p.pacer().fit(self.tries.deadline);
        if self.tries.expired() {
            return self.out_of_time().map(Flow::done);
        }
        match self.step {
            Step::Await(round) => self.await_round(round).await,
            Step::Write(how) => self.write(how).await,
            Step::Announce => self.write(How::Announce).await,
        }
    }

    /// Whether the provider said it is busy lately: a fleet is at it.
    fn busy(&self) -> bool {
        self.p.pacer().busy_within(CONTENTION)
    }

    /// At the deadline of a leave whose removal is announced, with a lease to
    /// fall back on: the rest is the peers' and reapers' work.
    fn handoff(&self) -> Option<Outcome> {
        let plan = self
            .announced
            .as_ref()
            .filter(|_| self.intent.leaving && self.intent.lease.is_some())?;
        let mine = Registry::parse(&plan.registry);
        Some(Outcome {
            handed_off: true,
            conflicts: self.conflicts,
            owned: Values::new(),
            announced: mine.dropped.iter().cloned().collect(),
            ..plan.outcome.clone()
        })
    }

    /// Out of time: handed off where a leave can, else an [`OutOfTime`] that
    /// says how long it tried, how many writes conflicted, and whether the
    /// provider kept saying it is busy.
    fn out_of_time(&self) -> anyhow::Result<Outcome> {
        if let Some(out) = self.handoff() {
            return Ok(out);
        }
        let p = self.p;
        let conflicts = self.conflicts;
        Err(OutOfTime(format!(
            "{}: gave up after {}{}{}",
            p.name(),
            humantime::format_duration(self.intent.deadline),
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
        .into())
    }

    /// The await round: waits, looks whether a peer carried this instance's
    /// lines, and is done if one did; else waits again or carries them (and
    /// everyone's) itself.
    async fn await_round(&mut self, round: u32) -> anyhow::Result<Flow> {
        // Give peers a moment to carry the announced values, then look.
        self.tries.sleep(self.wait(round)).await;
        // Where listing every registry costs one request, look at all of
        // them: an instance that finds its lines still waiting carries
        // them and everyone else's at once. The looks are spread so
        // thinly (see `look_after`) that one write usually carries every
        // instance that announced since the last, and the others find
        // their lines carried when they look.
        let look = if self.p.lists_cheaply() {
            self.look_at_all().await
        } else {
            self.look_at_own().await
        };
        let reg = match look {
            Ok(reg) => reg,
            Err(e) => return self.handoff().map(Flow::done).ok_or(e),
        };
        tracing::debug!(
            provider = self.p.name(),
            round,
            waiters = ?self.waiters,
            "waiting: this instance's lines {}",
            if reg.wanted.is_empty() && reg.dropped.is_empty() {
                "carried"
            } else {
                "still pending"
            }
        );
        if reg.wanted.is_empty() && reg.dropped.is_empty() {
            return Ok(Flow::done(self.carried_by_peer(reg)));
        }
        if !self.carry {
            self.prelisted = None;
            self.step = Step::Await(round + 1);
            return Ok(Flow::Next);
        }
        // Still waiting: carry them, and everyone's. Its own rrsets
        // are as its announcement left them, its registry as just
        // listed: presumed, so that only the shared rrsets are read
        // (a request each on Route53 once the zone is large).
        self.looked = match (&self.prelisted, &self.announced_after) {
            (Some((_, listed)), Some(after)) => {
                let mut m = listed.clone();
                self.p.merge(&mut m, after.clone());
                Some(m)
            }
            _ => None,
        };
        self.step = Step::Write(How::Materialise);
        Ok(Flow::Next)
    }

    /// How long to wait before the next look: spread by who is waiting
    /// where one listing shows it (see [`look_after`]), else a backoff by
    /// `round`.
    fn wait(&self, round: u32) -> Duration {
        if self.p.lists_cheaply() {
            look_after(
                self.waiters,
                self.busy(),
                self.tries
                    .deadline
                    .saturating_duration_since(Instant::now()),
                self.intent.leaving,
            )
        } else {
            Backoff {
                base: Duration::from_secs(2),
                cap: Duration::from_secs(30),
                attempts: u32::MAX,
            }
            .delay(round)
            .max(Duration::from_millis(500))
        }
    }

    /// Looks by listing every registry: counts who waits, decides whether
    /// this instance carries at this look, and keeps the listing for the
    /// write that follows. Returns this instance's registry as listed.
    async fn look_at_all(&mut self) -> anyhow::Result<Registry> {
        let p = self.p;
        let listed = attempt(&mut self.tries, "listing ownership registries", || {
            p.registries()
        })
        .await?;
        let parsed: BTreeMap<String, Registry> = listed
            .0
            .iter()
            .map(|(l, v)| (l.clone(), Registry::parse(v)))
            .collect();
        let pending: BTreeSet<String> = parsed
            .iter()
            .filter(|(_, r)| waiting(r, self.ctx.now))
            .map(|(l, _)| l.clone())
            .collect();
        self.waiters = Some(pending.len());
        // Carry when first in line, or when nobody carried anyone
        // since the last look: else a carrier is at work, and a
        // second one would only race it. A leave carries at every
        // look after its first: it has a stop to keep, and a
        // carrier at work would have carried it by then (measured:
        // with the first in line starved of requests, nobody
        // carried a scale-in's announcements for half its stop).
        let first = pending.first() == Some(&self.ctx.label);
        let progress = self
            .last_pending
            .as_ref()
            .is_some_and(|before| before.iter().any(|l| !pending.contains(l)));
        self.carry = first || (self.last_pending.is_some() && (self.intent.leaving || !progress));
        self.last_pending = Some(pending);
        let mine = parsed.get(&self.ctx.label).cloned().unwrap_or_default();
        self.prelisted = Some(listed);
        Ok(mine)
    }

    /// Looks by reading this instance's registry alone.
    async fn look_at_own(&mut self) -> anyhow::Result<Registry> {
        let p = self.p;
        let keys = BTreeSet::from([self.ctx.registry.clone()]);
        let snap = attempt(&mut self.tries, "reading this instance's registry", || {
            p.read(&keys)
        })
        .await?;
        Ok(Registry::parse(&p.values(&snap, &self.ctx.registry)))
    }

    /// The outcome once a peer carried this instance's lines (`reg`: its
    /// registry as the look found it).
    fn carried_by_peer(&mut self, reg: Registry) -> Outcome {
        // Carried by a peer: report what the announcement asked for.
        let plan = self.announced.take().unwrap_or_else(|| Plan {
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
        out.conflicts = self.conflicts;
        // The registry was rewritten by a peer: remembered as the
        // listing showed it, with this instance's own rrsets as its
        // announcement left them; else read, not presumed, next time.
        out.memory = match (self.prelisted.take(), self.announced_after.take()) {
            (Some((_, mut seen)), Some(after)) => {
                self.p.merge(&mut seen, after);
                remember(self.p, self.intent, &self.ctx, &seen, &reg.owned)
            }
            _ => None,
        };
        out.owned = reg.owned;
        merged(out, &self.landed)
    }

    /// The write step: reads (or presumes) and decides, then writes the
    /// edit (`how` says what it does with shared rrsets); announces instead
    /// wherever the provider shows a fleet is at them.
    async fn write(&mut self, how: How) -> anyhow::Result<Flow> {
        if how == How::Direct && self.writes_shared && self.busy() {
            // The provider is throttling: a fleet is at it. Announce instead of racing.
            self.step = Step::Announce;
            return Ok(Flow::Next);
        }
        let (mut plan, snap, presumed) = match self.observe(how).await {
            Err(e) if e.is::<Crowded>() => {
                tracing::debug!(
                    provider = self.p.name(),
                    "throttled while reading: announcing instead"
                );
                self.step = Step::Announce;
                return Ok(Flow::Next);
            }
            r => r?,
        };
        if how == How::Direct && self.writes_shared && !plan.edit.is_empty() && self.busy() {
            // The provider started throttling while this was read: a fleet is
            // at it, and the write would only race. Announce instead.
            self.step = Step::Announce;
            return Ok(Flow::Next);
        }
        plan.outcome.conflicts = self.conflicts;
        if plan.edit.is_empty() && !presumed.is_empty() {
            return self.check_memory(plan, &snap, &presumed).await;
        }
        if plan.edit.is_empty() {
            return Ok(self.nothing_to_write(plan, &snap));
        }
        guard_presumed(self.p, &mut plan.edit, &snap, &presumed);
        tracing::debug!(provider = self.p.name(), ?how, "writing:\n{}", plan.edit);
        let direct_shared = how == How::Direct
            && self.writes_shared
            && plan
                .edit
                .keys()
                .iter()
                .any(|k| self.intent.is_shared(k, &self.ctx.registry));
        match self.send(&snap, &plan.edit, direct_shared).await {
            Ok(written) if plan.announces => Ok(self.announcement_landed(plan, written)),
            Ok(written) => Ok(Flow::done(self.write_landed(how, plan, written).await)),
            Err(Fail::Conflict(why)) => {
                self.conflict(how, &plan, why, direct_shared).await;
                Ok(Flow::Next)
            }
            Err(Fail::Busy { .. }) if direct_shared => {
                // Throttled: a fleet is at it, and by the time this write
                // goes through what it read will have changed. Announce
                // (memory still holds: nothing was applied).
                self.step = Step::Announce;
                Ok(Flow::Next)
            }
            Err(f) => {
                self.tries.after("writing the change", f).await?;
                Ok(Flow::Next)
            }
        }
    }

    /// Reads (or presumes) what the decision needs and decides: presuming
    /// what the last look showed, else memory while it is trusted.
    async fn observe(&mut self, how: How) -> anyhow::Result<(Plan, P::Snapshot, BTreeSet<RrKey>)> {
        let looked_now = self.looked.take();
        observe(
            self.p,
            self.intent,
            &self.ctx,
            how,
            looked_now
                .as_ref()
                .or(self.memory.as_ref().filter(|_| self.trust_memory)),
            self.prelisted.take(),
            &mut self.tries,
        )
        .await
    }

    /// An empty edit that rests on memory: done if the provider confirms
    /// what was presumed, else the next round reads it.
    async fn check_memory(
        &mut self,
        mut plan: Plan,
        snap: &P::Snapshot,
        presumed: &BTreeSet<RrKey>,
    ) -> anyhow::Result<Flow> {
        // Nothing to do, says memory; but a memory is checked only by a
        // write. Check it in one request where the provider can, else read.
        self.trust_memory = false;
        match self.p.check(snap, presumed).await {
            Ok(Some(true)) => {
                plan.outcome.memory =
                    remember(self.p, self.intent, &self.ctx, snap, &plan.outcome.owned);
                return Ok(Flow::done(merged(plan.outcome, &self.landed)));
            }
            Ok(Some(false)) => {
                tracing::debug!(
                    provider = self.p.name(),
                    "this instance's records changed behind its back; reading them"
                );
            }
            Ok(None) => {}
            Err(f) => {
                self.tries
                    .after("checking this instance's records", f)
                    .await?
            }
        }
        Ok(Flow::Next)
    }

    /// An empty edit read for real: done (reporting a refused write that
    /// landed after all), or, where the announcement is there already, wait
    /// for peers.
    fn nothing_to_write(&mut self, mut plan: Plan, snap: &P::Snapshot) -> Flow {
        if let Some((landed_refused, _)) = self
            .refused
            .take()
            .filter(|(_, left)| *left == plan.registry)
        {
            // Report what that write did, not "already published".
            return Flow::done(merged(
                Outcome {
                    memory: remember(self.p, self.intent, &self.ctx, snap, &plan.outcome.owned),
                    owned: plan.outcome.owned,
                    conflicts: self.conflicts,
                    ..landed_refused
                },
                &self.landed,
            ));
        }
        if plan.announces {
            // Announced already (an earlier try whose answer was lost): wait for peers.
            self.announced.get_or_insert(plan);
            self.step = Step::Await(0);
            return Flow::Next;
        }
        plan.outcome.memory = remember(self.p, self.intent, &self.ctx, snap, &plan.outcome.owned);
        Flow::done(merged(plan.outcome, &self.landed))
    }

    /// Sends the write; sends it again while the provider is busy and the
    /// pacer allows, except a direct write of shared rrsets (it announces).
    async fn send(
        &self,
        snap: &P::Snapshot,
        edit: &Edit,
        direct_shared: bool,
    ) -> Result<Written<P::Snapshot>, Fail> {
        loop {
            let r = self.p.write(snap, edit).await;
            match r {
                // Throttled: nothing was applied, and the write is
                // conditional on what it presumes, so the same write is sent
                // again once the pacer allows (reading again would only cost
                // more of the budget a fleet is short of). A direct write of
                // shared rrsets announces instead (below).
                Err(Fail::Busy { .. }) if !direct_shared && !self.tries.expired() => {
                    self.p.pacer().fit(self.tries.deadline);
                }
                r => return r,
            }
        }
    }

    /// The announcement was written: kept to report and to presume, and
    /// the loop waits for a peer to carry it.
    fn announcement_landed(&mut self, plan: Plan, written: Written<P::Snapshot>) -> Flow {
        tracing::debug!(
            provider = self.p.name(),
            "announced; waiting for a peer to carry it"
        );
        if !self.intent.leaving {
            self.intent.checkpoint.keep(once_carried(
                self.p,
                self.intent,
                &self.ctx,
                &plan,
                &written.after,
            ));
        }
        self.landed = merged(plan.outcome.clone(), &self.landed);
        self.announced = Some(plan);
        self.announced_after = Some(written.after);
        self.trust_memory = false;
        self.step = Step::Await(0);
        Flow::Next
    }

    /// The write landed: its outcome, with what peers carried meanwhile of
    /// an earlier announcement; a leave that carried others keeps carrying.
    async fn write_landed(
        &mut self,
        how: How,
        plan: Plan,
        written: Written<P::Snapshot>,
    ) -> Outcome {
        let p = self.p;
        let mut out = plan.outcome;
        if let Some(a) = self.announced.take() {
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
                if !out.removed.contains(v) && !p.values(&written.after, &v.key()).contains(v) {
                    out.removed.push(v.clone());
                }
            }
        }
        out.memory = remember(p, self.intent, &self.ctx, &written.after, &out.owned);
        out.change = written.change.clone();
        if how == How::Materialise && self.intent.leaving && out.carried > 0 {
            out.carried +=
                keep_carrying(p, self.intent, &self.ctx, written.after, &mut self.tries).await;
        }
        merged(out, &self.landed)
    }

    /// The write was refused: the next round reads again, after announcing
    /// (shared rrsets raced), as a look (a carrying write raced), or after
    /// a backoff.
    async fn conflict(&mut self, how: How, plan: &Plan, why: String, direct_shared: bool) {
        self.conflicts += 1;
        let conflicts = self.conflicts;
        self.trust_memory = false;
        self.refused = (!plan.announces).then(|| (plan.outcome.clone(), plan.registry.clone()));
        tracing::debug!(provider = self.p.name(), conflicts, %why, ?how, "conflict, reading again");
        self.step = match how {
            // Shared rrsets raced: announce rather than race again.
            How::Direct if direct_shared => Step::Announce,
            How::Materialise => Step::Await(conflicts),
            _ => {
                self.tries.sleep(after_conflict(conflicts)).await;
                self.step
            }
        };
    }
}

/// What was presumed and is not changed is guarded: the decision
/// rested on it, so the write applies only if it holds.
fn guard_presumed<P: Provider>(
    p: &P,
    edit: &mut Edit,
    snap: &P::Snapshot,
    presumed: &BTreeSet<RrKey>,
) {
    let changed = edit.keys();
    edit.guard.extend(
        presumed
            .iter()
            .filter(|k| !changed.contains(*k) && !p.values(snap, k).is_empty())
            .cloned(),
    );
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
