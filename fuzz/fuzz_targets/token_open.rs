//! cargo fuzz target: see sticky_core::testing::fuzz::token_open.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sticky_core::testing::fuzz::token_open(data));
