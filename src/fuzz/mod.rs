//! Fuzzing, as property tests: every parser that reads what another machine
//! (or a person) sent is fed arbitrary bytes and mutations of real inputs, and
//! must neither panic nor hang, whatever it gets.
//!
//! The crate is a binary with no library target, so coverage-guided fuzzers
//! (cargo-fuzz) cannot link its private parsers; these tests run inside the
//! binary's own test build instead, on the stable toolchain, with proptest
//! generating and shrinking the inputs. Each target:
//!
//! - first runs every file of its corpus, `tests/fuzz-corpus/<target>/`
//!   (real examples: what the stand-ins and the clouds send, example
//!   configurations, and every minimised finding as a regression case);
//! - then runs `DNSREG_FUZZ_CASES` generated cases (a modest default, so that
//!   `cargo test` stays fast): arbitrary bytes, and structure-aware mutations
//!   of the corpus (truncation, duplication, bit flips, huge numbers, deep
//!   nesting, control characters, invalid UTF-8, splices of two seeds);
//! - fails on a panic, on a case slower than `DNSREG_FUZZ_SLOW_SECS` (10 s), or
//!   on a broken round trip, with the minimal input proptest shrank it to
//!   (also written to `$TMPDIR/dnsreg-fuzz-findings/`); a case that never
//!   returns (an endless loop) is caught by a watchdog after
//!   `DNSREG_FUZZ_HANG_SECS` (60 s), which writes the input there and aborts.
//!
//! `scripts/fuzz N` runs N cases per target and prints how many each ran.
//!
//! Here: the corpus and the settings every target reads. [`Target`] runs
//! one target under the watchdog; `mutate` makes the inputs; `providers`
//! holds what the Cloudflare and Route53 targets share.

mod cloudflare;
mod config;
mod discover;
mod fake_http;
mod metadata;
mod mutate;
mod providers;
mod record;
mod route53;
mod state;
mod target;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mutate::{Mutation, apply, mutation};
use providers::{Body, adding, mine_and_keys, name, registries_are_labels, values_at_their_keys};
pub use target::Target;

/// Generated cases per target when `DNSREG_FUZZ_CASES` is not set.
const DEFAULT_CASES: u32 = 200;

/// Generated cases per target: `DNSREG_FUZZ_CASES`, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("DNSREG_FUZZ_CASES")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

fn env_secs(var: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(var)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(default),
    )
}

/// One fuzzing input: bytes, shown as an escaped byte string.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Input(pub Vec<u8>);

impl Input {
    /// The input as text, as a reader that takes UTF-8 lossily sees it.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// The seed files of a target, sorted by name.
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fuzz corpus {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry"))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("corpus file"),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "fuzz corpus {} is empty", dir.display());
    out
}

pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(target)
}

/// A tokio runtime for targets that run async readers (one per target).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}
