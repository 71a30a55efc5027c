//! The state directory: `state.json` (what this instance published, and each
//! provider's memory of its last change) and `agent.json` (what a running
//! agent says it is doing). Both are read back after whatever happened to
//! them: a crash, a full disk, an operator's edit, another version.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{Input, Target, corpus};
use crate::config::{
    CloudflareConfig, Config, ProviderConfig, ProviderKind, Route53Config, Routing, ZoneRef,
};
use crate::engine::Engine;
use crate::metadata::Identity;
use crate::provider::cloudflare::{self, Cloudflare};
use crate::provider::route53::{self, Route53};
use crate::provider::{Provider, Values};
use crate::record::{DomainName, RrKey};
use crate::state::{State, StateFile};

const TOKENS: &[&[u8]] = &[
    b"\"version\": 1,",
    b"\"instance_id\": \"i-1\",",
    b"\"pending\": {\"change\": \"C1\", \"accepted_ms\": 18446744073709551615},",
    b"\"live_after_ms\": 18446744073709551615,",
    b"\"leaving\": true,",
    b"\"memory\": {\"rrsets\": {}},",
    b"\"memory\": {\"records\": {}},",
    b"\"www.example.com. A\"",
    b"\"www.example.com. TXT \\\"a\\\"\"",
    b"null",
    b"true",
    b"{}",
    b"[]",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    b"1.5",
    b"-1",
    b"\"pid\": 1,",
    b"\"pid\": 4294967295,",
    b"\"since\": 18446744073709551615,",
];

struct Fixture {
    dir: tempfile::TempDir,
    engine: Engine,
    r53: Route53,
    r53_multi: Route53,
    cf: Cloudflare,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let zone = DomainName::new("example.com").unwrap();
    let text = format!(
        "[instance]\nmetadata = \"none\"\nid = \"i-1\"\nipv4 = \"203.0.113.7\"\n\n\
         [providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\n\n\
         [providers.cf]\ntype = \"cloudflare\"\nzone = \"example.org\"\n\n\
         [[host]]\nproviders = [\"r53\", \"cf\"]\nname = \"{{instance_id}}\"\n\n\
         [agent]\nstate_dir = {:?}\n",
        dir.path().display().to_string()
    );
    let config: Config = crate::config::parse("fuzz.toml", &text).unwrap();
    let identity = Identity {
        cloud: crate::config::MetadataKind::None,
        detected_by: "fuzz".into(),
        instance_id: "i-1".into(),
        region: None,
        availability_zone: None,
        hostname: None,
        public_ipv4: Some("203.0.113.7".parse().unwrap()),
        private_ipv4: None,
        ipv6: None,
    };
    let engine = Engine::new(config.clone(), &identity).expect("engine");
    let r53 = |routing| Route53Config {
        zone: ZoneRef::Name(zone.clone()),
        routing,
        endpoint: None,
    };
    let cf = ProviderConfig {
        name: "cf".into(),
        kind: ProviderKind::Cloudflare(CloudflareConfig {
            zone: zone.clone(),
            zone_id: None,
            token_file: None,
            proxied: false,
            endpoint: None,
        }),
    };
    let ProviderKind::Cloudflare(cf_cfg) = cf.kind else {
        unreachable!()
    };
    Fixture {
        dir,
        engine,
        r53: Route53::offline("r53", r53(Routing::Simple), "i-1"),
        r53_multi: Route53::offline("r53", r53(Routing::Multivalue), "i-1"),
        cf: Cloudflare::offline("cf", cf_cfg, "i-1"),
    }
}

/// The keys a memory names: its rrsets' (JSON object keys), and the state's
/// published values'.
fn keys_of(memory: &serde_json::Value, published: &Values) -> BTreeSet<RrKey> {
    let mut keys: BTreeSet<RrKey> = published.iter().map(|v| v.key()).collect();
    for field in ["rrsets", "records"] {
        if let Some(map) = memory.get(field).and_then(serde_json::Value::as_object) {
            keys.extend(map.keys().filter_map(|k| k.parse::<RrKey>().ok()));
        }
    }
    keys
}

/// What the engine and the providers do with a memory they find.
fn use_memory<P: Provider>(p: &P, memory: &serde_json::Value, published: &Values) {
    let Ok(snap) = serde_json::from_value::<P::Snapshot>(memory.clone()) else {
        return;
    };
    let keys = keys_of(memory, published);
    for k in &keys {
        let _ = p.values(&snap, k);
        let _ = p.ttl(&snap, k);
        for v in published {
            let _ = p.claimants(&snap, v);
        }
    }
    let _ = p.presume(&snap, &keys, &keys, published);
    let mut merged = P::Snapshot::default();
    p.merge(&mut merged, snap);
}

fn check_state(f: &Fixture, bytes: &[u8]) {
    std::fs::write(f.dir.path().join("state.json"), bytes).unwrap();
    std::fs::write(f.dir.path().join("agent.json"), bytes).unwrap();
    if let Ok(state) = StateFile::new(f.dir.path()).load() {
        // What is saved loads back the same.
        let again: State = serde_json::from_slice(&serde_json::to_vec(&state).unwrap()).unwrap();
        assert_eq!(again, state);
        for p in state.providers.values() {
            if let Some(m) = &p.memory {
                use_memory::<Route53>(&f.r53, m, &p.published);
                use_memory::<Route53>(&f.r53_multi, m, &p.published);
                use_memory::<Cloudflare>(&f.cf, m, &p.published);
                let _ = serde_json::from_value::<route53::Snapshot>(m.clone());
                let _ = serde_json::from_value::<cloudflare::Snapshot>(m.clone());
            }
        }
        // When to ask whether pending changes are live (a state file whose
        // accepted_ms + live_after_ms passes u64::MAX overflowed here).
        let _ = f.engine.confirm_due(Duration::from_secs(1));
    }
    if let Some(status) = crate::agent::AgentStatus::read(f.dir.path()) {
        let _ = status.to_string();
    }
}

#[test]
fn state_file() {
    let t = Target::new("state");
    let seeds = corpus("state");
    let f = fixture();
    t.run_bytes(&seeds, TOKENS, |i: &Input| check_state(&f, &i.0));
}
