//! Node CPU, memory and network, and the runner's own CPU time, from /proc.
//!
//! The parsers take the file text so they are tested without a particular machine; the
//! sampler reads the real files once a second.

use super::expo::Exposition;
use std::time::Instant;

/// Aggregate CPU jiffies from the first line of /proc/stat: (busy, total).
pub fn parse_stat_cpu(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest is already in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// (MemTotal, MemTotal − MemAvailable) in bytes from /proc/meminfo.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| -> Option<u64> {
        let l = text.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = l.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    let total = field("MemTotal:")?;
    let avail = field("MemAvailable:")?;
    Some((total, total.saturating_sub(avail)))
}

/// Bytes received and transmitted over every interface but loopback, from /proc/net/dev.
pub fn parse_net_dev(text: &str) -> (u64, u64) {
    let mut rx = 0u64;
    let mut tx = 0u64;
    for line in text.lines().skip(2) {
        let Some((iface, rest)) = line.split_once(':') else {
            continue;
        };
        if iface.trim() == "lo" {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() >= 9 {
            rx += v[0];
            tx += v[8];
        }
    }
    (rx, tx)
}

/// utime + stime of /proc/self/stat, in clock ticks.
pub fn parse_self_stat(text: &str) -> Option<u64> {
    // The command name may hold spaces: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')' comes field 3 (state); utime is field 14, stime 15 → indexes 11, 12.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The latest node figures (what a push shows).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSnapshot {
    pub cpu_ratio: Option<f64>,
    pub mem_total_bytes: Option<u64>,
    pub mem_used_bytes: Option<u64>,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
    pub runner_cpu_s: Option<f64>,
}

impl NodeSnapshot {
    pub fn render(&self, e: &mut Exposition) {
        if let Some(c) = self.cpu_ratio {
            e.gauge(
                "node_cpu_utilization_ratio",
                "Share of the node's CPU time that was busy over the last second (0-1).",
                c,
            );
        }
        if let (Some(t), Some(u)) = (self.mem_total_bytes, self.mem_used_bytes) {
            e.gauge("node_memory_total_bytes", "Node memory.", t as f64);
            e.gauge(
                "node_memory_used_bytes",
                "Node memory in use (MemTotal - MemAvailable).",
                u as f64,
            );
        }
        e.counter(
            "node_network_receive_bytes_total",
            "Bytes received by the node's interfaces (loopback excluded).",
            self.net_rx_bytes as f64,
        );
        e.counter(
            "node_network_transmit_bytes_total",
            "Bytes sent by the node's interfaces (loopback excluded).",
            self.net_tx_bytes as f64,
        );
        if let Some(s) = self.runner_cpu_s {
            e.counter(
                "runner_cpu_seconds_total",
                "CPU time (user + system) used by the factorybench runner process.",
                s,
            );
        }
    }
}

/// Reads /proc once a second; rates come from the difference to the previous reading.
#[derive(Debug)]
pub struct ProcSampler {
    prev_cpu: Option<(u64, u64)>,
    prev_net: Option<(Instant, u64, u64)>,
    prev_self: Option<(Instant, u64)>,
    ticks_per_s: f64,
}

impl Default for ProcSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcSampler {
    pub fn new() -> Self {
        // SAFETY: sysconf has no preconditions.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        ProcSampler {
            prev_cpu: None,
            prev_net: None,
            prev_self: None,
            ticks_per_s: if t > 0 { t as f64 } else { 100.0 },
        }
    }

    /// Read /proc now: the snapshot to push and the named samples for SQLite.
    pub fn sample(&mut self) -> (NodeSnapshot, Vec<(String, f64)>) {
        let now = Instant::now();
        let mut snap = NodeSnapshot::default();
        let mut out = Vec::new();
        if let Some((busy, total)) = read("/proc/stat").as_deref().and_then(parse_stat_cpu) {
            if let Some((pb, pt)) = self.prev_cpu {
                if total > pt {
                    let r = (busy.saturating_sub(pb)) as f64 / (total - pt) as f64;
                    snap.cpu_ratio = Some(r);
                    out.push(("node_cpu_percent".to_string(), r * 100.0));
                }
            }
            self.prev_cpu = Some((busy, total));
        }
        if let Some((t, u)) = read("/proc/meminfo").as_deref().and_then(parse_meminfo) {
            snap.mem_total_bytes = Some(t);
            snap.mem_used_bytes = Some(u);
            out.push(("node_mem_used_bytes".to_string(), u as f64));
        }
        if let Some(text) = read("/proc/net/dev") {
            let (rx, tx) = parse_net_dev(&text);
            snap.net_rx_bytes = rx;
            snap.net_tx_bytes = tx;
            if let Some((t0, rx0, tx0)) = self.prev_net {
                let dt = (now - t0).as_secs_f64();
                if dt > 0.0 {
                    out.push((
                        "node_net_rx_bytes_per_s".to_string(),
                        rx.saturating_sub(rx0) as f64 / dt,
                    ));
                    out.push((
                        "node_net_tx_bytes_per_s".to_string(),
                        tx.saturating_sub(tx0) as f64 / dt,
                    ));
                }
            }
            self.prev_net = Some((now, rx, tx));
        }
        if let Some(ticks) = read("/proc/self/stat").as_deref().and_then(parse_self_stat) {
            snap.runner_cpu_s = Some(ticks as f64 / self.ticks_per_s);
            if let Some((t0, k0)) = self.prev_self {
                let dt = (now - t0).as_secs_f64();
                if dt > 0.0 {
                    let cpu_s = ticks.saturating_sub(k0) as f64 / self.ticks_per_s;
                    out.push(("runner_cpu_percent".to_string(), cpu_s / dt * 100.0));
                }
            }
            self.prev_self = Some((now, ticks));
        }
        (snap, out)
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "cpu  100 5 50 800 20 1 2 3 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(parse_stat_cpu(stat), Some((161, 981)));
        let mem = "MemTotal:       1000 kB\nMemFree:  10 kB\nMemAvailable:    400 kB\n";
        assert_eq!(parse_meminfo(mem), Some((1_024_000, 614_400)));
        let net = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes\n    lo: 500 5 0 0 0 0 0 0 500 5 0 0 0 0 0 0\n  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(net), (1000, 2000));
        let me = "1234 (factory bench) S 1 2 3 4 5 6 7 8 9 10 70 30 0 0 20 0 1";
        assert_eq!(parse_self_stat(me), Some(100));
    }

    #[test]
    fn samples_this_machine() {
        let mut s = ProcSampler::new();
        let (first, _) = s.sample();
        assert!(first.mem_total_bytes.unwrap_or(0) > 0);
        assert!(first.runner_cpu_s.is_some());
        let (snap, samples) = s.sample();
        let names: Vec<&str> = samples.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"node_mem_used_bytes"), "{names:?}");
        assert!(names.contains(&"runner_cpu_percent"), "{names:?}");
        let mut e = Exposition::new();
        snap.render(&mut e);
        assert!(e.as_str().contains("factorybench_node_memory_total_bytes "));
    }
}
