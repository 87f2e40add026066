//! The service node's GPU samples (`store::service_node`, written in a multi-node job whose
//! runners sample no GPU) attached to the service aggregate whose measured window they cover:
//! the GPUs' energy over that window, per successful request and per output token of all client
//! nodes together.

use super::model::{CampaignAnalysis, ServiceNodeTelemetry};
use crate::store::service_node;
use std::path::{Path, PathBuf};

/// Attach every service-node samples file beside the analysed campaign files to its service
/// aggregate (same service, readings inside the aggregate's measured window).
pub fn attach(a: &mut CampaignAnalysis, files: &[PathBuf]) {
    let mut dirs: Vec<&Path> = files.iter().filter_map(|f| f.parent()).collect();
    dirs.sort();
    dirs.dedup();
    let sampled: Vec<_> = dirs
        .into_iter()
        .flat_map(service_node::files_in)
        .filter_map(|p| service_node::read(&p))
        .collect();
    if sampled.is_empty() {
        return;
    }
    for agg in &mut a.services {
        let windows = a
            .runs
            .iter()
            .filter(|r| agg.run_ids.contains(&r.run_id))
            .map(|r| {
                let end = r.measure_start_ns + (r.measured_duration_s * 1e9) as i64;
                (r.measure_start_ns, end)
            });
        let (Some(start), Some(end)) = (
            windows.clone().map(|w| w.0).min(),
            windows.map(|w| w.1).max(),
        ) else {
            continue;
        };
        let covering = sampled.iter().find(|s| {
            s.header.service == agg.service
                && s.series.iter().any(|(_, pts)| {
                    pts.iter().filter(|(t, _)| *t >= start && *t <= end).count() >= 2
                })
        });
        let Some(s) = covering else { continue };
        let (_, _, energy) =
            super::samples::summarize_samples(&s.series, start, end, agg.total.ok, None);
        let output_tokens = agg.llm.as_ref().map_or(0, |l| l.output_tokens);
        let energy = energy.map(|mut e| {
            e.energy_per_output_token_j =
                (output_tokens > 0).then(|| e.total_energy_j / output_tokens as f64);
            e
        });
        agg.service_node = Some(ServiceNodeTelemetry {
            node: s.header.node.clone(),
            gpus: s.header.gpus,
            energy,
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::store::service_node::{Header, Reading, Writer, SUFFIX};

    /// Two client nodes' run files and the service node's GPU samples: the aggregate gets the
    /// GPU energy over its window (readings outside it do not count), per successful request
    /// of both nodes together.
    #[test]
    fn service_node_energy_is_attached_to_the_aggregate() {
        let t = tempfile::tempdir().unwrap();
        let runs = t.path().join("runs");
        std::fs::create_dir_all(&runs).unwrap();
        for node in ["n1", "n2"] {
            crate::store::campaign::write_test_run(
                &runs.join(format!("s-7-{node}.db")),
                &format!("run-{node}"),
                "7",
                None,
                10,
            );
        }
        let mut w = Writer::create(
            &runs.join(format!("s-7{SUFFIX}")),
            &Header {
                service: "s".into(),
                node: "gpu1".into(),
                gpus: 1,
            },
        )
        .unwrap();
        // The fixture runs measure from 1 s to 4 s (epoch ns); 1 reading before, 1 after.
        for (t_s, joules) in [
            (0.5, 0.0),
            (1.0, 100.0),
            (2.5, 250.0),
            (4.0, 400.0),
            (9.0, 900.0),
        ] {
            w.reading(&Reading {
                t_ns: (t_s * 1e9) as i64,
                name: "gpu0_energy_joules".into(),
                value: joules,
            })
            .unwrap();
        }
        drop(w);
        let a = crate::report::analysis::analyze_path(t.path()).unwrap();
        assert_eq!(a.services.len(), 1, "{:?}", a.services);
        let agg = &a.services[0];
        assert_eq!(agg.run_ids.len(), 2);
        let sn = agg.service_node.as_ref().expect("service node attached");
        assert_eq!((sn.node.as_str(), sn.gpus), ("gpu1", 1));
        let e = sn.energy.as_ref().unwrap();
        assert!((e.total_energy_j - 300.0).abs() < 1e-9, "{e:?}");
        let per_request = e.energy_per_request_j.unwrap();
        assert!((per_request - 300.0 / agg.total.ok as f64).abs() < 1e-9);
        assert_eq!(agg.total.ok, 20);
        // The text and HTML reports show it, saying where it was sampled.
        let mut shown = a.clone();
        // Two synthetic sweep points beside it: an LLM's (per output token) and one whose
        // window held no energy reading.
        let mut llm = agg.clone();
        llm.sweep_param = Some("model".into());
        llm.sweep_value = Some("m-8b".into());
        let sn = llm.service_node.as_mut().unwrap();
        sn.gpus = 2;
        let e = sn.energy.as_mut().unwrap();
        e.energy_per_output_token_j = Some(e.total_energy_j / 1200.0);
        let mut none = agg.clone();
        none.sweep_param = Some("model".into());
        none.sweep_value = Some("m-70b".into());
        none.service_node.as_mut().unwrap().energy = None;
        shown.services.extend([llm, none]);
        insta::assert_snapshot!(
            "service_node_text",
            crate::report::text::service_node_lines(&shown.services)
        );
        let doc = crate::report::document::ReportDocument::new(shown, t.path());
        let text = crate::report::text::to_summary(&doc);
        assert!(
            text.contains("GPUs sampled on the service node (NVML)")
                && text.contains("  s: node gpu1, 1 GPU: 300 J, 15 J per request"),
            "{text}"
        );
        let html = crate::report::html::to_html(&doc);
        let from = html
            .find("<h2 id=\"service-node\">")
            .expect("service node section");
        let to = from + html[from..].find("</table>").unwrap() + "</table>".len();
        insta::assert_snapshot!(
            "service_node_html",
            html[from..to].replace("<tr>", "\n<tr>")
        );
        // A report without such a file has none, and no section.
        std::fs::remove_file(runs.join(format!("s-7{SUFFIX}"))).unwrap();
        let a = crate::report::analysis::analyze_path(t.path()).unwrap();
        assert!(a.services[0].service_node.is_none());
        let doc = crate::report::document::ReportDocument::new(a.clone(), t.path());
        assert!(!crate::report::html::to_html(&doc).contains("service-node"));
        assert!(!crate::report::text::to_summary(&doc).contains("service node"));
    }
}
