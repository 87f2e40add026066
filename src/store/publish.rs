//! Run files on a network filesystem (Lustre, NFS, GPFS, BeeGFS, CephFS, FUSE): SQLite's WAL
//! keeps its index in shared memory (`-shm`), which only works when every process that opens
//! the file runs on one host, and some Lustre mounts refuse `fcntl` locks altogether. `status`
//! and `report` run on the login node while the compute nodes write, so a job whose campaign
//! directory is on such a filesystem writes its run file on node-local storage (WAL, as fast
//! as a local run) and publishes it into the campaign directory: a consistent snapshot
//! (`VACUUM INTO`, taken inside one read transaction) written beside the target, switched to
//! the rollback journal (readers need no shared memory) and renamed over it, so a reader sees
//! the previous snapshot or the next one, never a torn file. The runner publishes every few
//! seconds while it runs (the live copy `status` reads) and once more when it has closed the
//! file.

use super::StoreError;
use std::path::Path;
use std::time::{Duration, Instant};

/// What one publication cost.
#[derive(Debug, Clone, Copy)]
pub struct Published {
    pub bytes: u64,
    pub took: Duration,
}

/// Publish the run file `local` (open by its writer, WAL) as `target`: a consistent snapshot,
/// rollback-journal mode, replaced atomically.
pub fn publish(local: &Path, target: &Path) -> Result<Published, StoreError> {
    let t0 = Instant::now();
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run.db".into());
    let tmp = target.with_file_name(format!(".{name}.publish-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let src = rusqlite::Connection::open_with_flags(
        local,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: local.to_path_buf(),
        source,
    })?;
    src.busy_timeout(Duration::from_secs(10))?;
    let r = src.execute("VACUUM INTO ?1", [tmp.to_string_lossy().as_ref()]);
    drop(src);
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    {
        // VACUUM INTO writes a rollback-journal file already; say so explicitly for readers.
        let c = rusqlite::Connection::open(&tmp).map_err(|source| StoreError::Open {
            path: tmp.clone(),
            source,
        })?;
        let _: String = c.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    }
    let bytes = std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
    // Private like every run file (it may hold the stored recipe's redacted URLs only, but
    // the campaign directory's files are the user's).
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600));
    }
    if let Ok(f) = std::fs::File::open(&tmp) {
        let _ = f.sync_all();
    }
    std::fs::rename(&tmp, target).map_err(|source| StoreError::CreateDir {
        path: target.to_path_buf(),
        source,
    })?;
    Ok(Published {
        bytes,
        took: t0.elapsed(),
    })
}
