//! A hostile or broken network: answers no real provider gives, and what
//! dnsreg must then not do.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::util::{Env, run_expect, stderr};

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
