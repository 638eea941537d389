#![no_main]
//! `cargo fuzz run ingest`: see `weiquan_fuzz::ingest`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| weiquan_fuzz::ingest(data));
