//! Any bytes as a request frame: header and body decoding must return an error, never
//! panic or allocate beyond the input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let frame = bytes::Bytes::copy_from_slice(data);
    if let Ok(mut raw) = broker::protocol::decode_header(frame) {
        let _ = broker::protocol::decode_any_body(&mut raw);
    }
});
