//! Drives a data client through the `Client`/`Worker` contract the way the load engine does
//! (setup → connect per worker → closed-loop requests → teardown), for client-level tests.
#![allow(dead_code)]

use factorybench::recipe::{self, Service};
use factorybench::runner::client::{Client, Outcome, RequestCtx, RunMetric};
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
