//! Running an axum router on its own thread and runtime.
//!
//! Stand-ins run on a thread of their own so that synchronous tests, async tests
//! and the `dnsreg-testkit` binary can all use them the same way, and so that a
//! test's runtime being blocked never stalls the server.
//!
//! Each request carries its [`Connection`], so that a fault can end the
//! connection with a TCP reset instead of a clean close.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::extract::OptionalFromRequestParts;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::http::request::Parts;
use axum::serve::IncomingStream;
use socket2::{SockRef, Socket};
use tokio::sync::oneshot;

/// The TCP connection a request came on, as a handler extractor.
///
/// It holds a duplicate of the connection's socket (one per connection, shared
/// by its requests, closed when hyper has dropped the connection and the last
/// request is done), through which [`Connection::reset_on_close`] reaches the
/// socket hyper owns.
#[derive(Clone)]
pub(crate) struct Connection {
    socket: Arc<Socket>,
}

/// What [`Running`] attaches to each connection (axum's connect info).
#[derive(Clone)]
struct Attached(Option<Connection>);

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for Attached {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        match SockRef::from(stream.io()).try_clone() {
            Ok(socket) => Attached(Some(Connection {
                socket: Arc::new(socket),
            })),
            Err(e) => {
                tracing::warn!("testkit: cannot duplicate the connection's socket: {e}");
                Attached(None)
            }
        }
    }
}

impl Connection {
    /// Makes the kernel end the connection with a TCP reset (RST) instead of a
    /// FIN once it is closed: `SO_LINGER` with a zero timeout (socket(7)). Only
    /// for a connection about to be abandoned: a zero linger also throws away
    /// whatever is still unsent.
    pub(crate) fn reset_on_close(&self) {
        if let Err(e) = self.socket.set_linger(Some(Duration::ZERO)) {
            tracing::warn!("testkit: cannot set SO_LINGER 0 for a reset: {e}");
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Connection {
    type Rejection = std::convert::Infallible;

    /// `None` for a router served other than by [`Running`], or when the
    /// socket could not be duplicated.
    async fn from_request_parts(
        parts: &mut Parts,
        _: &S,
    ) -> Result<Option<Connection>, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ConnectInfo<Attached>>()
            .and_then(|ConnectInfo(Attached(connection))| connection.clone()))
    }
}

/// A server running on a background thread; it stops when dropped.
pub struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Binds `addr` (port 0 picks a free port) and serves `router` until dropped.
    pub fn spawn(addr: SocketAddr, router: axum::Router) -> std::io::Result<Running> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(format!("testkit-{addr}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("listener registers with the runtime");
                    // Stop at once, open connections included: a client that keeps a
                    // connection alive must not keep a finished test waiting.
                    tokio::select! {
                        served = axum::serve(
                            listener,
                            router.into_make_service_with_connect_info::<Attached>(),
                        ) => served.expect("stand-in server failed"),
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(Running {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, ready to be used as an endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Client-side probes of how a stand-in ends its connections, for the tests
/// of the stand-ins' `Drop` and `Reset` faults.
#[cfg(test)]
pub(crate) mod probe {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};

    /// A client connection, and the inode of the socket the server accepted
    /// for it (the server runs in this process).
    pub(crate) struct Probe {
        pub(crate) stream: TcpStream,
        pub(crate) server_socket: u64,
    }

    /// Connects to `addr` and waits (up to 5 s) for the server to accept.
    pub(crate) fn connect(addr: SocketAddr) -> Probe {
        let stream = TcpStream::connect(addr).expect("connect to the stand-in");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let client = stream.local_addr().unwrap().port();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(inode) = accepted(addr.port(), client) {
                return Probe {
                    stream,
                    server_socket: inode,
                };
            }
            assert!(Instant::now() < deadline, "the stand-in did not accept");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    impl Probe {
        /// Sends `request` (a whole HTTP/1.1 request) and returns what the
        /// first read gives: `Ok(0)` for a clean close (FIN),
        /// `Err(ConnectionReset)` for a RST, `Ok(n)` for an answer.
        pub(crate) fn first_read(&mut self, request: &str) -> std::io::Result<usize> {
            self.stream.write_all(request.as_bytes())?;
            let mut buf = [0u8; 4096];
            self.stream.read(&mut buf)
        }
    }

    /// [`Probe::first_read`] on a fresh connection.
    pub(crate) fn first_read(addr: SocketAddr, request: &str) -> std::io::Result<usize> {
        connect(addr).first_read(request)
    }

    /// The inode of the server-side socket from `server_port` to
    /// `client_port`, once accepted (a socket still in the accept queue has
    /// inode 0 in /proc/net/tcp).
    fn accepted(server_port: u16, client_port: u16) -> Option<u64> {
        let port = |field: &str| u16::from_str_radix(field.rsplit(':').next()?, 16).ok();
        let tcp = std::fs::read_to_string("/proc/self/net/tcp").expect("read /proc/self/net/tcp");
        tcp.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let ours = port(fields.get(1)?)? == server_port && port(fields.get(2)?)? == client_port;
            let inode: u64 = fields.get(9)?.parse().ok()?;
            (ours && inode != 0).then_some(inode)
        })
    }

    /// How many file descriptors of this process refer to socket `inode`.
    pub(crate) fn fds_of(inode: u64) -> usize {
        let target = format!("socket:[{inode}]");
        std::fs::read_dir("/proc/self/fd")
            .expect("read /proc/self/fd")
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .filter(|link| link.as_os_str() == target.as_str())
            .count()
    }

    /// Waits up to 5 s for [`fds_of`] to reach `n`; returns the last count.
    pub(crate) fn settle_fds_of(inode: u64, n: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let count = fds_of(inode);
            if count == n || Instant::now() > deadline {
                return count;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
