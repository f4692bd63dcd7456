//! Fetch: read whole batches from each partition, within `partition_max_bytes` and the
//! response's `max_bytes`; wait up to `max_wait_ms` until `min_bytes` are there.
//!
//! Fetch sessions (KIP-227): Fjord creates none. A full fetch (session epoch 0, or -1
//! to close a session) is answered with session id 0, which tells the client no session
//! exists, exactly as a Kafka broker whose session cache is full; an incremental one
//! (any other epoch) names a session that cannot exist and gets
//! FETCH_SESSION_ID_NOT_FOUND, and the client falls back to full fetches.

use crate::log::{FetchIsolation, FileRecords, LogError, UnifiedLog};
use crate::protocol::errors;
use crate::protocol::fetch_response::{FetchPartitionData, FetchResponseData, FetchTopicData};
use crate::server::topics;
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Limit: the longest a fetch may wait, whatever the client asks.
const MAX_WAIT_MS_LIMIT: i32 = 30_000;

pub async fn handle(broker: &Broker, req: FetchRequest, version: i16) -> FetchResponseData {
    // Kafka's `FetchManager.newContext`: epochs 0 and -1 (`FetchMetadata.isFull`) are
    // full fetches, whatever session id they name (that session is closed).
    if !matches!(req.session_epoch, 0 | -1) {
        return FetchResponseData {
            error_code: errors::code(ResponseError::FetchSessionIdNotFound),
            ..Default::default()
        };
    }
    let replica_id = if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    let isolation = if replica_id >= 0 {
        FetchIsolation::LogEnd
    } else {
        FetchIsolation::HighWatermark
    };
    let wait_ms = req.max_wait_ms.clamp(0, MAX_WAIT_MS_LIMIT) as u64;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    // A fetch that must wait registers with every partition it reads, before reading
    // it again, so an append between that read and the wait is not missed. One answered
    // at once (the busy case) never registers.
    let waiter = Arc::new(Notify::new());
    let mut registered = None;
    let mut known = None;
    loop {
        let (resp, bytes, errored, interesting) = read_all(broker, &req, version, isolation, registered);
        // A partition that was there at the first pass and is gone now (deleted) ends
        // the wait, as Kafka's `DelayedFetch` completes on UNKNOWN_TOPIC_OR_PARTITION.
        let vanished = interesting < *known.get_or_insert(interesting);
        // As Kafka's `KafkaApis`: min_bytes at most the response's limit, so a request
        // asking more than it may get does not wait out max_wait every time; and one with
        // no partition it can read (none named: the Java consumer's session-closing fetch
        // at close; or only unknown ones) is answered at once.
        if bytes >= (req.min_bytes.max(0) as u64).min(max_bytes(broker, &req))
            || errored
            || interesting == 0
            || vanished
            || tokio::time::Instant::now() >= deadline
            || broker.is_shutting_down()
        {
            return resp;
        }
        if registered.is_none() {
            registered = Some(&waiter);
            continue;
        }
        tokio::select! {
            _ = waiter.notified() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// What one response may carry: the request's `max_bytes`, at most `fetch.max.bytes`
/// (Kafka's `KafkaApis`). Unbounded, a response past 2 GiB would wrap its i32 length.
fn max_bytes(broker: &Broker, req: &FetchRequest) -> u64 {
    (req.max_bytes.max(0) as u64).min(broker.config.fetch_max_bytes as u64)
}

/// One pass over the requested partitions. Returns the response, bytes it will carry,
/// whether a read failed or diverged (which answers at once, as Kafka does), and how
/// many partitions exist to be read. Unknown topics and partitions are answered with
/// their error but end no wait: Kafka's `KafkaApis` sets them apart before the read
/// (its `erroneous`), so a fetch of a deleted topic beside live ones still long-polls.
fn read_all(
    broker: &Broker,
    req: &FetchRequest,
    version: i16,
    isolation: FetchIsolation,
    waiter: Option<&Arc<Notify>>,
) -> (FetchResponseData, u64, bool, usize) {
    let mut budget = max_bytes(broker, req);
    let mut total = 0u64;
    let mut errored = false;
    let mut interesting = 0usize;
    let mut topics_out = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let meta = if version >= 13 {
            broker.topics.by_id(t.topic_id)
        } else {
            broker.topics.get(t.topic.as_str())
        };
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut pd = FetchPartitionData {
                partition_index: p.partition,
                error_code: 0,
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                aborted_transactions: (req.isolation_level == 1).then(Vec::new),
                diverging_epoch: None,
                records: FileRecords::empty(),
            };
            let log = match &meta {
                None if version >= 13 => Err(errors::code(ResponseError::UnknownTopicId)),
                None => Err(errors::code(ResponseError::UnknownTopicOrPartition)),
                // -1 (any negative) names no epoch, as Kafka's `FetchRequest.optionalEpoch`.
                Some(meta) => topics::leader_log(
                    broker,
                    &meta.name,
                    p.partition,
                    (p.current_leader_epoch >= 0).then_some(p.current_leader_epoch),
                ),
            };
            let read = log.and_then(|log| {
                let bytes = fill_partition(&mut pd, &log, p, budget, isolation, total == 0, waiter)?;
                if version < 10 && log.config().compression_type == "zstd" {
                    refuse_zstd(&mut pd);
                }
                Ok(bytes)
            });
            match read {
                Ok(bytes) => {
                    total += bytes;
                    budget = budget.saturating_sub(bytes);
                    // A diverging epoch is answered at once, as an error is.
                    errored |= pd.diverging_epoch.is_some();
                }
                Err(code) if is_unknown(code) => pd.error_code = code,
                // As Kafka's `KafkaApis`: clients before Fetch v6 know no
                // KAFKA_STORAGE_ERROR, and retry on NOT_LEADER_OR_FOLLOWER.
                Err(code) if code == errors::code(ResponseError::KafkaStorageError) && version <= 5 => {
                    pd.error_code = errors::code(ResponseError::NotLeaderOrFollower);
                    errored = true;
                }
                Err(code) => {
                    pd.error_code = code;
                    errored = true;
                }
            }
            interesting += usize::from(!is_unknown(pd.error_code));
            parts.push(pd);
        }
        topics_out.push(FetchTopicData {
            name: t.topic.to_string(),
            topic_id: t.topic_id,
            partitions: parts,
        });
    }
    (
        FetchResponseData {
            error_code: 0,
            session_id: 0,
            topics: topics_out,
        },
        total,
        errored,
        interesting,
    )
}

/// Kafka's `KafkaApis.maybeConvertFetchedData`: a zstd topic read with Fetch before v10
/// (KIP-110), whose client may not know zstd, is answered UNSUPPORTED_COMPRESSION_TYPE
/// and no records. The read still counts toward `min_bytes`, as in Kafka, where the
/// conversion comes after it.
fn refuse_zstd(pd: &mut FetchPartitionData) {
    *pd = FetchPartitionData {
        partition_index: pd.partition_index,
        error_code: errors::code(ResponseError::UnsupportedCompressionType),
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        aborted_transactions: pd.aborted_transactions.take(),
        diverging_epoch: None,
        records: FileRecords::empty(),
    };
}

/// A topic or partition this broker does not have (Kafka's `erroneous` partitions).
fn is_unknown(code: i16) -> bool {
    code == errors::code(ResponseError::UnknownTopicId) || code == errors::code(ResponseError::UnknownTopicOrPartition)
}

/// One partition's records and offsets into `pd`, within `budget` bytes (at least one
/// batch when `first`). Returns the bytes it carries, or the error code to answer with;
/// a partition with an error reports no offsets (-1), as Kafka's `createLogReadResult`.
fn fill_partition(
    pd: &mut FetchPartitionData,
    log: &UnifiedLog,
    p: &FetchPartition,
    budget: u64,
    isolation: FetchIsolation,
    first: bool,
    waiter: Option<&Arc<Notify>>,
) -> Result<u64, i16> {
    let code = |e: LogError| errors::log_error_code(&e);
    if let Some(diverging) = diverging_epoch(log, p).map_err(code)? {
        // No records: the fetcher truncates to the diverging epoch's end first.
        let (log_start_offset, high_watermark, _) = log.offsets();
        pd.high_watermark = high_watermark;
        pd.last_stable_offset = high_watermark;
        pd.log_start_offset = log_start_offset;
        pd.diverging_epoch = Some(diverging);
        return Ok(0);
    }
    let info = read_partition(
        log,
        p.fetch_offset,
        p.partition_max_bytes,
        budget,
        isolation,
        first,
        waiter,
    )
    .map_err(code)?;
    let bytes = info.records.len();
    pd.high_watermark = info.high_watermark;
    pd.last_stable_offset = info.high_watermark;
    pd.log_start_offset = info.log_start_offset;
    pd.records = info.records;
    Ok(bytes)
}

/// Kafka's divergence check (`Partition.readRecords`) for a fetch naming the epoch of
/// the last batch it holds (`last_fetched_epoch`, v12+; replicas name it, consumers
/// send -1): `Some((epoch, end_offset))` if the fetcher's log has diverged from this
/// one, which is when this log's end of that epoch is below the fetch offset, or that
/// epoch is unknown here and an older one answers.
fn diverging_epoch(log: &UnifiedLog, p: &FetchPartition) -> Result<Option<(i32, i64)>, LogError> {
    if p.last_fetched_epoch < 0 {
        return Ok(None);
    }
    let (log_start_offset, _, log_end_offset) = log.offsets();
    let out_of_range = LogError::OffsetOutOfRange {
        offset: p.fetch_offset,
        log_start_offset,
        log_end_offset,
    };
    let Some((epoch, end_offset)) = log.end_offset_for_epoch(p.last_fetched_epoch) else {
        return Err(out_of_range);
    };
    // Below the log start the fetcher must reset, whether or not the epochs diverge.
    if p.fetch_offset < log_start_offset {
        return Err(out_of_range);
    }
    let diverged = epoch < p.last_fetched_epoch || end_offset < p.fetch_offset;
    Ok(diverged.then_some((epoch, end_offset)))
}

/// Reads one partition, registering `waiter` (if any) first so a later append wakes it.
fn read_partition(
    log: &crate::log::UnifiedLog,
    offset: i64,
    partition_max_bytes: i32,
    budget: u64,
    isolation: FetchIsolation,
    first: bool,
    waiter: Option<&Arc<Notify>>,
) -> Result<crate::log::FetchDataInfo, crate::log::LogError> {
    if let Some(w) = waiter {
        log.register_fetch_waiter(w);
    }
    let max = (partition_max_bytes.max(0) as u64).min(budget) as usize;
    log.read(offset, max, isolation, first)
}
