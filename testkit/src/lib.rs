//! Strict, stateful stand-ins for the services dnsreg talks to.
//!
//! Each stand-in behaves like the real service on the points dnsreg depends on,
//! including its errors and limits, so that a test passing here means something
//! against the real thing. They serve on loopback, keep their state in memory,
//! and expose it (plus fault knobs) to tests through a handle. The same servers
//! are reachable from the `dnsreg-testkit` binary so that users can try a
//! configuration offline.

pub mod bind;
pub mod cloudflare;
pub mod dnsproxy;
pub mod imds;
pub mod knot;
pub mod pdns;
mod query;
pub mod route53;
mod serve;
pub mod servers;

pub use gate::{Release, Requests};
pub use serve::Running;

/// Holding one request until the test says what becomes of it: the HTTP
/// stand-ins' [`Route53Server::hold`](route53::Route53Server::hold) and
/// [`CloudflareServer::hold`](cloudflare::CloudflareServer::hold).
///
/// A test arms the gate for the `nth` request (of any kind, or writes only)
/// from now on; that request is counted and then waits, before anything else
/// is done with it (signature or token check, faults, rate limits, the
/// operation), until the test releases it: served as usual, or dropped as if
/// it had never arrived. Meanwhile the test knows exactly where the client
/// is: it has sent request `nth` and waits for its answer. That is the moment
/// to kill the client (crash tests) or to let another client change the zone
/// (a concurrent writer) — an event, not a guess at how long something takes.
mod gate {
    use std::sync::{Mutex, MutexGuard, PoisonError, mpsc};
    use std::time::{Duration, Instant};

    use tokio::sync::oneshot;

    /// Which requests [`Gate::arm`] counts.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Requests {
        /// Every request, reads included.
        Any,
        /// Only the requests that change the zone (Route53:
        /// ChangeResourceRecordSets; Cloudflare: batch, POST, PATCH, PUT,
        /// DELETE of records).
        Writes,
    }

    /// What becomes of the request held.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Release {
        /// Served as if it had not been held: checked, faults and limits
        /// applied, the operation run. Its answer goes to a client that may be
        /// gone (killed): a request that landed, its answer lost.
        Serve,
        /// Not served at all: the connection is closed without an answer and
        /// nothing changes, as if the client had died before sending it.
        Drop,
    }

    /// One held request's way out: the verdict, and where to say it was carried out.
    pub(crate) type Verdict = (Release, mpsc::Sender<()>);

    #[derive(Default)]
    struct State {
        /// The kind of requests counted since [`Gate::arm`]; `None`: not armed.
        which: Option<Requests>,
        /// Requests of that kind still to come before the one to hold, that
        /// one included; `None` once it came.
        left: Option<u32>,
        /// Requests of that kind seen since arming, the held one included.
        seen: u64,
        /// The request held now.
        held: Option<oneshot::Sender<Verdict>>,
    }

    #[derive(Default)]
    pub(crate) struct Gate {
        state: Mutex<State>,
    }

    impl Gate {
        fn lock(&self) -> MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(PoisonError::into_inner)
        }

        /// Holds the `nth` request of kind `which` (1: the next one) from
        /// now on, and counts them from zero. A request still held from
        /// before is served first.
        pub(crate) fn arm(&self, nth: u32, which: Requests) {
            assert!(nth >= 1, "hold: requests are counted from 1");
            let mut state = self.lock();
            if let Some(held) = state.held.take() {
                let (done, _) = mpsc::channel();
                let _ = held.send((Release::Serve, done));
            }
            *state = State {
                which: Some(which),
                left: Some(nth),
                seen: 0,
                held: None,
            };
        }

        /// Called for every request as it arrives: `Some` when this is the
        /// one to hold (await the verdict), `None` to go on.
        pub(crate) fn check(&self, is_write: bool) -> Option<oneshot::Receiver<Verdict>> {
            let mut state = self.lock();
            let which = state.which?;
            if which == Requests::Writes && !is_write {
                return None;
            }
            state.seen += 1;
            match state.left {
                Some(1) => {
                    state.left = None;
                    let (tx, rx) = oneshot::channel();
                    state.held = Some(tx);
                    Some(rx)
                }
                Some(n) => {
                    state.left = Some(n - 1);
                    None
                }
                None => None,
            }
        }

        pub(crate) fn seen(&self) -> u64 {
            self.lock().seen
        }

        pub(crate) fn is_holding(&self) -> bool {
            self.lock().held.is_some()
        }

        /// Until a request is held, for at most `limit`; whether one is.
        pub(crate) fn wait_held(&self, limit: Duration) -> bool {
            let deadline = Instant::now() + limit;
            loop {
                if self.is_holding() {
                    return true;
                }
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }

        /// Lets the held request go as `how` says, and returns once the
        /// server is done with it (served: the operation has run). Panics if
        /// no request is held.
        pub(crate) fn release(&self, how: Release) {
            let held = self
                .lock()
                .held
                .take()
                .expect("release: no request is held");
            let (done, finished) = mpsc::channel();
            if held.send((how, done)).is_ok() {
                // The server answers within its own faults' delays; a minute
                // is far more than any test's.
                let _ = finished.recv_timeout(Duration::from_secs(60));
            }
        }
    }

    /// Runs `serve` for a request the gate held, once released, on a task of
    /// its own: a client that went away meanwhile (hyper then drops the
    /// handler) does not stop a request released to be served. `drop` is the
    /// answer of a request released to be dropped.
    pub(crate) async fn after<F, R>(
        verdict: oneshot::Receiver<Verdict>,
        serve: F,
        drop: impl FnOnce() -> R + Send + 'static,
    ) -> R
    where
        F: Future<Output = R> + Send + 'static,
        R: Send + 'static,
    {
        let task = tokio::spawn(async move {
            // The gate was dropped with the server: serve, as without a hold.
            let (how, done) = match verdict.await {
                Ok((how, done)) => (how, Some(done)),
                Err(_) => (Release::Serve, None),
            };
            let answer = match how {
                Release::Serve => serve.await,
                Release::Drop => drop(),
            };
            if let Some(done) = done {
                let _ = done.send(());
            }
            answer
        });
        match task.await {
            Ok(answer) => answer,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}
