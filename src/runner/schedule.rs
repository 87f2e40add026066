//! Open-loop arrival schedules: when each request is due, as offsets from the start.
//!
//! The rate in a recipe is per client (`requests_per_second`); the engine drives the total
//! (`clients × target_rate_per_client_per_s`) as one process: `constant` spaces requests exactly
//! `1/total` apart, `poisson` draws exponential gaps with mean `1/total` (the superposition of
//! the clients' Poisson processes is a Poisson process at the total rate). The RNG is seeded,
//! so the same seed gives the same schedule.

use super::rng::Rng;
use crate::recipe::Arrival;

#[derive(Debug, Clone)]
pub struct Schedule {
    arrival: Arrival,
    rate_per_s: f64,
    rng: Rng,
    k: u64,
    next_s: f64,
}

impl Schedule {
    /// `total_rate_per_s` must be > 0 (closed loops have no schedule).
    pub fn new(arrival: Arrival, total_rate_per_s: f64, seed: u64) -> Schedule {
        Schedule {
            arrival,
            rate_per_s: total_rate_per_s.max(1e-9),
            // Stream u64::MAX is reserved for the schedule; per-request streams use the seq.
            rng: Rng::for_stream(seed, u64::MAX),
            k: 0,
            next_s: 0.0,
        }
    }

    /// Offset of the next request from the start of the run, in nanoseconds.
    pub fn next_offset_ns(&mut self) -> i64 {
        let t = match self.arrival {
            Arrival::Poisson => {
                let t = self.next_s;
                self.next_s += self.rng.exp(self.rate_per_s);
                t
            }
            // Computed from k, not accumulated, so there is no drift over long runs.
            _ => self.k as f64 / self.rate_per_s,
        };
        self.k += 1;
        (t * 1e9) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_schedule_is_repeatable() {
        for arrival in [Arrival::Constant, Arrival::Poisson] {
            let mut a = Schedule::new(arrival, 1000.0, 42);
            let mut b = Schedule::new(arrival, 1000.0, 42);
            let xa: Vec<i64> = (0..10_000).map(|_| a.next_offset_ns()).collect();
            let xb: Vec<i64> = (0..10_000).map(|_| b.next_offset_ns()).collect();
            assert_eq!(xa, xb);
            assert!(xa.windows(2).all(|w| w[0] <= w[1]));
        }
        let mut c = Schedule::new(Arrival::Poisson, 1000.0, 43);
        let mut a = Schedule::new(Arrival::Poisson, 1000.0, 42);
        let xa: Vec<i64> = (0..100).map(|_| a.next_offset_ns()).collect();
        let xc: Vec<i64> = (0..100).map(|_| c.next_offset_ns()).collect();
        assert_ne!(xa, xc, "another seed gives another schedule");
    }

    #[test]
    fn rates_are_right() {
        let mut c = Schedule::new(Arrival::Constant, 200.0, 1);
        let v: Vec<i64> = (0..3).map(|_| c.next_offset_ns()).collect();
        assert_eq!(v, vec![0, 5_000_000, 10_000_000]);
        let mut p = Schedule::new(Arrival::Poisson, 1000.0, 1);
        let mut last = 0;
        for _ in 0..100_000 {
            last = p.next_offset_ns();
        }
        // 100k arrivals at 1000/s take about 100 s (±1%: 3 sigma is 0.95%).
        let secs = last as f64 / 1e9;
        assert!((secs - 100.0).abs() < 1.0, "{secs}");
    }
}
