//! One self-contained HTML file: inline CSS and SVG, no script, no external resource.

use super::analysis::{OpStats, RunAnalysis, ServiceAggregate, Summary, TokenSource};
use super::document::ReportDocument;
use super::integrity;
use super::svg::{self, bar_chart, esc, fmt_num, histogram_chart, line_chart, Axis, Series};
use std::fmt::Write;

const CSS: &str = include_str!("report.css");

fn f(v: f64) -> String {
    fmt_num(v)
}

fn opt(v: Option<f64>) -> String {
    v.map(f).unwrap_or_else(|| "–".into())
}

fn sum_cells(s: Option<&Summary>) -> String {
    match s {
        Some(s) => format!(
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ± {}</td>",
            f(s.p50),
            f(s.p90),
            f(s.p95),
            f(s.p99),
            f(s.p999),
            f(s.max),
            f(s.mean),
            f(s.mean_ci95_high - s.mean)
        ),
        None => "<td colspan=\"7\">no successful requests</td>".into(),
    }
}

const SUM_HEAD: &str =
    "<th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th><th>mean ± 95% CI</th>";

pub fn to_html(d: &ReportDocument) -> String {
    let a = &d.analysis;
    let p = &d.provenance;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"factorybench-{}\" content=\"{}\">\
         <meta name=\"factorybench-schema-version\" content=\"{}\">\
         <title>factorybench report: {}</title><style>{CSS}</style></head><body>\n",
        integrity::MARKER,
        integrity::PLACEHOLDER,
        d.schema_version,
        esc(&a.campaign)
    );
    // Banner.
    if !a.valid {
        let _ = write!(
            h,
            "<div class=\"banner invalid\" id=\"verdict\"><strong>INVALID</strong>{}<ul>",
            if a.partial {
                " · <strong>PARTIAL</strong>"
            } else {
                ""
            }
        );
        for r in &a.runs {
            for x in &r.invalid_reasons {
                let _ = write!(
                    h,
                    "<li>{} ({}): {}</li>",
                    esc(&r.service),
                    esc(&r.run_id),
                    esc(&x.message)
                );
            }
        }
        if a.runs.is_empty() {
            h.push_str("<li>no runs recorded</li>");
        }
        h.push_str("</ul></div>\n");
    } else {
        h.push_str("<div class=\"banner valid\" id=\"verdict\"><strong>VALID</strong>: every run passed its validity gates.</div>\n");
    }
    let _ = writeln!(h, "<h1>{}</h1>", esc(&a.campaign));

    // Provenance.
    h.push_str("<h2>Provenance</h2><table class=\"kv\">");
    let mut kv = |k: &str, v: String| {
        let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), v);
    };
    kv("tool", format!("{} {}", esc(&p.tool), esc(&p.tool_version)));
    kv(
        "git commit",
        esc(p.git_commit.as_deref().unwrap_or("unknown")),
    );
    kv(
        "generated",
        format!("{} on {}", esc(&p.generated_at), esc(&p.generated_on_host)),
    );
    kv("campaign path", esc(&p.campaign_path));
    if let Some(r) = &p.campaign_recipe {
        kv(
            "recipe",
            format!("{} <code>sha256 {}</code>", esc(&r.path), esc(&r.sha256)),
        );
    }
    kv(
        "period",
        format!(
            "{} → {}",
            esc(p.started_at.as_deref().unwrap_or("–")),
            esc(p.ended_at.as_deref().unwrap_or("–"))
        ),
    );
    kv("SLURM job ids", esc(&p.slurm_job_ids.join(", ")));
    kv("hosts", esc(&p.hosts.join(", ")));
    kv("sources", esc(&a.sources.join(", ")));
    kv(
        "report sha256",
        format!(
            "<code>{}</code> (check with <code>factorybench verify</code>)",
            integrity::PLACEHOLDER
        ),
    );
    h.push_str("</table>\n");

    h.push_str(&super::capacity::html_section(&a.capacity));
    // Service summary.
    h.push_str("<h2>Services</h2><table><tr><th>service</th><th>kind</th><th>sweep</th><th>runs</th><th>valid</th><th>requests</th><th>errors</th><th>ops/s</th><th>MB/s</th><th>p50 ms</th><th>p99 ms</th><th>TTFT p99 ms</th><th>TPOT p99 ms</th><th>output tok/s</th><th>goodput</th></tr>");
    for s in &a.services {
        service_row(&mut h, s);
    }
    h.push_str("</table>\n");
    if a.services.len() > 1 {
        let cats: Vec<String> = a.services.iter().map(service_label).collect();
        let p50: Vec<f64> = a
            .services
            .iter()
            .map(|s| {
                s.total
                    .latency_corrected_ms
                    .as_ref()
                    .map(|x| x.p50)
                    .unwrap_or(0.0)
            })
            .collect();
        let p99: Vec<f64> = a
            .services
            .iter()
            .map(|s| {
                s.total
                    .latency_corrected_ms
                    .as_ref()
                    .map(|x| x.p99)
                    .unwrap_or(0.0)
            })
            .collect();
        h.push_str("<div class=\"charts\">");
        h.push_str(&bar_chart(
            "Corrected latency by service",
            Axis::lin("latency (ms)"),
            &cats,
            &[("p50".into(), p50), ("p99".into(), p99)],
        ));
        let tput: Vec<f64> = a
            .services
            .iter()
            .map(|s| s.total.throughput_ops_per_s)
            .collect();
        h.push_str(&bar_chart(
            "Throughput by service",
            Axis::lin("successful requests/s"),
            &cats,
            &[("ops/s".into(), tput)],
        ));
        h.push_str("</div>");
    }
    sweep_charts(&mut h, &a.services);

    for r in &a.runs {
        run_section(&mut h, r);
    }
    h.push_str("<footer>Figures are computed from the recorded requests; latency is over successful requests; corrected = done − scheduled, uncorrected = done − sent; percentiles are nearest-rank from HDR histograms (3 significant digits).</footer>\n</body></html>\n");
    integrity::seal(h)
}

/// For a service measured at two or more sweep points: the latency/throughput curve.
fn sweep_charts(h: &mut String, services: &[ServiceAggregate]) {
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
}

fn service_label(s: &ServiceAggregate) -> String {
    match &s.sweep_value {
        Some(v) => format!("{} @{v}", s.service),
        None => s.service.clone(),
    }
}
fn service_row(h: &mut String, s: &ServiceAggregate) {
    let l = s.llm.as_ref();
    let _ = write!(
        h,
        "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        if s.valid { "" } else { "bad" },
        esc(&s.service),
        esc(&s.service_kind),
        esc(&match (&s.sweep_param, &s.sweep_value) {
            (Some(p), Some(v)) => format!("{p}={v}"),
            _ => "–".into(),
        }),
        s.run_ids.len(),
        if s.valid { "yes" } else if s.partial { "PARTIAL" } else { "INVALID" },
        s.total.requests,
        s.total.errors,
        pct(s.total.error_rate),
        f(s.total.throughput_ops_per_s),
        f(s.total.throughput_mb_per_s),
        opt(s.total.latency_corrected_ms.as_ref().map(|x| x.p50)),
        opt(s.total.latency_corrected_ms.as_ref().map(|x| x.p99)),
        opt(l.and_then(|l| l.ttft_ms.as_ref()).map(|x| x.p99)),
        opt(l.and_then(|l| l.tpot_ms.as_ref()).map(|x| x.p99)),
        opt(l.map(|l| l.output_tokens_per_s)),
        l.and_then(|l| l.goodput.as_ref())
            .map(|g| pct(g.goodput_ratio))
            .unwrap_or_else(|| "–".into()),
    );
}

fn pct(v: f64) -> String {
    format!("{}%", fmt_num(v * 100.0))
}

fn op_rows(h: &mut String, ops: &[&OpStats], corrected: bool) {
    for o in ops {
        let s = if corrected {
            o.latency_corrected_ms.as_ref()
        } else {
            o.latency_uncorrected_ms.as_ref()
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}</tr>",
            esc(&o.op),
            o.requests,
            o.errors,
            f(o.throughput_ops_per_s),
            f(o.throughput_mb_per_s),
            sum_cells(s)
        );
    }
}

fn run_section(h: &mut String, r: &RunAnalysis) {
    let _ = write!(
        h,
        "<section class=\"run\" id=\"run-{id}\"><h2>{svc} <small>{kind} · run {id}{sweep}</small></h2>",
        id = esc(&r.run_id),
        svc = esc(&r.service),
        kind = esc(&r.service_kind),
        sweep = match (&r.sweep_param, &r.sweep_value) {
            (Some(p), Some(v)) => format!(" · {}={}", esc(p), esc(v)),
            _ => String::new(),
        }
    );
    if !r.valid {
        let _ = write!(
            h,
            "<div class=\"banner invalid small\"><strong>INVALID{}</strong><ul>",
            if r.partial { " · PARTIAL" } else { "" }
        );
        for x in &r.invalid_reasons {
            let _ = write!(h, "<li>{}</li>", esc(&x.message));
        }
        h.push_str("</ul></div>");
    }
    if !r.gates.is_empty() {
        h.push_str("<table class=\"gates\"><tr><th>validity gate</th><th>measured</th><th>limit</th><th>result</th></tr>");
        for g in &r.gates {
            let (m, l) = g.describe();
            let _ = write!(
                h,
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if g.passed { "pass" } else { "fail" },
                esc(&g.gate),
                esc(&m),
                esc(&l),
                if g.passed { "pass" } else { "FAIL" }
            );
        }
        h.push_str("</table>");
    }
    h.push_str("<table class=\"kv\">");
    let rows: Vec<(&str, String)> = vec![
        (
            "status",
            format!(
                "{}{}",
                esc(&r.status),
                r.stop_reason
                    .as_deref()
                    .map(|s| format!(" ({})", esc(s)))
                    .unwrap_or_default()
            ),
        ),
        (
            "host / SLURM job",
            format!(
                "{} / {}",
                esc(&r.provenance.host),
                esc(&r
                    .provenance
                    .slurm_job_id
                    .clone()
                    .map(|j| match r.provenance.slurm_array_task {
                        Some(t) => format!("{j}_{t}"),
                        None => j,
                    })
                    .unwrap_or_else(|| "–".into()))
            ),
        ),
        (
            "period",
            format!(
                "{} → {} (measured {} s, warmup {} s, {} warmup requests excluded)",
                esc(&r.started_at),
                esc(&r.ended_at),
                f(r.measured_duration_s),
                f(r.warmup_s),
                r.warmup_requests
            ),
        ),
        (
            "load",
            format!(
                "{} arrival, {} clients, target {} req/s, achieved {} req/s{}",
                esc(&r.arrival),
                r.clients,
                opt(r.rate.target_rate_rps),
                f(r.rate.achieved_rate_rps),
                r.rate
                    .achieved_ratio
                    .map(|x| format!(" ({})", pct(x)))
                    .unwrap_or_default()
            ),
        ),
        (
            "requests",
            format!(
                "{} ({} ok, {} errors = {})",
                r.total.requests,
                r.total.ok,
                r.total.errors,
                pct(r.total.error_rate)
            ),
        ),
        (
            "errors by class",
            if r.total.errors_by_class.is_empty() {
                "none".into()
            } else {
                r.total
                    .errors_by_class
                    .iter()
                    .map(|(k, v)| format!("{} {}", esc(k), v))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
        (
            "throughput",
            format!(
                "{} ops/s, {} MB/s",
                f(r.total.throughput_ops_per_s),
                f(r.total.throughput_mb_per_s)
            ),
        ),
        (
            "schedule lag",
            r.schedule_lag_ms
                .as_ref()
                .map(|s| {
                    format!(
                        "p50 {} ms, p99 {} ms, max {} ms",
                        f(s.p50),
                        f(s.p99),
                        f(s.max)
                    )
                })
                .unwrap_or_else(|| "–".into()),
        ),
        (
            "runner CPU",
            format!(
                "user {} s, system {} s",
                opt(r.cpu_user_s),
                opt(r.cpu_system_s)
            ),
        ),
        (
            "recipe sha256",
            format!("<code>{}</code>", esc(&r.provenance.recipe_sha256)),
        ),
        (
            "runner version",
            format!(
                "{} {}",
                esc(&r.provenance.tool_version),
                esc(r.provenance.git_commit.as_deref().unwrap_or(""))
            ),
        ),
    ];
    for (k, v) in rows {
        let _ = write!(h, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    h.push_str("</table>");
    h.push_str(&super::provenance::html_block(r));

    let ops: Vec<&OpStats> = std::iter::once(&r.total)
        .chain(r.operations.iter())
        .collect();
    for (corrected, title) in [
        (true, "Latency corrected (done − scheduled), ms"),
        (false, "Latency uncorrected (done − sent), ms"),
    ] {
        let _ = write!(h, "<h3>{title}</h3><table><tr><th>op</th><th>requests</th><th>errors</th><th>ops/s</th><th>MB/s</th>{SUM_HEAD}</tr>");
        op_rows(h, &ops, corrected);
        h.push_str("</table>");
    }

    h.push_str("<div class=\"charts\">");
    let ts = &r.timeseries;
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
    h.push_str("</div>");

    if let Some(l) = &r.llm {
        h.push_str("<h3>LLM</h3><table><tr><th>metric (ms)</th>");
        h.push_str(SUM_HEAD);
        h.push_str("</tr>");
        for (name, s) in [
            ("TTFT (from send)", l.ttft_ms.as_ref()),
            ("TTFT (from scheduled)", l.ttft_from_scheduled_ms.as_ref()),
            ("ITL", l.itl_ms.as_ref()),
            ("TPOT", l.tpot_ms.as_ref()),
            ("E2EL", l.e2el_ms.as_ref()),
        ] {
            let _ = write!(h, "<tr><td>{name}</td>{}</tr>", sum_cells(s));
        }
        h.push_str("</table><table class=\"kv\">");
        let _ = write!(
            h,
            "<tr><th>tokens</th><td>{} input, {} output ({}); {} successful requests with zero output</td></tr>\
             <tr><th>token throughput</th><td>{} output tokens/s, {} total tokens/s; per request p50 {} output tokens/s</td></tr>",
            l.input_tokens,
            l.output_tokens,
            match l.tokens_source {
                TokenSource::Server => "server-reported counts",
                TokenSource::Client => "counted by the client",
                TokenSource::Mixed => "partly server-reported, partly counted",
                TokenSource::None => "no token counts",
            },
            l.zero_output_requests,
            f(l.output_tokens_per_s),
            f(l.total_tokens_per_s),
            opt(l.request_output_tokens_per_s.as_ref().map(|s| s.p50)),
        );
        if let Some(g) = &l.goodput {
            let _ = write!(
                h,
                "<tr><th>goodput</th><td>{} of requests ({} good, {} req/s) meet TTFT ≤ {} ms, TPOT ≤ {} ms, E2EL ≤ {} ms</td></tr>",
                pct(g.goodput_ratio),
                g.good_requests,
                f(g.goodput_rps),
                opt(g.slo_ttft_ms),
                opt(g.slo_tpot_ms),
                opt(g.slo_e2el_ms)
            );
        }
        h.push_str("</table><div class=\"charts\">");
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
        h.push_str("</div>");
    }

    if !r.sample_series.is_empty() {
        h.push_str("<h3>Telemetry</h3><div class=\"charts\">");
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
        h.push_str("</div><table><tr><th>sample</th><th>count</th><th>min</th><th>mean</th><th>max</th><th>last</th></tr>");
        for s in &r.samples {
            // Bytes in binary units (MiB, GiB), as in the charts.
            let bytes = s.name.ends_with("_bytes") || s.name.ends_with("_bytes_per_s");
            let (div, unit) = svg::byte_unit(s.max.abs().max(s.min.abs()));
            let g = |v: f64| {
                if bytes {
                    format!("{} {unit}", fmt_num(v / div))
                } else {
                    f(v)
                }
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&s.name),
                s.count,
                g(s.min),
                g(s.mean),
                g(s.max),
                g(s.last)
            );
        }
        h.push_str("</table>");
    }
    if let Some(e) = &r.energy {
        let _ = write!(
            h,
            "<p>Energy over the measured window: {} J ({} J per request{}).</p>",
            f(e.total_energy_j),
            opt(e.energy_per_request_j),
            e.energy_per_output_token_j
                .map(|x| format!(", {} J per output token", f(x)))
                .unwrap_or_default()
        );
    }
    if !r.run_metrics.is_empty() {
        h.push_str("<h3>Run metrics</h3><table><tr><th>name</th><th>value</th><th>unit</th></tr>");
        for m in &r.run_metrics {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&m.name),
                f(m.value),
                esc(&m.unit)
            );
        }
        h.push_str("</table>");
    }
    let recipe = serde_json::to_string_pretty(&r.recipe).unwrap_or_default();
    let _ = writeln!(h, "<details><summary>Resolved recipe (secrets redacted)</summary><pre>{}</pre></details></section>", esc(&recipe));
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
