//! Prometheus text exposition format (version 0.0.4), written directly: it is a few lines per
//! family and avoids registering collectors in a registry for every push.
//!
//! Names follow the Prometheus conventions: `factorybench_` prefix, base units in the name
//! (`_seconds`, `_bytes`, `_ratio`, `_watts`, `_celsius`, `_hertz`, `_joules`), counters end in
//! `_total`.

use std::fmt::Write as _;

/// Every metric name pushed by factorybench starts with this.
pub const PREFIX: &str = "factorybench_";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
}

impl MetricType {
    fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

/// Cumulative histogram: `bounds[i]` is the upper bound (`le`, seconds) of `counts[i]`;
/// counts are cumulative (count of observations `<= bounds[i]`). `+Inf` is `count`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramData {
    pub bounds: Vec<f64>,
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

/// A text exposition being built. Families must not repeat: each `family` call writes the
/// `# HELP`/`# TYPE` header once, and its samples follow.
#[derive(Debug, Default)]
pub struct Exposition {
    buf: String,
    families: Vec<String>,
}

/// Label pairs of one sample (`&[("op", "read")]`).
pub type Labels<'a> = &'a [(&'a str, &'a str)];

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Start a family (`name` without the prefix). Writing the same family twice is a bug in
    /// the caller: the second header is skipped and samples are appended under the first.
    pub fn family(&mut self, name: &str, kind: MetricType, help: &str) -> &mut Self {
        let full = format!("{PREFIX}{name}");
        if !self.families.contains(&full) {
            let _ = writeln!(self.buf, "# HELP {full} {}", escape_help(help));
            let _ = writeln!(self.buf, "# TYPE {full} {}", kind.as_str());
            self.families.push(full);
        }
        self
    }

    /// One sample of the current family (`name` without the prefix, with any suffix).
    pub fn sample(&mut self, name: &str, labels: Labels<'_>, value: f64) -> &mut Self {
        self.buf.push_str(PREFIX);
        self.buf.push_str(name);
        write_labels(&mut self.buf, labels, None);
        self.buf.push(' ');
        push_value(&mut self.buf, value);
        self.buf.push('\n');
        self
    }

    /// A gauge family with a single unlabelled sample.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) -> &mut Self {
        self.family(name, MetricType::Gauge, help)
            .sample(name, &[], value)
    }

    /// A counter family with a single unlabelled sample (`name` ends in `_total`).
    pub fn counter(&mut self, name: &str, help: &str, value: f64) -> &mut Self {
        self.family(name, MetricType::Counter, help)
            .sample(name, &[], value)
    }

    /// The samples of one histogram series (`_bucket`, `_sum`, `_count`) of family `name`.
    pub fn histogram_series(
        &mut self,
        name: &str,
        labels: Labels<'_>,
        h: &HistogramData,
    ) -> &mut Self {
        let bucket = format!("{PREFIX}{name}_bucket");
        let mut le = String::new();
        for (bound, c) in h.bounds.iter().zip(&h.cumulative) {
            le.clear();
            push_value(&mut le, *bound);
            self.buf.push_str(&bucket);
            write_labels(&mut self.buf, labels, Some(&le));
            let _ = writeln!(self.buf, " {c}");
        }
        self.buf.push_str(&bucket);
        write_labels(&mut self.buf, labels, Some("+Inf"));
        let _ = writeln!(self.buf, " {}", h.count);
        self.sample(&format!("{name}_sum"), labels, h.sum);
        self.sample(&format!("{name}_count"), labels, h.count as f64);
        self
    }

    /// Append families rendered elsewhere with names of their own (the compatibility names of
    /// [`crate::compat`], which do not carry the `factorybench_` prefix).
    pub fn raw(&mut self, text: &str) -> &mut Self {
        self.buf.push_str(text);
        self
    }

    pub fn as_str(&self) -> &str {
        &self.buf
    }

    pub fn into_string(self) -> String {
        self.buf
    }
}

fn write_labels(buf: &mut String, labels: Labels<'_>, le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    buf.push('{');
    let mut first = true;
    for (k, v) in labels.iter().copied().chain(le.map(|l| ("le", l))) {
        if !first {
            buf.push(',');
        }
        first = false;
        buf.push_str(k);
        buf.push_str("=\"");
        for ch in v.chars() {
            match ch {
                '\\' => buf.push_str("\\\\"),
                '"' => buf.push_str("\\\""),
                '\n' => buf.push_str("\\n"),
                c => buf.push(c),
            }
        }
        buf.push('"');
    }
    buf.push('}');
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn push_value(buf: &mut String, v: f64) {
    if v.is_nan() {
        buf.push_str("NaN");
    } else if v.is_infinite() {
        buf.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v == v.trunc() && v.abs() < 1e15 {
        let _ = write!(buf, "{}", v as i64);
    } else {
        let _ = write!(buf, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_families_labels_and_histograms() {
        let mut e = Exposition::new();
        e.family("requests_total", MetricType::Counter, "Requests completed.")
            .sample("requests_total", &[("op", "read")], 3.0)
            .sample("requests_total", &[("op", "wr\"ite\\")], 1.0);
        e.gauge("in_flight_requests", "In flight.", 2.5);
        e.family(
            "request_duration_seconds",
            MetricType::Histogram,
            "Latency.",
        )
        .histogram_series(
            "request_duration_seconds",
            &[("op", "read")],
            &HistogramData {
                bounds: vec![0.001, 0.01],
                cumulative: vec![1, 3],
                count: 4,
                sum: 0.5,
            },
        );
        insta::assert_snapshot!(e.as_str(), @r###"
        # HELP factorybench_requests_total Requests completed.
        # TYPE factorybench_requests_total counter
        factorybench_requests_total{op="read"} 3
        factorybench_requests_total{op="wr\"ite\\"} 1
        # HELP factorybench_in_flight_requests In flight.
        # TYPE factorybench_in_flight_requests gauge
        factorybench_in_flight_requests 2.5
        # HELP factorybench_request_duration_seconds Latency.
        # TYPE factorybench_request_duration_seconds histogram
        factorybench_request_duration_seconds_bucket{op="read",le="0.001"} 1
        factorybench_request_duration_seconds_bucket{op="read",le="0.01"} 3
        factorybench_request_duration_seconds_bucket{op="read",le="+Inf"} 4
        factorybench_request_duration_seconds_sum{op="read"} 0.5
        factorybench_request_duration_seconds_count{op="read"} 4
        "###);
    }

    #[test]
    fn special_values() {
        let mut s = String::new();
        push_value(&mut s, f64::NAN);
        s.push(' ');
        push_value(&mut s, f64::INFINITY);
        s.push(' ');
        push_value(&mut s, 1e20);
        assert_eq!(s, "NaN +Inf 100000000000000000000");
    }
}
