//! Triton (Joyent SmartOS / SmartDataCenter) metadata, through `mdata-get`.
//!
//! Triton's metadata is a serial-line or zone-socket protocol, not HTTP; the
//! supported client is the `mdata-get KEY` command of mdata-client (exit 0 with
//! the value, 1 when the key is absent, 2 on failure). Keys from the SmartOS
//! metadata key documentation: `sdc:uuid`, `sdc:hostname`,
//! `sdc:datacenter_name`, and `sdc:nics`, a JSON array of NICs with `ip`,
//! `primary`, `nic_tag` (`external` = the public network) and, on newer
//! platforms, `ips` (CIDR strings, IPv6 among them). `DNSREG_MDATA_GET` names
//! another command (tests use a script). No termination notices.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde_json::Value;

use super::cloud::{Cloud, Pending};
use super::http::{plausible_id, shown};
use super::{Identity, MetadataError};
use crate::config::MetadataKind;

const TIMEOUT: Duration = Duration::from_secs(5);

fn command() -> String {
    std::env::var("DNSREG_MDATA_GET")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "mdata-get".into())
}

fn err(key: &str, what: impl Into<String>) -> MetadataError {
    MetadataError {
        cloud: "triton",
        url: format!("{} {key}", command()),
        what: what.into(),
    }
}

/// `mdata-get KEY`: `Some(value)`, `None` when the key is absent (exit 1).
async fn get(key: &str) -> Result<Option<String>, MetadataError> {
    let cmd = command();
    let run = tokio::process::Command::new(&cmd)
        .arg(key)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(TIMEOUT, run).await {
        Err(_) => {
            return Err(err(
                key,
                format!(
                    "no answer in {}s (is the metadata agent running?)",
                    TIMEOUT.as_secs()
                ),
            ));
        }
        Ok(Err(e)) => {
            return Err(err(
                key,
                format!("cannot run it: {e}; install mdata-client or set DNSREG_MDATA_GET"),
            ));
        }
        Ok(Ok(out)) => out,
    };
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match out.status.code() {
        Some(0) => Ok(Some(stdout).filter(|s| !s.is_empty())),
        Some(1) => Ok(None),
        code => Err(err(
            key,
            format!(
                "exit {}: {:?}",
                code.map_or("by signal".to_string(), |c| c.to_string()),
                shown(&String::from_utf8_lossy(&out.stderr))
            ),
        )),
    }
}

/// Addresses of one NIC: `ip` and every entry of `ips` (CIDR or bare).
fn nic_addrs(nic: &Value) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let ip = nic.get("ip").and_then(Value::as_str);
    let ips = nic
        .get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    for s in ip.into_iter().chain(ips) {
        if let Some(a) = s.split('/').next().and_then(|a| a.parse::<IpAddr>().ok())
            && !out.contains(&a)
        {
            out.push(a);
        }
    }
    out
}

/// (public IPv4, private IPv4, IPv6) from `sdc:nics`.
pub fn addresses(nics: &[Value]) -> (Option<Ipv4Addr>, Option<Ipv4Addr>, Option<Ipv6Addr>) {
    let external = |n: &Value| n.get("nic_tag").and_then(Value::as_str) == Some("external");
    let primary = |n: &Value| n.get("primary").and_then(Value::as_bool) == Some(true);
    let v4 = |n: &Value| {
        nic_addrs(n).into_iter().find_map(|a| match a {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
    };
    let public = nics.iter().filter(|n| external(n)).find_map(v4);
    // The primary non-external NIC first, then any other.
    let mut internal: Vec<&Value> = nics.iter().filter(|n| !external(n)).collect();
    internal.sort_by_key(|n| !primary(n));
    let private = internal.into_iter().find_map(v4);
    let mut ordered: Vec<&Value> = nics.iter().collect();
    ordered.sort_by_key(|n| !external(n));
    let ipv6 = ordered.into_iter().find_map(|n| {
        nic_addrs(n).into_iter().find_map(|a| match a {
            IpAddr::V6(a) if (a.segments()[0] & 0xffc0) != 0xfe80 => Some(a),
            _ => None,
        })
    });
    (public, private, ipv6)
}

/// `base` is unused: Triton metadata is not HTTP.
async fn identity(_base: Option<&str>, detected_by: &str) -> Result<Identity, MetadataError> {
    let instance_id = get("sdc:uuid")
        .await?
        .ok_or_else(|| err("sdc:uuid", "exit 1: no such key"))?;
    if !plausible_id(&instance_id) {
        return Err(err(
            "sdc:uuid",
            format!("not an instance id: {:?}", shown(&instance_id)),
        ));
    }
    let mut id = Identity::of(MetadataKind::Triton, detected_by, instance_id);
    id.hostname = get("sdc:hostname").await?;
    id.region = get("sdc:datacenter_name").await?;
    (id.public_ipv4, id.private_ipv4, id.ipv6) = match get("sdc:nics").await? {
        Some(text) => {
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| err("sdc:nics", format!("not JSON ({e}): {:?}", shown(&text))))?;
            let nics = v
                .as_array()
                .ok_or_else(|| err("sdc:nics", "expected a JSON array of NICs"))?;
            addresses(nics)
        }
        None => (None, None, None),
    };
    Ok(id)
}

/// Joyent Triton / SmartOS, as the agent sees it.
pub struct Triton;

impl Cloud for Triton {
    fn kind(&self) -> MetadataKind {
        MetadataKind::Triton
    }

    /// `mdata-get` has no quick probe: DMI or cloud-init names Triton.
    fn probed(&self) -> bool {
        false
    }

    fn probe<'a>(&'a self, _base: Option<&'a str>) -> Pending<'a, bool> {
        Box::pin(async { false })
    }

    fn identity<'a>(
        &'a self,
        base: Option<&'a str>,
        detected_by: &'a str,
    ) -> Pending<'a, Result<Identity, MetadataError>> {
        Box::pin(identity(base, detected_by))
    }

    fn has_notices(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn external_is_public_and_the_primary_internal_is_private() {
        let nics = [
            json!({"interface": "net0", "ip": "10.88.0.7", "nic_tag": "internal", "primary": false}),
            json!({"interface": "net1", "ip": "165.225.1.2", "ips": ["165.225.1.2/24", "2001:db8::7/64"], "nic_tag": "external", "primary": true}),
            json!({"interface": "net2", "ip": "192.168.1.9", "nic_tag": "sdc_overlay", "primary": false}),
        ];
        let (public, private, v6) = addresses(&nics);
        assert_eq!(public, Some("165.225.1.2".parse().unwrap()));
        assert_eq!(private, Some("10.88.0.7".parse().unwrap()));
        assert_eq!(v6, Some("2001:db8::7".parse().unwrap()));
    }

    #[test]
    fn no_external_nic_means_no_public_address() {
        let nics = [json!({"ip": "10.0.0.3", "nic_tag": "internal", "primary": true})];
        assert_eq!(
            addresses(&nics),
            (None, Some("10.0.0.3".parse().unwrap()), None)
        );
    }
}
