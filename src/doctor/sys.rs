//! The doctor's questions to the system: runtimes, SLURM (sinfo, sacctmgr, scontrol,
//! sbatch --test-only), Podman images, network endpoints. Every external command runs with a
//! time limit, so a hung slurmdbd cannot hang the doctor.

use crate::recipe::SlurmSpec;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long one external command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);

/// A command's output, or why there is none.
pub type Cmd = Result<String, String>;

/// Run `program args`, returning stdout on exit 0, else stderr (or why it could not run).
pub fn run(program: &str, args: &[&str]) -> Cmd {
    let o = crate::proc::output_within(Command::new(program).args(args), COMMAND_TIMEOUT)
        .map_err(|e| format!("{program}: {e}"))?
        .ok_or_else(|| {
            format!(
                "{program} did not answer within {} s",
                COMMAND_TIMEOUT.as_secs()
            )
        })?;
    let (status, out) = (o.status, String::from_utf8_lossy(&o.stdout).into_owned());
    let err = String::from_utf8_lossy(&o.stderr);
    if status.success() {
        Ok(out)
    } else {
        let msg = err.trim();
        Err(if msg.is_empty() {
            format!("{program} exited with {status}")
        } else {
            msg.lines().take(3).collect::<Vec<_>>().join(" ")
        })
    }
}

/// `PROGRAM --version`'s first line, when the program runs.
pub fn version_of(program: &str) -> Option<String> {
    run(program, &["--version"])
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
}

pub fn user_name() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| run("id", &["-un"]).ok().map(|s| s.trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

/// One partition as `sinfo` reports it (node rows merged).
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    pub name: String,
    pub default: bool,
    pub available: bool,
    /// GRES of its nodes, e.g. `gpu:4`.
    pub gres: Vec<String>,
}

/// `sinfo -h -o '%P|%a|%G'` parsed; the default partition carries a `*`.
pub fn parse_sinfo(out: &str) -> Vec<Partition> {
    let mut parts: Vec<Partition> = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.trim().split('|').collect();
        if f.len() < 3 || f[0].is_empty() {
            continue;
        }
        let default = f[0].ends_with('*');
        let name = f[0].trim_end_matches('*').to_string();
        let gres: Vec<String> = f[2]
            .split(',')
            .map(|g| g.split('(').next().unwrap_or(g).trim().to_string())
            .filter(|g| !g.is_empty() && g != "(null)")
            .collect();
        match parts.iter_mut().find(|p| p.name == name) {
            Some(p) => {
                for g in gres {
                    if !p.gres.contains(&g) {
                        p.gres.push(g);
                    }
                }
            }
            None => parts.push(Partition {
                name,
                default,
                available: f[1] == "up",
                gres,
            }),
        }
    }
    parts
}

pub fn partitions() -> Result<Vec<Partition>, String> {
    run("sinfo", &["-h", "-o", "%P|%a|%G"]).map(|s| parse_sinfo(&s))
}

/// One association of the user: account, partition (empty: any) and allowed QOS.
#[derive(Debug, Clone, PartialEq)]
pub struct Assoc {
    pub account: String,
    pub partition: String,
    pub qos: Vec<String>,
}

/// `sacctmgr -n -P show assoc user=U format=account,partition,qos` parsed.
pub fn parse_assoc(out: &str) -> Vec<Assoc> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split('|').collect();
            (f.len() >= 3 && !f[0].is_empty()).then(|| Assoc {
                account: f[0].to_string(),
                partition: f[1].to_string(),
                qos: f[2]
                    .split(',')
                    .filter(|q| !q.is_empty())
                    .map(String::from)
                    .collect(),
            })
        })
        .collect()
}

pub fn associations(user: &str) -> Result<Vec<Assoc>, String> {
    let u = format!("user={user}");
    run(
        "sacctmgr",
        &[
            "-n",
            "-P",
            "show",
            "assoc",
            &u,
            "format=account,partition,qos",
        ],
    )
    .map(|s| parse_assoc(&s))
}

pub fn qos_names() -> Result<Vec<String>, String> {
    run("sacctmgr", &["-n", "-P", "show", "qos", "format=name"]).map(|s| {
        s.lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    })
}

/// Whether the controller rejects jobs without a valid account (`AccountingStorageEnforce`
/// includes `associations`).
pub fn accounts_enforced() -> bool {
    run("scontrol", &["show", "config"]).is_ok_and(|s| {
        s.lines().any(|l| {
            l.trim_start().starts_with("AccountingStorageEnforce")
                && l.split('=')
                    .nth(1)
                    .is_some_and(|v| v.contains("associations"))
        })
    })
}

/// The `sbatch` options a service's job asks for.
pub fn sbatch_test_args(s: &SlurmSpec) -> Vec<String> {
    let mut a = Vec::new();
    let mut opt = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            a.push(format!("--{k}={v}"));
        }
    };
    opt("partition", &s.partition);
    opt("account", &s.account);
    opt("qos", &s.qos);
    opt("gres", &s.gres);
    opt("time", &s.time);
    opt("mem", &s.mem);
    opt("constraint", &s.constraint);
    if let Some(c) = s.cpus_per_task {
        a.push(format!("--cpus-per-task={c}"));
    }
    a.push(format!("--nodes={}", s.nodes));
    a
}

/// `sbatch --test-only ARGS --wrap=true`: the controller's verdict, without submitting.
pub fn sbatch_test_only(args: &[String]) -> Result<(), String> {
    let mut all: Vec<&str> = vec!["--test-only"];
    all.extend(args.iter().map(String::as_str));
    all.push("--wrap=true");
    // sbatch --test-only prints its verdict on stderr and exits 0 when the job would run.
    run("sbatch", &all).map(|_| ())
}

/// Start a throwaway container of `image` (`podman run --rm --pull=never --network=none
/// --entrypoint true IMAGE`): proves that Podman can create and start containers of it on this
/// host (rlimits, cgroups, the OCI runtime) without starting the service. An image without a
/// `true` binary still proves it: the runtime got as far as executing the entrypoint. Err: the
/// runtime's own last words.
pub fn podman_can_start(image: &str) -> Result<(), String> {
    match run(
        "podman",
        &[
            "run",
            "--rm",
            "--pull=never",
            "--network=none",
            "--entrypoint",
            "true",
            image,
        ],
    ) {
        Ok(_) => Ok(()),
        Err(e)
            if e.contains("executable file `true` not found")
                || e.contains("\"true\": executable file not found")
                || (e.contains("true") && e.contains("no such file or directory")) =>
        {
            Ok(())
        }
        Err(e) => {
            let lines: Vec<&str> = e.lines().filter(|l| !l.trim().is_empty()).collect();
            Err(lines[lines.len().saturating_sub(3)..].join(" | "))
        }
    }
}

/// `podman image exists IMAGE`: Ok(false) when it does not.
pub fn podman_image_exists(image: &str) -> Result<bool, String> {
    let st = Command::new("podman")
        .args(["image", "exists", image])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("podman: {e}"))?;
    match st.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(format!("podman image exists exited with {st}")),
    }
}

/// A TCP connection to `host:port` within 3 s.
pub fn tcp_reachable(addr: &str) -> Result<(), String> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .collect();
    let mut last = format!("{addr}: no address");
    for a in addrs {
        match std::net::TcpStream::connect_timeout(&a, Duration::from_secs(3)) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// The URL's host:port accepts TCP connections (the Pushgateway's HTTP is checked by runs).
/// Without a port, the scheme's (443 for https, else 80).
pub fn http_reachable(url: &str) -> Result<(), String> {
    let u = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let port = u.port_or_known_default().unwrap_or(80);
    let addr = match u.host() {
        Some(url::Host::Ipv6(a)) => format!("[{a}]:{port}"),
        Some(h) => format!("{h}:{port}"),
        None => return Err(format!("`{url}` names no host")),
    };
    tcp_reachable(&addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinfo_rows_merge_per_partition() {
        let p = parse_sinfo("cpu*|up|(null)\ngpu|up|gpu:2(S:0)\ngpu|up|gpu:4\n");
        assert_eq!(p.len(), 2);
        assert!(p[0].default && p[0].gres.is_empty());
        assert_eq!(p[1].gres, vec!["gpu:2", "gpu:4"]);
    }

    #[test]
    fn assoc_rows() {
        let a = parse_assoc("fbtest||normal,short\n");
        assert_eq!(a[0].account, "fbtest");
        assert_eq!(a[0].qos, vec!["normal", "short"]);
    }

    #[test]
    fn a_hung_command_is_cut_off_quickly_enough() {
        assert!(run("false", &[]).is_err());
        assert_eq!(run("echo", &["hi"]).unwrap().trim(), "hi");
        assert!(run("/nonexistent-fb", &[]).is_err());
    }
}
