//! SigV4 `Authorization` headers, checked the way AWS checks them.
//!
//! Every request must carry a well-formed AWS Signature Version 4 header for
//! the `route53` service, with an `X-Amz-Date` (or `Date`) header that agrees
//! with the credential scope; AWS answers a missing or malformed one with 403
//! (MissingAuthenticationToken, IncompleteSignature, InvalidClientTokenId,
//! SignatureDoesNotMatch; "Common Errors" in the API reference, and the texts
//! AWS front ends send). The signature is recomputed as described in "Create
//! a signed AWS API request" (IAM User Guide) and must match, with the key
//! pair [`super::TEST_CREDENTIALS`] unless another is set
//! ([`super::Route53Server::set_credentials`]); only a test that says so
//! (`set_credentials(None)`) gets any access key accepted and the signature
//! value left unchecked.

use axum::http::{HeaderMap, StatusCode, header};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::http::ApiError;

/// The one key pair requests must be signed with, when set.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    pub(crate) access_key: String,
    pub(crate) secret_key: String,
}

/// What of a request the signature covers.
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    /// The path exactly as it came over the wire (still percent-encoded).
    pub(crate) path: &'a str,
    /// The raw query string, without `?`.
    pub(crate) query: &'a str,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a [u8],
}

fn forbidden(code: &'static str, message: impl Into<String>) -> Result<(), ApiError> {
    Err(ApiError::new(StatusCode::FORBIDDEN, code, message))
}

const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. \
     Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/// Checks the request's `Authorization` header; with `keys`, also its signature.
pub(crate) fn check(request: &Request<'_>, keys: Option<&Keys>) -> Result<(), ApiError> {
    let headers = request.headers;
    let Some(authorization) = headers.get(header::AUTHORIZATION) else {
        return forbidden("MissingAuthenticationToken", "Missing Authentication Token");
    };
    let authorization = authorization.to_str().unwrap_or("");
    let (algorithm, rest) = authorization.split_once(' ').unwrap_or((authorization, ""));
    if algorithm != "AWS4-HMAC-SHA256" {
        return forbidden(
            "IncompleteSignature",
            format!("Unsupported AWS 'algorithm': '{algorithm}'. Authorization={authorization}"),
        );
    }
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let amz_date = headers.get("x-amz-date").and_then(|d| d.to_str().ok());
    let http_date = headers.get(header::DATE).and_then(|d| d.to_str().ok());
    let mut missing = Vec::new();
    for (what, present) in [
        ("Credential", credential.is_some()),
        ("Signature", signature.is_some()),
        ("SignedHeaders", signed_headers.is_some()),
    ] {
        if !present {
            missing.push(format!("Authorization header requires '{what}' parameter."));
        }
    }
    if amz_date.is_none() && http_date.is_none() {
        missing.push(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                .to_owned(),
        );
    }
    if !missing.is_empty() {
        return forbidden(
            "IncompleteSignature",
            format!("{} Authorization={authorization}", missing.join(" ")),
        );
    }
    let (credential, signed_headers, signature) = (
        credential.unwrap_or(""),
        signed_headers.unwrap_or(""),
        signature.unwrap_or(""),
    );
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[0].is_empty() {
        return forbidden(
            "IncompleteSignature",
            format!(
                "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
            ),
        );
    }
    if !scope[0].bytes().all(|b| b.is_ascii_alphanumeric()) {
        return forbidden(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        );
    }
    if let Some(date) = amz_date {
        let basic = date.len() == 16
            && date.as_bytes()[8] == b'T'
            && date.ends_with('Z')
            && date
                .bytes()
                .enumerate()
                .all(|(i, b)| matches!(i, 8 | 15) || b.is_ascii_digit());
        if !basic {
            return forbidden(
                "IncompleteSignature",
                format!(
                    "Date must be in ISO-8601 'basic format'. Got '{date}'. See http://en.wikipedia.org/wiki/ISO_8601"
                ),
            );
        }
        if scope[1] != &date[..8] {
            return forbidden(
                "SignatureDoesNotMatch",
                format!(
                    "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{date}'.",
                    scope[1],
                    &date[..8]
                ),
            );
        }
    }
    if scope[2].is_empty() {
        return forbidden(
            "SignatureDoesNotMatch",
            "Credential should be scoped to a valid region. ",
        );
    }
    if scope[3] != "route53" {
        return forbidden(
            "SignatureDoesNotMatch",
            "Credential should be scoped to correct service: 'route53'. ",
        );
    }
    if scope[4] != "aws4_request" {
        return forbidden(
            "SignatureDoesNotMatch",
            format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'. ",
                scope[4]
            ),
        );
    }
    if !signed_headers.split(';').any(|h| h == "host") {
        return forbidden(
            "IncompleteSignature",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        );
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return forbidden("SignatureDoesNotMatch", MISMATCH);
    }
    let Some(keys) = keys else { return Ok(()) };
    if scope[0] != keys.access_key {
        return forbidden(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        );
    }
    let Some(amz_date) = amz_date else {
        // Only X-Amz-Date is supported for recomputing signatures; every SDK sends it.
        return forbidden("SignatureDoesNotMatch", MISMATCH);
    };
    let expected = signature_for(
        request,
        signed_headers,
        amz_date,
        &scope[1..4],
        &keys.secret_key,
    );
    if expected != signature.to_ascii_lowercase() {
        return forbidden("SignatureDoesNotMatch", MISMATCH);
    }
    Ok(())
}

/// The `Authorization` header of a request signed as an SDK signs it (headers
/// `host` and `x-amz-date`, region us-east-1), for the unit tests' client.
#[cfg(test)]
pub(super) fn authorization(
    request: &Request<'_>,
    amz_date: &str,
    (access_key, secret): (&str, &str),
) -> String {
    let date = &amz_date[..8];
    let signature = signature_for(
        request,
        "host;x-amz-date",
        amz_date,
        &[date, "us-east-1", "route53"],
        secret,
    );
    format!(
        "AWS4-HMAC-SHA256 Credential={access_key}/{date}/us-east-1/route53/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature={signature}"
    )
}

/// The signature of `request` for `signed_headers`, at `amz_date`, in the scope
/// `[date, region, service]`, with `secret`.
fn signature_for(
    request: &Request<'_>,
    signed_headers: &str,
    amz_date: &str,
    scope: &[&str],
    secret: &str,
) -> String {
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let values: Vec<String> = request
            .headers
            .get_all(name)
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let payload_hash = match request
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
    {
        Some(hash) => hash.to_owned(),
        None => hex(&Sha256::digest(request.body)),
    };
    let path = if request.path.is_empty() {
        "/"
    } else {
        request.path
    };
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        request.method,
        encode(path.as_bytes(), true),
        canonical_query(request.query),
    );
    let (date, region, service) = (scope[0], scope[1], scope[2]);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    hex(&hmac(&key, string_to_sign.as_bytes()))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 3986 percent-encoding of everything but unreserved characters (and `/`
/// in paths). Applied to the path as sent, this is SigV4's double encoding for
/// services other than S3.
fn encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Parameters decoded, re-encoded, sorted by name then value, joined with `&`.
fn canonical_query(raw: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (encode(&decode(k), false), encode(&decode(v), false))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::*;

    /// The get-vanilla family of AWS's Signature Version 4 test suite.
    #[test]
    fn signatures_match_the_aws_test_suite() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        let sign = |path: &str, query: &str| {
            let request = Request {
                method: "GET",
                path,
                query,
                headers: &headers,
                body: b"",
            };
            signature_for(
                &request,
                "host;x-amz-date",
                "20150830T123600Z",
                &["20150830", "us-east-1", "service"],
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            )
        };
        assert_eq!(
            sign("/", ""),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert_eq!(
            sign("/", "Param2=value2&Param1=value1"),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
    }

    #[test]
    fn query_is_canonicalised() {
        assert_eq!(canonical_query("b=2&a=%2A.x&A=0"), "A=0&a=%2A.x&b=2");
        assert_eq!(canonical_query("name=a b&x"), "name=a%20b&x=");
    }
}
