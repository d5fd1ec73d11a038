#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fasten_fuzz::pack(data));
