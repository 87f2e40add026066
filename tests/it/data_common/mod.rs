//! Drives a data client through the `Client`/`Worker` contract the way the load engine does
//! (setup → connect per worker → closed-loop requests → teardown), for client-level tests.
#![allow(dead_code)]

use factorybench::recipe::{self, Service};
use factorybench::runner::client::{Client, DriverCtl, Outcome, RequestCtx, RunMetric};
use factorybench::runner::clients::make_client;
use factorybench::runner::clock::Clock;
use factorybench::runner::rng::Rng;
use std::path::Path;
use std::sync::Arc;

pub fn service(yaml: &str) -> Service {
    match recipe::parse_str(yaml, Path::new("test.yml")) {
        Ok(l) => l.plan.services[0].clone(),
        Err(e) => panic!("recipe invalid: {e:?}"),
    }
}

pub fn client(yaml: &str) -> Arc<dyn Client> {
    make_client(&service(yaml)).unwrap_or_else(|e| panic!("make_client: {e}"))
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Rec {
    pub outcome: Outcome,
    pub first_byte: bool,
}

/// `workers` workers, each sending `per_worker` requests back to back.
pub async fn drive(client: &Arc<dyn Client>, workers: u32, per_worker: u64, seed: u64) -> Vec<Rec> {
    let clock = Clock::new();
    let mut handles = Vec::new();
    for w in 0..workers {
        let c = client.clone();
        handles.push(tokio::spawn(async move {
            let mut worker = c
                .connect(w)
                .await
                .unwrap_or_else(|e| panic!("connect: {e}"));
            let mut rng = Rng::for_stream(seed, w as u64);
            let mut out = Vec::new();
            for i in 0..per_worker {
                let mut ctx = RequestCtx {
                    worker: w,
                    seq: w as u64 * per_worker + i,
                    rng: &mut rng,
                    clock: &clock,
                    sent_ns: clock.now_ns(),
                    first_byte_ns: None,
                };
                let outcome = worker.request(&mut ctx).await;
                let first_byte = ctx.first_byte_ns.is_some();
                out.push(Rec {
                    outcome,
                    first_byte,
                });
            }
            out
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("worker task"));
    }
    all
}

pub fn count(recs: &[Rec], op: &str) -> usize {
    recs.iter().filter(|r| r.outcome.op == op).count()
}

pub fn errors(recs: &[Rec]) -> Vec<&Outcome> {
    recs.iter()
        .map(|r| &r.outcome)
        .filter(|o| o.error.is_some())
        .collect()
}

pub fn metric(ms: &[RunMetric], name: &str) -> Option<f64> {
    ms.iter().find(|m| m.name == name).map(|m| m.value)
}

/// A loopback port nothing listens on (bound, then released).
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `budget` requests through the client's closed-loop driver ([`Client::closed_driver`]) of
/// `clients` clients, on a blocking thread as the engine runs it; `at(k)` runs on that thread
/// before the `k`-th request is handed out (it may block: the requests in flight wait).
/// Returns every request recorded, in order, or None when the client has no driver.
pub async fn drive_closed(
    client: &Arc<dyn Client>,
    clients: u32,
    budget: u64,
    seed: u64,
    at: impl FnMut(u64) + Send + 'static,
) -> Option<Vec<Rec>> {
    let ids: Vec<u32> = (0..clients).collect();
    let driver = client.closed_driver(&ids).await.expect("driver")?;
    let mut ctl = Ctl {
        clock: Clock::new(),
        budget,
        handed: 0,
        seed,
        at: Box::new(at),
        recs: Vec::new(),
    };
    let recs = tokio::task::spawn_blocking(move || {
        driver.run(&mut ctl);
        ctl.recs
    })
    .await
    .expect("driver thread");
    Some(recs)
}

struct Ctl {
    clock: Clock,
    budget: u64,
    handed: u64,
    seed: u64,
    at: Box<dyn FnMut(u64) + Send>,
    recs: Vec<Rec>,
}

impl DriverCtl for Ctl {
    fn wait_start(&self) {}
    fn now_ns(&self) -> i64 {
        self.clock.now_ns()
    }
    fn next(&mut self, _client: u32) -> Option<(u64, i64)> {
        if self.handed >= self.budget {
            return None;
        }
        (self.at)(self.handed);
        self.handed += 1;
        Some((self.handed - 1, self.clock.now_ns()))
    }
    fn done(
        &mut self,
        _client: u32,
        _seq: u64,
        sent_ns: i64,
        first_byte_ns: Option<i64>,
        done_ns: i64,
        o: &Outcome,
    ) {
        assert!(sent_ns <= done_ns);
        if let Some(fb) = first_byte_ns {
            assert!(sent_ns <= fb && fb <= done_ns);
        }
        self.recs.push(Rec {
            outcome: o.clone(),
            first_byte: first_byte_ns.is_some(),
        });
    }
    fn stopping(&self) -> bool {
        false
    }
    fn timeout_ns(&self) -> i64 {
        10_000_000_000
    }
    fn grace_ns(&self) -> i64 {
        1_000_000_000
    }
    fn seed(&self) -> u64 {
        self.seed
    }
}
