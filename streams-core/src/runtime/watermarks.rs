//! A partition's high watermark as the consumer last saw it, without asking the cluster.
//!
//! rust-rdkafka wraps only the network lookup (`fetch_watermarks`); KIP-695's rule asks for
//! every partition of a waiting task on every loop turn, so it reads librdkafka's cached value
//! (`rd_kafka_get_watermark_offsets`), which each fetch response updates.
#![allow(unsafe_code)]

use std::ffi::CString;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka_sys as sys;

/// The high watermark of `topic` `partition` from the consumer's last fetch response, if one
/// has come back.
pub(crate) fn cached_high_watermark(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let topic = CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer comes from a live consumer borrowed for the call; the topic
    // string outlives it; librdkafka only writes the two offsets.
    let error = unsafe {
        sys::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    // Unknown until a fetch response: librdkafka reports an invalid (negative) offset.
    (error == sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}
