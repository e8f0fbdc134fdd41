//! Fuzzes request decoding and handling: any bytes as one request frame.
//! Run with `cargo +nightly fuzz run request` from `broker/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|frame: &[u8]| {
    let _ = streams_broker::fuzzing::handle_frame(frame);
});
