//! Deletion-file decoding over arbitrary bytes: never panics; what decodes re-encodes to
//! the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use strata_format::DeletionBitmap;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let rows = u16::from_le_bytes([data[0], data[1]]) as usize;
    let body = &data[2..];
    if let Ok(b) = DeletionBitmap::decode(body, 7, rows) {
        assert_eq!(b.encode(7), body);
    }
});
