//! A fuzz target's run: its corpus, then generated cases, each under a
//! watchdog that aborts the process on a hang; every failure's input is
//! saved to the findings directory.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestError, TestRunner};

use super::mutate::bytes;
use super::{DEFAULT_CASES, Input, cases, env_secs};

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
