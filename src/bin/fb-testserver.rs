//! A tiny loopback HTTP/1.1 server for tests and benchmarks (not part of the product).
//!
//! `fb-testserver [--port P] [--status CODE] [--body-bytes N] [--delay-ms MS]
//!                [--stall-after N --stall-ms MS] [--idle-close-ms MS]`
//! Binds 127.0.0.1 only, prints `port=<P>` on stdout, then serves keep-alive connections, one
//! thread per connection. `--stall-after N --stall-ms MS` makes the server stop answering for
//! MS milliseconds once, after N requests (all connections wait), for the
//! coordinated-omission demo. `--idle-close-ms MS` closes a kept-alive connection on which no
//! new request starts within MS milliseconds of the last response, as nginx's
//! `keepalive_timeout` and uvicorn's `--timeout-keep-alive` do.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

struct Cfg {
    status: u16,
    body: Vec<u8>,
    delay: Duration,
    stall_after: Option<u64>,
    stall: Duration,
    idle_close: Option<Duration>,
}

struct Stall {
    until: Mutex<Option<Instant>>,
    cv: Condvar,
}

#[allow(clippy::disallowed_macros)] // a test server: its reader never closes stdout early
fn main() {
    let mut port = 0u16;
    let mut cfg = Cfg {
        status: 200,
        body: b"ok".to_vec(),
        delay: Duration::ZERO,
        stall_after: None,
        stall: Duration::ZERO,
        idle_close: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = || args.get(i + 1).cloned().unwrap_or_default();
        let num = |s: String| -> u64 {
            s.parse().unwrap_or_else(|_| {
                eprintln!("fb-testserver: bad number `{s}`");
                std::process::exit(2)
            })
        };
        match args[i].as_str() {
            "--port" => port = num(v()) as u16,
            "--status" => cfg.status = num(v()) as u16,
            "--body-bytes" => cfg.body = vec![b'x'; num(v()) as usize],
            "--delay-ms" => cfg.delay = Duration::from_millis(num(v())),
            "--stall-after" => cfg.stall_after = Some(num(v())),
            "--stall-ms" => cfg.stall = Duration::from_millis(num(v())),
            "--idle-close-ms" => cfg.idle_close = Some(Duration::from_millis(num(v()).max(1))),
            other => {
                eprintln!("fb-testserver: unknown argument `{other}`");
                std::process::exit(2)
            }
        }
        i += 2;
    }
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind 127.0.0.1");
    println!("port={}", listener.local_addr().expect("addr").port());
    let _ = std::io::stdout().flush();
    let cfg = Arc::new(cfg);
    let count = Arc::new(AtomicU64::new(0));
    let stall = Arc::new(Stall {
        until: Mutex::new(None),
        cv: Condvar::new(),
    });
    for s in listener.incoming().flatten() {
        let (cfg, count, stall) = (cfg.clone(), count.clone(), stall.clone());
        std::thread::spawn(move || {
            let _ = serve(s, &cfg, &count, &stall);
        });
    }
}

fn serve(s: TcpStream, cfg: &Cfg, count: &AtomicU64, stall: &Stall) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    let head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n",
        cfg.status,
        cfg.body.len()
    );
    let mut resp = head.into_bytes();
    resp.extend_from_slice(&cfg.body);
    let mut line = String::new();
    loop {
        // Request line and headers.
        let mut content_length = 0usize;
        let mut first = true;
        // Idle between requests: wait at most `idle_close` for the next one to start.
        r.get_ref().set_read_timeout(cfg.idle_close)?;
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e)
                    if first
                        && line.is_empty()
                        && matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                {
                    // Keep-alive timeout: close the idle connection (FIN, as nginx does).
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
            if first {
                r.get_ref().set_read_timeout(None)?;
            }
            if line == "\r\n" || line == "\n" {
                if first {
                    continue;
                }
                break;
            }
            first = false;
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    content_length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        if content_length > 0 {
            let mut body = vec![0u8; content_length];
            r.read_exact(&mut body)?;
        }
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        if cfg.stall_after == Some(n) {
            let mut u = stall.until.lock().expect("lock");
            *u = Some(Instant::now() + cfg.stall);
        }
        {
            let mut u = stall.until.lock().expect("lock");
            while let Some(t) = *u {
                let now = Instant::now();
                if now >= t {
                    *u = None;
                    stall.cv.notify_all();
                    break;
                }
                u = stall.cv.wait_timeout(u, t - now).expect("lock").0;
            }
        }
        if !cfg.delay.is_zero() {
            std::thread::sleep(cfg.delay);
        }
        w.write_all(&resp)?;
    }
}
