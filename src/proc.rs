//! Leaf module: run an external command with a time budget (a hung `squeue` or `sacctmgr`
//! must not hang `status` or `doctor`). It imports nothing from the crate.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Run `cmd` (stdin closed, stdout and stderr captured) and wait at most `budget`: `Ok(None)`
/// when it had not ended by then (it is killed), `Err` when it could not be started. Both
/// pipes are read on their own threads, so a large answer cannot block the child.
pub fn output_within(cmd: &mut Command, budget: Duration) -> std::io::Result<Option<Output>> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let t_out = read_all(Box::new(child.stdout.take().expect("piped stdout")));
    let t_err = read_all(Box::new(child.stderr.take().expect("piped stderr")));
    let t0 = Instant::now();
    let status = loop {
        match child.try_wait()? {
            Some(s) => break s,
            None if t0.elapsed() < budget => std::thread::sleep(Duration::from_millis(5)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(None);
            }
        }
    };
    Ok(Some(Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }))
}
