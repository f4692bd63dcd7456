//! `fjord dump-log --files FILE,...`: prints a segment's batches as Kafka's
//! `DumpLogSegments` (kafka-dump-log.sh) prints them, checking each CRC; with
//! `--deep-iteration` each record's metadata too, and with `--print-data-log` its key
//! and value; or an `.index` / `.timeindex` file's entries.

use anyhow::{Context, Result};
use broker::log::record_batch::{self, BatchHeader};
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Segment (.log), offset index (.index) or time index (.timeindex) files.
    #[arg(long = "files", value_delimiter = ',', required = true, num_args = 1..)]
    pub files: Vec<std::path::PathBuf>,
    /// Also print each record's offset, timestamp, sizes, sequence and header keys,
    /// and its key and value (implies --deep-iteration).
    #[arg(long = "print-data-log")]
    pub print_data_log: bool,
    /// Also print each record's offset, timestamp, sizes, sequence and header keys.
    #[arg(long = "deep-iteration")]
    pub deep_iteration: bool,
}

pub fn run(args: Args) -> Result<()> {
    for f in &args.files {
        outln!("Dumping {}", f.display());
        let bytes = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        match f.extension().and_then(|e| e.to_str()) {
            Some("index") => dump_index(&bytes, base_offset(f)),
            Some("timeindex") => dump_time_index(&bytes, base_offset(f)),
            _ => {
                if f.extension().and_then(|e| e.to_str()) == Some("log") {
                    outln!("Log starting offset: {}", base_offset(f));
                }
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                let records = match (args.print_data_log, args.deep_iteration) {
                    (true, _) => Records::WithData,
                    (false, true) => Records::Metadata,
                    (false, false) => Records::None,
                };
                dump_segment(&bytes, &name, records)
            }
        }
    }
    Ok(())
}

fn base_offset(path: &Path) -> i64 {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn dump_index(bytes: &[u8], base: i64) {
    for c in bytes.chunks_exact(8) {
        let rel = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        let pos = u32::from_be_bytes([c[4], c[5], c[6], c[7]]);
        outln!("offset: {} position: {pos}", base + rel as i64);
    }
}

fn dump_time_index(bytes: &[u8], base: i64) {
    for c in bytes.chunks_exact(12) {
        let ts = i64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let rel = u32::from_be_bytes([c[8], c[9], c[10], c[11]]);
        outln!("timestamp: {ts} offset: {}", base + rel as i64);
    }
}

/// What is printed of each record.
#[derive(Clone, Copy, PartialEq)]
enum Records {
    None,
    Metadata,
    WithData,
}

/// Kafka's batch attribute: the batch's base timestamp is its delete horizon (KIP-534).
const ATTR_DELETE_HORIZON: i16 = 0x40;

fn dump_segment(bytes: &[u8], name: &str, records: Records) {
    let mut pos = 0usize;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        // An active segment written with O_DIRECT ends in zeros up to a 4 KiB boundary.
        if rest.len() < 4096 && rest.iter().all(|b| *b == 0) {
            outln!(
                "{} bytes of zero padding at position {pos} (an active segment's direct I/O)",
                rest.len()
            );
            return;
        }
        let header = match BatchHeader::parse(rest) {
            Ok(h) if h.size_bytes() <= rest.len() && h.batch_length > 0 => h,
            _ => {
                // Kafka's words for bytes that are no whole batch: a torn write's tail.
                outln!("Found {} invalid bytes at the end of {name}", rest.len());
                return;
            }
        };
        let batch = &rest[..header.size_bytes()];
        let valid = record_batch::verify_crc(&header, batch).is_ok();
        print_batch(&header, pos, valid);
        if records != Records::None && valid {
            print_records(&header, batch, records == Records::WithData);
        }
        pos += header.size_bytes();
    }
}

/// Kafka's `printBatchLevel` for a v2 batch.
fn print_batch(header: &BatchHeader, pos: usize, valid: bool) {
    let codec = ["none", "gzip", "snappy", "lz4", "zstd"]
        .get(header.compression() as usize)
        .copied()
        .unwrap_or("unknown");
    let delete_horizon = if header.attributes & ATTR_DELETE_HORIZON != 0 {
        format!("OptionalLong[{}]", header.base_timestamp)
    } else {
        "OptionalLong.empty".to_string()
    };
    outln!(
        "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {} producerId: {} producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} isControl: {} deleteHorizonMs: {delete_horizon} position: {pos} {}: {} size: {} magic: {} compresscodec: {codec} crc: {} isvalid: {valid}",
        header.base_offset, header.last_offset(), header.records_count, header.base_sequence, header.last_sequence(), header.producer_id,
        header.producer_epoch, header.partition_leader_epoch, header.is_transactional(), header.is_control(), timestamp_type(header),
        header.max_timestamp, header.size_bytes(), header.magic, header.crc
    );
}

fn timestamp_type(header: &BatchHeader) -> &'static str {
    if header.attributes & record_batch::ATTR_LOG_APPEND_TIME != 0 {
        "LogAppendTime"
    } else {
        "CreateTime"
    }
}

/// Kafka's deep iteration: `| offset: O CreateTime: T keySize: K valueSize: V
/// sequence: S headerKeys: [a,b]`, then with `data` ` key: K` (when there is one) and
/// ` payload: P` (when there is one). A control batch's records show no data.
fn print_records(header: &BatchHeader, batch: &[u8], data: bool) {
    let mut buf = bytes::Bytes::copy_from_slice(batch);
    let set = match kafka_protocol::records::RecordBatchDecoder::decode(&mut buf) {
        Ok(set) => set,
        Err(e) => {
            outln!("| cannot decode records: {e}");
            return;
        }
    };
    let text = |b: &bytes::Bytes| String::from_utf8_lossy(b).to_string();
    for r in set.records {
        let size = |b: &Option<bytes::Bytes>| b.as_ref().map_or(-1, |v| v.len() as i64);
        // A record's sequence: the batch's base sequence plus its offset delta.
        let sequence = if header.base_sequence >= 0 {
            i64::from(header.base_sequence) + (r.offset - header.base_offset)
        } else {
            -1
        };
        let mut line = format!(
            "| offset: {} {}: {} keySize: {} valueSize: {} sequence: {sequence} headerKeys: [{}]",
            r.offset,
            timestamp_type(header),
            r.timestamp,
            size(&r.key),
            size(&r.value),
            r.headers.keys().map(|k| k.to_string()).collect::<Vec<_>>().join(",")
        );
        if data && !header.is_control() {
            if let Some(key) = &r.key {
                line.push_str(&format!(" key: {}", text(key)));
            }
            if let Some(value) = &r.value {
                line.push_str(&format!(" payload: {}", text(value)));
            }
        }
        outln!("{line}");
    }
}
