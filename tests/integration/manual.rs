//! What ships beside the binary, generated from its command line: the shell
//! completions and the man pages, read by the real shells and groff; and
//! `--version`, which names the revision the binary was built from.

use std::process::Command;

use crate::util::{isolate, run_expect, stderr, stdout};

fn dnsreg(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dnsreg"));
    isolate(&mut c, dir);
    c
}

#[test]
fn the_version_names_the_commit_the_binary_was_built_from() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_expect(dnsreg(dir.path()).arg("--version"), 0);
    let head = Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short=7",
            "HEAD",
        ])
        .output()
        .expect("git runs");
    let head = String::from_utf8(head.stdout).unwrap();
    assert_eq!(
        stdout(&out).trim(),
        format!("dnsreg {} ({})", env!("CARGO_PKG_VERSION"), head.trim())
    );
}

/// bash completes what the command line has: a command, then its flags.
#[test]
fn bash_completes_commands_and_their_flags_zsh_and_fish_read_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let complete = |words: &str| -> String {
        let script = stdout(&run_expect(
            dnsreg(dir.path()).args(["completions", "bash"]),
            0,
        ));
        let path = dir.path().join("dnsreg.bash");
        std::fs::write(&path, script).unwrap();
        let n = words.split_whitespace().count() - usize::from(!words.ends_with(' '));
        let program = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={n}; _dnsreg dnsreg \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            path.display()
        );
        let out = Command::new("bash")
            .args(["--norc", "-c", &program])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let commands = complete("dnsreg j");
    assert_eq!(commands.trim(), "join", "{commands}");
    let flags = complete("dnsreg leave --no-");
    assert_eq!(flags.trim(), "--no-wait", "{flags}");

    for (shell, check) in [("zsh", ["-n"].as_slice()), ("fish", &["--no-execute"])] {
        let script = stdout(&run_expect(
            dnsreg(dir.path()).args(["completions", shell]),
            0,
        ));
        assert!(script.contains("join"), "{shell}: {script}");
        let path = dir.path().join(format!("dnsreg.{shell}"));
        std::fs::write(&path, script).unwrap();
        let out = Command::new(shell).args(check).arg(&path).output().unwrap();
        assert!(out.status.success(), "{shell} rejects it: {}", stderr(&out));
    }
}

/// A page per command and dnsreg(1), which groff renders without a warning,
/// with the sections a manual needs.
#[test]
fn the_man_pages_cover_every_command_and_render_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    let out = run_expect(dnsreg(dir.path()).arg("manpages").arg(&pages), 0);
    let mut written: Vec<String> = std::fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    written.sort();
    let commands = [
        "check",
        "completions",
        "discover",
        "join",
        "leave",
        "manpages",
        "plan",
        "reap",
        "run",
        "status",
        "whoami",
    ];
    let mut expected: Vec<String> = commands.iter().map(|c| format!("dnsreg-{c}.1")).collect();
    expected.push("dnsreg.1".into());
    expected.sort();
    assert_eq!(written, expected);
    assert_eq!(stdout(&out).lines().count(), expected.len());
    for page in &written {
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(pages.join(page))
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{page}: {}",
            stderr(&out)
        );
    }
    let text = Command::new("groff")
        .args(["-man", "-Tutf8", "-P-c", "-P-b", "-P-u"])
        .arg(pages.join("dnsreg.1"))
        .output()
        .unwrap();
    let text = stdout(&text);
    for section in [
        "SYNOPSIS",
        "EXIT STATUS",
        "FILES",
        "SIGNALS",
        "dnsreg-join(1)",
    ] {
        assert!(text.contains(section), "no {section} in dnsreg(1):\n{text}");
    }
    let join = std::fs::read_to_string(pages.join("dnsreg-join.1")).unwrap();
    assert!(join.contains("no\\-wait"), "{join}");
}

/// Under systemd, stderr is the journal (`JOURNAL_STREAM` names it): a
/// command's error goes out at priority err (`<3>`), so `journalctl -p err`
/// lists it; anywhere else the line is plain. (The boot test reads both from
/// a real journal.)
#[test]
fn errors_are_marked_for_the_journal_only_when_stderr_is_the_journal() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let failing = |journal_stream: Option<&std::path::Path>| -> String {
        let log = dir.path().join("stderr.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut c = dnsreg(dir.path());
        c.args(["-c", "/nonexistent/dnsreg.toml", "check"])
            .stderr(file);
        if let Some(path) = journal_stream {
            let m = std::fs::metadata(path).unwrap();
            c.env("JOURNAL_STREAM", format!("{}:{}", m.dev(), m.ino()));
        }
        let status = c.status().unwrap();
        assert_eq!(status.code(), Some(2));
        std::fs::read_to_string(&log).unwrap()
    };
    let plain = failing(None);
    assert!(plain.starts_with("dnsreg: "), "{plain}");
    let marked = failing(Some(&dir.path().join("stderr.log")));
    let error = marked
        .lines()
        .find(|l| l.contains("nonexistent"))
        .unwrap_or_default();
    assert!(error.starts_with("<3>dnsreg: "), "{marked}");
    // Another stream's numbers: stderr is not the journal.
    let other = dir.path().join("other");
    std::fs::write(&other, "").unwrap();
    let unmarked = failing(Some(&other));
    assert!(unmarked.starts_with("dnsreg: "), "{unmarked}");
}
