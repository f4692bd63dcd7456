//! The network threads (`num.network.threads`): each is an OS thread running a
//! single-threaded tokio runtime, and serves the connections handed to it from accept to
//! close. The acceptor, the background tasks and the blocking pool live elsewhere.
//!
//! Why not one multi-threaded runtime: with a multi-threaded tokio runtime, a socket
//! that turns readable wakes whichever worker is parked on the I/O driver, and that
//! worker hands the connection's task to the other through the shared queue and a
//! futex wake. On this 2-vCPU VM, one producer at 800 MB/s cost the broker 9,500-11,000
//! voluntary context switches per 2 GB (one worker did 7,568 of them on 12 ticks of
//! CPU: woken only to pass the task on), against 2,400-3,000 with the task kept on one
//! thread, and 0.66 against 0.30-0.35 CPU-s/GiB. Each of those wake-ups also preempts
//! the producer on the other vCPU. A connection that stays on one thread has no one
//! to hand its task to.
//!
//! The cost: a connection whose request blocks its thread (an O_DIRECT append waiting
//! for the device, a fetch reading from disk) delays the other connections of that
//! thread for that time, where a multi-threaded runtime could move them to a free
//! worker. A new connection therefore goes to the thread serving the fewest.
//!
//! Limits: the number of threads is `num.network.threads` (at most
//! `config::NUM_NETWORK_THREADS_MAX`); what a thread holds is bounded by `max.connections`.

use crate::config::NUM_NETWORK_THREADS_MAX;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

/// The running network threads. Dropping it (or `shutdown`) stops them: each drops its
/// connections' tasks at their next await and the thread is joined, so once it returns
/// no connection handles a request any more.
#[derive(Debug)]
pub struct NetworkThreads {
    threads: Vec<NetworkThread>,
    stop: watch::Sender<bool>,
}

#[derive(Debug)]
struct NetworkThread {
    handle: tokio::runtime::Handle,
    /// Connections this thread serves now: counted up when one is handed over, down
    /// when its task ends or is dropped.
    connections: Arc<AtomicUsize>,
    join: Option<std::thread::JoinHandle<()>>,
}

/// Counts a connection off its thread when its task ends, however it ends.
struct ConnectionCount(Arc<AtomicUsize>);

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        let before = self.0.fetch_sub(1, Ordering::Relaxed);
        assert!(before > 0, "a network thread's connection count went below zero");
    }
}

impl NetworkThreads {
    /// Starts `count` threads named `fjord-network-<i>`; returns once each is running.
    pub fn start(count: usize) -> std::io::Result<NetworkThreads> {
        assert!(
            (1..=NUM_NETWORK_THREADS_MAX).contains(&count),
            "num.network.threads out of range: {count}"
        );
        let (stop, _) = watch::channel(false);
        let mut threads = Vec::with_capacity(count);
        let (running_tx, running) = std::sync::mpsc::sync_channel::<()>(count);
        for i in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let handle = runtime.handle().clone();
            let mut stopped = stop.subscribe();
            let running_tx = running_tx.clone();
            let join = std::thread::Builder::new()
                .name(format!("fjord-network-{i}"))
                .spawn(move || {
                    let _ = running_tx.send(());
                    runtime.block_on(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    });
                    // Dropping the runtime drops every task still on it.
                    drop(runtime);
                })?;
            threads.push(NetworkThread {
                handle,
                connections: Arc::new(AtomicUsize::new(0)),
                join: Some(join),
            });
        }
        drop(running_tx);
        let threads = NetworkThreads { threads, stop };
        for _ in 0..count {
            // A thread that died before it ran drops its sender; its join reports it.
            if running.recv().is_err() {
                break;
            }
        }
        Ok(threads)
    }

    /// Connections each thread serves now, in thread order.
    pub fn connections(&self) -> Vec<usize> {
        self.threads
            .iter()
            .map(|t| t.connections.load(Ordering::Relaxed))
            .collect()
    }

    /// Runs a connection's task on the thread serving the fewest connections. The task
    /// is first polled there, so a socket it registers (`TcpStream::from_std`) belongs
    /// to that thread's I/O driver.
    pub fn spawn<F>(&self, connection: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(thread) = self
            .threads
            .iter()
            .min_by_key(|t| t.connections.load(Ordering::Relaxed))
        else {
            unreachable!("NetworkThreads::start makes at least one thread")
        };
        thread.connections.fetch_add(1, Ordering::Relaxed);
        let count = ConnectionCount(thread.connections.clone());
        thread.handle.spawn(async move {
            let _count = count;
            connection.await;
        });
    }

    /// Stops every thread and waits for them. Blocking: call it off the async workers.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.send_replace(true);
        for t in &mut self.threads {
            if let Some(join) = t.join.take() {
                if join.join().is_err() {
                    tracing::error!("a network thread panicked");
                }
            }
        }
    }
}

impl Drop for NetworkThreads {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Sends its name on the channel when dropped: shows a task was dropped, not left.
    struct DropSignal(mpsc::Sender<&'static str>, &'static str);

    impl Drop for DropSignal {
        fn drop(&mut self) {
            let _ = self.0.send(self.1);
        }
    }

    fn wait_for_counts(threads: &NetworkThreads, expected: &[usize]) {
        for _ in 0..500 {
            if threads.connections() == expected {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(threads.connections(), expected);
    }

    /// Each connection goes to the thread serving the fewest, runs on that thread, and is
    /// counted off when it ends; shutdown drops the ones still running.
    #[test]
    fn connections_go_to_the_least_loaded_thread_and_stop_with_it() {
        let threads = NetworkThreads::start(2).expect("threads");
        assert_eq!(threads.connections(), vec![0, 0]);
        let (names_tx, names) = mpsc::channel();
        let (dropped_tx, dropped) = mpsc::channel();
        let mut finish = Vec::new();
        for label in ["a", "b", "c"] {
            let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
            finish.push(done_tx);
            let names_tx = names_tx.clone();
            let signal = DropSignal(dropped_tx.clone(), label);
            threads.spawn(async move {
                let _signal = signal;
                let name = std::thread::current().name().map(str::to_string);
                names_tx.send((label, name)).expect("send");
                let _ = done_rx.await;
            });
        }
        let mut seen: Vec<_> = (0..3)
            .map(|_| names.recv_timeout(Duration::from_secs(5)).expect("ran"))
            .collect();
        seen.sort();
        let thread_of = |i: usize| seen[i].1.clone().expect("named thread");
        // a: both empty, the first; b: the other; c: both hold one, the first again.
        assert_eq!(thread_of(0), "fjord-network-0");
        assert_eq!(thread_of(1), "fjord-network-1");
        assert_eq!(thread_of(2), "fjord-network-0");
        assert_eq!(threads.connections(), vec![2, 1]);

        // a ends: its count is given back.
        let _ = finish.remove(0).send(());
        assert_eq!(dropped.recv_timeout(Duration::from_secs(5)), Ok("a"));
        wait_for_counts(&threads, &[1, 1]);

        // b and c are still waiting when the threads stop: both are dropped.
        threads.shutdown();
        let mut rest: Vec<_> = dropped.try_iter().collect();
        rest.sort();
        assert_eq!(rest, vec!["b", "c"]);
    }

    #[test]
    #[should_panic(expected = "num.network.threads out of range")]
    fn zero_threads_is_a_broken_invariant() {
        let _ = NetworkThreads::start(0);
    }
}
