//! Prometheus metrics of `dnsreg run` (README "Metrics"): written to a
//! node_exporter textfile (`[agent] metrics_textfile`) and served at
//! `GET /metrics` (`[agent] metrics_listen`), both off by default.
//!
//! The exposition text comes from the `prometheus` crate (the Prometheus
//! project's Rust client, maintained under tikv), not `prometheus-client`:
//! its `TextEncoder` writes the classic text format 0.0.4, which the
//! node_exporter textfile collector parses, while `prometheus-client` writes
//! OpenMetrics only (an `info` type, `# EOF`, counter families named without
//! their `_total` samples) that the 0.0.4 parsers read wrongly or refuse.
//! Without default features it brings no protobuf and nothing else heavy.
//!
//! One registry for the process ([`get`]): each provider counts its requests
//! where it sends them (Route53's and Cloudflare's `call`, next to the
//! pacer's `busy`/`ok`; RFC 2136's query, update and AXFR), and the engine
//! and the agent set the rest (docs/design.md, "The agent").

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// The request outcomes counted in `dnsreg_api_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Throttled,
    Conflict,
    Denied,
    Error,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Throttled => "throttled",
            Outcome::Conflict => "conflict",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }

    /// A provider failure's outcome: each provider classifies a refusal for
    /// want of a right (AccessDenied, 401/403, REFUSED/NOTAUTH) as
    /// [`Fail::Denied`](crate::fail::Fail::Denied).
    pub fn of_fail(fail: &crate::fail::Fail) -> Outcome {
        use crate::fail::Fail;
        match fail {
            Fail::Busy { .. } => Outcome::Throttled,
            Fail::Conflict(_) => Outcome::Conflict,
            Fail::Transient(_) => Outcome::Error,
            Fail::Denied(_) => Outcome::Denied,
            Fail::Permanent(_) => Outcome::Error,
        }
    }
}

/// The agent's modes as `dnsreg_agent_mode{mode}` names them.
pub const MODES: [&str; 5] = [
    "starting",
    "publishing",
    "withdrawn",
    "terminating",
    "stopping",
];

pub struct Metrics {
    registry: Registry,
    records_desired: IntGaugeVec,
    records_published: IntGaugeVec,
    api_requests: IntCounterVec,
    retries: IntCounterVec,
    last_sync: IntGaugeVec,
    health_check: IntGaugeVec,
    mode: IntGaugeVec,
    notices: IntCounter,
    reaped: IntCounter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let build = gauge(
            &r,
            "dnsreg_build_info",
            "Always 1; the labels tell the version and the git revision built.",
            &["version", "revision"],
        );
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), env!("DNSREG_REVISION")])
            .set(1);
        let notices = IntCounter::new(
            "dnsreg_termination_notices_total",
            "Termination or preemption notices seen from the instance metadata.",
        )
        .expect("a valid metric");
        r.register(Box::new(notices.clone()))
            .expect("registered once");
        let reaped = IntCounter::new(
            "dnsreg_leases_reaped_total",
            "Expired leases of other instances reaped (their records removed).",
        )
        .expect("a valid metric");
        r.register(Box::new(reaped.clone()))
            .expect("registered once");
        let m = Metrics {
            records_desired: gauge(
                &r,
                "dnsreg_records_desired",
                "Values this instance should publish at the provider now (0 while withdrawn or leaving).",
                &["provider"],
            ),
            records_published: gauge(
                &r,
                "dnsreg_records_published",
                "Values this instance owns at the provider after its last successful sync.",
                &["provider"],
            ),
            api_requests: counter(
                &r,
                "dnsreg_api_requests_total",
                "Requests sent to a provider's API, by operation and outcome (ok, throttled, conflict, denied, error).",
                &["provider", "operation", "outcome"],
            ),
            retries: counter(
                &r,
                "dnsreg_retries_total",
                "Provider requests tried again, by why: throttled or transient (5xx, timeout, connection).",
                &["provider", "reason"],
            ),
            last_sync: gauge(
                &r,
                "dnsreg_last_sync_success_timestamp_seconds",
                "Unix time of the provider's last successful sync (join or leave).",
                &["provider"],
            ),
            health_check: gauge(
                &r,
                "dnsreg_health_check_passing",
                "1 while the health check passes, 0 while it fails or has not passed yet.",
                &["check"],
            ),
            mode: gauge(
                &r,
                "dnsreg_agent_mode",
                "1 for the agent's current mode (starting, publishing, withdrawn, terminating, stopping), 0 for the others.",
                &["mode"],
            ),
            notices,
            reaped,
            registry: r,
        };
        // Every exposition has the mode, from the first.
        m.mode("starting");
        m
    }

    pub fn records(&self, provider: &str, desired: Option<usize>, published: Option<usize>) {
        if let Some(n) = desired {
            self.records_desired
                .with_label_values(&[provider])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        if let Some(n) = published {
            self.records_published
                .with_label_values(&[provider])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    pub fn synced(&self, provider: &str) {
        self.last_sync
            .with_label_values(&[provider])
            .set(i64::try_from(crate::registry::unix_now()).unwrap_or(i64::MAX));
    }

    /// Counts one request to a provider (and logs it at debug level, so
    /// that where a fleet's requests went can be read from its logs).
    pub fn request(&self, provider: &str, operation: &str, outcome: Outcome) {
        tracing::debug!(provider, operation, outcome = outcome.as_str(), "request");
        self.api_requests
            .with_label_values(&[provider, operation, outcome.as_str()])
            .inc();
    }

    pub fn retry(&self, provider: &str, reason: &str) {
        self.retries.with_label_values(&[provider, reason]).inc();
    }

    /// Sets every check's gauge; checks no longer configured are dropped.
    pub fn checks(&self, checks: &[crate::checks::CheckStatus]) {
        self.health_check.reset();
        for c in checks {
            self.health_check
                .with_label_values(&[c.check.as_str()])
                .set(i64::from(c.passing));
        }
    }

    pub fn mode(&self, current: &str) {
        for m in MODES {
            self.mode
                .with_label_values(&[m])
                .set(i64::from(m == current));
        }
    }

    pub fn notice(&self) {
        self.notices.inc();
    }

    pub fn reaped(&self, n: usize) {
        self.reaped.inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// The text exposition format 0.0.4.
    pub fn text(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

/// The textfile output: written whole to a temporary file in the same
/// directory, then renamed over the old one, so that node_exporter never
/// reads it half-written; removed on exit.
#[derive(Debug)]
pub struct Textfile {
    path: PathBuf,
}

impl Textfile {
    pub fn new(path: &Path) -> Textfile {
        Textfile {
            path: path.to_path_buf(),
        }
    }

    pub fn write(&self) {
        if let Err(e) = crate::files::replace_readable(&self.path, get().text().as_bytes(), None) {
            tracing::warn!("writing the metrics textfile {}: {e}", self.path.display());
        }
    }

    pub fn remove(&self) {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!("removing the metrics textfile {}: {e}", self.path.display());
            }
            _ => {}
        }
    }
}

/// The textfile of the running agent, when configured: [`flush`] writes it.
static TEXTFILE: std::sync::Mutex<Option<Textfile>> = std::sync::Mutex::new(None);

/// Writes the textfile now, when there is one.
pub fn flush() {
    if let Some(t) = TEXTFILE.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        t.write();
    }
}

/// The agent's metrics outputs while it runs: dropping it stops the server
/// and removes the textfile.
#[derive(Debug)]
pub struct Outputs {
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Outputs {
    /// Starts the outputs `[agent]` asks for. Binding the listen address is
    /// the only thing that can fail.
    pub async fn start(agent: &crate::config::AgentConfig) -> anyhow::Result<Outputs> {
        let server = match agent.metrics_listen {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                    anyhow::anyhow!("agent.metrics_listen: cannot listen on {addr}: {e}")
                })?;
                tracing::info!("serving metrics at http://{addr}/metrics");
                Some(tokio::spawn(serve(listener)))
            }
            None => None,
        };
        *TEXTFILE.lock().unwrap_or_else(|e| e.into_inner()) =
            agent.metrics_textfile.as_deref().map(Textfile::new);
        flush();
        Ok(Outputs { server })
    }
}

impl Drop for Outputs {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(t) = TEXTFILE.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.remove();
        }
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped: one
/// HTTP/1.1 connection at a time per task, each given at most 30 seconds.
pub async fn serve(listener: tokio::net::TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: not a busy loop on one thread.
                tracing::debug!("metrics endpoint: accepting: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, hyper::service::service_fn(answer));
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), conn).await;
        });
    }
}

async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<http_body_util::Full<hyper::body::Bytes>>, hyper::http::Error> {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::{Method, Response, StatusCode};
    if req.uri().path() != "/metrics" {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"only /metrics is here\n")));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header("Allow", "GET, HEAD")
            .body(Full::new(Bytes::new()));
    }
    Response::builder()
        .header("Content-Type", prometheus::TEXT_FORMAT)
        .body(Full::new(Bytes::from(get().text())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_every_metric_and_counts_requests() {
        let m = Metrics::new();
        m.request("r53", "change", Outcome::Throttled);
        m.request("r53", "change", Outcome::Throttled);
        m.mode("withdrawn");
        let text = m.text();
        assert!(
            text.contains(
                "dnsreg_api_requests_total{operation=\"change\",outcome=\"throttled\",provider=\"r53\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("dnsreg_agent_mode{mode=\"withdrawn\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("dnsreg_agent_mode{mode=\"publishing\"} 0"),
            "{text}"
        );
        assert!(text.contains("dnsreg_build_info{revision="), "{text}");
        assert!(
            text.contains("# TYPE dnsreg_termination_notices_total counter"),
            "{text}"
        );
    }

    #[test]
    fn denials_are_told_from_other_permanent_failures() {
        use crate::fail::Fail;
        let denied = Fail::denied("AccessDenied: not allowed");
        assert_eq!(Outcome::of_fail(&denied), Outcome::Denied);
        let invalid = Fail::permanent("no such zone");
        assert_eq!(Outcome::of_fail(&invalid), Outcome::Error);
        // A denial stays one with what it was doing in front of it.
        let denied = Fail::denied("HTTP 403: forbidden").context("cf: reading");
        assert_eq!(Outcome::of_fail(&denied), Outcome::Denied);
        assert_eq!(denied.to_string(), "cf: reading: HTTP 403: forbidden");
    }

    #[test]
    fn the_textfile_is_replaced_whole_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dnsreg.prom");
        let t = Textfile::new(&path);
        t.write();
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("dnsreg_build_info")
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o644);
        t.remove();
        assert!(!path.exists());
    }
}
