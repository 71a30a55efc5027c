//! Record values (RDATA) checked the way Route53 checks them.
//!
//! Route53 refuses a malformed value with an InvalidChangeBatch message of the
//! form `Invalid Resource Record: FATAL problem: <Code> (<why>) encountered with
//! '<value>'`. The formats are those of "Supported DNS record types" in the
//! Route53 Developer Guide. Codes seen in Route53 answers are used where known
//! (ARRDATAIllegalIPv4Address, ARRDATANotSingleField, SRVRRDATANotFourFields,
//! InvalidCharacterString, CharacterStringTooLong); the others follow the same
//! pattern.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::names::Name;

/// The RRType enumeration of the 2013-04-01 API, in the model's order.
pub(crate) const RR_TYPES: [&str; 17] = [
    "SOA", "A", "TXT", "NS", "CNAME", "MX", "NAPTR", "PTR", "SRV", "SPF", "AAAA", "CAA", "DS",
    "TLSA", "SSHFP", "SVCB", "HTTPS",
];

/// Types a MultiValueAnswer record set may have (API reference, ResourceRecordSet
/// `Type`: "Valid values for multivalue answer resource record sets"; the
/// Developer Guide adds CAA: "any value except NS or CNAME").
pub(crate) const MULTIVALUE_TYPES: [&str; 9] = [
    "A", "AAAA", "CAA", "MX", "NAPTR", "PTR", "SPF", "SRV", "TXT",
];

/// Types a weighted record set may have (same API reference entry).
pub(crate) const WEIGHTED_TYPES: [&str; 10] = [
    "A", "AAAA", "CAA", "CNAME", "MX", "NAPTR", "PTR", "SPF", "SRV", "TXT",
];

/// Longest TXT character-string, in octets (RFC 1035 section 3.3).
const MAX_CHARACTER_STRING: usize = 255;

/// Checks one value of an rrset of type `rtype`; `Err` carries Route53's message.
pub(crate) fn check(rtype: &str, value: &str) -> Result<(), String> {
    let fatal = |code: &str, why: &str| {
        Err(format!(
            "Invalid Resource Record: FATAL problem: {code} ({why}) encountered with '{value}'"
        ))
    };
    let single = |ty: &str| -> Result<(), String> {
        if value.chars().any(char::is_whitespace) {
            return fatal(
                &format!("{ty}RRDATANotSingleField"),
                "Value contains spaces",
            );
        }
        Ok(())
    };
    match rtype {
        "A" => {
            single("A")?;
            if value.parse::<Ipv4Addr>().is_err() {
                return fatal(
                    "ARRDATAIllegalIPv4Address",
                    "Value is not a valid IPv4 address",
                );
            }
        }
        "AAAA" => {
            single("AAAA")?;
            if value.parse::<Ipv6Addr>().is_err() {
                return fatal(
                    "AAAARRDATAIllegalIPv6Address",
                    "Value is not a valid IPv6 address",
                );
            }
        }
        "CNAME" | "PTR" | "NS" => {
            single(rtype)?;
            domain(value)?;
        }
        "MX" => {
            let fields: Vec<&str> = value.split_whitespace().collect();
            if fields.len() != 2 {
                return fatal("MXRRDATANotTwoFields", "MX record doesn't have 2 fields");
            }
            if fields[0].parse::<u16>().is_err() {
                return fatal(
                    "MXRRDATAIllegalPriority",
                    "Priority must be an integer between 0 and 65535",
                );
            }
            domain(fields[1])?;
        }
        "SRV" => {
            let fields: Vec<&str> = value.split_whitespace().collect();
            if fields.len() != 4 {
                return fatal("SRVRRDATANotFourFields", "SRV record doesn't have 4 fields");
            }
            for (field, what) in fields[..3].iter().zip(["Priority", "Weight", "Port"]) {
                if field.parse::<u16>().is_err() {
                    return fatal(
                        &format!("SRVRRDATAIllegal{what}"),
                        &format!("{what} must be an integer between 0 and 65535"),
                    );
                }
            }
            domain(fields[3])?;
        }
        "TXT" | "SPF" => {
            if let Err(problem) = character_strings(value) {
                return match problem {
                    TxtProblem::NotQuoted => fatal(
                        "InvalidCharacterString",
                        "Value should be enclosed in quotation marks",
                    ),
                    TxtProblem::TooLong => fatal("CharacterStringTooLong", "Value is too long"),
                };
            }
        }
        "SOA" => {
            let fields: Vec<&str> = value.split_whitespace().collect();
            if fields.len() != 7 {
                return fatal(
                    "SOARRDATANotSevenFields",
                    "SOA record doesn't have 7 fields",
                );
            }
            domain(fields[0])?;
            domain(fields[1])?;
            if fields[2..].iter().any(|f| f.parse::<u32>().is_err()) {
                return fatal(
                    "SOARRDATAIllegalNumber",
                    "SOA numbers must be integers between 0 and 4294967295",
                );
            }
        }
        "CAA" => {
            let mut parts = value.splitn(3, ' ');
            let (flags, tag, text) = (parts.next(), parts.next(), parts.next());
            let ok = flags.is_some_and(|f| f.parse::<u8>().is_ok())
                && tag
                    .is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric()))
                && text.is_some_and(|t| character_strings(t).is_ok());
            if !ok {
                return fatal(
                    "CAARRDATAInvalid",
                    "CAA record must be: flags tag \"value\"",
                );
            }
        }
        _ => {
            if value.trim().is_empty() {
                return fatal(&format!("{rtype}RRDATAEmpty"), "Value is empty");
            }
        }
    }
    Ok(())
}

fn domain(value: &str) -> Result<(), String> {
    Name::parse(value)
        .map(|_| ())
        .map_err(|e| format!("Invalid Resource Record: {}", e.message(value)))
}

enum TxtProblem {
    NotQuoted,
    TooLong,
}

/// A TXT/SPF value is one or more `"..."` strings separated by spaces; inside, `\"`
/// and `\\` and `\ddd` escapes each count as one octet, and each string holds at
/// most 255 octets ("TXT record type" in "Supported DNS record types").
fn character_strings(value: &str) -> Result<(), TxtProblem> {
    let bytes = value.as_bytes();
    let mut i = 0;
    let mut strings = 0;
    loop {
        if strings > 0 {
            let start = i;
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            if i == bytes.len() {
                break;
            }
            if i == start {
                return Err(TxtProblem::NotQuoted);
            }
        }
        if bytes.get(i) != Some(&b'"') {
            return Err(TxtProblem::NotQuoted);
        }
        i += 1;
        let mut octets = 0;
        loop {
            match bytes.get(i) {
                None => return Err(TxtProblem::NotQuoted),
                Some(b'"') => {
                    i += 1;
                    break;
                }
                Some(b'\\') => {
                    let digits = bytes
                        .get(i + 1..i + 4)
                        .filter(|d| d.iter().all(u8::is_ascii_digit));
                    i += if digits.is_some() { 4 } else { 2 };
                    if i > bytes.len() {
                        return Err(TxtProblem::NotQuoted);
                    }
                }
                Some(_) => i += 1,
            }
            octets += 1;
        }
        if octets > MAX_CHARACTER_STRING {
            return Err(TxtProblem::TooLong);
        }
        strings += 1;
        if i == bytes.len() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    fn message(rtype: &str, value: &str) -> String {
        check(rtype, value).unwrap_err()
    }

    #[test]
    fn addresses() {
        assert!(check("A", "192.0.2.1").is_ok());
        assert_eq!(
            message("A", "192.0.2"),
            "Invalid Resource Record: FATAL problem: ARRDATAIllegalIPv4Address (Value is not a valid IPv4 address) encountered with '192.0.2'"
        );
        assert_eq!(
            message("A", "192.0.2.1, 192.0.2.2"),
            "Invalid Resource Record: FATAL problem: ARRDATANotSingleField (Value contains spaces) encountered with '192.0.2.1, 192.0.2.2'"
        );
        assert!(check("A", "2001:db8::1").is_err());
        assert!(check("AAAA", "2001:db8::1").is_ok());
        assert!(message("AAAA", "192.0.2.1").contains("AAAARRDATAIllegalIPv6Address"));
    }

    #[test]
    fn srv() {
        assert!(check("SRV", "0 5 8080 web-1.example.com.").is_ok());
        assert_eq!(
            message(
                "SRV",
                "1 1 32769 ip-10-0-6-110.testapi. eu-central-1.compute.internal."
            ),
            "Invalid Resource Record: FATAL problem: SRVRRDATANotFourFields (SRV record doesn't have 4 fields) encountered with '1 1 32769 ip-10-0-6-110.testapi. eu-central-1.compute.internal.'"
        );
        assert!(message("SRV", "0 0 65536 a.example.com").contains("SRVRRDATAIllegalPort"));
        assert!(message("SRV", "-1 0 80 a.example.com").contains("SRVRRDATAIllegalPriority"));
        assert!(message("SRV", "0 0 80 a..example.com").contains("DomainLabelEmpty"));
    }

    #[test]
    fn txt() {
        assert!(check("TXT", "\"hello world\"").is_ok());
        assert!(check("TXT", "\"a\" \"b\"").is_ok());
        assert!(check("TXT", "\"\"").is_ok());
        assert!(check("TXT", r#""say \"hi\" \\ \065""#).is_ok());
        assert!(check("TXT", &format!("\"{}\"", "x".repeat(255))).is_ok());
        assert!(
            check(
                "TXT",
                &format!("\"{}\" \"{}\"", "x".repeat(255), "y".repeat(255))
            )
            .is_ok()
        );
        assert_eq!(
            message("TXT", "hello"),
            "Invalid Resource Record: FATAL problem: InvalidCharacterString (Value should be enclosed in quotation marks) encountered with 'hello'"
        );
        assert!(message("TXT", "\"open").contains("InvalidCharacterString"));
        assert!(message("TXT", "\"a\"\"b\"").contains("InvalidCharacterString"));
        assert!(message("TXT", "\"a\" b").contains("InvalidCharacterString"));
        assert!(
            message("TXT", &format!("\"{}\"", "x".repeat(256)))
                .contains("CharacterStringTooLong (Value is too long)")
        );
    }

    #[test]
    fn names_and_others() {
        assert!(check("CNAME", "target.example.net").is_ok());
        assert!(check("PTR", "web-1.example.com.").is_ok());
        assert!(message("CNAME", "a b").contains("CNAMERRDATANotSingleField"));
        assert!(check("MX", "10 mail.example.com").is_ok());
        assert!(check("MX", "mail.example.com").is_err());
        assert!(check("CAA", "0 issue \"letsencrypt.org\"").is_ok());
        assert!(check("CAA", "0 issue letsencrypt.org").is_err());
        assert!(
            check(
                "SOA",
                "ns-1.awsdns-1.com. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400"
            )
            .is_ok()
        );
        assert!(check("SOA", "ns-1.awsdns-1.com.").is_err());
    }
}
