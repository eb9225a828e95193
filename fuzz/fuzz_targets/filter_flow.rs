//! cargo fuzz target: see sticky_core::testing::fuzz::filter_flow.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sticky_core::testing::fuzz::filter_flow(data));
