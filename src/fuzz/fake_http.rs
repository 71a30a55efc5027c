//! A loopback HTTP/1.1 server that answers whatever the fuzz case says: the
//! other machine (a metadata service, Cloudflare, Route53) as a fuzzer plays it.
//!
//! Deliberately small: it reads a request head and a `Content-Length` body,
//! asks the handler, and writes the answer with its length; connections are
//! kept alive, as clients pool them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as the server read it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What to answer.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Response {
        // A header value cannot carry line breaks or other control bytes.
        let value: String = value.chars().filter(|c| !c.is_control()).collect();
        self.headers.push((name.to_string(), value));
        self
    }
}

type Handler = Box<dyn FnMut(&Request) -> Response + Send>;

pub struct FakeHttp {
    pub url: String,
    handler: Arc<Mutex<Handler>>,
    requests: Arc<AtomicU64>,
}

impl FakeHttp {
    /// Listens on loopback; the accept loop runs on the current runtime.
    pub async fn start() -> FakeHttp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let handler: Arc<Mutex<Handler>> =
            Arc::new(Mutex::new(Box::new(|_: &Request| Response::new(404, ""))));
        let requests = Arc::new(AtomicU64::new(0));
        let (h, n) = (handler.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, h.clone(), n.clone()));
            }
        });
        FakeHttp {
            url,
            handler,
            requests,
        }
    }

    /// Answers every request with `f` from now on, and counts afresh.
    pub fn set(&self, f: impl FnMut(&Request) -> Response + Send + 'static) {
        *self.handler.lock().unwrap() = Box::new(f);
        self.requests.store(0, Ordering::Relaxed);
    }

    /// Requests answered since the last [`FakeHttp::set`].
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

async fn serve(mut stream: TcpStream, handler: Arc<Mutex<Handler>>, requests: Arc<AtomicU64>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // The head.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 1 << 20 {
                return;
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let target = first.next().unwrap_or("").to_string();
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (target, String::new()),
        };
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + length].to_vec();
        buf.drain(..head_end + length);
        let request = Request {
            method,
            path,
            query,
            headers,
            body,
        };
        requests.fetch_add(1, Ordering::Relaxed);
        let response = (handler.lock().unwrap())(&request);
        let mut out = format!(
            "HTTP/1.1 {} Fuzz\r\ncontent-length: {}\r\n",
            response.status,
            response.body.len()
        );
        for (k, v) in &response.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&response.body);
        if stream.write_all(&bytes).await.is_err() {
            return;
        }
    }
}
