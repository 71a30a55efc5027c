//! What only Cloudflare has, against its strict stand-in: each value a record
//! marked as ours by its comment, the batch endpoint and its fallback,
//! pagination, API tokens (never shown, their permissions), proxied records,
//! what a join costs in requests, its configuration errors and wording, and
//! Cloudflare beside Route53 in one configuration. The behaviour every provider
//! shares is in the battery (`battery::cloudflare::*`).

use std::time::Duration;

use testkit::cloudflare::{CfFault, DnsRecord};

use crate::battery::{Backend, CloudflareBackend, FULL, World};
use crate::util::{CF_TOKEN, Env, run_expect, stderr, stdout};

/// The Cloudflare stand-in with `example.com` and [`CF_TOKEN`], the metadata
/// stand-in and a scratch directory.
type CfEnv = World<CloudflareBackend>;

const OWNER: &str = "dnsreg:i-0123456789abcdef0";

/// The original script's invocation, as flags.
const SERVICE: &str = "--service _v1._theservice._tcp --port 8080";

/// Every record as Cloudflare holds it, `name type content [comment]`, sorted:
/// names without trailing dot, and the comment that marks a record as ours.
fn with_comments(env: &CfEnv) -> Vec<String> {
    let mut out: Vec<String> = env
        .cf
        .records(&env.zone_id)
        .into_iter()
        .map(|r| {
            format!(
                "{} {} {} [{}]",
                r.name,
                r.rtype,
                r.content,
                r.comment.unwrap_or_default()
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn each_value_is_a_record_of_its_own_marked_ours_by_its_comment() {
    let env = CfEnv::new();
    run_expect(&mut env.flags("join", SERVICE), 0);
    let srv = env
        .cf
        .records(&env.zone_id)
        .into_iter()
        .find(|r| r.rtype == "SRV")
        .unwrap();
    assert_eq!(
        srv.data,
        Some(
            serde_json::json!({"priority": 0, "weight": 0, "port": 8080, "target": "203-0-113-7.example.com"})
        )
    );
    // Host A, SRV line, and the registry's two values: every record is marked ours.
    let records = env.cf.records(&env.zone_id);
    assert_eq!(records.len(), 4, "{records:?}");
    assert!(
        records.iter().all(|r| r.comment.as_deref() == Some(OWNER)),
        "{records:?}"
    );
    assert_eq!(env.cf.stats().applied_batches, 1, "one batch for the join");

    // A second join changes nothing and sends no write.
    env.cf.reset_stats();
    run_expect(&mut env.flags("join", SERVICE), 0);
    let s = env.cf.stats();
    assert_eq!(s.applied_batches, 0, "{s:?}");
    assert!(s.requests.keys().all(|k| k.starts_with("GET")), "{s:?}");

    run_expect(&mut env.flags("leave", SERVICE), 0);
    assert_eq!(env.records(), Vec::<String>::new());
}

#[test]
fn a_config_file_join_is_one_batch_of_marked_records_and_ttl_1_is_automatic() {
    let env = CfEnv::new();
    let config = env.config(
        "dnsreg.toml",
        &FULL.replace("name = \"www\"\n", "name = \"www\"\nttl = 1\n"),
    );
    run_expect(env.dnsreg().arg("-c").arg(&config).arg("join"), 0);
    let records: Vec<String> = with_comments(&env)
        .into_iter()
        .filter(|r| !r.contains("._dnsreg."))
        .collect();
    let mark = format!("[{OWNER}]");
    assert_eq!(
        records,
        vec![
            format!("_http._tcp.example.com PTR ip-10-0-0-5._http._tcp.example.com {mark}"),
            format!(
                "_v1._theservice._tcp.example.com SRV 0 10 8080 i-0123456789abcdef0.example.com {mark}"
            ),
            format!("i-0123456789abcdef0.example.com A 203.0.113.7 {mark}"),
            format!(
                "ip-10-0-0-5._http._tcp.example.com SRV 0 0 8080 i-0123456789abcdef0.example.com {mark}"
            ),
            format!("ip-10-0-0-5._http._tcp.example.com TXT \"path=/\" \"version=1\" {mark}"),
            format!("www.example.com A 203.0.113.7 {mark}"),
        ]
    );
    assert_eq!(env.cf.stats().applied_batches, 1);
    assert_eq!(env.ttl("i-0123456789abcdef0", "A"), Some(120));
    assert_eq!(
        env.ttl("www", "A"),
        Some(1),
        "ttl = 1 is Cloudflare's automatic TTL"
    );

    // Idempotent, TTL 1 included.
    env.cf.reset_stats();
    run_expect(env.dnsreg().arg("-c").arg(&config).arg("join"), 0);
    assert_eq!(env.cf.stats().applied_batches, 0);

    run_expect(env.dnsreg().arg("-c").arg(&config).arg("leave"), 0);
    assert_eq!(env.records(), Vec::<String>::new());
}

#[test]
fn records_made_by_hand_keep_their_id_ttl_and_comment() {
    let env = CfEnv::new();
    env.cf.put_record(
        &env.zone_id,
        DnsRecord::new("www.example.com", "A", "192.0.2.99", 300),
    );
    let mut legacy = DnsRecord::new(
        "_v1._theservice._tcp.example.com",
        "SRV",
        "5 5 9000 legacy.example.net",
        300,
    );
    legacy.comment = Some("keep: legacy cluster".into());
    env.cf.put_record(&env.zone_id, legacy);
    let before = env.cf.records(&env.zone_id);

    run_expect(env.flags("join", SERVICE).args(["--name", "www"]), 0);
    assert_eq!(env.values("www", "A"), vec!["192.0.2.99", "203.0.113.7"]);
    run_expect(env.flags("leave", SERVICE).args(["--name", "www"]), 0);
    assert_eq!(
        env.cf.records(&env.zone_id),
        before,
        "the hand-made records are exactly as they were: id, TTL, comment"
    );
}

/// A 429's Retry-After is waited out (the battery injects one too, among
/// other faults), and a slow answer is waited for. The stand-in blocks every
/// request until the Retry-After, as Cloudflare does, and measures the wait.
#[test]
fn a_429_and_a_slow_answer_are_waited_out() {
    let env = CfEnv::new();
    env.cf.fail_next(
        1,
        CfFault::RateLimited {
            retry_after_secs: 2,
        },
    );
    env.cf
        .fail_next(1, CfFault::Delay(Duration::from_millis(300)));
    run_expect(&mut env.flags("join", SERVICE), 0);
    assert_eq!(env.values("203-0-113-7", "A"), vec!["203.0.113.7"]);
    assert_eq!(env.cf.pending_faults(), 0, "both faults were met");
    let s = env.cf.stats();
    assert_eq!(
        (s.rate_limited, s.early_retries, s.ignored_retry_after),
        (1, 0, 0),
        "one 429, and nothing came before its Retry-After: {s:?}"
    );
    // Measured by the server: from the 429 to dnsreg's next request.
    assert_eq!(s.retry_waits.len(), 1, "{s:?}");
    let wait = s.retry_waits[0];
    assert_eq!(wait.retry_after, Duration::from_secs(2));
    assert!(wait.patient(), "dnsreg came back early: {wait:?}");
}

#[test]
fn an_unknown_zone_says_the_token_cannot_see_it() {
    let env = CfEnv::new();
    let mut c = env.dnsreg();
    c.args([
        "join",
        "--provider",
        "cloudflare",
        "--zone",
        "nope.example",
        "--name",
        "www",
        "--endpoint",
    ])
    .arg(env.cf.url());
    let out = run_expect(&mut c, 1);
    assert!(
        stderr(&out).contains("no zone named nope.example is visible to this API token"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_value_in_a_record_without_our_comment_is_never_deleted() {
    // Our registry says we published 203.0.113.7 at www, but the record there
    // now carries no dnsreg comment (a person re-made it): it stays.
    let env = CfEnv::new();
    run_expect(&mut env.flags("join", "--name www"), 0);
    let ours = env
        .cf
        .records(&env.zone_id)
        .into_iter()
        .find(|r| r.name == "www.example.com")
        .unwrap();
    env.cf.delete_record(&env.zone_id, &ours.id);
    env.cf.put_record(
        &env.zone_id,
        DnsRecord::new("www.example.com", "A", "203.0.113.7", 120),
    );
    let out = run_expect(&mut env.flags("leave", "--name www"), 0);
    assert!(stderr(&out).contains("left alone"), "{}", stderr(&out));
    assert_eq!(
        with_comments(&env),
        vec!["www.example.com A 203.0.113.7 []".to_string()]
    );
}

/// A zone id remembered in the state file that Cloudflare no longer knows
/// (the zone deleted and made again): the join that meets it fails saying
/// so, and the next one looks the zone up anew and joins the new zone.
#[test]
fn a_zone_deleted_and_made_again_is_looked_up_anew() {
    let env = CfEnv::new();
    run_expect(&mut env.flags("join", "--name www"), 0);
    let lookups = || {
        env.cf
            .stats()
            .requests
            .get("GET zones")
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(lookups(), 1);
    env.cf.delete_zone(&env.zone_id);
    let again = env.cf.create_zone("example.com");
    let out = run_expect(&mut env.flags("join", "--name www"), 1);
    let err = stderr(&out);
    assert!(err.contains("or the zone is gone"), "{err}");
    assert_eq!(lookups(), 1, "the remembered id was used");
    run_expect(&mut env.flags("join", "--name www"), 0);
    assert_eq!(lookups(), 2, "the zone was looked up again, once");
    assert_eq!(
        env.cf.values(&again, "www.example.com", "A"),
        vec!["203.0.113.7"]
    );
}

#[test]
fn a_bad_token_is_a_clear_runtime_error_and_never_shown() {
    let env = CfEnv::new();
    let mut c = env.flags("join", "--name www");
    c.env("CLOUDFLARE_API_TOKEN", "wrong-token-c0ffee");
    let out = run_expect(c.arg("-vv"), 1);
    let err = stderr(&out);
    assert!(err.contains("Cloudflare refused the API token"), "{err}");
    assert!(!err.contains("wrong-token-c0ffee"), "{err}");

    let mut c = env.flags("join", "--name www");
    c.env_remove("CLOUDFLARE_API_TOKEN");
    let out = run_expect(&mut c, 1);
    assert!(
        stderr(&out).contains("CLOUDFLARE_API_TOKEN"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_token_without_dns_edit_is_a_clear_runtime_error() {
    let env = CfEnv::new();
    env.cf.add_token("read-only-token-5e5e", false);
    let mut c = env.flags("join", "--name www");
    c.env("CLOUDFLARE_API_TOKEN", "read-only-token-5e5e");
    let out = run_expect(&mut c, 1);
    assert!(
        stderr(&out).contains("Zone → DNS → Edit"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.records(), Vec::<String>::new());
}

#[test]
fn the_token_never_appears_in_the_output_even_with_debug_logging() {
    let env = CfEnv::new();
    let token_file = env.dir.path().join("cf.token");
    std::fs::write(&token_file, format!("{CF_TOKEN}\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let config = env.config(
        "dnsreg.toml",
        &FULL.replace(
            "{provider}",
            &format!("{{provider}}\ntoken_file = \"{}\"", token_file.display()),
        ),
    );
    for cmd in ["join", "status", "leave"] {
        let mut c = env.dnsreg();
        c.env_remove("CLOUDFLARE_API_TOKEN")
            .env("DNSREG_LOG", "trace");
        let out = run_expect(c.arg("-vv").arg("-c").arg(&config).arg(cmd), 0);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!all.contains(CF_TOKEN), "{cmd}: {all}");
        assert!(!all.is_empty());
    }
    assert_eq!(env.records(), Vec::<String>::new());
}

#[test]
fn when_the_batch_endpoint_is_refused_single_requests_do_the_same_work() {
    let env = CfEnv::new();
    env.cf.put_record(
        &env.zone_id,
        DnsRecord::new("www.example.com", "A", "192.0.2.99", 300),
    );
    env.cf.fail_next(100, CfFault::BatchUnsupported);
    let out = run_expect(&mut env.flags("join", "--name www --host web"), 0);
    assert!(stderr(&out).contains("not atomic"), "{}", stderr(&out));
    assert_eq!(env.values("www", "A"), vec!["192.0.2.99", "203.0.113.7"]);
    assert_eq!(env.values("web", "A"), vec!["203.0.113.7"]);
    assert_eq!(env.values("i-0123456789abcdef0._dnsreg", "TXT").len(), 2);
    let out = run_expect(&mut env.flags("leave", "--name www --host web"), 0);
    assert!(stderr(&out).contains("not atomic"), "{}", stderr(&out));
    assert_eq!(
        with_comments(&env),
        vec!["www.example.com A 192.0.2.99 []".to_string()]
    );
    assert_eq!(env.cf.stats().applied_batches, 0);
}

/// Without the batch endpoint a change is several requests, and each one
/// lands alone: they come in an order that keeps every value of ours listed
/// in the ownership registry while it is published (registry lines added
/// before their values, removed after them). Checked before each request of a
/// join and of a leave is applied: a process killed between two of them
/// leaves nothing published that its registry does not claim.
#[test]
fn without_the_batch_endpoint_the_registry_covers_every_value_between_requests() {
    let env = CfEnv::new();
    env.cf.fail_next(100, CfFault::BatchUnsupported);
    let uncovered = || -> Vec<String> {
        let records = env.cf.records(&env.zone_id);
        let claims: Vec<String> = records
            .iter()
            .filter(|r| r.name.contains("._dnsreg."))
            .map(|r| r.content.clone())
            .collect();
        records
            .iter()
            .filter(|r| !r.name.contains("._dnsreg.") && r.comment.is_some())
            .map(|r| format!("{}. {} {}", r.name, r.rtype, r.content))
            .filter(|line| !claims.iter().any(|c| c.contains(line.as_str())))
            .collect()
    };
    for cmd in ["join", "leave"] {
        env.cf.hold(1, testkit::Requests::Writes);
        // Killed if the test fails while one of its requests is held.
        struct Killed(std::process::Child);
        impl Drop for Killed {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let mut child = Killed(
            env.flags(cmd, "--name www --host web")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let mut held = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            assert!(std::time::Instant::now() < deadline, "{cmd}: never ended");
            if !env.cf.wait_held(Duration::from_millis(100)) {
                if child.0.try_wait().unwrap().is_some() {
                    break;
                }
                continue;
            }
            held += 1;
            assert_eq!(
                uncovered(),
                Vec::<String>::new(),
                "{cmd}: before single request {held}, published but not in the registry"
            );
            // Serves the held request, then holds the next.
            env.cf.hold(1, testkit::Requests::Writes);
        }
        assert_eq!(child.0.wait().unwrap().code(), Some(0), "{cmd}");
        // The batch refused, then two values and their two registry lines,
        // one request each.
        assert_eq!(held, 5, "{cmd}: the requests held");
    }
    assert_eq!(env.records(), Vec::<String>::new());
    assert_eq!(env.cf.stats().applied_batches, 0);
}

#[test]
fn listing_follows_pagination() {
    let env = CfEnv::new();
    // 150 hand-made values at the shared name: ours lands beyond the first page.
    for i in 0..150 {
        env.cf.put_record(
            &env.zone_id,
            DnsRecord::new(
                "www.example.com",
                "A",
                &format!("198.18.{}.{}", i / 100, i % 100 + 1),
                300,
            ),
        );
    }
    run_expect(&mut env.flags("join", "--name www"), 0);
    env.cf.reset_stats();
    let out = run_expect(&mut env.flags("join", "--name www"), 0);
    assert!(
        stdout(&out).contains("already published"),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.cf.stats().applied_batches, 0);
    run_expect(&mut env.flags("leave", "--name www"), 0);
    assert_eq!(env.values("www", "A").len(), 150);
}

#[test]
fn proxied_addresses_are_proxied_and_keep_the_automatic_ttl() {
    let env = CfEnv::new();
    let config = env.config(
        "p.toml",
        r#"
[instance]
metadata = "aws"

[providers.cf]
{provider}
proxied = true

[[round_robin]]
providers = ["cf"]
name = "www"
ttl = 60

[agent]
state_dir = "{state_dir}"
"#,
    );
    run_expect(env.dnsreg().arg("-c").arg(&config).arg("join"), 0);
    let www = env
        .cf
        .records(&env.zone_id)
        .into_iter()
        .find(|r| r.name == "www.example.com")
        .unwrap();
    assert!(www.proxied && www.ttl == 1, "{www:?}");
    let registry = env
        .cf
        .records(&env.zone_id)
        .into_iter()
        .find(|r| r.rtype == "TXT")
        .unwrap();
    assert!(!registry.proxied);
    env.cf.reset_stats();
    run_expect(env.dnsreg().arg("-c").arg(&config).arg("join"), 0);
    assert_eq!(env.cf.stats().applied_batches, 0, "idempotent when proxied");
    run_expect(env.dnsreg().arg("-c").arg(&config).arg("leave"), 0);
    assert_eq!(env.records(), Vec::<String>::new());
}

#[test]
fn config_errors_for_cloudflare_name_the_key() {
    let env = CfEnv::new();
    let bad = env.config(
        "bad.toml",
        r#"
[providers.cf]
type = "cloudflare"
zone = "example.com"
proxied = true
routing = "multivalue"
token_file = "/nonexistent/cf.token"

[providers.r53]
type = "route53"
zone = "example.com"
proxied = false

[[srv]]
providers = ["cf"]
name = "_x._tcp"
port = 80
target = "www"

[[round_robin]]
providers = ["cf", "r53"]
name = "www"
"#,
    );
    let out = run_expect(env.dnsreg().arg("-c").arg(&bad).arg("check"), 2);
    let err = stderr(&out);
    for want in [
        "providers.cf.routing",
        "providers.cf.token_file: cannot read /nonexistent/cf.token",
        "providers.r53.proxied",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    // The proxied check needs a valid provider table.
    let proxied = env.config(
        "proxied.toml",
        r#"
[providers.cf]
type = "cloudflare"
zone = "example.com"
proxied = true

[[round_robin]]
providers = ["cf"]
name = "www"
ttl = 100000

[[srv]]
providers = ["cf"]
name = "_x._tcp"
port = 80
target = "www"
"#,
    );
    let out = run_expect(env.dnsreg().arg("-c").arg(&proxied).arg("check"), 2);
    let err = stderr(&out);
    assert!(
        err.contains("srv[0].providers: `srv[0]` makes SRV/TXT/PTR records"),
        "{err}"
    );
    assert!(
        err.contains("round_robin[0].ttl: 100000 is not a TTL Cloudflare accepts"),
        "{err}"
    );
}

/// What a join and a leave cost in API requests: Cloudflare allows 1,200 per
/// five minutes, so a fleet of 100 starting at once must stay under 12 each.
#[test]
fn a_join_and_a_leave_cost_a_handful_of_requests() {
    let env = CfEnv::new();
    let requests = |env: &CfEnv| {
        let s = env.cf.stats();
        env.cf.reset_stats();
        s.requests
    };
    run_expect(&mut env.flags("join", SERVICE), 0);
    // Zone lookup, then one batch written without reading: nothing was there.
    let join = requests(&env);
    assert_eq!(
        join,
        crate::util::counts(&[("GET zones", 1), ("POST batch", 1)])
    );
    run_expect(&mut env.flags("join", SERVICE), 0);
    assert_eq!(
        requests(&env),
        crate::util::counts(&[("GET dns_records", 1)]),
        "an idempotent join checks its records with one listing; the zone id is remembered"
    );
    // Leave: one batch from what the state file remembers (the records name
    // their claimants, so no registry listing is needed).
    run_expect(&mut env.flags("leave", SERVICE), 0);
    let leave = requests(&env);
    assert_eq!(leave, crate::util::counts(&[("POST batch", 1)]));
    assert!(env.cf.records(&env.zone_id).is_empty());
    eprintln!("join: {join:?}, leave: {leave:?}");
}

#[test]
fn one_instance_joins_and_leaves_cloudflare_and_route53_together() {
    let r53 = Env::new();
    let env = CfEnv::new();
    let config = env.config(
        "both.toml",
        &r#"
[instance]
metadata = "aws"

[providers.cf]
{provider}

[providers.r53]
{r53}

[[host]]
providers = ["cf", "r53"]
name = "{instance_id}"

[[round_robin]]
providers = ["cf", "r53"]
name = "www"

[[srv]]
providers = ["cf", "r53"]
name = "_v1._theservice._tcp"
port = 8080
target = "{instance_id}"

[agent]
state_dir = "{state_dir}"
"#
        .replace(
            "{r53}",
            &format!("{}\nendpoint = \"{}\"", r53.provider_table(), r53.r53.url()),
        ),
    );
    run_expect(env.dnsreg().arg("-c").arg(&config).arg("join"), 0);
    assert_eq!(env.values("www", "A"), vec!["203.0.113.7"]);
    assert_eq!(r53.values("www", "A"), vec!["203.0.113.7"]);
    assert_eq!(
        env.cf
            .values(&env.zone_id, "_v1._theservice._tcp.example.com", "SRV"),
        vec!["0 0 8080 i-0123456789abcdef0.example.com"],
        "as Cloudflare holds it"
    );
    assert_eq!(
        env.values("_v1._theservice._tcp", "SRV"),
        vec!["0 0 8080 i-0123456789abcdef0.example.com."]
    );
    assert_eq!(
        r53.values("_v1._theservice._tcp", "SRV"),
        vec!["0 0 8080 i-0123456789abcdef0.example.com."]
    );
    let out = run_expect(env.dnsreg().arg("-c").arg(&config).arg("status"), 0);
    assert!(stdout(&out).contains("cf"), "{}", stdout(&out));
    run_expect(env.dnsreg().arg("-c").arg(&config).arg("leave"), 0);
    assert_eq!(env.records(), Vec::<String>::new());
    assert_eq!(r53.records(), Vec::<String>::new());
}
