//! Where dnsreg's messages go: log lines through `tracing` (text, JSON, or
//! the journal's native protocol with priorities and fields), and the final
//! `dnsreg: <what failed>: <why>` lines of a command on stderr, marked as
//! errors for the journal when stderr is the journal; and what the commands
//! print of what was done at each provider (join, leave, plan, reap).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;
use crate::engine::{Action, PlanReport, ReapReport, Report};
use crate::reconcile::DryRun;
use crate::record::Value;

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

/// Prints what reaping did; returns whether every provider could be reaped.
pub fn print_reaped(reports: &[ReapReport]) -> bool {
    let mut ok = true;
    for r in reports {
        match &r.result {
            Ok(list) if list.is_empty() => println!("{}: no expired leases", r.provider),
            Ok(list) => {
                for x in list {
                    println!(
                        "{}: reaped {} (lease expired at {})",
                        r.provider,
                        x.instance,
                        humantime::format_rfc3339_seconds(
                            std::time::UNIX_EPOCH + Duration::from_secs(x.expired)
                        )
                    );
                    for v in &x.removed {
                        println!("{}: - {v}", r.provider);
                    }
                    for v in &x.protected {
                        println!(
                            "{}: = {v} (also claimed by a live instance: left for it)",
                            r.provider
                        );
                    }
                }
            }
            Err(e) => {
                ok = false;
                error(format_args!("reap at {}: {e:#}", r.provider));
            }
        }
    }
    ok
}

/// In the agent: only what was reaped, and failures as warnings.
pub fn print_reaped_quietly(reports: &[ReapReport]) {
    for r in reports {
        match &r.result {
            Ok(list) if list.is_empty() => {}
            Ok(_) => {
                print_reaped(std::slice::from_ref(r));
            }
            Err(e) => tracing::warn!(provider = %r.provider, "reaping expired leases: {e:#}"),
        }
    }
}

/// What `dnsreg plan` found: whether every provider answered, and whether
/// anything would change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planned {
    pub ok: bool,
    pub changes: bool,
}

/// Prints what a join or leave would do, as lines or (`json`) one JSON
/// object: per provider `add`, `remove`, `keep_foreign`, `keep_others` and
/// `owned`, each value as its record line, or `error`.
pub fn print_plans(
    action: Action,
    instance_id: &str,
    reports: &[PlanReport],
    json: bool,
) -> Planned {
    let ok = reports.iter().all(|r| r.result.is_ok());
    let changes = reports
        .iter()
        .any(|r| r.result.as_ref().is_ok_and(DryRun::changes));
    let verb = if action == Action::Join {
        "join"
    } else {
        "leave"
    };
    if json {
        print_plans_json(verb, instance_id, reports, Planned { ok, changes });
        return Planned { ok, changes };
    }
    let (mut adds, mut removes) = (0, 0);
    for r in reports {
        match &r.result {
            Ok(d) => {
                adds += d.add.len();
                removes += d.remove.len();
                print_values(&r.provider, "+", &d.add, "");
                print_values(&r.provider, "-", &d.remove, "");
                print_values(&r.provider, "=", &d.keep_foreign, FOREIGN);
                print_values(
                    &r.provider,
                    "=",
                    &d.keep_others,
                    "not this instance's to change: left alone",
                );
                if !d.changes() {
                    println!(
                        "{}: nothing to change ({} record{} owned)",
                        r.provider,
                        d.owned.len(),
                        if d.owned.len() == 1 { "" } else { "s" }
                    );
                } else if d.add.is_empty() && d.remove.is_empty() {
                    println!(
                        "{}: no record to add or remove; this instance's claims would change (its ownership registry)",
                        r.provider
                    );
                }
            }
            Err(e) => error(format_args!("plan at {}: {e:#}", r.provider)),
        }
    }
    if changes {
        println!(
            "{verb} would add {adds} and remove {removes} record{}; nothing was changed (dry run)",
            if removes == 1 { "" } else { "s" }
        );
    } else if ok {
        println!("{verb} would change nothing");
    }
    Planned { ok, changes }
}

/// `dnsreg plan --json`: one JSON object on stdout, and each provider's
/// failure on stderr as well.
fn print_plans_json(verb: &str, instance_id: &str, reports: &[PlanReport], planned: Planned) {
    let lines = |v: &[Value]| v.iter().map(Value::to_line).collect::<Vec<_>>();
    let providers: serde_json::Map<String, serde_json::Value> = reports
        .iter()
        .map(|r| {
            let entry = match &r.result {
                Ok(d) => serde_json::json!({
                    "changes": d.changes(),
                    "add": lines(&d.add),
                    "remove": lines(&d.remove),
                    "keep_foreign": lines(&d.keep_foreign),
                    "keep_others": lines(&d.keep_others),
                    "owned": d.owned.iter().map(Value::to_line).collect::<Vec<_>>(),
                }),
                Err(e) => serde_json::json!({ "error": format!("{e:#}") }),
            };
            (r.provider.clone(), entry)
        })
        .collect();
    let doc = serde_json::json!({
        "action": verb,
        "instance_id": instance_id,
        "changes": planned.changes,
        "ok": planned.ok,
        "providers": providers,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).expect("JSON of strings")
    );
    for r in reports {
        if let Err(e) = &r.result {
            error(format_args!("plan at {}: {e:#}", r.provider));
        }
    }
}

/// What a value a person put there is called where it is left alone.
const FOREIGN: &str = "already there, put there by someone else: left alone";

/// `provider: MARK value (note)` for each value.
fn print_values(provider: &str, mark: &str, values: &[Value], note: &str) {
    for v in values {
        if note.is_empty() {
            println!("{provider}: {mark} {v}");
        } else {
            println!("{provider}: {mark} {v} ({note})");
        }
    }
}

/// Prints reports as users read them; returns whether all succeeded.
pub fn print_reports(action: Action, reports: &[Report]) -> bool {
    let mut ok = true;
    for r in reports {
        match &r.result {
            Ok(o) => {
                print_values(&r.provider, "+", &o.added, "");
                print_values(&r.provider, "-", &o.removed, "");
                print_values(&r.provider, "=", &o.foreign, FOREIGN);
                print_values(
                    &r.provider,
                    "=",
                    &o.protected,
                    "also claimed by another instance: left for it",
                );
                if o.handed_off {
                    for v in &o.announced {
                        println!(
                            "{}: - {v} (announced, not yet removed: the next instance to write this name removes it, or a reaper once the lease runs out)",
                            r.provider
                        );
                    }
                } else if !o.changed() {
                    let what = if action == Action::Join {
                        "already published"
                    } else {
                        "nothing of ours to remove"
                    };
                    println!(
                        "{}: {what} ({} record{} owned)",
                        r.provider,
                        o.owned.len(),
                        if o.owned.len() == 1 { "" } else { "s" }
                    );
                }
            }
            Err(e) => {
                ok = false;
                error(format_args!(
                    "{} at {}: {e:#}",
                    if action == Action::Join {
                        "join"
                    } else {
                        "leave"
                    },
                    r.provider
                ));
            }
        }
    }
    ok
}
