//! Bad input: exit code 2, every problem named with file, line and key, and
//! nothing sent to any provider.

use crate::util::{Env, run_expect, stderr, stdout};

#[test]
fn check_accepts_a_good_file_without_touching_the_network() {
    let env = Env::new();
    let config = env.config(
        "good.toml",
        "[providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\n\n[[round_robin]]\nproviders = [\"r53\"]\nname = \"www\"\n",
    );
    let out = run_expect(env.dnsreg().arg("-c").arg(&config).arg("check"), 0);
    assert!(
        stdout(&out).contains("OK (1 provider, 1 record spec)"),
        "{}",
        stdout(&out)
    );
    // A simple-routing provider shared through `www`: the fleet limit is said up front.
    assert!(
        stdout(&out).contains("note: providers.r53: with routing = \"simple\"")
            && stdout(&out).contains("round_robin[0]")
            && stdout(&out).contains("use routing = \"multivalue\""),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.r53.stats().total(), 0);
    assert!(env.imds.requests().is_empty());
    let multivalue = env.config(
        "multivalue.toml",
        "[providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\nzone_id = \"Z0123456789ABCDEFGHIJ\"\nrouting = \"multivalue\"\n\n[[round_robin]]\nproviders = [\"r53\"]\nname = \"www\"\n",
    );
    let out = run_expect(env.dnsreg().arg("-c").arg(&multivalue).arg("check"), 0);
    assert!(!stdout(&out).contains("note:"), "{}", stdout(&out));
}

#[test]
fn bad_configs_list_every_problem_with_file_line_and_key() {
    let env = Env::new();
    let config = env.config(
        "bad.toml",
        r#"[providers.r53]
type = "route53"
zone = "example.com"

[[round_robin]]
providers = ["r53"]
name = "www.elsewhere.org."

[[srv]]
providers = ["r53", "cf"]
name = "_app._tcp"
port = 99999
target = "{instance_id}"
"#,
    );
    for cmd in ["check", "join", "leave", "run"] {
        let out = run_expect(env.dnsreg().arg("-c").arg(&config).arg(cmd), 2);
        let err = stderr(&out);
        let file = config.display().to_string();
        assert!(
            err.contains(&format!(
                "{file}:10: srv[0].providers: there is no provider `cf`"
            )),
            "{cmd}: {err}"
        );
        assert!(
            err.contains(&format!("{file}:12: srv[0].port: 99999 is out of range")),
            "{cmd}: {err}"
        );
    }
    // Once the table-level problems are fixed, the planning ones show up.
    let config = env.config(
        "bad2.toml",
        "[providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\n\n[[round_robin]]\nproviders = [\"r53\"]\nname = \"www.elsewhere.org.\"\n",
    );
    let out = run_expect(env.dnsreg().arg("-c").arg(&config).arg("check"), 2);
    assert!(
        stderr(&out).contains(
            ":5: round_robin[0].name: `www.elsewhere.org.` is outside the zone `example.com.`"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.r53.stats().total(), 0, "nothing was sent to Route53");
    assert!(env.imds.requests().is_empty(), "metadata was not asked");
}

#[test]
fn unknown_keys_and_syntax_errors_name_the_line() {
    let env = Env::new();
    let config = env.config(
        "typo.toml",
        "[providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\nzoen = \"x\"\n",
    );
    let out = run_expect(env.dnsreg().arg("-c").arg(&config).arg("check"), 2);
    assert!(
        stderr(&out).contains("typo.toml:4: `zoen = \"x\"`: unknown field `zoen`"),
        "{}",
        stderr(&out)
    );

    let config = env.config("syntax.toml", "[providers.r53\n");
    let out = run_expect(env.dnsreg().arg("-c").arg(&config).arg("check"), 2);
    assert!(stderr(&out).contains("syntax.toml:1"), "{}", stderr(&out));

    let out = run_expect(
        env.dnsreg()
            .arg("-c")
            .arg(env.dir.path().join("missing.toml"))
            .arg("check"),
        2,
    );
    assert!(
        stderr(&out).contains("missing.toml: cannot read it"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn flag_mistakes_are_usage_errors() {
    let env = Env::new();
    let out = run_expect(
        env.dnsreg()
            .args(["join", "--zone", "example.com", "--name", "www"]),
        2,
    );
    assert!(
        stderr(&out).contains("--zone configures from flags and needs --provider"),
        "{}",
        stderr(&out)
    );
    let out = run_expect(
        env.dnsreg().args([
            "join",
            "--provider",
            "route53",
            "--service",
            "_a._tcp",
            "--port",
            "1",
        ]),
        2,
    );
    assert!(stderr(&out).contains("--zone: missing"), "{}", stderr(&out));
    let out = run_expect(
        env.dnsreg().args([
            "join",
            "--provider",
            "route53",
            "--zone",
            "example.com",
            "--service",
            "_a._tcp",
        ]),
        2,
    );
    assert!(
        stderr(&out).contains("--service needs --port"),
        "{}",
        stderr(&out)
    );
    let out = run_expect(
        env.dnsreg().args([
            "join",
            "--provider",
            "route53",
            "--zone",
            "example.com",
            "--name",
            "www",
            "--address",
            "private",
            "--metadata",
            "none",
            "--instance-id",
            "web 1",
            "--ipv4",
            "x",
        ]),
        2,
    );
    assert!(
        stderr(&out).contains("--instance-id: `web 1` cannot be used as a DNS label"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("--ipv4: `x` is not an IPv4 address"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.r53.stats().total(), 0);
}

#[test]
fn no_public_address_says_what_to_configure() {
    let env = Env::new();
    env.imds.update(|i| i.public_ipv4 = None);
    let mut c = env.flags("join", "--name www");
    // Exit 1: what this machine is, not what `check` can find in the file.
    let out = run_expect(&mut c, 1);
    assert!(stderr(&out).contains("has no public IPv4 address; publish its private one with [instance] address = \"private\""), "{}", stderr(&out));
    assert_eq!(
        env.r53.stats().requests.get("ChangeResourceRecordSets"),
        None
    );
}

#[test]
fn unreachable_metadata_names_the_url() {
    let env = Env::new();
    let mut c = env.dnsreg();
    c.args([
        "whoami",
        "--metadata",
        "aws",
        "--metadata-endpoint",
        "http://127.0.0.1:9",
    ]);
    let out = run_expect(&mut c, 1);
    assert!(
        stderr(&out).contains("aws metadata: http://127.0.0.1:9/latest/api/token: unreachable"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn whoami_needs_only_the_instance_table() {
    let env = Env::new();
    // A file with [instance] alone: no providers, no records, nothing to publish.
    let only = env.config(
        "instance-only.toml",
        "[instance]\nmetadata = \"none\"\nid = \"i-only\"\nipv4 = \"192.0.2.9\"\n",
    );
    let out = run_expect(
        env.dnsreg().arg("-c").arg(&only).args(["whoami", "--json"]),
        0,
    );
    let id: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(id["instance_id"], "i-only", "{id}");
    assert!(env.imds.requests().is_empty());
    // What whoami does read is still checked, with its line; and a file that
    // is not TOML is still refused. Other tables are not its business.
    let bad = env.config(
        "bad-instance.toml",
        "[instance]\nmetadata = \"nonsense\"\n\n[providers.x]\ntype = \"bogus\"\n",
    );
    let out = run_expect(env.dnsreg().arg("-c").arg(&bad).arg("whoami"), 2);
    let err = stderr(&out);
    assert!(err.contains(":2: instance.metadata"), "{err}");
    assert!(!err.contains("providers"), "{err}");
    let broken = env.config("broken.toml", "[instance\n");
    run_expect(env.dnsreg().arg("-c").arg(&broken).arg("whoami"), 2);
}

#[test]
fn durations_are_bounded_before_anything_runs() {
    let env = Env::new();
    let huge = "18446744073709551615s";
    let config = env.config(
        "huge.toml",
        &format!(
            "[providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\n\n\
             [[round_robin]]\nproviders = [\"r53\"]\nname = \"www\"\n\n\
             [[check]]\ntcp = \"127.0.0.1:9\"\ninterval = \"{huge}\"\n\n\
             [agent]\nreconcile_interval = \"{huge}\"\nstop_timeout = \"0s\"\n\n\
             [lease]\nttl = \"{huge}\"\n"
        ),
    );
    for cmd in ["check", "run"] {
        let out = run_expect(env.dnsreg().arg("-c").arg(&config).arg(cmd), 2);
        let err = stderr(&out);
        for (line, key) in [
            (11, "check[0].interval"),
            (14, "agent.reconcile_interval"),
            (18, "lease.ttl"),
        ] {
            assert!(
                err.contains(&format!(":{line}: {key}: `{huge}` is longer than")),
                "{cmd} {key}: {err}"
            );
        }
        assert!(
            err.contains(":15: agent.stop_timeout: must be at least 1s"),
            "{cmd}: {err}"
        );
    }
    assert_eq!(env.r53.stats().total(), 0);
    let out = run_expect(
        env.dnsreg()
            .args([
                "discover",
                "_http._tcp.example.com",
                "--server",
                "127.0.0.1:9",
            ])
            .args(["--wait", huge]),
        2,
    );
    assert!(stderr(&out).contains("--wait"), "{}", stderr(&out));
}

#[test]
fn two_provider_entries_on_one_zone_are_refused() {
    let env = Env::new();
    let config = env.config(
        "two.toml",
        "[providers.a]\ntype = \"route53\"\nzone = \"example.com\"\n\n\
         [providers.b]\ntype = \"route53\"\nzone = \"Example.com.\"\n\n\
         [[host]]\nproviders = [\"a\"]\nname = \"{instance_id}\"\n\n\
         [[round_robin]]\nproviders = [\"b\"]\nname = \"www\"\n",
    );
    for cmd in ["check", "join", "run"] {
        let out = run_expect(env.dnsreg().arg("-c").arg(&config).arg(cmd), 2);
        assert!(
            stderr(&out).contains(":5: providers.b: names the same zone as providers.a"),
            "{cmd}: {}",
            stderr(&out)
        );
    }
    assert_eq!(env.r53.stats().total(), 0);
    // Route53's public and private zones of one name, told apart by id: fine.
    let split = env.config(
        "split.toml",
        "[providers.public]\ntype = \"route53\"\nzone = \"example.com\"\nzone_id = \"Z0PUBLIC0000000000001\"\n\n\
         [providers.private]\ntype = \"route53\"\nzone = \"example.com\"\nzone_id = \"Z0PRIVATE000000000002\"\n\n\
         [[round_robin]]\nproviders = [\"public\", \"private\"]\nname = \"www\"\n",
    );
    run_expect(env.dnsreg().arg("-c").arg(&split).arg("check"), 0);
}

#[test]
fn check_refuses_what_would_only_fail_at_run_time() {
    let env = Env::new();
    let empty = env.dir.path().join("empty.token");
    std::fs::write(&empty, "").unwrap();
    let config = env.config(
        "late.toml",
        &format!(
            "[providers.cf]\ntype = \"cloudflare\"\nzone = \"example.com\"\ntoken_file = \"{}\"\n\n\
             [providers.r53]\ntype = \"route53\"\nzone = \"example.org\"\nendpoint = \"http://route53.example.net\"\n\n\
             [[srv]]\nproviders = [\"cf\"]\nname = \"_app._tcp\"\nport = 0\ntarget = \"host.example.com.\"\n\n\
             [[round_robin]]\nproviders = [\"r53\"]\nname = \"www\"\n",
            empty.display()
        ),
    );
    let out = run_expect(env.dnsreg().arg("-c").arg(&config).arg("check"), 2);
    let err = stderr(&out);
    let drain = env.config(
        "drain.toml",
        "[providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\n\n\
         [[round_robin]]\nproviders = [\"r53\"]\nname = \"www\"\n\n\
         [agent]\ndrain = \"30s\"\nstop_timeout = \"10s\"\n",
    );
    let out = run_expect(env.dnsreg().arg("-c").arg(&drain).arg("check"), 2);
    assert!(
        stderr(&out).contains(":10: agent.drain: drain (30s) must be shorter than stop_timeout"),
        "{}",
        stderr(&out)
    );
    for want in [
        ":4: providers.cf.token_file: ",
        "is empty; write the API token into it",
        ":9: providers.r53.endpoint: `http://route53.example.net` is not https",
        ":14: srv[0].port: 0 is out of range",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
}
