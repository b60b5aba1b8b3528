#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| faxbox::fuzz::pdf(data));
