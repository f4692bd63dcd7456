//! Device flushes (fsync, fdatasync) of log dirs' files, counted while they run, so
//! that O_DIRECT appends can step aside: while one is in flight, `LogSegment::append`
//! writes through the page cache instead.
//!
//! Why: a flush makes the disk write out its volatile cache, and on this machine's
//! virtual disk every write queued behind it waits until it ends: 0.1 to 1 s for the
//! fdatasync of a rolled 1 GiB segment (the host writes the segment's data then). An
//! O_DIRECT append is a device write, so each roll stalled produce for that long: a
//! bare loop of 1 MiB O_DIRECT writes at 200 MiB/s, rolling a file every 1 GiB and
//! fdatasyncing it on another thread, saw its writes late by 157 ms at the p99, 260 ms
//! at the p99.9; the same loop writing through the page cache while a flush ran: 2.3
//! and 30 ms (2026-12-05; the flushes themselves took 0.15-1.0 s in both). Deferring
//! the flush did not help: 10 s after the roll it still took up to 0.4 s. A buffered
//! append waits for no device; its pages are written back later, and by the next
//! flush of the segment at the latest, so the durability of a flush is unchanged.
//!
//! Process-wide, not per log dir: a broker's log dirs usually share the device, and
//! where they do not, an append that goes through the page cache during another
//! device's flush costs only the copy.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Flushes running now, in every thread.
static FLUSHES_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Appends of O_DIRECT segments since start-up: written O_DIRECT, and written through
/// the page cache because a flush ran (reported at shutdown: how often the device's
/// flushes would have held produce back).
static APPENDS_DIRECT: AtomicU64 = AtomicU64::new(0);
static APPENDS_STEPPED_ASIDE: AtomicU64 = AtomicU64::new(0);

/// Counts an O_DIRECT segment's append; `stepped_aside`: through the page cache.
pub fn count_append(stepped_aside: bool) {
    let counter = if stepped_aside {
        &APPENDS_STEPPED_ASIDE
    } else {
        &APPENDS_DIRECT
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// (O_DIRECT appends, appends through the page cache during a flush) since start-up.
pub fn append_counts() -> (u64, u64) {
    (
        APPENDS_DIRECT.load(Ordering::Relaxed),
        APPENDS_STEPPED_ASIDE.load(Ordering::Relaxed),
    )
}

/// Whether a flush runs now: an O_DIRECT append would wait behind it.
pub fn in_flight() -> bool {
    FLUSHES_IN_FLIGHT.load(Ordering::Relaxed) > 0
}

/// Counts one flush while it lives (dropped on every path, a panic's included); made
/// only by `enter`.
pub(crate) struct InFlight {
    _counted: (),
}

impl InFlight {
    pub(crate) fn enter() -> InFlight {
        let before = FLUSHES_IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        assert!(before < usize::MAX / 2, "flushes in flight are counted, not leaked");
        InFlight { _counted: () }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let before = FLUSHES_IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
        assert!(before > 0, "a flush leaves only after it entered");
    }
}

/// `File::sync_data`, counted.
pub fn sync_data(file: &File) -> io::Result<()> {
    let _flush = InFlight::enter();
    file.sync_data()
}

/// `File::sync_all`, counted.
pub fn sync_all(file: &File) -> io::Result<()> {
    let _flush = InFlight::enter();
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The count is up while a flush runs and back down after it, a failed or
    /// panicking one included. (nextest runs each test in a process of its own, so
    /// no other test's flushes move the count.)
    #[test]
    fn flushes_are_counted_while_they_run() {
        let dir = std::env::temp_dir().join(format!("fjord-device-flush-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = File::create(dir.join("f")).expect("create");
        assert!(!in_flight());
        {
            let _flush = InFlight::enter();
            assert!(in_flight());
        }
        assert!(!in_flight());
        sync_data(&file).expect("fdatasync");
        sync_all(&file).expect("fsync");
        assert!(!in_flight());
        let (read_end, _write_end) = std::io::pipe().expect("pipe");
        let pipe = File::from(std::os::fd::OwnedFd::from(read_end));
        assert!(sync_all(&pipe).is_err(), "a pipe cannot be fsynced");
        assert!(!in_flight());
        let panicked = std::panic::catch_unwind(|| {
            let _flush = InFlight::enter();
            panic!("inside a flush");
        });
        assert!(panicked.is_err());
        assert!(!in_flight());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
