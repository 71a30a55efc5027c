//! Where dnsreg's messages go: log lines through `tracing` (text, JSON, or
//! the journal's native protocol with priorities and fields), and the final
//! `dnsreg: <what failed>: <why>` lines of a command on stderr, marked as
//! errors for the journal when stderr is the journal.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

static JOURNAL: AtomicBool = AtomicBool::new(false);

/// Whether stderr is the systemd journal: `JOURNAL_STREAM` names the
/// device and inode of the stream systemd connected, and stderr is it
/// (systemd.exec(5), "$JOURNAL_STREAM").
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| dev.parse() == Ok(m.dev()) && ino.parse() == Ok(m.ino()))
}

/// Sets up logging: `format`, or with [`LogFormat::Auto`] the journal's own
/// protocol when stderr is the journal (so `journalctl -p err` finds the
/// errors and `-o verbose` shows DNSREG_PROVIDER= and the other fields of an
/// event), text otherwise.
pub fn init(format: LogFormat, filter: EnvFilter) {
    use tracing_subscriber::prelude::*;
    let journal = match format {
        LogFormat::Journal => true,
        LogFormat::Auto => stderr_is_journal(),
        LogFormat::Text | LogFormat::Json => false,
    };
    JOURNAL.store(stderr_is_journal(), Ordering::Relaxed);
    if journal {
        match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer
                    .with_field_prefix(Some("DNSREG".into()))
                    .with_syslog_identifier("dnsreg".into())
                    .with_priority_mappings(tracing_journald::PriorityMappings {
                        info: tracing_journald::Priority::Informational,
                        debug: tracing_journald::Priority::Debug,
                        ..tracing_journald::PriorityMappings::new()
                    });
                tracing_subscriber::registry()
                    .with(filter)
                    .with(layer)
                    .init();
                return;
            }
            Err(e) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "dnsreg: cannot reach the journal ({e}); logging to stderr"
                );
            }
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .with_target(false);
    match format {
        LogFormat::Json => builder.json().init(),
        _ => builder.init(),
    }
}

/// A command's error, `dnsreg: <message>` on stderr: at priority err when
/// stderr is the journal (its `<3>` prefix, sd-daemon(3)), so that
/// `journalctl -p err` lists it.
pub fn error(message: std::fmt::Arguments<'_>) {
    let mark = if JOURNAL.load(Ordering::Relaxed) {
        "<3>"
    } else {
        ""
    };
    let _ = writeln!(std::io::stderr(), "{mark}dnsreg: {message}");
}
