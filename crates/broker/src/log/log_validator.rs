//! Kafka's `LogValidator` (with the checks `ProduceRequest.validateRecords` and
//! `UnifiedLog.analyzeAndValidateRecords` make before it), on a produce request's raw
//! records: the batch is never decoded into records; its header is read in place and
//! its records walked (each one's length, timestamp delta and key length; the rest
//! skipped), decompressed as they are read when the batch is compressed.
//!
//! The checks run in Kafka's order, so a batch wrong in two ways gets Kafka's code:
//! 1. Framing (Kafka's `ByteBufferLogInputStream`): a length below 14 or a magic outside
//!    0-2 is CORRUPT_MESSAGE; no whole batch is INVALID_RECORD, and so is a second whole
//!    one; a partial batch after the first is ignored, as Kafka trims it.
//! 2. Magic 2 only, a base offset of 0 (INVALID_RECORD); at most `max.message.bytes`
//!    (MESSAGE_TOO_LARGE); a whole header and a good CRC (CORRUPT_MESSAGE).
//! 3. Offsets and count agree, no control batch, no producer id without a sequence
//!    (INVALID_RECORD).
//! 4. Records: each whole, none left over (INVALID_RECORD); timestamps in range and no
//!    LogAppendTime from a producer (INVALID_TIMESTAMP); keys on a compacted topic
//!    (INVALID_RECORD). These are checked on the walk's summary; only a batch that fails
//!    is walked again record by record, for Kafka's record errors (index and message).

use super::compression;
use super::record_batch::{
    self, BatchError, BatchHeader, RecordError, ATTR_LOG_APPEND_TIME, BATCH_HEADER_BYTES, LOG_OVERHEAD,
    RECORD_ERRORS_MAX,
};
use std::io::BufRead;

/// Kafka's RecordBatch.NO_TIMESTAMP.
pub const NO_TIMESTAMP: i64 = -1;

/// Kafka's `LegacyRecord.RECORD_OVERHEAD_V0`: the smallest length any batch may claim.
const RECORD_OVERHEAD_V0: i32 = 14;

/// Bytes up to and including the magic byte.
const HEADER_BYTES_UP_TO_MAGIC: usize = 17;

/// Limits and clock a produce request's batch is validated against (the topic's
/// configs, and the broker's time), and the partition it is for (named in messages).
#[derive(Debug, Clone, Copy)]
pub struct ValidationRules<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub max_message_bytes: usize,
    pub now_ms: i64,
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    pub log_append_time: bool,
    pub compacted: bool,
}

/// What a walk of a batch's records found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordsSummary {
    /// The largest record timestamp (NO_TIMESTAMP if none is larger): what Kafka
    /// stamps as the batch's `max_timestamp` on a CreateTime topic.
    pub max_timestamp: i64,
    /// The smallest record timestamp other than NO_TIMESTAMP, if any.
    pub min_timestamp: Option<i64>,
    /// Whether every record has a key.
    pub all_keyed: bool,
    /// Whether every record's offset delta is its index in the batch. Kafka rewrites a
    /// compressed batch where one is not (`LogValidator`: "some older clients do not
    /// implement the V1 internal offsets correctly"); an uncompressed one is stored
    /// as sent.
    pub offsets_in_order: bool,
}

/// The one batch of a validated produce request, where it sits, and its records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidatedBatch {
    pub position: usize,
    pub header: BatchHeader,
    pub records: RecordsSummary,
}

/// Kafka's `ProduceRequest.validateRecords` (step 1 above), which Kafka's request
/// handler makes before the log sees the records: one whole batch, of magic 2, not
/// zstd before Produce v7 (KIP-110), and no second whole batch. Returns the batch's
/// size.
pub fn check_request_records(records: &[u8], produce_version: i16) -> Result<usize, BatchError> {
    let Some(size) = next_batch_size(records)? else {
        return Err(BatchError::Invalid(
            "a produce request needs one whole record batch per partition".into(),
        ));
    };
    if records[16] as i8 != record_batch::MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic(records[16] as i8));
    }
    if produce_version < 7 && compression::batch_codec(records) == Some(kafka_protocol::records::Compression::Zstd) {
        return Err(BatchError::UnsupportedCompressionType(produce_version));
    }
    if next_batch_size(&records[size..])?.is_some() {
        return Err(BatchError::Invalid(
            "a produce request may carry exactly one record batch per partition".into(),
        ));
    }
    Ok(size)
}

/// Validates a produce request's `records` field for one partition (steps 1-4 above).
pub fn validate_produce_records(records: &[u8], rules: &ValidationRules<'_>) -> Result<ValidatedBatch, BatchError> {
    let size = check_request_records(records, i16::MAX)?;
    let batch = &records[..size];
    let header = check_header(batch, rules)?;
    let summary = walk_batch(batch, &header, |_| {})?;
    if !records_pass(&header, &summary, rules) {
        return Err(record_errors(batch, &header, rules)?);
    }
    Ok(ValidatedBatch {
        position: 0,
        header,
        records: summary,
    })
}

/// The size of the batch at the front of `buf`, as Kafka's `ByteBufferLogInputStream`
/// reads it: `None` if no whole batch is there.
fn next_batch_size(buf: &[u8]) -> Result<Option<usize>, BatchError> {
    let Some((_, size)) = record_batch::peek_length(buf) else {
        return Ok(None);
    };
    let length = size.saturating_sub(LOG_OVERHEAD);
    if size == usize::MAX || length < RECORD_OVERHEAD_V0 as usize {
        return Err(BatchError::Corrupt(format!(
            "record size is less than the minimum record overhead ({RECORD_OVERHEAD_V0})"
        )));
    }
    if buf.len() < HEADER_BYTES_UP_TO_MAGIC {
        return Ok(None);
    }
    let magic = buf[16] as i8;
    if !(0..=2).contains(&magic) {
        return Err(BatchError::Corrupt(format!("invalid magic found in record: {magic}")));
    }
    Ok((buf.len() >= size).then_some(size))
}

/// Step 2 and 3: the header of the whole batch `batch`.
fn check_header(batch: &[u8], rules: &ValidationRules<'_>) -> Result<BatchHeader, BatchError> {
    let base_offset = i64::from_be_bytes(
        batch[0..8]
            .try_into()
            .map_err(|_| BatchError::Corrupt("short".into()))?,
    );
    if base_offset != 0 {
        return Err(BatchError::Invalid(format!(
            "the base offset of the record batch should be 0, but it is {base_offset}"
        )));
    }
    if batch.len() > rules.max_message_bytes {
        return Err(BatchError::TooLarge {
            size: batch.len(),
            max: rules.max_message_bytes,
        });
    }
    if batch.len() < BATCH_HEADER_BYTES {
        return Err(BatchError::Corrupt(format!(
            "record batch of {} bytes is smaller than the minimum allowed overhead {BATCH_HEADER_BYTES}",
            batch.len()
        )));
    }
    let header = BatchHeader::parse(batch)?;
    record_batch::verify_crc(&header, batch)?;
    if header.records_count <= 0 || header.last_offset_delta != header.records_count - 1 {
        return Err(BatchError::Invalid(format!(
            "records_count {} and last_offset_delta {} disagree",
            header.records_count, header.last_offset_delta
        )));
    }
    if header.compression() > 4 {
        return Err(BatchError::Invalid(format!(
            "unknown compression codec {}",
            header.compression()
        )));
    }
    check_client_batch(&header)?;
    Ok(header)
}

/// What Kafka's `LogValidator.validateBatch` refuses from a client: control batches
/// (markers are the broker's to write) and a producer id without a sequence, which would
/// reset that producer's sequence state, so that its next batch is out of order.
fn check_client_batch(header: &BatchHeader) -> Result<(), BatchError> {
    if header.is_control() {
        return Err(BatchError::Invalid(
            "clients are not allowed to write control records".into(),
        ));
    }
    if header.has_producer_id() && header.base_sequence < 0 {
        return Err(BatchError::Invalid(format!(
            "invalid sequence number {} in record batch with producer id {}",
            header.base_sequence, header.producer_id
        )));
    }
    Ok(())
}

/// Walks a whole batch's records, decompressing them as they are read if it is
/// compressed, calling `visit` with each.
fn walk_batch(
    batch: &[u8],
    header: &BatchHeader,
    visit: impl FnMut(RecordFields),
) -> Result<RecordsSummary, BatchError> {
    if header.compression() == 0 {
        walk_records_visiting(header, &batch[BATCH_HEADER_BYTES..], visit)
    } else {
        compression::walk_compressed_records(batch, header, visit)
    }
}

/// Step 4 on a walk's summary: whether no record has an error `record_error` would
/// find. On a CreateTime topic every timestamp but NO_TIMESTAMP is within the bounds
/// (checking the smallest and largest checks all); a producer's LogAppendTime batch
/// passes only on a CreateTime topic, with a timestamp; a compacted topic's records
/// all have keys.
fn records_pass(header: &BatchHeader, records: &RecordsSummary, rules: &ValidationRules<'_>) -> bool {
    let producer_append_time = header.attributes & ATTR_LOG_APPEND_TIME != 0;
    if producer_append_time && (rules.log_append_time || header.max_timestamp == NO_TIMESTAMP) {
        return false;
    }
    let in_range = |ts: &i64| !timestamp_out_of_range(*ts, rules);
    let timestamps_pass = rules.log_append_time
        || [records.min_timestamp, Some(records.max_timestamp)]
            .iter()
            .flatten()
            .all(in_range);
    timestamps_pass && (!rules.compacted || records.all_keyed)
}

/// Kafka's `recordHasInvalidTimestamp`, in its (wrapping) long arithmetic, so a
/// timestamp near i64::MIN is refused as Kafka refuses it.
fn timestamp_out_of_range(ts: i64, rules: &ValidationRules<'_>) -> bool {
    let diff = rules.now_ms.wrapping_sub(ts);
    ts != NO_TIMESTAMP && (diff > rules.timestamp_before_max_ms || diff.wrapping_neg() > rules.timestamp_after_max_ms)
}

/// The batch walked again, record by record, for Kafka's record errors: called only
/// once `records_pass` refused it (the walk found it whole the first time).
fn record_errors(batch: &[u8], header: &BatchHeader, rules: &ValidationRules<'_>) -> Result<BatchError, BatchError> {
    let mut errors = Vec::new();
    let mut total = 0;
    let mut invalid_timestamp = false;
    walk_batch(batch, header, |record| {
        if let Some((timestamp, message)) = record_error(header, &record, rules) {
            total += 1;
            invalid_timestamp |= timestamp;
            if errors.len() < RECORD_ERRORS_MAX {
                errors.push(RecordError {
                    batch_index: record.index,
                    message,
                });
            }
        }
    })?;
    Ok(BatchError::RecordErrors {
        invalid_timestamp,
        total,
        errors,
    })
}

/// Kafka's `LogValidator.validateRecord` for a v2 record: its key (on a compacted
/// topic), then its timestamp. `Some((is a timestamp's, message))` if it is refused.
fn record_error(header: &BatchHeader, r: &RecordFields, rules: &ValidationRules<'_>) -> Option<(bool, String)> {
    if rules.compacted && r.key_bytes < 0 {
        return Some((
            false,
            format!(
                "Compacted topic cannot accept message without key in topic partition {}-{}",
                rules.topic, rules.partition
            ),
        ));
    }
    if !rules.log_append_time && r.timestamp != NO_TIMESTAMP {
        return timestamp_out_of_range(r.timestamp, rules).then(|| {
            (
                true,
                format!(
                    "Timestamp {} of message with offset {} is out of range. The timestamp should be within [{}, {}]",
                    r.timestamp,
                    r.offset_delta,
                    rules.now_ms.wrapping_sub(rules.timestamp_before_max_ms),
                    rules.now_ms.wrapping_add(rules.timestamp_after_max_ms)
                ),
            )
        });
    }
    (header.attributes & ATTR_LOG_APPEND_TIME != 0).then(|| {
        (
            true,
            format!(
                "Invalid timestamp type in message DefaultRecord(offset={}, timestamp={}, key={} bytes, value={} bytes). Producer should not set timestamp type to LogAppendTime.",
                r.offset_delta,
                r.timestamp,
                r.key_bytes.max(0),
                r.value_bytes.max(0)
            ),
        )
    })
}

/// Walks the `records_count` records of a batch whose header is `header`, in
/// `records` (the bytes after the header, uncompressed), checking each record's framing
/// as Kafka's `DefaultRecord.readFrom` does: its length, timestamp and offset deltas,
/// key, value and headers (lengths read, bytes skipped) exactly filling it. A record
/// cut off or overrun, a negative header key length, or bytes after the last record
/// are INVALID_RECORD, as Kafka's record iterator finds them.
///
/// This runs on every produced byte, so the slice walk is plain index arithmetic
/// (profiled: through `BufRead` one byte at a time it took 10% of the broker's CPU at
/// peak produce).
pub fn walk_records(header: &BatchHeader, records: &[u8]) -> Result<RecordsSummary, BatchError> {
    walk(header, &mut SliceSource { buf: records, pos: 0 }, |_| {})
}

/// `walk_records`, calling `visit` with each record.
pub fn walk_records_visiting(
    header: &BatchHeader,
    records: &[u8],
    visit: impl FnMut(RecordFields),
) -> Result<RecordsSummary, BatchError> {
    walk(header, &mut SliceSource { buf: records, pos: 0 }, visit)
}

/// `walk_records_visiting` over a stream of records (a decompressor's output).
pub fn walk_record_stream(
    header: &BatchHeader,
    r: impl BufRead,
    visit: impl FnMut(RecordFields),
) -> Result<RecordsSummary, BatchError> {
    let mut source = StreamSource {
        r,
        consumed: 0,
        error: None,
    };
    let walked = walk(header, &mut source, visit);
    match source.error {
        Some(e) => Err(BatchError::Corrupt(format!("reading records: {e}"))),
        None => walked,
    }
}

/// Where a walk reads records from. `None` or `false` at the end of the bytes (or on
/// a read error, which the source keeps).
trait Source {
    fn next(&mut self) -> Option<u8>;
    fn skip(&mut self, n: usize) -> bool;
    /// Bytes consumed so far.
    fn position(&self) -> u64;
}

struct SliceSource<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Source for SliceSource<'_> {
    #[inline]
    fn next(&mut self) -> Option<u8> {
        let byte = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(byte)
    }
    #[inline]
    fn skip(&mut self, n: usize) -> bool {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.buf.len() => {
                self.pos = end;
                true
            }
            _ => false,
        }
    }
    #[inline]
    fn position(&self) -> u64 {
        self.pos as u64
    }
}

struct StreamSource<R> {
    r: R,
    consumed: u64,
    error: Option<std::io::Error>,
}

impl<R: BufRead> Source for StreamSource<R> {
    fn next(&mut self) -> Option<u8> {
        let byte = match self.r.fill_buf() {
            Ok(buf) => *buf.first()?,
            Err(e) => {
                self.error = Some(e);
                return None;
            }
        };
        self.r.consume(1);
        self.consumed += 1;
        Some(byte)
    }
    fn skip(&mut self, mut n: usize) -> bool {
        while n > 0 {
            let available = match self.r.fill_buf() {
                Ok(buf) => buf.len(),
                Err(e) => {
                    self.error = Some(e);
                    return false;
                }
            };
            if available == 0 {
                return false;
            }
            let k = available.min(n);
            self.r.consume(k);
            self.consumed += k as u64;
            n -= k;
        }
        true
    }
    fn position(&self) -> u64 {
        self.consumed
    }
}

/// One record as a walk reads it: what the checks made record by record need.
#[derive(Debug, Clone, Copy)]
pub struct RecordFields {
    /// Its index in the batch.
    pub index: i32,
    pub offset_delta: i64,
    /// Its timestamp: the batch's base timestamp plus its delta, or in a LogAppendTime
    /// batch the batch's `max_timestamp`.
    pub timestamp: i64,
    /// Key and value lengths, -1 for null.
    pub key_bytes: i64,
    pub value_bytes: i64,
}

fn walk(
    header: &BatchHeader,
    source: &mut impl Source,
    mut visit: impl FnMut(RecordFields),
) -> Result<RecordsSummary, BatchError> {
    let log_append_time = header.attributes & ATTR_LOG_APPEND_TIME != 0;
    let mut summary = RecordsSummary {
        max_timestamp: NO_TIMESTAMP,
        min_timestamp: None,
        all_keyed: true,
        offsets_in_order: true,
    };
    let count = header.records_count;
    for i in 0..count {
        let Some(WalkedRecord {
            timestamp_delta,
            offset_delta,
            key_bytes,
            value_bytes,
        }) = walk_record(source)
        else {
            // Kafka's `DefaultRecord.readFrom` answers any of these alike.
            return Err(BatchError::Invalid(format!(
                "record {i} of {count}: invalid record structure (cut off, a length past \
                 its end or negative, or bytes left after its fields)"
            )));
        };
        // As Kafka's `DefaultRecordBatch`: in a LogAppendTime batch every record's
        // timestamp is the batch's.
        let ts = if log_append_time {
            header.max_timestamp
        } else {
            header.base_timestamp.wrapping_add(timestamp_delta)
        };
        summary.max_timestamp = summary.max_timestamp.max(ts);
        if ts != NO_TIMESTAMP {
            summary.min_timestamp = Some(summary.min_timestamp.map_or(ts, |m| m.min(ts)));
        }
        summary.all_keyed &= key_bytes >= 0;
        summary.offsets_in_order &= offset_delta == i64::from(i);
        visit(RecordFields {
            index: i,
            offset_delta,
            timestamp: ts,
            key_bytes,
            value_bytes,
        });
    }
    if source.next().is_some() {
        return Err(BatchError::Invalid(format!(
            "incorrect declared batch size: bytes remain after the last of {count} records"
        )));
    }
    Ok(summary)
}

/// What the walk keeps of one record.
struct WalkedRecord {
    timestamp_delta: i64,
    offset_delta: i64,
    key_bytes: i64,
    value_bytes: i64,
}

/// One record's fields the walk keeps, or `None` if its structure is invalid.
/// Layout (varints zig-zag): `length varint | attributes i8 | timestamp_delta varlong |
/// offset_delta varint | key_length varint, key | value_length varint, value |
/// header_count varint, headers (key_length varint >= 0, key, value_length varint,
/// value)`. The fields must fill exactly `length` bytes; that is checked once at the
/// end (and in the headers' loop, so a bad count reads no further than the record).
#[inline]
fn walk_record(source: &mut impl Source) -> Option<WalkedRecord> {
    let len = u64::try_from(varint(source)?).ok()?;
    let start = source.position();
    source.next()?; // attributes
    let timestamp_delta = varint(source)?;
    let offset_delta = varint(source)?;
    let key_len = varint(source)?;
    skip_bytes_of(source, key_len)?;
    let value_len = varint(source)?;
    skip_bytes_of(source, value_len)?;
    let headers = varint(source)?;
    if headers < 0 {
        return None;
    }
    for _ in 0..headers {
        let header_key_len = varint(source)?;
        if header_key_len < 0 || source.position() - start > len {
            return None;
        }
        skip_bytes_of(source, header_key_len)?;
        let header_value_len = varint(source)?;
        skip_bytes_of(source, header_value_len)?;
    }
    (source.position() - start == len).then_some(WalkedRecord {
        timestamp_delta,
        offset_delta,
        key_bytes: key_len,
        value_bytes: value_len,
    })
}

/// Skips a key's or value's bytes: `len` of them, none if it is -1 (null).
#[inline]
fn skip_bytes_of(source: &mut impl Source, len: i64) -> Option<()> {
    if len < 0 {
        return Some(());
    }
    source.skip(usize::try_from(len).ok()?).then_some(())
}

/// A zig-zag varint; `None` if cut off or longer than 10 bytes.
#[inline]
fn varint(source: &mut impl Source) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = source.next()?;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record_batch::tests::make_batch;
    use crate::log::record_batch::{compute_crc, encode_keyed_batch, ATTR_CONTROL};

    fn rules() -> ValidationRules<'static> {
        ValidationRules {
            topic: "t",
            partition: 0,
            max_message_bytes: 1 << 20,
            now_ms: 1000,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            log_append_time: false,
            compacted: false,
        }
    }

    fn resign(b: &mut [u8]) {
        let crc = compute_crc(b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn valid_batch_passes_and_corrupt_crc_fails() {
        let mut b = make_batch(3, 10, 1000);
        let v = validate_produce_records(&b, &rules()).expect("valid");
        assert_eq!(v.records.max_timestamp, 1000);
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(matches!(
            validate_produce_records(&b, &rules()),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn wrong_count_is_invalid() {
        let mut b = make_batch(3, 10, 1000);
        b[57..61].copy_from_slice(&2i32.to_be_bytes());
        b[23..27].copy_from_slice(&1i32.to_be_bytes());
        resign(&mut b);
        assert!(matches!(
            validate_produce_records(&b, &rules()),
            Err(BatchError::Invalid(_))
        ));
    }

    /// Kafka's framing: what is corrupt, what is no batch at all, and what is ignored.
    #[test]
    fn framing_is_kafkas() {
        let b = make_batch(3, 10, 1000);
        let check = |bytes: &[u8]| validate_produce_records(bytes, &rules());
        assert!(matches!(check(&b[..b.len() - 1]), Err(BatchError::Invalid(_))), "cut");
        assert!(matches!(check(&b[..10]), Err(BatchError::Invalid(_))), "no length");
        let mut short = b.clone();
        short[8..12].copy_from_slice(&13i32.to_be_bytes());
        assert!(matches!(check(&short), Err(BatchError::Corrupt(_))), "length 13");
        let mut magic = b.clone();
        magic[16] = 3;
        assert!(matches!(check(&magic), Err(BatchError::Corrupt(_))), "magic 3");
        magic[16] = 1;
        assert!(matches!(check(&magic), Err(BatchError::UnsupportedMagic(1))));
        let mut header_only = b[..40].to_vec();
        header_only[8..12].copy_from_slice(&28i32.to_be_bytes());
        assert!(
            matches!(check(&header_only), Err(BatchError::Corrupt(_))),
            "below the header"
        );
        let mut trailing = b.clone();
        trailing.extend_from_slice(&b[..30]);
        assert!(check(&trailing).is_ok(), "a partial batch after the first is ignored");
        let mut offset = b.clone();
        offset[0..8].copy_from_slice(&5i64.to_be_bytes());
        assert!(matches!(check(&offset), Err(BatchError::Invalid(m)) if m.contains("base offset")));
    }

    /// Kafka's `LogValidator`: a client's control batch, and a producer id with no
    /// sequence, are INVALID_RECORD; a producer id with a sequence is fine.
    #[test]
    fn control_batches_and_producer_ids_without_sequence_are_invalid() {
        let mut control = make_batch(1, 5, 1000);
        control[22] |= ATTR_CONTROL as u8;
        resign(&mut control);
        let refused = validate_produce_records(&control, &rules());
        assert!(
            matches!(&refused, Err(BatchError::Invalid(m)) if m.contains("control")),
            "{refused:?}"
        );
        let mut idempotent = make_batch(1, 5, 1000);
        idempotent[43..51].copy_from_slice(&1000i64.to_be_bytes());
        idempotent[51..53].copy_from_slice(&0i16.to_be_bytes());
        idempotent[53..57].copy_from_slice(&5i32.to_be_bytes());
        resign(&mut idempotent);
        assert!(validate_produce_records(&idempotent, &rules()).is_ok());
        idempotent[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        resign(&mut idempotent);
        let refused = validate_produce_records(&idempotent, &rules());
        assert!(
            matches!(&refused, Err(BatchError::Invalid(m)) if m.contains("sequence")),
            "{refused:?}"
        );
    }

    fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    /// An uncompressed batch of records whose bodies (what follows each length) are
    /// `bodies`, at `base_timestamp`, whose header claims `claimed_max` as its max.
    fn batch_of(base_timestamp: i64, bodies: &[Vec<u8>], claimed_max: i64) -> Vec<u8> {
        let mut b = make_batch(1, 0, base_timestamp)[..BATCH_HEADER_BYTES].to_vec();
        for body in bodies {
            put_varint(&mut b, body.len() as i64);
            b.extend(body);
        }
        let n = bodies.len() as i32;
        let batch_length = (b.len() - LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&batch_length.to_be_bytes());
        b[23..27].copy_from_slice(&(n - 1).to_be_bytes());
        b[35..43].copy_from_slice(&claimed_max.to_be_bytes());
        b[57..61].copy_from_slice(&n.to_be_bytes());
        resign(&mut b);
        b
    }

    /// A record's body: attributes, deltas, then `rest` (key, value, headers).
    fn body(timestamp_delta: i64, offset_delta: i64, rest: &[u8]) -> Vec<u8> {
        let mut body = vec![0u8]; // attributes
        put_varint(&mut body, timestamp_delta);
        put_varint(&mut body, offset_delta);
        body.extend(rest);
        body
    }

    /// Keyless, empty records at `base_timestamp` plus each of `deltas`.
    fn batch_with_deltas(base_timestamp: i64, deltas: &[i64], claimed_max: i64) -> Vec<u8> {
        let bodies: Vec<Vec<u8>> = deltas
            .iter()
            .enumerate()
            .map(|(i, d)| body(*d, i as i64, &[1, 1, 0])) // no key, no value, no headers
            .collect();
        batch_of(base_timestamp, &bodies, claimed_max)
    }

    /// The walk notes whether each record's offset delta is its index (Kafka rewrites
    /// a compressed batch where one is not).
    #[test]
    fn offset_deltas_out_of_order_are_noted() {
        let empty = [1u8, 1, 0]; // no key, no value, no headers
        let with_deltas = |deltas: &[i64]| {
            let bodies: Vec<Vec<u8>> = deltas.iter().map(|d| body(0, *d, &empty)).collect();
            validate_produce_records(&batch_of(1000, &bodies, 1000), &rules())
                .expect("valid")
                .records
                .offsets_in_order
        };
        assert!(with_deltas(&[0, 1, 2]));
        assert!(!with_deltas(&[0, 2, 1]));
        assert!(!with_deltas(&[1, 2, 3]));
        assert!(!with_deltas(&[0, 0, 0]));
    }

    /// Each record's framing as Kafka's `DefaultRecord.readFrom` reads it: key, value
    /// and headers exactly fill the record.
    #[test]
    fn record_framing_is_kafkas() {
        let check = |rest: &[u8]| validate_produce_records(&batch_of(1000, &[body(0, 0, rest)], 1000), &rules());
        // key "k", value "vv", one header "h" = "x"
        assert!(check(&[2, b'k', 4, b'v', b'v', 2, 2, b'h', 2, b'x']).is_ok());
        let invalid = |rest: &[u8], what: &str| {
            let refused = check(rest);
            assert!(matches!(&refused, Err(BatchError::Invalid(_))), "{what}: {refused:?}");
        };
        invalid(&[2, b'k', 8, b'v', b'v', 0], "a value longer than the record");
        invalid(&[2, b'k', 4, b'v', b'v', 0, 9], "a byte after the headers");
        invalid(&[2, b'k', 4, b'v', b'v', 2, 1, 2, b'x'], "a header without a key");
        invalid(&[2, b'k', 4, b'v', b'v', 1], "a negative header count");
        invalid(&[2, b'k'], "no value length");
        // The oldest timestamp there is, refused as Kafka's wrapping arithmetic does.
        let lenient = ValidationRules {
            timestamp_before_max_ms: i64::MAX,
            ..rules()
        };
        let oldest = batch_with_deltas(i64::MIN, &[0], i64::MIN);
        assert_eq!(
            record_errors_of(validate_produce_records(&oldest, &lenient)),
            (true, vec![(0, format!("Timestamp {} of message with offset 0 is out of range. The timestamp should be within [-9223372036854774807, 3601000]", i64::MIN))])
        );
    }

    /// A refusal's record errors: (whether INVALID_TIMESTAMP, [(batch index, message)]).
    fn record_errors_of(r: Result<ValidatedBatch, BatchError>) -> (bool, Vec<(i32, String)>) {
        match r {
            Err(BatchError::RecordErrors {
                invalid_timestamp,
                total,
                errors,
            }) => {
                assert_eq!(total, errors.len());
                (
                    invalid_timestamp,
                    errors.into_iter().map(|e| (e.batch_index, e.message)).collect(),
                )
            }
            other => panic!("expected record errors: {other:?}"),
        }
    }

    /// Kafka's message for a timestamp out of [now - before, now + after].
    fn out_of_range(ts: i64, offset: i64, low: i64, high: i64) -> String {
        format!("Timestamp {ts} of message with offset {offset} is out of range. The timestamp should be within [{low}, {high}]")
    }

    /// Every record's timestamp is checked, not the header's claim: a batch whose
    /// header says 1000 but whose second record is an hour and a bit ahead is refused,
    /// and the walk reports the records' true extremes.
    #[test]
    fn record_timestamps_are_read_from_the_records() {
        let low = 1000i64.wrapping_sub(i64::MAX);
        let future = make_batch(2, 5, 1000 + 3_600_001);
        assert_eq!(
            record_errors_of(validate_produce_records(&future, &rules())),
            (
                true,
                vec![
                    (0, out_of_range(3_601_001, 0, low, 3_601_000)),
                    (1, out_of_range(3_601_001, 1, low, 3_601_000))
                ]
            )
        );
        // Only the second record is out of range: it alone is named.
        let lying = batch_with_deltas(1000, &[0, 3_600_001, -400], 1000);
        let refused = validate_produce_records(&lying, &rules());
        assert_eq!(
            refused.as_ref().map_err(ToString::to_string).err().as_deref(),
            Some("One or more records have been rejected due to invalid timestamp")
        );
        assert_eq!(
            record_errors_of(refused),
            (true, vec![(1, out_of_range(3_601_001, 1, low, 3_601_000))])
        );
        let lenient = ValidationRules {
            timestamp_after_max_ms: i64::MAX,
            ..rules()
        };
        let v = validate_produce_records(&lying, &lenient).expect("within bounds");
        assert_eq!(v.header.max_timestamp, 1000);
        assert_eq!(
            (v.records.min_timestamp, v.records.max_timestamp),
            (Some(600), 3_601_001)
        );
        // The oldest record is checked too.
        let old = ValidationRules {
            timestamp_before_max_ms: 300,
            ..lenient
        };
        assert_eq!(
            record_errors_of(validate_produce_records(&lying, &old)),
            (true, vec![(2, out_of_range(600, 2, 700, i64::MAX.wrapping_add(1000)))])
        );
    }

    /// A producer's LogAppendTime batch: refused on a LogAppendTime topic, and on a
    /// CreateTime topic without a timestamp, as Kafka's `validateTimestamp`.
    #[test]
    fn log_append_time_from_a_producer() {
        let mut b = make_batch(1, 5, 1000);
        b[22] |= ATTR_LOG_APPEND_TIME as u8;
        resign(&mut b);
        assert!(validate_produce_records(&b, &rules()).is_ok());
        let topic_append_time = ValidationRules {
            log_append_time: true,
            ..rules()
        };
        let message = |ts: i64| {
            format!(
                "Invalid timestamp type in message DefaultRecord(offset=0, timestamp={ts}, key=0 bytes, value=5 bytes). Producer should not set timestamp type to LogAppendTime."
            )
        };
        assert_eq!(
            record_errors_of(validate_produce_records(&b, &topic_append_time)),
            (true, vec![(0, message(1000))])
        );
        b[35..43].copy_from_slice(&NO_TIMESTAMP.to_be_bytes());
        resign(&mut b);
        assert_eq!(
            record_errors_of(validate_produce_records(&b, &rules())),
            (true, vec![(0, message(NO_TIMESTAMP))])
        );
    }

    /// Keys read in place: keyed records pass a compacted topic, one without a key does
    /// not, and bytes after the last record are refused.
    #[test]
    fn keys_and_leftover_bytes() {
        let keyed: Vec<(bytes::Bytes, Option<bytes::Bytes>)> =
            (0..5).map(|i| (bytes::Bytes::from(format!("k{i}")), None)).collect();
        let batch = encode_keyed_batch(&keyed, 1_000).expect("encode");
        let compacted = ValidationRules {
            compacted: true,
            ..rules()
        };
        assert!(validate_produce_records(&batch, &compacted).is_ok());
        let refused = validate_produce_records(&make_batch(4, 10, 1_000), &compacted);
        let no_key = "Compacted topic cannot accept message without key in topic partition t-0";
        assert_eq!(
            refused.as_ref().map_err(ToString::to_string).err(),
            Some(format!(
                "One or more records have been rejected due to 4 record errors in total, and only showing the first three errors at most: [RecordError(batchIndex=0, message='{no_key}'), RecordError(batchIndex=1, message='{no_key}'), RecordError(batchIndex=2, message='{no_key}')]"
            ))
        );
        let (timestamp, errors) = record_errors_of(refused);
        assert!(!timestamp);
        assert_eq!(errors.iter().map(|e| e.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
        // At most RECORD_ERRORS_MAX are kept; the count is of all.
        let many = validate_produce_records(
            &batch_with_deltas(1_000, &[0; RECORD_ERRORS_MAX + 20], 1_000),
            &compacted,
        );
        assert!(matches!(
            many,
            Err(BatchError::RecordErrors { total, ref errors, .. })
                if total == RECORD_ERRORS_MAX + 20 && errors.len() == RECORD_ERRORS_MAX
        ));
        let header = BatchHeader::parse(&batch).expect("header");
        let mut records = batch[BATCH_HEADER_BYTES..].to_vec();
        records.push(0);
        let refused = walk_records(&header, &records[..]);
        assert!(matches!(refused, Err(BatchError::Invalid(m)) if m.contains("remain")));
        let refused = walk_records(&header, &records[..records.len() - 3]);
        assert!(matches!(refused, Err(BatchError::Invalid(m)) if m.contains("cut off")));
    }
}
