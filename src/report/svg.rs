//! Small inline SVG charts (no JavaScript, no external resources).

use std::fmt::Write;

pub const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

const W: f64 = 760.0;
const H: f64 = 280.0;
const ML: f64 = 70.0;
const MR: f64 = 20.0;
const MT: f64 = 34.0;
const MB: f64 = 46.0;

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Clone)]
pub struct Axis {
    pub label: String,
    pub log: bool,
    /// A fixed range (lo, hi) instead of the data's: charts that share it share their ticks.
    pub range: Option<(f64, f64)>,
}

impl Axis {
    pub fn lin(label: &str) -> Self {
        Axis {
            label: label.into(),
            log: false,
            range: None,
        }
    }
    pub fn log(label: &str) -> Self {
        Axis {
            label: label.into(),
            log: true,
            range: None,
        }
    }
    /// The time axis every time-series chart of a run shares: `0..=window_s` seconds.
    pub fn time(window_s: f64) -> Self {
        Axis {
            label: "time since measure start (s)".into(),
            log: false,
            range: Some((0.0, window_s.max(1e-3))),
        }
    }
}

/// A binary unit for byte values whose largest is `max`: (divisor, name), e.g. (1048576, "MiB").
pub fn byte_unit(max: f64) -> (f64, &'static str) {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut i = 0;
    let mut d = 1.0;
    while i + 1 < UNITS.len() && max.abs() >= d * 1024.0 {
        d *= 1024.0;
        i += 1;
    }
    (d, UNITS[i])
}

/// An axis tick label: at most about 6 characters (SI suffix from 10,000 on), so that labels
/// never run off the chart's left edge.
pub fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    for (d, suffix) in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")] {
        if a >= 10.0 * d || (a >= d && d >= 1e6) {
            return format!("{}{suffix}", trim(format!("{:.1}", v / d)));
        }
    }
    fmt_num(v)
}

/// A readable number: about 4 significant digits, no exponent above 1e-4.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        trim(format!("{v:.1}"))
    } else if a >= 10.0 {
        trim(format!("{v:.2}"))
    } else if a >= 1.0 {
        trim(format!("{v:.3}"))
    } else if a >= 1e-4 {
        let digits = (3 - a.log10().floor() as i32).clamp(0, 8) as usize;
        trim(format!("{v:.digits$}"))
    } else {
        format!("{v:.2e}")
    }
}

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn nice_step(range: f64, target: usize) -> f64 {
    let raw = range / target as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let n = if f < 1.5 {
        1.0
    } else if f < 3.0 {
        2.0
    } else if f < 7.0 {
        5.0
    } else {
        10.0
    };
    n * mag
}

struct Scale {
    lo: f64,
    hi: f64,
    log: bool,
    a: f64,
    b: f64,
}

impl Scale {
    fn new(mut lo: f64, mut hi: f64, log: bool, a: f64, b: f64) -> Self {
        if log {
            lo = lo.max(1e-6);
            hi = hi.max(lo * 10.0);
            lo = 10f64.powf(lo.log10().floor());
            hi = 10f64.powf(hi.log10().ceil());
        } else {
            if hi <= lo {
                hi = lo + 1.0;
            }
            let st = nice_step(hi - lo, 5);
            lo = (lo / st).floor() * st;
            hi = (hi / st).ceil() * st;
        }
        Scale { lo, hi, log, a, b }
    }

    fn map(&self, v: f64) -> f64 {
        let t = if self.log {
            (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        self.a + t.clamp(0.0, 1.0) * (self.b - self.a)
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let mut t = Vec::new();
            let mut v = self.lo;
            while v <= self.hi * 1.0001 {
                t.push(v);
                v *= 10.0;
            }
            t
        } else {
            let st = nice_step(self.hi - self.lo, 5);
            let mut t = Vec::new();
            let mut v = self.lo;
            while v <= self.hi + st * 1e-9 {
                t.push(v);
                v += st;
            }
            t
        }
    }
}

fn frame(svg: &mut String, title: &str, x: &Axis, y: &Axis, xs: &Scale, ys: &Scale) {
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{t}"><title>{t}</title><rect x="0" y="0" width="{W}" height="{H}" fill="#fff"/><text x="{tx}" y="20" class="ct">{t}</text>"##,
        t = esc(title),
        tx = W / 2.0
    );
    for v in ys.ticks() {
        let py = ys.map(v);
        let _ = write!(
            svg,
            r##"<line x1="{ML}" x2="{x2}" y1="{py:.1}" y2="{py:.1}" class="grid"/><text x="{lx}" y="{ty:.1}" class="tk" text-anchor="end">{l}</text>"##,
            x2 = W - MR,
            lx = ML - 6.0,
            ty = py + 4.0,
            l = fmt_tick(v)
        );
    }
    for v in xs.ticks() {
        let px = xs.map(v);
        let _ = write!(
            svg,
            r##"<line x1="{px:.1}" x2="{px:.1}" y1="{MT}" y2="{y2}" class="grid"/><text x="{px:.1}" y="{ty}" class="tk" text-anchor="middle">{l}</text>"##,
            y2 = H - MB,
            ty = H - MB + 16.0,
            l = fmt_tick(v)
        );
    }
    let _ = write!(
        svg,
        r##"<line x1="{ML}" x2="{ML}" y1="{MT}" y2="{yb}" class="axis"/><line x1="{ML}" x2="{xr}" y1="{yb}" y2="{yb}" class="axis"/><text x="{xc}" y="{xl}" class="al" text-anchor="middle">{xlab}</text><text transform="translate(16 {yc}) rotate(-90)" class="al" text-anchor="middle">{ylab}</text>"##,
        yb = H - MB,
        xr = W - MR,
        xc = (ML + W - MR) / 2.0,
        xl = H - 8.0,
        yc = (MT + H - MB) / 2.0,
        xlab = esc(&x.label),
        ylab = esc(&y.label)
    );
}

fn legend(svg: &mut String, names: &[&str]) {
    let mut x = ML + 8.0;
    for (i, n) in names.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        let _ = write!(
            svg,
            r##"<rect x="{x:.1}" y="{y}" width="12" height="4" fill="{c}"/><text x="{tx:.1}" y="{ty}" class="lg">{n}</text>"##,
            y = MT + 4.0,
            tx = x + 16.0,
            ty = MT + 9.0,
            n = esc(n)
        );
        x += 24.0 + 7.0 * n.chars().count() as f64;
    }
}

fn empty(title: &str) -> String {
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {W} 60" role="img" aria-label="{t}"><title>{t}</title><text x="{x}" y="34" class="ct">{t}: no data</text></svg>"##,
        t = esc(title),
        x = W / 2.0
    )
}

/// A labelled reference line: vertical at an x value or horizontal at a y value.
#[derive(Debug, Clone)]
pub struct Mark {
    pub at: f64,
    pub label: String,
}

/// Lines (with points when there are few).
pub fn line_chart(title: &str, x: Axis, y: Axis, series: &[Series]) -> String {
    marked_line_chart(title, x, y, series, &[], &[])
}

/// [`line_chart`] with dashed reference lines: `vmarks` at x values (e.g. a knee), `hmarks`
/// at y values (e.g. an SLO limit); the axes stretch to show them.
pub fn marked_line_chart(
    title: &str,
    x: Axis,
    y: Axis,
    series: &[Series],
    vmarks: &[Mark],
    hmarks: &[Mark],
) -> String {
    let inside = |p: &(f64, f64)| {
        p.0.is_finite()
            && p.1.is_finite()
            && x.range
                .map_or(true, |(lo, hi)| p.0 >= lo - 1e-9 && p.0 <= hi + 1e-9)
    };
    let mut all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(inside)
        .collect();
    if let Some(&(x_any, y_any)) = all.first() {
        all.extend(
            vmarks
                .iter()
                .filter(|m| m.at.is_finite())
                .map(|m| (m.at, y_any)),
        );
        all.extend(
            hmarks
                .iter()
                .filter(|m| m.at.is_finite())
                .map(|m| (x_any, m.at)),
        );
    }
    if all.is_empty() {
        return empty(title);
    }
    let fold = |f: fn(f64, f64) -> f64, init: f64, sel: fn(&(f64, f64)) -> f64| {
        all.iter().map(sel).fold(init, f)
    };
    let (x0, x1) = x.range.unwrap_or((
        fold(f64::min, f64::INFINITY, |p| p.0),
        fold(f64::max, f64::NEG_INFINITY, |p| p.0),
    ));
    let (mut y0, y1) = (
        fold(f64::min, f64::INFINITY, |p| p.1),
        fold(f64::max, f64::NEG_INFINITY, |p| p.1),
    );
    if !y.log {
        y0 = y0.min(0.0);
    }
    let xs = Scale::new(x0, x1, x.log, ML, W - MR);
    let ys = Scale::new(y0, y1, y.log, H - MB, MT + 14.0);
    let mut svg = String::new();
    frame(&mut svg, title, &x, &y, &xs, &ys);
    for (i, s) in series.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        let pts: Vec<String> = s
            .points
            .iter()
            .filter(|p| inside(p))
            .map(|(a, b)| format!("{:.1},{:.1}", xs.map(*a), ys.map(*b)))
            .collect();
        let _ = write!(
            svg,
            r##"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"##,
            pts.join(" ")
        );
        if pts.len() <= 40 {
            for p in &pts {
                let (a, b) = p.split_once(',').expect("x,y");
                let _ = write!(svg, r##"<circle cx="{a}" cy="{b}" r="2.5" fill="{c}"/>"##);
            }
        }
    }
    for m in vmarks.iter().filter(|m| m.at.is_finite()) {
        let px = xs.map(m.at);
        let _ = write!(
            svg,
            r##"<line x1="{px:.1}" x2="{px:.1}" y1="{:.1}" y2="{:.1}" stroke="#c62828" stroke-dasharray="5,3"/><text x="{:.1}" y="{:.1}" class="ct" style="font-size:10px;text-anchor:start" fill="#c62828">{}</text>"##,
            MT + 14.0,
            H - MB,
            px + 3.0,
            MT + 26.0,
            esc(&m.label)
        );
    }
    for m in hmarks.iter().filter(|m| m.at.is_finite()) {
        let py = ys.map(m.at);
        let _ = write!(
            svg,
            r##"<line x1="{ML:.1}" x2="{:.1}" y1="{py:.1}" y2="{py:.1}" stroke="#6a1b9a" stroke-dasharray="2,3"/><text x="{:.1}" y="{:.1}" class="ct" style="font-size:10px;text-anchor:end" fill="#6a1b9a">{}</text>"##,
            W - MR,
            W - MR - 2.0,
            py - 3.0,
            esc(&m.label)
        );
    }
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    legend(&mut svg, &names);
    svg.push_str("</svg>");
    svg
}

/// Grouped bars: one group per category, one bar per series.
pub fn bar_chart(
    title: &str,
    y: Axis,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> String {
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    if categories.is_empty() || series.is_empty() {
        return empty(title);
    }
    let ys = Scale::new(
        if y.log { max / 1e3 } else { 0.0 },
        max,
        y.log,
        H - MB,
        MT + 14.0,
    );
    let xs = Scale::new(0.0, 1.0, false, ML, W - MR);
    let mut svg = String::new();
    // Frame without x ticks: categories label the groups.
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{t}"><title>{t}</title><rect x="0" y="0" width="{W}" height="{H}" fill="#fff"/><text x="{tx}" y="20" class="ct">{t}</text>"##,
        t = esc(title),
        tx = W / 2.0
    );
    let _ = xs;
    for v in ys.ticks() {
        let py = ys.map(v);
        let _ = write!(
            svg,
            r##"<line x1="{ML}" x2="{x2}" y1="{py:.1}" y2="{py:.1}" class="grid"/><text x="{lx}" y="{ty:.1}" class="tk" text-anchor="end">{l}</text>"##,
            x2 = W - MR,
            lx = ML - 6.0,
            ty = py + 4.0,
            l = fmt_tick(v)
        );
    }
    let _ = write!(
        svg,
        r##"<line x1="{ML}" x2="{ML}" y1="{MT}" y2="{yb}" class="axis"/><line x1="{ML}" x2="{xr}" y1="{yb}" y2="{yb}" class="axis"/><text transform="translate(16 {yc}) rotate(-90)" class="al" text-anchor="middle">{ylab}</text>"##,
        yb = H - MB,
        xr = W - MR,
        yc = (MT + H - MB) / 2.0,
        ylab = esc(&y.label)
    );
    let gw = (W - MR - ML) / categories.len() as f64;
    let bw = (gw * 0.8) / series.len() as f64;
    for (ci, cat) in categories.iter().enumerate() {
        let gx = ML + ci as f64 * gw + gw * 0.1;
        for (si, (_, vals)) in series.iter().enumerate() {
            let v = vals.get(ci).copied().unwrap_or(0.0);
            if !v.is_finite() {
                continue;
            }
            let top = ys.map(v);
            let _ = write!(
                svg,
                r##"<rect x="{x:.1}" y="{top:.1}" width="{w:.1}" height="{h:.1}" fill="{c}"><title>{cat} {n}: {v}</title></rect>"##,
                x = gx + si as f64 * bw,
                w = (bw - 2.0).max(1.0),
                h = (H - MB - top).max(0.0),
                c = PALETTE[si % PALETTE.len()],
                cat = esc(cat),
                n = esc(&series[si].0),
                v = fmt_num(v)
            );
        }
        // Category labels are cut to the group width (about 6 px per character).
        let max_chars = ((gw / 6.0) as usize).max(3);
        let label: String = if cat.chars().count() > max_chars {
            cat.chars()
                .take(max_chars - 1)
                .chain(std::iter::once('…'))
                .collect()
        } else {
            cat.clone()
        };
        let _ = write!(
            svg,
            r##"<text x="{x:.1}" y="{y}" class="tk" text-anchor="middle">{l}<title>{full}</title></text>"##,
            x = gx + gw * 0.4,
            y = H - MB + 16.0,
            l = esc(&label),
            full = esc(cat)
        );
    }
    let names: Vec<&str> = series.iter().map(|s| s.0.as_str()).collect();
    legend(&mut svg, &names);
    svg.push_str("</svg>");
    svg
}

/// Histogram over log-spaced buckets `(upper edge, count)`: bars from the previous edge.
pub fn histogram_chart(title: &str, x_label: &str, buckets: &[(f64, u64)]) -> String {
    if buckets.is_empty() {
        return empty(title);
    }
    let lo = buckets[0].0 / 1.5;
    let hi = buckets.last().map(|b| b.0).unwrap_or(1.0);
    let maxc = buckets.iter().map(|b| b.1).max().unwrap_or(1) as f64;
    let x = Axis::log(x_label);
    let y = Axis::lin("requests");
    let xs = Scale::new(lo, hi, true, ML, W - MR);
    let ys = Scale::new(0.0, maxc, false, H - MB, MT + 14.0);
    let mut svg = String::new();
    frame(&mut svg, title, &x, &y, &xs, &ys);
    let mut prev = lo;
    for (upper, count) in buckets {
        let x0 = xs.map(prev);
        let x1 = xs.map(*upper);
        let top = ys.map(*count as f64);
        let _ = write!(
            svg,
            r##"<rect x="{x0:.1}" y="{top:.1}" width="{w:.1}" height="{h:.1}" fill="{c}"><title>≤ {u}: {count}</title></rect>"##,
            w = (x1 - x0 - 1.0).max(1.0),
            h = (H - MB - top).max(0.0),
            c = PALETTE[0],
            u = fmt_num(*upper)
        );
        prev = *upper;
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sane(svg: &str) {
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    #[test]
    fn degenerate_data_renders_without_nan() {
        let one = [Series {
            name: "x".into(),
            points: vec![(0.0, 0.0)],
        }];
        sane(&line_chart("t", Axis::lin("x"), Axis::lin("y"), &one));
        sane(&line_chart("t", Axis::log("x"), Axis::log("y"), &one));
        let nan = [Series {
            name: "x".into(),
            points: vec![(f64::NAN, 1.0), (1.0, f64::INFINITY)],
        }];
        sane(&line_chart("t", Axis::lin("x"), Axis::lin("y"), &nan));
        sane(&line_chart("t", Axis::lin("x"), Axis::lin("y"), &[]));
        sane(&bar_chart(
            "t",
            Axis::lin("y"),
            &["a".into()],
            &[("s".into(), vec![0.0])],
        ));
        sane(&bar_chart("t", Axis::lin("y"), &[], &[]));
        sane(&histogram_chart("t", "x", &[(0.001, 5)]));
        sane(&histogram_chart("t", "x", &[]));
    }

    #[test]
    fn labels_are_escaped_and_numbers_readable() {
        let s = line_chart(
            "<b>&",
            Axis::lin("x"),
            Axis::lin("y"),
            &[Series {
                name: "\"q\"".into(),
                points: vec![(0.0, 1.0), (1.0, 2.0)],
            }],
        );
        assert!(s.contains("&lt;b&gt;&amp;") && s.contains("&quot;q&quot;"));
        assert_eq!(fmt_num(1.0899), "1.09");
        assert_eq!(fmt_num(2.081), "2.081");
        assert_eq!(fmt_num(0.0099009), "0.009901");
        assert_eq!(fmt_num(12345.6), "12346");
        assert_eq!(fmt_num(0.0), "0");
    }
}
