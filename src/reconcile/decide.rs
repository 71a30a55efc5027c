//! The rule as a pure function: what one instance wants and what was read
//! in, one edit (or what must be read first) out.

use super::*;

/// Other instances' announced values carried in one write, at most (the
/// provider's batch limit usually binds first).
pub(super) const MAX_PEERS_PER_WRITE: usize = 100;

mod peers;

/// The rule, as a pure function of what was read. See the module comment.
pub fn decide(intent: &Intent, ctx: &Ctx, seen: &Seen, how: How) -> anyhow::Result<Decision> {
    let rules = match Rules::new(intent, ctx, seen, how) {
        Ok(rules) => rules,
        Err(missing) => return Ok(Decision::Read(missing)),
    };
    if rules.needs_others() && seen.others.is_none() {
        return Ok(Decision::ListRegistries);
    }
    let mut draft = Draft::default();
    let reread = rules.per_rrset(&mut draft);
    if !reread.is_empty() {
        return Ok(Decision::Read(reread));
    }
    if ctx.claims_by_name {
        rules.claims_by_name(&mut draft);
    }
    if !rules.writes_shared() {
        // Announce: this instance's part of each shared rrset as lines, for
        // whoever writes the rrset next.
        rules.announce(&mut draft);
    }
    rules.carry_peers(&mut draft)?;
    let new_reg_values = rules.registry(&mut draft)?;
    if let Some(key) = rules.ttls(&mut draft, &new_reg_values) {
        return Ok(Decision::Read(BTreeSet::from([key])));
    }
    let Draft {
        edit,
        mut out,
        new_owned,
        wants,
        drops,
    } = draft;
    out.owned = new_owned;
    Ok(Decision::Write(Box::new(Plan {
        edit,
        outcome: out,
        registry: new_reg_values,
        announces: !wants.is_empty() || !drops.is_empty(),
    })))
}

/// The registries of no other instance, for a decision made without listing
/// them.
static NO_OTHERS: BTreeMap<String, Registry> = BTreeMap::new();

/// What the phases of [`decide`] share: what this instance wants, what it
/// owns, which rrsets it must know, and who else claims what.
struct Rules<'a> {
    intent: &'a Intent,
    ctx: &'a Ctx,
    seen: &'a Seen,
    how: How,
    /// This instance's registry as read.
    reg_values: Values,
    /// What that registry says.
    mine: Registry,
    /// The values this instance wants, with their records.
    desired: BTreeMap<&'a Value, &'a Record>,
    /// The shortest TTL it wants: for ownership rrsets and new ones.
    desired_ttl: u32,
    /// What this instance owns, as the zone says.
    owned: Values,
    /// Where claims are kept by name: the rrset holding each value's claim.
    claim_keys: BTreeMap<Value, RrKey>,
    /// The rrsets to know, this instance's registry among them.
    need: BTreeSet<RrKey>,
    /// Where claims are kept by name: who claims each value, as read.
    by_name: Option<BTreeMap<Value, BTreeSet<String>>>,
    /// Other instances' registries, by label (none unless listed).
    others: &'a BTreeMap<String, Registry>,
    /// What those registries claim (see [`owned_by_others`]).
    owned_by_others: Values,
}

/// What the phases of [`decide`] build up: the edit, its outcome, and this
/// instance's registry lines as the edit leaves them.
#[derive(Default)]
struct Draft {
    edit: Edit,
    out: Outcome,
    /// What this instance owns after the edit (its `owned` lines).
    new_owned: Values,
    /// Values announced for whoever writes their rrset to add (`want`).
    wants: Values,
    /// Values announced for whoever writes their rrset to remove (`drop`).
    drops: Values,
}

impl<'a> Rules<'a> {
    /// Works out what this instance owns and which rrsets it must know, and
    /// who else claims what; `Err` holds the rrsets not read yet, to read
    /// before anything else can be decided.
    fn new(
        intent: &'a Intent,
        ctx: &'a Ctx,
        seen: &'a Seen,
        how: How,
    ) -> Result<Rules<'a>, BTreeSet<RrKey>> {
        let reg_values = seen.values(&ctx.registry);
        let mine = Registry::parse(&reg_values);
        // What this instance owns: its registry's owned lines and the values it
        // announced for removal, as the zone says, never the state file (a stale
        // or tampered file must not be enough to remove a person's or another
        // instance's value; a registry deleted by hand leaves its values behind
        // rather than risk that). A value it only announced wanting is not its
        // own until a write carried it.
        let mut owned: Values = mine.owned.union(&mine.dropped).cloned().collect();
        owned.retain(|v| v.name.is_in(&ctx.zone));
        let others = seen.others.as_ref().unwrap_or(&NO_OTHERS);
        let mut rules = Rules {
            intent,
            ctx,
            seen,
            how,
            reg_values,
            mine,
            desired: intent.desired.iter().map(|r| (&r.value, r)).collect(),
            desired_ttl: intent.desired.iter().map(|r| r.ttl).min().unwrap_or(60),
            owned,
            claim_keys: BTreeMap::new(),
            need: BTreeSet::new(),
            by_name: None,
            others,
            owned_by_others: owned_by_others(others),
        };
        rules.claim_keys = rules.claim_keys();
        rules.need = rules.need();
        let missing: BTreeSet<RrKey> = rules
            .need
            .iter()
            .chain(rules.claim_keys.values())
            .filter(|k| !seen.rrsets.contains_key(*k))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(missing);
        }
        rules.own_what_the_zone_says();
        Ok(rules)
    }

    /// Where claims are kept by name, those of the values this instance wants
    /// or owns are read like any other rrset: who else claims them is known
    /// without listing every registry. Its own rrsets' values too: another
    /// instance given its address (reused) publishes the same host name.
    fn claim_keys(&self) -> BTreeMap<Value, RrKey> {
        if !self.ctx.claims_by_name {
            return BTreeMap::new();
        }
        self.desired
            .keys()
            .copied()
            .chain(self.owned.iter())
            .map(|v| (v.clone(), registry::claim_key(&self.ctx.zone, v)))
            .collect()
    }

    /// The keys to know: desired, owned, wanted; shared ones only when written.
    fn need(&self) -> BTreeSet<RrKey> {
        let mut need: BTreeSet<RrKey> = self
            .desired
            .keys()
            .map(|v| v.key())
            .chain(self.owned.iter().map(Value::key))
            .chain(
                self.mine
                    .wanted
                    .iter()
                    .filter(|v| v.name.is_in(&self.ctx.zone))
                    .map(Value::key),
            )
            .filter(|k| self.how != How::Announce || !self.shared(k))
            .collect();
        need.insert(self.ctx.registry.clone());
        need
    }

    /// Adds to what this instance owns what the rrsets read say is its,
    /// beyond its registry.
    fn own_what_the_zone_says(&mut self) {
        // Where each instance keeps its own rrsets, what is in ours is ours; where
        // records name their claimants, what names this instance is its.
        if self.ctx.keeps_apart {
            for k in self.need.iter().filter(|k| **k != self.ctx.registry) {
                self.owned.extend(self.seen.values(k));
            }
        }
        let seen = self.seen;
        self.by_name = self.ctx.claims_by_name.then(|| {
            self.claim_keys
                .iter()
                .map(|(v, k)| (v.clone(), registry::claimants(&seen.values(k))))
                .collect()
        });
        if let Some(m) = self.by_name.as_ref().or(seen.claimants.as_ref()) {
            let registries = registry::root(&self.ctx.zone);
            self.owned.extend(
                m.iter()
                    .filter(|(v, c)| {
                        c.contains(&self.ctx.label)
                            && v.name.is_in(&self.ctx.zone)
                            && !v.name.is_in(&registries)
                    })
                    .map(|(v, _)| v.clone()),
            );
        }
    }

    /// Whether this decision must list the other instances' registries
    /// first: to carry their values, or to know who else claims a value
    /// where the records do not say.
    fn needs_others(&self) -> bool {
        let (intent, ctx) = (self.intent, self.ctx);
        // Desired values present but not ours, and values to take out: both need
        // to know who else claims what (unless each instance keeps apart).
        let present_unowned = self.desired.keys().any(|v| {
            !intent.leaving && !self.owned.contains(*v) && self.written(&v.key()) && self.present(v)
        });
        // An announcement writes only this instance's own rrsets (and its
        // registry), but even those may hold a value another instance claims
        // too: a host name made from an address, given to another machine since
        // (measured: taking it out unlooked removed that machine's record). A
        // name made from this instance's id is the exception (see `named_for`).
        let withdraw = self.owned.iter().any(|v| {
            (intent.leaving || !self.desired.contains_key(v))
                && self.written(&v.key())
                && self.present(v)
                && !named_for(v, &ctx.label)
        });
        !ctx.keeps_apart
            && (self.how == How::Materialise || (!self.tracks() && (withdraw || present_unowned)))
    }

    /// Whether other instances may write the rrset at `k` too (never where
    /// each instance keeps its own rrsets).
    fn shared(&self, k: &RrKey) -> bool {
        !self.ctx.keeps_apart && self.intent.is_shared(k, &self.ctx.registry)
    }

    /// Whether this decision writes shared rrsets (it does unless it announces).
    fn writes_shared(&self) -> bool {
        self.how != How::Announce
    }

    /// Whether this decision writes the rrset at `k`.
    fn written(&self, k: &RrKey) -> bool {
        self.writes_shared() || !self.shared(k)
    }

    /// Whether `v` was read in its rrset.
    fn present(&self, v: &Value) -> bool {
        self.seen.values(&v.key()).contains(v)
    }

    /// Who claims each value, where that is known: by name as read, or as
    /// the provider keeps it on the records.
    fn claims(&self) -> Option<&BTreeMap<Value, BTreeSet<String>>> {
        self.by_name.as_ref().or(self.seen.claimants.as_ref())
    }

    /// Whether who claims each value is known without listing registries.
    fn tracks(&self) -> bool {
        self.claims().is_some()
    }

    /// The instances that claim `v` (none where that is not known).
    fn claimants(&self, v: &Value) -> BTreeSet<String> {
        self.claims()
            .and_then(|m| m.get(v))
            .cloned()
            .unwrap_or_default()
    }

    /// Whether an instance other than this one claims `v`.
    fn others_claim(&self, v: &Value) -> bool {
        if self.tracks() {
            self.claimants(v).iter().any(|l| *l != self.ctx.label)
        } else {
            self.owned_by_others.contains(v)
        }
    }

    /// The claimants of `v` with this instance among them.
    fn with_me(&self, v: &Value) -> BTreeSet<String> {
        let mut c = self.claimants(v);
        c.insert(self.ctx.label.clone());
        c
    }

    /// The claimants of `v` without this instance.
    fn without_me(&self, v: &Value) -> BTreeSet<String> {
        let mut c = self.claimants(v);
        c.remove(&self.ctx.label);
        c
    }

    /// The rules rrset by rrset, over every rrset to know but the registry.
    /// Returns the rrsets to read again before deciding (none if empty).
    fn per_rrset(&self, draft: &mut Draft) -> BTreeSet<RrKey> {
        let mut reread = BTreeSet::new();
        for key in self.need.iter().filter(|k| **k != self.ctx.registry) {
            let current = self.seen.values(key);
            if !self.intent.leaving {
                self.desired_at(key, &current, draft, &mut reread);
            }
            self.owned_at(key, &current, draft);
        }
        reread
    }

    /// The desired values at `key`, which holds `current`: a missing one is
    /// added; a present one is this instance's too where it or another
    /// instance claims it, read again where its claim was only presumed
    /// absent, and a person's otherwise, left alone.
    fn desired_at(
        &self,
        key: &RrKey,
        current: &Values,
        draft: &mut Draft,
        reread: &mut BTreeSet<RrKey>,
    ) {
        let (seen, label) = (self.seen, &self.ctx.label);
        for (v, rec) in self.desired.iter().filter(|(v, _)| v.key() == *key) {
            if !current.contains(*v) {
                draft
                    .edit
                    .add
                    .entry(key.clone())
                    .or_default()
                    .push((*rec).clone());
                draft.out.added.push((*v).clone());
                draft.new_owned.insert((*v).clone());
            } else if self.owned.contains(*v) || self.others_claim(v) {
                draft.new_owned.insert((*v).clone());
                if self.tracks() && !self.claimants(v).contains(label) {
                    // Claimed by another instance: this one's name goes on it too.
                    draft.edit.claimants.insert((*v).clone(), self.with_me(v));
                }
            } else if let Some(k) = self
                .claim_keys
                .get(*v)
                .filter(|k| seen.presumed.contains(*k))
            {
                // Found with its claim only presumed absent: a person's,
                // or an instance's whose claim was not read. Read the
                // claim, then the record again (in that order, as a
                // first read does, so that an instance taking the value
                // out meanwhile is not mistaken for a person).
                reread.insert(k.clone());
                reread.insert(key.clone());
            } else {
                draft.out.foreign.push((*v).clone());
                if let Some(k) = self.claim_keys.get(*v) {
                    // A person's because nobody claims it: the write
                    // applies only if nobody claimed it since.
                    draft.edit.guard.insert(k.clone());
                }
            }
        }
    }

    /// The values this instance owns at `key`, which holds `current`: kept
    /// while desired, left to another instance that claims them too (without
    /// this one's claim), removed otherwise.
    fn owned_at(&self, key: &RrKey, current: &Values, draft: &mut Draft) {
        for v in current.iter().filter(|v| self.owned.contains(*v)) {
            let keep = !self.intent.leaving && self.desired.contains_key(v);
            if keep {
                draft.new_owned.insert(v.clone());
            } else if self.others_claim(v) {
                draft.out.protected.push(v.clone());
                if self.tracks() {
                    draft.edit.claimants.insert(v.clone(), self.without_me(v));
                }
            } else {
                draft
                    .edit
                    .remove
                    .entry(key.clone())
                    .or_default()
                    .push(v.clone());
                draft.out.removed.push(v.clone());
            }
        }
    }

    /// Claims kept by name change in the same edit as the values: what it
    /// adds names this instance, what it removes nobody any more.
    fn claims_by_name(&self, draft: &mut Draft) {
        let mut changed = std::mem::take(&mut draft.edit.claimants);
        for v in draft
            .out
            .added
            .iter()
            .filter(|v| self.claim_keys.contains_key(*v))
        {
            changed.entry(v.clone()).or_insert_with(|| self.with_me(v));
        }
        for v in &draft.out.removed {
            changed.insert(v.clone(), BTreeSet::new());
        }
        for (v, who) in changed {
            let Some(k) = self.claim_keys.get(&v) else {
                continue;
            };
            let after = registry::claim_values(&k.name, &who);
            set_exactly(
                &mut draft.edit,
                k,
                &self.seen.values(k),
                &after,
                self.desired_ttl,
            );
        }
    }

    /// This instance's values at shared rrsets as registry lines: `want` for
    /// those it does not own yet, `drop` for those it owns and gives up.
    fn announce(&self, draft: &mut Draft) {
        for v in self.desired.keys().filter(|v| self.shared(&v.key())) {
            if self.intent.leaving {
                break;
            }
            if self.mine.owned.contains(*v) {
                draft.new_owned.insert((*v).clone());
            } else {
                draft.wants.insert((*v).clone());
            }
        }
        for v in self.owned.iter().filter(|v| self.shared(&v.key())) {
            if self.intent.leaving || !self.desired.contains_key(v) {
                draft.drops.insert(v.clone());
            }
        }
    }

    /// This instance's registry: rewritten in the same edit, so it is never
    /// out of step. Returns its values as the edit leaves them.
    fn registry(&self, draft: &mut Draft) -> anyhow::Result<Values> {
        let mut new_registry = Registry {
            owned: draft.new_owned.clone(),
            wanted: draft.wants.clone(),
            dropped: draft.drops.clone(),
            lease: None,
        };
        // The lease: kept while more than two thirds of it remain, renewed
        // otherwise; an instance that claims nothing holds none.
        if let Some(ttl) = self.intent.lease {
            let now = self.ctx.now;
            let expiry = match self.mine.lease {
                Some(t) if t > now + ttl.as_secs() * 2 / 3 && t <= now + ttl.as_secs() => t,
                _ => now + ttl.as_secs(),
            };
            new_registry.lease = Some(expiry);
        }
        let new_reg_values = new_registry.to_values(&self.ctx.registry.name)?;
        set_exactly(
            &mut draft.edit,
            &self.ctx.registry,
            &self.reg_values,
            &new_reg_values,
            self.desired_ttl,
        );
        Ok(new_reg_values)
    }

    /// TTLs: an rrset holding only this instance's values takes the configured
    /// TTL (so a changed `ttl` reaches DNS); one shared with others keeps its
    /// TTL, which is not ours alone to change; a new one gets ours. Returns
    /// an rrset to read first where only a read can tell which.
    fn ttls(&self, draft: &mut Draft, new_reg_values: &Values) -> Option<RrKey> {
        let (ctx, seen, edit) = (self.ctx, self.seen, &mut draft.edit);
        let configured: BTreeMap<RrKey, u32> = self
            .intent
            .desired
            .iter()
            .map(|r| (r.value.key(), r.ttl))
            .chain([(ctx.registry.clone(), self.desired_ttl)])
            .collect();
        for key in self.need.iter() {
            let after = will_hold(edit, seen, key);
            let all_ours = after
                .iter()
                .all(|v| draft.new_owned.contains(v) || new_reg_values.contains(v));
            let (Some(&want), false) = (configured.get(key), after.is_empty()) else {
                continue;
            };
            let now = seen.rrsets.get(key).and_then(|r| r.ttl);
            if seen.presumed.contains(key)
                && self.shared(key)
                && !ctx.ttl_per_record
                && now.is_some_and(|now| now != want)
            {
                // Whether others share the rrset (and its TTL is not ours to
                // change) only a read can tell.
                return Some(key.clone());
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
        None
    }
}

/// What the registries of other instances own, and what they announced for
/// removal: claimed too when present, never removed. A value another
/// instance announced for removal is still its own until a write takes it
/// out: one joining with it claims it too (and keeps it), rather than take
/// it for a person's.
fn owned_by_others(others: &BTreeMap<String, Registry>) -> Values {
    others
        .values()
        .flat_map(|r| r.owned.iter().chain(&r.dropped).cloned())
        .collect()
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

/// What the registries other than `label`'s own.
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
