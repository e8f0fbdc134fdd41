//! Fuzzes everything that parses record batches: any bytes as one batch, given a valid CRC.
//! Run with `cargo +nightly fuzz run batch` from `broker/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = streams_broker::fuzzing::handle_batch(data);
});
