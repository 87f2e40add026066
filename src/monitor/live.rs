//! What a push is made of: every [`LiveSource`] renders its current figures into the
//! exposition (the engine's live snapshot, node and GPU telemetry).

use super::expo::Exposition;

/// Anything that contributes samples to a push.
pub trait LiveSource: Send + Sync {
    fn render(&self, out: &mut Exposition);
}
