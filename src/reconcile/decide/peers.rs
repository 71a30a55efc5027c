//! Other instances' announced values carried in this instance's write: the
//! `want` lines flipped to owned as their values go in, the `drop` lines
//! taken out with theirs, each peer's registry rewritten in the same edit,
//! as many peers as the provider's batch limit allows.

use super::*;

/// One peer's share of a write that carries its announced values: its
/// registry (at `reg_key`) as it will be, its values to add and remove, and
/// the values this instance gives up that go to it instead of away.
struct Carried {
    reg_key: RrKey,
    after: Registry,
    add: Vec<Value>,
    remove: Vec<Value>,
    handed: Vec<Value>,
}

impl Rules<'_> {
    /// Carry other instances' announced values at the shared rrsets being written.
    /// And, whenever this write removes a value, the `drop` lines other
    /// instances have for it: once gone it is not theirs to remove any more
    /// (a value added again later, by a person, say, must not be).
    pub(super) fn carry_peers(&self, draft: &mut Draft) -> anyhow::Result<()> {
        let removing: Values = draft.edit.remove.values().flatten().cloned().collect();
        let carry = self.how == How::Materialise;
        if !(carry || (self.writes_shared() && !removing.is_empty())) {
            return Ok(());
        }
        let mut cost = batch_cost(&draft.edit, self.seen);
        // The rrsets the write names so far: a peer's value at another one
        // brings that rrset in whole.
        let mut counted = draft.edit.keys();
        // The peers whose registries this write rewrites.
        let mut peers = 0;
        for (label, r) in self.others.iter() {
            if peers >= MAX_PEERS_PER_WRITE
                || (carry && r.expired(self.ctx.now))
                || (!carry && !r.dropped.iter().any(|d| removing.contains(d)))
            {
                continue;
            }
            let Ok(reg_name) = registry::name(&self.ctx.zone, label) else {
                continue;
            };
            let reg_key = RrKey {
                name: reg_name,
                rtype: RType::TXT,
            };
            if !self.seen.rrsets.contains_key(&reg_key) {
                continue;
            }
            let mut peer = Carried {
                reg_key,
                after: r.clone(),
                add: Vec::new(),
                remove: Vec::new(),
                handed: Vec::new(),
            };
            if carry {
                self.flip_wanted(label, r, &mut peer, draft);
            }
            self.take_dropped(label, r, carry, &removing, &mut peer, draft);
            if peer.after == *r {
                continue;
            }
            if self.carry_within_limit(peer, &mut cost, &mut counted, draft)? {
                peers += 1;
            }
        }
        Ok(())
    }

    /// The values the peer `label` (registry `r`) wants at the shared rrsets
    /// read: flipped to owned in `peer` where this write hands them over
    /// (`peer.handed`: taken out of the removals only if the peer's share
    /// fits in the write, see [`Rules::carry_within_limit`]) or adds them
    /// (`peer.add`), or where a dnsreg instance owns them already.
    fn flip_wanted(&self, label: &str, r: &Registry, peer: &mut Carried, draft: &Draft) {
        for w in r.wanted.iter() {
            let k = w.key();
            if !self.seen.rrsets.contains_key(&k) || !self.shared(&k) || peer.add.contains(w) {
                continue;
            }
            let flip = if draft.edit.remove.get(&k).is_some_and(|l| l.contains(w)) {
                // This instance gives it up as the peer asks for it: hand it over.
                peer.handed.push(w.clone());
                true
            } else if !will_hold(&draft.edit, self.seen, &k).contains(w) {
                peer.add.push(w.clone());
                true
            } else {
                // Present: the peer's too if a dnsreg instance owns it;
                // a person's otherwise, for the peer to find out itself.
                self.mine.owned.contains(w)
                    || owned_by_others_except(self.others, label).contains(w)
            };
            if flip {
                peer.after.wanted.remove(w);
                peer.after.owned.insert(w.clone());
            }
        }
    }

    /// The values the peer `label` (registry `r`) announced for removal at
    /// the shared rrsets read (when not carrying, only those this write
    /// removes anyway): taken out in `peer.remove` unless this write leaves
    /// them out already or another instance claims them, and their `drop`
    /// lines gone from its registry either way.
    fn take_dropped(
        &self,
        label: &str,
        r: &Registry,
        carry: bool,
        removing: &Values,
        peer: &mut Carried,
        draft: &Draft,
    ) {
        for d in &r.dropped {
            let k = d.key();
            if !self.seen.rrsets.contains_key(&k) || !self.shared(&k) {
                continue;
            }
            if !carry && !removing.contains(d) {
                continue;
            }
            let claimed_elsewhere = draft.new_owned.contains(d)
                || owned_by_others_except(self.others, label).contains(d);
            if will_hold(&draft.edit, self.seen, &k).contains(d) && !claimed_elsewhere {
                peer.remove.push(d.clone());
            }
            peer.after.dropped.remove(d);
        }
    }

    /// Adds `peer`'s share to the write if `cost`, the write's cost so far,
    /// stays within the batch limit with it; `counted` holds the rrsets the
    /// write names so far. Returns whether it did. A value handed over to the
    /// peer stays only when its share is in: else the value is removed as
    /// this instance planned, never left with nobody owning it.
    fn carry_within_limit(
        &self,
        peer: Carried,
        cost: &mut Cost,
        counted: &mut BTreeSet<RrKey>,
        draft: &mut Draft,
    ) -> anyhow::Result<bool> {
        let Carried {
            reg_key,
            after,
            add,
            remove,
            handed,
        } = peer;
        let seen = self.seen;
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
        if !cost.plus(step).within(self.ctx.batch_limit) {
            return Ok(false);
        }
        *cost = cost.plus(step);
        counted.extend(brought);
        for w in &handed {
            if let Some(l) = draft.edit.remove.get_mut(&w.key()) {
                l.retain(|x| x != w);
            }
            draft.out.removed.retain(|x| x != w);
        }
        self.take_in(&reg_key, &before_values, &after_values, add, remove, draft);
        Ok(true)
    }

    /// Puts a carried peer's share into the edit: its values to add (with
    /// their rrset's TTL, ours for a new one) and to remove, and its
    /// registry at `reg_key` from `before` to `after`.
    fn take_in(
        &self,
        reg_key: &RrKey,
        before: &Values,
        after: &Values,
        add: Vec<Value>,
        remove: Vec<Value>,
        draft: &mut Draft,
    ) {
        let ttl_at = |k: &RrKey| {
            self.seen
                .rrsets
                .get(k)
                .and_then(|r| r.ttl)
                .unwrap_or(self.desired_ttl)
        };
        for w in add {
            let ttl = ttl_at(&w.key());
            draft
                .edit
                .add
                .entry(w.key())
                .or_default()
                .push(Record { value: w, ttl });
            draft.out.carried += 1;
        }
        for d in remove {
            draft.edit.remove.entry(d.key()).or_default().push(d);
            draft.out.carried += 1;
        }
        set_exactly(&mut draft.edit, reg_key, before, after, ttl_at(reg_key));
    }
}
