//! Progress output of a run on the terminal: one progress bar per service (on a terminal), else
//! a log line every 5 s. A [`crate::runner::session::ObserverFactory`] for `run`.

use super::live::{LiveObserver, LiveSnapshot, Phase};
use super::session::ObserverFactory;
use crate::recipe::Service;
use std::sync::Arc;

/// The observers of each service's run: a bar in `multi` when `show_bars`, else log lines.
pub fn observer_factory(show_bars: bool, multi: indicatif::MultiProgress) -> ObserverFactory {
    Arc::new(move |svc: &Service| observers_for(svc, show_bars, &multi))
}

/// The live observers of one service's run: the progress display (the Pushgateway pusher is
/// added by the session through `monitor::session::RunMonitor`).
fn observers_for(
    svc: &Service,
    show_bars: bool,
    multi: &indicatif::MultiProgress,
) -> Vec<Arc<dyn LiveObserver>> {
    let mut v: Vec<Arc<dyn LiveObserver>> = Vec::new();
    if show_bars {
        let planned = (svc.load.warmup_s + svc.load.duration_s).max(1.0);
        let bar = multi.add(indicatif::ProgressBar::new((planned * 10.0) as u64));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix:>16} [{bar:30}] {elapsed_precise} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(svc.name.clone());
        v.push(Arc::new(BarObserver { bar }));
    } else {
        v.push(Arc::new(LineObserver {
            last: std::sync::Mutex::new(-1.0),
        }));
    }
    v
}

fn describe(s: &LiveSnapshot) -> String {
    let p99 = s
        .latency
        .map(|l| format!("{:.2} ms", l.p99_ms))
        .unwrap_or_else(|| "-".into());
    let target = s
        .target_rate_total_per_s
        .map(|t| format!("/{t:.0}"))
        .unwrap_or_default();
    format!(
        "{:?} {} req, {:.0}{} req/s, p99 {}, errors {}, in flight {}",
        s.phase, s.requests_total, s.achieved_rps, target, p99, s.errors_total, s.in_flight
    )
}

struct BarObserver {
    bar: indicatif::ProgressBar,
}

impl LiveObserver for BarObserver {
    fn tick(&self, s: &LiveSnapshot) {
        self.bar.set_position((s.elapsed_s * 10.0) as u64);
        self.bar.set_message(describe(s));
        if s.phase == Phase::Done {
            self.bar.finish();
        }
    }
}

struct LineObserver {
    last: std::sync::Mutex<f64>,
}

impl LiveObserver for LineObserver {
    fn tick(&self, s: &LiveSnapshot) {
        let mut last = self.last.lock().expect("lock");
        if s.phase == Phase::Done || *last < 0.0 || s.elapsed_s - *last >= 5.0 {
            *last = s.elapsed_s;
            eprintln!(
                "[{}] {:.0}/{:.0} s: {}",
                s.service,
                s.elapsed_s,
                s.planned_s,
                describe(s)
            );
        }
    }
}
