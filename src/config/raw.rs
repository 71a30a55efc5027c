//! The configuration's TOML as serde reads it: unknown keys refused, every
//! value kept with its span so that problems can name their line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::model::{ConfigError, Problem};

pub(super) type S<T> = Spanned<T>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub instance: Option<RawInstance>,
    #[serde(default)]
    pub providers: BTreeMap<String, S<RawProvider>>,
    #[serde(default)]
    pub host: Vec<S<RawName>>,
    #[serde(default)]
    pub round_robin: Vec<S<RawName>>,
    #[serde(default)]
    pub srv: Vec<S<RawSrv>>,
    #[serde(default)]
    pub service: Vec<S<RawService>>,
    #[serde(default)]
    pub check: Vec<S<RawCheck>>,
    #[serde(default)]
    pub lease: Option<S<RawLease>>,
    #[serde(default)]
    pub agent: Option<RawAgent>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawInstance {
    pub metadata: Option<S<String>>,
    pub address: Option<S<String>>,
    pub ipv6: Option<bool>,
    pub id: Option<S<String>>,
    pub ipv4: Option<S<String>>,
    pub hostname: Option<S<String>>,
    pub region: Option<S<String>>,
    pub metadata_endpoint: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    #[serde(rename = "type")]
    pub kind: S<String>,
    pub zone: Option<S<String>>,
    pub zone_id: Option<S<String>>,
    pub routing: Option<S<String>>,
    pub endpoint: Option<S<String>>,
    pub token_file: Option<S<String>>,
    pub proxied: Option<S<bool>>,
    pub server: Option<S<String>>,
    pub tsig_key_file: Option<S<String>>,
    pub domain: Option<S<String>>,
    pub interfaces: Option<S<Vec<String>>>,
    pub service_file: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawName {
    pub providers: S<Vec<String>>,
    pub name: S<String>,
    pub ttl: Option<S<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSrv {
    pub providers: S<Vec<String>>,
    pub name: S<String>,
    pub port: S<i64>,
    pub priority: Option<S<i64>>,
    pub weight: Option<S<i64>>,
    pub target: S<String>,
    pub ttl: Option<S<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub providers: S<Vec<String>>,
    #[serde(rename = "type")]
    pub service_type: S<String>,
    pub instance: S<String>,
    pub port: S<i64>,
    pub priority: Option<S<i64>>,
    pub weight: Option<S<i64>>,
    pub target: Option<S<String>>,
    #[serde(default)]
    pub txt: BTreeMap<String, String>,
    pub ttl: Option<S<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub http: Option<S<String>>,
    pub tcp: Option<S<String>>,
    pub exec: Option<S<Vec<String>>>,
    pub interval: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub rise: Option<S<i64>>,
    pub fall: Option<S<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLease {
    pub ttl: Option<S<String>>,
    pub reap: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub reconcile_interval: Option<S<String>>,
    pub notice_interval: Option<S<String>>,
    pub drain: Option<S<String>>,
    pub stop_timeout: Option<S<String>>,
    pub join_spread: Option<S<String>>,
    pub state_dir: Option<S<String>>,
    pub metrics_textfile: Option<S<String>>,
    pub metrics_listen: Option<S<String>>,
}

/// The TOML of a configuration, its syntax and key names checked.
pub(super) fn parse_raw(source_name: &str, text: &str) -> Result<RawConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        let snippet = line
            .and_then(|l| text.lines().nth(l - 1))
            .map(str::trim)
            .unwrap_or("");
        ConfigError {
            source_name: source_name.to_string(),
            problems: vec![Problem {
                line,
                key: if snippet.is_empty() {
                    String::new()
                } else {
                    format!("`{snippet}`")
                },
                message: e.message().trim().to_string(),
            }],
        }
    })
}

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    #[test]
    fn unknown_keys_name_the_line() {
        let text = "[providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\n\n[[host]]\nproviders = [\"r53\"]\nnmae = \"x\"\n";
        let e = parse("t.toml", text).unwrap_err();
        assert_eq!(e.problems[0].line, Some(7));
        assert!(
            e.problems[0].message.contains("unknown field `nmae`"),
            "{e}"
        );
    }
}
