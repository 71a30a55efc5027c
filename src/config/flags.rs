//! A configuration built from command-line flags, validated as a file is.

use toml::Spanned;

use super::checker::Checker;
use super::raw::{RawAgent, RawConfig, RawInstance, RawName, RawProvider, RawSrv};
use super::settings::validate_instance;
use super::validate::validate;
use crate::model::{Config, ConfigError, InstanceConfig, Problem};

// ---------------------------------------------------------------------------
// Configuration from flags
// ---------------------------------------------------------------------------

/// The main settings given as flags, for use without a file.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub provider: String,
    pub zone: Option<String>,
    pub zone_id: Option<String>,
    pub routing: Option<String>,
    pub endpoint: Option<String>,
    /// rfc2136: the primary server and the TSIG key file.
    pub server: Option<String>,
    pub tsig_key_file: Option<String>,
    /// SRV owner name: publishes a host record `{ipv4_dashed}` and this
    /// instance's line in the SRV rrset, as the original script did.
    pub service: Option<String>,
    pub port: Option<u16>,
    /// Round-robin names to join.
    pub names: Vec<String>,
    /// Host names (owned A records).
    pub hosts: Vec<String>,
    pub ttl: Option<u32>,
    pub metadata: Option<String>,
    pub metadata_endpoint: Option<String>,
    pub address: Option<String>,
    pub instance_id: Option<String>,
    pub ipv4: Option<String>,
    pub ipv6: bool,
    pub state_dir: Option<String>,
}

/// Builds and validates a configuration from flags, with the same checks as a file.
pub fn from_flags(f: &Flags) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let mut raw = RawConfig {
        instance: Some(raw_instance(f)),
        ..RawConfig::default()
    };
    raw.providers
        .insert(f.provider.clone(), Spanned::new(0..0, raw_provider(f)));
    raw_records(f, &mut raw, &mut problems)?;
    raw.agent = Some(RawAgent {
        state_dir: f.state_dir.as_deref().map(value),
        ..RawAgent::default()
    });
    let result = validate("command line", None, raw);
    match result {
        Ok(c) if problems.is_empty() => Ok(c),
        Ok(_) => Err(ConfigError {
            source_name: "command line".into(),
            problems,
        }),
        Err(mut e) => {
            // Flag names read better than table paths on the command line.
            for p in &mut e.problems {
                p.key = flag_for(&p.key);
            }
            e.problems.extend(problems);
            Err(e)
        }
    }
}

/// A flag's value as the raw TOML holds it, at no place in any file.
fn value(v: &str) -> Spanned<String> {
    Spanned::new(0..0, v.to_string())
}

/// The `[instance]` table the flags make.
fn raw_instance(f: &Flags) -> RawInstance {
    RawInstance {
        metadata: f.metadata.as_deref().map(value),
        address: f.address.as_deref().map(value),
        ipv6: Some(f.ipv6),
        id: f.instance_id.as_deref().map(value),
        ipv4: f.ipv4.as_deref().map(value),
        hostname: None,
        region: None,
        metadata_endpoint: f.metadata_endpoint.as_deref().map(value),
    }
}

/// The one `[providers.NAME]` table the flags make, named after its type.
fn raw_provider(f: &Flags) -> RawProvider {
    RawProvider {
        kind: value(&f.provider),
        zone: f.zone.as_deref().map(value),
        zone_id: f.zone_id.as_deref().map(value),
        routing: f.routing.as_deref().map(value),
        endpoint: f.endpoint.as_deref().map(value),
        token_file: None,
        proxied: None,
        server: f.server.as_deref().map(value),
        tsig_key_file: f.tsig_key_file.as_deref().map(value),
        domain: None,
        interfaces: None,
        service_file: None,
    }
}

/// The record tables the flags make: `--host`s, `--service` (an SRV line and,
/// without `--host`, the host record `{ipv4_dashed}` it points at), `--name`s.
/// `--service` without `--port` is an error at once; the other problems are
/// added to `problems`.
fn raw_records(
    f: &Flags,
    raw: &mut RawConfig,
    problems: &mut Vec<Problem>,
) -> Result<(), ConfigError> {
    let ttl = f.ttl.map(|t| Spanned::new(0..0, i64::from(t)));
    let providers = Spanned::new(0..0, vec![f.provider.clone()]);
    let name = |n: &str| {
        Spanned::new(
            0..0,
            RawName {
                providers: providers.clone(),
                name: value(n),
                ttl: ttl.clone(),
            },
        )
    };
    for h in &f.hosts {
        raw.host.push(name(h));
    }
    if let Some(service) = &f.service {
        let Some(port) = f.port else {
            return Err(ConfigError {
                source_name: "command line".into(),
                problems: vec![Problem {
                    line: None,
                    key: "--port".into(),
                    message: "--service needs --port, e.g. --port 8080".into(),
                }],
            });
        };
        if f.hosts.is_empty() {
            raw.host.push(name("{ipv4_dashed}"));
        }
        let target = f
            .hosts
            .first()
            .cloned()
            .unwrap_or_else(|| "{ipv4_dashed}".into());
        raw.srv.push(Spanned::new(
            0..0,
            RawSrv {
                providers: providers.clone(),
                name: value(service),
                port: Spanned::new(0..0, i64::from(port)),
                priority: None,
                weight: None,
                target: value(&target),
                ttl: ttl.clone(),
            },
        ));
    } else if f.port.is_some() {
        problems.push(Problem {
            line: None,
            key: "--port".into(),
            message: "--port is only used with --service".into(),
        });
    }
    for n in &f.names {
        raw.round_robin.push(name(n));
    }
    if f.service.is_none() && f.names.is_empty() && f.hosts.is_empty() {
        problems.push(Problem {
            line: None,
            key: String::new(),
            message: "nothing to publish; add --service NAME --port N, --name NAME or --host NAME"
                .into(),
        });
    }
    Ok(())
}

fn flag_for(key: &str) -> String {
    let field = key.rsplit('.').next().unwrap_or(key);
    let flag = match field {
        "zone" => "--zone",
        "zone_id" => "--zone-id",
        "type" => "--provider",
        "routing" => "--routing",
        "endpoint" => "--endpoint",
        "name" if key.starts_with("srv") => "--service",
        "name" if key.starts_with("host") => "--host",
        "name" => "--name",
        "port" => "--port",
        "ttl" => "--ttl",
        "metadata" => "--metadata",
        "metadata_endpoint" => "--metadata-endpoint",
        "address" => "--address",
        "id" => "--instance-id",
        "ipv4" => "--ipv4",
        _ => return key.to_string(),
    };
    flag.to_string()
}

/// Just the `[instance]` part from flags, for `whoami`.
pub fn instance_from_flags(f: &Flags) -> Result<InstanceConfig, ConfigError> {
    let raw = raw_instance(f);
    let mut c = Checker {
        text: None,
        problems: Vec::new(),
    };
    let instance = validate_instance(&mut c, raw);
    if c.problems.is_empty() {
        Ok(instance)
    } else {
        for p in &mut c.problems {
            p.key = flag_for(&p.key);
        }
        Err(ConfigError {
            source_name: "command line".into(),
            problems: c.problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SpecKind;

    #[test]
    fn flags_build_the_original_scripts_records() {
        let f = Flags {
            provider: "route53".into(),
            zone: Some("unilans.net".into()),
            service: Some("_v1._theservice._tcp".into()),
            port: Some(8080),
            ..Flags::default()
        };
        let c = from_flags(&f).unwrap();
        assert_eq!(c.records.len(), 2);
        assert!(
            matches!(&c.records[0].kind, SpecKind::Host { name } if name.as_str() == "{ipv4_dashed}")
        );
        assert!(
            matches!(&c.records[1].kind, SpecKind::Srv { port: 8080, target, .. } if target.as_str() == "{ipv4_dashed}")
        );
    }

    #[test]
    fn flags_problems_name_flags() {
        let f = Flags {
            provider: "route53".into(),
            service: Some("_x._tcp".into()),
            port: Some(1),
            ..Flags::default()
        };
        let e = from_flags(&f).unwrap_err();
        assert!(e.problems.iter().any(|p| p.key == "--zone"), "{e}");
    }
}
