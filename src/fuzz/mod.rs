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

mod cloudflare;
mod config;
mod discover;
mod fake_http;
mod metadata;
mod record;
mod route53;
mod state;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as ProptestConfig, TestError, TestRunner};

/// Generated cases per target when `DNSREG_FUZZ_CASES` is not set.
const DEFAULT_CASES: u32 = 200;
/// The largest input a mutation may grow to.
const MAX_INPUT: usize = 128 * 1024;

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

/// The case a target runs now: when it started, and its input.
type Current = Arc<Mutex<Option<(Instant, Vec<u8>)>>>;

/// A fuzz target: counts what it ran, watches for hangs, and reports.
pub struct Target {
    name: &'static str,
    corpus_cases: AtomicU64,
    generated: AtomicU64,
    started: Instant,
    current: Current,
}

impl Target {
    pub fn new(name: &'static str) -> Target {
        let current = Arc::new(Mutex::new(None));
        watchdog().lock().unwrap().push((name, current.clone()));
        Target {
            name,
            corpus_cases: AtomicU64::new(0),
            generated: AtomicU64::new(0),
            started: Instant::now(),
            current,
        }
    }

    /// Runs one case of `input` under the watchdog, failing it when slow.
    fn case<R>(&self, input: &[u8], f: impl FnOnce() -> R) -> R {
        let start = Instant::now();
        *self.current.lock().unwrap() = Some((start, input.to_vec()));
        let r = f();
        *self.current.lock().unwrap() = None;
        let took = start.elapsed();
        let slow = env_secs("DNSREG_FUZZ_SLOW_SECS", 10);
        assert!(
            took <= slow,
            "{}: one case took {took:?}, more than {slow:?}",
            self.name
        );
        r
    }

    /// Runs the corpus, then `cases` generated inputs, through `check`;
    /// `input_of` says what bytes a generated value stands for (for the
    /// watchdog and the findings directory).
    pub fn run<S>(
        &self,
        seeds: &[(String, Vec<u8>)],
        seed_input: impl Fn(&[u8]) -> S::Value,
        strategy: S,
        cases: u32,
        input_of: impl Fn(&S::Value) -> Vec<u8>,
        check: impl Fn(&S::Value),
    ) where
        S: Strategy,
        S::Value: fmt::Debug,
    {
        for (name, bytes) in seeds {
            let value = seed_input(bytes);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.case(bytes, || check(&value))
            }));
            if let Err(e) = result {
                let why = panic_text(&*e);
                panic!(
                    "{}: corpus file {name} fails: {why}\ninput: {value:?}",
                    self.name
                );
            }
            self.corpus_cases.fetch_add(1, Ordering::Relaxed);
        }
        let mut runner = TestRunner::new(ProptestConfig {
            cases,
            failure_persistence: None,
            max_shrink_iters: 10_000,
            ..ProptestConfig::default()
        });
        let result = runner.run(&strategy, |value| {
            self.generated.fetch_add(1, Ordering::Relaxed);
            let bytes = input_of(&value);
            self.case(&bytes, || check(&value));
            Ok(())
        });
        match result {
            Ok(()) => {}
            Err(TestError::Fail(why, value)) => {
                let file = save_finding(self.name, &input_of(&value));
                panic!(
                    "{}: {why}\nminimal input: {value:?}\n(saved to {})",
                    self.name,
                    file.display()
                );
            }
            Err(TestError::Abort(why)) => panic!("{}: aborted: {why}", self.name),
        }
    }

    /// [`Target::run`] for targets whose input is plain bytes.
    pub fn run_bytes(&self, seeds: &[(String, Vec<u8>)], extra: &[&[u8]], check: impl Fn(&Input)) {
        let strategy = bytes(seeds, extra);
        self.run(
            seeds,
            |b| Input(b.to_vec()),
            strategy,
            cases(DEFAULT_CASES),
            |i| i.0.clone(),
            check,
        );
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        watchdog()
            .lock()
            .unwrap()
            .retain(|(_, c)| !Arc::ptr_eq(c, &self.current));
        let (c, g) = (
            self.corpus_cases.load(Ordering::Relaxed),
            self.generated.load(Ordering::Relaxed),
        );
        eprintln!(
            "fuzz target {:<22} {:>8} cases executed ({c} corpus + {g} generated) in {:.1}s",
            self.name,
            c + g,
            self.started.elapsed().as_secs_f64()
        );
    }
}

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<panic>".into())
}

fn findings_dir() -> PathBuf {
    std::env::temp_dir().join("dnsreg-fuzz-findings")
}

fn save_finding(target: &str, input: &[u8]) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    input.hash(&mut h);
    let dir = findings_dir();
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join(format!("{target}-{:016x}", h.finish()));
    let _ = std::fs::write(&file, input);
    file
}

type Watched = Vec<(&'static str, Current)>;

/// The targets running now; a thread checks each second that no case has run
/// longer than `DNSREG_FUZZ_HANG_SECS`, and aborts the process if one has
/// (a loop that never ends cannot be unwound), saving its input first.
fn watchdog() -> &'static Mutex<Watched> {
    static WATCHED: OnceLock<Mutex<Watched>> = OnceLock::new();
    WATCHED.get_or_init(|| {
        std::thread::Builder::new()
            .name("fuzz-watchdog".into())
            .spawn(|| {
                let hang = env_secs("DNSREG_FUZZ_HANG_SECS", 60);
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    let watched = watchdog().lock().unwrap();
                    for (name, current) in watched.iter() {
                        if let Some((start, input)) = &*current.lock().unwrap()
                            && start.elapsed() > hang
                        {
                            let file = save_finding(name, input);
                            eprintln!(
                                "fuzz target {name}: HANG: one case has run for {:?}; input {:?} saved to {}",
                                start.elapsed(),
                                Input(input.clone()),
                                file.display()
                            );
                            std::process::abort();
                        }
                    }
                }
            })
            .expect("watchdog thread");
        Mutex::new(Vec::new())
    })
}

// ---------------------------------------------------------------------------
// Inputs: arbitrary, and mutations of the corpus
// ---------------------------------------------------------------------------

/// Tokens worth inserting anywhere: numbers at and past every limit, the
/// characters parsers treat specially, control characters, byte-order marks,
/// invalid UTF-8.
const TOKENS: &[&[u8]] = &[
    b"0",
    b"-1",
    b"-0",
    b"255",
    b"256",
    b"65535",
    b"65536",
    b"2147483647",
    b"2147483648",
    b"4294967295",
    b"4294967296",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"18446744073709551615",
    b"18446744073709551616",
    b"340282366920938463463374607431768211456",
    b"99999999999999999999999999999999999999999999999999",
    b"1e400",
    b"-1e-400",
    b"0.5",
    b"NaN",
    b"inf",
    b"0x7f",
    b"\0",
    b"\x01",
    b"\x07",
    b"\x08",
    b"\x0b",
    b"\x0c",
    b"\x1b[31m",
    b"\x7f",
    b"\r",
    b"\n",
    b"\r\n",
    b"\t",
    b" ",
    b"\"",
    b"'",
    b"\\",
    b"\\\\",
    b"\\u0000",
    b"\\ud800",
    b"\\x",
    b"\\0",
    b"\\999",
    b"\\255",
    b"{",
    b"}",
    b"[",
    b"]",
    b"(",
    b")",
    b"<",
    b">",
    b"=",
    b":",
    b";",
    b",",
    b".",
    b"..",
    b"/",
    b"#",
    b"@",
    b"*",
    b"%",
    b"&",
    b"_",
    b"-",
    b"+",
    b"\xef\xbb\xbf",
    b"\xe2\x80\xae",
    b"\xe2\x80\xa8",
    b"\xc2\x85",
    b"\xc3\xbf",
    b"\xf4\x8f\xbf\xbf",
    b"\xff",
    b"\xfe",
    b"\xc0\x80",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe2\x82",
];

/// The numbers at every integer type's edges, for [`Mutation::Boundary`].
const BOUNDARIES: &[&[u8]] = &[
    b"0",
    b"-1",
    b"65536",
    b"4294967295",
    b"4294967296",
    b"9223372036854775807",
    b"18446744073709551615",
    b"18446744073709551616",
];

#[derive(Clone, Debug)]
enum Mutation {
    Truncate(Index),
    Delete(Index, u8),
    FlipBit(Index, u8),
    SetByte(Index, u8),
    /// A token of [`TOKENS`] or of the target's own (index into both).
    Insert(Index, Index),
    /// A token in place of the run of digits (or the byte) at the position.
    ReplaceNumber(Index, Index),
    /// A number of [`BOUNDARIES`] in place of the next run of digits.
    Boundary(Index, Index),
    /// Where the input is JSON: one of its scalar values replaced with one
    /// of [`json_values`], the rest kept (so that the reader gets past its
    /// syntax check to what it does with the values).
    JsonValue(Index, Index),
    /// The same where the input is a TOML document, with [`toml_values`].
    TomlValue(Index, Index),
    InsertBytes(Index, Vec<u8>),
    /// Copies `len` bytes from the first position to the second.
    Duplicate(Index, u8, Index),
    /// Repeats `len` bytes at the position `times` times: deep nesting, long
    /// labels, long lines.
    Repeat(Index, u8, u16),
    /// Inserts a part of another seed.
    Splice(Index, Index, u8, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => any::<Index>().prop_map(Mutation::Truncate),
        2 => (any::<Index>(), 1u8..32).prop_map(|(i, n)| Mutation::Delete(i, n)),
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        4 => (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Mutation::Insert(i, t)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Mutation::ReplaceNumber(i, t)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Mutation::Boundary(i, t)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Mutation::JsonValue(i, t)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Mutation::TomlValue(i, t)),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::InsertBytes(i, b)),
        2 => (any::<Index>(), 1u8..64, any::<Index>())
            .prop_map(|(a, n, b)| Mutation::Duplicate(a, n, b)),
        1 => (any::<Index>(), 1u8..4, 2u16..20_000)
            .prop_map(|(i, n, t)| Mutation::Repeat(i, n, t)),
        1 => (any::<Index>(), any::<Index>(), 1u8..128, any::<Index>())
            .prop_map(|(s, a, n, b)| Mutation::Splice(s, a, n, b)),
    ]
}

fn pos(i: &Index, len: usize) -> usize {
    i.index(len + 1)
}

fn apply(seed: &[u8], mutations: &[Mutation], seeds: &[Vec<u8>], extra: &[&[u8]]) -> Vec<u8> {
    let mut b = seed.to_vec();
    let token = |t: &Index| -> &[u8] {
        let n = TOKENS.len() + extra.len();
        let k = t.index(n);
        if k < TOKENS.len() {
            TOKENS[k]
        } else {
            extra[k - TOKENS.len()]
        }
    };
    for m in mutations {
        match m {
            Mutation::Truncate(i) => b.truncate(pos(i, b.len())),
            Mutation::Delete(i, n) => {
                let at = pos(i, b.len());
                let end = (at + usize::from(*n)).min(b.len());
                b.drain(at..end);
            }
            Mutation::FlipBit(i, bit) if !b.is_empty() => {
                let at = i.index(b.len());
                b[at] ^= 1 << bit;
            }
            Mutation::SetByte(i, v) if !b.is_empty() => {
                let at = i.index(b.len());
                b[at] = *v;
            }
            Mutation::FlipBit(..) | Mutation::SetByte(..) => {}
            Mutation::Insert(i, t) => {
                let at = pos(i, b.len());
                b.splice(at..at, token(t).iter().copied());
            }
            Mutation::ReplaceNumber(i, t) | Mutation::Boundary(i, t) => {
                let number = match m {
                    Mutation::Boundary(..) => BOUNDARIES[t.index(BOUNDARIES.len())],
                    _ => token(t),
                };
                let at = pos(i, b.len());
                // The next run of digits at or after the position, else the byte there.
                let start = b[at..]
                    .iter()
                    .position(u8::is_ascii_digit)
                    .map_or(at, |p| at + p);
                let end = b[start..]
                    .iter()
                    .position(|c| !c.is_ascii_digit())
                    .map_or(b.len(), |p| start + p)
                    .max((start + 1).min(b.len()));
                b.splice(start..end, number.iter().copied());
            }
            Mutation::JsonValue(i, t) => {
                if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&b) {
                    let mut leaves = Vec::new();
                    json_leaves(&mut v, &mut leaves);
                    if !leaves.is_empty() {
                        let values = json_values();
                        *leaves.swap_remove(i.index(leaves.len())) =
                            values[t.index(values.len())].clone();
                        b = serde_json::to_vec(&v).expect("JSON");
                    }
                }
            }
            Mutation::TomlValue(i, t) => {
                if let Ok(text) = std::str::from_utf8(&b)
                    && let Ok(mut v) = text.parse::<toml::Table>()
                {
                    let mut leaves = Vec::new();
                    for (_, x) in v.iter_mut() {
                        toml_leaves(x, &mut leaves);
                    }
                    if !leaves.is_empty() {
                        let values = toml_values();
                        *leaves.swap_remove(i.index(leaves.len())) =
                            values[t.index(values.len())].clone();
                        if let Ok(text) = toml::to_string(&v) {
                            b = text.into_bytes();
                        }
                    }
                }
            }
            Mutation::InsertBytes(i, bytes) => {
                let at = pos(i, b.len());
                b.splice(at..at, bytes.iter().copied());
            }
            Mutation::Duplicate(a, n, to) => {
                let from = pos(a, b.len());
                let end = (from + usize::from(*n)).min(b.len());
                let part = b[from..end].to_vec();
                let at = pos(to, b.len());
                b.splice(at..at, part);
            }
            Mutation::Repeat(i, n, times) => {
                let from = pos(i, b.len());
                let end = (from + usize::from(*n)).min(b.len());
                let part = b[from..end].to_vec();
                if !part.is_empty() {
                    let times = usize::from(*times).min(MAX_INPUT / part.len());
                    let more: Vec<u8> = part
                        .iter()
                        .copied()
                        .cycle()
                        .take(part.len() * times)
                        .collect();
                    b.splice(end..end, more);
                }
            }
            Mutation::Splice(s, a, n, to) => {
                if !seeds.is_empty() {
                    let other = &seeds[s.index(seeds.len())];
                    let from = pos(a, other.len());
                    let end = (from + usize::from(*n)).min(other.len());
                    let at = pos(to, b.len());
                    b.splice(at..at, other[from..end].iter().copied());
                }
            }
        }
        b.truncate(MAX_INPUT);
    }
    b
}

/// The scalar values of a JSON document, in document order.
fn json_leaves<'a>(v: &'a mut serde_json::Value, out: &mut Vec<&'a mut serde_json::Value>) {
    match v {
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| json_leaves(x, out)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| json_leaves(x, out)),
        other => out.push(other),
    }
}

/// Values a JSON field should not hold: numbers at the edges, the wrong
/// type, empty and huge strings, control characters.
fn json_values() -> Vec<serde_json::Value> {
    use serde_json::json;
    vec![
        json!(u64::MAX),
        json!(u64::from(u32::MAX) + 1),
        json!(i64::MIN),
        json!(-1),
        json!(0),
        json!(0.5),
        json!(1.0e308),
        json!(null),
        json!(true),
        json!([]),
        json!({}),
        json!(""),
        json!("\u{0}\u{1b}[31m\r\n\t"),
        json!("x".repeat(70_000)),
        json!("dnsreg1 www.example.com. A 192.0.2.1"),
        json!("::"),
        json!("255.255.255.255"),
    ]
}

/// The scalar values of a TOML document, in document order.
fn toml_leaves<'a>(v: &'a mut toml::Value, out: &mut Vec<&'a mut toml::Value>) {
    match v {
        toml::Value::Array(a) => a.iter_mut().for_each(|x| toml_leaves(x, out)),
        toml::Value::Table(t) => t.iter_mut().for_each(|(_, x)| toml_leaves(x, out)),
        other => out.push(other),
    }
}

/// Values a configuration setting should not hold.
fn toml_values() -> Vec<toml::Value> {
    use toml::Value;
    let s = |s: &str| Value::String(s.to_string());
    vec![
        Value::Integer(i64::MAX),
        Value::Integer(i64::MIN),
        Value::Integer(-1),
        Value::Integer(0),
        Value::Integer(65_536),
        Value::Integer(4_294_967_296),
        Value::Float(f64::NAN),
        Value::Float(f64::INFINITY),
        Value::Boolean(true),
        Value::Array(Vec::new()),
        Value::Table(toml::Table::new()),
        s(""),
        s("{"),
        s("}{"),
        s("{instance_id}{hostname}{region}{ipv4}{ipv4_dashed}{ipv6}"),
        s("\u{0}\u{1b}[31m\n"),
        s(&"a".repeat(300)),
        s(&"a.".repeat(200)),
        s("0s"),
        s("1ns"),
        s("18446744073709551615s"),
        s("9999999999999999999999d"),
        s("-1s"),
        s("_x._tcp"),
        s("@"),
        s("."),
        s("http://127.0.0.1:0/"),
        s("[::1]:0"),
        s("/dev/null"),
    ]
}

/// Arbitrary bytes, arbitrary text, and (mostly) mutated seeds.
pub fn bytes(seeds: &[(String, Vec<u8>)], extra: &[&[u8]]) -> BoxedStrategy<Input> {
    let seeds: Arc<Vec<Vec<u8>>> = Arc::new(seeds.iter().map(|(_, b)| b.clone()).collect());
    let extra: Arc<Vec<&'static [u8]>> = Arc::new(
        extra
            .iter()
            .map(|t| &*Box::leak(t.to_vec().into_boxed_slice()))
            .collect(),
    );
    let n = seeds.len();
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..256).prop_map(Input),
        1 => prop::collection::vec(any::<char>(), 0..256)
            .prop_map(|c| Input(c.into_iter().collect::<String>().into_bytes())),
        8 => (0..n, prop::collection::vec(mutation(), 1..8)).prop_map(move |(i, m)| {
            Input(apply(&seeds[i], &m, &seeds, &extra))
        }),
    ]
    .boxed()
}

/// A tokio runtime for targets that run async readers (one per target).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ---------------------------------------------------------------------------
// What an instance does with a provider (Cloudflare, Route53): shared parts
// ---------------------------------------------------------------------------

/// An absolute name the tests write correctly.
fn name(s: &str) -> crate::record::DomainName {
    crate::record::DomainName::new(s).unwrap()
}

/// The value the providers' targets publish, and the rrsets they read:
/// `www A` (where it goes), a registry and an SRV rrset.
fn mine_and_keys() -> (
    crate::record::Value,
    std::collections::BTreeSet<crate::record::RrKey>,
) {
    use crate::record::{RType, RrKey};
    let mine = crate::record::Value::from_line("www.example.com. A 203.0.113.7").unwrap();
    let keys = [
        mine.key(),
        RrKey {
            name: name("i-1._dnsreg.example.com"),
            rtype: RType::TXT,
        },
        RrKey {
            name: name("_x._tcp.example.com"),
            rtype: RType::SRV,
        },
    ]
    .into();
    (mine, keys)
}

/// Panics unless every value `snapshot` holds lies at the key it was read
/// for; asks each key's TTL.
fn values_at_their_keys<P: crate::provider::Provider>(
    p: &P,
    snapshot: &P::Snapshot,
    keys: &std::collections::BTreeSet<crate::record::RrKey>,
) {
    for k in keys {
        for v in p.values(snapshot, k) {
            assert_eq!(v.key(), *k, "a value read for {k} is at another key");
        }
        let _ = p.ttl(snapshot, k);
    }
}

/// Panics unless every label a registry listing names is one DNS label;
/// parses each registry.
fn registries_are_labels(registries: &std::collections::BTreeMap<String, crate::provider::Values>) {
    for (label, values) in registries {
        assert!(!label.is_empty() && !label.contains('.'), "{label:?}");
        let _ = crate::registry::Registry::parse(values);
    }
}

/// An edit adding `v` at its rrset with TTL 60.
fn adding(v: &crate::record::Value) -> crate::provider::Edit {
    let mut edit = crate::provider::Edit::default();
    edit.add.insert(
        v.key(),
        vec![crate::record::Record {
            value: v.clone(),
            ttl: 60,
        }],
    );
    edit
}

/// An API answer's body: one of the corpus's seeds, mutated, or raw bytes.
#[derive(Clone, Debug)]
enum Body {
    Seed(usize, Vec<Mutation>),
    Raw(Vec<u8>),
}

impl Body {
    /// Mostly a mutated seed of the `n`, sometimes raw bytes.
    fn strategy(n: usize) -> impl Strategy<Value = Body> {
        prop_oneof![
            8 => (0..n, prop::collection::vec(mutation(), 0..5)).prop_map(|(i, m)| Body::Seed(i, m)),
            1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Body::Raw),
        ]
    }

    /// The bytes, with `tokens` of the target among those mutations insert.
    fn bytes(&self, seeds: &[Vec<u8>], tokens: &[&[u8]]) -> Vec<u8> {
        match self {
            Body::Seed(i, m) => apply(&seeds[*i], m, seeds, tokens),
            Body::Raw(b) => b.clone(),
        }
    }
}
