//! Never measure someone else's server: which process holds the listening TCP socket of a port
//! on this node, and whether it is the service this job started (its process or one of its
//! descendants). Two jobs given the same port on one node (two campaigns in one second, two
//! users) both pass a "port free" check; the one whose server then fails to bind would pass
//! readiness against the other's server. Linux `/proc` only: the socket's inode from
//! `/proc/net/tcp{,6}` (the reader's network namespace, which is the service's on its node),
//! matched against `/proc/<pid>/fd`.

use std::collections::HashSet;

/// Who holds the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// A process of the service's own tree listens on it.
    Ours { pid: u32 },
    /// Someone else listens on it: the processes found (pid, command), and the socket's uid.
    Theirs {
        holders: Vec<(u32, String)>,
        uid: u32,
    },
    /// Nothing listens on the port in this network namespace (the service listens elsewhere,
    /// e.g. inside a container's own namespace): no proof either way.
    NoListener,
}

/// The inodes and uids of the sockets listening on `port` (IPv4 and IPv6, any address).
pub fn listeners(port: u16) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let Some(p) = f[1].rsplit_once(':').map(|(_, p)| p) else {
                continue;
            };
            if u16::from_str_radix(p, 16).ok() != Some(port) {
                continue;
            }
            if let (Ok(uid), Ok(inode)) = (f[7].parse::<u32>(), f[9].parse::<u64>()) {
                if inode != 0 {
                    out.push((inode, uid));
                }
            }
        }
    }
    out
}

/// `pid` and every descendant (from each process's parent in `/proc/<pid>/stat`).
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
                if let Some((_, rest)) = stat.rsplit_once(')') {
                    if let Some(ppid) = rest.split_whitespace().nth(1) {
                        if let Ok(ppid) = ppid.parse::<u32>() {
                            parent_of.push((p, ppid));
                        }
                    }
                }
            }
        }
    }
    let mut tree = vec![pid];
    let mut seen: HashSet<u32> = HashSet::from([pid]);
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        for (c, pp) in &parent_of {
            if *pp == p && seen.insert(*c) {
                tree.push(*c);
            }
        }
        i += 1;
    }
    tree
}

/// Whether process `pid` holds one of the socket `inodes` (false when its fds are unreadable:
/// another user's process).
fn holds(pid: u32, inodes: &HashSet<u64>) -> bool {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    rd.flatten().any(|e| {
        std::fs::read_link(e.path()).is_ok_and(|l| {
            l.to_str()
                .and_then(|s| s.strip_prefix("socket:["))
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|i| inodes.contains(&i))
        })
    })
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Who listens on `port`: the service started as `owner` (or a descendant), or someone else.
pub fn check(port: u16, owner: u32) -> Ownership {
    let l = listeners(port);
    if l.is_empty() {
        return Ownership::NoListener;
    }
    let inodes: HashSet<u64> = l.iter().map(|x| x.0).collect();
    if let Some(p) = process_tree(owner).into_iter().find(|p| holds(*p, &inodes)) {
        return Ownership::Ours { pid: p };
    }
    // Name the holders this user can see (another user's processes stay anonymous).
    let mut holders = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                if holds(p, &inodes) {
                    holders.push((p, comm(p)));
                }
            }
        }
    }
    Ownership::Theirs {
        holders,
        uid: l[0].1,
    }
}

/// A user name for `uid` from /etc/passwd (the number when unknown).
pub fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_of_this_process_is_ours_and_not_a_strangers() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let me = std::process::id();
        assert_eq!(check(port, me), Ownership::Ours { pid: me });
        // Held by this process, but the "service" is pid 1's tree minus us: not ours.
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        match check(port, sleeper.id()) {
            Ownership::Theirs { holders, .. } => {
                assert!(holders.iter().any(|(p, _)| *p == me), "{holders:?}")
            }
            o => panic!("{o:?}"),
        }
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        drop(l);
        assert_eq!(check(port, me), Ownership::NoListener);
    }
}
