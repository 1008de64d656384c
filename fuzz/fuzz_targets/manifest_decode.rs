//! Manifest decoding over arbitrary bytes: never panics; what decodes re-encodes to the
//! same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use strata_format::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::decode(data) {
        assert_eq!(m.encode(), data);
    }
});
