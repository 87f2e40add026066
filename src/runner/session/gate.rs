//! The start gate: the services a session starts together begin their load together.
//!
//! A local `run` of several services starts them at once, and their setups take different
//! times (a ChromaDB service encodes its vectors, a PostgreSQL service seeds its table). Without
//! the gate, the first service to finish its setup would measure while another's setup still
//! loads the machine, and its figures would be the worse for it (the generator-lag gate would
//! catch it, but the run would be wasted). With it, the first run of each service waits, after
//! its own setup, until every other one's setup has ended, succeeded or failed.
//!
//! Each waiting run holds a [`Ticket`]. A ticket dropped without passing (a setup that failed,
//! a group that never started its first run because of a stop) still counts as arrived, so no
//! run waits for one that will never come. A stop (a signal) opens the gate at once.

use crate::runner::engine::StopFlag;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often a waiting run looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// The gate of one session: how many tickets have not arrived yet.
pub(super) struct Gate {
    remaining: watch::Sender<usize>,
}

impl Gate {
    /// A gate for `n` runs: `n` tickets. `None` when there is nothing to wait for (one run).
    pub(super) fn tickets(n: usize) -> Option<Vec<Ticket>> {
        if n < 2 {
            return None;
        }
        let gate = Arc::new(Gate {
            remaining: watch::Sender::new(n),
        });
        Some(
            (0..n)
                .map(|_| Ticket {
                    gate: Some(gate.clone()),
                })
                .collect(),
        )
    }

    fn arrive(&self) {
        self.remaining.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// One run's place at the gate.
pub struct Ticket {
    gate: Option<Arc<Gate>>,
}

/// What [`Ticket::pass`] saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Passed {
    /// How long the run waited for the others.
    pub waited: Duration,
    /// How many others it waited for when it arrived.
    pub waited_for: usize,
}

impl Ticket {
    /// Arrive, and wait until every other ticket has arrived (or `stop` is set).
    pub async fn pass(mut self, stop: &StopFlag) -> Passed {
        let gate = self.gate.take().expect("a ticket passes once");
        gate.arrive();
        let mut rx = gate.remaining.subscribe();
        let waited_for = *rx.borrow();
        let t0 = tokio::time::Instant::now();
        loop {
            if *rx.borrow_and_update() == 0 || stop.get().is_some() {
                break;
            }
            // The sender lives in `gate`, which this ticket holds: `changed` cannot fail.
            let _ = tokio::time::timeout(STOP_POLL, rx.changed()).await;
        }
        Passed {
            waited: t0.elapsed(),
            waited_for,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(g) = self.gate.take() {
            g.arrive();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StopSignal;

    #[test]
    fn one_run_has_no_gate() {
        assert!(Gate::tickets(1).is_none());
        assert!(Gate::tickets(0).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn every_run_passes_only_after_the_last_arrives() {
        let stop = StopFlag::new();
        let mut t = Gate::tickets(3).unwrap();
        let (c, b, a) = (t.pop().unwrap(), t.pop().unwrap(), t.pop().unwrap());
        let s = stop.clone();
        let first = tokio::spawn(async move { a.pass(&s).await });
        tokio::time::sleep(Duration::from_secs(2)).await;
        let s = stop.clone();
        let second = tokio::spawn(async move { b.pass(&s).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!first.is_finished() && !second.is_finished());
        let last = c.pass(&stop).await;
        let (first, second) = (first.await.unwrap(), second.await.unwrap());
        assert_eq!(first.waited_for, 2);
        assert_eq!(second.waited_for, 1);
        assert_eq!(last.waited_for, 0);
        assert!(first.waited >= Duration::from_secs(3), "{first:?}");
        assert!(second.waited >= Duration::from_secs(1), "{second:?}");
        assert_eq!(last.waited, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_ticket_counts_as_arrived() {
        let stop = StopFlag::new();
        let mut t = Gate::tickets(2).unwrap();
        let failed_setup = t.pop().unwrap();
        let waiting = t.pop().unwrap();
        let s = stop.clone();
        let w = tokio::spawn(async move { waiting.pass(&s).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!w.is_finished());
        drop(failed_setup);
        let p = w.await.unwrap();
        assert!(p.waited >= Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_opens_the_gate() {
        let stop = StopFlag::new();
        let mut t = Gate::tickets(2).unwrap();
        let _never = t.pop().unwrap();
        let waiting = t.pop().unwrap();
        let s = stop.clone();
        let w = tokio::spawn(async move { waiting.pass(&s).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!w.is_finished());
        stop.set(StopSignal::Term);
        let p = w.await.unwrap();
        assert!(p.waited < Duration::from_secs(2), "{p:?}");
    }
}
