//! Shell completions and man pages, generated from the command line's own
//! definition (`clap_complete`, `clap_mangen`), so that they never drift from
//! it; dnsreg(1) adds what only a manual says (exit status, files, signals).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_mangen::Man;
use roff::{Roff, bold, roman};

use crate::cli::Cli;

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut Cli::command(), "dnsreg", out);
}

/// The exit codes every command uses.
const EXIT_STATUS: &[(&str, &str)] = &[
    (
        "0",
        "Success. status: every record is there; check: the configuration is valid; plan (join --dry-run, leave --dry-run): nothing would change.",
    ),
    (
        "1",
        "A runtime failure: a provider or the metadata service failed or refused, or (status) a record is missing.",
    ),
    (
        "2",
        "A usage or configuration error: exactly what dnsreg check reports.",
    ),
    (
        "3",
        "plan (join --dry-run, leave --dry-run): something would change (as terraform plan -detailed-exitcode); nothing was written.",
    ),
];

const FILES: &[(&str, &str)] = &[
    ("/etc/dnsreg/dnsreg.toml", "The configuration (--config)."),
    (
        "/etc/dnsreg/dnsreg.env",
        "Provider secrets as environment variables, read by the systemd unit; never in the configuration or on the command line.",
    ),
    (
        "/var/lib/dnsreg/state.json",
        "What this instance published (under [agent] state_dir).",
    ),
];

const SIGNALS: &[(&str, &str)] = &[
    (
        "SIGTERM, SIGINT",
        "dnsreg run removes this instance's records within [agent] stop_timeout, then exits.",
    ),
    ("SIGHUP", "dnsreg run reads the configuration again."),
];

/// dnsreg.1 and one page per command (dnsreg-join.1, ...) in `dir`.
pub fn man_pages(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut top = Cli::command().disable_help_subcommand(true);
    top.build();
    let mut written = Vec::new();
    for sub in top.get_subcommands().filter(|s| !s.is_hide_set()) {
        written.push(Man::new(sub.clone()).generate_to(dir)?);
    }
    let man = Man::new(top);
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    let mut more = Roff::new();
    for (title, items) in [
        ("EXIT STATUS", EXIT_STATUS),
        ("FILES", FILES),
        ("SIGNALS", SIGNALS),
    ] {
        more.control("SH", [title]);
        for (term, text) in items {
            more.control("TP", [])
                .text([bold(*term)])
                .text([roman(*text)]);
        }
    }
    more.control("SH", ["SEE ALSO"]).text([roman(
        "README.md and docs/design.md (in the Debian package under /usr/share/doc/dnsreg), systemctl(1), journalctl(1).",
    )]);
    more.to_writer(&mut page)?;
    man.render_version_section(&mut page)?;
    std::fs::write(&path, page)?;
    written.push(path);
    Ok(written)
}
