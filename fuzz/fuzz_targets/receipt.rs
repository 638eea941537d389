#![no_main]
//! `cargo fuzz run receipt`: see `weiquan_fuzz::receipt`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| weiquan_fuzz::receipt(data));
