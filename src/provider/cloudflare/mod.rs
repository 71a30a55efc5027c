//! Cloudflare, through its v4 REST API (reqwest + serde).
//!
//! On Cloudflare each value is its own record, so instances
//! sharing a name never rewrite each other's records: joining adds records,
//! leaving deletes records by id. A record's comment names the instances that
//! claim it, `dnsreg:<instance>[,<instance>…]`: one, or more when instances
//! publish the same value (an address released by one and given to another).
//! Cloudflare refuses two identical records, so a value is one record, and
//! whoever joins or leaves a claim replaces that record with one naming the
//! new claimants: an instance that writes from memory (by id) finds out by the
//! refusal. A record without a dnsreg comment is a person's and is never
//! changed or deleted, whatever value it holds.
//!
//! One join or leave is one request to the batch endpoint, which Cloudflare runs
//! in one database transaction, all or nothing, deletes first, then patches,
//! puts, posts ("Batch DNS Records", `POST /zones/{zone_id}/dns_records/batch`).
//! When the endpoint is refused the change is sent as single requests instead,
//! and the log says that it was not atomic.
//!
//! The zone id is looked up once in an instance's life (kept in the state
//! file), and a join or leave is written against the records this instance's
//! last change left (their ids, kept there too) without reading first: a record
//! that is gone, or an identical one that exists, makes Cloudflare refuse the
//! whole batch, and only then is the zone read.
//!
//! Auth is an API token (Bearer) from `token_file` or `CLOUDFLARE_API_TOKEN`; it
//! is sent as a sensitive header and never appears in a message. Every call is
//! one attempt; a 429 holds every request of the process back for its
//! Retry-After (Cloudflare blocks the token for the rest of its window, so a
//! request sent earlier only extends the block).

mod api;
mod ops;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::{Connect, Edit, Fail, KnownZone, Provider, Values, Written};
use crate::config::CloudflareConfig;
use crate::record::{DomainName, RType, RrKey, Value, by_key};
use crate::registry::{self, instance_label};
use crate::retry::{Backoff, Pacer};
use api::{Api, BatchRefused, RecordJson, value_of};

/// Cloudflare's API base URL.
pub const DEFAULT_ENDPOINT: &str = "https://api.cloudflare.com/client/v4";

/// The start of every comment dnsreg writes: `dnsreg:<instance>[,<instance>…]`.
const OWNER_PREFIX: &str = "dnsreg:";

/// The longest comment the Free plan takes ("Record attributes": 100
/// characters); four instance ids of 19 characters fit.
const MAX_COMMENT: usize = 100;

/// The instances a record's comment names; none for a record without a
/// dnsreg comment (a person's).
fn claimants_of(comment: Option<&str>) -> BTreeSet<String> {
    comment
        .map(str::trim)
        .and_then(|c| c.strip_prefix(OWNER_PREFIX))
        .map(|rest| {
            rest.split(',')
                .map(|l| l.trim().to_ascii_lowercase())
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The comment naming `claimants`.
fn comment_for(claimants: &BTreeSet<String>) -> String {
    format!(
        "{OWNER_PREFIX}{}",
        claimants.iter().cloned().collect::<Vec<_>>().join(",")
    )
}

/// A Cloudflare provider as configured (see [`Connect`]).
pub struct Connector {
    name: String,
    cfg: CloudflareConfig,
    /// This instance's label, as comments name it.
    label: String,
    pacer: Arc<Pacer>,
}

/// A zone found, and the API to reach it.
pub struct Cloudflare {
    api: Api,
    cfg: CloudflareConfig,
    /// This instance's comment: `dnsreg:<instance-id>`.
    owner: String,
    /// This instance's label, as comments name it.
    label: String,
    zone_id: String,
    zone: DomainName,
    /// Set once the batch endpoint was refused: later writes go as single calls.
    batch_refused: AtomicBool,
}

/// The records read, by key.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(with = "by_key")]
    records: BTreeMap<RrKey, Vec<Held>>,
}

/// One Cloudflare record as read.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Held {
    id: String,
    /// `None` when its content is not a well-formed value (never ours).
    value: Option<Value>,
    ttl: u32,
    proxied: bool,
    comment: Option<String>,
}
impl Connector {
    pub fn new(name: &str, cfg: CloudflareConfig, instance_id: &str) -> Connector {
        // Config validation made sure the id is a label (≤ 63 characters), so
        // the comment stays well within the free plan's 100 characters.
        let label =
            instance_label(instance_id).unwrap_or_else(|_| instance_id.to_ascii_lowercase());
        Connector {
            name: name.to_string(),
            cfg,
            label,
            pacer: Arc::new(Pacer::new(Backoff::BUSY)),
        }
    }

    fn what(&self) -> String {
        format!("cloudflare `{}` (zone {})", self.name, self.cfg.zone)
    }
}

impl Connect for Connector {
    type Provider = Cloudflare;

    fn zone(&self) -> Option<&DomainName> {
        Some(&self.cfg.zone)
    }

    fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    /// Each value is a record of its own, changed on its own.
    fn leaves_in_one_request(&self) -> bool {
        true
    }

    async fn connect(&self, known: Option<&KnownZone>) -> anyhow::Result<Cloudflare> {
        let api = self.open()?;
        let zone = self.cfg.zone.clone();
        let zone_id = if let Some(id) = &self.cfg.zone_id {
            id.clone()
        } else if let Some(k) = known.filter(|k| k.name == zone) {
            tracing::debug!(provider = %self.name, zone = %zone, zone_id = %k.id, "zone known from the state file");
            k.id.clone()
        } else {
            let id = self.find_zone(&api).await?;
            tracing::debug!(provider = %self.name, zone = %zone, zone_id = %id, "connected");
            id
        };
        Ok(self.bound(api, zone_id))
    }
}

impl Connector {
    /// The provider for the zone `zone_id`, through `api`.
    fn bound(&self, api: Api, zone_id: String) -> Cloudflare {
        Cloudflare {
            api,
            cfg: self.cfg.clone(),
            owner: format!("{OWNER_PREFIX}{}", self.label),
            label: self.label.clone(),
            zone_id,
            zone: self.cfg.zone.clone(),
            batch_refused: AtomicBool::new(false),
        }
    }
}

impl Cloudflare {
    /// A provider of `cfg` that has sent nothing and never will (its API is
    /// a closed port): the fuzz tests' own, for what needs no API.
    #[cfg(test)]
    pub(crate) fn offline(name: &str, cfg: CloudflareConfig, instance_id: &str) -> Cloudflare {
        let connector = Connector::new(name, cfg, instance_id);
        let api = Api::offline(name, connector.pacer.clone());
        connector.bound(api, "0".repeat(32))
    }

    fn what(&self) -> String {
        format!(
            "cloudflare `{}` (zone {} {})",
            self.api.name(),
            self.zone,
            self.zone_id
        )
    }

    fn is_ours(&self, comment: Option<&str>) -> bool {
        claimants_of(comment).contains(&self.label)
    }
}

impl Provider for Cloudflare {
    type Snapshot = Snapshot;

    fn name(&self) -> &str {
        self.api.name()
    }

    fn zone(&self) -> &DomainName {
        &self.zone
    }

    fn known_zone(&self) -> Option<KnownZone> {
        Some(KnownZone {
            name: self.zone.clone(),
            id: self.zone_id.clone(),
        })
    }

    fn pacer(&self) -> &Pacer {
        self.api.pacer()
    }

    fn ttl_per_record(&self) -> bool {
        true
    }

    /// Each value is a record of its own: instances writing one name at once
    /// add and delete different records, and never conflict.
    fn rewrites_rrsets(&self) -> bool {
        false
    }

    /// One listing of the records whose comment names this instance, compared
    /// with what memory says of them (a read, not a write: nothing is touched).
    async fn check(
        &self,
        snapshot: &Snapshot,
        keys: &BTreeSet<RrKey>,
    ) -> Result<Option<bool>, Fail> {
        let remembered: Vec<(&RrKey, &Held)> = keys
            .iter()
            .flat_map(|k| {
                snapshot
                    .records
                    .get(k)
                    .into_iter()
                    .flatten()
                    .map(move |h| (k, h))
            })
            .collect();
        if remembered
            .iter()
            .any(|(_, h)| !self.is_ours(h.comment.as_deref()))
        {
            // A record only another instance's comment names: not in this listing.
            return Ok(None);
        }
        let got = self
            .list(
                "checking this instance's records",
                &[("comment.contains", self.label.clone())],
            )
            .await?;
        let mine: Vec<&RecordJson> = got
            .iter()
            .filter(|r| self.is_ours(r.comment.as_deref()))
            .collect();
        let same = |h: &Held, r: &RecordJson| {
            r.id == h.id && r.ttl == h.ttl && r.comment == h.comment && value_of(r) == h.value
        };
        let all_there = remembered
            .iter()
            .all(|(_, h)| mine.iter().any(|r| same(h, r)));
        let nothing_else = mine.iter().all(|r| {
            let Some(v) = value_of(r) else { return true };
            !keys.contains(&v.key()) || remembered.iter().any(|(_, h)| same(h, r))
        });
        Ok(Some(all_there && nothing_else))
    }
    async fn read(&self, keys: &BTreeSet<RrKey>) -> Result<Snapshot, Fail> {
        let mut records = BTreeMap::new();
        for key in keys {
            let got = self
                .list(
                    &format!("reading {key}"),
                    &[
                        ("type", key.rtype.as_str().to_string()),
                        ("name", key.name.without_dot().to_string()),
                    ],
                )
                .await?;
            let held: Vec<Held> = got
                .into_iter()
                .filter(|r| {
                    r.name
                        .trim_end_matches('.')
                        .eq_ignore_ascii_case(key.name.without_dot())
                        && r.rtype == key.rtype.as_str()
                })
                .map(|r| Held {
                    value: value_of(&r),
                    id: r.id,
                    ttl: r.ttl,
                    proxied: r.proxied,
                    comment: r.comment,
                })
                .collect();
            records.insert(key.clone(), held);
        }
        Ok(Snapshot { records })
    }

    /// This instance's own records, and the records holding values it owns
    /// beside another instance (an address handed over), by id, as its last
    /// change left them: a record gone since makes the batch fail (81044), an
    /// identical record someone else made meanwhile too (81058), and then the
    /// zone is read.
    fn presume(
        &self,
        memory: &Snapshot,
        keys: &BTreeSet<RrKey>,
        _shared: &BTreeSet<RrKey>,
        owned: &Values,
    ) -> Option<(Snapshot, BTreeSet<RrKey>)> {
        let records = keys
            .iter()
            .map(|k| {
                let mine: Vec<Held> = memory
                    .records
                    .get(k)
                    .into_iter()
                    .flatten()
                    .filter(|h| {
                        self.is_ours(h.comment.as_deref())
                            || h.value.as_ref().is_some_and(|v| owned.contains(v))
                    })
                    .cloned()
                    .collect();
                (k.clone(), mine)
            })
            .collect();
        Some((Snapshot { records }, BTreeSet::new()))
    }

    fn claimants(&self, snapshot: &Snapshot, value: &Value) -> Option<BTreeSet<String>> {
        Some(
            snapshot
                .records
                .get(&value.key())
                .into_iter()
                .flatten()
                .filter(|h| h.value.as_ref() == Some(value))
                .flat_map(|h| claimants_of(h.comment.as_deref()))
                .collect(),
        )
    }

    fn merge(&self, snapshot: &mut Snapshot, more: Snapshot) {
        for (k, v) in more.records {
            snapshot.records.entry(k).or_insert(v);
        }
    }

    fn values(&self, snapshot: &Snapshot, key: &RrKey) -> Values {
        snapshot
            .records
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|h| h.value.clone())
            .collect()
    }

    /// Each record has its own TTL: this instance's records' TTL when it has
    /// some there, else the others'. Proxied records always have the automatic
    /// TTL, so they have none to compare.
    fn ttl(&self, snapshot: &Snapshot, key: &RrKey) -> Option<u32> {
        let held = snapshot.records.get(key)?;
        if held.iter().any(|h| h.proxied) {
            return None;
        }
        let ours = held
            .iter()
            .filter(|h| self.is_ours(h.comment.as_deref()))
            .map(|h| h.ttl)
            .min();
        ours.or_else(|| held.iter().map(|h| h.ttl).min())
    }

    async fn write(&self, snapshot: &Snapshot, edit: &Edit) -> Result<Written<Snapshot>, Fail> {
        let ops = self.plan_ops(snapshot, edit)?;
        if ops.len() == 0 {
            return Ok(Written {
                after: snapshot.clone(),
                change: None,
            });
        }
        tracing::debug!(provider = %self.api.name(), "change:\n{edit}");
        if !self.batch_refused.load(Ordering::Relaxed) {
            match self.write_batch(&ops).await {
                Ok(posted) => {
                    return Ok(Written {
                        after: self.after(snapshot, &ops, posted),
                        change: None,
                    });
                }
                Err(e) => {
                    let Some(refused) = BatchRefused::within(&e) else {
                        return Err(self.fail("changing records (one batch request)", e));
                    };
                    self.batch_refused.store(true, Ordering::Relaxed);
                    tracing::debug!(provider = %self.api.name(), "batch endpoint refused: {refused}");
                }
            }
        }
        tracing::warn!(
            provider = %self.api.name(),
            "the batch endpoint is not available: applying the change as {} single requests; it is not atomic",
            ops.len()
        );
        let posted = self.write_singles(&ops).await?;
        Ok(Written {
            after: self.after(snapshot, &ops, posted),
            change: None,
        })
    }

    async fn registries(&self) -> Result<(BTreeMap<String, Values>, Snapshot), Fail> {
        let root = registry::root(&self.zone);
        let got = self
            .list(
                "listing ownership registries",
                &[
                    ("type", "TXT".to_string()),
                    ("name.endswith", format!(".{}", root.without_dot())),
                ],
            )
            .await?;
        let mut raw: BTreeMap<String, Values> = BTreeMap::new();
        let mut snap = Snapshot::default();
        for r in got {
            let Some(v) = value_of(&r) else { continue };
            if v.data.rtype() != RType::TXT {
                continue;
            }
            let Some(label) = registry::label_of(&v.name, &self.zone) else {
                continue;
            };
            raw.entry(label).or_default().insert(v.clone());
            snap.records.entry(v.key()).or_default().push(Held {
                value: Some(v),
                id: r.id,
                ttl: r.ttl,
                proxied: r.proxied,
                comment: r.comment,
            });
        }
        Ok((raw, snap))
    }
}

#[cfg(test)]
mod tests;
