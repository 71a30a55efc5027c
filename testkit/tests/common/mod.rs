//! The hand-written HTTP client the metadata stand-in's tests share: status line,
//! headers and body exactly as a client sees them, or no answer at all.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use testkit::imds::ImdsServer;

/// One HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Sends one HTTP/1.1 request and reads the answer, waiting at most `wait`.
pub fn try_send(
    server: &ImdsServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    wait: Duration,
) -> std::io::Result<Answer> {
    let host = server.url().trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&host)?;
    stream.set_read_timeout(Some(wait))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if method == "PUT" {
        request.push_str("Content-Length: 0\r\n");
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let raw = String::from_utf8(raw).expect("the stand-in answers in UTF-8");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete HTTP answer");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    Ok(Answer {
        status,
        headers,
        body: body.to_owned(),
    })
}

pub fn send(server: &ImdsServer, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    try_send(server, method, path, headers, Duration::from_secs(10)).expect("the stand-in answers")
}
