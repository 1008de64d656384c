//! Fuzz target `remote_decode`: the body lives in `strata_tests::fuzz::remote_decode`, which the proof
//! suite also runs over this target's corpus and artifacts on every `cargo test`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strata_tests::fuzz::remote_decode(data));
