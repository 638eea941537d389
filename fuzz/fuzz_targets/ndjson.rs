#![no_main]
//! `cargo fuzz run ndjson`: see `weiquan_fuzz::ndjson`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| weiquan_fuzz::ndjson(data));
