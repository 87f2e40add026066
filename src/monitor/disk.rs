//! Free space of the filesystems a run writes to (the campaign file's directory, a storage
//! benchmark's `base_path`), read with `statvfs` at every push. The `FactorybenchDiskFillingUp`
//! and `FactorybenchDiskAlmostFull` alerts (monitoring/alerts.yml) watch these series.

use super::expo::{Exposition, MetricType};
use super::live::LiveSource;
use std::path::{Path, PathBuf};

/// What a watched path is to the run (the `role` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRole {
    /// The directory of the run's SQLite campaign file.
    Campaign,
    /// A `file_storage` service's `base_path`.
    BasePath,
}

impl PathRole {
    pub fn as_str(self) -> &'static str {
        match self {
            PathRole::Campaign => "campaign",
            PathRole::BasePath => "base_path",
        }
    }
}

/// Size and space available to an unprivileged user of the filesystem holding `path`
/// (`f_blocks` and `f_bavail` times `f_frsize`), or `None` when it cannot be read.
pub fn statvfs_bytes(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` points to writable memory of the
    // right type; statvfs fills it completely when it returns 0.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: rc == 0, so statvfs initialised the struct.
    let st = unsafe { st.assume_init() };
    let frsize = if st.f_frsize > 0 {
        st.f_frsize
    } else {
        st.f_bsize
    };
    // fsblkcnt_t and c_ulong are u64 on the 64-bit Linux targets factorybench builds for.
    Some((
        st.f_blocks.saturating_mul(frsize),
        st.f_bavail.saturating_mul(frsize),
    ))
}

/// The nearest existing directory at or above `path` (a campaign directory may not exist yet
/// when the run starts; its parent's filesystem is the one it will be on).
fn existing_ancestor(path: &Path) -> Option<&Path> {
    path.ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.exists())
}

/// A push source with one `filesystem_*` series pair per watched path.
#[derive(Debug, Clone, Default)]
pub struct DiskSource {
    paths: Vec<(PathRole, PathBuf)>,
}

impl DiskSource {
    /// Watch `paths` (relative paths are made absolute against the working directory;
    /// duplicates are dropped).
    pub fn new(paths: impl IntoIterator<Item = (PathRole, PathBuf)>) -> Self {
        let cwd = std::env::current_dir().unwrap_or_default();
        let mut out: Vec<(PathRole, PathBuf)> = Vec::new();
        for (role, p) in paths {
            let p = if p.is_absolute() { p } else { cwd.join(p) };
            if !out.iter().any(|(r, q)| *r == role && *q == p) {
                out.push((role, p));
            }
        }
        DiskSource { paths: out }
    }
}

impl LiveSource for DiskSource {
    fn render(&self, e: &mut Exposition) {
        let readings: Vec<(PathRole, String, u64, u64)> = self
            .paths
            .iter()
            .filter_map(|(role, p)| {
                let (size, avail) = statvfs_bytes(existing_ancestor(p)?)?;
                Some((*role, p.to_string_lossy().to_string(), size, avail))
            })
            .collect();
        if readings.is_empty() {
            return;
        }
        for (name, help, pick) in [
            (
                "filesystem_avail_bytes",
                "Bytes available to the runner's user on the filesystem holding the path.",
                (|r: &(PathRole, String, u64, u64)| r.3) as fn(&_) -> u64,
            ),
            (
                "filesystem_size_bytes",
                "Size of the filesystem holding the path.",
                |r: &(PathRole, String, u64, u64)| r.2,
            ),
        ] {
            e.family(name, MetricType::Gauge, help);
            for r in &readings {
                e.sample(
                    name,
                    &[("role", r.0.as_str()), ("path", &r.1)],
                    pick(r) as f64,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_this_machines_filesystem() {
        let tmp = tempfile::tempdir().unwrap();
        let d = DiskSource::new([
            (PathRole::Campaign, tmp.path().join("not-yet/run.db")),
            (PathRole::BasePath, tmp.path().to_path_buf()),
            (PathRole::BasePath, tmp.path().to_path_buf()),
        ]);
        let mut e = Exposition::new();
        d.render(&mut e);
        let text = e.as_str();
        assert_eq!(text.matches("# TYPE ").count(), 2, "{text}");
        assert_eq!(
            text.matches("factorybench_filesystem_avail_bytes{").count(),
            2,
            "{text}"
        );
        assert!(text.contains("role=\"campaign\""), "{text}");
        let (size, avail) = statvfs_bytes(tmp.path()).unwrap();
        assert!(size > 0 && avail <= size);
    }
}
