//! Running an axum router on its own thread and runtime.
//!
//! Stand-ins run on a thread of their own so that synchronous tests, async tests
//! and the `dnsreg-testkit` binary can all use them the same way, and so that a
//! test's runtime being blocked never stalls the server.

use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

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
                        served = axum::serve(listener, router) => served.expect("stand-in server failed"),
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
