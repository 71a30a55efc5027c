//! The Route53 operations: each reads its request, checks it as Route53 does,
//! acts on the state (already locked by the caller) and writes Route53's answer
//! document. Element names and order follow the 2013-04-01 API model
//! (botocore's `route53/2013-04-01/service-2.json`).

use axum::http::StatusCode;

use super::http::{ApiError, Reply, max_items};
use super::names::Name;
use super::values::RR_TYPES;
use super::xml::{self, Element, Writer};
use super::zone::{Action, Change, Start, Zone};
use super::{RrSet, State as ServerState};
use crate::query::Query;

/// Largest page of ListResourceRecordSets, and its default (API reference).
const MAX_RRSET_ITEMS: usize = 300;
/// Largest page of ListHostedZones and ListHostedZonesByName, and their default.
const MAX_ZONE_ITEMS: usize = 100;
/// ResourceRecord elements per batch, UPSERT counting twice ("Quotas").
const MAX_BATCH_RECORDS: usize = 1000;
/// Characters in all Value elements of a batch, UPSERT counting twice ("Quotas").
const MAX_BATCH_CHARACTERS: usize = 32_000;
/// Longest value (the RData shape's max length).
const MAX_VALUE: usize = 4000;

fn parse_document(body: &str, root: &str) -> Result<Element, ApiError> {
    let element = xml::parse(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MalformedInput",
            format!("Invalid XML ; {e}"),
        )
    })?;
    if element.name != root {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "MalformedInput",
            format!("Unexpected root element {}, expected {root}", element.name),
        ));
    }
    Ok(element)
}

/// `ChangeInfo`. A change is PENDING in the answer that submits it, as on
/// Route53; GetChange reports INSYNC once the configured delay has passed.
fn write_change_info(w: &mut Writer, state: &ServerState, id: &str, just_submitted: bool) {
    let Some(change) = state.changes.get(id) else {
        return;
    };
    let insync = !just_submitted && change.submitted.elapsed() >= state.insync_after;
    w.open("ChangeInfo")
        .leaf("Id", format!("/change/{id}"))
        .leaf("Status", if insync { "INSYNC" } else { "PENDING" })
        .leaf(
            "SubmittedAt",
            humantime::format_rfc3339_millis(change.submitted_at).to_string(),
        );
    if let Some(comment) = &change.comment {
        w.leaf("Comment", comment);
    }
    w.close("ChangeInfo");
}

fn write_hosted_zone(w: &mut Writer, zone: &Zone) {
    w.open("HostedZone")
        .leaf("Id", format!("/hostedzone/{}", zone.id))
        .leaf("Name", zone.name.to_string())
        .leaf("CallerReference", &zone.caller_reference)
        .open("Config");
    if let Some(comment) = &zone.comment {
        w.leaf("Comment", comment);
    }
    w.leaf("PrivateZone", zone.private.to_string())
        .close("Config")
        .leaf("ResourceRecordSetCount", zone.count().to_string())
        .close("HostedZone");
}

fn write_delegation_set(w: &mut Writer, zone: &Zone) {
    if zone.private {
        return;
    }
    w.open("DelegationSet").open("NameServers");
    for ns in &zone.name_servers {
        w.leaf("NameServer", ns);
    }
    w.close("NameServers").close("DelegationSet");
}

fn write_rrset(w: &mut Writer, set: &RrSet) {
    w.open("ResourceRecordSet")
        .leaf("Name", &set.name)
        .leaf("Type", &set.rtype);
    if let Some(id) = &set.set_identifier {
        w.leaf("SetIdentifier", id);
    }
    if let Some(weight) = set.weight {
        w.leaf("Weight", weight.to_string());
    }
    if let Some(multivalue) = set.multivalue_answer {
        w.leaf("MultiValueAnswer", multivalue.to_string());
    }
    w.leaf("TTL", set.ttl.to_string()).open("ResourceRecords");
    for value in &set.records {
        w.open("ResourceRecord")
            .leaf("Value", value)
            .close("ResourceRecord");
    }
    w.close("ResourceRecords").close("ResourceRecordSet");
}

// ---------------------------------------------------------------- hosted zones

pub(crate) fn create_hosted_zone(state: &mut ServerState, body: &str) -> Reply {
    let root = parse_document(body, "CreateHostedZoneRequest")?;
    let name_text = root
        .text_of("Name")
        .ok_or_else(|| ApiError::validation("null", "name", "Member must not be null"))?;
    let caller_reference = root.text_of("CallerReference").ok_or_else(|| {
        ApiError::validation("null", "callerReference", "Member must not be null")
    })?;
    if caller_reference.is_empty() || caller_reference.chars().count() > 128 {
        return Err(ApiError::validation(
            &caller_reference,
            "callerReference",
            "Member must have length between 1 and 128",
        ));
    }
    for unsupported in ["DelegationSetId"] {
        if root.child(unsupported).is_some() {
            return Err(unsupported_element(unsupported));
        }
    }
    let config = root.child("HostedZoneConfig");
    let comment = config.and_then(|c| c.text_of("Comment"));
    if comment.as_ref().is_some_and(|c| c.chars().count() > 256) {
        return Err(ApiError::validation(
            "…",
            "hostedZoneConfig.comment",
            "Member must have length less than or equal to 256",
        ));
    }
    let private = config
        .and_then(|c| c.text_of("PrivateZone"))
        .is_some_and(|p| p == "true");
    if private && root.child("VPC").is_none() {
        return Err(ApiError::invalid_input(
            "When you're creating a private hosted zone (when you specify true for PrivateZone), you must also specify values for VPCId and VPCRegion.",
        ));
    }
    let name = Name::parse(&name_text).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidDomainName",
            e.message(&name_text),
        )
    })?;
    if name == Name::parse(".").unwrap_or_else(|_| unreachable!()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidDomainName",
            format!("{name_text} is reserved by AWS!"),
        ));
    }
    if state
        .zones
        .iter()
        .any(|z| z.caller_reference == caller_reference)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "HostedZoneAlreadyExists",
            format!(
                "A hosted zone has already been created with the specified caller reference: {caller_reference}"
            ),
        ));
    }
    let (id, change) = state.create_zone(name, caller_reference, comment, private);
    let zone = state.zone(&id).ok_or_else(|| ApiError::no_such_zone(&id))?;
    let mut w = Writer::new("CreateHostedZoneResponse");
    write_hosted_zone(&mut w, zone);
    write_change_info(&mut w, state, &change, true);
    write_delegation_set(&mut w, zone);
    Ok((
        StatusCode::CREATED,
        w.finish("CreateHostedZoneResponse"),
        Some(format!("/2013-04-01/hostedzone/{id}")),
    ))
}

pub(crate) fn get_hosted_zone(state: &ServerState, id: &str) -> Reply {
    check_zone_id(id)?;
    let zone = state.zone(id).ok_or_else(|| ApiError::no_such_zone(id))?;
    let mut w = Writer::new("GetHostedZoneResponse");
    write_hosted_zone(&mut w, zone);
    write_delegation_set(&mut w, zone);
    Ok((StatusCode::OK, w.finish("GetHostedZoneResponse"), None))
}

pub(crate) fn delete_hosted_zone(state: &mut ServerState, id: &str) -> Reply {
    check_zone_id(id)?;
    let zone = state.zone(id).ok_or_else(|| ApiError::no_such_zone(id))?;
    // Only the apex SOA and NS record sets may remain.
    let required = zone
        .all()
        .iter()
        .filter(|s| s.name == zone.name.to_string() && (s.rtype == "SOA" || s.rtype == "NS"))
        .count();
    if zone.count() > required {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "HostedZoneNotEmpty",
            "The specified hosted zone contains non-required resource record sets and so cannot be deleted.",
        ));
    }
    state.zones.retain(|z| z.id != id);
    let change = state.record_change(None);
    let mut w = Writer::new("DeleteHostedZoneResponse");
    write_change_info(&mut w, state, &change, true);
    Ok((StatusCode::OK, w.finish("DeleteHostedZoneResponse"), None))
}

pub(crate) fn list_hosted_zones(state: &ServerState, query: &Query) -> Reply {
    let (max, max_text) = max_items(query, MAX_ZONE_ITEMS)?;
    let marker = query.get("marker");
    let start = match marker {
        None => 0,
        Some(m) => state
            .zones
            .iter()
            .position(|z| z.id == m)
            .ok_or_else(|| ApiError::invalid_input(format!("Invalid marker: {m}")))?,
    };
    let zones: Vec<_> = state.zones.iter().skip(start).collect();
    let mut w = Writer::new("ListHostedZonesResponse");
    w.open("HostedZones");
    for zone in zones.iter().take(max) {
        write_hosted_zone(&mut w, zone);
    }
    w.close("HostedZones").leaf("Marker", marker.unwrap_or(""));
    w.leaf("IsTruncated", (zones.len() > max).to_string());
    if let Some(next) = zones.get(max) {
        w.leaf("NextMarker", &next.id);
    }
    w.leaf("MaxItems", max_text);
    Ok((StatusCode::OK, w.finish("ListHostedZonesResponse"), None))
}

pub(crate) fn list_hosted_zones_by_name(state: &ServerState, query: &Query) -> Reply {
    let (max, max_text) = max_items(query, MAX_ZONE_ITEMS)?;
    let dns_name = query.get("dnsname").filter(|d| !d.is_empty());
    let zone_id = query.get("hostedzoneid").filter(|d| !d.is_empty());
    if zone_id.is_some() && dns_name.is_none() {
        return Err(ApiError::invalid_input(
            "If you specify hostedzoneid, you must also specify dnsname.",
        ));
    }
    let start = match dns_name {
        None => None,
        Some(d) => Some(
            Name::parse(d)
                .map_err(|e| {
                    ApiError::new(StatusCode::BAD_REQUEST, "InvalidDomainName", e.message(d))
                })?
                .zone_sort_key(),
        ),
    };
    let mut zones: Vec<_> = state
        .zones
        .iter()
        .map(|z| ((z.name.zone_sort_key(), z.id.clone()), z))
        .collect();
    zones.sort_by(|a, b| a.0.cmp(&b.0));
    let from = start.map(|s| (s, zone_id.unwrap_or("").to_owned()));
    let zones: Vec<_> = zones
        .into_iter()
        .filter(|(k, _)| from.as_ref().is_none_or(|f| k >= f))
        .map(|(_, z)| z)
        .collect();
    let mut w = Writer::new("ListHostedZonesByNameResponse");
    w.open("HostedZones");
    for zone in zones.iter().take(max) {
        write_hosted_zone(&mut w, zone);
    }
    w.close("HostedZones");
    if let Some(d) = dns_name {
        w.leaf("DNSName", d);
    }
    if let Some(id) = zone_id {
        w.leaf("HostedZoneId", id);
    }
    w.leaf("IsTruncated", (zones.len() > max).to_string());
    if let Some(next) = zones.get(max) {
        w.leaf("NextDNSName", next.name.to_string())
            .leaf("NextHostedZoneId", &next.id);
    }
    w.leaf("MaxItems", max_text);
    Ok((
        StatusCode::OK,
        w.finish("ListHostedZonesByNameResponse"),
        None,
    ))
}

fn check_zone_id(id: &str) -> Result<(), ApiError> {
    if id.chars().count() > 32 {
        return Err(ApiError::validation(
            id,
            "hostedZoneId",
            "Member must have length less than or equal to 32",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- record sets

pub(crate) fn list_resource_record_sets(state: &ServerState, id: &str, query: &Query) -> Reply {
    check_zone_id(id)?;
    let zone = state.zone(id).ok_or_else(|| ApiError::no_such_zone(id))?;
    let (max, max_text) = max_items(query, MAX_RRSET_ITEMS)?;
    let name = query.get("name");
    let rtype = query.get("type");
    let identifier = query.get("identifier");
    if let Some(t) = rtype
        && !RR_TYPES.contains(&t)
    {
        return Err(ApiError::validation(
            t,
            "type",
            &format!(
                "Member must satisfy enum value set: [{}]",
                RR_TYPES.join(", ")
            ),
        ));
    }
    let start = match (name, rtype, identifier) {
        (None, None, None) => None,
        (None, Some(_), _) => {
            return Err(ApiError::invalid_input(
                "The input is not valid: a type requires a name (StartRecordType requires StartRecordName).",
            ));
        }
        (_, None, Some(_)) => {
            return Err(ApiError::invalid_input(
                "The input is not valid: an identifier requires a name and a type (StartRecordIdentifier requires StartRecordName and StartRecordType).",
            ));
        }
        (Some(n), t, i) => Some(Start {
            name: Name::parse(n).map_err(|e| ApiError::invalid_input(e.message(n)))?,
            rtype: t.map(str::to_owned),
            set_id: i.map(str::to_owned),
        }),
    };
    let page = zone.list(start.as_ref(), max);
    let mut w = Writer::new("ListResourceRecordSetsResponse");
    w.open("ResourceRecordSets");
    for set in &page.sets {
        write_rrset(&mut w, set);
    }
    w.close("ResourceRecordSets")
        .leaf("IsTruncated", page.next.is_some().to_string());
    if let Some((name, rtype, identifier)) = &page.next {
        w.leaf("NextRecordName", name).leaf("NextRecordType", rtype);
        if let Some(identifier) = identifier {
            w.leaf("NextRecordIdentifier", identifier);
        }
    }
    w.leaf("MaxItems", max_text);
    Ok((
        StatusCode::OK,
        w.finish("ListResourceRecordSetsResponse"),
        None,
    ))
}

fn unsupported_element(element: &str) -> ApiError {
    ApiError::invalid_input(format!(
        "Invalid request: {element} is not supported by the testkit Route53 stand-in (simple, weighted and multivalue answer record sets only)"
    ))
}

/// `[Action=CREATE, Name=…, Type=A, SetIdentifier=null]`, as Route53 quotes a change.
fn describe(action: &str, name: &str, rtype: &str, set_id: Option<&str>) -> String {
    format!(
        "[Action={action}, Name={name}, Type={rtype}, SetIdentifier={}]",
        set_id.unwrap_or("null")
    )
}

/// Reads and shape-checks the batch (InvalidInput stops at the first problem;
/// bad names are InvalidChangeBatch, all reported). Returns the changes and Comment.
/// What a change batch takes from the change-throughput bucket: one per
/// `Change`, `upsert_cost` per UPSERT; 0 for a body that is no change batch
/// (it fails validation later). Actions are matched as Route53 spells them.
pub(crate) fn change_cost(body: &str, upsert_cost: f64) -> f64 {
    let Ok(root) = xml::parse(body) else {
        return 0.0;
    };
    root.child("ChangeBatch")
        .and_then(|batch| batch.child("Changes"))
        .map_or(0.0, |changes| {
            changes
                .all("Change")
                .map(|change| match change.text_of("Action").as_deref() {
                    Some("UPSERT") => upsert_cost,
                    _ => 1.0,
                })
                .sum()
        })
}

fn parse_batch(body: &str) -> Result<(Vec<Change>, Option<String>), ApiError> {
    let root = parse_document(body, "ChangeResourceRecordSetsRequest")?;
    let batch = root
        .child("ChangeBatch")
        .ok_or_else(|| ApiError::validation("null", "changeBatch", "Member must not be null"))?;
    let comment = batch.text_of("Comment");
    if comment.as_ref().is_some_and(|c| c.chars().count() > 256) {
        return Err(ApiError::validation(
            "…",
            "changeBatch.comment",
            "Member must have length less than or equal to 256",
        ));
    }
    let changes = batch.child("Changes").ok_or_else(|| {
        ApiError::validation("null", "changeBatch.changes", "Member must not be null")
    })?;
    let items: Vec<&Element> = changes.all("Change").collect();
    if items.is_empty() {
        return Err(ApiError::validation(
            "[]",
            "changeBatch.changes",
            "Member must have length greater than or equal to 1",
        ));
    }
    let mut parsed = Vec::new();
    let mut name_problems = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("changeBatch.changes.{}.member", i + 1);
        let action_text = item.text_of("Action").ok_or_else(|| {
            ApiError::validation("null", &format!("{at}.action"), "Member must not be null")
        })?;
        let action = match action_text.as_str() {
            "CREATE" => Action::Create,
            "DELETE" => Action::Delete,
            "UPSERT" => Action::Upsert,
            other => {
                return Err(ApiError::validation(
                    other,
                    &format!("{at}.action"),
                    "Member must satisfy enum value set: [CREATE, DELETE, UPSERT]",
                ));
            }
        };
        let set = item.child("ResourceRecordSet").ok_or_else(|| {
            ApiError::validation(
                "null",
                &format!("{at}.resourceRecordSet"),
                "Member must not be null",
            )
        })?;
        let at = format!("{at}.resourceRecordSet");
        let name_text = set.text_of("Name").ok_or_else(|| {
            ApiError::validation("null", &format!("{at}.name"), "Member must not be null")
        })?;
        let rtype = set.text_of("Type").ok_or_else(|| {
            ApiError::validation("null", &format!("{at}.type"), "Member must not be null")
        })?;
        if !RR_TYPES.contains(&rtype.as_str()) {
            return Err(ApiError::validation(
                &rtype,
                &format!("{at}.type"),
                &format!(
                    "Member must satisfy enum value set: [{}]",
                    RR_TYPES.join(", ")
                ),
            ));
        }
        for unsupported in [
            "AliasTarget",
            "Region",
            "GeoLocation",
            "Failover",
            "HealthCheckId",
            "TrafficPolicyInstanceId",
            "CidrRoutingConfig",
            "GeoProximityLocation",
        ] {
            if set.child(unsupported).is_some() {
                return Err(unsupported_element(unsupported));
            }
        }
        let set_id = set.text_of("SetIdentifier");
        if let Some(id) = &set_id
            && (id.is_empty() || id.chars().count() > 128)
        {
            return Err(ApiError::validation(
                id,
                &format!("{at}.setIdentifier"),
                "Member must have length between 1 and 128",
            ));
        }
        let weight = match set.text_of("Weight") {
            None => None,
            Some(w) => match w.parse::<u64>() {
                Ok(n) if n <= 255 => Some(n),
                Ok(_) => {
                    return Err(ApiError::validation(
                        &w,
                        &format!("{at}.weight"),
                        "Member must have value less than or equal to 255",
                    ));
                }
                Err(_) => {
                    return Err(ApiError::validation(
                        &w,
                        &format!("{at}.weight"),
                        "Member must have value greater than or equal to 0",
                    ));
                }
            },
        };
        let multivalue = match set.text_of("MultiValueAnswer").as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return Err(ApiError::invalid_input(format!(
                    "Invalid request: MultiValueAnswer must be true or false, not '{other}'"
                )));
            }
        };
        let described = describe(&action_text, &name_text, &rtype, set_id.as_deref());
        let routing = usize::from(weight.is_some()) + usize::from(multivalue.is_some());
        let policies = "[Weight, Region, Failover, GeoLocation, MultiValueAnswer, GeoProximityLocation, or CidrRoutingConfig]";
        if routing > 1 {
            return Err(ApiError::invalid_input(format!(
                "Invalid request: Expected exactly one of {policies}, but found more than one in Change with {described}"
            )));
        }
        if set_id.is_some() && routing == 0 {
            return Err(ApiError::invalid_input(format!(
                "Invalid request: Expected exactly one of {policies}, but found none in Change with {described}"
            )));
        }
        if set_id.is_none() && routing == 1 {
            return Err(ApiError::invalid_input(format!(
                "Invalid request: Missing field 'SetIdentifier' in Change with {described}"
            )));
        }
        let ttl = match set.text_of("TTL") {
            None => None,
            Some(t) => match t.parse::<i64>() {
                Ok(n) if n < 0 => {
                    return Err(ApiError::validation(
                        &t,
                        &format!("{at}.tTL"),
                        "Member must have value greater than or equal to 0",
                    ));
                }
                Ok(n) => Some(
                    u32::try_from(n)
                        .ok()
                        .filter(|n| *n <= 2_147_483_647)
                        .ok_or_else(|| {
                            ApiError::validation(
                                &t,
                                &format!("{at}.tTL"),
                                "Member must have value less than or equal to 2147483647",
                            )
                        })?,
                ),
                Err(_) => {
                    return Err(ApiError::invalid_input(format!(
                        "Invalid request: TTL must be a whole number, not '{t}'"
                    )));
                }
            },
        };
        let records = match set.child("ResourceRecords") {
            None => None,
            Some(list) => {
                let mut values = Vec::new();
                for record in list.all("ResourceRecord") {
                    let value = record
                        .child("Value")
                        .map(|v| v.text.clone())
                        .ok_or_else(|| {
                            ApiError::validation(
                                "null",
                                &format!("{at}.resourceRecords.member.value"),
                                "Member must not be null",
                            )
                        })?;
                    if value.chars().count() > MAX_VALUE {
                        return Err(ApiError::validation(
                            "…",
                            &format!("{at}.resourceRecords.member.value"),
                            "Member must have length less than or equal to 4000",
                        ));
                    }
                    values.push(value);
                }
                if values.is_empty() {
                    return Err(ApiError::validation(
                        "[]",
                        &format!("{at}.resourceRecords"),
                        "Member must have length greater than or equal to 1",
                    ));
                }
                Some(values)
            }
        };
        let (Some(ttl), Some(records)) = (ttl, records) else {
            return Err(ApiError::invalid_input(format!(
                "Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found none in Change with {described}"
            )));
        };
        let name = match Name::parse(&name_text) {
            Ok(name) => name,
            Err(e) => {
                name_problems.push(e.message(&name_text));
                continue;
            }
        };
        let set = RrSet {
            name: name.to_string(),
            rtype,
            ttl,
            set_identifier: set_id,
            multivalue_answer: multivalue,
            weight,
            records,
        };
        parsed.push(Change { action, name, set });
    }
    if !name_problems.is_empty() {
        return Err(ApiError::invalid_change_batch(&name_problems));
    }
    Ok((parsed, comment))
}

pub(crate) fn change_resource_record_sets(state: &mut ServerState, id: &str, body: &str) -> Reply {
    check_zone_id(id)?;
    if state.zone(id).is_none() {
        return Err(ApiError::no_such_zone(id));
    }
    let (changes, comment) = parse_batch(body)?;
    let weight = |c: &Change| if c.action == Action::Upsert { 2 } else { 1 };
    let records: usize = changes
        .iter()
        .map(|c| weight(c) * c.set.records.len())
        .sum();
    let characters: usize = changes
        .iter()
        .map(|c| {
            weight(c)
                * c.set
                    .records
                    .iter()
                    .map(|v| v.chars().count())
                    .sum::<usize>()
        })
        .sum();
    let mut limits = Vec::new();
    if records > MAX_BATCH_RECORDS {
        limits.push(format!(
            "Number of records limit of {MAX_BATCH_RECORDS} exceeded."
        ));
    }
    if characters > MAX_BATCH_CHARACTERS {
        limits.push(format!(
            "RDATA character limit of {MAX_BATCH_CHARACTERS} exceeded."
        ));
    }
    if !limits.is_empty() {
        return Err(ApiError::invalid_change_batch(&limits));
    }
    let zone = state
        .zone_mut(id)
        .ok_or_else(|| ApiError::no_such_zone(id))?;
    zone.apply(&changes)
        .map_err(|problems| ApiError::invalid_change_batch(&problems))?;
    let change = state.record_change(comment);
    state.stats.applied_batches += 1;
    let names: std::collections::BTreeSet<&str> =
        changes.iter().map(|c| c.set.name.as_str()).collect();
    state.stats.most_names_in_a_batch = state.stats.most_names_in_a_batch.max(names.len());
    let mut w = Writer::new("ChangeResourceRecordSetsResponse");
    write_change_info(&mut w, state, &change, true);
    Ok((
        StatusCode::OK,
        w.finish("ChangeResourceRecordSetsResponse"),
        None,
    ))
}

pub(crate) fn get_change(state: &ServerState, id: &str) -> Reply {
    if id.chars().count() > 32 {
        return Err(ApiError::validation(
            id,
            "id",
            "Member must have length less than or equal to 32",
        ));
    }
    if !state.changes.contains_key(id) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NoSuchChange",
            format!("A change with the specified change ID does not exist: {id}"),
        ));
    }
    let mut w = Writer::new("GetChangeResponse");
    write_change_info(&mut w, state, id, false);
    Ok((StatusCode::OK, w.finish("GetChangeResponse"), None))
}
