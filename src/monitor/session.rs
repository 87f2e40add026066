//! Monitoring of one service's run: node/GPU telemetry into the run's `samples`, live pushes
//! of the engine's snapshots and the telemetry to the Pushgateway, and at the end a final
//! push and the deletion of the group.

use super::alerting::Alertmanager;
use super::disk::{DiskSource, PathRole};
use super::live::LiveSource;
use super::push::{FinalState, GroupingKey, PushConfig, PushSummary, Pusher};
use super::snapshot::SnapshotSource;
use super::stack;
use super::telemetry::{SampleSink, Telemetry, TelemetryData};
use crate::recipe::{Plan, Service, Workload};
use crate::runner::client::RunMetric;
use crate::runner::clock::Clock;
use std::sync::Arc;
use std::time::Duration;

/// The campaign label: the campaign directory's name inside a batch job (`FB_CAMPAIGN_DIR`),
/// else the benchmark name.
pub fn campaign_label(plan: &Plan) -> String {
    std::env::var_os("FB_CAMPAIGN_DIR")
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| plan.benchmark.name.clone())
}

/// The filesystems this run writes to: the campaign file's directory and, for a storage
/// benchmark, its `base_path`.
fn disk_source(plan: &Plan, svc: &Service) -> DiskSource {
    let mut paths = vec![(
        PathRole::Campaign,
        plan.global
            .metrics_db
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default(),
    )];
    if let Workload::FileStorage(w) = &svc.workload {
        paths.push((PathRole::BasePath, w.base_path.clone()));
    }
    DiskSource::new(paths)
}

/// What the end of monitoring produced.
#[derive(Debug, Default)]
pub struct MonitorOutcome {
    /// Push failures (when a Pushgateway was used) for run_metrics.
    pub metrics: Vec<RunMetric>,
    pub push: Option<PushSummary>,
    pub telemetry: TelemetryData,
}

/// Monitoring of one run. Start it before the load, pass [`RunMonitor::observer`] to the
/// engine, and [`RunMonitor::finish`] it once the run's status is known.
pub struct RunMonitor {
    source: Arc<SnapshotSource>,
    telemetry: Option<Telemetry>,
    pusher: Option<Pusher>,
    /// The request that silences this run's stress alerts (`monitoring.expect_stress`).
    silence: Option<tokio::task::JoinHandle<()>>,
}

/// How long after its planned end a run's silence lasts: the drain, the alerts' `for:` and one
/// evaluation of a stale rate window.
pub const SILENCE_MARGIN: Duration = Duration::from_secs(600);

/// Silence this run's stress alerts in the running stack's Alertmanager, from now to its
/// planned end plus [`SILENCE_MARGIN`] (best effort: a failure is logged, the run goes on).
fn silence_own_stress_alerts(
    plan: &Plan,
    svc: &Service,
    run_id: &str,
) -> Option<tokio::task::JoinHandle<()>> {
    let ep = stack::running_endpoint(&stack::default_state_dir())?;
    let am = ep.alertmanager.as_ref()?;
    let client = match Alertmanager::new(&am.url, ep.alertmanager_auth()) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("[{}] cannot silence its stress alerts: {e}", svc.name);
            return None;
        }
    };
    let planned = Duration::from_secs_f64((svc.load.warmup_s + svc.load.duration_s).max(0.0));
    let (campaign, run_id, name) = (campaign_label(plan), run_id.to_string(), svc.name.clone());
    Some(tokio::spawn(async move {
        match client
            .silence_stress(
                &campaign,
                Some(&run_id),
                planned + SILENCE_MARGIN,
                "factorybench run",
            )
            .await
        {
            Ok(id) => tracing::info!(
                "[{name}] expect_stress: its stress alerts are silenced for {} s (silence {id})",
                (planned + SILENCE_MARGIN).as_secs()
            ),
            Err(e) => tracing::warn!("[{name}] cannot silence its stress alerts: {e}"),
        }
    }))
}

impl RunMonitor {
    /// Must be called inside a tokio runtime. `sink` receives every telemetry sample.
    pub fn start(
        plan: &Plan,
        svc: &Service,
        run_id: &str,
        clock: Clock,
        sink: SampleSink,
        run_file: Option<&std::path::Path>,
    ) -> RunMonitor {
        let source = Arc::new(SnapshotSource::new().with_compat(plan.monitoring.compat_metrics));
        // A runner on a client node of a multi-node job is not on the service's node: any
        // GPU it sees is idle (a heterogeneous job gives it none), so it samples none.
        let gpus = svc.client_share.is_none();
        if !gpus {
            tracing::info!(
                "[{}] GPU telemetry off on this client node: the service's GPUs are on its own node",
                svc.name
            );
        }
        let telemetry = match Telemetry::start(clock, Duration::from_secs(1), gpus, sink) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!("[{}] node telemetry off: {e}", svc.name);
                None
            }
        };
        let target = stack::discover_push_target(
            plan.global.pushgateway_url.as_deref(),
            &stack::default_state_dir(),
        );
        let pusher = target.map(|t| {
            let key = GroupingKey::new(&campaign_label(plan), &svc.name, run_id);
            let mut cfg =
                PushConfig::new(&t.url, key, plan.global.push_interval_s).with_auth(t.auth);
            if let Some(f) = run_file {
                cfg = cfg.with_run_file(f);
            }
            tracing::info!(
                "[{}] live metrics to {} every {} s",
                svc.name,
                crate::recipe::redact::url(&cfg.group_url()),
                plan.global.push_interval_s
            );
            let mut sources: Vec<Arc<dyn LiveSource>> = vec![source.clone()];
            if let Some(t) = &telemetry {
                sources.push(t.view());
            }
            sources.push(Arc::new(disk_source(plan, svc)));
            Pusher::start(cfg, sources)
        });
        let silence = plan
            .monitoring
            .expect_stress
            .then(|| silence_own_stress_alerts(plan, svc, run_id))
            .flatten();
        RunMonitor {
            source,
            telemetry,
            pusher,
            silence,
        }
    }

    /// The engine observer that feeds the pushes.
    pub fn observer(&self) -> Arc<SnapshotSource> {
        self.source.clone()
    }

    pub fn pushing(&self) -> bool {
        self.pusher.is_some()
    }

    /// Stop telemetry, push the final state (`status`: success | partial | failed) and delete
    /// the group.
    pub async fn finish(self, status: &str) -> MonitorOutcome {
        let telemetry = match self.telemetry {
            Some(t) => tokio::task::spawn_blocking(move || t.stop())
                .await
                .unwrap_or_default(),
            None => TelemetryData::default(),
        };
        if let Some(s) = self.silence {
            let _ = tokio::time::timeout(Duration::from_secs(10), s).await;
        }
        let mut out = MonitorOutcome::default();
        if let Some(p) = self.pusher {
            let s = p
                .finish(FinalState {
                    status: status.to_string(),
                })
                .await;
            out.metrics.push(RunMetric {
                name: "pushgateway_push_failures".into(),
                value: s.pushes_failed as f64,
                unit: "count".into(),
            });
            out.push = Some(s);
        }
        out.telemetry = telemetry;
        out
    }
}

impl crate::runner::session::RunWatch for RunMonitor {
    fn observer(&self) -> Arc<dyn crate::runner::live::LiveObserver> {
        self.source.clone()
    }

    fn finish(
        self: Box<Self>,
        status: crate::store::RunStatus,
    ) -> crate::runner::client::BoxFuture<'static, Vec<RunMetric>> {
        Box::pin(async move { RunMonitor::finish(*self, status.as_str()).await.metrics })
    }
}

/// The session's run monitor: samples into the run's file, live pushes to the Pushgateway.
/// `run_file` is the campaign file as readers see it (the published path, not a node-local
/// copy): the running count of failed pushes is kept beside it for `status`.
pub fn watch_factory(run_file: Option<std::path::PathBuf>) -> crate::runner::session::WatchFactory {
    Arc::new(move |plan, svc, run_id, clock, store| {
        let sink_store = store.clone();
        let sink_run = run_id.clone();
        Box::new(RunMonitor::start(
            plan,
            svc,
            run_id,
            clock,
            Box::new(move |s| {
                sink_store.sample(&sink_run, s.t_ns, crate::model::intern(&s.name), s.value)
            }),
            run_file.as_deref(),
        ))
    })
}
