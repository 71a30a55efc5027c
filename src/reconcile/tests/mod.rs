//! The ownership rules against an in-memory provider whose writes are
//! conditional on values, as Route53's exact DELETE is (or, keeping claims by
//! name, on the ownership rrsets alone, as dnsreg's RFC 2136 UPDATEs are):
//! unit tests of each rule, and a randomized interleaving of many instances
//! joining, leaving, crashing and a person editing, checking after every
//! write that nothing is lost, clobbered or left unowned.
//!
//! One file a concern: the stand-in provider ([`memory`]); the rules of one
//! join or leave ([`rules`]), in each ownership model ([`models`]); the
//! retry loop's conflicts, throttling and deadlines ([`retries`]); reaping
//! expired registries ([`reaping`]); announcing and carrying a fleet at once
//! ([`carrying`]), and the carrying write as decided ([`materialise`]); dry
//! runs ([`dry_runs`]); a simulated fleet on Route53's rate ([`fleet`]); and
//! the randomized interleavings ([`randomized`]). What they share is here.

mod carrying;
mod dry_runs;
mod fleet;
mod materialise;
mod memory;
mod models;
mod randomized;
mod reaping;
mod retries;
mod rules;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use super::*;
use crate::provider::Written;
use crate::record::{RData, by_key};
use crate::registry::unix_now;
use crate::retry::Pacer;
use memory::*;

/// With `DNSREG_TRACE` set, the test's debug log is printed (with
/// `--nocapture`): what each instance read, wrote and waited for.
fn trace_if_asked() {
    if std::env::var_os("DNSREG_TRACE").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("dnsreg=debug")
            .with_test_writer()
            .try_init();
    }
}

fn value(line: &str) -> Value {
    Value::from_line(line).unwrap()
}

fn intent(id: &str, lines: &[&str], leaving: bool) -> Intent {
    let desired: Vec<Record> = lines
        .iter()
        .map(|l| Record {
            value: value(l),
            ttl: 60,
        })
        .collect();
    Intent {
        instance_id: id.into(),
        // Round-robin names and SRV rrsets are shared; hosts (h*, or named
        // for the instance, i-*) are not.
        exclusive: desired
            .iter()
            .map(|r| r.value.key())
            .filter(|k| k.name.as_str().starts_with('h') || k.name.as_str().starts_with("i-"))
            .collect(),
        desired: if leaving { Vec::new() } else { desired },
        leaving,
        known: Values::new(),
        memory: None,
        deadline: Duration::from_secs(30),
        lease: None,
        checkpoint: Checkpoint::default(),
    }
}

fn registry_of(m: &Memory, id: &str) -> Registry {
    let key = RrKey {
        name: registry::name(&m.zone, id).unwrap(),
        rtype: RType::TXT,
    };
    let z = m.sets.lock().unwrap();
    Registry::parse(&z.get(&key).map(|e| e.values.clone()).unwrap_or_default())
}

const MINE: [&str; 2] = [
    "www.example.com. A 192.0.2.1",
    "_a._tcp.example.com. SRV 0 0 80 h1.example.com.",
];
