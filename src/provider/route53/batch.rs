//! The change batch: what one write sends to ChangeResourceRecordSets (a
//! DELETE of each rrset exactly as read and a CREATE of what it becomes),
//! within Route53's quotas, and what Route53's answer to it means.

use std::collections::BTreeSet;

use aws_sdk_route53::config::http::HttpResponse;
use aws_sdk_route53::error::SdkError;
use aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsError;
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch};

use super::api::{classify, is_conflict, plausible_change_id};
use super::{Held, Route53, Snapshot, Stored};
use crate::provider::{Edit, Fail};
use crate::record::{RData, RrKey, Value};

/// ResourceRecord elements one change batch may carry, a DELETE and a CREATE
/// each counting ("Quotas" in the Route53 Developer Guide).
pub(super) const MAX_BATCH_RECORDS: usize = 1000;
/// Characters in all Value elements of one change batch ("Quotas").
pub(super) const MAX_BATCH_CHARACTERS: usize = 32_000;

/// A batch as it is built: its changes, and the records and the characters
/// of their values that Route53's quotas count.
#[derive(Default)]
struct Tally {
    changes: Vec<Change>,
    records: usize,
    characters: usize,
}

impl Tally {
    /// Adds a change (`action`, DELETE or CREATE) of the rrset `rs` at
    /// `key`, and counts its records.
    fn push(&mut self, action: ChangeAction, key: &RrKey, rs: &Stored) -> Result<(), Fail> {
        self.records += rs.records.len();
        self.characters += rs.records.iter().map(String::len).sum::<usize>();
        self.changes.push(
            Change::builder()
                .action(action)
                .resource_record_set(rs.to_sdk(key)?)
                .build()
                .map_err(|e| Fail::Permanent(e.into()))?,
        );
        Ok(())
    }
}

impl Route53 {
    /// The batch for `edit` against `snapshot`, and the snapshot it leaves.
    pub(super) fn batch(
        &self,
        snapshot: &Snapshot,
        edit: &Edit,
    ) -> Result<(Vec<Change>, Snapshot), Fail> {
        let mut tally = Tally::default();
        let mut after = snapshot.clone();
        let touched = edit.keys();
        for key in touched.iter().chain(edit.guard.difference(&touched)) {
            let current = snapshot.rrsets.get(key).and_then(|h| h.rrset.clone());
            let new = self.rewritten(key, current.as_ref(), edit);
            if let Some(rs) = &current {
                tally.push(ChangeAction::Delete, key, rs)?;
            }
            if let Some(rs) = &new {
                tally.push(ChangeAction::Create, key, rs)?;
            }
            after.rrsets.insert(
                key.clone(),
                Held {
                    rrset: new,
                    presumed: false,
                },
            );
        }
        if tally.records > MAX_BATCH_RECORDS || tally.characters > MAX_BATCH_CHARACTERS {
            return Err(self.too_large(&touched, &after, &tally));
        }
        Ok((tally.changes, after))
    }

    /// The rrset at `key` once `edit` is applied to `current` (as read), or
    /// `None` when no record is left in it.
    fn rewritten(&self, key: &RrKey, current: Option<&Stored>, edit: &Edit) -> Option<Stored> {
        let remove: Vec<&Value> = edit
            .remove
            .get(key)
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        let add = edit.add.get(key).cloned().unwrap_or_default();
        // Keep every record we do not remove exactly as Route53 wrote it.
        let mut records: Vec<String> = current
            .map(|rs| {
                rs.records
                    .iter()
                    .filter(|r| {
                        !RData::parse(key.rtype, r)
                            .is_some_and(|d| remove.iter().any(|v| v.data == d))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        records.extend(add.iter().map(|r| r.value.data.to_string()));
        let ttl = edit
            .ttl
            .get(key)
            .copied()
            .map_or_else(|| current.map_or(60, |rs| rs.ttl), i64::from);
        (!records.is_empty()).then(|| Stored {
            ttl,
            records,
            set_identifier: self.set_identifier(key),
            multi_value_answer: self.set_identifier(key).map(|_| true),
        })
    }

    /// Why a batch past Route53's quotas is not sent: the rrset it rewrites
    /// whole that holds the most records, the batch's size, and what to do.
    fn too_large(&self, touched: &BTreeSet<RrKey>, after: &Snapshot, tally: &Tally) -> Fail {
        let (records_in_batch, characters) = (tally.records, tally.characters);
        let biggest = touched
            .iter()
            .max_by_key(|k| {
                after
                    .rrsets
                    .get(*k)
                    .and_then(|h| h.rrset.as_ref())
                    .map_or(0, |r| r.records.len())
            })
            .map(ToString::to_string)
            .unwrap_or_default();
        Fail::permanent(format!(
            "{}: this change rewrites {biggest} whole, {records_in_batch} records ({characters} characters) in one batch, more than Route53 takes ({MAX_BATCH_RECORDS} records, {MAX_BATCH_CHARACTERS} characters); a shared rrset this large cannot be changed atomically: use routing = \"multivalue\" (one rrset per instance) for a fleet this size",
            self.what()
        ))
    }

    /// Sends `changes` (the batch for `edit`) as one ChangeResourceRecordSets
    /// request once the pacer allows it, and tells the pacer and the metrics
    /// how it went: the id of the change to confirm, if it has one worth
    /// asking about. `presumed`: the batch rests on a snapshot presumed from
    /// memory, so that any refusal of it is a conflict.
    pub(super) async fn send_batch(
        &self,
        changes: Vec<Change>,
        edit: &Edit,
        presumed: bool,
    ) -> Result<Option<String>, Fail> {
        let batch = ChangeBatch::builder()
            .comment(format!("dnsreg {}", self.instance_id))
            .set_changes(Some(changes))
            .build()
            .map_err(|e| Fail::Permanent(e.into()))?;
        tracing::debug!(provider = %self.api.name, "change batch:\n{edit}");
        self.api.pacer.ready().await;
        let result = self
            .api
            .client
            .change_resource_record_sets()
            .hosted_zone_id(&self.zone_id)
            .change_batch(batch)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                let fail = self.refusal(&e, presumed);
                self.api.tell_pacer(&fail);
                self.api.count("ChangeResourceRecordSets", Some(&fail));
                return Err(match fail {
                    f @ (Fail::Permanent(_) | Fail::Denied(_)) => {
                        f.context(format!("{}: changing records", self.what()))
                    }
                    other => other,
                });
            }
        };
        self.api.pacer.ok();
        self.api.count("ChangeResourceRecordSets", None);
        // A change that only checked (guards) has nothing to make live.
        let change = out
            .change_info()
            .map(|c| c.id().trim_start_matches("/change/").to_string())
            .filter(|id| !id.is_empty() && !edit.keys().is_empty());
        let change = match change {
            Some(id) if !plausible_change_id(&id) => {
                tracing::warn!(
                    provider = %self.api.name,
                    "the change was accepted with the id {:?}, which is not one Route53 gives (is a proxy rewriting answers?); it is not asked about",
                    id.chars().take(60).collect::<String>()
                );
                None
            }
            other => other,
        };
        Ok(change)
    }

    /// What a refused batch means: InvalidChangeBatch is a conflict where
    /// the zone changed under us or the batch rests on a presumed snapshot,
    /// else a batch Route53 will never take; any other failure is classified
    /// as for every request.
    fn refusal(
        &self,
        e: &SdkError<ChangeResourceRecordSetsError, HttpResponse>,
        presumed: bool,
    ) -> Fail {
        if let SdkError::ServiceError(se) = e
            && let ChangeResourceRecordSetsError::InvalidChangeBatch(icb) = se.err()
        {
            let mut messages: Vec<String> = icb.messages().to_vec();
            messages.extend(icb.message().map(str::to_string));
            let text = messages.join("; ");
            // A presumed snapshot that was wrong in any way (someone
            // changed this instance's rrsets, or a name is kept in a
            // way dnsreg cannot share): read, and decide again.
            if presumed || messages.iter().any(|m| is_conflict(m)) {
                Fail::Conflict(text)
            } else {
                Fail::permanent(format!("{}: InvalidChangeBatch: {text}", self.what()))
            }
        } else {
            classify(e)
        }
    }
}
