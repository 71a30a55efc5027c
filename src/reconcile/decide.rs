//! The rule as a pure function: what one instance wants and what was read
//! in, one edit (or what must be read first) out.

use super::*;

/// Other instances' announced values carried in one write, at most (the
/// provider's batch limit usually binds first).
pub(super) const MAX_PEERS_PER_WRITE: usize = 100;

/// The rule, as a pure function of what was read. See the module comment.
pub fn decide(intent: &Intent, ctx: &Ctx, seen: &Seen, how: How) -> anyhow::Result<Decision> {
    let zone = &ctx.zone;
    let reg_values = seen.values(&ctx.registry);
    let mine = Registry::parse(&reg_values);
    let desired: BTreeMap<&Value, &Record> = intent.desired.iter().map(|r| (&r.value, r)).collect();
    let desired_ttl = intent.desired.iter().map(|r| r.ttl).min().unwrap_or(60);
    let shared = |k: &RrKey| !ctx.keeps_apart && intent.is_shared(k, &ctx.registry);

    // What this instance owns: its registry's owned lines and the values it
    // announced for removal, as the zone says, never the state file (a stale
    // or tampered file must not be enough to remove a person's or another
    // instance's value; a registry deleted by hand leaves its values behind
    // rather than risk that). A value it only announced wanting is not its
    // own until a write carried it.
    let mut owned: Values = mine.owned.union(&mine.dropped).cloned().collect();
    owned.retain(|v| v.name.is_in(zone));
    // Where claims are kept by name, those of the values this instance wants
    // or owns are read like any other rrset: who else claims them is known
    // without listing every registry. Its own rrsets' values too: another
    // instance given its address (reused) publishes the same host name.
    let claim_keys: BTreeMap<Value, RrKey> = if ctx.claims_by_name {
        desired
            .keys()
            .copied()
            .chain(owned.iter())
            .map(|v| (v.clone(), registry::claim_key(zone, v)))
            .collect()
    } else {
        BTreeMap::new()
    };

    // The keys to know: desired, owned, wanted; shared ones only when written.
    let mut need: BTreeSet<RrKey> = desired
        .keys()
        .map(|v| v.key())
        .chain(owned.iter().map(Value::key))
        .chain(
            mine.wanted
                .iter()
                .filter(|v| v.name.is_in(zone))
                .map(Value::key),
        )
        .filter(|k| how != How::Announce || !shared(k))
        .collect();
    need.insert(ctx.registry.clone());
    let missing: BTreeSet<RrKey> = need
        .iter()
        .chain(claim_keys.values())
        .filter(|k| !seen.rrsets.contains_key(*k))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Ok(Decision::Read(missing));
    }
    // Where each instance keeps its own rrsets, what is in ours is ours; where
    // records name their claimants, what names this instance is its.
    if ctx.keeps_apart {
        for k in need.iter().filter(|k| **k != ctx.registry) {
            owned.extend(seen.values(k));
        }
    }
    let by_name: Option<BTreeMap<Value, BTreeSet<String>>> = ctx.claims_by_name.then(|| {
        claim_keys
            .iter()
            .map(|(v, k)| (v.clone(), registry::claimants(&seen.values(k))))
            .collect()
    });
    let claims = by_name.as_ref().or(seen.claimants.as_ref());
    let tracks = claims.is_some();
    let claimants = |v: &Value| -> BTreeSet<String> {
        claims.and_then(|m| m.get(v)).cloned().unwrap_or_default()
    };
    if let Some(m) = claims {
        let registries = registry::root(zone);
        owned.extend(
            m.iter()
                .filter(|(v, c)| {
                    c.contains(&ctx.label) && v.name.is_in(zone) && !v.name.is_in(&registries)
                })
                .map(|(v, _)| v.clone()),
        );
    }

    let writes_shared = how != How::Announce;
    let written = |k: &RrKey| writes_shared || !shared(k);
    let present = |v: &Value| seen.values(&v.key()).contains(v);
    // Desired values present but not ours, and values to take out: both need
    // to know who else claims what (unless each instance keeps apart).
    let present_unowned = desired
        .keys()
        .any(|v| !intent.leaving && !owned.contains(*v) && written(&v.key()) && present(v));
    // An announcement writes only this instance's own rrsets (and its
    // registry), but even those may hold a value another instance claims
    // too: a host name made from an address, given to another machine since
    // (measured: taking it out unlooked removed that machine's record). A
    // name made from this instance's id is the exception (see `named_for`).
    let withdraw = owned.iter().any(|v| {
        (intent.leaving || !desired.contains_key(v))
            && written(&v.key())
            && present(v)
            && !named_for(v, &ctx.label)
    });
    let needs_others =
        !ctx.keeps_apart && (how == How::Materialise || (!tracks && (withdraw || present_unowned)));
    if needs_others && seen.others.is_none() {
        return Ok(Decision::ListRegistries);
    }
    let empty = BTreeMap::new();
    let others = seen.others.as_ref().unwrap_or(&empty);
    // What other instances own: claimed too when present, never removed.
    // A value another instance announced for removal is still its own until
    // a write takes it out: one joining with it claims it too (and keeps it),
    // rather than take it for a person's.
    let owned_by_others: Values = others
        .values()
        .flat_map(|r| r.owned.iter().chain(&r.dropped).cloned())
        .collect();
    let others_claim = |v: &Value| {
        if tracks {
            claimants(v).iter().any(|l| *l != ctx.label)
        } else {
            owned_by_others.contains(v)
        }
    };
    let with_me = |v: &Value| {
        let mut c = claimants(v);
        c.insert(ctx.label.clone());
        c
    };
    let without_me = |v: &Value| {
        let mut c = claimants(v);
        c.remove(&ctx.label);
        c
    };

    let mut edit = Edit::default();
    let mut out = Outcome::default();
    let mut new_owned = Values::new();
    let mut wants = Values::new();
    let mut drops = Values::new();
    let mut reread = BTreeSet::new();
    for key in need.iter().filter(|k| **k != ctx.registry) {
        let current = seen.values(key);
        if !intent.leaving {
            for (v, rec) in desired.iter().filter(|(v, _)| v.key() == *key) {
                if !current.contains(*v) {
                    edit.add
                        .entry(key.clone())
                        .or_default()
                        .push((*rec).clone());
                    out.added.push((*v).clone());
                    new_owned.insert((*v).clone());
                } else if owned.contains(*v) || others_claim(v) {
                    new_owned.insert((*v).clone());
                    if tracks && !claimants(v).contains(&ctx.label) {
                        // Claimed by another instance: this one's name goes on it too.
                        edit.claimants.insert((*v).clone(), with_me(v));
                    }
                } else if let Some(k) = claim_keys.get(*v).filter(|k| seen.presumed.contains(*k)) {
                    // Found with its claim only presumed absent: a person's,
                    // or an instance's whose claim was not read. Read the
                    // claim, then the record again (in that order, as a
                    // first read does, so that an instance taking the value
                    // out meanwhile is not mistaken for a person).
                    reread.insert(k.clone());
                    reread.insert(key.clone());
                } else {
                    out.foreign.push((*v).clone());
                    if let Some(k) = claim_keys.get(*v) {
                        // A person's because nobody claims it: the write
                        // applies only if nobody claimed it since.
                        edit.guard.insert(k.clone());
                    }
                }
            }
        }
        for v in current.iter().filter(|v| owned.contains(*v)) {
            let keep = !intent.leaving && desired.contains_key(v);
            if keep {
                new_owned.insert(v.clone());
            } else if others_claim(v) {
                out.protected.push(v.clone());
                if tracks {
                    edit.claimants.insert(v.clone(), without_me(v));
                }
            } else {
                edit.remove.entry(key.clone()).or_default().push(v.clone());
                out.removed.push(v.clone());
            }
        }
    }
    if !reread.is_empty() {
        return Ok(Decision::Read(reread));
    }
    if ctx.claims_by_name {
        // Claims kept by name change in the same edit as the values: what it
        // adds names this instance, what it removes nobody any more.
        let mut changed = std::mem::take(&mut edit.claimants);
        for v in out.added.iter().filter(|v| claim_keys.contains_key(*v)) {
            changed.entry(v.clone()).or_insert_with(|| with_me(v));
        }
        for v in &out.removed {
            changed.insert(v.clone(), BTreeSet::new());
        }
        for (v, who) in changed {
            let Some(k) = claim_keys.get(&v) else {
                continue;
            };
            let after = registry::claim_values(&k.name, &who);
            set_exactly(&mut edit, k, &seen.values(k), &after, desired_ttl);
        }
    }
    if !writes_shared {
        // Announce: this instance's part of each shared rrset as lines, for
        // whoever writes the rrset next.
        for v in desired.keys().filter(|v| shared(&v.key())) {
            if intent.leaving {
                break;
            }
            if mine.owned.contains(*v) {
                new_owned.insert((*v).clone());
            } else {
                wants.insert((*v).clone());
            }
        }
        for v in owned.iter().filter(|v| shared(&v.key())) {
            if intent.leaving || !desired.contains_key(v) {
                drops.insert(v.clone());
            }
        }
    }

    // Carry other instances' announced values at the shared rrsets being written.
    // And, whenever this write removes a value, the `drop` lines other
    // instances have for it: once gone it is not theirs to remove any more
    // (a value added again later, by a person, say, must not be).
    let mut peers: BTreeMap<String, Registry> = BTreeMap::new();
    let removing: Values = edit.remove.values().flatten().cloned().collect();
    if how == How::Materialise || (writes_shared && !removing.is_empty()) {
        let carry = how == How::Materialise;
        let mut cost = batch_cost(&edit, seen);
        // The rrsets the write names so far: a peer's value at another one
        // brings that rrset in whole.
        let mut counted = edit.keys();
        for (label, r) in others.iter() {
            if peers.len() >= MAX_PEERS_PER_WRITE
                || (carry && r.expired(ctx.now))
                || (!carry && !r.dropped.iter().any(|d| removing.contains(d)))
            {
                continue;
            }
            let Ok(reg_name) = registry::name(zone, label) else {
                continue;
            };
            let reg_key = RrKey {
                name: reg_name,
                rtype: RType::TXT,
            };
            if !seen.rrsets.contains_key(&reg_key) {
                continue;
            }
            let mut after = r.clone();
            let mut add: Vec<Value> = Vec::new();
            let mut remove: Vec<Value> = Vec::new();
            for w in r.wanted.iter().filter(|_| carry) {
                let k = w.key();
                if !seen.rrsets.contains_key(&k) || !shared(&k) || add.contains(w) {
                    continue;
                }
                let flip = if let Some(i) = edit
                    .remove
                    .get(&k)
                    .and_then(|l| l.iter().position(|x| x == w))
                {
                    // This instance gives it up as the peer asks for it: hand it over.
                    edit.remove.get_mut(&k).expect("found").remove(i);
                    out.removed.retain(|x| x != w);
                    true
                } else if !will_hold(&edit, seen, &k).contains(w) {
                    add.push(w.clone());
                    true
                } else {
                    // Present: the peer's too if a dnsreg instance owns it;
                    // a person's otherwise, for the peer to find out itself.
                    mine.owned.contains(w) || owned_by_others_except(others, label).contains(w)
                };
                if flip {
                    after.wanted.remove(w);
                    after.owned.insert(w.clone());
                }
            }
            for d in &r.dropped {
                let k = d.key();
                if !seen.rrsets.contains_key(&k) || !shared(&k) {
                    continue;
                }
                if !carry && !removing.contains(d) {
                    continue;
                }
                let claimed_elsewhere =
                    new_owned.contains(d) || owned_by_others_except(others, label).contains(d);
                if will_hold(&edit, seen, &k).contains(d) && !claimed_elsewhere {
                    remove.push(d.clone());
                }
                after.dropped.remove(d);
            }
            if after == *r {
                continue;
            }
            let before_values = seen.values(&reg_key);
            let after_values =
                if after.owned.is_empty() && after.wanted.is_empty() && after.dropped.is_empty() {
                    Values::new()
                } else {
                    after.to_values(&reg_key.name)?
                };
            // This peer's share: its registry as it is and as it will be,
            // and its values in the shared rrsets (each rewritten whole, as
            // it is and as it will be, already counts once).
            let brought: BTreeSet<RrKey> = add
                .iter()
                .chain(&remove)
                .map(Value::key)
                .filter(|k| !counted.contains(k))
                .collect();
            let whole: Vec<Value> = brought
                .iter()
                .flat_map(|k| {
                    let v = seen.values(k);
                    v.clone().into_iter().chain(v)
                })
                .collect();
            let step = Cost::of(
                before_values
                    .iter()
                    .chain(&after_values)
                    .chain(&add)
                    .chain(&remove)
                    .chain(&whole),
            );
            if !cost.plus(step).within(ctx.batch_limit) {
                continue;
            }
            cost = cost.plus(step);
            counted.extend(brought);
            for w in add {
                let ttl = seen
                    .rrsets
                    .get(&w.key())
                    .and_then(|r| r.ttl)
                    .unwrap_or(desired_ttl);
                edit.add
                    .entry(w.key())
                    .or_default()
                    .push(Record { value: w, ttl });
                out.carried += 1;
            }
            for d in remove {
                edit.remove.entry(d.key()).or_default().push(d);
                out.carried += 1;
            }
            let ttl = seen
                .rrsets
                .get(&reg_key)
                .and_then(|r| r.ttl)
                .unwrap_or(desired_ttl);
            set_exactly(&mut edit, &reg_key, &before_values, &after_values, ttl);
            peers.insert(label.clone(), after);
        }
    }

    // This instance's registry: rewritten in the same edit, so it is never out of step.
    let mut new_registry = Registry {
        owned: new_owned.clone(),
        wanted: wants.clone(),
        dropped: drops.clone(),
        lease: None,
    };
    // The lease: kept while more than two thirds of it remain, renewed
    // otherwise; an instance that claims nothing holds none.
    if let Some(ttl) = intent.lease {
        let expiry = match mine.lease {
            Some(t) if t > ctx.now + ttl.as_secs() * 2 / 3 && t <= ctx.now + ttl.as_secs() => t,
            _ => ctx.now + ttl.as_secs(),
        };
        new_registry.lease = Some(expiry);
    }
    let new_reg_values = new_registry.to_values(&ctx.registry.name)?;
    set_exactly(
        &mut edit,
        &ctx.registry,
        &reg_values,
        &new_reg_values,
        desired_ttl,
    );

    // TTLs: an rrset holding only this instance's values takes the configured
    // TTL (so a changed `ttl` reaches DNS); one shared with others keeps its
    // TTL, which is not ours alone to change; a new one gets ours.
    let configured: BTreeMap<RrKey, u32> = intent
        .desired
        .iter()
        .map(|r| (r.value.key(), r.ttl))
        .chain([(ctx.registry.clone(), desired_ttl)])
        .collect();
    for key in need.iter() {
        let after = will_hold(&edit, seen, key);
        let all_ours = after
            .iter()
            .all(|v| new_owned.contains(v) || new_reg_values.contains(v));
        let (Some(&want), false) = (configured.get(key), after.is_empty()) else {
            continue;
        };
        let now = seen.rrsets.get(key).and_then(|r| r.ttl);
        if seen.presumed.contains(key)
            && shared(key)
            && !ctx.ttl_per_record
            && now.is_some_and(|now| now != want)
        {
            // Whether others share the rrset (and its TTL is not ours to
            // change) only a read can tell.
            return Ok(Decision::Read(BTreeSet::from([key.clone()])));
        }
        let ttl = match now {
            Some(now) if !all_ours && !ctx.ttl_per_record => now,
            _ => want,
        };
        let touched = edit.add.get(key).is_some_and(|v| !v.is_empty())
            || edit.remove.get(key).is_some_and(|v| !v.is_empty());
        if touched || now.is_some_and(|now| now != ttl) {
            edit.ttl.insert(key.clone(), ttl);
        }
    }
    // A peer's registry rewritten keeps its TTL; so does a shared rrset carried.
    for key in edit.keys() {
        if !edit.ttl.contains_key(&key)
            && let Some(t) = seen.rrsets.get(&key).and_then(|r| r.ttl)
        {
            edit.ttl.insert(key, t);
        }
    }
    out.owned = new_owned;
    Ok(Decision::Write(Box::new(Plan {
        edit,
        outcome: out,
        registry: new_reg_values,
        announces: !wants.is_empty() || !drops.is_empty(),
    })))
}

/// Makes `edit` take the rrset at `key` from `before` to exactly `after`:
/// what only `before` holds removed, what only `after` holds added with
/// `ttl` (an ownership rrset: a registry or a claim).
pub(super) fn set_exactly(edit: &mut Edit, key: &RrKey, before: &Values, after: &Values, ttl: u32) {
    let gone: Vec<Value> = before.difference(after).cloned().collect();
    let new: Vec<Record> = after
        .difference(before)
        .map(|v| Record {
            value: v.clone(),
            ttl,
        })
        .collect();
    if !gone.is_empty() {
        edit.remove.insert(key.clone(), gone);
    }
    if !new.is_empty() {
        edit.add.insert(key.clone(), new);
    }
}

/// What the registries other than `label`'s own.
/// Whether `v`'s name starts with this instance's registry label (its id, as
/// `{instance_id}` makes host names): no other instance's registry can claim
/// it, since an instance of the same id would share this registry too. Its
/// withdrawal needs no listing of the others (at a fleet's scale-in that
/// listing was one request in four of every leave).
pub(super) fn named_for(v: &Value, label: &str) -> bool {
    v.name
        .as_str()
        .split('.')
        .next()
        .is_some_and(|first| first == label)
}

pub(super) fn owned_by_others_except(others: &BTreeMap<String, Registry>, label: &str) -> Values {
    others
        .iter()
        .filter(|(l, _)| l.as_str() != label)
        .flat_map(|(_, r)| r.owned.iter().cloned())
        .collect()
}

/// The values at `key` once `edit` is applied to what `seen` holds.
pub(super) fn will_hold(edit: &Edit, seen: &Seen, key: &RrKey) -> Values {
    let mut after = seen.values(key);
    for v in edit.remove.get(key).into_iter().flatten() {
        after.remove(v);
    }
    after.extend(
        edit.add
            .get(key)
            .into_iter()
            .flatten()
            .map(|r| r.value.clone()),
    );
    after
}

/// Records a write of `edit` carries: each touched rrset as it is and as it
/// will be (Route53 DELETEs and CREATEs it whole).
pub(super) fn batch_cost(edit: &Edit, seen: &Seen) -> Cost {
    let mut cost = Cost::default();
    for k in edit.keys() {
        let before = seen.values(&k);
        let after = will_hold(edit, seen, &k);
        cost = cost.plus(Cost::of(before.iter().chain(&after)));
    }
    cost
}

/// Records and characters of values in a write (see [`BatchLimit`]).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Cost {
    pub(super) records: usize,
    pub(super) characters: usize,
}

impl Cost {
    pub(super) fn of<'a>(values: impl Iterator<Item = &'a Value>) -> Cost {
        values.fold(Cost::default(), |c, v| Cost {
            records: c.records + 1,
            characters: c.characters + v.data.to_string().len(),
        })
    }

    pub(super) fn plus(self, other: Cost) -> Cost {
        Cost {
            records: self.records + other.records,
            characters: self.characters + other.characters,
        }
    }

    pub(super) fn within(self, limit: BatchLimit) -> bool {
        self.records <= limit.records && self.characters <= limit.characters
    }
}
