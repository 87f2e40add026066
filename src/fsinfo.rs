//! Filesystems under the paths a campaign writes: type (what it means for a storage
//! benchmark), writability, free space.

use std::io;
use std::path::{Path, PathBuf};

/// A filesystem type from `statfs(2)`'s `f_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsType {
    Lustre,
    Gpfs,
    BeeGfs,
    Nfs,
    Ceph,
    Fuse,
    Ext4,
    Xfs,
    Btrfs,
    Tmpfs,
    Overlay,
    Other(i64),
}

impl FsType {
    pub fn from_magic(m: i64) -> FsType {
        match m {
            0x0BD0_0BD0 => FsType::Lustre,
            0x4750_4653 => FsType::Gpfs,
            0x1983_0326 => FsType::BeeGfs,
            0x6969 => FsType::Nfs,
            0x00C3_6400 => FsType::Ceph,
            0x6573_5546 => FsType::Fuse,
            0xEF53 => FsType::Ext4,
            0x5846_5342 => FsType::Xfs,
            0x9123_683E => FsType::Btrfs,
            0x0102_1994 => FsType::Tmpfs,
            0x794C_7630 => FsType::Overlay,
            m => FsType::Other(m),
        }
    }

    pub fn name(self) -> String {
        match self {
            FsType::Lustre => "Lustre".into(),
            FsType::Gpfs => "GPFS (Spectrum Scale)".into(),
            FsType::BeeGfs => "BeeGFS".into(),
            FsType::Nfs => "NFS".into(),
            FsType::Ceph => "CephFS".into(),
            FsType::Fuse => "FUSE".into(),
            FsType::Ext4 => "ext4 (local)".into(),
            FsType::Xfs => "XFS (local)".into(),
            FsType::Btrfs => "Btrfs (local)".into(),
            FsType::Tmpfs => "tmpfs (memory)".into(),
            FsType::Overlay => "overlay (container/local)".into(),
            FsType::Other(m) => format!("filesystem 0x{m:x}"),
        }
    }

    /// Mounted by every node (a job on another node sees the same files).
    pub fn is_shared(self) -> bool {
        matches!(
            self,
            FsType::Lustre
                | FsType::Gpfs
                | FsType::BeeGfs
                | FsType::Nfs
                | FsType::Ceph
                | FsType::Fuse
        )
    }

    /// What a storage benchmark on this filesystem measures.
    pub fn meaning(self) -> &'static str {
        match self {
            FsType::Lustre | FsType::Gpfs | FsType::BeeGfs => {
                "a parallel filesystem shared with every other job: results include the network, \
                 the metadata servers and other users' load; repeat runs and compare medians; \
                 O_DIRECT and striping change the numbers"
            }
            FsType::Nfs => {
                "NFS: one server for all clients, close-to-open caching; small-file and metadata \
                 numbers are bounded by round trips, not disks"
            }
            FsType::Ceph | FsType::Fuse => {
                "a network filesystem: results include the network and the servers' load"
            }
            FsType::Tmpfs => {
                "memory, not storage: the numbers are RAM bandwidth and say nothing about disks"
            }
            FsType::Ext4 | FsType::Xfs | FsType::Btrfs | FsType::Overlay | FsType::Other(_) => {
                "node-local storage: it measures this node's disk (and page cache unless \
                 use_direct_io), not the shared filesystem, and other nodes do not see the files"
            }
        }
    }
}

/// The nearest existing ancestor of `p` (itself when it exists).
pub fn existing_ancestor(p: &Path) -> Option<PathBuf> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(p)
    };
    abs.ancestors().find(|a| a.exists()).map(Path::to_path_buf)
}

fn statfs(p: &Path) -> Option<libc::statfs> {
    use std::os::unix::ffi::OsStrExt;
    let dir = existing_ancestor(p)?;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a NUL-terminated path; st is a valid out-pointer.
    (unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0).then_some(st)
}

/// The type of the filesystem holding `p` (or its nearest existing ancestor).
pub fn fs_type(p: &Path) -> Option<FsType> {
    #[allow(clippy::unnecessary_cast)]
    statfs(p).map(|s| FsType::from_magic(s.f_type as i64))
}

/// Bytes an unprivileged user may still write there.
pub fn free_bytes(p: &Path) -> Option<u64> {
    #[allow(clippy::unnecessary_cast)]
    statfs(p).map(|s| (s.f_bavail as u64).saturating_mul(s.f_bsize as u64))
}

/// Whether a directory can be written.
#[derive(Debug, PartialEq)]
pub enum Writable {
    Yes,
    /// It does not exist yet; this existing ancestor is writable, so it can be created.
    WillCreate(PathBuf),
}

/// Write (and remove) a probe file in `dir`, or in its nearest existing ancestor when `dir`
/// does not exist yet. Creates nothing that stays behind.
pub fn probe_writable(dir: &Path, _create: bool) -> io::Result<Writable> {
    if dir.exists() && !dir.is_dir() {
        return Err(io::Error::other("exists and is not a directory"));
    }
    let target = existing_ancestor(dir)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no existing parent"))?;
    if !target.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            target.display()
        )));
    }
    let probe = target.join(format!(".factorybench-doctor-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    let _ = std::fs::remove_file(&probe);
    if target == dir || dir.exists() {
        Ok(Writable::Yes)
    } else {
        Ok(Writable::WillCreate(target))
    }
}

/// How a run file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunFileMode {
    /// In place (a local filesystem, or `FB_RUN_FILES=direct`).
    Direct,
    /// Node-local, published into place (a network filesystem, or `FB_RUN_FILES=local`).
    LocalPublished,
}

/// What `auto` decides for a campaign file at `target`, and the filesystem it is on.
pub fn run_file_mode(target: &Path) -> (RunFileMode, Option<FsType>) {
    let fs = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .or_else(|| std::env::current_dir().ok())
        .and_then(|p| existing_ancestor(&p))
        .and_then(|p| fs_type(&p));
    let mode = match std::env::var("FB_RUN_FILES").as_deref() {
        Ok("direct") => RunFileMode::Direct,
        Ok("local") => RunFileMode::LocalPublished,
        _ if fs.is_some_and(FsType::is_shared) => RunFileMode::LocalPublished,
        _ => RunFileMode::Direct,
    };
    (mode, fs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers() {
        assert_eq!(FsType::from_magic(0x0BD0_0BD0), FsType::Lustre);
        assert_eq!(FsType::from_magic(0x6969), FsType::Nfs);
        assert!(FsType::Lustre.is_shared());
        assert!(!FsType::Ext4.is_shared());
        assert!(FsType::Tmpfs.meaning().contains("memory"));
    }

    #[test]
    fn writable_probe_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(probe_writable(d.path(), true).unwrap(), Writable::Yes);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
        assert_eq!(
            probe_writable(&d.path().join("a/b"), true).unwrap(),
            Writable::WillCreate(d.path().to_path_buf())
        );
    }
}
