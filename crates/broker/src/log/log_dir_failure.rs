//! `LogDirFailureChannel`: where a log dir's I/O failure is reported, as in Kafka.
//!
//! Contract: a log whose read or write fails with an I/O error (other than a full disk,
//! which Fjord handles in place: see `LogManager::dirs_out_of_space`) reports its dir
//! here; the dir is offline from then on, for every log in it, until the broker
//! restarts. Each dir is reported to the broker's handler once (`take_next_offline_log_dir`),
//! which takes its logs out of service (`LogManager::handle_log_dir_failure`) and stops
//! the broker when no dir it can go on with is left. Why offline rather than retry:
//! after a failed write or fsync the log's memory and its files may disagree (a failed
//! fsync may even have dropped the dirty pages it failed on), so nothing more is
//! appended there and nothing is acknowledged from it; a restart recovers the dir from
//! what its files hold. Lock-free flags for the hot path; the queue holds each dir at
//! most once, so it is bounded by the number of dirs.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Debug)]
pub struct LogDirFailureChannel {
    dirs: Vec<PathBuf>,
    offline: Vec<AtomicBool>,
    /// Dirs gone offline that the handler has not taken yet.
    pending: Mutex<VecDeque<usize>>,
    notify: tokio::sync::Notify,
}

impl LogDirFailureChannel {
    pub fn new(dirs: Vec<PathBuf>) -> LogDirFailureChannel {
        LogDirFailureChannel {
            offline: dirs.iter().map(|_| AtomicBool::new(false)).collect(),
            dirs,
            pending: Mutex::new(VecDeque::new()),
            notify: tokio::sync::Notify::new(),
        }
    }

    /// Takes dir `index` offline because of `error`; the first report is logged and
    /// queued for the handler, later ones are ignored.
    pub fn maybe_add_offline_log_dir(&self, index: usize, error: &dyn std::fmt::Display) {
        assert!(index < self.dirs.len(), "a log dir the broker has");
        if self.offline[index].swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::error!(dir = %self.dirs[index].display(), %error, "log dir failed; it is offline until the broker restarts");
        crate::sync::lock(&self.pending).push_back(index);
        self.notify.notify_one();
    }

    pub fn has_offline_log_dir(&self, index: usize) -> bool {
        self.offline[index].load(Ordering::SeqCst)
    }

    pub fn online_count(&self) -> usize {
        self.offline.iter().filter(|o| !o.load(Ordering::SeqCst)).count()
    }

    /// Waits for the next dir gone offline.
    pub async fn take_next_offline_log_dir(&self) -> usize {
        loop {
            let notified = self.notify.notified();
            if let Some(index) = crate::sync::lock(&self.pending).pop_front() {
                return index;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dir_is_taken_offline_and_handed_over_once() {
        let channel = LogDirFailureChannel::new(vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(channel.online_count(), 2);
        channel.maybe_add_offline_log_dir(1, &"EIO");
        channel.maybe_add_offline_log_dir(1, &"EIO again");
        assert!(channel.has_offline_log_dir(1) && !channel.has_offline_log_dir(0));
        assert_eq!(channel.online_count(), 1);
        assert_eq!(channel.take_next_offline_log_dir().await, 1);
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            channel.take_next_offline_log_dir(),
        );
        assert!(waiting.await.is_err(), "a dir is handed over once");
    }
}
