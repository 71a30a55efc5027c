//! DNS names, record types and values, typed.
//!
//! Everything dnsreg publishes is built from these types after validation, so code
//! past `config` never handles raw strings for names or addresses. A [`Value`] is a
//! single resource record without its TTL: the unit of ownership
//! (docs/design.md, "Ownership"). Two values are the same exactly when a DNS
//! server would treat them as the same RR.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An absolute DNS name: lowercase, ending with a dot, each label 1–63 octets of
/// letters, digits, `-` or `_`, at most 253 octets in all (RFC 1035 §2.3.4).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);

/// Why a string is not a valid [`DomainName`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the name is empty")]
    Empty,
    #[error("`{0}` is longer than 253 characters")]
    TooLong(String),
    #[error("`{name}` has an empty label (two dots in a row, or a leading dot)")]
    EmptyLabel { name: String },
    #[error("label `{label}` of `{name}` is longer than 63 characters")]
    LabelTooLong { name: String, label: String },
    #[error(
        "label `{label}` of `{name}` has the character {ch:?}; use letters, digits, `-` and `_` only"
    )]
    BadChar {
        name: String,
        label: String,
        ch: char,
    },
    #[error("label `{label}` of `{name}` starts or ends with `-`")]
    Hyphen { name: String, label: String },
}

impl DomainName {
    /// Parses an absolute name; a missing trailing dot is added.
    pub fn new(name: &str) -> Result<DomainName, NameError> {
        let trimmed = name.strip_suffix('.').unwrap_or(name);
        if trimmed.is_empty() {
            return Err(NameError::Empty);
        }
        if trimmed.len() > 253 {
            return Err(NameError::TooLong(name.to_string()));
        }
        for label in trimmed.split('.') {
            check_label(name, label)?;
        }
        Ok(DomainName(format!("{}.", trimmed.to_ascii_lowercase())))
    }

    /// Resolves `name` against `zone`: a name ending with a dot is absolute, any
    /// other is relative to the zone; `@` is the zone itself.
    pub fn resolve(name: &str, zone: &DomainName) -> Result<DomainName, NameError> {
        if name == "@" {
            return Ok(zone.clone());
        }
        if name.ends_with('.') {
            DomainName::new(name)
        } else if name.is_empty() {
            Err(NameError::Empty)
        } else {
            DomainName::new(&format!("{name}.{}", zone.0))
        }
    }

    /// The name with its trailing dot, lowercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name without its trailing dot.
    pub fn without_dot(&self) -> &str {
        self.0.strip_suffix('.').unwrap_or(&self.0)
    }

    /// True when `self` is `zone` or below it.
    pub fn is_in(&self, zone: &DomainName) -> bool {
        self == zone || self.0.ends_with(&format!(".{}", zone.0))
    }

    /// `label.self`.
    pub fn child(&self, label: &str) -> Result<DomainName, NameError> {
        DomainName::new(&format!("{label}.{}", self.0))
    }
}

fn check_label(name: &str, label: &str) -> Result<(), NameError> {
    if label.is_empty() {
        return Err(NameError::EmptyLabel {
            name: name.to_string(),
        });
    }
    if label.len() > 63 {
        return Err(NameError::LabelTooLong {
            name: name.to_string(),
            label: label.to_string(),
        });
    }
    if let Some(ch) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(NameError::BadChar {
            name: name.to_string(),
            label: label.to_string(),
            ch,
        });
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(NameError::Hyphen {
            name: name.to_string(),
            label: label.to_string(),
        });
    }
    Ok(())
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DomainName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DomainName::new(s)
    }
}

impl TryFrom<String> for DomainName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DomainName::new(&s)
    }
}

impl From<DomainName> for String {
    fn from(n: DomainName) -> String {
        n.0
    }
}

/// The record types dnsreg publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RType {
    A,
    AAAA,
    SRV,
    TXT,
    PTR,
}

impl RType {
    pub fn as_str(self) -> &'static str {
        match self {
            RType::A => "A",
            RType::AAAA => "AAAA",
            RType::SRV => "SRV",
            RType::TXT => "TXT",
            RType::PTR => "PTR",
        }
    }
}

impl fmt::Display for RType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "A" => RType::A,
            "AAAA" => RType::AAAA,
            "SRV" => RType::SRV,
            "TXT" => RType::TXT,
            "PTR" => RType::PTR,
            other => return Err(format!("unsupported record type `{other}`")),
        })
    }
}

/// The data of one resource record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    /// RFC 2782.
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: DomainName,
    },
    /// One or more character-strings, each at most 255 octets (RFC 1035 §3.3.14).
    Txt(Vec<String>),
    Ptr(DomainName),
}

impl RData {
    pub fn rtype(&self) -> RType {
        match self {
            RData::A(_) => RType::A,
            RData::Aaaa(_) => RType::AAAA,
            RData::Srv { .. } => RType::SRV,
            RData::Txt(_) => RType::TXT,
            RData::Ptr(_) => RType::PTR,
        }
    }

    /// Parses the zone-file presentation of `rtype`'s data, as Route53 and
    /// Cloudflare show it. Returns `None` for anything that is not a well-formed
    /// value of that type (such values are never ours, so they are never touched).
    pub fn parse(rtype: RType, text: &str) -> Option<RData> {
        let text = text.trim();
        match rtype {
            RType::A => text.parse().ok().map(RData::A),
            RType::AAAA => text.parse().ok().map(RData::Aaaa),
            RType::SRV => {
                let mut it = text.split_ascii_whitespace();
                let priority = it.next()?.parse().ok()?;
                let weight = it.next()?.parse().ok()?;
                let port = it.next()?.parse().ok()?;
                let target = DomainName::new(it.next()?).ok()?;
                if it.next().is_some() {
                    return None;
                }
                Some(RData::Srv {
                    priority,
                    weight,
                    port,
                    target,
                })
            }
            RType::TXT => parse_txt(text).map(RData::Txt),
            RType::PTR => DomainName::new(text).ok().map(RData::Ptr),
        }
    }
}

/// Zone-file presentation; TXT strings quoted with `"` and `\` escaped.
impl fmt::Display for RData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RData::A(ip) => write!(f, "{ip}"),
            RData::Aaaa(ip) => write!(f, "{ip}"),
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                write!(f, "{priority} {weight} {port} {target}")
            }
            RData::Txt(strings) => {
                for (i, s) in strings.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    f.write_str("\"")?;
                    for c in s.chars() {
                        if c == '"' || c == '\\' {
                            f.write_str("\\")?;
                        }
                        write!(f, "{c}")?;
                    }
                    f.write_str("\"")?;
                }
                Ok(())
            }
            RData::Ptr(target) => write!(f, "{target}"),
        }
    }
}

/// Parses `"a" "b c"` (or a bare word) into its character-strings.
fn parse_txt(text: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => break,
            Some('"') => {
                let mut s = String::new();
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => {
                            let c = chars.next()?;
                            if c.is_ascii_digit() {
                                // \DDD decimal escape (RFC 1035 §5.1), as Route53 writes.
                                let d2 = chars.next()?;
                                let d3 = chars.next()?;
                                let code: u32 = format!("{c}{d2}{d3}").parse().ok()?;
                                s.push(char::from_u32(code)?);
                            } else {
                                s.push(c);
                            }
                        }
                        c => s.push(c),
                    }
                }
                out.push(s);
            }
            Some(c) => {
                let mut s = String::from(c);
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_whitespace() {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                out.push(s);
            }
        }
    }
    if out.is_empty() { None } else { Some(out) }
}

/// A record set's key: owner name and type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RrKey {
    pub name: DomainName,
    pub rtype: RType,
}

impl fmt::Display for RrKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.rtype)
    }
}

impl FromStr for RrKey {
    type Err = String;
    /// Parses what `Display` writes: `NAME TYPE`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, rtype) = s
            .rsplit_once(' ')
            .ok_or_else(|| format!("not `NAME TYPE`: `{s}`"))?;
        Ok(RrKey {
            name: DomainName::new(name).map_err(|e| e.to_string())?,
            rtype: rtype.parse()?,
        })
    }
}

/// Serde for maps keyed by rrset (`#[serde(with = "by_key")]`): JSON object
/// keys are strings, so each key is written `NAME TYPE`.
pub mod by_key {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::RrKey;

    pub fn serialize<S: Serializer, T: Serialize>(
        map: &BTreeMap<RrKey, T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(map.iter().map(|(k, v)| (k.to_string(), v)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<BTreeMap<RrKey, T>, D::Error> {
        BTreeMap::<String, T>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| Ok((k.parse().map_err(serde::de::Error::custom)?, v)))
            .collect()
    }
}

/// One resource record without its TTL: the unit of ownership.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Value {
    pub name: DomainName,
    pub data: RData,
}

impl Value {
    pub fn key(&self) -> RrKey {
        RrKey {
            name: self.name.clone(),
            rtype: self.data.rtype(),
        }
    }

    /// One line, `NAME TYPE DATA`: how values are written in the ownership
    /// registry and the state file, and shown to users.
    pub fn to_line(&self) -> String {
        format!("{} {} {}", self.name, self.data.rtype(), self.data)
    }

    /// Parses what [`Value::to_line`] wrote.
    pub fn from_line(line: &str) -> Option<Value> {
        let mut parts = line.trim().splitn(3, ' ');
        let name = DomainName::new(parts.next()?).ok()?;
        let rtype: RType = parts.next()?.parse().ok()?;
        let data = RData::parse(rtype, parts.next()?)?;
        Some(Value { name, data })
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_line())
    }
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_line())
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let line = String::deserialize(d)?;
        Value::from_line(&line)
            .ok_or_else(|| serde::de::Error::custom(format!("not a record: `{line}`")))
    }
}

/// A value this instance wants published, with its TTL.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    pub value: Value,
    pub ttl: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> DomainName {
        DomainName::new(s).unwrap()
    }

    #[test]
    fn names_are_lowercase_and_absolute() {
        assert_eq!(name("WWW.Example.COM").as_str(), "www.example.com.");
        assert_eq!(name("www.example.com.").as_str(), "www.example.com.");
        assert_eq!(
            name("_v1._theservice._tcp.example.com").without_dot(),
            "_v1._theservice._tcp.example.com"
        );
    }

    #[test]
    fn bad_names_say_why() {
        assert_eq!(DomainName::new(""), Err(NameError::Empty));
        assert!(matches!(
            DomainName::new("a..b"),
            Err(NameError::EmptyLabel { .. })
        ));
        assert!(matches!(
            DomainName::new("a b.com"),
            Err(NameError::BadChar { ch: ' ', .. })
        ));
        assert!(matches!(
            DomainName::new("-a.com"),
            Err(NameError::Hyphen { .. })
        ));
        assert!(matches!(
            DomainName::new(&"a".repeat(64)),
            Err(NameError::LabelTooLong { .. })
        ));
        let long = vec!["abcdefghij"; 25].join(".");
        assert!(matches!(DomainName::new(&long), Err(NameError::TooLong(_))));
    }

    #[test]
    fn relative_names_resolve_against_the_zone() {
        let zone = name("example.com");
        assert_eq!(
            DomainName::resolve("www", &zone).unwrap(),
            name("www.example.com")
        );
        assert_eq!(
            DomainName::resolve("www.other.org.", &zone).unwrap(),
            name("www.other.org")
        );
        assert_eq!(DomainName::resolve("@", &zone).unwrap(), zone);
        assert!(name("a.b.example.com").is_in(&zone));
        assert!(zone.is_in(&zone));
        assert!(!name("badexample.com").is_in(&zone));
    }

    #[test]
    fn values_round_trip_through_their_line_form() {
        let values = [
            Value {
                name: name("www.example.com"),
                data: RData::A("203.0.113.7".parse().unwrap()),
            },
            Value {
                name: name("www.example.com"),
                data: RData::Aaaa("2001:db8::7".parse().unwrap()),
            },
            Value {
                name: name("_v1._svc._tcp.example.com"),
                data: RData::Srv {
                    priority: 0,
                    weight: 5,
                    port: 8080,
                    target: name("h.example.com"),
                },
            },
            Value {
                name: name("i._http._tcp.example.com"),
                data: RData::Txt(vec!["path=/".into(), "say \"hi\"\\".into()]),
            },
            Value {
                name: name("_http._tcp.example.com"),
                data: RData::Ptr(name("i._http._tcp.example.com")),
            },
        ];
        for v in values {
            assert_eq!(
                Value::from_line(&v.to_line()),
                Some(v.clone()),
                "{}",
                v.to_line()
            );
        }
    }

    #[test]
    fn route53_presentation_parses_to_the_same_value() {
        assert_eq!(
            RData::parse(RType::SRV, "0 5 8080 H.Example.com."),
            Some(RData::Srv {
                priority: 0,
                weight: 5,
                port: 8080,
                target: name("h.example.com")
            })
        );
        assert_eq!(
            RData::parse(RType::TXT, r#""a\"b" "c\032d""#),
            Some(RData::Txt(vec!["a\"b".into(), "c d".into()]))
        );
        assert_eq!(RData::parse(RType::A, "1.2.3"), None);
        assert_eq!(RData::parse(RType::SRV, "0 0 80"), None);
    }
}
