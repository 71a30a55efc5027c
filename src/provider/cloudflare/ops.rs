//! A change as Cloudflare takes it: the edit turned into operations on
//! single records (deletes, patches, posts), sent as one batch request, or
//! as single requests where the batch endpoint is refused, and the snapshot
//! the change leaves.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::api::{Envelope, RecordJson, value_of};
use super::{Cloudflare, Held, MAX_COMMENT, Snapshot, claimants_of, comment_for};
use crate::provider::{Edit, Fail};
use crate::record::{RData, RrKey, Value};
use crate::registry;
use crate::retry::Attempts;

/// Whether a record carries a dnsreg comment (any instance's): a record
/// without one is a person's.
fn is_dnsreg(h: &Held) -> bool {
    !claimants_of(h.comment.as_deref()).is_empty()
}

/// One rrset as the operations on it are planned: its records as read,
/// whether it is a registry's, and the records already deleted, which no
/// later operation touches again.
struct AtKey<'a> {
    key: &'a RrKey,
    held: &'a [Held],
    registry: bool,
    deleted: BTreeSet<&'a str>,
}

impl Cloudflare {
    /// The JSON body of a new record holding `v`.
    fn new_record(&self, v: &Value, ttl: u32) -> Json {
        let proxiable = matches!(v.data, RData::A(_) | RData::Aaaa(_));
        let mut b = json!({
            "name": v.name.without_dot(),
            "type": v.data.rtype().as_str(),
            "ttl": ttl,
            "comment": self.owner,
        });
        if proxiable {
            b["proxied"] = json!(self.cfg.proxied);
            if self.cfg.proxied {
                // Proxied records always have the automatic TTL.
                b["ttl"] = json!(1);
            }
        }
        match &v.data {
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                b["data"] = json!({
                    "priority": priority,
                    "weight": weight,
                    "port": port,
                    "target": target.without_dot(),
                });
            }
            RData::Ptr(target) => b["content"] = json!(target.without_dot()),
            other => b["content"] = json!(other.to_string()),
        }
        b
    }

    /// Turns an edit into Cloudflare operations on single records.
    pub(super) fn plan_ops(&self, snapshot: &Snapshot, edit: &Edit) -> Result<Ops, Fail> {
        let root = registry::root(&self.zone);
        let mut ops = Ops::default();
        let none = Vec::new();
        for key in &edit.keys() {
            let mut at = AtKey {
                key,
                held: snapshot.records.get(key).unwrap_or(&none),
                registry: key.name.is_in(&root),
                deleted: BTreeSet::new(),
            };
            self.plan_removes(edit, &mut at, &mut ops);
            self.plan_claimants(edit, &mut at, &mut ops)?;
            self.plan_ttl(edit, &at, &mut ops);
            self.plan_adds(edit, &at, &mut ops);
        }
        for key in edit.guard.difference(&edit.keys()) {
            let registry = key.name.is_in(&root);
            for h in snapshot
                .records
                .get(key)
                .into_iter()
                .flatten()
                .filter(|h| is_dnsreg(h))
            {
                ops.patches.push(Op {
                    id: h.id.clone(),
                    what: format!("{key} (unchanged, checked)"),
                    registry,
                    body: json!({ "id": h.id, "comment": h.comment }),
                });
            }
        }
        Ok(ops)
    }

    /// Deletes the records holding the values `edit` removes at this rrset.
    fn plan_removes(&self, edit: &Edit, at: &mut AtKey<'_>, ops: &mut Ops) {
        let held = at.held;
        for v in edit.remove.get(at.key).into_iter().flatten() {
            // Every dnsreg record holding the value goes (the rules made
            // sure no other instance claims it any more); a record without
            // a dnsreg comment is a person's and is never deleted.
            let take: Vec<&Held> = held
                .iter()
                .filter(|h| h.value.as_ref() == Some(v) && is_dnsreg(h))
                .collect();
            if take.is_empty() {
                tracing::warn!(
                    provider = %self.api.name(),
                    "{v}: left alone, its record does not carry a dnsreg comment (made by hand or by another tool)"
                );
            }
            for h in take {
                at.deleted.insert(&h.id);
                ops.deletes.push(Op {
                    id: h.id.clone(),
                    what: v.to_string(),
                    registry: at.registry,
                    body: Json::Null,
                });
            }
        }
    }

    /// Replaces the records of the values whose claimants `edit` changes at
    /// this rrset with one naming the new claimants (none: only deleted).
    fn plan_claimants(&self, edit: &Edit, at: &mut AtKey<'_>, ops: &mut Ops) -> Result<(), Fail> {
        let held = at.held;
        // A change of claimants replaces the record (a new id), so that an
        // instance writing from memory finds out.
        for (v, who) in edit.claimants.iter().filter(|(v, _)| v.key() == *at.key) {
            let holding: Vec<&Held> = held
                .iter()
                .filter(|h| h.value.as_ref() == Some(v) && is_dnsreg(h))
                .filter(|h| !at.deleted.contains(h.id.as_str()))
                .collect();
            let Some(first) = holding.first() else {
                continue;
            };
            let comment = comment_for(who);
            if comment.len() > MAX_COMMENT {
                return Err(Fail::permanent(format!(
                    "{}: {v} is published by {} instances, more than a record's comment can name ({MAX_COMMENT} characters); it stays theirs",
                    self.what(),
                    who.len()
                )));
            }
            for h in &holding {
                at.deleted.insert(&h.id);
                ops.deletes.push(Op {
                    id: h.id.clone(),
                    what: format!(
                        "{v} (claimed by {})",
                        claimants_of(h.comment.as_deref())
                            .into_iter()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    registry: at.registry,
                    body: Json::Null,
                });
            }
            if !who.is_empty() {
                let mut body = self.new_record(v, first.ttl);
                body["comment"] = json!(comment);
                if body.get("proxied").is_some() {
                    body["proxied"] = json!(first.proxied);
                }
                ops.posts.push(Op {
                    id: String::new(),
                    what: format!(
                        "{v} (claimed by {})",
                        who.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                    registry: at.registry,
                    body,
                });
            }
        }
        Ok(())
    }

    /// Patches the TTL of this instance's records at this rrset where
    /// `edit` sets another (proxied records keep the automatic one).
    fn plan_ttl(&self, edit: &Edit, at: &AtKey<'_>, ops: &mut Ops) {
        let key = at.key;
        if let Some(&ttl) = edit.ttl.get(key) {
            for h in at.held.iter().filter(|h| {
                self.is_ours(h.comment.as_deref())
                    && h.value.is_some()
                    && !h.proxied
                    && h.ttl != ttl
                    && !at.deleted.contains(h.id.as_str())
            }) {
                ops.patches.push(Op {
                    id: h.id.clone(),
                    what: format!("{} TTL {} → {ttl}", key, h.ttl),
                    registry: at.registry,
                    body: json!({ "id": h.id, "ttl": ttl }),
                });
            }
        }
    }

    /// Posts a record for each value `edit` adds at this rrset.
    fn plan_adds(&self, edit: &Edit, at: &AtKey<'_>, ops: &mut Ops) {
        for r in edit.add.get(at.key).into_iter().flatten() {
            let ttl = edit.ttl.get(at.key).copied().unwrap_or(r.ttl);
            ops.posts.push(Op {
                id: String::new(),
                what: r.value.to_string(),
                registry: at.registry,
                body: self.new_record(&r.value, ttl),
            });
        }
    }

    /// The whole change as one batch request; the records it posted.
    pub(super) async fn write_batch(&self, ops: &Ops) -> Result<Vec<RecordJson>, Fail> {
        let mut body = serde_json::Map::new();
        let ids = |list: &[Op]| -> Json {
            list.iter()
                .map(|o| json!({ "id": o.id }))
                .collect::<Vec<_>>()
                .into()
        };
        if !ops.deletes.is_empty() {
            body.insert("deletes".into(), ids(&ops.deletes));
        }
        if !ops.patches.is_empty() {
            body.insert(
                "patches".into(),
                ops.patches.iter().map(|o| o.body.clone()).collect(),
            );
        }
        if !ops.posts.is_empty() {
            body.insert(
                "posts".into(),
                ops.posts.iter().map(|o| o.body.clone()).collect(),
            );
        }
        let body = Json::Object(body);
        #[derive(Deserialize, Default)]
        struct BatchResult {
            #[serde(default)]
            deletes: Vec<Json>,
            #[serde(default)]
            patches: Vec<Json>,
            #[serde(default)]
            posts: Vec<RecordJson>,
        }
        let env: Envelope<BatchResult> = self
            .api
            .call(
                Method::POST,
                &format!("/zones/{}/dns_records/batch", self.zone_id),
                &[],
                Some(&body),
            )
            .await?;
        // Cloudflare answers a batch with every record it deleted, patched
        // and posted; a success without them is not taken as applied.
        let done = env.result.unwrap_or_default();
        let (d, p, n) = (done.deletes.len(), done.patches.len(), done.posts.len());
        if (d, p, n) != (ops.deletes.len(), ops.patches.len(), ops.posts.len()) {
            return Err(Fail::permanent(format!(
                "the batch answer accounts for {d} deletes, {p} patches and {n} posts of the {}, {} and {} sent: not an answer Cloudflare gives (is a proxy rewriting answers?); the change may or may not have been applied, and the next run reads the zone again",
                ops.deletes.len(),
                ops.patches.len(),
                ops.posts.len()
            )));
        }
        Ok(done.posts)
    }

    /// The change as single requests, ordered so that the registry always
    /// covers what is published: registry additions first, then new values,
    /// TTLs, removed values, and registry removals last. Each request waits
    /// its turn at the pacer and is tried until it goes through.
    pub(super) async fn write_singles(&self, ops: &Ops) -> Result<Vec<RecordJson>, Fail> {
        let path = format!("/zones/{}/dns_records", self.zone_id);
        let mut steps: Vec<(Method, String, Option<&Json>, &Op)> = Vec::new();
        for registry_first in [true, false] {
            for o in ops.posts.iter().filter(|o| o.registry == registry_first) {
                steps.push((Method::POST, path.clone(), Some(&o.body), o));
            }
        }
        for o in &ops.patches {
            steps.push((Method::PATCH, format!("{path}/{}", o.id), Some(&o.body), o));
        }
        for registry_last in [false, true] {
            for o in ops.deletes.iter().filter(|o| o.registry == registry_last) {
                steps.push((Method::DELETE, format!("{path}/{}", o.id), None, o));
            }
        }
        let total = steps.len();
        let mut conflicts = Vec::new();
        let mut posted = Vec::new();
        let mut tries = Attempts::new(self.api.name(), Duration::from_secs(600));
        for (done, (method, p, body, op)) in steps.into_iter().enumerate() {
            let verb = match method {
                Method::POST => "adding",
                Method::PATCH => "changing",
                _ => "deleting",
            };
            let doing = format!(
                "{verb} {} (single request {} of {total}; the earlier ones were applied, the change is partial: run the command again)",
                op.what,
                done + 1
            );
            let got = loop {
                match self.api.call::<Json>(method.clone(), &p, &[], body).await {
                    Ok(env) => break Some(env),
                    // Already gone, or already there: another writer got there
                    // first. Go on, then read again so that `apply` sees it.
                    Err(Fail::Conflict(m)) => {
                        conflicts.push(format!("{verb} {}: {m}", op.what));
                        break None;
                    }
                    Err(e) => tries
                        .after(&doing, self.fail(&doing, e))
                        .await
                        .map_err(Fail::Permanent)?,
                }
            };
            if let Some(env) = got
                && method == Method::POST
                && let Some(r) = env.result
                && let Ok(r) = serde_json::from_value::<RecordJson>(r)
            {
                posted.push(r);
            }
        }
        if conflicts.is_empty() {
            Ok(posted)
        } else {
            Err(Fail::Conflict(conflicts.join("; ")))
        }
    }

    /// `snapshot` with `ops` applied and the records Cloudflare posted.
    pub(super) fn after(
        &self,
        snapshot: &Snapshot,
        ops: &Ops,
        posted: Vec<RecordJson>,
    ) -> Snapshot {
        let mut after = snapshot.clone();
        let gone: BTreeSet<&str> = ops.deletes.iter().map(|o| o.id.as_str()).collect();
        for held in after.records.values_mut() {
            held.retain(|h| !gone.contains(h.id.as_str()));
            for h in held.iter_mut() {
                if let Some(p) = ops.patches.iter().find(|o| o.id == h.id)
                    && let Some(ttl) = p.body.get("ttl").and_then(Json::as_u64)
                {
                    h.ttl = u32::try_from(ttl).unwrap_or(h.ttl);
                }
            }
        }
        for r in posted {
            let Some(v) = value_of(&r) else { continue };
            after.records.entry(v.key()).or_default().push(Held {
                value: Some(v),
                id: r.id,
                ttl: r.ttl,
                proxied: r.proxied,
                comment: r.comment,
            });
        }
        after
    }
}

/// One operation on one record.
#[derive(Debug)]
pub(super) struct Op {
    /// The record's id (deletes, patches).
    id: String,
    /// For messages.
    what: String,
    /// On a registry record.
    registry: bool,
    body: Json,
}

#[derive(Debug, Default)]
pub(super) struct Ops {
    deletes: Vec<Op>,
    patches: Vec<Op>,
    posts: Vec<Op>,
}

impl Ops {
    pub(super) fn len(&self) -> usize {
        self.deletes.len() + self.patches.len() + self.posts.len()
    }
}
