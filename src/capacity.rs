//! Capacity search: the highest sustainable rate under a service's SLOs.
//!
//! A pure state machine (no I/O): the caller asks [`Search::next_rate`], runs one recorded run
//! at that total rate, judges it against the SLOs and feeds the verdict back with
//! [`Search::record`]. Phases:
//!
//! 1. **Ramp**: from `min_rate`, multiply by `ramp_factor` (capped at `max_rate`) until a step
//!    fails its SLOs. A failure at `min_rate` ends the search with no sustainable rate; a pass
//!    at `max_rate` ends it with `max_rate` (the limit of the search, not of the service).
//! 2. **Bisect** between the highest passing and the lowest failing rate, `bisect_steps`
//!    times (or until the bracket is narrower than 1 % of its upper end).
//! 3. **Confirm**: `repeats − 1` further runs at the answer (the bisection's run is the first),
//!    so that the report gives a cross-run interval of the throughput there.
//!
//! The answer assumes the response is monotone in the rate (a service that holds its SLOs at a
//! rate holds them at every lower one); a confirm repeat that fails says it was not.
//!
//! A step whose run the **load generator** limited (its own CPU fell behind the schedule, or
//! every connection was busy after the caller already raised the connections) is neither a
//! pass nor a service failure: [`Search::record_limited`] ends the search with
//! [`Outcome::GeneratorLimited`], the highest rate the service held so far and the rate the
//! generator could not offer, never a knee.

/// Search bounds and steps (recipe `capacity_search`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SearchSpec {
    /// Total requests/s of the first step.
    pub min_rate_per_s: f64,
    /// Highest total rate tried.
    pub max_rate_per_s: f64,
    /// Each ramp step multiplies the rate by this (> 1).
    pub ramp_factor: f64,
    /// Bisection steps after the ramp.
    pub bisect_steps: u32,
    /// Runs at the answer (≥ 1), for the cross-run interval.
    pub repeats: u32,
}

/// Which phase a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Ramp,
    Bisect,
    Confirm,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Ramp => "ramp",
            Phase::Bisect => "bisect",
            Phase::Confirm => "confirm",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        match s {
            "ramp" => Some(Phase::Ramp),
            "bisect" => Some(Phase::Bisect),
            "confirm" => Some(Phase::Confirm),
            _ => None,
        }
    }
}

/// One step taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub phase: Phase,
    pub rate_per_s: f64,
    pub passed: bool,
}

/// How the search ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Highest passing rate, and the lowest failing one above it (`None`: `max_rate` passed).
    Found {
        sustainable_rate_per_s: f64,
        first_failing_rate_per_s: Option<f64>,
    },
    /// Even `min_rate` failed.
    NoneSustainable,
    /// The load generator could not offer `limited_at_rate_per_s`: the service held its SLOs
    /// up to `held_rate_per_s` (if any step passed) and no service limit was found below the
    /// generator's. `first_failing_rate_per_s`: a lower rate where the service did fail, if any.
    GeneratorLimited {
        held_rate_per_s: Option<f64>,
        limited_at_rate_per_s: f64,
        first_failing_rate_per_s: Option<f64>,
    },
}

#[derive(Debug, Clone)]
pub struct Search {
    spec: SearchSpec,
    phase: Phase,
    steps: Vec<Step>,
    /// Highest passing rate seen in ramp/bisect.
    lo: Option<f64>,
    /// Lowest failing rate seen in ramp/bisect.
    hi: Option<f64>,
    bisected: u32,
    confirmed: u32,
    done: bool,
    /// The rate the generator could not offer (ends the search).
    limited_at: Option<f64>,
}

impl Search {
    pub fn new(spec: SearchSpec) -> Search {
        Search {
            spec,
            phase: Phase::Ramp,
            steps: Vec::new(),
            lo: None,
            hi: None,
            bisected: 0,
            confirmed: 0,
            done: false,
            limited_at: None,
        }
    }

    /// The step [`Search::next_rate`] proposed was limited by the load generator: no verdict
    /// on the service; the search ends (see the module doc).
    pub fn record_limited(&mut self) {
        let Some((phase, rate)) = self.next_rate() else {
            return;
        };
        self.steps.push(Step {
            phase,
            rate_per_s: rate,
            passed: false,
        });
        self.limited_at = Some(rate);
        self.done = true;
    }

    /// The next step: its phase and total rate; `None` when the search is over.
    pub fn next_rate(&self) -> Option<(Phase, f64)> {
        if self.done {
            return None;
        }
        let s = &self.spec;
        match self.phase {
            Phase::Ramp => Some((
                Phase::Ramp,
                match self.lo {
                    None => s.min_rate_per_s,
                    Some(lo) => (lo * s.ramp_factor).min(s.max_rate_per_s),
                },
            )),
            Phase::Bisect => {
                let (lo, hi) = (self.lo?, self.hi?);
                Some((Phase::Bisect, round_rate((lo + hi) / 2.0)))
            }
            Phase::Confirm => Some((Phase::Confirm, self.lo?)),
        }
    }

    /// Record the verdict of the step [`Search::next_rate`] proposed.
    pub fn record(&mut self, passed: bool) {
        let Some((phase, rate)) = self.next_rate() else {
            return;
        };
        self.steps.push(Step {
            phase,
            rate_per_s: rate,
            passed,
        });
        match phase {
            Phase::Ramp => {
                if passed {
                    self.lo = Some(rate);
                    if rate >= self.spec.max_rate_per_s {
                        self.start_confirm();
                    }
                } else {
                    self.hi = Some(rate);
                    if self.lo.is_none() {
                        self.done = true;
                    } else {
                        self.phase = Phase::Bisect;
                        self.after_bisect_step();
                    }
                }
            }
            Phase::Bisect => {
                if passed {
                    self.lo = Some(rate);
                } else {
                    self.hi = Some(rate);
                }
                self.bisected += 1;
                self.after_bisect_step();
            }
            Phase::Confirm => {
                self.confirmed += 1;
                if self.confirmed + 1 >= self.spec.repeats {
                    self.done = true;
                }
            }
        }
    }

    fn after_bisect_step(&mut self) {
        let (Some(lo), Some(hi)) = (self.lo, self.hi) else {
            return;
        };
        let narrow = (hi - lo) <= 0.01 * hi || round_rate((lo + hi) / 2.0) <= lo;
        if self.bisected >= self.spec.bisect_steps || narrow {
            self.start_confirm();
        }
    }

    fn start_confirm(&mut self) {
        if self.spec.repeats <= 1 {
            self.done = true;
        } else {
            self.phase = Phase::Confirm;
        }
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The result so far (final once [`Search::is_done`]).
    pub fn outcome(&self) -> Outcome {
        if let Some(at) = self.limited_at {
            return Outcome::GeneratorLimited {
                held_rate_per_s: self.lo,
                limited_at_rate_per_s: at,
                first_failing_rate_per_s: self.hi,
            };
        }
        match self.lo {
            None => Outcome::NoneSustainable,
            Some(lo) => Outcome::Found {
                sustainable_rate_per_s: lo,
                first_failing_rate_per_s: self.hi,
            },
        }
    }
}

/// Rates are kept to 3 significant decimals so that recorded values read cleanly.
fn round_rate(r: f64) -> f64 {
    (r * 1000.0).round() / 1000.0
}

/// Mean and the half-width of its two-sided 95 % Student-t interval (`None` half-width for
/// fewer than two values).
pub fn mean_interval(values: &[f64]) -> Option<(f64, Option<f64>)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return Some((mean, None));
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Some((mean, Some(t95(values.len() - 1) * (var / n).sqrt())))
}

/// Two-sided 95 % Student-t quantile (the 97.5 % quantile) for `df` degrees of freedom: exact
/// to 3 decimals up to 30, then the table's 40/60/120/∞ steps.
pub fn t95(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => T[df - 1],
        31..=60 => 2.000,
        61..=120 => 1.980,
        _ => 1.960,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SearchSpec {
        SearchSpec {
            min_rate_per_s: 1.0,
            max_rate_per_s: 1000.0,
            ramp_factor: 2.0,
            bisect_steps: 6,
            repeats: 3,
        }
    }

    /// Drive a search against a synthetic monotone service that holds its SLOs up to `cap`.
    fn drive(spec: SearchSpec, cap: f64) -> Search {
        let mut s = Search::new(spec);
        let mut guard = 0;
        while let Some((_, r)) = s.next_rate() {
            s.record(r <= cap);
            guard += 1;
            assert!(guard < 100, "search does not end");
        }
        s
    }

    #[test]
    fn bisection_brackets_a_monotone_capacity() {
        let s = drive(spec(), 37.0);
        let phases: Vec<(Phase, f64, bool)> = s
            .steps()
            .iter()
            .map(|x| (x.phase, x.rate_per_s, x.passed))
            .collect();
        // Ramp 1, 2, 4, ..., 32 pass, 64 fails; bisection in [32, 64].
        assert_eq!(phases[0], (Phase::Ramp, 1.0, true));
        assert_eq!(phases[5], (Phase::Ramp, 32.0, true));
        assert_eq!(phases[6], (Phase::Ramp, 64.0, false));
        assert_eq!(phases[7], (Phase::Bisect, 48.0, false));
        assert_eq!(phases[8], (Phase::Bisect, 40.0, false));
        assert_eq!(phases[9], (Phase::Bisect, 36.0, true));
        let Outcome::Found {
            sustainable_rate_per_s: lo,
            first_failing_rate_per_s: Some(hi),
        } = s.outcome()
        else {
            panic!("{:?}", s.outcome())
        };
        assert!(lo <= 37.0 && hi > 37.0, "{lo} {hi}");
        assert!(hi - lo <= 1.0, "6 halvings of 32 leave 0.5: {lo} {hi}");
        // Every step below the knee passed, every one above failed.
        for st in s.steps() {
            assert_eq!(st.passed, st.rate_per_s <= 37.0, "{st:?}");
        }
        // Two confirm repeats at the answer (the bisection's run is the first).
        let confirms: Vec<&Step> = s
            .steps()
            .iter()
            .filter(|x| x.phase == Phase::Confirm)
            .collect();
        assert_eq!(confirms.len(), 2);
        assert!(confirms.iter().all(|c| c.rate_per_s == lo));
    }

    #[test]
    fn edges_none_sustainable_and_max_reached() {
        let s = drive(spec(), 0.5);
        assert_eq!(s.outcome(), Outcome::NoneSustainable);
        assert_eq!(s.steps().len(), 1);
        let s = drive(
            SearchSpec {
                repeats: 1,
                ..spec()
            },
            5000.0,
        );
        assert_eq!(
            s.outcome(),
            Outcome::Found {
                sustainable_rate_per_s: 1000.0,
                first_failing_rate_per_s: None
            }
        );
        // 1, 2, ..., 512, then capped at 1000.
        assert_eq!(s.steps().last().unwrap().rate_per_s, 1000.0);
        assert_eq!(s.steps().len(), 11);
    }

    #[test]
    fn bisection_stops_when_the_bracket_is_narrow() {
        let s = drive(
            SearchSpec {
                min_rate_per_s: 10.0,
                max_rate_per_s: 20.0,
                ramp_factor: 1.5,
                bisect_steps: 50,
                repeats: 1,
            },
            17.3,
        );
        assert!(s.steps().len() < 20, "{}", s.steps().len());
        let Outcome::Found {
            sustainable_rate_per_s: lo,
            first_failing_rate_per_s: Some(hi),
        } = s.outcome()
        else {
            panic!()
        };
        assert!(lo <= 17.3 && hi > 17.3 && hi - lo <= 0.2, "{lo} {hi}");
    }

    #[test]
    fn a_generator_limited_step_is_no_knee() {
        // The service holds everything; the generator cannot offer more than 20/s.
        let mut s = Search::new(spec());
        while let Some((_, rate)) = s.next_rate() {
            if rate > 20.0 {
                s.record_limited();
            } else {
                s.record(true);
            }
        }
        assert_eq!(
            s.outcome(),
            Outcome::GeneratorLimited {
                held_rate_per_s: Some(16.0),
                limited_at_rate_per_s: 32.0,
                first_failing_rate_per_s: None,
            }
        );
        assert!(s.steps().iter().all(|x| x.rate_per_s <= 32.0));
    }

    #[test]
    fn interval_of_repeats() {
        let (m, h) = mean_interval(&[10.0, 12.0, 11.0]).unwrap();
        assert!((m - 11.0).abs() < 1e-12);
        // sd 1, n 3: 4.303 / sqrt(3)
        assert!((h.unwrap() - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert_eq!(mean_interval(&[5.0]), Some((5.0, None)));
        assert_eq!(mean_interval(&[]), None);
    }
}
