//! What ran a run: the host's hardware and software, the container image and the service's own
//! version. Collected once per run (outside the timed region) and stored as `provenance` rows
//! (`key`, `value`) of the campaign file; reports show them and `compare` warns when two runs
//! ran on different hardware ([`hardware_fingerprint`]).
//!
//! Keys (all optional; absent when the host does not tell):
//! `cpu.model`, `cpu.count`, `cpu.available`, `memory.total_gib`, `memory.total_bytes`, `kernel`, `os`, `fs.path`, `fs.type`,
//! `fs.mount`, `fs.source`, `container.image`, `container.digest`, `factorybench.version`,
//! `factorybench.git_commit`, `gpu.count`, `gpu.driver`, `gpu.cuda`, `gpuN.name`, `gpuN.uuid`,
//! `gpuN.memory_bytes` (NVML, plugged in by the command through [`GpuFacts`]),
//! `service.version`, `service.server`, `service.product` (the service's API, per client).

pub use crate::model::{hardware_fingerprint, Facts, HARDWARE_KEYS};
use crate::recipe::{Service, Workload};
use std::path::Path;
use std::sync::Arc;

/// GPU facts from a higher layer (NVML lives in `monitor`).
pub type GpuFacts = Arc<dyn Fn() -> Facts + Send + Sync>;

/// Host facts: CPU, memory, kernel, OS, the tool's version, and for a file-storage service the
/// filesystem under `base_path`; the container image of the service.
pub fn host_facts(svc: &Service) -> Facts {
    let mut f = Facts::new();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if let Some(m) = cpu_model(&cpuinfo) {
        f.insert("cpu.model".into(), m);
    }
    // Logical CPUs of the machine (hardware), and those this process may use (cgroup /
    // affinity: what a SLURM allocation grants).
    let online = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    if online > 0 {
        f.insert("cpu.count".into(), online.to_string());
    }
    if let Ok(n) = std::thread::available_parallelism() {
        f.insert("cpu.available".into(), n.get().to_string());
    }
    if let Some(b) = mem_total_bytes(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default())
    {
        f.insert("memory.total_bytes".into(), b.to_string());
        // Rounded to whole GiB so that a few MiB reserved by firmware do not count as a
        // different machine.
        f.insert(
            "memory.total_gib".into(),
            format!("{}", (b as f64 / (1u64 << 30) as f64).round() as u64),
        );
    }
    if let Ok(k) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        f.insert("kernel".into(), k.trim().to_string());
    }
    if let Some(os) = os_name(&std::fs::read_to_string("/etc/os-release").unwrap_or_default()) {
        f.insert("os".into(), os);
    }
    f.insert(
        "factorybench.version".into(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    if let Some(c) = crate::git_commit() {
        f.insert("factorybench.git_commit".into(), c.to_string());
    }
    if let Workload::FileStorage(w) = &svc.workload {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        f.insert("fs.path".into(), w.base_path.display().to_string());
        if let Some(m) = mount_of(&mounts, &w.base_path) {
            f.insert("fs.mount".into(), m.mount);
            f.insert("fs.type".into(), m.fstype);
            f.insert("fs.source".into(), m.source);
        }
    }
    if let Some(img) = &svc.container_image {
        f.insert("container.image".into(), img.clone());
        if let Some(d) = image_digest(img) {
            f.insert("container.digest".into(), d);
        } else if let Ok(meta) = std::fs::metadata(img) {
            f.insert("container.size_bytes".into(), meta.len().to_string());
        }
    }
    // A batch script may name the digest it resolved (e.g. from `apptainer inspect`).
    if let Ok(d) = std::env::var("FACTORYBENCH_CONTAINER_DIGEST") {
        if !d.is_empty() {
            f.insert("container.digest".into(), d);
        }
    }
    f
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    for key in ["model name", "Model", "cpu model", "Processor"] {
        for l in cpuinfo.lines() {
            if let Some((k, v)) = l.split_once(':') {
                if k.trim() == key && !v.trim().is_empty() {
                    return Some(v.trim().to_string());
                }
            }
        }
    }
    None
}

fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let l = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn os_name(os_release: &str) -> Option<String> {
    let l = os_release.lines().find(|l| l.starts_with("PRETTY_NAME="))?;
    Some(l["PRETTY_NAME=".len()..].trim_matches('"').to_string())
}

/// `…@sha256:HEX` in an image reference.
fn image_digest(image: &str) -> Option<String> {
    let (_, d) = image.rsplit_once('@')?;
    d.starts_with("sha256:").then(|| d.to_string())
}

#[derive(Debug, PartialEq)]
struct Mount {
    source: String,
    mount: String,
    fstype: String,
}

/// The mount holding `path` (longest mount point that is a prefix of it, after resolving what
/// exists of the path).
fn mount_of(mounts: &str, path: &Path) -> Option<Mount> {
    // Resolve symlinks in the part of the path that exists; keep the rest as written.
    let mut p = path.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    let resolved = loop {
        if let Ok(c) = p.canonicalize() {
            break rest.iter().rev().fold(c, |acc, part| acc.join(part));
        }
        match p.file_name() {
            Some(n) => rest.push(n.to_os_string()),
            None => break path.to_path_buf(),
        }
        if !p.pop() {
            break path.to_path_buf();
        }
    };
    let mut best: Option<Mount> = None;
    for l in mounts.lines() {
        let mut it = l.split_whitespace();
        let (Some(src), Some(mnt), Some(ty)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let mnt = mnt.replace("\\040", " ");
        if resolved.starts_with(&mnt) && best.as_ref().map_or(true, |b| mnt.len() >= b.mount.len())
        {
            best = Some(Mount {
                source: src.to_string(),
                mount: mnt,
                fstype: ty.to_string(),
            });
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(
            cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 9654\n").as_deref(),
            Some("AMD EPYC 9654")
        );
        assert_eq!(
            mem_total_bytes("MemTotal:       16384 kB\nMemFree: 1 kB\n"),
            Some(16384 * 1024)
        );
        assert_eq!(
            os_name("NAME=x\nPRETTY_NAME=\"Ubuntu 24.04 LTS\"\n").as_deref(),
            Some("Ubuntu 24.04 LTS")
        );
        assert_eq!(
            image_digest("docker://vllm/vllm-openai@sha256:abc").as_deref(),
            Some("sha256:abc")
        );
        assert_eq!(image_digest("docker://vllm/vllm-openai:v0.6"), None);
    }

    #[test]
    fn longest_mount_wins() {
        let mounts = "/dev/sda1 / ext4 rw 0 0\nlustre@tcp:/fs /lus lustre rw 0 0\n";
        let m = mount_of(mounts, Path::new("/lus/scratch/nonexistent/dir")).unwrap();
        assert_eq!(m.fstype, "lustre");
        assert_eq!(m.mount, "/lus");
        assert_eq!(
            mount_of(mounts, Path::new("/tmp/x")).unwrap().fstype,
            "ext4"
        );
    }

    #[test]
    fn fingerprint_ignores_software_and_sees_hardware() {
        let mut a = Facts::new();
        a.insert("cpu.model".into(), "X".into());
        a.insert("kernel".into(), "6.1".into());
        let mut b = a.clone();
        b.insert("kernel".into(), "6.8".into());
        assert_eq!(hardware_fingerprint(&a), hardware_fingerprint(&b));
        b.insert("gpu0.name".into(), "H200".into());
        assert_ne!(hardware_fingerprint(&a), hardware_fingerprint(&b));
        assert_eq!(hardware_fingerprint(&Facts::new()), None);
    }
}
