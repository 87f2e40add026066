//! `runner`: the node-side load engine, one client module per service kind, and the recorder.

pub mod capacity;
pub mod client;
pub mod clients;
pub mod clock;
pub mod cpu;
pub mod engine;
pub mod hiccup;
pub mod lifecycle;
pub mod live;
pub mod owner;
pub mod placement;
pub mod progress;
pub mod provenance;
pub mod ready;
pub use crate::rng;
pub mod schedule;
pub mod session;
pub mod timer;
