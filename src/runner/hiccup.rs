//! The runner's own stalls, measured the way jHiccup measures a JVM's: a thread of its own asks
//! to sleep [`PERIOD`], again and again over the measured window, and records by how much each
//! sleep overran. A process that is not running when it should be (a starved or descheduled
//! client host, a virtual machine that paused) overruns by the length of the pause.
//!
//! Why: in an open loop a stalled client reads its responses late, so its connections look
//! busy and requests wait for one. Those waits go into the corrected latency and can make the
//! run look connection-limited, as if the service were slow. The schedule lag alone cannot tell
//! the two apart; a stall of the client's own process can. The figures are stored with the run
//! (`runner_hiccup_p99_ms`, `runner_hiccup_max_ms`, `runner_stalls`, `runner_stalled_ms`), the
//! runner warns when it stalled, and the report names the stalls next to a connection-limited
//! verdict.
//!
//! Cost: one wake-up per millisecond on a thread that does nothing else (a few µs each, well
//! under 1 % of a core).

use super::clock::Clock;
use crate::model::RunMetric;
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the probe asks to sleep each time.
pub const PERIOD: Duration = Duration::from_millis(1);

/// An overrun longer than this is a stall: the limit of the generator's own lag.
pub const STALL_LIMIT_MS: f64 = crate::model::GENERATOR_LAG_P99_LIMIT_MS;

/// What the probe measured over the measured window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hiccups {
    /// Sleeps measured.
    pub samples: u64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Overruns longer than [`STALL_LIMIT_MS`]: how many, and their total length.
    pub stalls: u64,
    pub stalled_ms: f64,
}

impl Hiccups {
    /// The run metrics; none when nothing was measured (a run stopped before its window).
    pub fn metrics(&self) -> Vec<RunMetric> {
        if self.samples == 0 {
            return Vec::new();
        }
        let m = RunMetric::new;
        vec![
            m("runner_hiccup_p99_ms", self.p99_ms, "ms"),
            m("runner_hiccup_max_ms", self.max_ms, "ms"),
            m("runner_stalls", self.stalls as f64, "count"),
            m("runner_stalled_ms", self.stalled_ms, "ms"),
        ]
    }

    /// One sentence for a warning or a verdict's reason, when the runner stalled.
    pub fn describe(&self) -> Option<String> {
        describe_stalls(self.stalls as f64, self.max_ms, self.stalled_ms)
    }
}

/// The sentence for stored figures (the report reads them back as run metrics).
pub fn describe_stalls(stalls: f64, max_ms: f64, stalled_ms: f64) -> Option<String> {
    (stalls > 0.0).then(|| {
        format!(
            "the runner stalled: {stalls:.0} time{} its host ran it more than {STALL_LIMIT_MS} ms late (longest {max_ms:.1} ms, {stalled_ms:.1} ms in all)",
            if stalls == 1.0 { "" } else { "s" }
        )
    })
}

/// The overruns of one probe, in µs.
struct Recorder {
    hist: Histogram<u64>,
    stalls: u64,
    stalled_us: u64,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            // 1 µs to an hour: any pause is recorded as it was.
            hist: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            stalls: 0,
            stalled_us: 0,
        }
    }

    fn record(&mut self, overrun_us: u64) {
        self.hist.saturating_record(overrun_us);
        if overrun_us as f64 > STALL_LIMIT_MS * 1000.0 {
            self.stalls += 1;
            self.stalled_us += overrun_us;
        }
    }

    fn summary(&self) -> Hiccups {
        if self.hist.is_empty() {
            return Hiccups::default();
        }
        Hiccups {
            samples: self.hist.len(),
            p99_ms: self.hist.value_at_quantile(0.99) as f64 / 1000.0,
            max_ms: self.hist.max() as f64 / 1000.0,
            stalls: self.stalls,
            stalled_ms: self.stalled_us as f64 / 1000.0,
        }
    }
}

/// The probe's thread; [`HiccupProbe::finish`] stops it and returns what it measured.
pub struct HiccupProbe {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Hiccups>,
}

impl HiccupProbe {
    /// Probe the sleeps that begin in `[from_ns, until_ns)` of `clock`. None when no thread
    /// could be started (the run goes on without the figures).
    pub fn start(clock: Clock, from_ns: i64, until_ns: i64) -> Option<HiccupProbe> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::Builder::new()
            .name("fb-hiccups".into())
            .spawn(move || {
                let mut rec = Recorder::new();
                while !stop2.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    std::thread::sleep(PERIOD);
                    let slept = t0.elapsed();
                    let at_ns = clock.at(t0);
                    if at_ns >= until_ns {
                        break;
                    }
                    if at_ns >= from_ns {
                        rec.record(slept.saturating_sub(PERIOD).as_micros() as u64);
                    }
                }
                rec.summary()
            })
            .ok()?;
        Some(HiccupProbe { stop, handle })
    }

    /// Stop the probe (within one sleep) and return its figures.
    pub fn finish(self) -> Hiccups {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overruns_past_the_limit_are_stalls() {
        let mut r = Recorder::new();
        for _ in 0..980 {
            r.record(60);
        }
        for _ in 0..19 {
            r.record(400);
        }
        r.record(40_000);
        let h = r.summary();
        assert_eq!(h.samples, 1000);
        assert!((h.p99_ms - 0.4).abs() < 0.001, "{h:?}");
        assert!((h.max_ms - 40.0).abs() < 0.1, "{h:?}");
        assert_eq!(h.stalls, 1);
        assert!((h.stalled_ms - 40.0).abs() < 0.001, "{h:?}");
        let names: Vec<_> = h.metrics().into_iter().map(|m| m.name).collect();
        assert_eq!(
            names,
            [
                "runner_hiccup_p99_ms",
                "runner_hiccup_max_ms",
                "runner_stalls",
                "runner_stalled_ms"
            ]
        );
        assert_eq!(
            h.describe().unwrap(),
            "the runner stalled: 1 time its host ran it more than 5 ms late (longest 40.0 ms, 40.0 ms in all)"
        );
    }

    #[test]
    fn exactly_the_limit_is_no_stall_and_nothing_measured_stores_nothing() {
        let mut r = Recorder::new();
        r.record(5_000);
        let h = r.summary();
        assert_eq!(h.stalls, 0);
        assert_eq!(h.describe(), None);
        assert!(Recorder::new().summary().metrics().is_empty());
    }

    #[test]
    fn a_probe_stops_when_asked_and_measures_only_its_window() {
        let clock = Clock::new();
        // A window that has already passed: nothing is measured, and the thread ends by itself.
        let past = clock.now_ns() - 1;
        let p = HiccupProbe::start(clock, past - 10, past).unwrap();
        assert_eq!(p.finish(), Hiccups::default());
        // A window far ahead: finish stops it before it measures anything.
        let later = clock.now_ns() + 3_600_000_000_000;
        let p = HiccupProbe::start(clock, later, later + 1).unwrap();
        assert_eq!(p.finish(), Hiccups::default());
    }
}
