//! Reading what a decision needs: memory first, then the provider, until
//! [`decide`] has all it asked for.

use super::*;

/// Where claims are kept by name, the claim rrsets of the values this
/// instance wants or knows it published: read, or presumed, with the rest.
pub(super) fn claims_of(intent: &Intent, ctx: &Ctx) -> BTreeSet<RrKey> {
    if !ctx.claims_by_name {
        return BTreeSet::new();
    }
    intent
        .desired
        .iter()
        .map(|r| &r.value)
        .chain(&intent.known)
        .filter(|v| v.name.is_in(&ctx.zone))
        .map(|v| registry::claim_key(&ctx.zone, v))
        .collect()
}

/// The part of `snap` the provider would presume next time, as the state file keeps it.
pub(super) fn remember<P: Provider>(
    p: &P,
    intent: &Intent,
    ctx: &Ctx,
    snap: &P::Snapshot,
    owned: &Values,
) -> Option<serde_json::Value> {
    let mut keys: BTreeSet<RrKey> = intent
        .desired
        .iter()
        .map(|r| r.value.key())
        .chain(intent.known.iter().map(Value::key))
        .collect();
    keys.insert(ctx.registry.clone());
    keys.extend(claims_of(intent, ctx));
    let shared: BTreeSet<RrKey> = keys
        .iter()
        .filter(|k| intent.is_shared(k, &ctx.registry))
        .cloned()
        .collect();
    if ctx.keeps_apart || !p.rewrites_rrsets() {
        let (part, _) = p.presume(snap, &keys, &shared, owned)?;
        return serde_json::to_value(&part).ok();
    }
    // Shared rrsets are never presumed; this instance's own are kept
    // whatever the zone's size (a zone small enough to read in one request
    // when this was written may not be when the memory is used).
    let own: BTreeSet<RrKey> = keys.difference(&shared).cloned().collect();
    let (part, _) = p.presume(snap, &own, &BTreeSet::new(), owned)?;
    serde_json::to_value(&part).ok()
}

/// Reads `keys`, retrying as [`attempt_unless_crowded`] does; where each
/// rrset costs a request of its own, one by one, so that what was read
/// stays read when a later request is throttled. Read in one call, a
/// throttled second rrset threw the first away, and under a fleet's
/// throttling half of the reads of a simulated scale-in were such waste.
pub(super) async fn read_all<P: Provider>(
    p: &P,
    tries: &mut Attempts<'_>,
    crowd: bool,
    keys: &BTreeSet<RrKey>,
) -> anyhow::Result<P::Snapshot> {
    if keys.len() < 2 || !p.reads_rrset_by_rrset() {
        return attempt_unless_crowded(tries, "reading records", crowd, || p.read(keys)).await;
    }
    let mut snap = P::Snapshot::default();
    for key in keys {
        let one = BTreeSet::from([key.clone()]);
        let part = attempt_unless_crowded(tries, "reading records", crowd, || p.read(&one)).await?;
        p.merge(&mut snap, part);
    }
    Ok(snap)
}

/// Reads (or presumes) what a decision needs, then decides.
/// Reads (or presumes) what a decision needs, then decides.
pub(super) async fn observe<P: Provider>(
    p: &P,
    intent: &Intent,
    ctx: &Ctx,
    how: How,
    memory: Option<&P::Snapshot>,
    mut prelisted: Option<(BTreeMap<String, Values>, P::Snapshot)>,
    tries: &mut Attempts<'_>,
) -> anyhow::Result<(Plan, P::Snapshot, BTreeSet<RrKey>)> {
    let mut refresh: BTreeSet<RrKey> = BTreeSet::new();
    let mut keys: BTreeSet<RrKey> = intent
        .desired
        .iter()
        .map(|r| r.value.key())
        .chain(intent.known.iter().map(Value::key))
        .filter(|k| how != How::Announce || ctx.keeps_apart || !intent.is_shared(k, &ctx.registry))
        .collect();
    keys.insert(ctx.registry.clone());
    keys.extend(claims_of(intent, ctx));
    // Reading shared rrsets to write them directly: a throttled read means a
    // fleet is at it; announce instead (see `Crowded`).
    let crowd = how == How::Direct
        && !ctx.keeps_apart
        && p.rewrites_rrsets()
        && intent.shares_any(&ctx.registry);
    let mut o = Observation {
        p,
        intent,
        ctx,
        tries,
        crowd,
        memory,
        seen: Seen::default(),
        snap: None,
    };
    loop {
        let mut fresh: BTreeSet<RrKey> = keys
            .difference(&o.seen.rrsets.keys().cloned().collect())
            .cloned()
            .collect();
        if !refresh.is_empty() {
            // Presumed keys that must be read for real after all.
            o.read_again(&refresh).await?;
            refresh.clear();
            fresh.retain(|k| !o.seen.rrsets.contains_key(k));
        }
        if !fresh.is_empty() {
            o.read_fresh(&fresh).await?;
        }
        match decide(intent, ctx, &o.seen, how)? {
            Decision::Read(more) => {
                // Keys known already are read again, for real.
                refresh.extend(
                    more.iter()
                        .filter(|k| o.seen.rrsets.contains_key(*k))
                        .cloned(),
                );
                keys.extend(more);
            }
            Decision::ListRegistries => o.list_registries(prelisted.take()).await?,
            Decision::Write(plan) => {
                return Ok((
                    *plan,
                    o.snap.expect("the registry is always read"),
                    o.seen.presumed,
                ));
            }
        }
    }
}

/// What one [`observe`] has read or presumed so far, and how it reads more.
struct Observation<'o, 't, P: Provider> {
    p: &'o P,
    intent: &'o Intent,
    ctx: &'o Ctx,
    tries: &'o mut Attempts<'t>,
    /// Whether a throttled read means announcing instead (see `Crowded`).
    crowd: bool,
    /// What may be presumed instead of read; taken by the first read.
    memory: Option<&'o P::Snapshot>,
    seen: Seen,
    snap: Option<P::Snapshot>,
}

impl<P: Provider> Observation<'_, '_, P> {
    /// Notes in `seen` what `part` shows at `k`: its values, who claims
    /// them, its TTL.
    fn note(&mut self, part: &P::Snapshot, k: &RrKey) {
        let p = self.p;
        let values = p.values(part, k);
        for v in &values {
            if let Some(c) = p.claimants(part, v) {
                self.seen
                    .claimants
                    .get_or_insert_default()
                    .insert(v.clone(), c);
            }
        }
        self.seen.rrsets.insert(
            k.clone(),
            Rrset {
                values,
                ttl: p.ttl(part, k),
            },
        );
    }

    /// Reads `refresh` for real (what was presumed, or must be read again
    /// after a claim): what it shows replaces what was seen before.
    async fn read_again(&mut self, refresh: &BTreeSet<RrKey>) -> anyhow::Result<()> {
        let read = read_all(self.p, self.tries, self.crowd, refresh).await?;
        for k in refresh {
            self.note(&read, k);
            self.seen.presumed.remove(k);
        }
        let mut fresh_snap = read;
        if let Some(old) = self.snap.take() {
            self.p.merge(&mut fresh_snap, old);
        }
        self.snap = Some(fresh_snap);
        Ok(())
    }

    /// Presumes from memory what of `fresh` it can, reads the rest, and
    /// notes it all.
    async fn read_fresh(&mut self, fresh: &BTreeSet<RrKey>) -> anyhow::Result<()> {
        let (p, intent, ctx) = (self.p, self.intent, self.ctx);
        let shared: BTreeSet<RrKey> = fresh
            .iter()
            .filter(|k| intent.is_shared(k, &ctx.registry))
            .cloned()
            .collect();
        let presumable = self.presumable(fresh);
        let (presumed, to_read) = match self
            .memory
            .take()
            .and_then(|m| p.presume(m, &presumable, &shared, &intent.known))
        {
            Some((s, mut rest)) => {
                self.seen
                    .presumed
                    .extend(presumable.difference(&rest).cloned());
                rest.extend(fresh.difference(&presumable).cloned());
                (Some(s), rest)
            }
            None => (None, fresh.clone()),
        };
        let mut part = presumed;
        if !to_read.is_empty() {
            let read = read_all(p, self.tries, self.crowd, &to_read).await?;
            match &mut part {
                Some(s) => p.merge(s, read),
                None => part = Some(read),
            }
        }
        let part = part.expect("presumed or read");
        for k in fresh {
            self.note(&part, k);
        }
        match &mut self.snap {
            Some(s) => p.merge(s, part),
            None => self.snap = Some(part),
        }
        Ok(())
    }

    /// Which of `fresh` may be presumed from memory.
    fn presumable(&self, fresh: &BTreeSet<RrKey>) -> BTreeSet<RrKey> {
        // Where claims are kept by name, a join reads the records
        // (memory would not show a value added or removed by someone else
        // since) and presumes the ownership rrsets: its registry and its
        // values' claims as its last write left them, absent when nothing
        // is remembered (a machine's first join). Every claim the decision
        // rests on is then a prerequisite of the UPDATE (changed, or
        // guarded as absent where a value was found unclaimed), so a claim
        // a peer wrote meanwhile refuses the write and is read; a fleet
        // joining with values of their own reads no claim at all. A leave
        // presumes them all.
        if self.ctx.claims_by_name && !self.intent.leaving {
            let ownership = registry::root(&self.ctx.zone);
            fresh
                .iter()
                .filter(|k| k.name.is_in(&ownership))
                .cloned()
                .collect()
        } else {
            fresh.clone()
        }
    }

    /// Lists the other instances' registries (or takes what a look listed
    /// already) and notes them in `seen`.
    async fn list_registries(
        &mut self,
        prelisted: Option<(BTreeMap<String, Values>, P::Snapshot)>,
    ) -> anyhow::Result<()> {
        let (p, ctx) = (self.p, self.ctx);
        let (all, regs) = match prelisted {
            Some(listed) => listed,
            None => {
                attempt_unless_crowded(
                    self.tries,
                    "listing ownership registries",
                    self.crowd,
                    || p.registries(),
                )
                .await?
            }
        };
        let mut others = BTreeMap::new();
        for (label, values) in all {
            if label == ctx.label {
                continue;
            }
            if let Ok(name) = registry::name(&ctx.zone, &label) {
                let key = RrKey {
                    name,
                    rtype: RType::TXT,
                };
                let ttl = p.ttl(&regs, &key);
                self.seen.rrsets.entry(key).or_insert_with(|| Rrset {
                    values: values.clone(),
                    ttl,
                });
            }
            others.insert(label, Registry::parse(&values));
        }
        self.seen.others = Some(others);
        match &mut self.snap {
            Some(s) => p.merge(s, regs),
            None => self.snap = Some(regs),
        }
        Ok(())
    }
}
