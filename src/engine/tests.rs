//! The engine against the Cloudflare stand-in over loopback, each
//! instance with its state file in a temporary directory. Real time, as
//! in the agent's tests: the stand-in answers over loopback.

use std::collections::BTreeSet;

use testkit::cloudflare::{CfFault, CloudflareServer};

use super::sync::intent;
use super::*;
use crate::output::{print_reaped, print_reports};
use crate::provider::Values;
use crate::record::{Record, Value};
use crate::registry::unix_now;
use crate::state::{Pending, ProviderState};

#[test]
fn a_leave_looks_where_the_configuration_publishes_whatever_the_state_file_says() {
    // A first join cut off before it completed leaves nothing in the
    // state file; its leave must still know which rrsets it touches (and
    // so that it shares them with a fleet). A join is given what the
    // state file says only.
    let zone = DomainName::new("example.com").unwrap();
    let record = |line: &str| Record {
        value: Value::from_line(line).unwrap(),
        ttl: 60,
    };
    let desired = Desired {
        records: vec![
            record("www.example.com. A 192.0.2.1"),
            record("h.example.com. A 192.0.2.1"),
        ],
        exclusive: BTreeSet::from([record("h.example.com. A 192.0.2.1").value.key()]),
    };
    let empty = ProviderState::default();
    let remembered = ProviderState {
        published: Values::from([Value::from_line("old.example.com. A 192.0.2.9").unwrap()]),
        ..ProviderState::default()
    };
    let leave = intent(
        Action::Leave,
        &Vars::sample(),
        desired.clone(),
        &empty,
        &zone,
        DEADLINE,
        None,
    );
    assert!(leave.leaving && leave.desired.is_empty());
    assert_eq!(
        leave.known,
        desired
            .records
            .iter()
            .map(|r| r.value.clone())
            .collect::<Values>()
    );
    let leave = intent(
        Action::Leave,
        &Vars::sample(),
        desired.clone(),
        &remembered,
        &zone,
        DEADLINE,
        None,
    );
    assert_eq!(leave.known.len(), 3, "{:?}", leave.known);
    let join = intent(
        Action::Join,
        &Vars::sample(),
        desired,
        &remembered,
        &zone,
        DEADLINE,
        None,
    );
    assert_eq!(join.known, remembered.published);
}

const TOKEN: &str = "engine-test-token";
const DEADLINE: Duration = Duration::from_secs(30);

/// One host name per instance at provider `a`.
const HOST_AT_A: &str = "[[host]]\nproviders = [\"a\"]\nname = \"{instance_id}\"\n";

/// Zones `a.example` and `b.example` at one Cloudflare stand-in, seen by
/// every configuration as providers `a` and `b`.
struct World {
    dir: tempfile::TempDir,
    cf: CloudflareServer,
    a: String,
    b: String,
}

fn identity(id: &str, ipv4: &str) -> Identity {
    Identity {
        cloud: crate::config::MetadataKind::None,
        detected_by: "test".into(),
        instance_id: id.into(),
        region: None,
        availability_zone: None,
        hostname: None,
        public_ipv4: Some(ipv4.parse().unwrap()),
        private_ipv4: None,
        ipv6: None,
    }
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), TOKEN).unwrap();
        let cf = CloudflareServer::start();
        cf.add_token(TOKEN, true);
        let a = cf.create_zone("a.example");
        let b = cf.create_zone("b.example");
        World { dir, cf, a, b }
    }

    fn state_dir(&self, id: &str) -> std::path::PathBuf {
        self.dir.path().join(id)
    }

    /// Instance `id`'s configuration: providers `a` and `b`, then `records`.
    fn config(&self, id: &str, records: &str) -> Config {
        let mut text = format!(
            "[instance]\nmetadata = \"none\"\nid = \"{id}\"\nipv4 = \"203.0.113.7\"\n\n\
                 [agent]\nstate_dir = {:?}\n\n",
            self.state_dir(id).display().to_string()
        );
        for (name, zone) in [("a", "a.example"), ("b", "b.example")] {
            text.push_str(&format!(
                "[providers.{name}]\ntype = \"cloudflare\"\nzone = \"{zone}\"\n\
                     endpoint = \"{}\"\ntoken_file = {:?}\n\n",
                self.cf.url(),
                self.dir.path().join("token").display().to_string()
            ));
        }
        text.push_str(records);
        crate::config::parse("engine-test.toml", &text).unwrap()
    }

    fn engine(&self, id: &str, ipv4: &str, records: &str) -> Engine {
        Engine::new(self.config(id, records), &identity(id, ipv4)).unwrap()
    }

    fn state(&self, id: &str) -> State {
        StateFile::new(&self.state_dir(id)).load().unwrap()
    }

    fn save_state(&self, id: &str, state: &State) {
        StateFile::new(&self.state_dir(id)).save(state).unwrap();
    }
}

fn lines(values: &[Value]) -> Vec<String> {
    values.iter().map(Value::to_line).collect()
}

/// Each provider's rows of `status`: (provider, record, present).
async fn status(e: &mut Engine) -> Vec<(String, String, bool)> {
    e.status()
        .await
        .unwrap()
        .into_iter()
        .flat_map(|r| r.unwrap())
        .map(|p| (p.provider, p.record, p.present))
        .collect()
}

fn row(provider: &str, record: &str, present: bool) -> (String, String, bool) {
    (provider.into(), record.into(), present)
}

#[tokio::test]
async fn a_join_publishes_at_every_provider_and_a_later_leave_removes_it() {
    let w = World::new();
    let both = "[[host]]\nproviders = [\"a\", \"b\"]\nname = \"{instance_id}\"\n";
    let mut e = w.engine("i-0abc", "203.0.113.7", both);
    let (at_a, at_b) = (
        "i-0abc.a.example. A 203.0.113.7",
        "i-0abc.b.example. A 203.0.113.7",
    );
    assert_eq!(
        status(&mut e).await,
        [row("a", at_a, false), row("b", at_b, false)]
    );

    let reports = e.sync(Action::Join, DEADLINE).await.unwrap();
    let added: Vec<(&str, Vec<String>)> = reports
        .iter()
        .map(|r| {
            (
                r.provider.as_str(),
                lines(&r.result.as_ref().unwrap().added),
            )
        })
        .collect();
    assert_eq!(added, [("a", vec![at_a.into()]), ("b", vec![at_b.into()])]);
    assert!(print_reports(Action::Join, &reports));
    assert_eq!(w.cf.values(&w.a, "i-0abc.a.example", "A"), ["203.0.113.7"]);
    assert_eq!(w.cf.values(&w.b, "i-0abc.b.example", "A"), ["203.0.113.7"]);
    assert_eq!(
        status(&mut e).await,
        [row("a", at_a, true), row("b", at_b, true)]
    );

    // The state file keeps, per provider, the zone and its id and what
    // was published, for the next process of this instance.
    let state = w.state("i-0abc");
    assert_eq!(state.instance_id, "i-0abc");
    for (name, zone, id, value) in [
        ("a", "a.example.", &w.a, at_a),
        ("b", "b.example.", &w.b, at_b),
    ] {
        let p = &state.providers[name];
        assert_eq!(p.zone, zone);
        assert_eq!(p.zone_id.as_ref(), Some(id));
        let published: Vec<String> = p.published.iter().map(Value::to_line).collect();
        assert!(published.contains(&value.to_string()), "{published:?}");
    }

    // Restarted, the instance leaves: with the zones' ids remembered it
    // asks for no zone, and removes everything it wrote.
    let mut e = w.engine("i-0abc", "203.0.113.7", both);
    w.cf.reset_stats();
    let reports = e.sync(Action::Leave, DEADLINE).await.unwrap();
    let removed: Vec<(&str, Vec<String>)> = reports
        .iter()
        .map(|r| {
            (
                r.provider.as_str(),
                lines(&r.result.as_ref().unwrap().removed),
            )
        })
        .collect();
    assert_eq!(
        removed,
        [("a", vec![at_a.into()]), ("b", vec![at_b.into()])]
    );
    assert!(print_reports(Action::Leave, &reports));
    assert!(w.cf.records(&w.a).is_empty(), "{:?}", w.cf.records(&w.a));
    assert!(w.cf.records(&w.b).is_empty(), "{:?}", w.cf.records(&w.b));
    assert_eq!(w.cf.stats().requests.get("GET zones"), None);
    assert_eq!(
        status(&mut e).await,
        [row("a", at_a, false), row("b", at_b, false)]
    );
}

#[tokio::test]
async fn a_planning_error_at_one_provider_writes_nothing_at_any() {
    let w = World::new();
    // This instance has no region (the sample identity that checked the
    // configuration had one).
    let records = format!("{HOST_AT_A}[[host]]\nproviders = [\"b\"]\nname = \"{{region}}\"\n");
    let mut e = w.engine("i-0abc", "203.0.113.7", &records);
    let e = e.sync(Action::Join, DEADLINE).await.unwrap_err();
    assert!(
        e.0.contains("host[1].name: `{region}` needs {region}"),
        "{e}"
    );
    assert!(w.cf.records(&w.a).is_empty(), "{:?}", w.cf.records(&w.a));
}

#[tokio::test]
async fn each_provider_s_names_are_planned_in_its_own_zone() {
    let w = World::new();
    let records = "[[host]]\nproviders = [\"a\"]\nname = \"www.a.example.\"\n\
                       [[host]]\nproviders = [\"b\"]\nname = \"www.b.example.\"\n";
    let mut e = w.engine("i-0abc", "203.0.113.7", records);
    let reports = e.sync(Action::Join, DEADLINE).await.unwrap();
    assert!(print_reports(Action::Join, &reports));
    assert_eq!(w.cf.values(&w.a, "www.a.example", "A"), ["203.0.113.7"]);
    assert_eq!(w.cf.values(&w.b, "www.b.example", "A"), ["203.0.113.7"]);
}

#[tokio::test]
async fn a_new_address_replaces_the_old_one_and_a_new_instance_id_is_refused() {
    let w = World::new();
    let mut e = w.engine("i-0abc", "203.0.113.7", HOST_AT_A);
    assert!(!e.set_identity(&identity("i-0abc", "203.0.113.7")).unwrap());
    e.sync(Action::Join, DEADLINE).await.unwrap();
    assert_eq!(w.cf.values(&w.a, "i-0abc.a.example", "A"), ["203.0.113.7"]);

    assert!(e.set_identity(&identity("i-0abc", "203.0.113.8")).unwrap());
    assert_eq!(e.vars().ipv4.to_string(), "203.0.113.8");
    let reports = e.sync(Action::Join, DEADLINE).await.unwrap();
    assert!(print_reports(Action::Join, &reports));
    assert_eq!(w.cf.values(&w.a, "i-0abc.a.example", "A"), ["203.0.113.8"]);

    let err = e
        .set_identity(&identity("i-0def", "203.0.113.8"))
        .unwrap_err();
    assert!(err.to_string().contains("restart dnsreg"), "{err}");
    assert_eq!(e.vars().instance_id, "i-0abc");
}

/// A state file of `id` with a change accepted `ago` at provider `a`.
fn pending_at_a(w: &World, id: &str, ago: Duration) -> State {
    let mut state = State {
        version: 1,
        instance_id: id.into(),
        ..State::default()
    };
    state.providers.insert(
        "a".into(),
        ProviderState {
            zone: "a.example.".into(),
            zone_id: Some(w.a.clone()),
            pending: Some(Pending {
                change: "change-1".into(),
                accepted_ms: unix_now_ms() - u64::try_from(ago.as_millis()).unwrap(),
            }),
            ..ProviderState::default()
        },
    );
    state
}

#[tokio::test]
async fn a_confirmed_change_is_forgotten_and_how_long_it_took_times_the_next() {
    let w = World::new();
    w.save_state(
        "i-0abc",
        &pending_at_a(&w, "i-0abc", Duration::from_secs(3)),
    );
    let mut e = w.engine("i-0abc", "203.0.113.7", HOST_AT_A);
    // Accepted 3 s ago; a first change is expected live after 10 s.
    let due = e.confirm_due(Duration::from_secs(10)).unwrap();
    assert!(
        due > Duration::from_secs(6) && due <= Duration::from_secs(7),
        "{due:?}"
    );

    // Cloudflare's changes are live once accepted.
    let got = e.confirm().await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].provider.as_str(), got[0].change.as_str()),
        ("a", "change-1")
    );
    assert!(matches!(got[0].result, Ok(true)), "{:?}", got[0].result);
    assert!(
        got[0].after >= Duration::from_secs(3) && got[0].after < Duration::from_secs(60),
        "{:?}",
        got[0].after
    );
    let kept = &w.state("i-0abc").providers["a"];
    assert_eq!(kept.pending, None);
    let took = kept.live_after_ms.unwrap();
    assert!((3000..60_000).contains(&took), "{took}");
    assert_eq!(e.confirm_due(Duration::from_secs(10)), None);
    assert!(e.confirm().await.is_empty());

    // The next change accepted now is expected live as late as the last
    // one was, not after the first guess.
    let mut state = w.state("i-0abc");
    state.providers.get_mut("a").unwrap().pending = Some(Pending {
        change: "change-2".into(),
        accepted_ms: unix_now_ms(),
    });
    w.save_state("i-0abc", &state);
    let due = e.confirm_due(Duration::from_secs(10)).unwrap();
    assert!(
        due <= Duration::from_millis(took)
            && due > Duration::from_millis(took) - Duration::from_secs(2),
        "{due:?} {took}"
    );
}

#[tokio::test]
async fn a_change_pending_at_a_provider_no_longer_configured_is_not_waited_for() {
    let w = World::new();
    // Provider `gone` had a change accepted and not yet confirmed (`join
    // --no-wait`, or an agent stopped before asking), then was taken out
    // of the configuration: nothing asks it any more, and `join` waited
    // for it until LIVE_DEADLINE (3 min), then failed.
    let mut state = pending_at_a(&w, "i-0abc", Duration::from_secs(3));
    let gone = state.providers.remove("a").unwrap();
    state.providers.insert("gone".into(), gone);
    w.save_state("i-0abc", &state);
    let mut e = w.engine("i-0abc", "203.0.113.7", HOST_AT_A);
    assert!(e.confirm().await.is_empty());
    assert_eq!(e.confirm_due(Duration::from_secs(10)), None);
}

#[tokio::test]
async fn another_instance_s_state_file_is_not_this_one_s() {
    let w = World::new();
    w.save_state(
        "i-0abc",
        &pending_at_a(&w, "i-0def", Duration::from_secs(3)),
    );
    let mut e = w.engine("i-0abc", "203.0.113.7", HOST_AT_A);
    assert!(e.confirm().await.is_empty());
    e.sync(Action::Join, DEADLINE).await.unwrap();
    let state = w.state("i-0abc");
    assert_eq!(state.instance_id, "i-0abc");
    assert_eq!(state.providers["a"].pending, None);
}

#[tokio::test]
async fn a_provider_that_throttled_this_process_is_busy_for_a_while() {
    let w = World::new();
    let mut e = w.engine("i-0abc", "203.0.113.7", HOST_AT_A);
    assert!(!e.busy(Duration::from_secs(60)));
    w.cf.fail_next(
        1,
        CfFault::RateLimited {
            retry_after_secs: 1,
        },
    );
    let reports = e.sync(Action::Join, DEADLINE).await.unwrap();
    assert!(print_reports(Action::Join, &reports));
    assert!(e.busy(Duration::from_secs(60)));
}

#[tokio::test]
async fn a_reaping_agent_that_may_not_list_the_registries_refuses_to_start() {
    let w = World::new();
    let mut e = w.engine("i-0abc", "203.0.113.7", HOST_AT_A);
    assert!(print_reports(
        Action::Join,
        &e.sync(Action::Join, DEADLINE).await.unwrap()
    ));
    e.check_reap_rights().await.unwrap();
    // Provider `a` answers the listing 403: the token lacks the right.
    w.cf.fail_next(1, CfFault::ServerError(403));
    let err = e.check_reap_rights().await.unwrap_err();
    assert!(
        format!("{err:#}").starts_with("a: this agent reaps expired leases"),
        "{err:#}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_spreads_the_first_retries_where_instances_write_apart() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[instance]\nmetadata = \"none\"\nid = \"i-0abc\"\nipv4 = \"203.0.113.7\"\n\n\
             [agent]\nstate_dir = {:?}\n\n\
             [providers.cf]\ntype = \"cloudflare\"\nzone = \"example.com\"\n\n\
             [providers.simple]\ntype = \"route53\"\nzone = \"example.net\"\n\n\
             [providers.multi]\ntype = \"route53\"\nzone = \"example.org\"\nrouting = \"multivalue\"\n\n\
             [[host]]\nproviders = [\"cf\", \"simple\", \"multi\"]\nname = \"{{instance_id}}\"\n",
        dir.path().display().to_string()
    );
    let config = crate::config::parse("engine-test.toml", &text).unwrap();
    let e = Engine::new(config, &identity("i-0abc", "203.0.113.7")).unwrap();
    e.spread_retries(Duration::from_secs(1000 * 3600));
    // Draws from a seed: the check below is not left to odds.
    crate::retry::SEEDED.with(|r| {
        *r.borrow_mut() = Some(rand::SeedableRng::seed_from_u64(1));
    });
    let mut waited = Vec::new();
    for s in &e.slots {
        // A first "too many requests" without Retry-After.
        let pacer = s.link.connector.pacer();
        pacer.busy("throttled", None);
        let start = tokio::time::Instant::now();
        pacer.ready().await;
        waited.push((s.name.as_str(), start.elapsed() > Duration::from_secs(3600)));
    }
    crate::retry::SEEDED.with(|r| *r.borrow_mut() = None);
    // Spread over up to 1000 h, but not where every instance rewrites
    // the one shared rrset (Route53 simple routing): there a leave must
    // announce, look and carry within the stop too.
    waited.sort_unstable();
    assert_eq!(waited, [("cf", true), ("multi", true), ("simple", false)]);
}

#[tokio::test]
async fn a_restarted_instance_with_nothing_to_change_lists_once_per_provider() {
    let w = World::new();
    let mut e = w.engine("i-0abc", "203.0.113.7", HOST_AT_A);
    e.sync(Action::Join, DEADLINE).await.unwrap();
    // README "Performance": a later join with nothing to change costs one
    // listing of the records naming the instance at each provider (`b`
    // has none), from what the state file remembers; no write.
    let mut e = w.engine("i-0abc", "203.0.113.7", HOST_AT_A);
    w.cf.reset_stats();
    let reports = e.sync(Action::Join, DEADLINE).await.unwrap();
    assert!(
        reports
            .iter()
            .all(|r| !r.result.as_ref().unwrap().changed())
    );
    assert_eq!(
        w.cf.stats().requests,
        [("GET dns_records".to_string(), 2)].into()
    );
}

/// Sets `id`'s lease at zone `a` to have run out a minute ago.
fn expire(w: &World, id: &str) {
    let name = format!("{id}._dnsreg.a.example");
    let mut record =
        w.cf.records(&w.a)
            .into_iter()
            .find(|r| r.name == name && r.content.contains("dnsreg1-lease "))
            .unwrap_or_else(|| panic!("no lease at {name}"));
    let at = record
        .content
        .trim_matches('"')
        .strip_prefix("dnsreg1-lease ")
        .unwrap()
        .to_string();
    record.content = record.content.replace(&at, &(unix_now() - 60).to_string());
    w.cf.put_record(&w.a, record);
}

/// Each report as `provider: instance - value` lines, one per value
/// reaped (`provider: nothing` when there was no expired lease).
fn reaped(reports: &[ReapReport]) -> Vec<String> {
    let mut out = Vec::new();
    for r in reports {
        let list = r.result.as_ref().unwrap();
        if list.is_empty() {
            out.push(format!("{}: nothing", r.provider));
        }
        for x in list {
            out.extend(
                x.removed
                    .iter()
                    .map(|v| format!("{}: {} - {v}", r.provider, x.instance)),
            );
        }
    }
    out
}

#[tokio::test]
async fn expired_leases_are_reaped_by_an_agent_and_by_dnsreg_reap() {
    let w = World::new();
    let records = format!("{HOST_AT_A}[lease]\nttl = \"1h\"\n");
    for (id, ip) in [("i-dead1", "203.0.113.8"), ("i-dead2", "203.0.113.9")] {
        let mut e = w.engine(id, ip, &records);
        let joined = e.sync(Action::Join, DEADLINE).await.unwrap();
        assert!(print_reports(Action::Join, &joined));
    }
    let mut live = w.engine("i-live", "203.0.113.7", &records);
    let joined = live.sync(Action::Join, DEADLINE).await.unwrap();
    assert!(print_reports(Action::Join, &joined));

    let nothing = live.reap(DEADLINE).await;
    assert_eq!(reaped(&nothing), ["a: nothing", "b: nothing"]);
    assert!(print_reaped(&nothing));

    expire(&w, "i-dead1");
    let reports = live.reap(DEADLINE).await;
    assert_eq!(
        reaped(&reports),
        [
            "a: i-dead1 - i-dead1.a.example. A 203.0.113.8",
            "b: nothing"
        ]
    );
    assert!(print_reaped(&reports));

    // `dnsreg reap`, from the configuration alone.
    expire(&w, "i-dead2");
    let reports = reap_once(&w.config("i-live", &records), DEADLINE).await;
    assert_eq!(
        reaped(&reports),
        [
            "a: i-dead2 - i-dead2.a.example. A 203.0.113.9",
            "b: nothing"
        ]
    );
    assert!(print_reaped(&reports));
    let left: Vec<String> = w.cf.records(&w.a).into_iter().map(|r| r.name).collect();
    assert!(left.iter().all(|n| n.starts_with("i-live.")), "{left:?}");

    // Throttled past its deadline: a failure, and out of time (the agent
    // reaps again soon rather than a whole interval later).
    w.cf.fail_next(
        4,
        CfFault::RateLimited {
            retry_after_secs: 1,
        },
    );
    let reports = live.reap(Duration::from_millis(500)).await;
    assert!(!print_reaped(&reports));
    assert!(
        reports.iter().any(|r| r.out_of_time() && r.result.is_err()),
        "{reports:?}"
    );
}

#[test]
fn a_failure_at_any_provider_fails_the_command() {
    let ok = || Report {
        provider: "a".into(),
        result: Ok(Outcome::default()),
    };
    let failed = || Report {
        provider: "b".into(),
        result: Err(anyhow::anyhow!("refused")),
    };
    for action in [Action::Join, Action::Leave] {
        assert!(print_reports(action, &[ok()]));
        assert!(!print_reports(action, &[ok(), failed()]));
    }
    let reaped = ReapReport {
        provider: "a".into(),
        result: Ok(Vec::new()),
    };
    let failed = ReapReport {
        provider: "b".into(),
        result: Err(anyhow::anyhow!("refused")),
    };
    assert!(print_reaped(std::slice::from_ref(&reaped)));
    assert!(!print_reaped(&[reaped, failed]));
}
