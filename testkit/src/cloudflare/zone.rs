//! Records of one zone: what a record is, how a request body becomes one, the
//! checks Cloudflare makes before storing it, and batches applied whole or not
//! at all.
//!
//! Validation follows "DNS record types" and "Record attributes" in the
//! Cloudflare DNS documentation and the error codes Cloudflare answers today:
//! since October 2024 a validation error is the root cause itself (`9005`,
//! `9021`, …), no longer wrapped in `1004 DNS Validation Error` with an
//! `error_chain` ("API deprecations", DNS Records: error chains).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::DnsRecord;
use super::http::ApiError;

/// The shortest TTL other than 1 (automatic) outside Enterprise plans; longest for all.
pub(crate) const TTL_MIN: u32 = 60;
pub(crate) const TTL_MAX: u32 = 86_400;

/// Longest TXT content accepted. Cloudflare's "DNS record types" page gives
/// 2,048 characters for the content of a TXT record; users report 4,080 being
/// accepted, so the stricter documented figure is kept.
pub(crate) const TXT_MAX: usize = 2048;

/// The record types the stand-in stores; others are refused.
const TYPES: &[&str] = &["A", "AAAA", "CNAME", "TXT", "MX", "SRV", "NS", "PTR"];

/// One record as stored.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub(crate) id: String,
    /// FQDN, lowercase, no trailing dot.
    pub(crate) name: String,
    pub(crate) rtype: String,
    /// As Cloudflare shows it: for MX the target alone, for SRV "weight port target".
    pub(crate) content: String,
    /// MX preference or SRV priority.
    pub(crate) priority: Option<u16>,
    /// SRV: `{priority, weight, port, target}`.
    pub(crate) data: Option<Value>,
    pub(crate) ttl: u32,
    pub(crate) proxied: bool,
    pub(crate) comment: Option<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) created_on: SystemTime,
    pub(crate) modified_on: SystemTime,
}

impl Record {
    /// The record as Cloudflare's API returns it.
    pub(crate) fn to_json(&self, zone_id: &str, zone_name: &str) -> Value {
        let mut object = json!({
            "id": self.id,
            "zone_id": zone_id,
            "zone_name": zone_name,
            "name": self.name,
            "type": self.rtype,
            "content": self.content,
            "proxiable": self.proxiable(),
            "proxied": self.proxied,
            "ttl": self.ttl,
            "settings": {},
            "meta": {},
            "comment": self.comment,
            "tags": self.tags,
            "created_on": timestamp(self.created_on),
            "modified_on": timestamp(self.modified_on),
        });
        if let Some(priority) = self.priority {
            object["priority"] = json!(priority);
        }
        if let Some(data) = &self.data {
            object["data"] = data.clone();
        }
        object
    }

    /// Whether Cloudflare could proxy this record: A, AAAA and CNAME only, and
    /// not to an address its edge cannot reach.
    pub(crate) fn proxiable(&self) -> bool {
        match self.rtype.as_str() {
            "A" | "AAAA" => self
                .content
                .parse::<IpAddr>()
                .is_ok_and(|ip| !is_private(ip)),
            "CNAME" => true,
            _ => false,
        }
    }

    /// Same name, type and value: what Cloudflare calls an identical record.
    fn identical(&self, other: &Record) -> bool {
        self.name == other.name
            && self.rtype == other.rtype
            && self.content.eq_ignore_ascii_case(&other.content)
            && self.priority == other.priority
    }

    /// The value in zone-file order (MX "pref target", SRV "prio weight port target").
    pub(crate) fn presentation(&self) -> String {
        match (self.rtype.as_str(), self.priority) {
            ("MX" | "SRV", Some(priority)) => format!("{priority} {}", self.content),
            _ => self.content.clone(),
        }
    }

    pub(crate) fn public(&self) -> DnsRecord {
        DnsRecord {
            id: self.id.clone(),
            name: self.name.clone(),
            rtype: self.rtype.clone(),
            content: self.presentation(),
            ttl: self.ttl,
            proxied: self.proxied,
            comment: self.comment.clone(),
            data: self.data.clone(),
        }
    }
}

/// RFC 3339 with microseconds, as Cloudflare writes `created_on`.
pub(crate) fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_micros(at).to_string()
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                // 100.64.0.0/10, carrier-grade NAT.
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// A 32-character lowercase hex identifier, as Cloudflare's zone and record ids.
pub(crate) fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

pub(crate) fn is_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The record fields of a request body; absent fields are `None`.
#[derive(Default, Debug)]
pub(crate) struct Fields {
    rtype: Option<String>,
    name: Option<String>,
    content: Option<String>,
    ttl: Option<u32>,
    proxied: Option<bool>,
    /// `Some(None)`: explicitly `null`, which clears the comment.
    comment: Option<Option<String>>,
    tags: Option<Vec<String>>,
    priority: Option<u16>,
    data: Option<Value>,
}

impl Fields {
    /// Reads the fields Cloudflare knows; others are ignored as Cloudflare does.
    pub(crate) fn parse(value: &Value) -> Result<Fields, ApiError> {
        let object = value.as_object().ok_or_else(ApiError::invalid_body)?;
        let string = |key: &str| -> Result<Option<String>, ApiError> {
            match object.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ApiError::invalid_body()),
            }
        };
        let ttl = match object.get("ttl") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(ApiError::ttl)?,
            ),
        };
        let proxied = match object.get("proxied") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(ApiError::invalid_body()),
        };
        let comment = match object.get("comment") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(_) => return Err(ApiError::invalid_body()),
        };
        let tags = match object.get("tags") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|t| t.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(ApiError::invalid_body)?,
            ),
            Some(_) => return Err(ApiError::invalid_body()),
        };
        let priority =
            match object.get("priority") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().and_then(|n| u16::try_from(n).ok()).ok_or_else(
                    || ApiError::validation(9100, "Priority must be between 0 and 65535."),
                )?),
            };
        let data = match object.get("data") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(_) => return Err(ApiError::invalid_body()),
        };
        Ok(Fields {
            rtype: string("type")?.map(|t| t.to_ascii_uppercase()),
            name: string("name")?,
            content: string("content")?,
            ttl,
            proxied,
            comment,
            tags,
            priority,
            data,
        })
    }
}

/// What the checks need to know about the zone and the plan.
pub(crate) struct Rules<'a> {
    pub(crate) zone_name: &'a str,
    pub(crate) comment_limit: usize,
}

impl Rules<'_> {
    /// Builds a record from a create (POST) or overwrite (PUT) body.
    pub(crate) fn build(
        &self,
        fields: Fields,
        id: String,
        now: SystemTime,
    ) -> Result<Record, ApiError> {
        self.finish(fields, id, now, now)
    }

    /// Applies a PATCH body over `current`.
    pub(crate) fn patch(
        &self,
        current: &Record,
        fields: Fields,
        now: SystemTime,
    ) -> Result<Record, ApiError> {
        let type_changed = fields.rtype.as_ref().is_some_and(|t| *t != current.rtype);
        let merged = Fields {
            rtype: fields.rtype.or_else(|| Some(current.rtype.clone())),
            name: fields.name.or_else(|| Some(current.name.clone())),
            // Keep the value only if neither the type nor the SRV data replace it.
            content: fields.content.or_else(|| {
                (!type_changed && fields.data.is_none() && current.rtype != "SRV")
                    .then(|| current.content.clone())
            }),
            ttl: fields.ttl.or(Some(current.ttl)),
            proxied: fields.proxied.or(Some(current.proxied)),
            comment: fields.comment.or_else(|| Some(current.comment.clone())),
            tags: fields.tags.or_else(|| Some(current.tags.clone())),
            priority: fields
                .priority
                .or(if type_changed { None } else { current.priority }),
            data: fields.data.or_else(|| {
                if type_changed {
                    None
                } else {
                    current.data.clone()
                }
            }),
        };
        self.finish(merged, current.id.clone(), current.created_on, now)
    }

    fn finish(
        &self,
        fields: Fields,
        id: String,
        created_on: SystemTime,
        now: SystemTime,
    ) -> Result<Record, ApiError> {
        let rtype = fields
            .rtype
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::validation(9000, "DNS record type is invalid."))?;
        if !TYPES.contains(&rtype.as_str()) {
            return Err(ApiError::validation(9000, "DNS record type is invalid."));
        }
        let name = self.name(fields.name.as_deref())?;

        let (content, priority, data) = match rtype.as_str() {
            "SRV" => {
                let (priority, content, data) =
                    srv(fields.data.as_ref(), fields.content.as_deref())?;
                (content, Some(priority), Some(data))
            }
            other => {
                let content = fields
                    .content
                    .ok_or_else(|| ApiError::validation(9009, "Content is required."))?;
                let content = value(other, &content)?;
                let priority = if other == "MX" {
                    Some(fields.priority.ok_or_else(|| {
                        ApiError::validation(
                            9100,
                            "MX records require a priority between 0 and 65535.",
                        )
                    })?)
                } else {
                    None
                };
                (content, priority, None)
            }
        };

        let proxied = fields.proxied.unwrap_or(false);
        let mut ttl = fields.ttl.unwrap_or(1);
        if ttl != 1 && !(TTL_MIN..=TTL_MAX).contains(&ttl) {
            return Err(ApiError::ttl());
        }
        let record = Record {
            id,
            name,
            rtype,
            content,
            priority,
            data,
            ttl,
            proxied,
            comment: fields.comment.flatten().filter(|c| !c.is_empty()),
            tags: fields.tags.unwrap_or_default(),
            created_on,
            modified_on: now,
        };
        if proxied {
            if !matches!(record.rtype.as_str(), "A" | "AAAA" | "CNAME") {
                return Err(ApiError::validation(
                    9004,
                    "This record type cannot be proxied.",
                ));
            }
            if !record.proxiable() {
                return Err(ApiError::validation(
                    9003,
                    format!(
                        "Target {} is not allowed for a proxied record.",
                        record.content
                    ),
                ));
            }
            // A proxied record's TTL is always automatic.
            ttl = 1;
        }
        if let Some(comment) = &record.comment
            && comment.chars().count() > self.comment_limit
        {
            return Err(ApiError::validation(
                9313,
                format!(
                    "DNS record comment exceeds the maximum length of {} characters.",
                    self.comment_limit
                ),
            ));
        }
        Ok(Record { ttl, ..record })
    }

    /// Cloudflare's reading of a record name: `@` is the apex, a name not ending
    /// in the zone has the zone appended (`www` → `www.example.com`), case is
    /// folded, a trailing dot dropped.
    fn name(&self, raw: Option<&str>) -> Result<String, ApiError> {
        let raw = raw
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::validation(9007, "DNS record name is required."))?;
        let lower = raw.trim_end_matches('.').to_ascii_lowercase();
        let name = if lower == "@" || lower == self.zone_name {
            self.zone_name.to_owned()
        } else if lower.ends_with(&format!(".{}", self.zone_name)) {
            lower
        } else {
            format!("{lower}.{}", self.zone_name)
        };
        if !valid_name(&name, true) {
            return Err(ApiError::validation(9007, "DNS record name is invalid."));
        }
        Ok(name)
    }
}

/// Labels of 1..=63 characters from letters, digits, `-` and `_` (a leading
/// `*` label with `wildcard`), 253 characters at most.
fn valid_name(name: &str, wildcard: bool) -> bool {
    name.len() <= 253
        && name.split('.').enumerate().all(|(i, label)| {
            (wildcard && i == 0 && label == "*")
                || (!label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        })
}

/// Checks and normalises the content of a non-SRV record.
fn value(rtype: &str, content: &str) -> Result<String, ApiError> {
    match rtype {
        "A" => content
            .parse::<Ipv4Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| {
                ApiError::validation(9005, "Content for A record must be a valid IPv4 address.")
            }),
        "AAAA" => content
            .parse::<Ipv6Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| {
                ApiError::validation(
                    9006,
                    "Content for AAAA record must be a valid IPv6 address.",
                )
            }),
        "TXT" => {
            if content.is_empty() {
                Err(ApiError::validation(9009, "Content is required."))
            } else if content.chars().count() > TXT_MAX {
                Err(ApiError::validation(
                    9101,
                    format!("Content for TXT record must be at most {TXT_MAX} characters."),
                ))
            } else {
                Ok(content.to_owned())
            }
        }
        // CNAME, MX, NS, PTR: a host name.
        other => hostname(content).ok_or_else(|| {
            ApiError::validation(9007, format!("Content for {other} record is invalid."))
        }),
    }
}

fn hostname(content: &str) -> Option<String> {
    let name = content.trim_end_matches('.').to_ascii_lowercase();
    (!name.is_empty() && valid_name(&name, false)).then_some(name)
}

/// SRV: `data {priority, weight, port, target}` (what Cloudflare documents), or
/// failing that a content of "priority weight port target". Returns the
/// priority, Cloudflare's content ("weight port target") and the data object.
fn srv(data: Option<&Value>, content: Option<&str>) -> Result<(u16, String, Value), ApiError> {
    let invalid = || {
        ApiError::validation(
            9101,
            "SRV record data is invalid: priority, weight and port must be between 0 and 65535 and target a host name.",
        )
    };
    let (priority, weight, port, target) = match (data, content) {
        (Some(data), _) => {
            let field = |key: &str| -> Result<u16, ApiError> {
                data.get(key)
                    .and_then(Value::as_u64)
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(invalid)
            };
            let target = data
                .get("target")
                .and_then(Value::as_str)
                .ok_or_else(invalid)?;
            (
                field("priority")?,
                field("weight")?,
                field("port")?,
                target.to_owned(),
            )
        }
        (None, Some(content)) => {
            let parts: Vec<&str> = content.split_whitespace().collect();
            let [p, w, port, target] = parts.as_slice() else {
                return Err(invalid());
            };
            let num = |s: &str| s.parse::<u16>().map_err(|_| invalid());
            (num(p)?, num(w)?, num(port)?, (*target).to_owned())
        }
        (None, None) => return Err(invalid()),
    };
    // "." is the RFC 2782 "no service here" target.
    let target = if target == "." {
        ".".to_owned()
    } else {
        hostname(&target).ok_or_else(invalid)?
    };
    let mut object = Map::new();
    object.insert("priority".into(), json!(priority));
    object.insert("weight".into(), json!(weight));
    object.insert("port".into(), json!(port));
    object.insert("target".into(), json!(target));
    Ok((
        priority,
        format!("{weight} {port} {target}"),
        Value::Object(object),
    ))
}

/// Refuses `candidate` if it clashes with a record of `records` other than
/// itself (same id): an identical record, or a CNAME beside A/AAAA/CNAME
/// ("Records with the same name" in the DNS troubleshooting docs).
pub(crate) fn check_conflicts(records: &[Record], candidate: &Record) -> Result<(), ApiError> {
    let others = records
        .iter()
        .filter(|r| r.id != candidate.id && r.name == candidate.name);
    for other in others {
        if other.identical(candidate) {
            return Err(ApiError::validation(
                81058,
                "An identical record already exists.",
            ));
        }
        let address = |t: &str| matches!(t, "A" | "AAAA");
        if candidate.rtype == "CNAME" && (address(&other.rtype) || other.rtype == "CNAME") {
            return Err(ApiError::validation(
                81053,
                "An A, AAAA, or CNAME record with that host already exists.",
            ));
        }
        if other.rtype == "CNAME" && address(&candidate.rtype) {
            return Err(ApiError::validation(
                81054,
                "A CNAME record with that host already exists. For more details, refer to <https://developers.cloudflare.com/dns/manage-dns-records/troubleshooting/records-with-same-name/>.",
            ));
        }
    }
    Ok(())
}

/// Builds a record from the handle's [`DnsRecord`], without any check beyond
/// what is needed to store it (used by `put_record`).
pub(crate) fn from_public(record: &DnsRecord, zone_name: &str, now: SystemTime) -> Record {
    let mut name = record.name.trim_end_matches('.').to_ascii_lowercase();
    if name == "@" {
        name = zone_name.to_owned();
    } else if name != zone_name && !name.ends_with(&format!(".{zone_name}")) {
        name = format!("{name}.{zone_name}");
    }
    let rtype = record.rtype.to_ascii_uppercase();
    let id = if is_id(&record.id) {
        record.id.to_ascii_lowercase()
    } else {
        new_id()
    };
    let mut stored = Record {
        id,
        name,
        rtype: rtype.clone(),
        content: record.content.clone(),
        priority: None,
        data: record.data.clone(),
        ttl: record.ttl,
        proxied: record.proxied,
        comment: record.comment.clone(),
        tags: Vec::new(),
        created_on: now,
        modified_on: now,
    };
    match rtype.as_str() {
        "SRV" => {
            if let Ok((priority, content, data)) = srv(record.data.as_ref(), Some(&record.content))
            {
                stored.priority = Some(priority);
                stored.content = content;
                stored.data = Some(data);
            }
        }
        "MX" => {
            if let Some((pref, target)) = record.content.split_once(' ')
                && let Ok(pref) = pref.parse()
            {
                stored.priority = Some(pref);
                stored.content = target.trim().to_owned();
            }
        }
        _ => {}
    }
    stored
}
