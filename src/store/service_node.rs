//! The service node's GPU samples in a multi-node job.
//!
//! When a started GPU service has its clients on other nodes, the runners sample no GPU (theirs
//! are idle or absent). The batch step samples the service node's GPUs instead
//! (`factorybench monitor sample-service-node`) into `runs/<service>-<run>.service-node.jsonl`
//! beside the client nodes' run files: a header line naming the service, node and GPU count,
//! then one line per reading (`t_ns`, `name` as in a run's `samples`, `value`). Lines are
//! appended one write each, so a reader sees whole lines (a torn last line is skipped). The
//! report attaches them to the service aggregate whose measured window they cover.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file name suffix (after `<service>-<run>`).
pub const SUFFIX: &str = ".service-node.jsonl";

/// The first line: what was sampled where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub service: String,
    pub node: String,
    pub gpus: u32,
}

/// One reading (the names of a run's `samples`: `gpu0_power_watts`, `gpu0_energy_joules`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub t_ns: i64,
    pub name: String,
    pub value: f64,
}

/// Appends lines to a service-node samples file.
pub struct Writer {
    file: std::fs::File,
}

impl Writer {
    /// Create (or truncate) `path` and write its header.
    pub fn create(path: &Path, header: &Header) -> std::io::Result<Writer> {
        let mut w = Writer {
            file: std::fs::File::create(path)?,
        };
        w.line(&serde_json::to_string(header).map_err(std::io::Error::other)?)?;
        Ok(w)
    }

    pub fn reading(&mut self, r: &Reading) -> std::io::Result<()> {
        self.line(&serde_json::to_string(r).map_err(std::io::Error::other)?)
    }

    /// One line in one write (readers never see half of it unless the writer dies mid-way).
    fn line(&mut self, s: &str) -> std::io::Result<()> {
        self.file.write_all(format!("{s}\n").as_bytes())
    }
}

/// A samples file read back: its header and its series, each sorted by time.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceNodeSamples {
    pub header: Header,
    pub series: Vec<super::read::SampleSeriesRows>,
}

/// Read one file (`None` when it has no valid header). Lines that do not parse are skipped.
pub fn read(path: &Path) -> Option<ServiceNodeSamples> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let header: Header = serde_json::from_str(lines.next()?).ok()?;
    let mut series: Vec<super::read::SampleSeriesRows> = Vec::new();
    for r in lines.filter_map(|l| serde_json::from_str::<Reading>(l).ok()) {
        match series.iter_mut().find(|(n, _)| *n == r.name) {
            Some((_, pts)) => pts.push((r.t_ns, r.value)),
            None => series.push((r.name, vec![(r.t_ns, r.value)])),
        }
    }
    for (_, pts) in &mut series {
        pts.sort_by_key(|p| p.0);
    }
    series.sort_by(|a, b| a.0.cmp(&b.0));
    Some(ServiceNodeSamples { header, series })
}

/// The service-node sample files in `dir` (sorted).
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(SUFFIX))
        })
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_lines_read_back_grouped_and_a_torn_line_is_skipped() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join(format!("web-1{SUFFIX}"));
        let header = Header {
            service: "web".into(),
            node: "fbn3".into(),
            gpus: 1,
        };
        let mut w = Writer::create(&p, &header).unwrap();
        for (t_ns, v) in [(2, 20.0), (1, 10.0)] {
            w.reading(&Reading {
                t_ns,
                name: "gpu0_energy_joules".into(),
                value: v,
            })
            .unwrap();
        }
        drop(w);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"t_ns\":3,\"na")
            .unwrap();
        let got = read(&p).unwrap();
        assert_eq!(got.header, header);
        assert_eq!(
            got.series,
            vec![("gpu0_energy_joules".to_string(), vec![(1, 10.0), (2, 20.0)])]
        );
        assert_eq!(files_in(t.path()), vec![p]);
    }
}
