//! A hostile or broken network: answers no real provider gives, and what
//! dnsreg must then not do.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::battery::{Backend, CloudflareBackend, World};
use crate::util::{CF_TOKEN, Env, ZONE, run_expect, stderr, stdout};

/// Answers every HTTP request on a loopback port with `answer(path)`;
/// counts the requests.
fn http_server(answer: impl Fn(&str) -> String + Send + 'static) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut length = 0;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                count.fetch_add(1, Ordering::SeqCst);
                if conn.write_all(answer(&path).as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    (url, seen)
}

#[test]
fn cloudflare_redirects_are_not_followed_so_the_token_and_batch_stay_put() {
    let env = Env::new();
    // Where a redirect would take the token and the batch.
    let (elsewhere, elsewhere_seen) = http_server(|_| {
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}".into()
    });
    let (api, api_seen) = http_server(move |path| {
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: {elsewhere}{path}\r\ncontent-length: 0\r\n\r\n"
        )
    });
    let mut c = env.dnsreg();
    c.env("CLOUDFLARE_API_TOKEN", "secret-token-value")
        .args(["join", "--provider", "cloudflare", "--zone", "example.com"])
        .args(["--endpoint", &format!("{api}/client/v4")])
        .args(["--name", "www", "--state-dir"])
        .arg(env.dir.path().join("state"));
    let out = run_expect(&mut c, 1);
    let err = stderr(&out);
    assert!(api_seen.load(Ordering::SeqCst) >= 1, "the API was asked");
    assert_eq!(elsewhere_seen.load(Ordering::SeqCst), 0, "{err}");
    assert!(err.contains("307"), "{err}");
    assert!(!err.contains("secret-token-value"), "{err}");
}

/// One HTTP message read off a connection: the head's lines and the body.
struct Message {
    head: Vec<String>,
    body: Vec<u8>,
}

fn read_message(r: &mut impl BufRead) -> Option<Message> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push(line.trim_end().to_string());
    }
    let header = |name: &str| {
        head.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = header("content-length").and_then(|v| v.parse().ok()) {
        body = vec![0; n];
        r.read_exact(&mut body).ok()?;
    }
    Some(Message { head, body })
}

/// A proxy in front of a stand-in that rewrites answers by rule: `rule`
/// gets the request line and the answer's body and returns the body to send
/// instead, or `None` to pass it on. Counts the answers it rewrote.
fn rewriting_proxy(
    upstream: &str,
    rule: impl Fn(&str, &[u8]) -> Option<Vec<u8>> + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let upstream = upstream
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let rewritten = Arc::new(AtomicUsize::new(0));
    let count = rewritten.clone();
    let rule = Arc::new(rule);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { continue };
            let (upstream, rule, count) = (upstream.clone(), rule.clone(), count.clone());
            std::thread::spawn(move || {
                let mut from_client = BufReader::new(client.try_clone().unwrap());
                let mut to_client = client;
                let server = TcpStream::connect(&upstream).unwrap();
                let mut from_server = BufReader::new(server.try_clone().unwrap());
                let mut to_server = server;
                while let Some(req) = read_message(&mut from_client) {
                    let mut out = req.head.join("\r\n").into_bytes();
                    out.extend_from_slice(b"\r\n\r\n");
                    out.extend_from_slice(&req.body);
                    if to_server.write_all(&out).is_err() {
                        return;
                    }
                    let Some(mut answer) = read_message(&mut from_server) else {
                        return;
                    };
                    if let Some(body) = rule(&req.head[0], &answer.body) {
                        count.fetch_add(1, Ordering::SeqCst);
                        answer.body = body;
                    }
                    let mut out = Vec::new();
                    for h in &answer.head {
                        let name = h.split(':').next().unwrap_or("").to_ascii_lowercase();
                        if name != "content-length" && name != "transfer-encoding" {
                            out.extend_from_slice(h.as_bytes());
                            out.extend_from_slice(b"\r\n");
                        }
                    }
                    out.extend_from_slice(
                        format!("content-length: {}\r\n\r\n", answer.body.len()).as_bytes(),
                    );
                    out.extend_from_slice(&answer.body);
                    if to_client.write_all(&out).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, rewritten)
}

/// The state file's list of what the provider published.
fn published(state_dir: &std::path::Path, provider: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(state_dir.join("state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&text).unwrap();
    state["providers"][provider]["published"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn route53_a_leave_never_takes_a_hollow_listing_for_an_empty_zone() {
    let env = Env::new();
    // Joined once, as a machine does.
    run_expect(&mut env.flags("join", "--name www"), 0);
    let before = env.records();
    assert!(
        before.iter().any(|r| r.starts_with("www.example.com. A")),
        "{before:?}"
    );
    assert!(!published(&env.state_dir(), "route53").is_empty());
    for hollow in [
        "<ListResourceRecordSetsResponse/>",
        "<ListResourceRecordSetsResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">",
    ] {
        let (proxy, rewritten) = rewriting_proxy(&env.r53.url(), move |req, _| {
            req.contains("/rrset").then(|| hollow.as_bytes().to_vec())
        });
        let mut c = env.flags("leave", "--name www");
        c.env("AWS_ENDPOINT_URL_ROUTE_53", &proxy);
        let out = run_expect(&mut c, 1);
        let err = stderr(&out);
        assert!(
            rewritten.load(Ordering::SeqCst) >= 1,
            "the hollow answer was sent"
        );
        assert!(err.contains("not an answer Route53 gives"), "{err}");
        assert_eq!(env.records(), before, "{hollow}");
        assert!(
            !published(&env.state_dir(), "route53").is_empty(),
            "{hollow}: the state file still knows what was published"
        );
    }
    // Through no proxy, the leave removes it all.
    run_expect(&mut env.flags("leave", "--name www"), 0);
    assert!(
        env.records().iter().all(|r| !r.starts_with("www.")),
        "{:?}",
        env.records()
    );
}

#[test]
fn cloudflare_a_success_without_its_result_is_not_taken_as_done() {
    let w: World<CloudflareBackend> = World::new();
    let cmd = |action: &str, endpoint: &str| {
        let mut c = w.dnsreg();
        c.env("CLOUDFLARE_API_TOKEN", CF_TOKEN)
            .args([
                action,
                "--provider",
                "cloudflare",
                "--zone",
                ZONE,
                "--endpoint",
                endpoint,
            ])
            .args(["--name", "www", "--state-dir"])
            .arg(w.state_dir());
        c
    };
    // A batch answered `success: true` with an empty result: not published.
    let (proxy, rewritten) = rewriting_proxy(&w.cf.url(), |req, _| {
        req.contains("/dns_records/batch")
            .then(|| br#"{"success":true,"errors":[],"messages":[],"result":{}}"#.to_vec())
    });
    let out = run_expect(&mut cmd("join", &format!("{proxy}/client/v4")), 1);
    assert!(rewritten.load(Ordering::SeqCst) >= 1);
    assert!(
        stderr(&out).contains("not an answer Cloudflare gives"),
        "{}",
        stderr(&out)
    );
    // (The batch did go through: the stand-in applied it before the proxy
    // hollowed the answer, so the records are there but were never confirmed.)
    run_expect(&mut cmd("join", &w.cf.url()), 0);
    let before = w.records();
    assert!(
        before.iter().any(|r| r.contains("www.example.com. A")),
        "{before:?}"
    );
    // A listing answered `success: true` with no result: a join with
    // nothing to change checks its records with one listing, and must not
    // take the hollow answer for "all gone" (and re-post) or for "all there".
    let hollow_list = || {
        rewriting_proxy(&w.cf.url(), |req, _| {
            (req.starts_with("GET") && req.contains("/dns_records"))
                .then(|| br#"{"success":true,"errors":[],"messages":[]}"#.to_vec())
        })
    };
    let (proxy, rewritten) = hollow_list();
    let out = run_expect(&mut cmd("join", &format!("{proxy}/client/v4")), 1);
    assert!(rewritten.load(Ordering::SeqCst) >= 1);
    assert!(
        stderr(&out).contains("not an answer Cloudflare gives"),
        "{}",
        stderr(&out)
    );
    assert_eq!(w.records(), before);
    assert!(!published(&w.state_dir(), "cloudflare").is_empty());
    // Without its state file a leave must list what names this instance: the
    // hollow listing is an error, not "nothing of ours to remove".
    let saved = w.state_dir().join("state.json.saved");
    std::fs::rename(w.state_dir().join("state.json"), &saved).unwrap();
    let (proxy, rewritten) = hollow_list();
    let out = run_expect(&mut cmd("leave", &format!("{proxy}/client/v4")), 1);
    assert!(rewritten.load(Ordering::SeqCst) >= 1);
    assert!(
        stderr(&out).contains("not an answer Cloudflare gives"),
        "{}",
        stderr(&out)
    );
    assert_eq!(w.records(), before);
    std::fs::rename(&saved, w.state_dir().join("state.json")).unwrap();
    run_expect(&mut cmd("leave", &w.cf.url()), 0);
    assert!(
        w.records().iter().all(|r| !r.contains("www.example.com.")),
        "{:?}",
        w.records()
    );
}

#[test]
fn addresses_no_other_machine_can_reach_are_never_published() {
    let env = Env::new();
    // Given: refused by check (and by every command) with its line.
    for (ip, why) in [
        ("127.0.0.1", "a loopback address"),
        ("0.0.0.0", "the unspecified address"),
        ("255.255.255.255", "the broadcast address"),
        ("224.0.0.251", "a multicast address"),
        ("169.254.10.1", "a link-local address"),
    ] {
        let config = env.config(
            "ip.toml",
            &format!(
                "[instance]\nmetadata = \"none\"\nid = \"i-1\"\nipv4 = \"{ip}\"\n\n\
                 [providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\n\n\
                 [[round_robin]]\nproviders = [\"r53\"]\nname = \"www\"\n"
            ),
        );
        for cmd in ["check", "join"] {
            let out = run_expect(env.dnsreg().arg("-c").arg(&config).arg(cmd), 2);
            assert!(
                stderr(&out).contains(&format!(":4: instance.ipv4: {ip} is {why}")),
                "{cmd} {ip}: {}",
                stderr(&out)
            );
        }
        let out = run_expect(&mut env.instance("join", "i-2", ip, "--name www"), 2);
        assert!(stderr(&out).contains("--ipv4"), "{}", stderr(&out));
    }
    // Private ranges are fine when given.
    run_expect(
        &mut env.instance("join", "i-3", "10.1.2.3", "--name www"),
        0,
    );
    // From metadata: a lying metadata service names loopback; nothing is
    // sent, and the exit is 1, as for any metadata answer that cannot be
    // published (2 is for what `check` finds in the file or flags).
    let lying = testkit::imds::ImdsServer::start(testkit::imds::AwsInstance {
        public_ipv4: Some("127.0.0.1".into()),
        ..Default::default()
    });
    let before = env.r53.stats().total();
    let mut c = env.flags("join", "--name www");
    c.env("AWS_EC2_METADATA_SERVICE_ENDPOINT", lying.url());
    let out = run_expect(&mut c, 1);
    assert!(
        stderr(&out).contains("127.0.0.1 (from aws metadata) is a loopback address"),
        "{}",
        stderr(&out)
    );
    assert!(
        env.r53.stats().total() - before <= 1,
        "at most the zone lookup was sent"
    );
    assert!(
        !env.records().iter().any(|r| r.contains("127.0.0.1")),
        "{:?}",
        env.records()
    );
}

/// `dnsreg -c CONFIG run` from `c`: stdout dropped, stderr piped.
fn run_agent(mut c: std::process::Command, config: &std::path::Path) -> std::process::Child {
    c.arg("-c")
        .arg(config)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    c.spawn().unwrap()
}

fn sigterm(agent: &std::process::Child) {
    std::process::Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .unwrap();
}

/// Whether this instance's address is in `www`.
fn www_published(env: &Env) -> bool {
    env.records()
        .iter()
        .any(|r| r.starts_with("www.example.com. A"))
}

#[test]
fn exec_health_checks_see_no_secret_of_the_agent() {
    let env = Env::new();
    let state = env.state_dir();
    // The check passes only when neither secret reached it (and PATH did).
    let config = env.config(
        "check.toml",
        &format!(
            "[instance]\nmetadata = \"aws\"\n\n\
             [providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\n\n\
             [[round_robin]]\nproviders = [\"r53\"]\nname = \"www\"\n\n\
             [[check]]\nexec = [\"/bin/sh\", \"-c\", \"test -z \\\"$CLOUDFLARE_API_TOKEN$AWS_SECRET_ACCESS_KEY$NOTIFY_SOCKET\\\" && test -n \\\"$PATH\\\" || {{ echo leaked >&2; exit 1; }}\"]\n\
             interval = \"200ms\"\ntimeout = \"150ms\"\nrise = 1\n\n\
             [agent]\nstate_dir = \"{}\"\n",
            state.display()
        ),
    );
    let mut c = env.dnsreg();
    c.env("CLOUDFLARE_API_TOKEN", "cf-secret-in-the-agents-env");
    let agent = run_agent(c, &config);
    let published = || www_published(&env);
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::util::wait_until(
            std::time::Duration::from_secs(20),
            "the check to pass and www to be published",
            published,
        )
    }));
    sigterm(&agent);
    let out = agent.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(waited.is_ok(), "{log}");
    assert!(!log.contains("leaked"), "{log}");
    assert!(!published(), "{:?}", env.records());
}

#[test]
fn an_endless_metadata_answer_is_cut_off_not_read_into_memory() {
    let env = Env::new();
    // Answers every request with 200 and a body that ends only when the
    // client hangs up (no length given): 64 MiB if read to the end.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut buf = [0; 4096];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n");
                let chunk = vec![b'a'; 64 * 1024];
                for _ in 0..1024 {
                    if conn.write_all(&chunk).is_err() {
                        return;
                    }
                    counter.fetch_add(chunk.len(), Ordering::SeqCst);
                }
            });
        }
    });
    let mut c = env.dnsreg();
    c.args(["whoami", "--metadata", "aws", "--metadata-endpoint", &url]);
    let out = run_expect(&mut c, 1);
    assert!(
        stderr(&out).contains("longer than 1024 KiB"),
        "{}",
        stderr(&out)
    );
    // dnsreg hung up long before the end (socket buffers hold a few MiB).
    assert!(
        sent.load(Ordering::SeqCst) < 32 * 1024 * 1024,
        "{}",
        sent.load(Ordering::SeqCst)
    );
}

#[test]
fn a_second_sigterm_cuts_the_drain_short() {
    let env = Env::new();
    let config = env.config(
        "drain.toml",
        &format!(
            "[instance]\nmetadata = \"aws\"\n\n\
             [providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\n\n\
             [[round_robin]]\nproviders = [\"r53\"]\nname = \"www\"\n\n\
             [agent]\ndrain = \"120s\"\nstop_timeout = \"150s\"\nstate_dir = \"{}\"\n",
            env.state_dir().display()
        ),
    );
    let mut agent = run_agent(env.dnsreg(), &config);
    let log = crate::util::Said::read(agent.stderr.take().unwrap());
    let published = || www_published(&env);
    crate::util::wait_until(
        std::time::Duration::from_secs(20),
        "www published",
        published,
    );
    sigterm(&agent);
    log.wait_for(std::time::Duration::from_secs(20), "draining for 2m");
    assert!(!published(), "removed before the drain");
    assert!(agent.try_wait().unwrap().is_none(), "draining, not gone");
    sigterm(&agent);
    crate::util::wait_until(
        std::time::Duration::from_secs(10),
        "the agent to exit on the second SIGTERM",
        || agent.try_wait().unwrap().is_some(),
    );
    assert_eq!(agent.wait().unwrap().code(), Some(0), "{}", log.now());
    log.wait_for(std::time::Duration::from_secs(5), "the drain is cut short");
}

#[test]
fn a_tampered_state_file_cannot_make_a_leave_remove_what_is_not_ours() {
    let env = Env::new();
    env.put_by_hand("www", "A", "192.0.2.99", 300);
    env.put_by_hand("other", "TXT", "\"a person's\"", 300);
    let state = env.state_dir().join("state.json");
    // Lines as the file writes them, naming values that are not this instance's.
    let forge = || {
        let mut s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
        let list = s["providers"]["route53"]["published"]
            .as_array_mut()
            .unwrap();
        list.push("www.example.com. A 192.0.2.99".into());
        list.push("other.example.com. TXT \"a person's\"".into());
        std::fs::write(&state, serde_json::to_vec_pretty(&s).unwrap()).unwrap();
    };
    // While the registry is there it is the truth: the forged lines count
    // for nothing, and the leave removes exactly ours.
    run_expect(&mut env.flags("join", "--name www"), 0);
    forge();
    run_expect(&mut env.flags("leave", "--name www"), 0);
    let left = env.records();
    assert!(left.iter().any(|r| r.contains("192.0.2.99")), "{left:?}");
    assert!(
        left.iter().any(|r| r.starts_with("other.example.com. TXT")),
        "{left:?}"
    );
    assert!(
        !left.iter().any(|r| r.contains("203.0.113.7")),
        "ours went: {left:?}"
    );
    // With no registry in the zone (deleted by hand), nothing says what is
    // ours: the forged state file must not make the leave remove anything.
    run_expect(&mut env.flags("join", "--name www"), 0);
    let registry = "i-0123456789abcdef0._dnsreg";
    let lines = env.values(registry, "TXT");
    assert!(!lines.is_empty());
    for v in &lines {
        env.remove_by_hand(registry, "TXT", v);
    }
    forge();
    let before = env.records();
    run_expect(&mut env.flags("leave", "--name www"), 0);
    assert_eq!(
        env.records(),
        before,
        "nothing provably ours, nothing removed"
    );
}

#[test]
fn metadata_with_control_characters_is_refused_and_never_printed_raw() {
    let env = Env::new();
    let lying = testkit::imds::ImdsServer::start(testkit::imds::AwsInstance {
        region: "us-east-1\u{1b}[2J\u{1b}[31m".into(),
        ..Default::default()
    });
    let mut c = env.dnsreg();
    c.env("AWS_EC2_METADATA_SERVICE_ENDPOINT", lying.url())
        .args(["whoami", "--metadata", "aws"]);
    let out = run_expect(&mut c, 1);
    let err = stderr(&out);
    assert!(
        !err.contains('\u{1b}') && !stdout(&out).contains('\u{1b}'),
        "{err:?}"
    );
    assert!(err.contains("region"), "{err}");
    assert!(err.contains("holds control characters"), "{err}");
    assert!(err.contains("\\u{1b}"), "shown escaped: {err}");
}

#[test]
fn route53_an_html_page_instead_of_route53_is_named_as_such_and_shown_as_text() {
    let env = Env::new();
    let page = "<html><head><title>Blocked</title></head><body>\n<h1>Access denied</h1>\
                <p>The proxy policy of Example Corp does not allow this site.</p>\x07</body></html>";
    let answer = format!(
        "HTTP/1.1 403 Forbidden\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\r\n{page}",
        page.len()
    );
    let (endpoint, seen) = http_server(move |_| answer.clone());
    let mut c = env.flags("join", "--name www");
    c.env("AWS_ENDPOINT_URL_ROUTE_53", &endpoint);
    let out = run_expect(&mut c, 1);
    let err = stderr(&out);
    assert!(seen.load(Ordering::SeqCst) >= 1, "the page was asked for");
    assert!(
        err.contains("HTTP 403 with no Route53 error in it")
            && err.contains("is a proxy answering?"),
        "{err}"
    );
    // The page's words, not its markup or its control characters.
    assert!(
        err.contains(
            "\"Blocked Access denied The proxy policy of Example Corp does not allow this site.\""
        ),
        "{err}"
    );
    assert!(!err.contains("<h1>") && !err.contains('\x07'), "{err}");
    // Refused for good: asked once, not retried like a failing server.
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    assert!(env.records().iter().all(|r| !r.starts_with("www.")));
}

/// What a metadata service answers that cannot be published is a runtime
/// failure of this machine (exit 1), whichever field and whichever check
/// finds it, and says it came from metadata; the same values given in the
/// configuration or flags are the configuration's error (exit 2). Before,
/// a hostname that is no DNS name and a loopback address exited 2, the
/// others 1.
#[test]
fn unusable_metadata_answers_exit_1_and_the_same_values_in_configuration_exit_2() {
    type Lie = fn(&mut testkit::imds::AwsInstance);
    let lies: [(&str, Lie, &str); 4] = [
        (
            "an instance id that is no DNS label",
            |i| i.instance_id = "i-bad.id".into(),
            "i-bad.id",
        ),
        (
            "a hostname that is no DNS name",
            |i| i.hostname = "bad_host!.ec2.internal".into(),
            "not a DNS name",
        ),
        (
            "a loopback public address",
            |i| i.public_ipv4 = Some("127.0.0.1".into()),
            "loopback",
        ),
        (
            "an address that is none",
            |i| i.public_ipv4 = Some("999.1.1.1".into()),
            "not an address",
        ),
    ];
    for (what, lie, says) in lies {
        let env = Env::new();
        env.imds.update(lie);
        let out = run_expect(
            &mut env.flags("join", "--name www --host {hostname} --metadata aws"),
            1,
        );
        let err = stderr(&out);
        assert!(err.contains(says), "{what}: {err}");
        assert!(env.records().is_empty(), "{what}: nothing published");
    }
    // The configuration's own: exit 2, nothing sent.
    let env = Env::new();
    for (what, flags) in [
        (
            "--ipv4 127.0.0.1",
            "--name www --metadata none --instance-id i-1 --ipv4 127.0.0.1",
        ),
        (
            "--instance-id i-bad.id",
            "--name www --metadata none --instance-id i-bad.id --ipv4 192.0.2.1",
        ),
    ] {
        let out = run_expect(&mut env.flags("join", flags), 2);
        assert!(!stderr(&out).is_empty(), "{what}");
    }
    assert!(env.records().is_empty());
}
