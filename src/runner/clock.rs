//! Monotonic time expressed as Unix-epoch nanoseconds.
//!
//! All request timestamps come from one monotonic clock anchored to the wall clock once at
//! run start, so differences are exact and absolute times are comparable across nodes (to the
//! accuracy of NTP at the anchor).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor: Instant,
    anchor_epoch_ns: i64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        let anchor = Instant::now();
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as i64;
        Clock {
            anchor,
            anchor_epoch_ns: epoch,
        }
    }

    pub fn now_ns(&self) -> i64 {
        self.at(Instant::now())
    }

    /// Epoch nanoseconds of a monotonic instant.
    pub fn at(&self, t: Instant) -> i64 {
        if t >= self.anchor {
            self.anchor_epoch_ns + (t - self.anchor).as_nanos() as i64
        } else {
            self.anchor_epoch_ns - (self.anchor - t).as_nanos() as i64
        }
    }

    /// The monotonic instant of an epoch-ns timestamp.
    pub fn instant(&self, epoch_ns: i64) -> Instant {
        let d = epoch_ns - self.anchor_epoch_ns;
        if d >= 0 {
            self.anchor + std::time::Duration::from_nanos(d as u64)
        } else {
            self.anchor - std::time::Duration::from_nanos((-d) as u64)
        }
    }
}
