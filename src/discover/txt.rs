//! RFC 6763 TXT: the attributes of a DNS-SD instance.

use hickory_resolver::proto::rr::{RData, Record};
use serde::Serialize;
use serde::ser::SerializeMap;

/// DNS-SD attributes in the order published: key (lowercase; keys are
/// case-insensitive, RFC 6763 §6.4) and value, `None` for a boolean attribute
/// (a key without '=').
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txt(pub Vec<(String, Option<String>)>);

/// The attributes an instance's TXT records carry (RFC 6763 §6).
pub(crate) fn txt_of(records: &[Record]) -> Txt {
    let strings: Vec<&[u8]> = records
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(t.txt_data.iter().map(|s| &s[..])),
            _ => None,
        })
        .flatten()
        .collect();
    parse_txt(&strings)
}

/// Parses TXT strings as RFC 6763 §6 key/value pairs.
pub fn parse_txt(strings: &[&[u8]]) -> Txt {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for s in strings {
        // §6.1: a zero-length string (the "empty" TXT record) carries nothing.
        if s.is_empty() {
            continue;
        }
        let (key, value) = match s.iter().position(|&b| b == b'=') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (&s[..], None),
        };
        // §6.4: "If there is no key ... the string MUST be silently ignored";
        // keys are printable US-ASCII other than '='.
        if key.is_empty() || !key.iter().all(|b| (0x20..=0x7e).contains(b)) {
            continue;
        }
        let key = String::from_utf8_lossy(key).to_ascii_lowercase();
        // §6.4: "If a client receives a TXT record containing the same key more
        // than once, then the client MUST silently ignore all but the first".
        if out.iter().any(|(k, _)| *k == key) {
            continue;
        }
        // §6.5: values are opaque bytes; shown as UTF-8 (lossy).
        out.push((key, value.map(|v| String::from_utf8_lossy(v).into_owned())));
    }
    Txt(out)
}

/// JSON: an object in published order; a boolean attribute is `true`.
impl Serialize for Txt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            match v {
                Some(v) => map.serialize_entry(k, v)?,
                None => map.serialize_entry(k, &true)?,
            }
        }
        map.end()
    }
}
