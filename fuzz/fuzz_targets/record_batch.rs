//! Any bytes as a produce request's records: validation returns an error or a batch
//! whose header describes bytes inside the input, and whose records' timestamps lie
//! within the rules. Each input is validated twice: as it is, and with its CRC made
//! right (and a base offset of 0), so the fuzzer reaches the record walk and the
//! decompressors behind the checksum.
#![no_main]
use broker::log::log_validator::{validate_produce_records, ValidationRules};
use broker::log::record_batch::{compute_crc, BatchIter, BATCH_HEADER_BYTES};
use libfuzzer_sys::fuzz_target;

fn check(data: &[u8], rules: &ValidationRules) {
    if let Ok(b) = validate_produce_records(data, rules) {
        assert!(b.position + b.header.size_bytes() <= data.len());
        assert!(b.records.max_timestamp <= rules.now_ms + rules.timestamp_after_max_ms);
        assert!(!rules.compacted || b.records.all_keyed);
    }
}

fuzz_target!(|data: &[u8]| {
    let rules = ValidationRules {
        topic: "fuzz",
        partition: 0,
        max_message_bytes: 1 << 20,
        now_ms: 1_700_000_000_000,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: 3_600_000,
        log_append_time: false,
        compacted: data.last().is_some_and(|b| b & 1 == 1),
    };
    check(data, &rules);
    if data.len() >= BATCH_HEADER_BYTES {
        let mut signed = data.to_vec();
        signed[0..8].fill(0);
        let end = (12 + i32::from_be_bytes([signed[8], signed[9], signed[10], signed[11]]).max(0) as usize)
            .clamp(BATCH_HEADER_BYTES, signed.len());
        let crc = compute_crc(&signed[..end]);
        signed[17..21].copy_from_slice(&crc.to_be_bytes());
        check(&signed, &rules);
    }
    for (pos, h) in BatchIter::new(data) {
        assert!(pos + h.size_bytes() <= data.len());
    }
});
