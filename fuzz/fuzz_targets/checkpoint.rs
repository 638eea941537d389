#![no_main]
//! `cargo fuzz run checkpoint`: see `weiquan_fuzz::checkpoint`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| weiquan_fuzz::checkpoint(data));
