//! DNS names the way Route53 reads, stores, prints and sorts them.
//!
//! Route53 accepts names with or without the trailing dot and in any case, stores
//! them lowercase and absolute, and prints every character other than `a-z`,
//! `0-9`, `-` and `_` as a three-digit octal escape (so a wildcard comes back as
//! `\052`). See "DNS domain name format" in the Route53 Developer Guide.
//! Listings sort by the name with its labels reversed (`com.example.www.`); the
//! record listing compares raw characters (the API reference for
//! ListResourceRecordSets notes that `!"#$%&'()*+,-` sort before the dot), the
//! hosted-zone listing compares the escaped form (ListHostedZonesByName).

use std::fmt;

/// Longest label, in octets (RFC 1035 section 2.3.4).
const MAX_LABEL: usize = 63;
/// Longest name on the wire, in octets, length bytes and root included.
const MAX_WIRE: usize = 255;

/// An absolute domain name: lowercase labels as raw octets, the root last (implied).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Name {
    labels: Vec<Vec<u8>>,
}

/// Why a name was refused, with Route53's problem code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NameError {
    LabelEmpty,
    LabelTooLong(String),
    NameTooLong,
}

impl NameError {
    /// Route53's wording, e.g. `FATAL problem: DomainLabelEmpty (Domain label is
    /// empty) encountered with 'example.org..'`.
    pub(crate) fn message(&self, input: &str) -> String {
        match self {
            NameError::LabelEmpty => format!(
                "FATAL problem: DomainLabelEmpty (Domain label is empty) encountered with '{input}'"
            ),
            NameError::LabelTooLong(label) => format!(
                "FATAL problem: DomainLabelTooLong (Domain label is too long) encountered with '{label}'"
            ),
            NameError::NameTooLong => format!(
                "FATAL problem: DomainNameTooLong (Domain name is too long) encountered with '{input}'"
            ),
        }
    }
}

impl Name {
    /// Parses a name as Route53 accepts it: trailing dot optional, any case,
    /// `\ddd` (octal) and `\c` escapes understood. `"."` is the root.
    pub(crate) fn parse(input: &str) -> Result<Name, NameError> {
        if input == "." {
            return Ok(Name { labels: Vec::new() });
        }
        let bytes = input.as_bytes();
        let mut labels = Vec::new();
        let mut label = Vec::new();
        let mut label_text_start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'\\' {
                let octal = bytes
                    .get(i + 1..i + 4)
                    .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
                if let Some(digits) = octal {
                    let value = digits
                        .iter()
                        .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                    label.push(u8::try_from(value).unwrap_or(u8::MAX).to_ascii_lowercase());
                    i += 4;
                } else if let Some(&next) = bytes.get(i + 1) {
                    label.push(next.to_ascii_lowercase());
                    i += 2;
                } else {
                    label.push(b'\\');
                    i += 1;
                }
            } else if b == b'.' {
                if label.is_empty() {
                    return Err(NameError::LabelEmpty);
                }
                check_label(&label, &input[label_text_start..i])?;
                labels.push(std::mem::take(&mut label));
                i += 1;
                label_text_start = i;
            } else {
                label.push(b.to_ascii_lowercase());
                i += 1;
            }
        }
        if !label.is_empty() {
            check_label(&label, &input[label_text_start..])?;
            labels.push(label);
        } else if labels.is_empty() {
            return Err(NameError::LabelEmpty);
        }
        let wire: usize = labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1;
        if wire > MAX_WIRE {
            return Err(NameError::NameTooLong);
        }
        Ok(Name { labels })
    }

    /// True when `self` is `zone` or a name below it.
    pub(crate) fn is_within(&self, zone: &Name) -> bool {
        self.labels.len() >= zone.labels.len() && self.labels.ends_with(&zone.labels)
    }

    /// The key ListResourceRecordSets sorts by: labels reversed, raw octets,
    /// each label followed by a dot (`com.example.www.`).
    pub(crate) fn record_sort_key(&self) -> Vec<u8> {
        let mut key = Vec::new();
        for label in self.labels.iter().rev() {
            key.extend_from_slice(label);
            key.push(b'.');
        }
        if key.is_empty() {
            key.push(b'.');
        }
        key
    }

    /// The key ListHostedZonesByName sorts by: labels reversed, escaped form.
    pub(crate) fn zone_sort_key(&self) -> String {
        let mut key = String::new();
        for label in self.labels.iter().rev() {
            push_escaped(&mut key, label);
            key.push('.');
        }
        if key.is_empty() {
            key.push('.');
        }
        key
    }
}

fn check_label(label: &[u8], text: &str) -> Result<(), NameError> {
    if label.len() > MAX_LABEL {
        return Err(NameError::LabelTooLong(text.to_owned()));
    }
    Ok(())
}

fn push_escaped(out: &mut String, label: &[u8]) {
    for &b in label {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\{b:03o}"));
        }
    }
}

/// Route53's printed form: lowercase, absolute, special characters as `\ddd`.
impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.labels.is_empty() {
            return f.write_str(".");
        }
        let mut out = String::new();
        for label in &self.labels {
            push_escaped(&mut out, label);
            out.push('.');
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(input: &str) -> String {
        Name::parse(input).unwrap().to_string()
    }

    #[test]
    fn names_are_lowercase_absolute_and_escaped() {
        assert_eq!(shown("WWW.Example.COM"), "www.example.com.");
        assert_eq!(shown("www.example.com."), "www.example.com.");
        assert_eq!(shown("*.example.com"), "\\052.example.com.");
        assert_eq!(shown("\\052.example.com"), "\\052.example.com.");
        assert_eq!(shown("_srv._tcp.example.com"), "_srv._tcp.example.com.");
        assert_eq!(shown("a\\.b.example.com"), "a\\056b.example.com.");
        assert_eq!(shown("."), ".");
    }

    #[test]
    fn bad_names_are_refused_with_route53_codes() {
        assert_eq!(Name::parse("example.org.."), Err(NameError::LabelEmpty));
        assert_eq!(Name::parse(".example.org"), Err(NameError::LabelEmpty));
        assert_eq!(Name::parse(""), Err(NameError::LabelEmpty));
        let long = "a".repeat(64);
        assert_eq!(
            Name::parse(&format!("{long}.example.com")),
            Err(NameError::LabelTooLong(long))
        );
        let many = vec!["abcdefghi"; 30].join(".");
        assert_eq!(Name::parse(&many), Err(NameError::NameTooLong));
        assert!(
            NameError::LabelEmpty
                .message("x..")
                .contains("DomainLabelEmpty (Domain label is empty) encountered with 'x..'")
        );
    }

    #[test]
    fn sort_keys_reverse_labels() {
        let www = Name::parse("www.example.com").unwrap();
        assert_eq!(www.record_sort_key(), b"com.example.www.".to_vec());
        assert_eq!(
            Name::parse("*.example.com").unwrap().zone_sort_key(),
            "com.example.\\052."
        );
        let zone = Name::parse("example.com").unwrap();
        assert!(www.is_within(&zone));
        assert!(zone.is_within(&zone));
        assert!(!Name::parse("badexample.com").unwrap().is_within(&zone));
    }
}
