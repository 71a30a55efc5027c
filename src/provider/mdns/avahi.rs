//! Avahi static service files: what a one-shot `join` leaves on the machine
//! for an mDNS provider, since no dnsreg process stays to answer multicast
//! DNS after it returns. avahi-daemon watches its services directory
//! (`/etc/avahi/services`, with inotify), publishes the services each file
//! describes under the machine's own host name and addresses, and sends
//! goodbyes for them when the file goes: `leave` removes it.
//!
//! The format is avahi.service(5): one `<service-group>` with one instance
//! `<name>` and a `<service>` per service type. A file is written whole to a
//! temporary file beside it and renamed over it, so avahi never reads half of
//! one. avahi tells a changed file by its modification time in whole
//! seconds, so a file replaced within the second it was last written would
//! be missed: the new one's is always at least a second past the old one's.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

/// One DNS-SD service as an Avahi static file describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticService {
    /// The instance name (RFC 6763 §4.1.1), e.g. `Front door`.
    pub instance: String,
    /// The service type, e.g. `_http._tcp`.
    pub service_type: String,
    /// Subtypes, each e.g. `_printer._sub._http._tcp`.
    pub subtypes: Vec<String>,
    pub port: u16,
    /// TXT key/value pairs, published as `key=value` strings in this order.
    pub txt: Vec<(String, String)>,
}

/// The file's text, or why these services cannot share one file.
pub fn render(services: &[StaticService]) -> anyhow::Result<String> {
    let Some(first) = services.first() else {
        anyhow::bail!("no services to describe");
    };
    let names: Vec<&str> = services.iter().map(|s| s.instance.as_str()).collect();
    if names.iter().any(|n| *n != first.instance) {
        anyhow::bail!(
            "an Avahi static service file gives all its services one instance name, and these have several ({}): give them one, or run `dnsreg run`, which answers for any",
            names.join(", ")
        );
    }
    let mut out = String::from(
        "<?xml version=\"1.0\" standalone='no'?>\n\
         <!DOCTYPE service-group SYSTEM \"avahi-service.dtd\">\n\
         <!-- Written by `dnsreg join`; `dnsreg leave` removes it. -->\n\
         <service-group>\n",
    );
    let _ = writeln!(out, "  <name>{}</name>", escape(&first.instance));
    for s in services {
        out.push_str("  <service protocol=\"any\">\n");
        let _ = writeln!(out, "    <type>{}</type>", escape(&s.service_type));
        for sub in &s.subtypes {
            let _ = writeln!(out, "    <subtype>{}</subtype>", escape(sub));
        }
        let _ = writeln!(out, "    <port>{}</port>", s.port);
        for (k, v) in &s.txt {
            let _ = writeln!(out, "    {}", txt_record(&format!("{k}={v}")));
        }
        out.push_str("  </service>\n");
    }
    out.push_str("</service-group>\n");
    Ok(out)
}

/// Writes the file for `services` at `path`, whole or not at all.
pub fn write(path: &Path, services: &[StaticService]) -> anyhow::Result<()> {
    let text = render(services)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        anyhow::bail!(
            "{} does not exist: is avahi-daemon installed? (its static services live there; set service_file to where they do)",
            dir.display()
        );
    }
    let now = std::time::SystemTime::now();
    let after_old = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(|t| t + std::time::Duration::from_secs(1))
        .unwrap_or(now);
    crate::files::replace_readable(path, text.as_bytes(), Some(now.max(after_old)))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Removes the file at `path`; false when there was none.
pub fn remove(path: &Path) -> anyhow::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// One TXT string as a `<txt-record>`: as text where XML can carry it,
/// else as hex (XML 1.0 has no way to write most control characters).
fn txt_record(text: &str) -> String {
    if text
        .chars()
        .all(|c| !c.is_control() || c == '\t' || c == '\n')
    {
        format!("<txt-record>{}</txt-record>", escape(text))
    } else {
        let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
        format!("<txt-record value-format=\"binary-hex\">{hex}</txt-record>")
    }
}

/// `text` as XML character data or attribute value.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(instance: &str) -> StaticService {
        StaticService {
            instance: instance.into(),
            service_type: "_http._tcp".into(),
            subtypes: vec![],
            port: 8080,
            txt: vec![("path".into(), "/".into())],
        }
    }

    #[test]
    fn a_service_is_one_group_with_its_name_type_port_and_txt() {
        let mut s = http("Front <door> & \"co\"");
        s.subtypes = vec!["_printer._sub._http._tcp".into()];
        s.txt.push(("bell".into(), "\u{1}ring".into()));
        let text = render(&[s]).unwrap();
        assert_eq!(
            text,
            "<?xml version=\"1.0\" standalone='no'?>\n\
             <!DOCTYPE service-group SYSTEM \"avahi-service.dtd\">\n\
             <!-- Written by `dnsreg join`; `dnsreg leave` removes it. -->\n\
             <service-group>\n  \
             <name>Front &lt;door&gt; &amp; &quot;co&quot;</name>\n  \
             <service protocol=\"any\">\n    \
             <type>_http._tcp</type>\n    \
             <subtype>_printer._sub._http._tcp</subtype>\n    \
             <port>8080</port>\n    \
             <txt-record>path=/</txt-record>\n    \
             <txt-record value-format=\"binary-hex\">62656c6c3d0172696e67</txt-record>\n  \
             </service>\n\
             </service-group>\n"
        );
    }

    #[test]
    fn services_of_several_instance_names_cannot_share_a_file() {
        let e = render(&[http("a"), http("b")]).unwrap_err().to_string();
        assert!(e.contains("several (a, b)"), "{e}");
        assert!(render(&[]).is_err());
        let mut other = http("a");
        other.service_type = "_ssh._tcp".into();
        assert!(render(&[http("a"), other]).is_ok());
    }

    #[test]
    fn the_file_is_replaced_whole_readable_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dnsreg-lan.service");
        write(&path, &[http("one")]).unwrap();
        let first = std::fs::metadata(&path).unwrap().modified().unwrap();
        write(&path, &[http("two")]).unwrap();
        let second = std::fs::metadata(&path).unwrap().modified().unwrap();
        // avahi compares whole seconds: a rewrite at once still moves it on.
        assert!(second >= first + std::time::Duration::from_secs(1));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("<name>two</name>"), "{text}");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o644);
        // Nothing else is left in the directory: no temporary file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(remove(&path).unwrap());
        assert!(!remove(&path).unwrap());
        assert!(!path.exists());
    }

    #[test]
    fn a_missing_services_directory_says_avahi_may_be_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("avahi/services/dnsreg-lan.service");
        let e = format!("{:#}", write(&path, &[http("one")]).unwrap_err());
        assert!(e.contains("is avahi-daemon installed?"), "{e}");
    }
}
