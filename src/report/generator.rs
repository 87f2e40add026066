//! The load generator's own ceiling: what one core of the client node drives of this kind of
//! service, measured from the run's own CPU time (issue 27).
//!
//! Every run records the runner process's user and system CPU seconds over the run (setup,
//! warmup, measurement, drain; the recorder's thread included). Requests per CPU-second is then
//! the number of requests one fully used core drives for this kind, with this recipe's
//! payloads and connections. It includes the runner's fixed costs (its clock, the live view,
//! the pushes), so a run far below the ceiling gives a **lower bound** on it; a run that kept
//! the client's cores busy gives the ceiling itself. [`GeneratorCost::basis`] says which.
//!
//! A run that overlapped another run of the same host in the same campaign file (`run` with
//! several services in parallel) shared its process's CPU: it gets no figure.

use super::model::RunAnalysis;
pub use super::model::{CeilingBasis, GeneratorCost};
use crate::store::read as db;
use std::collections::BTreeMap;
use std::path::Path;

/// Fewest CPU seconds behind a figure (below it, process start-up dominates).
pub const MIN_CPU_S: f64 = 0.05;
/// A run whose generator used at least this share of the client's available cores measured
/// its ceiling, not a lower bound.
pub const NEAR_CEILING_UTILIZATION: f64 = 0.7;

impl GeneratorCost {
    /// One line for the terminal and text reports.
    pub fn describe(&self) -> String {
        let bound = match self.basis {
            CeilingBasis::NearCeiling => "",
            CeilingBasis::LowerBound => "at least ",
        };
        let node = match (self.cores, self.node_ceiling_rps) {
            (Some(c), Some(n)) => format!(
                "; this client node's {c} core{}: {bound}{} req/s",
                if c == 1 { "" } else { "s" },
                round_rate(n)
            ),
            _ => String::new(),
        };
        format!(
            "{} requests on {:.2} CPU-s = {:.0} µs each: one core drives {bound}{} req/s of this kind{node}",
            self.requests,
            self.cpu_s,
            self.cpu_us_per_request,
            round_rate(self.requests_per_core_s),
        )
    }
}

/// A rate to 3 significant digits, as a whole number.
pub fn round_rate(r: f64) -> String {
    if r <= 0.0 || !r.is_finite() {
        return "0".into();
    }
    let digits = r.log10().floor() as i32;
    let scale = 10f64.powi((digits - 2).max(0));
    format!("{:.0}", (r / scale).round() * scale)
}

/// The cost of one run, or `None` without CPU times, requests or enough CPU.
pub fn cost(run: &RunAnalysis) -> Option<GeneratorCost> {
    from_parts(
        run.total.requests + run.warmup_requests,
        run.cpu_user_s? + run.cpu_system_s?,
        available_cores(&run.provenance.system),
        (run.ended_ns - run.started_ns) as f64 / 1e9,
    )
}

fn from_parts(requests: u64, cpu_s: f64, cores: Option<u32>, wall_s: f64) -> Option<GeneratorCost> {
    if cpu_s < MIN_CPU_S || requests == 0 {
        return None;
    }
    let per_core = requests as f64 / cpu_s;
    let utilization = cores
        .filter(|_| wall_s > 0.0)
        .map(|c| cpu_s / wall_s / f64::from(c));
    Some(GeneratorCost {
        requests,
        cpu_s,
        cpu_us_per_request: cpu_s * 1e6 / requests as f64,
        requests_per_core_s: per_core,
        cores,
        node_ceiling_rps: cores.map(|c| per_core * f64::from(c)),
        utilization,
        basis: if utilization.is_some_and(|u| u >= NEAR_CEILING_UTILIZATION) {
            CeilingBasis::NearCeiling
        } else {
            CeilingBasis::LowerBound
        },
    })
}

fn available_cores(system: &BTreeMap<String, String>) -> Option<u32> {
    let get = |k: &str| system.get(k).and_then(|v| v.parse::<u32>().ok());
    get("cpu.available").or_else(|| get("cpu.count"))
}

/// Fill every run's [`RunAnalysis::generator_cost`], except runs that overlapped another run
/// of the same host (their process's CPU was shared).
pub fn attach(runs: &mut [RunAnalysis]) {
    let spans: Vec<(String, i64, i64)> = runs
        .iter()
        .map(|r| (r.provenance.host.clone(), r.started_ns, r.ended_ns))
        .collect();
    for (i, r) in runs.iter_mut().enumerate() {
        r.generator_cost = if shares_host(&spans, i) {
            None
        } else {
            cost(r)
        };
    }
}

/// Whether the span `i` overlaps another span of the same host.
pub fn shares_host(spans: &[(String, i64, i64)], i: usize) -> bool {
    let (host, from, to) = &spans[i];
    spans
        .iter()
        .enumerate()
        .any(|(j, (h, f, t))| j != i && h == host && f < to && from < t)
}

/// The latest measured cost of each service in a campaign file (by service name, with its run
/// id), read from the run rows and a count of their requests (no analysis of every request,
/// so that `explain` stays quick on a large file). Runs that shared their process are skipped.
pub fn latest_costs(path: &Path) -> anyhow::Result<BTreeMap<String, (String, GeneratorCost)>> {
    let conn = db::open_read_only(path)?;
    let mut out = BTreeMap::new();
    if !db::has_table(&conn, "runs") {
        return Ok(out);
    }
    let runs = db::list_runs(&conn)?;
    let spans: Vec<(String, i64, i64)> = runs
        .iter()
        .map(|r| (r.host.clone(), r.started_ns, r.ended_ns.unwrap_or(i64::MAX)))
        .collect();
    // Newest first: the latest run of a service with a figure wins, and the older ones are
    // not read (each costs a count of its requests).
    for (i, r) in runs.iter().enumerate().rev() {
        if out.contains_key(&r.service) {
            continue;
        }
        let (Some(user), Some(system), Some(ended)) = (r.cpu_user_s, r.cpu_system_s, r.ended_ns)
        else {
            continue;
        };
        if shares_host(&spans, i) {
            continue;
        }
        let cores = available_cores(&db::provenance(&conn, &r.run_id)?);
        let requests = db::request_count(&conn, &r.run_id)?;
        let wall_s = (ended - r.started_ns) as f64 / 1e9;
        if let Some(c) = from_parts(requests, user + system, cores, wall_s) {
            out.insert(r.service.clone(), (r.run_id.clone(), c));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_keep_three_digits() {
        assert_eq!(round_rate(12_345.0), "12300");
        assert_eq!(round_rate(987.6), "988");
        assert_eq!(round_rate(45.2), "45");
        assert_eq!(round_rate(0.0), "0");
    }

    #[test]
    fn a_busy_generator_measured_its_ceiling_an_idle_one_a_lower_bound() {
        // 10,000 requests on 2 CPU-s over 1.25 s of 2 cores: 80 % busy.
        let c = from_parts(10_000, 2.0, Some(2), 1.25).unwrap();
        assert_eq!(c.requests_per_core_s, 5000.0);
        assert_eq!(c.cpu_us_per_request, 200.0);
        assert_eq!(c.node_ceiling_rps, Some(10_000.0));
        assert_eq!(c.basis, CeilingBasis::NearCeiling);
        assert!(c.describe().contains("one core drives 5000 req/s"));
        // The same cost over 10 s: mostly idle, the ceiling is at least this.
        let c = from_parts(10_000, 2.0, Some(2), 10.0).unwrap();
        assert_eq!(c.basis, CeilingBasis::LowerBound);
        assert!(c.describe().contains("at least 5000 req/s"));
        assert!(from_parts(10, 0.01, Some(2), 1.0).is_none());
        assert!(from_parts(0, 1.0, Some(2), 1.0).is_none());
    }

    #[test]
    fn runs_that_overlap_on_one_host_shared_their_process() {
        let spans = vec![
            ("a".to_string(), 0, 10),
            ("a".to_string(), 5, 15),
            ("b".to_string(), 0, 10),
            ("a".to_string(), 20, 30),
        ];
        assert!(shares_host(&spans, 0) && shares_host(&spans, 1));
        assert!(!shares_host(&spans, 2) && !shares_host(&spans, 3));
    }
}
