//! `[providers.NAME]`: each provider type's keys and their checks.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

use super::checker::Checker;
use super::raw::{RawProvider, S};
use crate::model::{
    CloudflareConfig, ProviderConfig, ProviderKind, Rfc2136Config, Route53Config, Routing,
    ServerAddr, ZoneRef,
};
use crate::record::DomainName;

/// Every `[providers.NAME]` table, then each pair of them that names one zone.
pub(super) fn validate_providers(
    c: &mut Checker,
    raw: &BTreeMap<String, S<RawProvider>>,
) -> Vec<ProviderConfig> {
    let mut providers = Vec::new();
    for (name, p) in raw {
        if let Some(pc) = validate_provider(c, name, p) {
            providers.push(pc);
        }
    }
    for (i, a) in providers.iter().enumerate() {
        for b in &providers[..i] {
            if same_zone(a, b) {
                let span = raw.get(&a.name).map_or(0..0, S::span);
                c.problem(
                    span,
                    format!("providers.{}", a.name),
                    format!(
                        "names the same zone as providers.{}: each entry would take the other's records in the zone's registry for its own to remove; put all the records of one zone under one provider entry",
                        b.name
                    ),
                );
            }
        }
    }
    providers
}

/// Whether two provider entries reach the same zone at the same service
/// (so far as a configuration can tell: Route53's public and private zones
/// may share a name, and are told apart by their ids when both are given).
fn same_zone(a: &ProviderConfig, b: &ProviderConfig) -> bool {
    match (&a.kind, &b.kind) {
        (ProviderKind::Route53(x), ProviderKind::Route53(y)) => {
            let parts = |z: &ZoneRef| match z {
                ZoneRef::Name(n) => (Some(n.clone()), None),
                ZoneRef::Id(i) => (None, Some(i.clone())),
                ZoneRef::Both(n, i) => (Some(n.clone()), Some(i.clone())),
            };
            let ((xn, xi), (yn, yi)) = (parts(&x.zone), parts(&y.zone));
            x.endpoint == y.endpoint
                && match (xi, yi) {
                    (Some(xi), Some(yi)) => xi == yi,
                    _ => xn.is_some() && xn == yn,
                }
        }
        (ProviderKind::Cloudflare(x), ProviderKind::Cloudflare(y)) => {
            x.endpoint == y.endpoint && x.zone == y.zone
        }
        (ProviderKind::Rfc2136(x), ProviderKind::Rfc2136(y)) => {
            x.server == y.server && x.zone == y.zone
        }
        _ => false,
    }
}

/// One `[providers.NAME]` table, checked by its `type`.
fn validate_provider(c: &mut Checker, name: &str, p: &S<RawProvider>) -> Option<ProviderConfig> {
    let key = format!("providers.{name}");
    let raw = p.get_ref();
    if let Err(e) = crate::registry::instance_label(name) {
        c.problem(
            p.span(),
            key.clone(),
            format!("the table name is not usable: {e}"),
        );
    }
    match raw.kind.get_ref().as_str() {
        "route53" => validate_route53(c, name, p),
        "cloudflare" => validate_cloudflare(c, name, p),
        "rfc2136" => validate_rfc2136(c, name, p),
        "mdns" => {
            let refused = refuse_foreign_keys(c, &key, "mdns", raw);
            super::mdns::validate_mdns(c, name, p).filter(|_| !refused)
        }
        other => {
            c.problem(
                raw.kind.span(),
                format!("{key}.type"),
                format!("`{other}` is not a provider type; write \"route53\", \"cloudflare\", \"rfc2136\" or \"mdns\""),
            );
            None
        }
    }
}

/// Why route53 refuses the keys of the other types.
const ROUTE53_CREDENTIALS: &str =
    "; route53 takes its credentials from the AWS chain (environment, profile, instance role)";
/// Why cloudflare refuses the keys of rfc2136.
const CLOUDFLARE_API: &str = "; cloudflare is reached over its API with token_file";

/// The keys each provider type refuses, in the order they are reported: the
/// type, the key, the type the key belongs to (`None`: more than one other),
/// and what to do instead. With the keys each `validate_*` below reads, this
/// is where a key of `[providers.NAME]` is told to belong to a provider type.
const FOREIGN_KEYS: [(&str, &str, Option<&str>, &str); 29] = [
    (
        "route53",
        "token_file",
        Some("cloudflare"),
        ROUTE53_CREDENTIALS,
    ),
    (
        "route53",
        "proxied",
        Some("cloudflare"),
        ROUTE53_CREDENTIALS,
    ),
    ("route53", "server", Some("rfc2136"), ROUTE53_CREDENTIALS),
    (
        "route53",
        "tsig_key_file",
        Some("rfc2136"),
        ROUTE53_CREDENTIALS,
    ),
    (
        "cloudflare",
        "routing",
        Some("route53"),
        "; on cloudflare each value is its own record already",
    ),
    ("cloudflare", "server", Some("rfc2136"), CLOUDFLARE_API),
    (
        "cloudflare",
        "tsig_key_file",
        Some("rfc2136"),
        CLOUDFLARE_API,
    ),
    (
        "rfc2136",
        "zone_id",
        None,
        "rfc2136 providers are named by zone; write zone = \"example.com\"",
    ),
    (
        "rfc2136",
        "routing",
        Some("route53"),
        "; RFC 2136 updates add and delete single records already",
    ),
    (
        "rfc2136",
        "endpoint",
        None,
        "rfc2136 providers are reached at `server`; write server = \"192.0.2.53:53\"",
    ),
    (
        "rfc2136",
        "token_file",
        Some("cloudflare"),
        "; rfc2136 signs updates with tsig_key_file",
    ),
    ("rfc2136", "proxied", Some("cloudflare"), ""),
    ("route53", "domain", Some("mdns"), ""),
    ("route53", "interfaces", Some("mdns"), ""),
    ("route53", "service_file", Some("mdns"), ""),
    ("cloudflare", "domain", Some("mdns"), ""),
    ("cloudflare", "interfaces", Some("mdns"), ""),
    ("cloudflare", "service_file", Some("mdns"), ""),
    ("rfc2136", "domain", Some("mdns"), ""),
    ("rfc2136", "interfaces", Some("mdns"), ""),
    ("rfc2136", "service_file", Some("mdns"), ""),
    ("mdns", "zone", None, MDNS_DOMAIN),
    ("mdns", "zone_id", None, MDNS_DOMAIN),
    ("mdns", "routing", Some("route53"), MDNS_LOCAL),
    ("mdns", "endpoint", None, MDNS_LOCAL_ALONE),
    ("mdns", "server", Some("rfc2136"), MDNS_LOCAL),
    ("mdns", "token_file", Some("cloudflare"), MDNS_LOCAL),
    ("mdns", "tsig_key_file", Some("rfc2136"), MDNS_LOCAL),
    ("mdns", "proxied", Some("cloudflare"), MDNS_LOCAL),
];

/// Why mdns refuses `zone`.
const MDNS_DOMAIN: &str =
    "mdns providers publish under `domain` (default \"local\"), not in a zone: remove it";
/// Why mdns refuses the keys of the other types.
const MDNS_LOCAL: &str = "; mdns answers on the local segment itself, with no server or account";
const MDNS_LOCAL_ALONE: &str =
    "mdns answers on the local segment itself, with no server or account: remove it";

/// Reports each key written in `raw` that provider type `kind` refuses
/// ([`FOREIGN_KEYS`]); true if there was any.
fn refuse_foreign_keys(c: &mut Checker, key: &str, kind: &str, raw: &RawProvider) -> bool {
    let mut refused = false;
    for (_, field, owner, advice) in FOREIGN_KEYS.iter().filter(|row| row.0 == kind) {
        let Some(span) = field_span(raw, field) else {
            continue;
        };
        let message = match owner {
            Some(owner) => {
                let article = if matches!(*owner, "rfc2136" | "mdns") {
                    "an"
                } else {
                    "a"
                };
                format!("`{field}` is {article} {owner} setting{advice}: remove it")
            }
            None => advice.to_string(),
        };
        c.problem(span, format!("{key}.{field}"), message);
        refused = true;
    }
    refused
}

/// Where `field` of `[providers.NAME]` was written, if it was.
fn field_span(raw: &RawProvider, field: &str) -> Option<Range<usize>> {
    match field {
        "zone" => raw.zone.as_ref().map(S::span),
        "zone_id" => raw.zone_id.as_ref().map(S::span),
        "routing" => raw.routing.as_ref().map(S::span),
        "endpoint" => raw.endpoint.as_ref().map(S::span),
        "token_file" => raw.token_file.as_ref().map(S::span),
        "proxied" => raw.proxied.as_ref().map(S::span),
        "server" => raw.server.as_ref().map(S::span),
        "tsig_key_file" => raw.tsig_key_file.as_ref().map(S::span),
        "domain" => raw.domain.as_ref().map(S::span),
        "interfaces" => raw.interfaces.as_ref().map(S::span),
        "service_file" => raw.service_file.as_ref().map(S::span),
        _ => unreachable!("FOREIGN_KEYS names `{field}`, which no provider type takes"),
    }
}

/// `[providers.NAME]` with `type = "route53"`.
fn validate_route53(c: &mut Checker, name: &str, p: &S<RawProvider>) -> Option<ProviderConfig> {
    let key = format!("providers.{name}");
    let raw = p.get_ref();
    refuse_foreign_keys(c, &key, "route53", raw);
    let zone = route53_zone(c, &key, p);
    let routing = match raw
        .routing
        .as_ref()
        .map(|r| (r.get_ref().as_str(), r.span()))
    {
        None | Some(("simple", _)) => Routing::Simple,
        Some(("multivalue", _)) => Routing::Multivalue,
        Some((other, span)) => {
            c.problem(
                span,
                format!("{key}.routing"),
                format!("`{other}` is not a routing mode; write \"simple\" or \"multivalue\""),
            );
            Routing::Simple
        }
    };
    let endpoint = endpoint(c, &key, raw, "https://route53.amazonaws.com");
    Some(ProviderConfig {
        name: name.to_string(),
        kind: ProviderKind::Route53(Route53Config {
            zone: zone?,
            routing,
            endpoint,
        }),
    })
}

/// A Route53 zone by name, by id, or both (then it is never looked up: for
/// fleets, not even once per instance).
fn route53_zone(c: &mut Checker, key: &str, p: &S<RawProvider>) -> Option<ZoneRef> {
    let raw = p.get_ref();
    match (&raw.zone, &raw.zone_id) {
        (Some(z), None) => zone_name(c, key, z).map(ZoneRef::Name),
        (Some(z), Some(id)) => {
            let name = zone_name(c, key, z);
            let id = hosted_zone_id(c, key, id);
            Some(ZoneRef::Both(name?, id?))
        }
        (None, Some(id)) => hosted_zone_id(c, key, id).map(ZoneRef::Id),
        (None, None) => {
            c.problem(
                p.span(),
                format!("{key}.zone"),
                "missing; write zone = \"example.com\" (or zone_id = \"Z...\")",
            );
            None
        }
    }
}

/// A Route53 `zone_id`, with or without its `/hostedzone/` prefix.
fn hosted_zone_id(c: &mut Checker, key: &str, id: &S<String>) -> Option<String> {
    let bare = id.get_ref().trim_start_matches("/hostedzone/");
    if !plausible_hosted_zone_id(bare) {
        c.problem(
            id.span(),
            format!("{key}.zone_id"),
            format!("`{bare}` is not a hosted zone id; write e.g. \"Z0123456789ABCDEFGHIJ\""),
        );
        None
    } else {
        Some(bare.to_string())
    }
}

/// A Route53 hosted zone id as Route53 writes them (`Z0123456789ABCDEFGHIJ`,
/// at most 32 characters): it goes into every request's URL, and the SDK
/// panics building a URL over 64 KiB.
pub fn plausible_hosted_zone_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.chars().all(|c| c.is_ascii_alphanumeric())
}

/// `[providers.NAME]` with `type = "cloudflare"`.
fn validate_cloudflare(c: &mut Checker, name: &str, p: &S<RawProvider>) -> Option<ProviderConfig> {
    let key = format!("providers.{name}");
    let raw = p.get_ref();
    let zone_id = cloudflare_zone_id(c, &key, raw);
    refuse_foreign_keys(c, &key, "cloudflare", raw);
    let zone = match &raw.zone {
        None if raw.zone_id.is_some() => None,
        _ => required_zone(c, &key, p),
    };
    let token_file = raw.token_file.as_ref().and_then(|t| token_file(c, &key, t));
    let endpoint = endpoint(c, &key, raw, "https://api.cloudflare.com/client/v4");
    if (raw.zone_id.is_some() && zone_id.is_none()) || raw.routing.is_some() {
        return None;
    }
    if raw.token_file.is_some() && token_file.is_none() {
        return None;
    }
    Some(ProviderConfig {
        name: name.to_string(),
        kind: ProviderKind::Cloudflare(CloudflareConfig {
            zone: zone?,
            zone_id,
            token_file,
            proxied: raw.proxied.as_ref().is_some_and(|v| *v.get_ref()),
            endpoint,
        }),
    })
}

/// A Cloudflare `zone_id`: 32 hexadecimal characters, and only beside `zone`.
fn cloudflare_zone_id(c: &mut Checker, key: &str, raw: &RawProvider) -> Option<String> {
    raw.zone_id.as_ref().and_then(|v| {
        let id = v.get_ref();
        if raw.zone.is_none() {
            c.problem(
                v.span(),
                format!("{key}.zone_id"),
                "cloudflare providers are named by zone; write zone = \"example.com\" too (zone_id alone is not enough to plan the names)",
            );
            None
        } else if id.len() != 32 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            c.problem(
                v.span(),
                format!("{key}.zone_id"),
                format!("`{id}` is not a Cloudflare zone id (32 hexadecimal characters, on the zone's Overview page)"),
            );
            None
        } else {
            Some(id.to_ascii_lowercase())
        }
    })
}

/// Cloudflare's `token_file`, checked without reading the secret: exists, is
/// a readable file, not readable by others (a warning: the agent still works).
fn token_file(c: &mut Checker, key: &str, t: &S<String>) -> Option<PathBuf> {
    let path = PathBuf::from(t.get_ref());
    match std::fs::File::open(&path).and_then(|f| f.metadata()) {
        Ok(m) if m.is_file() && m.len() == 0 => {
            c.problem(
                t.span(),
                format!("{key}.token_file"),
                format!("{} is empty; write the API token into it", path.display()),
            );
            None
        }
        Ok(m) if m.is_file() => {
            warn_if_others_can_read(&format!("{key}.token_file"), &path);
            Some(path)
        }
        Ok(_) => {
            c.problem(
                t.span(),
                format!("{key}.token_file"),
                format!(
                    "{} is not a file; write the path of a file holding the API token",
                    path.display()
                ),
            );
            None
        }
        Err(e) => {
            c.problem(
                t.span(),
                format!("{key}.token_file"),
                format!("cannot read {}: {e}; write the API token there (one line, mode 600) or drop token_file and set CLOUDFLARE_API_TOKEN", path.display()),
            );
            None
        }
    }
}

/// A secret file others can read still works, but deserves a word.
fn warn_if_others_can_read(key: &str, path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path)
        && m.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "{key}: {} is readable by other users (mode {:o}); chmod 600 it",
            path.display(),
            m.permissions().mode() & 0o777
        );
    }
}

/// `[providers.NAME]` with `type = "rfc2136"`.
fn validate_rfc2136(c: &mut Checker, name: &str, p: &S<RawProvider>) -> Option<ProviderConfig> {
    let key = format!("providers.{name}");
    let raw = p.get_ref();
    let refused = refuse_foreign_keys(c, &key, "rfc2136", raw);
    let zone = required_zone(c, &key, p);
    let server = match &raw.server {
        Some(v) => match ServerAddr::parse(v.get_ref()) {
            Some(a) => Some(a),
            None => {
                c.problem(
                    v.span(),
                    format!("{key}.server"),
                    format!("`{}` is not a server address; write an IP, IP:port or host:port, e.g. \"192.0.2.53:53\"", v.get_ref()),
                );
                None
            }
        },
        None => {
            c.problem(
                p.span(),
                format!("{key}.server"),
                "missing; write the primary server that takes updates, e.g. server = \"192.0.2.53:53\"",
            );
            None
        }
    };
    // The key is parsed here (no network) so that a wrong file is a
    // configuration error with its line, not a failure at the first update.
    let mut key_ok = true;
    let tsig_key_file = raw.tsig_key_file.as_ref().map(|t| {
        let path = PathBuf::from(t.get_ref());
        match crate::tsig::TsigKey::load(&path) {
            Ok(_) => warn_if_others_can_read(&format!("{key}.tsig_key_file"), &path),
            Err(e) => {
                c.problem(t.span(), format!("{key}.tsig_key_file"), e);
                key_ok = false;
            }
        }
        path
    });
    if refused || !key_ok {
        return None;
    }
    Some(ProviderConfig {
        name: name.to_string(),
        kind: ProviderKind::Rfc2136(Rfc2136Config {
            zone: zone?,
            server: server?,
            tsig_key_file,
        }),
    })
}

/// `zone`, which cloudflare and rfc2136 require.
fn required_zone(c: &mut Checker, key: &str, p: &S<RawProvider>) -> Option<DomainName> {
    match &p.get_ref().zone {
        Some(z) => zone_name(c, key, z),
        None => {
            c.problem(
                p.span(),
                format!("{key}.zone"),
                "missing; write zone = \"example.com\"",
            );
            None
        }
    }
}

/// A zone's name, as written in `zone`.
fn zone_name(c: &mut Checker, key: &str, z: &S<String>) -> Option<DomainName> {
    match DomainName::new(z.get_ref()) {
        Ok(z) => Some(z),
        Err(e) => {
            c.problem(
                z.span(),
                format!("{key}.zone"),
                format!("{e}; write the zone's name, e.g. \"example.com\""),
            );
            None
        }
    }
}

/// An API `endpoint` in place of the provider's own (`example`): https, or
/// plain http to a stand-in on loopback.
fn endpoint(c: &mut Checker, key: &str, raw: &RawProvider, example: &str) -> Option<String> {
    raw.endpoint.as_ref().map(|e| {
        let s = e.get_ref();
        if !(s.starts_with("https://") || s.starts_with("http://")) {
            c.problem(
                e.span(),
                format!("{key}.endpoint"),
                format!("`{s}` is not a URL; write e.g. \"{example}\""),
            );
        } else if !s.starts_with("https://") && !crate::net::is_loopback_url(s) {
            c.problem(
                e.span(),
                format!("{key}.endpoint"),
                format!("`{s}` is not https; credentials travel only over TLS (plain http only to a stand-in on loopback)"),
            );
        }
        s.clone()
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{ProviderKind, parse};

    #[test]
    fn an_rfc2136_provider_is_validated_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("tsig.key");
        std::fs::write(
            &key,
            "key \"dnsreg\" {\n\talgorithm hmac-sha512;\n\tsecret \"c2VjcmV0\";\n};\n",
        )
        .unwrap();
        let text = format!(
            "[instance]\nmetadata = \"none\"\nid = \"i-1\"\nipv4 = \"192.0.2.1\"\n\n[providers.ns]\ntype = \"rfc2136\"\nzone = \"example.test\"\nserver = \"192.0.2.53\"\ntsig_key_file = \"{}\"\n\n[[round_robin]]\nproviders = [\"ns\"]\nname = \"www\"\n",
            key.display()
        );
        let c = parse("t.toml", &text).unwrap();
        let ProviderKind::Rfc2136(r) = &c.providers[0].kind else {
            panic!("{:?}", c.providers[0]);
        };
        assert_eq!(r.server.to_string(), "192.0.2.53:53");
        assert_eq!(r.tsig_key_file.as_deref(), Some(key.as_path()));
        // A routing key of route53 is refused with where it belongs.
        let e = parse(
            "t.toml",
            &text.replace(
                "type = \"rfc2136\"",
                "type = \"rfc2136\"\nrouting = \"simple\"",
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("providers.ns.routing"), "{e}");
        assert!(e.contains("route53 setting"), "{e}");
    }
}
