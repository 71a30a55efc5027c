//! What a join or leave would do now, without writing.

use super::*;

/// What is fixed for `p` and `intent`'s instance.
pub(super) fn ctx_of<P: Provider>(p: &P, intent: &Intent) -> anyhow::Result<Ctx> {
    let mut ctx = Ctx::new(p.zone(), &intent.instance_id, p.keeps_apart())?;
    ctx.batch_limit = p.batch_limit();
    ctx.ttl_per_record = p.ttl_per_record();
    ctx.claims_by_name = p.claims_by_name();
    Ok(ctx)
}

/// What a join or leave would do at one provider now ([`dry_run`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DryRun {
    /// Values the write would add.
    pub add: Vec<Value>,
    /// Values this instance owns that the write would remove.
    pub remove: Vec<Value>,
    /// Desired values already there that nobody claims (a person's): left
    /// alone, never claimed ([`Outcome::foreign`]).
    pub keep_foreign: Vec<Value>,
    /// Everything else at the names this instance writes that is not its own:
    /// other instances' values (also those it owned that another instance
    /// claims too, [`Outcome::protected`]) and a person's other values.
    pub keep_others: Vec<Value>,
    /// What this instance would own afterwards.
    pub owned: Values,
    /// Whether what this instance owns would change (its registry, leaving a
    /// lease renewal aside): a value claimed too, or given up to another.
    pub ownership_changes: bool,
}

impl DryRun {
    /// Whether the join or leave would change anything but a lease.
    pub fn changes(&self) -> bool {
        !self.add.is_empty() || !self.remove.is_empty() || self.ownership_changes
    }
}

/// A dry run of [`apply`]: reads what the zone holds now (everything for
/// real: no memory is presumed, whatever `intent.memory` says, and no
/// [`Provider::check`], which may be a write), lets [`decide`] make the
/// decision the first direct write would carry out, and returns it without
/// writing. Never calls [`Provider::write`]. Where shared rrsets are rewritten
/// whole (Route53 simple routing), the real join or leave may announce and be
/// carried by a peer under contention; this is the direct decision.
pub async fn dry_run<P: Provider>(p: &P, intent: &Intent) -> anyhow::Result<DryRun> {
    let ctx = ctx_of(p, intent)?;
    let mut tries = Attempts::new(p.name(), intent.deadline)
        .with(p.transient_backoff())
        .paced(p.pacer());
    let (plan, snap) = loop {
        match observe(p, intent, &ctx, How::Direct, None, None, &mut tries).await {
            // Throttled while reading shared rrsets: the pacer spaces the next try.
            Err(e) if e.is::<Crowded>() && !tries.expired() => {
                p.pacer().fit(tries.deadline);
            }
            Err(e) if e.is::<Crowded>() => {
                return Err(OutOfTime(format!(
                    "{}: gave up after {}: the provider kept throttling the reads",
                    p.name(),
                    humantime::format_duration(intent.deadline)
                ))
                .into());
            }
            r => {
                let (plan, snap, _) = r?;
                break (plan, snap);
            }
        }
    };
    let before = Registry::parse(&p.values(&snap, &ctx.registry));
    let after = Registry::parse(&plan.registry);
    let ownership_changes = (&before.owned, &before.wanted, &before.dropped)
        != (&after.owned, &after.wanted, &after.dropped);
    let out = plan.outcome;
    // The names looked at: what is desired, known, or listed in the registry.
    let ownership = registry::root(&ctx.zone);
    let keys: BTreeSet<RrKey> = intent
        .desired
        .iter()
        .map(|r| r.value.key())
        .chain(intent.known.iter().map(Value::key))
        .chain(
            before
                .owned
                .iter()
                .chain(&before.wanted)
                .chain(&before.dropped)
                .map(Value::key),
        )
        .filter(|k| k.name.is_in(&ctx.zone) && !k.name.is_in(&ownership))
        .collect();
    let mut keep_others = out.protected.clone();
    for k in &keys {
        for v in p.values(&snap, k) {
            if !out.owned.contains(&v)
                && !out.added.contains(&v)
                && !out.removed.contains(&v)
                && !out.foreign.contains(&v)
                && !keep_others.contains(&v)
            {
                keep_others.push(v);
            }
        }
    }
    Ok(DryRun {
        add: out.added,
        remove: out.removed,
        keep_foreign: out.foreign,
        keep_others,
        owned: out.owned,
        ownership_changes,
    })
}
