//! The broker process: shared state (`Broker`), the listener and its connection limit,
//! background tasks (retention, flush, checkpoints) and clean shutdown.
//!
//! - `connection`: one task per client connection (read, dispatch, write, in turn).
//! - `handlers`: one module per group of Kafka APIs.
//! - `network_threads`: the threads connections are served on (`num.network.threads`).
//! - `topics`: creating, growing, deleting topics and their logs.

pub mod connection;
pub mod groups;
pub mod handlers;
pub mod network_threads;
pub mod topics;

use crate::config::{BrokerConfig, TopicConfig};
use crate::group::assignor::Assignor;
use crate::group::coordinator::GroupConfig;
use crate::group::GroupCoordinator;
use crate::log::{LogError, LogManager};
use crate::metadata::{MetadataError, TopicRegistry};
use crate::time::Time;
use network_threads::NetworkThreads;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// A bound listener: its name (which advertised address its clients are told) and
/// its socket.
#[derive(Debug)]
pub struct BoundListener {
    pub name: Arc<str>,
    pub local_addr: SocketAddr,
    listener: TcpListener,
}

/// Everything a request handler may touch. One per process, shared by `Arc`.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    pub cluster_id: String,
    pub time: Time,
    pub logs: LogManager,
    pub topics: TopicRegistry,
    pub groups: GroupCoordinator,
    /// Held while `__consumer_offsets` is looked up or created.
    pub offsets_topic_creation: std::sync::Mutex<()>,
    /// Held by every change to topics and configs (create, delete, new partitions,
    /// topic and broker configs) from reading the metadata to applying it to the logs,
    /// as Kafka's controller makes them one at a time: a CreatePartitions and an
    /// AlterConfigs of one topic each wrote back the other's old half. Taken after
    /// `offsets_topic_creation`, never before.
    pub topic_admin: std::sync::Mutex<()>,
    /// Broker-level config overrides set with (Incremental)AlterConfigs.
    pub dynamic_configs: RwLock<crate::config::DynamicBrokerConfigs>,
    /// The addresses the listeners actually bound (port 0 resolved), by listener name.
    pub bound_addrs: RwLock<BTreeMap<String, SocketAddr>>,
    /// When a flush of rolled segments last logged its failure (`due_to_log`).
    flush_error_logged_ms: std::sync::atomic::AtomicI64,
    /// When creating `__consumer_offsets` last logged its failure (`due_to_log`).
    offsets_topic_error_logged_ms: std::sync::atomic::AtomicI64,
    shutdown: watch::Sender<bool>,
    /// Why the broker stopped by itself (every usable log dir failed), if it did.
    fatal_error: std::sync::Mutex<Option<String>>,
}

impl Broker {
    /// Opens the log dirs, loads (and if needed recovers) every partition.
    pub fn open(config: BrokerConfig, time: Time) -> Result<Arc<Broker>, BrokerError> {
        let cluster_id = LogManager::stored_cluster_id(&config.log_dirs)
            .or_else(|| config.cluster_id.clone())
            .unwrap_or_else(|| crate::log::checkpoint::topic_id_to_string(uuid::Uuid::new_v4()));
        let mut logs = LogManager::new(config.log_dirs.clone(), &cluster_id, config.node_id)?;
        logs.direct_io = config.log_direct_io;
        let topics = TopicRegistry::open(&config.log_dirs[0])?;
        let dynamic = crate::config::DynamicBrokerConfigs {
            cluster_default: topics.broker_configs(None),
            per_broker: topics.broker_configs(Some(config.node_id)),
        };
        let (shutdown, _) = watch::channel(false);
        let group_config = GroupConfig {
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            max_size: config.group_max_size,
            offset_metadata_max_bytes: config.offset_metadata_max_bytes,
            offsets_topic_num_partitions: config.offsets_topic_num_partitions,
            consumer_session_timeout_ms: config.group_consumer_session_timeout_ms,
            consumer_heartbeat_interval_ms: config.group_consumer_heartbeat_interval_ms,
            consumer_max_size: config.group_consumer_max_size,
            consumer_assignors: config
                .group_consumer_assignors
                .iter()
                .filter_map(|n| Assignor::from_name(n))
                .collect(),
            offsets_retention_ms: config.offsets_retention_ms,
            // Half the record limit: the stored member also carries its assignment.
            member_metadata_max_bytes: (config.topic_defaults.max_message_bytes.max(0) as usize) / 2,
            ..GroupConfig::default()
        };
        let groups = GroupCoordinator::new(group_config, time.clone());
        let broker = Arc::new(Broker {
            config,
            cluster_id,
            time,
            logs,
            topics,
            groups,
            offsets_topic_creation: std::sync::Mutex::new(()),
            topic_admin: std::sync::Mutex::new(()),
            dynamic_configs: RwLock::new(dynamic),
            bound_addrs: RwLock::new(BTreeMap::new()),
            flush_error_logged_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
            offsets_topic_error_logged_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
            shutdown,
            fatal_error: std::sync::Mutex::new(None),
        });
        let started = std::time::Instant::now();
        let count = topics::load_all(&broker)?;
        tracing::info!(
            partitions = count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "logs loaded"
        );
        let started = std::time::Instant::now();
        let records = groups::load(&broker);
        tracing::info!(
            records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "group offsets loaded"
        );
        Ok(broker)
    }

    /// Topic defaults: the static `log.*` keys with dynamic broker overrides on top.
    pub fn topic_defaults(&self) -> Result<TopicConfig, crate::config::ConfigError> {
        let dynamic = crate::sync::read(&self.dynamic_configs).effective();
        let mut defaults = self.config.topic_defaults.clone();
        for (k, v) in &dynamic {
            if let Some(spec) = crate::config::TOPIC_CONFIG_KEYS
                .iter()
                .find(|s| s.broker_key() == Some(k.as_str()))
            {
                defaults.apply(spec.name, v)?;
            }
        }
        Ok(defaults)
    }

    /// What a client connected through `listener` is told to connect to: that
    /// listener's advertised host and port (a port of 0 is the one it bound). `None`
    /// when the listener is not advertised; Kafka then lists no broker either.
    pub fn advertised(&self, listener: &str) -> Option<(String, i32)> {
        let l = self.config.listeners.advertised_for(listener)?;
        let port = if l.port == 0 {
            crate::sync::read(&self.bound_addrs)
                .get(listener)
                .map_or(0, |a| a.port())
        } else {
            l.port
        };
        Some((l.host.clone(), port as i32))
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Why the broker shut itself down, if it did: the process should exit non-zero.
    pub fn fatal_error(&self) -> Option<String> {
        crate::sync::lock(&self.fatal_error).clone()
    }

    /// Takes each log dir that goes offline out of service; shuts the broker down, as
    /// Kafka halts, when the dir holding the metadata (the first) fails or none is left.
    async fn handle_log_dir_failures(self: Arc<Self>) {
        loop {
            let index = self.logs.failure_channel().take_next_offline_log_dir().await;
            if self.logs.handle_log_dir_failure(index) {
                continue;
            }
            let dir = self.logs.log_dirs[index].display().to_string();
            let why = if index == 0 {
                format!("the log dir holding the cluster metadata ({dir}) has failed")
            } else {
                format!("every log dir has failed (the last: {dir})")
            };
            tracing::error!("shutting down the broker: {why}");
            *crate::sync::lock(&self.fatal_error) = Some(why);
            self.begin_shutdown();
            return;
        }
    }

    /// Binds every broker listener (not the controller's), in the order configured.
    pub async fn bind(&self) -> Result<Vec<BoundListener>, BrokerError> {
        let mut out = Vec::new();
        for l in self.config.listeners.broker() {
            let addr = l.socket_addr()?;
            let listener = TcpListener::bind(addr).await.map_err(|source| BrokerError::Bind {
                addr: format!("{l} ({addr})"),
                source,
            })?;
            let local = listener.local_addr().map_err(|source| BrokerError::Bind {
                addr: format!("{l} ({addr})"),
                source,
            })?;
            crate::sync::write(&self.bound_addrs).insert(l.name.clone(), local);
            out.push(BoundListener {
                name: Arc::from(l.name.as_str()),
                local_addr: local,
                listener,
            });
        }
        Ok(out)
    }

    /// Accepts connections on every listener until shutdown; at most
    /// `max.connections` at once over all of them, each served on one of `network`'s
    /// threads. Returns once every connection has stopped, so no request is handled
    /// after it.
    pub async fn serve(self: &Arc<Self>, listeners: Vec<BoundListener>, network: NetworkThreads) {
        let limit = Arc::new(Semaphore::new(self.config.max_connections));
        let tasks = tokio::spawn(background_tasks(self.clone()));
        let failures = tokio::spawn(self.clone().handle_log_dir_failures());
        let deletion = tokio::spawn(free_deleted_data(self.clone()));
        let group_ticks = {
            let broker = self.clone();
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(std::time::Duration::from_millis(50));
                loop {
                    interval.tick().await;
                    broker
                        .groups
                        .tick(&|group, records| groups::write_records(&broker, group, records));
                }
            })
        };
        let network = Arc::new(network);
        let accepting: Vec<_> = listeners
            .into_iter()
            .map(|l| tokio::spawn(self.clone().accept(l, limit.clone(), network.clone())))
            .collect();
        for a in accepting {
            let _ = a.await;
        }
        tasks.abort();
        failures.abort();
        deletion.abort();
        group_ticks.abort();
        // Every accept loop has ended and dropped its handle; connections hold none.
        let network = Arc::try_unwrap(network);
        assert!(
            network.is_ok(),
            "the network threads are shared after every accept loop ended"
        );
        if let Ok(network) = network {
            // Joining threads blocks: off this runtime.
            let _ = tokio::task::spawn_blocking(move || network.shutdown()).await;
        }
    }

    /// One listener's accept loop, until shutdown.
    async fn accept(self: Arc<Self>, bound: BoundListener, limit: Arc<Semaphore>, network: Arc<NetworkThreads>) {
        let mut shutdown = self.shutdown.subscribe();
        loop {
            let accepted = tokio::select! {
                a = bound.listener.accept() => a,
                // wait_for, not changed(): a shutdown requested before this task
                // subscribed must still end the loop.
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(listener = %bound.name, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                tracing::warn!(%peer, max = self.config.max_connections, "max.connections reached; closing new connection");
                drop(stream);
                continue;
            };
            // Out of this runtime's I/O driver, into the network thread's.
            let stream = match stream.into_std() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "cannot hand the connection over; closing it");
                    continue;
                }
            };
            let broker = self.clone();
            let client = connection::Client {
                peer,
                listener: bound.name.clone(),
            };
            network.spawn(async move {
                match tokio::net::TcpStream::from_std(stream) {
                    Ok(stream) => connection::serve(broker, stream, client).await,
                    Err(e) => tracing::warn!(%peer, error = %e, "cannot register the connection; closing it"),
                }
                drop(permit);
            });
        }
    }

    /// Flushes every log and writes checkpoints and the clean-shutdown markers.
    pub fn shutdown_logs(&self) -> Result<(), BrokerError> {
        self.logs.shutdown(self.time.now_ms())?;
        Ok(())
    }
}

/// Frees deleted partitions and segments once their `file.delete.delay.ms` is over, a
/// chunk at a time at `FILE_DELETE_BYTES_PER_SECOND` (`log::deletion` says why).
async fn free_deleted_data(broker: Arc<Broker>) {
    use crate::log::deletion::FILE_DELETE_BYTES_PER_SECOND;
    let idle = std::time::Duration::from_millis(200);
    loop {
        let b = broker.clone();
        let freed = tokio::task::spawn_blocking(move || b.logs.free_deleted(b.time.now_ms()))
            .await
            .unwrap_or(0);
        let pause = if freed == 0 {
            idle
        } else if !broker.logs.dirs_out_of_space().is_empty() {
            // Appends are failing for want of space: pacing would only keep them failing.
            std::time::Duration::ZERO
        } else {
            std::time::Duration::from_secs_f64(freed as f64 / FILE_DELETE_BYTES_PER_SECOND as f64)
        };
        tokio::time::sleep(pause).await;
    }
}

/// Retention, time-based flush and checkpoints, each on its own interval.
async fn background_tasks(broker: Arc<Broker>) {
    let tick_ms = 200u64;
    let mut since_retention = 0u64;
    let mut since_checkpoint = 0u64;
    let mut since_cleaning = 0u64;
    let mut since_offsets_expiry = 0u64;
    let mut since_producer_expiry = 0u64;
    let mut interval = tokio::time::interval(std::time::Duration::from_millis(tick_ms));
    loop {
        interval.tick().await;
        since_retention += tick_ms;
        since_checkpoint += tick_ms;
        since_cleaning += tick_ms;
        since_offsets_expiry += tick_ms;
        since_producer_expiry += tick_ms;
        if since_producer_expiry >= broker.config.producer_id_expiration_check_interval_ms as u64 {
            since_producer_expiry = 0;
            let now = broker.time.now_ms();
            for log in broker.logs.all() {
                let expired = log.remove_expired_producers(now, broker.config.producer_id_expiration_ms);
                if expired > 0 {
                    tracing::debug!(partition = %log.topic_partition, expired, "expired idle producers");
                }
            }
        }
        if since_offsets_expiry >= broker.config.offsets_retention_check_interval_ms as u64 {
            since_offsets_expiry = 0;
            groups::expire_offsets(&broker);
        }
        if broker.config.log_cleaner_enable && since_cleaning >= broker.config.log_cleaner_backoff_ms {
            since_cleaning = 0;
            let b = broker.clone();
            // The cleaner reads and rewrites whole segments: off the async workers.
            let _ = tokio::task::spawn_blocking(move || clean_compacted_logs(&b)).await;
        }
        let logs = broker.logs.all();
        let retain = broker.config.log_page_cache_retain_bytes;
        let b = broker.clone();
        // fsync is blocking: off the async workers.
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = b.logs.collect_deleted_segments(b.time.now_ms()) {
                tracing::error!(error = %e, "scheduling deleted segments failed");
            }
            let now_ms = b.time.now_ms();
            for log in logs {
                if let Err(e) = log.flush_rolled_segments() {
                    if due_to_log(&b.flush_error_logged_ms, now_ms) {
                        tracing::error!(partition = %log.topic_partition, error = %e, "flushing rolled segments failed (repeats are logged every 10 s)");
                    }
                }
                if let Err(e) = log.drop_page_cache_behind(retain) {
                    tracing::warn!(partition = %log.topic_partition, error = %e, "dropping page cache failed");
                }
                if let Err(e) = log.preallocate_next_segment() {
                    tracing::warn!(partition = %log.topic_partition, error = %e, "preallocating the next segment failed");
                }
            }
        })
        .await;
        let now = broker.time.now_ms();
        for log in broker.logs.all() {
            if let Err(e) = log.maybe_flush_by_time(now) {
                tracing::error!(partition = %log.topic_partition, error = %e, "flush failed");
            }
        }
        if since_retention >= broker.config.log_retention_check_interval_ms {
            since_retention = 0;
            for log in broker.logs.all() {
                match log.delete_old_segments(now) {
                    Ok(n) if n > 0 => {
                        tracing::info!(partition = %log.topic_partition, segments = n, "deleted segments past retention")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(partition = %log.topic_partition, error = %e, "retention failed")
                    }
                }
            }
        }
        if since_checkpoint >= broker.config.log_flush_offset_checkpoint_interval_ms {
            since_checkpoint = 0;
            if let Err(e) = broker.logs.checkpoint() {
                tracing::error!(error = %e, "checkpoint failed");
            }
        }
    }
}

/// Limit: an error that repeats every tick (a full disk fails every flush) is logged at
/// most this often, so it does not drown the rest of the log.
const REPEATED_ERROR_LOG_INTERVAL_MS: i64 = 10_000;

/// Whether an error whose last report was at `last_ms` is reported again now.
fn due_to_log(last_ms: &std::sync::atomic::AtomicI64, now_ms: i64) -> bool {
    use std::sync::atomic::Ordering;
    let last = last_ms.load(Ordering::Relaxed);
    if now_ms.saturating_sub(last) < REPEATED_ERROR_LOG_INTERVAL_MS {
        return false;
    }
    last_ms.store(now_ms, Ordering::Relaxed);
    true
}

/// Raises this process's soft limit on open files to its hard limit, as Kafka's
/// operators are told to: each partition holds its segment open, and a limit of 1,024
/// would refuse the thousandth partition. Returns the limit now in force.
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            return getrlimit(Resource::Nofile).current;
        }
    }
    limit.current
}

/// One cleaner pass over every compacted log.
fn clean_compacted_logs(broker: &Broker) {
    let config = crate::log::cleaner::CleanerConfig {
        dedupe_buffer_bytes: broker.config.log_cleaner_dedupe_buffer_size,
        io_max_bytes_per_second: broker.config.log_cleaner_io_max_bytes_per_second,
    };
    for log in broker.logs.all() {
        match crate::log::cleaner::clean(&log, &config, broker.time.now_ms()) {
            Ok(s) if s.segments > 0 => tracing::info!(
                partition = %log.topic_partition,
                segments = s.segments,
                records_read = s.records_read,
                records_kept = s.records_kept,
                bytes_before = s.bytes_before,
                bytes_after = s.bytes_after,
                "cleaned log"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(partition = %log.topic_partition, error = %e, "cleaning failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeating_error_is_logged_once_per_interval() {
        let last = std::sync::atomic::AtomicI64::new(i64::MIN);
        assert!(due_to_log(&last, 0), "the first time");
        assert!(!due_to_log(&last, REPEATED_ERROR_LOG_INTERVAL_MS - 1));
        assert!(
            due_to_log(&last, REPEATED_ERROR_LOG_INTERVAL_MS),
            "again after the interval"
        );
        assert!(!due_to_log(&last, REPEATED_ERROR_LOG_INTERVAL_MS + 1));
    }
}
