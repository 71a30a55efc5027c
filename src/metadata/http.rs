//! The HTTP plumbing every metadata client shares: one short-fused client, a
//! bounded retry of what is worth retrying, 404 as "absent", and errors that
//! name the cloud, the URL and what came back.
//!
//! Metadata services are link-local and answer in milliseconds, or not at all:
//! short timeouts, no proxy (a proxy would answer for a service it cannot reach),
//! and [`Backoff::METADATA`] between attempts.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use super::MetadataError;
use crate::fail::Fail;
use crate::retry::{Backoff, retry};

/// The longest metadata answer read: the largest real ones (Azure's
/// instance document, OpenStack's meta_data.json) are a few KiB.
const MAX_ANSWER: usize = 1024 * 1024;

/// How long a probe (`auto`) may take, all requests of it together.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// Where the clouds are probed and read when no endpoint is configured: the
/// cloud's own address, unless `DNSREG_METADATA_PROBE_ROOT` points elsewhere
/// (tests, and trying a configuration against the stand-in).
pub fn default_base(cloud_default: &str) -> String {
    std::env::var("DNSREG_METADATA_PROBE_ROOT")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| cloud_default.to_string())
        .trim_end_matches('/')
        .to_string()
}

/// The base for a cloud: the configured endpoint, else [`default_base`].
pub fn base(endpoint: Option<&str>, cloud_default: &str) -> String {
    match endpoint {
        Some(e) => e.trim_end_matches('/').to_string(),
        None => default_base(cloud_default),
    }
}

/// One metadata service: which cloud, where, and the client to reach it.
pub struct Http {
    pub cloud: &'static str,
    base: String,
    client: reqwest::Client,
}

/// One request: what to send and how long to wait for it.
pub struct Call<'a> {
    pub method: Method,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    /// Overrides the client's 2 s request timeout.
    pub timeout: Option<Duration>,
    /// Said instead of "timed out" when no answer comes in time.
    pub on_timeout: Option<&'a str>,
}

impl<'a> Call<'a> {
    pub fn get(path: &'a str, headers: &'a [(&'a str, &'a str)]) -> Call<'a> {
        Call {
            method: Method::GET,
            path,
            headers,
            timeout: None,
            on_timeout: None,
        }
    }
}

/// What came back: the status and the body.
pub struct Reply {
    pub status: StatusCode,
    pub body: String,
    /// The response headers, for services that sign their answers
    /// (GCP's `Metadata-Flavor: Google`).
    pub headers: reqwest::header::HeaderMap,
}

impl Http {
    pub fn new(cloud: &'static str, base: String) -> Http {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .expect("a plain HTTP client builds");
        Http {
            cloud,
            base,
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn err(&self, path: &str, what: impl Into<String>) -> MetadataError {
        MetadataError {
            cloud: self.cloud,
            url: self.url(path),
            what: what.into(),
        }
    }

    fn build(&self, call: &Call<'_>) -> reqwest::RequestBuilder {
        let mut req = self
            .client
            .request(call.method.clone(), self.url(call.path));
        for (k, v) in call.headers {
            req = req.header(*k, *v);
        }
        if let Some(t) = call.timeout {
            req = req.timeout(t);
        }
        req
    }

    /// Sends `call`, retrying transport failures and 5xx a bounded number of
    /// times; any other status is returned for the caller to judge.
    pub async fn request(&self, call: &Call<'_>) -> Result<Reply, MetadataError> {
        retry(
            Backoff::METADATA,
            |_| async {
                match self.build(call).send().await {
                    Ok(r) if r.status().is_server_error() => {
                        Err(Fail::Transient(format!("HTTP {}", r.status())))
                    }
                    Ok(r) => {
                        let status = r.status();
                        let headers = r.headers().clone();
                        let body = crate::net::read_capped(r, MAX_ANSWER)
                            .await
                            .map_err(Fail::Transient)?;
                        Ok(Reply {
                            status,
                            body,
                            headers,
                        })
                    }
                    Err(e) if e.is_timeout() => Err(Fail::Transient(
                        call.on_timeout
                            .unwrap_or("no answer in time (timed out)")
                            .to_string(),
                    )),
                    Err(e) => Err(Fail::Transient(format!("unreachable: {}", error_chain(&e)))),
                }
            },
            |_| true,
        )
        .await
        .map_err(|f| self.err(call.path, f.to_string()))
    }

    /// GETs `path`: `Some(body)` on 2xx, `None` on 404 (absent), an error naming
    /// the status otherwise.
    pub async fn get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Option<String>, MetadataError> {
        let reply = self.request(&Call::get(path, headers)).await?;
        match reply.status {
            s if s.is_success() => Ok(Some(reply.body)),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(self.err(path, describe(s, &reply.body))),
        }
    }

    /// GETs a plain-text value: trimmed, and an empty answer is as absent as a 404.
    pub async fn value(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Option<String>, MetadataError> {
        Ok(self
            .get(path, headers)
            .await?
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()))
    }

    /// A probe that passes when `path` answers 2xx with a numeric id (the
    /// DigitalOcean and Hetzner services, whose ids are numbers).
    pub async fn probe_numeric_id(&self, path: &str) -> bool {
        match self.probe(Call::get(path, &[])).await {
            Some(r) => {
                let id = r.body.trim();
                r.status.is_success() && !id.is_empty() && id.chars().all(|c| c.is_ascii_digit())
            }
            None => false,
        }
    }

    /// GETs `path` that must be there.
    pub async fn required(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<String, MetadataError> {
        self.get(path, headers)
            .await?
            .ok_or_else(|| self.err(path, "HTTP 404: the instance has no such value"))
    }

    /// GETs the plain-text instance id at `path`, which must be there, and
    /// checks that it is one.
    pub async fn instance_id(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<String, MetadataError> {
        let id = self.required(path, headers).await?.trim().to_string();
        check_id(self, path, &id)?;
        Ok(id)
    }

    /// GETs a plain-text address: absent as [`Http::value`] says, an error
    /// naming what came back when it is no address.
    pub async fn address<T: std::str::FromStr>(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Option<T>, MetadataError> {
        let v = self.value(path, headers).await?;
        parse_ip(self, path, v.as_deref())
    }

    /// GETs a JSON document.
    pub async fn json(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Option<serde_json::Value>, MetadataError> {
        self.get(path, headers)
            .await?
            .map(|body| self.parse_json(path, &body))
            .transpose()
    }

    /// GETs a JSON document that must be there; `absent` is what a 404 says.
    pub async fn document(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        absent: &str,
    ) -> Result<serde_json::Value, MetadataError> {
        self.json(path, headers)
            .await?
            .ok_or_else(|| self.err(path, absent))
    }

    /// Parses `body`, the answer at `path`, as JSON, or says what came back.
    pub fn parse_json(&self, path: &str, body: &str) -> Result<serde_json::Value, MetadataError> {
        serde_json::from_str(body).map_err(|e| {
            self.err(
                path,
                format!("the answer is not JSON ({e}): {:?}", shown(body)),
            )
        })
    }

    /// The instance id at `pointer` in the document read from `path`,
    /// checked; `field` names it when the document has none.
    pub fn id_in(
        &self,
        path: &str,
        doc: &serde_json::Value,
        pointer: &str,
        field: &str,
    ) -> Result<String, MetadataError> {
        let id = str_at(doc, pointer)
            .ok_or_else(|| self.err(path, format!("the document has no {field}")))?
            .to_string();
        check_id(self, path, &id)?;
        Ok(id)
    }

    /// The error for an answer at `path` that should have been an address.
    pub fn not_an_address(&self, path: &str, s: &str) -> MetadataError {
        self.err(path, format!("not an address: {:?}", shown(s)))
    }

    /// A probe that passes when `path` answers 2xx with a JSON document that
    /// `is_ours` recognises as the cloud's (a status alone could be anyone's).
    pub async fn probe_json(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        is_ours: impl FnOnce(&serde_json::Value) -> bool,
    ) -> bool {
        match self.probe(Call::get(path, headers)).await {
            Some(r) if r.status.is_success() => serde_json::from_str::<serde_json::Value>(&r.body)
                .ok()
                .is_some_and(|v| is_ours(&v)),
            _ => false,
        }
    }

    /// One quick request for `auto`: no retry, [`PROBE_TIMEOUT`]; `None` for
    /// anything but an answer.
    pub async fn probe(&self, call: Call<'_>) -> Option<Reply> {
        let call = Call {
            timeout: Some(PROBE_TIMEOUT),
            ..call
        };
        let r = self.build(&call).send().await.ok()?;
        let status = r.status();
        let headers = r.headers().clone();
        let body = crate::net::read_capped(r, MAX_ANSWER).await.ok()?;
        Some(Reply {
            status,
            body,
            headers,
        })
    }
}

/// An error with its causes, `a: b: c`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// `HTTP 403 Forbidden: "<first bytes of the body>"`.
pub fn describe(status: StatusCode, body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {:?}", shown(body))
    }
}

/// The first 60 characters, for error messages.
pub fn shown(s: &str) -> String {
    s.trim().chars().take(60).collect()
}

/// An identifier metadata may plausibly hold: a captive portal or a proxy
/// answers 200 with a web page, which must not become a DNS name.
pub fn plausible_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// Checks an identifier, or says what came back.
pub fn check_id(http: &Http, path: &str, s: &str) -> Result<(), MetadataError> {
    if plausible_id(s) {
        Ok(())
    } else {
        Err(http.err(
            path,
            format!(
                "the answer is not an instance id: {:?}; is something else answering at this address?",
                shown(s)
            ),
        ))
    }
}

/// Parses an optional address, or says what came back.
pub fn parse_ip<T: std::str::FromStr>(
    http: &Http,
    path: &str,
    v: Option<&str>,
) -> Result<Option<T>, MetadataError> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<T>()
            .map(Some)
            .map_err(|_| http.not_an_address(path, s)),
    }
}

/// A string at a JSON pointer, if it is a non-empty string.
pub fn str_at<'v>(v: &'v serde_json::Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}
