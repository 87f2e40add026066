//! Live pushes to a Prometheus Pushgateway while a run is in progress.
//!
//! Every `global.push_interval` the pusher renders its sources into the text exposition format
//! and `PUT`s them to `/metrics/job/<job>/instance/<node>/campaign/<c>/service/<s>/run_id/<id>`
//! (a PUT replaces the whole group: each push is a complete snapshot). At the end it pushes a
//! final state (`factorybench_run_finished 1`, `factorybench_run_status{status=...} 1`) and then
//! DELETEs the group, so finished runs do not look alive forever.
//!
//! The benchmark never waits on the Pushgateway: pushes run in their own task, each bounded by
//! a timeout; failures are counted and logged once (not per push).

use super::expo::{Exposition, MetricType};
use super::live::LiveSource;
use base64::Engine as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The Pushgateway `job` label of every factorybench push.
pub const JOB: &str = "factorybench";

/// The labels that identify one run's group on the Pushgateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupingKey {
    pub job: String,
    /// The node the runner runs on.
    pub instance: String,
    pub campaign: String,
    pub service: String,
    pub run_id: String,
}

impl GroupingKey {
    pub fn new(campaign: &str, service: &str, run_id: &str) -> Self {
        GroupingKey {
            job: JOB.to_string(),
            instance: node_name(),
            campaign: campaign.to_string(),
            service: service.to_string(),
            run_id: run_id.to_string(),
        }
    }

    /// `/metrics/job/<job>/instance/<node>/...`, each value base64url-encoded (`name@base64`)
    /// when it is empty or holds anything but `[A-Za-z0-9._~-]` (a '/' would split the path).
    pub fn path(&self) -> String {
        grouping_path(&[
            ("job", &self.job),
            ("instance", &self.instance),
            ("campaign", &self.campaign),
            ("service", &self.service),
            ("run_id", &self.run_id),
        ])
    }
}

/// `/metrics/<k1>/<v1>/<k2>/<v2>...` of a Pushgateway group, each value base64url-encoded
/// (`name@base64`) when it is empty or holds anything but `[A-Za-z0-9._~-]` (a '/' would split
/// the path). The first label must be `job`.
pub fn grouping_path(labels: &[(&str, &str)]) -> String {
    let mut p = String::from("/metrics");
    for (k, v) in labels {
        let plain = !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b));
        if plain {
            p.push_str(&format!("/{k}/{v}"));
        } else if v.is_empty() {
            p.push_str(&format!("/{k}@base64/="));
        } else {
            let enc = base64::engine::general_purpose::URL_SAFE.encode(v.as_bytes());
            p.push_str(&format!("/{k}@base64/{enc}"));
        }
    }
    p
}

/// Why a one-shot request to a Pushgateway failed (its URL shown without credentials).
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("{method} {url}: HTTP {status}: {body}")]
    Refused {
        method: &'static str,
        url: String,
        status: u16,
        body: String,
    },
    #[error("{method} {url}: {message}")]
    Unreachable {
        method: &'static str,
        url: String,
        message: String,
    },
}

/// What to do with a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupOp<'a> {
    /// `PUT`: replace the whole group with this exposition (pushing twice replaces, never adds).
    Replace(&'a str),
    /// `DELETE` the group.
    Delete,
}

/// One request on one group of the Pushgateway at `base_url` (for `factorybench push`; the
/// live pusher keeps its own loop).
pub async fn send_group(
    http: &reqwest::Client,
    base_url: &str,
    auth: Option<&super::stack::BasicAuth>,
    path: &str,
    op: GroupOp<'_>,
    timeout: Duration,
) -> Result<(), GroupError> {
    let url = format!("{}{path}", base_url.trim_end_matches('/'));
    let (method, name) = match op {
        GroupOp::Replace(_) => (reqwest::Method::PUT, "PUT"),
        GroupOp::Delete => (reqwest::Method::DELETE, "DELETE"),
    };
    let mut req = http.request(method, &url).timeout(timeout);
    if let Some(a) = auth {
        req = a.apply(req);
    }
    if let GroupOp::Replace(body) = op {
        req = req
            .header("Content-Type", "text/plain; version=0.0.4")
            .body(body.to_string());
    }
    let shown = crate::recipe::redact::url(&url);
    let creds = crate::recipe::redact::url_credentials(base_url);
    match req.send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => {
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            Err(GroupError::Refused {
                method: name,
                url: shown,
                status,
                body: crate::recipe::redact::text(body.trim(), &creds),
            })
        }
        Err(e) => Err(GroupError::Unreachable {
            method: name,
            url: shown,
            message: crate::recipe::redact::text(&error_chain(&e), &creds),
        }),
    }
}

/// The short name of this node: `$SLURMD_NODENAME` inside a job, else the host name.
pub fn node_name() -> String {
    if let Ok(n) = std::env::var("SLURMD_NODENAME") {
        if !n.is_empty() {
            return n;
        }
    }
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        let name = String::from_utf8_lossy(&buf[..end]).to_string();
        let short = name.split('.').next().unwrap_or_default().to_string();
        if !short.is_empty() {
            return short;
        }
    }
    "localhost".to_string()
}

#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Base URL of the Pushgateway (`http://node:9091`).
    pub url: String,
    pub key: GroupingKey,
    pub interval: Duration,
    /// Bound on each HTTP request (push or delete).
    pub timeout: Duration,
    /// Basic auth of the monitoring stack's Pushgateway (`None`: an open Pushgateway).
    pub auth: Option<super::stack::BasicAuth>,
    /// The run file of the run (`key.run_id`) whose running count of failed pushes is kept
    /// beside it for `status` (`store::campaign::live_push_failures_path`); `None`: not kept.
    pub run_file: Option<std::path::PathBuf>,
}

impl PushConfig {
    /// Timeout derived from the interval: at most the interval, between 0.2 s and 3 s.
    pub fn new(url: &str, key: GroupingKey, interval_s: f64) -> Self {
        let interval = Duration::from_secs_f64(interval_s.max(0.1));
        let timeout = interval.clamp(Duration::from_millis(200), Duration::from_secs(3));
        PushConfig {
            url: url.trim_end_matches('/').to_string(),
            key,
            interval,
            timeout,
            auth: None,
            run_file: None,
        }
    }

    /// Keep the running count of failed pushes beside `run_file` while the run goes on.
    pub fn with_run_file(mut self, run_file: &std::path::Path) -> Self {
        self.run_file = Some(run_file.to_path_buf());
        self
    }

    pub fn with_auth(mut self, auth: Option<super::stack::BasicAuth>) -> Self {
        self.auth = auth;
        self
    }

    pub fn group_url(&self) -> String {
        format!("{}{}", self.url, self.key.path())
    }
}

/// How the run ended, pushed once as `factorybench_run_status{status=...} 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalState {
    /// `success`, `partial`, `failed` (the runs.status value).
    pub status: String,
}

/// What the pusher did, for the run's log and run_metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushSummary {
    pub pushes_ok: u64,
    pub pushes_failed: u64,
    pub final_pushed: bool,
    pub deleted: bool,
}

/// A running pusher task. Call [`Pusher::finish`] at the end of the run.
pub struct Pusher {
    stop: watch::Sender<Option<FinalState>>,
    task: tokio::task::JoinHandle<PushSummary>,
    timeout: Duration,
    /// The counts so far, for a finish that runs out of time: they are the run's, and must not
    /// read 0 because the task was cut short.
    so_far: Arc<std::sync::Mutex<PushSummary>>,
    /// The Pushgateway, without credentials, for what a cut-short finish says.
    shown_url: String,
}

impl Pusher {
    /// Start pushing `sources` every `cfg.interval` (the first push is immediate). Must be
    /// called inside a tokio runtime.
    pub fn start(cfg: PushConfig, sources: Vec<Arc<dyn LiveSource>>) -> Pusher {
        let (stop, rx) = watch::channel(None);
        let timeout = cfg.timeout;
        let shown_url = crate::recipe::redact::url(&cfg.url);
        let so_far = Arc::new(std::sync::Mutex::new(PushSummary::default()));
        let task = tokio::spawn(run(cfg, sources, rx, so_far.clone()));
        Pusher {
            stop,
            task,
            timeout,
            so_far,
            shown_url,
        }
    }

    /// Push the final state, delete the group and return what happened. Bounded: at most
    /// about two request timeouts plus one in-flight push. Past the bound (a starved machine)
    /// the task is cut short: the pushes it counted stand, and the final push counts as failed.
    pub async fn finish(self, state: FinalState) -> PushSummary {
        let _ = self.stop.send(Some(state));
        let bound = self.timeout * 4 + Duration::from_secs(1);
        let abort = self.task.abort_handle();
        match tokio::time::timeout(bound, self.task).await {
            Ok(Ok(s)) => s,
            _ => {
                abort.abort();
                let mut s = self.so_far.lock().map(|s| s.clone()).unwrap_or_default();
                // The task records the final push as soon as it has its answer: a final push
                // that went through stands, and only the delete was cut short.
                let lost = if s.final_pushed {
                    "the final push went through, the group's delete was cut short"
                } else {
                    s.pushes_failed += 1;
                    "the final push is counted as failed"
                };
                // Said, so that a failure count no request error explains is explained.
                tracing::warn!(
                    "live metrics: the last pushes to {} did not end within {bound:?} (a starved \
                     machine, or a Pushgateway that holds requests): {lost}",
                    self.shown_url
                );
                s.deleted = false;
                s
            }
        }
    }
}

struct Shipper {
    http: reqwest::Client,
    cfg: PushConfig,
    summary: PushSummary,
    logged_failure: bool,
}

impl Shipper {
    /// Write the failed-push count beside the run file (best effort: `status` shows it while
    /// the run goes on; the job log already said the first failure).
    fn keep_live_count(&self) {
        if let Some(f) = &self.cfg.run_file {
            if let Err(e) = crate::store::campaign::write_live_push_failures(
                f,
                &self.cfg.key.run_id,
                self.summary.pushes_failed,
            ) {
                tracing::debug!(
                    "live metrics: cannot keep the failure count beside {}: {e}",
                    f.display()
                );
            }
        }
    }

    fn body(&self, sources: &[Arc<dyn LiveSource>], fin: Option<&FinalState>) -> String {
        let mut e = Exposition::new();
        for s in sources {
            s.render(&mut e);
        }
        e.gauge(
            "run_finished",
            "1 once the run has ended (final push before the group is deleted).",
            if fin.is_some() { 1.0 } else { 0.0 },
        );
        if let Some(f) = fin {
            e.family(
                "run_status",
                MetricType::Gauge,
                "The final status of the run (1 for its status label).",
            )
            .sample("run_status", &[("status", &f.status)], 1.0);
        }
        e.counter(
            "push_failures_total",
            "Pushes to this Pushgateway that failed or timed out (seen once one succeeds).",
            self.summary.pushes_failed as f64,
        );
        e.gauge(
            "push_interval_seconds",
            "Seconds between this run's pushes (global.push_interval); the FactorybenchRunStalled alert scales with it.",
            self.cfg.interval.as_secs_f64(),
        );
        e.gauge(
            "last_push_time_seconds",
            "Unix time of this push.",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        );
        e.into_string()
    }

    async fn send(&mut self, method: reqwest::Method, body: Option<String>) -> bool {
        let mut req = self
            .http
            .request(method.clone(), self.cfg.group_url())
            .timeout(self.cfg.timeout);
        if let Some(a) = &self.cfg.auth {
            req = a.apply(req);
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", "text/plain; version=0.0.4")
                .body(b);
        }
        let result = match req.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                let fix = match status.as_u16() {
                    401 | 403 => {
                        if self.cfg.auth.is_some() {
                            " (the Pushgateway refused the credentials)"
                        } else {
                            " (the Pushgateway wants credentials: for the `monitor up` stack point \
                             PUSHGATEWAY_URL or pushgateway_url at its address, or unset them so \
                             that the stack is found from its endpoint file; its credentials are \
                             then used)"
                        }
                    }
                    _ => "",
                };
                Err(format!("HTTP {status}: {}{fix}", text.trim()))
            }
            Err(e) if e.is_timeout() => Err(format!("timed out after {:?}", self.cfg.timeout)),
            Err(e) => Err(error_chain(&e)),
        };
        match result {
            Ok(()) => true,
            Err(msg) => {
                if !self.logged_failure {
                    self.logged_failure = true;
                    // Neither the URL nor the error (which quotes it) shows its credentials.
                    let creds = crate::recipe::redact::url_credentials(&self.cfg.url);
                    tracing::warn!(
                        "live metrics: {method} {} failed: {} (the run goes on; further \
                         failures are counted, not logged)",
                        crate::recipe::redact::url(&self.cfg.group_url()),
                        crate::recipe::redact::text(&msg, &creds)
                    );
                }
                false
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

async fn run(
    cfg: PushConfig,
    sources: Vec<Arc<dyn LiveSource>>,
    mut stop: watch::Receiver<Option<FinalState>>,
    so_far: Arc<std::sync::Mutex<PushSummary>>,
) -> PushSummary {
    let keep = |s: &PushSummary| {
        if let Ok(mut k) = so_far.lock() {
            *k = s.clone();
        }
    };
    let http = match reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(cfg.timeout)
        .pool_max_idle_per_host(1)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("live metrics disabled: cannot build an HTTP client: {e}");
            return PushSummary::default();
        }
    };
    let mut sh = Shipper {
        http,
        cfg,
        summary: PushSummary::default(),
        logged_failure: false,
    };
    let mut tick = tokio::time::interval(sh.cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let fin = loop {
        tokio::select! {
            changed = stop.changed() => {
                let fin = if changed.is_ok() { stop.borrow().clone() } else { None };
                break fin.unwrap_or(FinalState { status: "failed".into() });
            }
            _ = tick.tick() => {
                let body = sh.body(&sources, None);
                if sh.send(reqwest::Method::PUT, Some(body)).await {
                    sh.summary.pushes_ok += 1;
                } else {
                    sh.summary.pushes_failed += 1;
                    sh.keep_live_count();
                }
                keep(&sh.summary);
            }
        }
    };
    let body = sh.body(&sources, Some(&fin));
    sh.summary.final_pushed = sh.send(reqwest::Method::PUT, Some(body)).await;
    if sh.summary.final_pushed {
        sh.summary.pushes_ok += 1;
        keep(&sh.summary);
        sh.summary.deleted = sh.send(reqwest::Method::DELETE, None).await;
    } else {
        sh.summary.pushes_failed += 1;
    }
    // From here the count is the run's `pushgateway_push_failures`, stored with it.
    if let Some(f) = &sh.cfg.run_file {
        let _ = std::fs::remove_file(crate::store::campaign::live_push_failures_path(
            f,
            &sh.cfg.key.run_id,
        ));
    }
    if sh.summary.pushes_failed > 0 {
        tracing::info!(
            "live metrics: {} of {} pushes to {} failed",
            sh.summary.pushes_failed,
            sh.summary.pushes_failed + sh.summary.pushes_ok,
            crate::recipe::redact::url(&sh.cfg.url)
        );
    }
    sh.summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_path_encodes_awkward_values() {
        let k = GroupingKey {
            job: "factorybench".into(),
            instance: "node-01".into(),
            campaign: "my campaign/2026".into(),
            service: "llm.a_b".into(),
            run_id: String::new(),
        };
        assert_eq!(
            k.path(),
            "/metrics/job/factorybench/instance/node-01/campaign@base64/bXkgY2FtcGFpZ24vMjAyNg==/service/llm.a_b/run_id@base64/="
        );
    }

    /// Every series of a full push body (engine snapshot, telemetry, pusher's own) is unique
    /// and every family has one header: the Pushgateway rejects the whole push otherwise.
    #[test]
    fn push_body_has_unique_series() {
        use crate::monitor::snapshot::SnapshotSource;
        use crate::monitor::telemetry::Telemetry;
        use crate::runner::live::{LiveObserver, LiveSnapshot, Phase, Quantiles};
        let src = Arc::new(SnapshotSource::new());
        let q = Quantiles {
            p50_ms: 1.0,
            p90_ms: 2.0,
            p99_ms: 3.0,
            p999_ms: 4.0,
            max_ms: 5.0,
        };
        src.tick(&LiveSnapshot {
            run_id: "r".into(),
            service: "s".into(),
            kind: crate::recipe::ServiceKind::Vllm,
            phase: Phase::Measure,
            t_ns: 2_000_000_000,
            elapsed_s: 1.0,
            planned_s: 10.0,
            requests_total: 10,
            errors_total: 1,
            errors_by_class: [("timeout", 1)].into_iter().collect(),
            in_flight: 2,
            achieved_rps: 10.0,
            target_rate_total_per_s: Some(10.0),
            latency: Some(q),
            ttft: Some(q),
            tpot: Some(q),
            schedule_lag_p99_ms: 0.5,
            bytes_sent_total: 1,
            bytes_received_total: 2,
            input_tokens_total: 3,
            output_tokens_total: 4,
            runner_cpu_percent: 5.0,
            success_duration: crate::compat::DurationHistogram::seed(),
        });
        let t = Telemetry::start(
            crate::runner::clock::Clock::new(),
            Duration::from_millis(10),
            false,
            Box::new(|_| {}),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let sh = Shipper {
            http: reqwest::Client::new(),
            cfg: PushConfig::new("http://x:1", GroupingKey::new("c", "s", "r"), 1.0),
            summary: PushSummary::default(),
            logged_failure: false,
        };
        let sources: Vec<Arc<dyn LiveSource>> = vec![src, t.view()];
        let body = sh.body(
            &sources,
            Some(&FinalState {
                status: "success".into(),
            }),
        );
        t.stop();
        let mut seen = std::collections::HashSet::new();
        for line in body.lines() {
            let key = if line.starts_with('#') {
                line.to_string()
            } else {
                line.rsplit_once(' ').unwrap().0.to_string()
            };
            assert!(seen.insert(key), "duplicate: {line}\n{body}");
        }
        for name in [
            "factorybench_llm_ttft_seconds{quantile=\"0.99\"} 0.003",
            "factorybench_request_errors_total{class=\"timeout\"} 1",
            "factorybench_run_status{status=\"success\"} 1",
            "factorybench_run_finished 1",
            "factorybench_push_interval_seconds 1",
            "factorybench_node_memory_total_bytes ",
        ] {
            assert!(body.contains(name), "{name} missing:\n{body}");
        }
    }

    #[test]
    fn timeout_is_bounded_by_interval() {
        let k = GroupingKey::new("c", "s", "r");
        assert_eq!(
            PushConfig::new("http://x:1/", k.clone(), 0.5).timeout,
            Duration::from_millis(500)
        );
        assert_eq!(
            PushConfig::new("http://x:1", k, 30.0).timeout,
            Duration::from_secs(3)
        );
    }
}
