//! `[providers.NAME] type = "mdns"`: its keys, and what multicast DNS cannot
//! publish of the record tables routed to it (RFC 6762/6763, and the
//! responder dnsreg uses, mdns-sd).

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::checker::Checker;
use super::raw::{RawConfig, RawProvider, S};
use crate::model::{MdnsConfig, Problem, ProviderConfig, ProviderKind, RecordSpec, SpecKind};
use crate::record::DomainName;

/// The host label a `[[service]]` through mdns providers alone points at
/// when neither `target` nor a `[[host]]` says one: a name of this
/// instance's own, so that the responder never publishes the machine's
/// host name, which avahi-daemon publishes too (a goodbye or a different
/// address set for it would flush or rename avahi's).
pub const DEFAULT_HOST: &str = "{instance_id}";

/// The longest service name label (RFC 6763 §7.2: 15 characters after `_`).
const SERVICE_NAME_MAX: usize = 15;

/// `[providers.NAME]` with `type = "mdns"` (its foreign keys are refused by
/// the caller).
pub(super) fn validate_mdns(
    c: &mut Checker,
    name: &str,
    p: &S<RawProvider>,
) -> Option<ProviderConfig> {
    let key = format!("providers.{name}");
    let raw = p.get_ref();
    let domain = match &raw.domain {
        None => Some(DomainName::new("local").expect("valid")),
        Some(d) if matches!(d.get_ref().trim_end_matches('.'), "local" | "LOCAL") => {
            Some(DomainName::new("local").expect("valid"))
        }
        Some(d) => {
            c.problem(
                d.span(),
                format!("{key}.domain"),
                format!(
                    "`{}` is not a domain multicast DNS is answered in here: the responder (mdns-sd) publishes only under .local (RFC 6762 §3); write domain = \"local\" or remove it",
                    d.get_ref()
                ),
            );
            None
        }
    };
    let mut interfaces = Vec::new();
    if let Some(list) = &raw.interfaces {
        for i in list.get_ref() {
            if i.is_empty() || i.len() > 15 || i.contains(['/', ' ']) {
                c.problem(
                    list.span(),
                    format!("{key}.interfaces"),
                    format!("`{i}` is not an interface name; write names as `ip link` shows them, e.g. [\"eth0\"]"),
                );
            }
            interfaces.push(i.clone());
        }
    }
    let service_file = raw.service_file.as_ref().map_or_else(
        || PathBuf::from(format!("/etc/avahi/services/dnsreg-{name}.service")),
        |f| PathBuf::from(f.get_ref()),
    );
    if let Some(f) = &raw.service_file
        && !f.get_ref().ends_with(".service")
    {
        c.problem(
            f.span(),
            format!("{key}.service_file"),
            "avahi-daemon loads only files ending in .service; write e.g. \"/etc/avahi/services/dnsreg-web.service\"",
        );
    }
    Some(ProviderConfig {
        name: name.to_string(),
        kind: ProviderKind::Mdns(MdnsConfig {
            domain: domain?,
            interfaces,
            service_file,
        }),
    })
}

/// The names of the `[providers]` tables of type mdns, as written.
pub(super) fn mdns_names(raw: &RawConfig) -> BTreeSet<String> {
    raw.providers
        .iter()
        .filter(|(_, p)| p.get_ref().kind.get_ref() == "mdns")
        .map(|(n, _)| n.clone())
        .collect()
}

/// What an mdns provider cannot publish of the records routed to it: a
/// problem for each (exit 2), a warning for a TTL it publishes otherwise.
pub(super) fn mdns_record_problems(
    c: &mut Checker,
    raw: &RawConfig,
    records: &[RecordSpec],
    providers: &[ProviderConfig],
    line_of: impl Fn(&Checker, &str) -> Option<usize>,
) {
    for r in records {
        let Some(p) = providers
            .iter()
            .find(|p| matches!(p.kind, ProviderKind::Mdns(_)) && r.providers.contains(&p.name))
        else {
            continue;
        };
        let problem = |key: &str, message: String| (format!("{}.{key}", r.origin), message);
        let found = match &r.kind {
            SpecKind::RoundRobin { .. } => Some(problem(
                "providers",
                format!(
                    "a [[round_robin]] name cannot go through mdns provider `{}`: on multicast DNS each name belongs to one host, which defends it against every other (RFC 6762 §9); use a [[host]] name of this instance's own, or a [[service]] that several instances publish",
                    p.name
                ),
            )),
            SpecKind::Srv { .. } => Some(problem(
                "providers",
                format!(
                    "a bare [[srv]] rrset cannot go through mdns provider `{}`: browsers find services on multicast DNS through DNS-SD (RFC 6763); write a [[service]] with type = \"_name._tcp\" instead",
                    p.name
                ),
            )),
            SpecKind::Service {
                priority, weight, ..
            } if *priority != 0 || *weight != 0 => Some(problem(
                "priority",
                format!(
                    "mdns provider `{}` publishes SRV priority and weight 0 only (its responder, mdns-sd, cannot set them), so clients would not see {priority}/{weight}; remove priority and weight, or route this service to another provider",
                    p.name
                ),
            )),
            SpecKind::Service { service_type, .. }
                if service_type.split('.').next().map_or(0, str::len) > SERVICE_NAME_MAX + 1 =>
            {
                Some(problem(
                    "type",
                    format!(
                        "`{service_type}`: a service name is at most {SERVICE_NAME_MAX} characters after its `_` (RFC 6763 §7.2), and mdns provider `{}` refuses longer ones",
                        p.name
                    ),
                ))
            }
            _ => None,
        };
        if let Some((key, message)) = found {
            let line = line_of(c, &key);
            c.problems.push(Problem { line, key, message });
        } else if ttl_written(raw, &r.origin) {
            tracing::warn!(
                "{}.ttl: mdns provider `{}` publishes the TTLs of RFC 6762 §10 (120 s for host and SRV records, 75 min for PTR and TXT), not {} s; goodbyes remove its records at once when it leaves",
                r.origin,
                p.name,
                r.ttl
            );
        }
    }
}

/// What `dnsreg check` says of each mdns provider: who answers, in which
/// command.
pub fn mdns_notes(config: &crate::model::Config) -> Vec<String> {
    config
        .providers
        .iter()
        .filter_map(|p| match &p.kind {
            ProviderKind::Mdns(m) => Some(format!(
                "providers.{}: multicast DNS on the local segment only (routers do not forward it; anyone on the segment can answer too): `dnsreg run` answers for these records itself while it runs{}, and says goodbye when it stops or a check fails; one-shot `join` and `leave` leave no process behind, so they write and remove the Avahi static service file {} instead, which avahi-daemon (running on this machine) publishes under its own host name",
                p.name,
                if m.interfaces.is_empty() {
                    String::new()
                } else {
                    format!(" (on {})", m.interfaces.join(", "))
                },
                m.service_file.display()
            )),
            _ => None,
        })
        .collect()
}

/// Whether the record table at `origin` (`service[2]`) has `ttl` written.
fn ttl_written(raw: &RawConfig, origin: &str) -> bool {
    let Some((table, rest)) = origin.split_once('[') else {
        return false;
    };
    let Some(index) = rest
        .split_once(']')
        .and_then(|(i, _)| i.parse::<usize>().ok())
    else {
        return false;
    };
    match table {
        "host" => raw
            .host
            .get(index)
            .is_some_and(|h| h.get_ref().ttl.is_some()),
        "service" => raw
            .service
            .get(index)
            .is_some_and(|s| s.get_ref().ttl.is_some()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{ProviderKind, SpecKind, parse};

    const LAN: &str = r#"
[instance]
metadata = "none"
id = "web-a"
ipv4 = "10.0.0.5"

[providers.lan]
type = "mdns"

[[service]]
providers = ["lan"]
type = "_http._tcp"
instance = "front"
port = 8080
"#;

    fn problems(text: &str) -> String {
        parse("t.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn an_mdns_provider_takes_its_defaults_and_its_own_host_label() {
        let c = parse("t.toml", LAN).unwrap();
        let ProviderKind::Mdns(m) = &c.providers[0].kind else {
            panic!("{:?}", c.providers[0]);
        };
        assert_eq!(m.domain.as_str(), "local.");
        assert!(m.interfaces.is_empty());
        assert_eq!(
            m.service_file.to_str(),
            Some("/etc/avahi/services/dnsreg-lan.service")
        );
        // No [[host]]: the service points at a host of the instance's own,
        // published with it, never the machine's host name.
        let hosts: Vec<&str> = c
            .records
            .iter()
            .filter_map(|r| match &r.kind {
                SpecKind::Host { name } => Some(name.as_str()),
                SpecKind::Service { target, .. } => Some(target.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(hosts, ["{instance_id}", "{instance_id}"]);
        assert_eq!(super::mdns_notes(&c).len(), 1);
        assert!(super::mdns_notes(&c)[0].contains("Avahi static service file"));
    }

    #[test]
    fn what_mdns_cannot_publish_is_a_problem_that_says_why() {
        let rr = format!("{LAN}\n[[round_robin]]\nproviders = [\"lan\"]\nname = \"www\"\n");
        assert!(problems(&rr).contains("round_robin[0].providers: a [[round_robin]] name cannot go through mdns provider `lan`"), "{}", problems(&rr));
        let srv = format!(
            "{LAN}\n[[host]]\nproviders = [\"lan\"]\nname = \"h\"\n[[srv]]\nproviders = [\"lan\"]\nname = \"_x._tcp\"\nport = 1\ntarget = \"h\"\n"
        );
        assert!(
            problems(&srv).contains("a bare [[srv]] rrset cannot go through mdns"),
            "{}",
            problems(&srv)
        );
        let prio = LAN.replace("port = 8080", "port = 8080\npriority = 10");
        assert!(
            problems(&prio).contains(
                "service[0].priority: mdns provider `lan` publishes SRV priority and weight 0 only"
            ),
            "{}",
            problems(&prio)
        );
        let long = LAN.replace("_http._tcp", "_averyveryverylongname._tcp");
        assert!(
            problems(&long).contains("at most 15 characters"),
            "{}",
            problems(&long)
        );
        let domain = LAN.replace(
            "type = \"mdns\"",
            "type = \"mdns\"\ndomain = \"example.com\"",
        );
        assert!(
            problems(&domain).contains("providers.lan.domain"),
            "{}",
            problems(&domain)
        );
        let zone = LAN.replace("type = \"mdns\"", "type = \"mdns\"\nzone = \"example.com\"");
        assert!(
            problems(&zone).contains("providers.lan.zone: mdns providers publish under `domain`"),
            "{}",
            problems(&zone)
        );
        let file = LAN.replace(
            "type = \"mdns\"",
            "type = \"mdns\"\nservice_file = \"/tmp/x.xml\"",
        );
        assert!(
            problems(&file).contains("ending in .service"),
            "{}",
            problems(&file)
        );
        // And the keys of mdns are refused elsewhere, saying whose they are.
        let r53 = "[providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\ninterfaces = [\"eth0\"]\n[[host]]\nproviders = [\"r53\"]\nname = \"h\"\n";
        assert!(
            problems(r53).contains("`interfaces` is an mdns setting"),
            "{}",
            problems(r53)
        );
    }
}
