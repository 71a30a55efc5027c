//! Names the build's revision for `dnsreg --version`: `DNSREG_REVISION` when
//! the builder gives it (a release built from a tarball), else the commit git
//! says the source is at, else "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=DNSREG_REVISION");
    let revision = std::env::var("DNSREG_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            // Built again when HEAD moves: HEAD itself (detached, or another
            // branch) and the branch it names (a commit), loose or packed.
            for path in ["HEAD", "packed-refs"] {
                if let Some(p) = git(&["rev-parse", "--git-path", path]) {
                    println!("cargo:rerun-if-changed={p}");
                }
            }
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
                && let Some(p) = git(&["rev-parse", "--git-path", &branch])
            {
                println!("cargo:rerun-if-changed={p}");
            }
            git(&["rev-parse", "--short=7", "HEAD"])
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=DNSREG_REVISION={revision}");
}
