//! The lifecycle of a capacity search (`factorybench capacity`): every step of
//! [`crate::capacity::Search`] is an ordinary recorded run of the service at one total rate
//! (open loop; the per-client rate is the total / `client_count`), judged against the
//! recipe's `capacity_search.slo`, and recorded in `capacity_steps`. How a run's figures are
//! computed is the caller's ([`StepFigures`] from the report's analysis: a higher layer).

use super::provenance::GpuFacts;
use super::session::{Job, ObserverFactory, Session, WatchFactory};
use crate::capacity::{Outcome, Phase, Search};
use crate::recipe::{Arrival, CapacitySearch, CapacitySlo, Plan, Service, SweepParam};
use crate::store::{CapacitySearchRow, CapacityStepRow, RunStatus, Store};
use std::sync::Arc;

/// What limited a step's run on the load generator's side (the run's validity gates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limiter {
    /// The generator's own CPU fell behind its schedule.
    Generator,
    /// Every connection was busy: requests waited for one, or went unsent.
    Connections,
}

/// What one step's run achieved (computed from the campaign file after the run).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepFigures {
    pub requests: u64,
    pub achieved_rate_per_s: f64,
    pub latency_p99_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    pub error_rate: f64,
    /// The generator side limited the run, with the gate's own words.
    pub limited: Option<(Limiter, String)>,
}

/// A step's reason starts with this when the load generator, not the service, limited it:
/// the step is neither a pass nor a service failure.
pub const NOT_JUDGED: &str = "not judged: ";

/// Times the search doubles the connections of a connection-limited step before it ends.
pub const CONNECTION_RAISES: u32 = 3;

/// Judge a step: `None` when it holds every SLO, else why not.
pub fn judge(slo: &CapacitySlo, target_rate_per_s: f64, f: &StepFigures) -> Option<String> {
    let mut why = Vec::new();
    if f.requests == 0 {
        why.push("no measured request".to_string());
    }
    if f.error_rate > slo.max_error_rate {
        why.push(format!(
            "error rate {:.4} > {}",
            f.error_rate, slo.max_error_rate
        ));
    }
    if f.achieved_rate_per_s < slo.min_rate_ratio * target_rate_per_s {
        why.push(format!(
            "achieved {:.3}/s < {} × target {:.3}/s",
            f.achieved_rate_per_s, slo.min_rate_ratio, target_rate_per_s
        ));
    }
    if let Some(lim) = slo.latency_p99_ms {
        match f.latency_p99_ms {
            Some(v) if v <= lim => {}
            Some(v) => why.push(format!("p99 latency {v:.3} ms > {lim} ms")),
            None => why.push("no successful request (p99 latency unknown)".into()),
        }
    }
    if let Some(lim) = slo.ttft_p99_ms {
        match f.ttft_p99_ms {
            Some(v) if v <= lim => {}
            Some(v) => why.push(format!("p99 TTFT {v:.3} ms > {lim} ms")),
            None => why.push("no first token (TTFT unknown)".into()),
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// The service resolved for one step at `total_rate_per_s`.
pub fn service_at_rate(svc: &Service, cs: &CapacitySearch, total_rate_per_s: f64) -> Service {
    let mut s = svc.clone();
    s.sweep = None;
    if s.load.arrival == Arrival::Closed {
        s.load.arrival = Arrival::Constant;
    }
    s.load.target_rate_per_client_per_s = total_rate_per_s / f64::from(s.load.clients.max(1));
    if let Some(d) = cs.step_duration_s {
        s.load.duration_s = d;
        s.load.requests = None;
    }
    s
}

/// One finished step, as reported to the caller's progress callback.
#[derive(Debug, Clone)]
pub struct StepDone {
    pub row: CapacityStepRow,
    pub figures: StepFigures,
}

/// How a search ended.
#[derive(Debug, Clone)]
pub struct SearchDone {
    pub search_id: String,
    pub outcome: Option<Outcome>,
    pub steps: Vec<StepDone>,
    /// A signal stopped it before the end.
    pub stopped: bool,
    pub elapsed_s: f64,
}

/// Hooks of each step's session (progress output, live monitoring, GPU facts).
#[derive(Clone, Default)]
pub struct StepHooks {
    pub observers: Option<ObserverFactory>,
    pub watch: Option<WatchFactory>,
    pub gpu_facts: Option<GpuFacts>,
    /// See [`crate::runner::session::Session::service_exit_file`].
    pub service_exit_file: Option<std::path::PathBuf>,
}

/// Run the capacity search of `svc` against `store`. `figures` reads a finished run's figures;
/// `on_step` sees each step as it ends.
pub fn run_search(
    plan: &Arc<Plan>,
    svc: &Service,
    store: &Store,
    hooks: &StepHooks,
    figures: &dyn Fn(&str) -> anyhow::Result<StepFigures>,
    on_step: &mut dyn FnMut(&StepDone),
) -> anyhow::Result<SearchDone> {
    let cs = svc.capacity_search.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "service `{}` has no `capacity_search` in its recipe",
            svc.name
        )
    })?;
    let t0 = std::time::Instant::now();
    let search_id = crate::store::new_run_id();
    let spec_json = serde_json::to_string(&cs).unwrap_or_else(|_| "{}".into());
    let mut row = CapacitySearchRow {
        search_id: search_id.clone(),
        service: svc.name.clone(),
        spec_json,
        started_ns: now_ns(),
        ended_ns: None,
        outcome: None,
        sustainable_rate: None,
        first_failing_rate: None,
    };
    let handle = store.handle();
    handle.capacity_search(row.clone());
    handle.flush_sync()?;
    let mut search = Search::new(cs.spec);
    let mut steps = Vec::new();
    let mut stopped = false;
    // Connection-limited steps double the connections per client and run again.
    let mut conn_factor: u32 = 1;
    let mut raises: u32 = 0;
    // A service failure at a ramp or bisection rate is measured once more before it counts:
    // one failing run may hold a stall of the machine (a knee at 18,750 req/s was seen between
    // two searches that held 40,000 against the same nginx).
    let mut failed_once: Option<f64> = None;
    while let Some((phase, rate)) = search.next_rate() {
        let mut stepped = service_at_rate(svc, &cs, rate);
        raise_connections(&mut stepped, conn_factor);
        let conns = stepped.load.connections_per_client;
        let per_client = stepped.load.target_rate_per_client_per_s;
        let session = Session {
            plan: plan.clone(),
            groups: vec![vec![Job {
                svc: stepped,
                sweep: Some((SweepParam::RequestsPerSecond, fmt_rate(per_client))),
            }]],
            max_parallel: 1,
            observers: hooks.observers.clone(),
            watch: hooks.watch.clone(),
            gpu_facts: hooks.gpu_facts.clone(),
            service_exit_file: hooks.service_exit_file.clone(),
        };
        let out = session.run(store)?;
        let Some(fin) = out.finished.into_iter().next() else {
            stopped = true;
            break;
        };
        let figs = figures(&fin.run_id)?;
        let mut reason = judge(&cs.slo, rate, &figs);
        if fin.status == RunStatus::Failed && reason.is_none() {
            reason = Some("the run failed".into());
        }
        if out.stopped_by.is_some() {
            // A partial step is no verdict: stop without recording it as one.
            stopped = true;
        }
        if hooks.service_exit_file.as_ref().is_some_and(|f| f.exists()) {
            // The service is gone: this step failed with the reason, no later step can run.
            stopped = true;
        }
        // The generator side limited the run: no verdict on the service.
        let mut limited = None;
        let mut retry = false;
        if let (Some((lim, why)), false) = (&figs.limited, stopped) {
            let (why, limit, again) = limited_verdict(*lim, why, conns, raises);
            (reason, limited, retry) = (Some(why), limit, again);
        }
        let mut measure_again = false;
        if let (Some(why), None, false) = (&reason, limited, retry || stopped) {
            if phase != Phase::Confirm && failed_once != Some(rate) {
                failed_once = Some(rate);
                measure_again = true;
                reason = Some(format!(
                    "{NOT_JUDGED}{why} in one run; this rate again: a failure must reproduce (one run may hold a stall of the machine)"
                ));
            }
        }
        let step = CapacityStepRow {
            search_id: search_id.clone(),
            step: steps.len() as u32,
            run_id: fin.run_id.clone(),
            phase,
            target_rate: rate,
            achieved_rate: Some(figs.achieved_rate_per_s),
            latency_p99_ms: figs.latency_p99_ms,
            ttft_p99_ms: figs.ttft_p99_ms,
            error_rate: Some(figs.error_rate),
            passed: reason.is_none() && !stopped,
            reason: if stopped {
                Some("stopped by a signal".into())
            } else {
                reason
            },
        };
        handle.capacity_step(step.clone());
        let done = StepDone {
            row: step,
            figures: figs,
        };
        on_step(&done);
        if stopped {
            steps.push(done);
            break;
        }
        steps.push(done);
        if retry {
            conn_factor *= 2;
            raises += 1;
            continue;
        }
        if measure_again {
            continue;
        }
        failed_once = None;
        if limited.is_some() {
            search.record_limited();
        } else {
            search.record(steps.last().is_some_and(|d| d.row.passed));
        }
    }
    let outcome = (!stopped).then(|| search.outcome());
    row.ended_ns = Some(now_ns());
    record_outcome(&mut row, outcome, &steps);
    handle.capacity_search(row);
    handle.flush_sync()?;
    Ok(SearchDone {
        search_id,
        outcome,
        steps,
        stopped,
        elapsed_s: t0.elapsed().as_secs_f64(),
    })
}

/// The search row's outcome, sustainable and first failing rate.
fn record_outcome(row: &mut CapacitySearchRow, outcome: Option<Outcome>, steps: &[StepDone]) {
    match outcome {
        Some(Outcome::Found {
            sustainable_rate_per_s,
            first_failing_rate_per_s,
        }) => {
            row.outcome = Some("found".into());
            row.sustainable_rate = Some(sustainable_rate_per_s);
            row.first_failing_rate = first_failing_rate_per_s;
        }
        Some(Outcome::NoneSustainable) => {
            row.outcome = Some("none_sustainable".into());
            row.first_failing_rate = steps.first().map(|s| s.row.target_rate);
        }
        Some(Outcome::GeneratorLimited {
            held_rate_per_s,
            first_failing_rate_per_s,
            ..
        }) => {
            // The sustainable rate is what the service held; no first failing rate unless the
            // service itself failed somewhere (the generator's limit is not the service's).
            row.outcome = Some("generator_limited".into());
            row.sustainable_rate = held_rate_per_s;
            row.first_failing_rate = first_failing_rate_per_s;
        }
        None => row.outcome = Some("stopped".into()),
    }
}

/// The reason of a step that the load generator's side limited (no verdict on the service):
/// `(reason, the limit when it ends the search, whether to run the rate again with more
/// connections)`.
fn limited_verdict(
    lim: Limiter,
    why: &str,
    conns: u32,
    raises: u32,
) -> (String, Option<Limiter>, bool) {
    let can_raise = lim == Limiter::Connections
        && raises < CONNECTION_RAISES
        && conns < crate::recipe::MAX_CONNECTIONS_PER_CLIENT;
    if can_raise {
        let why = format!(
            "{NOT_JUDGED}{why}; the same rate again with {} connections per client",
            (conns * 2).min(crate::recipe::MAX_CONNECTIONS_PER_CLIENT)
        );
        return (why, None, true);
    }
    let why = format!(
                    "{NOT_JUDGED}{why}; {}",
                    match lim {
                        Limiter::Generator => "the load generator could not offer this rate: add client_nodes (or clients on more cores) to measure the service beyond it",
                        Limiter::Connections => "still connection-limited after raising the connections: the service keeps too many requests open at this rate (a service limit, or add client_nodes)",
                    }
            );
    (why, Some(lim), false)
}

/// Multiply the connections per client by `factor` (capped), and `max_in_flight` with them
/// where it would bind.
fn raise_connections(s: &mut Service, factor: u32) {
    if factor <= 1 {
        return;
    }
    let l = &mut s.load;
    let before = l.connections_per_client;
    l.connections_per_client = before
        .saturating_mul(factor)
        .min(crate::recipe::MAX_CONNECTIONS_PER_CLIENT);
    let wanted = l.clients.max(1).saturating_mul(l.connections_per_client);
    l.max_in_flight = l.max_in_flight.max(wanted);
}

/// The phase label of a step (for progress lines).
pub fn phase_label(p: Phase) -> &'static str {
    p.as_str()
}

fn fmt_rate(r: f64) -> String {
    let s = format!("{r:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slo() -> CapacitySlo {
        CapacitySlo {
            latency_p99_ms: Some(100.0),
            ttft_p99_ms: None,
            max_error_rate: 0.01,
            min_rate_ratio: 0.95,
        }
    }

    #[test]
    fn judge_names_every_broken_slo() {
        let ok = StepFigures {
            requests: 100,
            achieved_rate_per_s: 10.0,
            latency_p99_ms: Some(50.0),
            ttft_p99_ms: None,
            error_rate: 0.0,
            limited: None,
        };
        assert_eq!(judge(&slo(), 10.0, &ok), None);
        let bad = StepFigures {
            achieved_rate_per_s: 8.0,
            latency_p99_ms: Some(150.0),
            error_rate: 0.02,
            ..ok.clone()
        };
        let why = judge(&slo(), 10.0, &bad).unwrap();
        assert!(why.contains("error rate"), "{why}");
        assert!(why.contains("achieved 8.000/s"), "{why}");
        assert!(why.contains("p99 latency 150.000 ms > 100 ms"), "{why}");
    }

    #[test]
    fn rates_print_cleanly() {
        assert_eq!(fmt_rate(2.5), "2.5");
        assert_eq!(fmt_rate(3.0), "3");
        assert_eq!(fmt_rate(0.333333333), "0.333333");
    }
}
