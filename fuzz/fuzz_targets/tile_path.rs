#![no_main]
//! `cargo fuzz run tile_path`: see `weiquan_fuzz::tile_path`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| weiquan_fuzz::tile_path(data));
