//! The provenance block of reports (what ran each run: hardware, software, the service's own
//! version) and `compare`'s check that both sides ran on the same hardware.

use super::model::{CampaignAnalysis, RunAnalysis};
use super::svg::esc;
use crate::model::Facts;
use std::collections::BTreeMap;
use std::fmt::Write;

/// One line: `Intel Xeon … (16 CPUs), 62 GiB, Linux 6.8, 1× NVIDIA H200 141 GiB (driver 550,
/// CUDA 12.4), PostgreSQL 15.4`. Empty when nothing was recorded.
pub fn summary_line(f: &Facts) -> String {
    let mut parts = Vec::new();
    if let Some(m) = f.get("cpu.model") {
        parts.push(match f.get("cpu.count") {
            Some(n) => format!("{m} ({n} CPUs)"),
            None => m.clone(),
        });
    }
    if let Some(g) = f.get("memory.total_gib") {
        parts.push(format!("{g} GiB RAM"));
    }
    if let Some(k) = f.get("kernel") {
        parts.push(format!("Linux {k}"));
    }
    let gpus: Vec<&String> = f
        .iter()
        .filter(|(k, _)| k.starts_with("gpu") && k.ends_with(".name"))
        .map(|(_, v)| v)
        .collect();
    if let Some(first) = gpus.first() {
        let mem = f
            .get("gpu0.memory_bytes")
            .and_then(|b| b.parse::<f64>().ok())
            .map(|b| format!(" {:.0} GiB", b / (1u64 << 30) as f64))
            .unwrap_or_default();
        let mut s = format!("{}× {first}{mem}", gpus.len());
        let drv: Vec<String> = [("driver", "gpu.driver"), ("CUDA", "gpu.cuda")]
            .iter()
            .filter_map(|(l, k)| f.get(*k).map(|v| format!("{l} {v}")))
            .collect();
        if !drv.is_empty() {
            let _ = write!(s, " ({})", drv.join(", "));
        }
        parts.push(s);
    }
    if let Some(t) = f.get("fs.type") {
        parts.push(format!(
            "{} on {t}",
            f.get("fs.mount").map(String::as_str).unwrap_or("?")
        ));
    }
    let svc = [
        f.get("service.product"),
        f.get("service.version"),
        f.get("service.server")
            .filter(|_| !f.contains_key("service.version")),
    ]
    .into_iter()
    .flatten()
    .map(String::as_str)
    .collect::<Vec<_>>()
    .join(" ");
    if !svc.is_empty() {
        parts.push(format!("service: {svc}"));
    }
    parts.join(", ")
}

/// The HTML provenance block of one run: every recorded fact.
pub fn html_block(r: &RunAnalysis) -> String {
    let f = &r.provenance.system;
    if f.is_empty() {
        return "<p class=\"note\">No hardware/software provenance recorded (file older than schema 2).</p>".into();
    }
    let mut h = String::from("<details class=\"provenance\" open><summary>Provenance: ");
    h.push_str(&esc(&summary_line(f)));
    if let Some(fp) = &r.provenance.hardware_fingerprint {
        let _ = write!(h, " <small>(hardware {})</small>", esc(fp));
    }
    h.push_str("</summary><table class=\"kv\">");
    for (k, v) in f {
        let _ = write!(
            h,
            "<tr><th>{}</th><td><code>{}</code></td></tr>",
            esc(k),
            esc(v)
        );
    }
    h.push_str("</table></details>");
    h
}

/// `# run ID system: …` comment lines (CSV, Prometheus).
pub fn comment_lines(runs: &[RunAnalysis]) -> String {
    let mut s = String::new();
    for r in runs {
        if r.provenance.system.is_empty() {
            continue;
        }
        let _ = writeln!(
            s,
            "# run {} system: {}{}",
            r.run_id,
            summary_line(&r.provenance.system).replace('\n', " "),
            r.provenance
                .hardware_fingerprint
                .as_deref()
                .map(|f| format!(" [hardware {f}]"))
                .unwrap_or_default()
        );
    }
    s
}

/// Distinct hardware of a campaign: fingerprint → summary line.
pub fn hardware_of(a: &CampaignAnalysis) -> BTreeMap<String, String> {
    a.runs
        .iter()
        .filter_map(|r| {
            let fp = r.provenance.hardware_fingerprint.clone()?;
            Some((fp, summary_line(&r.provenance.system)))
        })
        .collect()
}

/// Warnings when two campaigns ran on different hardware (or one side records none).
pub fn hardware_warnings(base: &CampaignAnalysis, cand: &CampaignAnalysis) -> Vec<String> {
    let (b, c) = (hardware_of(base), hardware_of(cand));
    let mut out = Vec::new();
    if b.is_empty() || c.is_empty() {
        if b.is_empty() != c.is_empty() {
            out.push(format!(
                "only the {} records its hardware: cannot tell whether both ran on the same hardware",
                if b.is_empty() { "candidate" } else { "baseline" }
            ));
        }
        return out;
    }
    if b.keys().ne(c.keys()) {
        let side = |m: &BTreeMap<String, String>| {
            m.iter()
                .map(|(k, v)| format!("[{k}] {v}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        out.push(format!(
            "the two sides ran on different hardware: baseline {} — candidate {}",
            side(&b),
            side(&c)
        ));
    }
    out
}
