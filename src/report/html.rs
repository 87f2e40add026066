//! One self-contained HTML file: inline CSS and SVG, no script, no external resource.

use super::analysis::{RunAnalysis, ServiceAggregate, Summary, TokenSource};
use super::document::ReportDocument;
use super::integrity;
use super::svg::{self, bar_chart, esc, fmt_num, histogram_chart, line_chart, Axis, Series};
use minijinja::{Environment, Value};
use serde::Serialize;
use std::sync::OnceLock;

const CSS: &str = include_str!("report.css");

/// The report's templates (`templates/report/`), embedded in the binary.
const TEMPLATES: [(&str, &str); 3] = [
    (
        "report.html.j2",
        include_str!("../../templates/report/report.html.j2"),
    ),
    (
        "run.html.j2",
        include_str!("../../templates/report/run.html.j2"),
    ),
    (
        "macros.html.j2",
        include_str!("../../templates/report/macros.html.j2"),
    ),
];

/// A template file as minijinja reads it: each line without its indentation and line break
/// (the files are indented for reading; the page has no whitespace between its tags).
fn compact(source: &str) -> String {
    source.lines().map(str::trim_start).collect()
}

/// The template environment, built once: no automatic escaping (text goes through `esc`,
/// the same escaping the SVG charts use), the report's number filters.
fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            env.add_template_owned(name, compact(source))
                .unwrap_or_else(|e| panic!("built-in template {name}: {e:#}"));
        }
        env.add_filter("esc", |s: &str| esc(s));
        env.add_filter("num", fmt_num);
        env.add_filter("pct", pct);
        env.add_filter("opt", |v: Option<f64>| opt(v));
        env.add_filter("opt_text", |v: Option<String>| {
            v.unwrap_or_else(|| "–".into())
        });
        env
    })
}

fn opt(v: Option<f64>) -> String {
    v.map(fmt_num).unwrap_or_else(|| "–".into())
}

fn pct(v: f64) -> String {
    format!("{}%", fmt_num(v * 100.0))
}

/// What the templates get beside the analysis itself.
#[derive(Serialize)]
struct Page<'a> {
    a: &'a super::analysis::CampaignAnalysis,
    p: &'a super::document::ReportProvenance,
    schema_version: u32,
    marker: &'static str,
    placeholder: &'static str,
    css: &'static str,
    capacity: String,
    service_charts: String,
    sweep_charts: String,
    /// The service aggregates whose service node's GPUs were sampled.
    service_nodes: Vec<ServiceNodeView<'a>>,
    runs: Vec<RunPage<'a>>,
}

/// One service aggregate's service-node GPU telemetry.
#[derive(Serialize)]
struct ServiceNodeView<'a> {
    service: &'a str,
    /// `param=value` of a sweep point.
    sweep: Option<String>,
    telemetry: &'a super::model::ServiceNodeTelemetry,
}

#[derive(Serialize)]
struct RunPage<'a> {
    r: &'a RunAnalysis,
    v: RunView,
}

/// One run's figures that the template shows as prepared text or markup.
#[derive(Serialize)]
struct RunView {
    gates: Vec<GateView>,
    provenance: String,
    /// The load generator's cost per request and ceiling, one line.
    generator_cost: String,
    /// The runner's own stalls (`runner::hiccup`), one line; empty when not measured.
    runner_stalls: String,
    charts: String,
    token_source: &'static str,
    llm_charts: String,
    telemetry_charts: String,
    samples: Vec<SampleView>,
    /// The resolved recipe, pretty JSON.
    recipe: String,
}

#[derive(Serialize)]
struct GateView {
    passed: bool,
    gate: String,
    measured: String,
    limit: String,
}

/// A telemetry sample's figures, bytes in binary units (MiB, GiB) as in the charts.
#[derive(Serialize)]
struct SampleView {
    name: String,
    count: u64,
    min: String,
    mean: String,
    max: String,
    last: String,
}

pub fn to_html(d: &ReportDocument) -> String {
    let a = &d.analysis;
    let page = Page {
        a,
        p: &d.provenance,
        schema_version: d.schema_version,
        marker: integrity::MARKER,
        placeholder: integrity::PLACEHOLDER,
        css: CSS,
        capacity: super::capacity::html_section(&a.capacity),
        service_charts: service_charts(&a.services),
        sweep_charts: sweep_charts(&a.services),
        service_nodes: a
            .services
            .iter()
            .filter_map(|s| {
                Some(ServiceNodeView {
                    service: &s.service,
                    sweep: s
                        .sweep_param
                        .as_ref()
                        .zip(s.sweep_value.as_ref())
                        .map(|(p, v)| format!("{p}={v}")),
                    telemetry: s.service_node.as_ref()?,
                })
            })
            .collect(),
        runs: a
            .runs
            .iter()
            .map(|r| RunPage { r, v: run_view(r) })
            .collect(),
    };
    let html = environment()
        .get_template("report.html.j2")
        .and_then(|t| t.render(Value::from_serialize(&page)))
        .unwrap_or_else(|e| panic!("HTML report template: {e:#}"));
    integrity::seal(html)
}

/// With two or more services: their latency and throughput side by side.
fn service_charts(services: &[ServiceAggregate]) -> String {
    if services.len() < 2 {
        return String::new();
    }
    let cats: Vec<String> = services.iter().map(service_label).collect();
    let corrected = |q: fn(&Summary) -> f64| -> Vec<f64> {
        services
            .iter()
            .map(|s| s.total.latency_corrected_ms.as_ref().map(q).unwrap_or(0.0))
            .collect()
    };
    let tput: Vec<f64> = services
        .iter()
        .map(|s| s.total.throughput_ops_per_s)
        .collect();
    let mut h = String::from("<div class=\"charts\">");
    h.push_str(&bar_chart(
        "Corrected latency by service",
        Axis::lin("latency (ms)"),
        &cats,
        &[
            ("p50".into(), corrected(|x| x.p50)),
            ("p99".into(), corrected(|x| x.p99)),
        ],
    ));
    h.push_str(&bar_chart(
        "Throughput by service",
        Axis::lin("successful requests/s"),
        &cats,
        &[("ops/s".into(), tput)],
    ));
    h.push_str("</div>");
    h
}

/// For a service measured at two or more sweep points: the latency/throughput curve.
fn sweep_charts(services: &[ServiceAggregate]) -> String {
    let mut h = String::new();
    let mut names: Vec<&str> = services
        .iter()
        .filter(|s| s.sweep_value.is_some())
        .map(|s| s.service.as_str())
        .collect();
    names.dedup();
    let mut any = false;
    for name in names {
        let mut pts: Vec<&ServiceAggregate> = services
            .iter()
            .filter(|s| s.service == name && s.total.latency_corrected_ms.is_some())
            .collect();
        if pts.len() < 2 {
            continue;
        }
        pts.sort_by(|a, b| {
            a.total
                .throughput_ops_per_s
                .total_cmp(&b.total.throughput_ops_per_s)
        });
        if !any {
            h.push_str("<h3>Sweeps</h3><div class=\"charts\">");
            any = true;
        }
        let series = |label: &str, q: fn(&Summary) -> f64| Series {
            name: label.into(),
            points: pts
                .iter()
                .filter_map(|s| {
                    let l = s.total.latency_corrected_ms.as_ref()?;
                    Some((s.total.throughput_ops_per_s, q(l)))
                })
                .collect(),
        };
        h.push_str(&line_chart(
            &format!(
                "{name}: corrected latency vs throughput over the {} sweep",
                pts[0].sweep_param.as_deref().unwrap_or("sweep")
            ),
            Axis::lin("throughput (successful requests/s)"),
            Axis::lin("latency (ms)"),
            &[series("p50", |l| l.p50), series("p99", |l| l.p99)],
        ));
    }
    if any {
        h.push_str("</div>");
    }
    h
}

fn service_label(s: &ServiceAggregate) -> String {
    match &s.sweep_value {
        Some(v) => format!("{} @{v}", s.service),
        None => s.service.clone(),
    }
}

/// What the run template shows as prepared text or markup.
fn run_view(r: &RunAnalysis) -> RunView {
    RunView {
        gates: r
            .gates
            .iter()
            .map(|g| {
                let (measured, limit) = g.describe();
                GateView {
                    passed: g.passed,
                    gate: g.gate.clone(),
                    measured,
                    limit,
                }
            })
            .collect(),
        provenance: super::provenance::html_block(r),
        generator_cost: r
            .generator_cost
            .as_ref()
            .map(|c| c.describe())
            .unwrap_or_default(),
        runner_stalls: runner_stalls(r),
        charts: run_charts(r),
        token_source: match r.llm.as_ref().map(|l| l.tokens_source) {
            Some(TokenSource::Server) => "server-reported counts",
            Some(TokenSource::Client) => "counted by the client",
            Some(TokenSource::Mixed) => "partly server-reported, partly counted",
            Some(TokenSource::None) | None => "no token counts",
        },
        llm_charts: llm_charts(r),
        telemetry_charts: telemetry_charts(r),
        samples: r.samples.iter().map(sample_view).collect(),
        recipe: serde_json::to_string_pretty(&r.recipe).unwrap_or_default(),
    }
}

/// Throughput, latency over time, the latency CDF and histogram, and per operation.
fn run_charts(r: &RunAnalysis) -> String {
    let ts = &r.timeseries;
    let mut h = String::new();
    h.push_str(&line_chart(
        "Throughput over time",
        Axis::time(r.measured_duration_s),
        Axis::lin("successful requests/s"),
        &[
            Series {
                name: "ok/s".into(),
                points: ts.iter().map(|p| (p.t_s, p.throughput_ops_per_s)).collect(),
            },
            Series {
                name: "errors/s".into(),
                points: ts
                    .iter()
                    .map(|p| (p.t_s, p.errors as f64 / p.bucket_s))
                    .collect(),
            },
        ],
    ));
    h.push_str(&line_chart(
        "Corrected latency percentiles over time",
        Axis::time(r.measured_duration_s),
        Axis::lin("latency (ms)"),
        &[
            Series {
                name: "p50".into(),
                points: ts
                    .iter()
                    .filter_map(|p| p.latency_p50_ms.map(|v| (p.t_s, v)))
                    .collect(),
            },
            Series {
                name: "p99".into(),
                points: ts
                    .iter()
                    .filter_map(|p| p.latency_p99_ms.map(|v| (p.t_s, v)))
                    .collect(),
            },
        ],
    ));
    h.push_str(&line_chart(
        "Corrected latency CDF",
        Axis::log("latency (ms)"),
        Axis::lin("fraction of requests ≤ latency"),
        &[Series {
            name: "CDF".into(),
            points: r
                .latency_cdf_ms
                .iter()
                .map(|c| (c.value, c.quantile))
                .collect(),
        }],
    ));
    h.push_str(&histogram_chart(
        "Corrected latency histogram",
        "latency (ms), log scale",
        &r.latency_histogram_ms
            .iter()
            .map(|b| (b.upper, b.count))
            .collect::<Vec<_>>(),
    ));
    if r.operations.len() > 1 {
        let cats: Vec<String> = r.operations.iter().map(|o| o.op.clone()).collect();
        let get = |q: fn(&Summary) -> f64| -> Vec<f64> {
            r.operations
                .iter()
                .map(|o| o.latency_corrected_ms.as_ref().map(q).unwrap_or(0.0))
                .collect()
        };
        h.push_str(&bar_chart(
            "Per-operation corrected latency",
            Axis::lin("latency (ms)"),
            &cats,
            &[
                ("p50".into(), get(|s| s.p50)),
                ("p99".into(), get(|s| s.p99)),
            ],
        ));
        h.push_str(&bar_chart(
            "Per-operation throughput",
            Axis::lin("successful requests/s"),
            &cats,
            &[(
                "ops/s".into(),
                r.operations
                    .iter()
                    .map(|o| o.throughput_ops_per_s)
                    .collect(),
            )],
        ));
    }
    h
}

/// The LLM charts: TTFT and per-request token rate distributions, output tokens over time.
fn llm_charts(r: &RunAnalysis) -> String {
    let Some(l) = &r.llm else {
        return String::new();
    };
    let ts = &r.timeseries;
    let mut h = String::new();
    h.push_str(&histogram_chart(
        "TTFT distribution",
        "time to first token (ms), log scale",
        &l.ttft_histogram_ms
            .iter()
            .map(|b| (b.upper, b.count))
            .collect::<Vec<_>>(),
    ));
    h.push_str(&histogram_chart(
        "Per-request output token rate",
        "output tokens/s, log scale",
        &l.request_output_tokens_per_s_histogram
            .iter()
            .map(|b| (b.upper, b.count))
            .collect::<Vec<_>>(),
    ));
    h.push_str(&line_chart(
        "Output tokens/s over time",
        Axis::time(r.measured_duration_s),
        Axis::lin("output tokens/s"),
        &[Series {
            name: "output tokens/s".into(),
            points: ts.iter().map(|p| (p.t_s, p.output_tokens_per_s)).collect(),
        }],
    ));
    h
}

/// One chart per unit family of the telemetry series (gpu*_util_percent together, ...).
fn telemetry_charts(r: &RunAnalysis) -> String {
    let mut h = String::new();
    // One chart per unit family (gpu*_util_percent together, *_power_watts together, ...).
    let mut families: Vec<(String, Vec<&svg_series::S>)> = Vec::new();
    let all: Vec<svg_series::S> = r
        .sample_series
        .iter()
        .map(|s| svg_series::S {
            name: s.name.clone(),
            pts: s.points.iter().map(|p| (p.t_s, p.value)).collect(),
        })
        .collect();
    for s in &all {
        let fam = svg_series::family(&s.name);
        match families.iter_mut().find(|(k, _)| *k == fam) {
            Some((_, v)) => v.push(s),
            None => families.push((fam, vec![s])),
        }
    }
    for (fam, ss) in families {
        // Byte series (memory, filesystem) in binary units, not raw byte counts.
        let per_s = fam.ends_with("_bytes_per_s");
        let (div, unit) = if fam.ends_with("_bytes") || per_s {
            let max = ss
                .iter()
                .flat_map(|s| s.pts.iter().map(|p| p.1.abs()))
                .fold(0.0, f64::max);
            svg::byte_unit(max)
        } else {
            (1.0, "")
        };
        let series: Vec<Series> = ss
            .iter()
            .map(|s| Series {
                name: s.name.clone(),
                points: s.pts.iter().map(|&(t, v)| (t, v / div)).collect(),
            })
            .collect();
        let y_label = if unit.is_empty() {
            fam.clone()
        } else if per_s {
            format!("{} ({unit}/s)", fam.trim_end_matches("_bytes_per_s"))
        } else {
            format!("{} ({unit})", fam.trim_end_matches("_bytes"))
        };
        h.push_str(&line_chart(
            &format!("Telemetry: {fam}"),
            Axis::time(r.measured_duration_s),
            Axis::lin(&y_label),
            &series,
        ));
    }
    h
}

fn sample_view(s: &super::model::SampleSummary) -> SampleView {
    // Bytes in binary units (MiB, GiB), as in the charts.
    let bytes = s.name.ends_with("_bytes") || s.name.ends_with("_bytes_per_s");
    let (div, unit) = svg::byte_unit(s.max.abs().max(s.min.abs()));
    let g = |v: f64| {
        if bytes {
            format!("{} {unit}", fmt_num(v / div))
        } else {
            fmt_num(v)
        }
    };
    SampleView {
        name: s.name.clone(),
        count: s.count,
        min: g(s.min),
        mean: g(s.mean),
        max: g(s.max),
        last: g(s.last),
    }
}

mod svg_series {
    pub struct S {
        pub name: String,
        pub pts: Vec<(f64, f64)>,
    }

    /// `gpu0_util_percent` → `util_percent`: series sharing a unit share a chart.
    pub fn family(name: &str) -> String {
        let rest = name.split_once('_').map(|(_, r)| r).unwrap_or(name);
        if name.starts_with("gpu") {
            rest.to_string()
        } else {
            name.to_string()
        }
    }
}

#[allow(dead_code)]
fn _palette() -> &'static [&'static str] {
    &svg::PALETTE
}

/// The runner's own stalls as measured by its hiccup probe, or "" for a run without the figures.
fn runner_stalls(r: &RunAnalysis) -> String {
    let m = |name: &str| super::analysis::metric_value(&r.run_metrics, name);
    let (Some(p99), Some(max)) = (m("runner_hiccup_p99_ms"), m("runner_hiccup_max_ms")) else {
        return String::new();
    };
    let stalls = crate::runner::hiccup::describe_stalls(
        m("runner_stalls").unwrap_or(0.0),
        max,
        m("runner_stalled_ms").unwrap_or(0.0),
    );
    match stalls {
        Some(s) => format!(
            "{s}; latencies around those moments include the client's stall (hiccup p99 {p99:.2} ms)"
        ),
        None => format!(
            "none over {} ms (a 1 ms sleep overran by p99 {p99:.2} ms, at most {max:.2} ms)",
            crate::runner::hiccup::STALL_LIMIT_MS
        ),
    }
}
