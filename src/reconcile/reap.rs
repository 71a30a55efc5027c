//! Reaping expired instances, and which wanted records are present.

use super::*;

/// What [`reap`] removed for one expired instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    /// The instance's registry label.
    pub instance: String,
    /// When its lease ran out (unix seconds).
    pub expired: u64,
    pub removed: Vec<Value>,
    /// Values its registry listed that another live registry claims too: left.
    pub protected: Vec<Value>,
}

/// Removes the records of every instance whose lease expired before `now`:
/// exactly the values its registry lists (owned, or announced for removal) and
/// still present, then the registry itself, in one atomic edit per instance.
/// Values another live registry also claims stay. Registries without a lease
/// are never touched.
///
/// Safe when several reapers run at once, and against the instance coming back:
/// each edit is conditional on what was read (a conflict reads again), and a
/// registry whose lease was renewed meanwhile is left alone.
pub async fn reap<P: Provider>(p: &P, now: u64, deadline: Duration) -> anyhow::Result<Vec<Reaped>> {
    let mut tries = Attempts::new(p.name(), deadline)
        .with(p.transient_backoff())
        .paced(p.pacer());
    let (all, _) = attempt(&mut tries, "listing ownership registries", || {
        p.registries()
    })
    .await?;
    let parsed: BTreeMap<String, Registry> = all
        .iter()
        .map(|(label, values)| (label.clone(), Registry::parse(values)))
        .collect();
    let mut out = Vec::new();
    let expired = expired_from_anywhere(&parsed, now);
    let mut prefetched = prefetch(p, &mut tries, &expired).await?;
    for (label, registry) in expired {
        // Where instances keep rrsets of their own, read and delete the dead
        // one's, and what another instance publishes too is in its own rrsets.
        let owner = p.as_owner(label);
        let p = owner.as_ref().unwrap_or(p);
        let claimed_by_others: Values = parsed
            .iter()
            .filter(|(l, r)| *l != label && !r.expired(now) && !p.keeps_apart())
            .flat_map(|(_, r)| r.claims().cloned())
            .collect();
        let first = prefetched.remove(label);
        if let Some(reaped) = reap_one(
            p,
            &mut tries,
            label,
            registry,
            now,
            &claimed_by_others,
            first,
        )
        .await?
        {
            out.push(reaped);
        }
    }
    Ok(out)
}

/// Where instances keep rrsets of their own, every expired one's are read
/// at once: one listing of the zone instead of a read per instance. Empty
/// elsewhere, and where only one expired.
async fn prefetch<P: Provider>(
    p: &P,
    tries: &mut Attempts<'_>,
    expired: &[(&String, &Registry)],
) -> anyhow::Result<BTreeMap<String, P::Snapshot>> {
    if !(p.keeps_apart() && expired.len() > 1) {
        return Ok(BTreeMap::new());
    }
    let owners = expired
        .iter()
        .map(|(label, r)| Ok(((*label).clone(), reap_keys(p, label, r)?)))
        .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
    attempt(tries, "reading records", || p.read_as_owners(&owners)).await
}

/// Reaps expired instance `label` (its `registry` as listed) in one
/// conditional edit, reading again after a conflict; starts from `first`
/// (what was prefetched) where given. Values in `claimed_by_others` stay.
/// `None` where it is gone (another reaper was first) or renewed.
async fn reap_one<P: Provider>(
    p: &P,
    tries: &mut Attempts<'_>,
    label: &str,
    registry: &Registry,
    now: u64,
    claimed_by_others: &Values,
    mut first: Option<P::Snapshot>,
) -> anyhow::Result<Option<Reaped>> {
    let reg_key = RrKey {
        name: registry::name(p.zone(), label).map_err(anyhow::Error::msg)?,
        rtype: RType::TXT,
    };
    let mut conflicts = 0u32;
    let keys = reap_keys(p, label, registry)?;
    loop {
        // What was read of every expired instance at once, the first
        // time; after a conflict, this one's again.
        let snap = match first.take() {
            Some(snap) => snap,
            None => attempt(tries, "reading records", || p.read(&keys)).await?,
        };
        let current = p.values(&snap, &reg_key);
        let now_reg = Registry::parse(&current);
        // Gone (another reaper was first) or renewed (the instance is back).
        if !now_reg.expired(now) {
            return Ok(None);
        }
        let (edit, reaped) = reap_edit(
            p,
            label,
            &snap,
            &now_reg,
            &current,
            &reg_key,
            claimed_by_others,
        );
        match p.write(&snap, &edit).await {
            Ok(_) => return Ok(Some(reaped)),
            Err(Fail::Conflict(why)) => {
                conflicts += 1;
                if tries.expired() {
                    anyhow::bail!(
                        "{}: gave up reaping {label} after {conflicts} conflicting writes; last: {why}",
                        p.name()
                    );
                }
                tries.sleep(after_conflict(conflicts)).await;
            }
            Err(f) => tries.after(&format!("reaping {label}"), f).await?,
        }
    }
}

/// The expired registries, starting at a random place in the list: several
/// reapers at once (every agent with `reap = true`) then mostly take
/// different instances instead of reading the same ones and finding them
/// gone.
pub(super) fn expired_from_anywhere(
    parsed: &BTreeMap<String, Registry>,
    now: u64,
) -> Vec<(&String, &Registry)> {
    let mut expired: Vec<(&String, &Registry)> =
        parsed.iter().filter(|(_, r)| r.expired(now)).collect();
    if let Some(last) = expired.len().checked_sub(1) {
        let start = usize::try_from(crate::retry::jitter(last as u64)).unwrap_or(0);
        expired.rotate_left(start.min(last));
    }
    expired
}

/// What a reaper reads of expired instance `label`: the values its
/// registry lists (and their claims, where claims are kept by name), and
/// the registry.
pub(super) fn reap_keys<P: Provider>(
    p: &P,
    label: &str,
    registry: &Registry,
) -> anyhow::Result<BTreeSet<RrKey>> {
    let mut keys: BTreeSet<RrKey> = registry
        .owned
        .iter()
        .chain(registry.dropped.iter())
        .flat_map(|v| {
            [
                Some(v.key()),
                p.claims_by_name().then(|| registry::claim_key(p.zone(), v)),
            ]
        })
        .flatten()
        .collect();
    keys.insert(RrKey {
        name: registry::name(p.zone(), label).map_err(anyhow::Error::msg)?,
        rtype: RType::TXT,
    });
    Ok(keys)
}

/// The change that reaps expired instance `label` as `snap` shows it (its
/// registry `current`, parsed as `now_reg`, at `reg_key`): its values that
/// no other instance claims (`claimed_by_others`, or the claims on the
/// records) go, the others are left and lose its claim, and its registry
/// goes. With what it removes and leaves, for the report.
pub(super) fn reap_edit<P: Provider>(
    p: &P,
    label: &str,
    snap: &P::Snapshot,
    now_reg: &Registry,
    current: &Values,
    reg_key: &RrKey,
    claimed_by_others: &Values,
) -> (Edit, Reaped) {
    // Where claims are kept by name, each value's claim rrset is read and
    // written with it: the dead instance's name comes off it.
    let claim_key = |v: &Value| p.claims_by_name().then(|| registry::claim_key(p.zone(), v));
    let mut edit = Edit::default();
    let mut reaped = Reaped {
        instance: label.to_string(),
        expired: now_reg.lease.unwrap_or_default(),
        ..Reaped::default()
    };
    for v in now_reg.owned.iter().chain(now_reg.dropped.iter()) {
        if !v.name.is_in(p.zone()) {
            continue;
        }
        let on_record = p.claimants(snap, v).map(|mut c| {
            c.remove(label);
            c
        });
        let by_name = claim_key(v).map(|k| {
            let held = p.values(snap, &k);
            let mut c = registry::claimants(&held);
            c.remove(label);
            (k, held, c)
        });
        let others = match (&on_record, &by_name) {
            (Some(c), _) => !c.is_empty(),
            (None, Some((_, _, c))) => !c.is_empty() || claimed_by_others.contains(v),
            (None, None) => claimed_by_others.contains(v),
        };
        if others {
            reaped.protected.push(v.clone());
            if let Some(c) = on_record.filter(|_| p.values(snap, &v.key()).contains(v)) {
                edit.claimants.insert(v.clone(), c);
            }
        } else if p.values(snap, &v.key()).contains(v) && !reaped.removed.contains(v) {
            edit.remove.entry(v.key()).or_default().push(v.clone());
            reaped.removed.push(v.clone());
        }
        // The dead instance's name off the claim (all of it when the
        // value goes), whether or not the value is still there.
        if let Some((k, held, c)) = by_name {
            let after = if others {
                registry::claim_values(&k.name, &c)
            } else {
                Values::new()
            };
            let gone = edit.remove.entry(k).or_default();
            for c in held.difference(&after) {
                if !gone.contains(c) {
                    gone.push(c.clone());
                }
            }
        }
    }
    edit.remove
        .insert(reg_key.clone(), current.iter().cloned().collect());
    (edit, reaped)
}

/// Whether each desired value is present, for `status`.
pub async fn presence<P: Provider>(
    p: &P,
    desired: &[Record],
    deadline: Duration,
) -> anyhow::Result<Vec<(Value, bool)>> {
    let keys: BTreeSet<RrKey> = desired.iter().map(|r| r.value.key()).collect();
    let mut tries = Attempts::new(p.name(), deadline)
        .with(p.transient_backoff())
        .paced(p.pacer());
    let snap = attempt(&mut tries, "reading records", || p.read(&keys)).await?;
    Ok(desired
        .iter()
        .map(|r| {
            (
                r.value.clone(),
                p.values(&snap, &r.value.key()).contains(&r.value),
            )
        })
        .collect())
}
