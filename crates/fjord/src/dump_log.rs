//! `fjord dump-log FILE...`: prints a segment's batches (kafka-dump-log.sh), checking
//! each CRC, or an `.index` / `.timeindex` file's entries.

use anyhow::{Context, Result};
use broker::log::record_batch::{self, BatchHeader};
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Segment (.log), offset index (.index) or time index (.timeindex) files.
    #[arg(long = "files", value_delimiter = ',', required = true, num_args = 1..)]
    pub files: Vec<std::path::PathBuf>,
    /// Also print each record's offset, timestamp, key and value.
    #[arg(long = "print-data-log")]
    pub print_data_log: bool,
}

pub fn run(args: Args) -> Result<()> {
    for f in &args.files {
        outln!("Dumping {}", f.display());
        let bytes = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        match f.extension().and_then(|e| e.to_str()) {
            Some("index") => dump_index(&bytes, base_offset(f)),
            Some("timeindex") => dump_time_index(&bytes, base_offset(f)),
            _ => dump_segment(&bytes, args.print_data_log),
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

fn dump_segment(bytes: &[u8], print_data: bool) {
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
            Ok(h) => {
                outln!(
                    "Found {} bytes at the end of the segment: a partial batch of {} bytes (torn write)",
                    rest.len(),
                    h.size_bytes()
                );
                return;
            }
            Err(e) => {
                outln!("Found {} bytes at position {pos} that are not a batch: {e}", rest.len());
                return;
            }
        };
        let batch = &rest[..header.size_bytes()];
        let valid = record_batch::verify_crc(&header, batch).is_ok();
        let codec = ["none", "gzip", "snappy", "lz4", "zstd"]
            .get(header.compression() as usize)
            .copied()
            .unwrap_or("unknown");
        let ts_type = if header.attributes & record_batch::ATTR_LOG_APPEND_TIME != 0 {
            "LogAppendTime"
        } else {
            "CreateTime"
        };
        outln!(
            "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {} producerId: {} producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} isControl: {} position: {pos} {ts_type}: {} size: {} magic: {} compresscodec: {codec} crc: {} isvalid: {valid}",
            header.base_offset, header.last_offset(), header.records_count, header.base_sequence, header.last_sequence(), header.producer_id,
            header.producer_epoch, header.partition_leader_epoch, header.is_transactional(), header.is_control(), header.max_timestamp,
            header.size_bytes(), header.magic, header.crc
        );
        if print_data && valid {
            print_records(batch);
        }
        pos += header.size_bytes();
    }
}

fn print_records(batch: &[u8]) {
    let mut buf = bytes::Bytes::copy_from_slice(batch);
    match kafka_protocol::records::RecordBatchDecoder::decode(&mut buf) {
        Ok(set) => {
            for r in set.records {
                let show = |b: &Option<bytes::Bytes>| {
                    b.as_ref()
                        .map(|v| String::from_utf8_lossy(v).to_string())
                        .unwrap_or_else(|| "null".into())
                };
                outln!(
                    "| offset: {} CreateTime: {} keySize: {} valueSize: {} headerKeys: [{}] key: {} payload: {}",
                    r.offset,
                    r.timestamp,
                    r.key.as_ref().map(|k| k.len() as i64).unwrap_or(-1),
                    r.value.as_ref().map(|v| v.len() as i64).unwrap_or(-1),
                    r.headers.keys().map(|k| k.to_string()).collect::<Vec<_>>().join(","),
                    show(&r.key),
                    show(&r.value)
                );
            }
        }
        Err(e) => outln!("| cannot decode records: {e}"),
    }
}
