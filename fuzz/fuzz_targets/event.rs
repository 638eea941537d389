#![no_main]
//! `cargo fuzz run event`: see `weiquan_fuzz::event`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| weiquan_fuzz::event(data));
