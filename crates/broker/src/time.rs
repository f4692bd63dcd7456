//! The clock handle. Code that needs the time takes a `Time`, so tests can drive it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub enum Time {
    System,
    /// A manual clock for deterministic tests.
    Manual(Arc<AtomicI64>),
}

impl Time {
    pub fn now_ms(&self) -> i64 {
        match self {
            Time::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            Time::Manual(ms) => ms.load(Ordering::SeqCst),
        }
    }

    pub fn manual(start_ms: i64) -> Time {
        Time::Manual(Arc::new(AtomicI64::new(start_ms)))
    }

    /// Advances a manual clock; a no-op on the system clock.
    pub fn advance_ms(&self, ms: i64) {
        if let Time::Manual(t) = self {
            t.fetch_add(ms, Ordering::SeqCst);
        }
    }
}
