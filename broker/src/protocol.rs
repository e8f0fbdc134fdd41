//! Request decoding and response encoding around the `kafka-protocol` crate: [`decode_request`]
//! and [`encode_response`], plus the API version table the broker advertises ([`SUPPORTED_APIS`]).
//!
//! Every message goes through `kafka-protocol`; this module only adds the framing rules and a
//! guard pass so that no length read from the wire reaches an allocation unchecked (see
//! [`GuardedBuf`]).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::buf::{ByteBuf, NotEnoughBytesError};
#[cfg(test)]
use kafka_protocol::protocol::Message;
use kafka_protocol::protocol::{Decodable, Encodable};
use std::ops::Range;

/// One API the broker serves, with the versions it advertises in ApiVersions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SupportedApi {
    pub(crate) key: ApiKey,
    pub(crate) min: i16,
    pub(crate) max: i16,
}

const fn api(key: ApiKey, min: i16, max: i16) -> SupportedApi {
    SupportedApi { key, min, max }
}

/// The advertised table. Ranges are the lowest set that serves librdkafka 2.12, the Java clients
/// 3.9-4.x and Kafka Streams (see the project's kafka-protocol notes); a unit test checks each
/// range lies inside the crate's `VERSIONS` for that request, so an upgrade cannot silently
/// advertise something the codec lacks.
pub(crate) const SUPPORTED_APIS: &[SupportedApi] = &[
    api(ApiKey::Produce, 3, 11),
    api(ApiKey::Fetch, 4, 12),
    api(ApiKey::ListOffsets, 1, 7),
    api(ApiKey::Metadata, 0, 12),
    api(ApiKey::OffsetCommit, 2, 9),
    api(ApiKey::OffsetFetch, 1, 9),
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::DescribeGroups, 0, 5),
    api(ApiKey::ListGroups, 0, 4),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    // Transactions without KIP-890's transaction.version 2 (never advertised as a feature):
    // AddPartitionsToTxn v4+ is the broker-to-broker form and EndTxn v5 needs TV2. The
    // highest versions listed only add error codes this broker never returns.
    api(ApiKey::AddPartitionsToTxn, 0, 3),
    api(ApiKey::AddOffsetsToTxn, 0, 4),
    api(ApiKey::EndTxn, 0, 4),
    api(ApiKey::TxnOffsetCommit, 0, 4),
    api(ApiKey::DescribeTransactions, 0, 0),
    api(ApiKey::ListTransactions, 0, 1),
];

/// The advertised version range of `key`, if the broker serves it at all.
pub(crate) fn supported(key: ApiKey) -> Option<SupportedApi> {
    SUPPORTED_APIS.iter().copied().find(|a| a.key == key)
}

/// A decoded request: its header and its typed body.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) header: RequestHeader,
    pub(crate) api_key: ApiKey,
    pub(crate) body: RequestKind,
}

/// Why a frame could not be turned into a [`Request`].
#[derive(Debug)]
pub(crate) enum DecodeError {
    /// The frame cannot be parsed at all; the connection must be closed.
    Malformed(String),
    /// ApiVersions with a version we do not know: answer with a v0 body and UNSUPPORTED_VERSION,
    /// as Kafka does, so the client can retry with a version from our list.
    UnsupportedApiVersions { correlation_id: i32 },
}

/// Decodes one request frame (without its 4-byte length prefix).
pub(crate) fn decode_request(frame: Bytes) -> Result<Request, DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::Malformed(format!(
            "frame of {} bytes is shorter than a request header",
            frame.len()
        )));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key)
        .map_err(|()| DecodeError::Malformed(format!("unknown api key {raw_key}")))?;
    let Some(range) = supported(api_key) else {
        return Err(DecodeError::Malformed(format!(
            "unsupported api {api_key:?}"
        )));
    };
    if version < range.min || version > range.max {
        if api_key == ApiKey::ApiVersions {
            return Err(DecodeError::UnsupportedApiVersions { correlation_id });
        }
        return Err(DecodeError::Malformed(format!(
            "unsupported version {version} of {api_key:?}"
        )));
    }
    let header_version = api_key.request_header_version(version);
    let mut buf = frame;
    let header = decode_guarded::<RequestHeader>(&mut buf, header_version)
        .map_err(|e| DecodeError::Malformed(format!("{api_key:?} v{version} header: {e}")))?;
    let body = decode_body(api_key, &mut buf, version)
        .map_err(|e| DecodeError::Malformed(format!("{api_key:?} v{version} body: {e}")))?;
    Ok(Request {
        header,
        api_key,
        body,
    })
}

fn decode_body(key: ApiKey, buf: &mut Bytes, v: i16) -> anyhow::Result<RequestKind> {
    Ok(match key {
        ApiKey::Produce => RequestKind::Produce(decode_guarded(buf, v)?),
        ApiKey::Fetch => RequestKind::Fetch(decode_guarded(buf, v)?),
        ApiKey::ListOffsets => RequestKind::ListOffsets(decode_guarded(buf, v)?),
        ApiKey::Metadata => RequestKind::Metadata(decode_guarded(buf, v)?),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(decode_guarded(buf, v)?),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(decode_guarded(buf, v)?),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(decode_guarded(buf, v)?),
        ApiKey::JoinGroup => RequestKind::JoinGroup(decode_guarded(buf, v)?),
        ApiKey::Heartbeat => RequestKind::Heartbeat(decode_guarded(buf, v)?),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(decode_guarded(buf, v)?),
        ApiKey::SyncGroup => RequestKind::SyncGroup(decode_guarded(buf, v)?),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(decode_guarded(buf, v)?),
        ApiKey::ListGroups => RequestKind::ListGroups(decode_guarded(buf, v)?),
        ApiKey::ApiVersions => RequestKind::ApiVersions(decode_guarded(buf, v)?),
        ApiKey::CreateTopics => RequestKind::CreateTopics(decode_guarded(buf, v)?),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(decode_guarded(buf, v)?),
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(decode_guarded(buf, v)?),
        ApiKey::InitProducerId => RequestKind::InitProducerId(decode_guarded(buf, v)?),
        ApiKey::OffsetForLeaderEpoch => RequestKind::OffsetForLeaderEpoch(decode_guarded(buf, v)?),
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(decode_guarded(buf, v)?),
        ApiKey::CreatePartitions => RequestKind::CreatePartitions(decode_guarded(buf, v)?),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(decode_guarded(buf, v)?),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(decode_guarded(buf, v)?),
        ApiKey::IncrementalAlterConfigs => {
            RequestKind::IncrementalAlterConfigs(decode_guarded(buf, v)?)
        }
        ApiKey::AddPartitionsToTxn => RequestKind::AddPartitionsToTxn(decode_guarded(buf, v)?),
        ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(decode_guarded(buf, v)?),
        ApiKey::EndTxn => RequestKind::EndTxn(decode_guarded(buf, v)?),
        ApiKey::TxnOffsetCommit => RequestKind::TxnOffsetCommit(decode_guarded(buf, v)?),
        ApiKey::DescribeTransactions => RequestKind::DescribeTransactions(decode_guarded(buf, v)?),
        ApiKey::ListTransactions => RequestKind::ListTransactions(decode_guarded(buf, v)?),
        other => anyhow::bail!("no decoder wired for {other:?}"),
    })
}

/// Decodes `T`, first running a guard pass that proves every array length fits in the bytes
/// that follow it.
///
/// `kafka-protocol` sizes a `Vec` from an array's length prefix before reading its elements,
/// so a 10-byte frame claiming 2^31 elements would ask the allocator for gigabytes and abort the
/// process. The guard pass decodes a copy through [`GuardedBuf`], which caps every suspicious
/// length at "remaining bytes + 1": a real array of that many elements can never fit (each
/// element takes at least one byte), so the pass fails exactly when the real decode would, and
/// it never allocates more than the frame could describe. Scalars that get capped do not change
/// how the rest of the message parses, so a pass that succeeds proves the real decode is safe.
pub(crate) fn decode_guarded<T: Decodable>(buf: &mut Bytes, version: i16) -> anyhow::Result<T> {
    let mut guard = GuardedBuf::new(buf.clone());
    T::decode(&mut guard, version)?;
    T::decode(buf, version)
}

/// Varint lengths at or below this are decoded as sent: a `Vec` of this many elements is
/// harmless, and leaving short varints alone keeps the guard away from single `i8` fields.
const VARINT_GUARD_THRESHOLD: u64 = 1 << 16;

/// A [`Bytes`] reader for the guard pass of [`decode_guarded`]: it caps `i32` values and
/// multi-byte unsigned varints that exceed the bytes left after them.
///
/// `kafka-protocol` reads every `Int32` with `try_get_i32` and every varint byte by byte with
/// `try_get_u8`, so those are the two reads overridden. For a varint the first byte is served
/// unchanged and the continuation bytes are replaced, so a lone `i8` read is never altered.
pub(crate) struct GuardedBuf {
    inner: Bytes,
    /// Replacement continuation bytes of a capped varint and the absolute position of the first.
    replacement: Option<(Vec<u8>, usize)>,
    total: usize,
}

impl GuardedBuf {
    pub(crate) fn new(inner: Bytes) -> Self {
        let total = inner.len();
        GuardedBuf {
            inner,
            replacement: None,
            total,
        }
    }

    fn position(&self) -> usize {
        self.total - self.inner.len()
    }

    /// If a varint starts here and claims more than the rest of the buffer, the bytes to serve
    /// after its first byte instead.
    fn capped_varint(&self) -> Option<Vec<u8>> {
        let bytes = &self.inner[..];
        // Mirror `kafka-protocol`'s decoder exactly: at most 5 bytes, stopping early at a byte
        // without the continuation bit, bits beyond 32 dropped.
        let mut value: u64 = 0;
        let mut len = 0;
        for (i, b) in bytes.iter().take(5).enumerate() {
            value |= u64::from(b & 0x7f) << (7 * i);
            len = i + 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        let value = value & u64::from(u32::MAX);
        if len < 2 {
            return None;
        }
        let after = (bytes.len() - len) as u64;
        if value <= VARINT_GUARD_THRESHOLD || value <= after + 1 {
            return None;
        }
        // Smallest value >= after + 2 that keeps the first byte's low bits: it is <= the
        // original value, so it still fits in `len` bytes.
        let low = value & 0x7f;
        let target = after + 2;
        let capped = target + ((low + 128 - (target & 0x7f)) & 0x7f);
        let mut out = Vec::with_capacity(len - 1);
        for i in 1..len {
            let mut byte = ((capped >> (7 * i)) & 0x7f) as u8;
            if i + 1 < len {
                byte |= 0x80;
            }
            out.push(byte);
        }
        Some(out)
    }
}

impl Buf for GuardedBuf {
    fn remaining(&self) -> usize {
        self.inner.remaining()
    }

    fn chunk(&self) -> &[u8] {
        self.inner.chunk()
    }

    fn advance(&mut self, cnt: usize) {
        self.inner.advance(cnt)
    }

    fn try_get_u8(&mut self) -> Result<u8, bytes::TryGetError> {
        let pos = self.position();
        if let Some((bytes, start)) = &self.replacement {
            if pos >= *start && pos < start + bytes.len() {
                let b = bytes[pos - start];
                self.inner.advance(1);
                return Ok(b);
            }
        }
        self.replacement = None;
        if let Some(bytes) = self.capped_varint() {
            self.replacement = Some((bytes, pos + 1));
        }
        self.inner.try_get_u8()
    }

    fn try_get_i32(&mut self) -> Result<i32, bytes::TryGetError> {
        let value = self.inner.try_get_i32()?;
        let after = self.inner.remaining();
        if i64::from(value) > after as i64 {
            return Ok(i32::try_from(after + 1).unwrap_or(i32::MAX));
        }
        Ok(value)
    }
}

impl ByteBuf for GuardedBuf {
    fn peek_bytes(&mut self, r: Range<usize>) -> Bytes {
        self.inner.slice(r)
    }

    fn get_bytes(&mut self, size: usize) -> Bytes {
        self.inner.split_to(size)
    }

    fn try_peek_bytes(&mut self, r: Range<usize>) -> Result<Bytes, NotEnoughBytesError> {
        if self.inner.len() < r.end {
            return Err(NotEnoughBytesError);
        }
        Ok(self.inner.slice(r))
    }

    fn try_get_bytes(&mut self, size: usize) -> Result<Bytes, NotEnoughBytesError> {
        if self.inner.len() < size {
            return Err(NotEnoughBytesError);
        }
        Ok(self.inner.split_to(size))
    }
}

/// Encodes a response frame: 4-byte length, response header, body.
pub(crate) fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> anyhow::Result<BytesMut> {
    // ApiVersions answers always carry header v0, even for flexible bodies, so that a client
    // that does not yet know our versions can parse it.
    let header_version = if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(version)
    };
    // Size the buffer up front: a fetch response carries megabytes of records, and growing
    // from a small buffer would copy them again at every doubling.
    let capacity = match body {
        ResponseKind::Fetch(fetch) => fetch.compute_size(version).unwrap_or(0),
        _ => 0,
    } + 64;
    let mut out = BytesMut::with_capacity(capacity);
    out.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, header_version)?;
    body.encode(&mut out, version)?;
    let len = i32::try_from(out.len() - 4)?;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

/// Versions of `T` that `kafka-protocol` can encode and decode.
#[cfg(test)]
fn crate_versions<T: Message>() -> (i16, i16) {
    (T::VERSIONS.min, T::VERSIONS.max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::protocol::StrBytes;

    #[test]
    fn advertised_versions_are_inside_the_codec() {
        for a in SUPPORTED_APIS {
            let (min, max) = match a.key {
                ApiKey::Produce => crate_versions::<ProduceRequest>(),
                ApiKey::Fetch => crate_versions::<FetchRequest>(),
                ApiKey::ListOffsets => crate_versions::<ListOffsetsRequest>(),
                ApiKey::Metadata => crate_versions::<MetadataRequest>(),
                ApiKey::OffsetCommit => crate_versions::<OffsetCommitRequest>(),
                ApiKey::OffsetFetch => crate_versions::<OffsetFetchRequest>(),
                ApiKey::FindCoordinator => crate_versions::<FindCoordinatorRequest>(),
                ApiKey::JoinGroup => crate_versions::<JoinGroupRequest>(),
                ApiKey::Heartbeat => crate_versions::<HeartbeatRequest>(),
                ApiKey::LeaveGroup => crate_versions::<LeaveGroupRequest>(),
                ApiKey::SyncGroup => crate_versions::<SyncGroupRequest>(),
                ApiKey::DescribeGroups => crate_versions::<DescribeGroupsRequest>(),
                ApiKey::ListGroups => crate_versions::<ListGroupsRequest>(),
                ApiKey::ApiVersions => crate_versions::<ApiVersionsRequest>(),
                ApiKey::CreateTopics => crate_versions::<CreateTopicsRequest>(),
                ApiKey::DeleteTopics => crate_versions::<DeleteTopicsRequest>(),
                ApiKey::DeleteRecords => crate_versions::<DeleteRecordsRequest>(),
                ApiKey::InitProducerId => crate_versions::<InitProducerIdRequest>(),
                ApiKey::OffsetForLeaderEpoch => crate_versions::<OffsetForLeaderEpochRequest>(),
                ApiKey::DescribeConfigs => crate_versions::<DescribeConfigsRequest>(),
                ApiKey::CreatePartitions => crate_versions::<CreatePartitionsRequest>(),
                ApiKey::DeleteGroups => crate_versions::<DeleteGroupsRequest>(),
                ApiKey::AlterConfigs => crate_versions::<AlterConfigsRequest>(),
                ApiKey::IncrementalAlterConfigs => {
                    crate_versions::<IncrementalAlterConfigsRequest>()
                }
                ApiKey::AddPartitionsToTxn => crate_versions::<AddPartitionsToTxnRequest>(),
                ApiKey::AddOffsetsToTxn => crate_versions::<AddOffsetsToTxnRequest>(),
                ApiKey::EndTxn => crate_versions::<EndTxnRequest>(),
                ApiKey::TxnOffsetCommit => crate_versions::<TxnOffsetCommitRequest>(),
                ApiKey::DescribeTransactions => crate_versions::<DescribeTransactionsRequest>(),
                ApiKey::ListTransactions => crate_versions::<ListTransactionsRequest>(),
                other => panic!("no codec check for {other:?}"),
            };
            assert!(
                min <= a.min && a.max <= max,
                "{:?} advertises {}-{} but the codec has {min}-{max}",
                a.key,
                a.min,
                a.max
            );
        }
    }

    fn frame(key: ApiKey, version: i16, body: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .encode(&mut b, key.request_header_version(version))
            .unwrap();
        b.extend_from_slice(body);
        b.freeze()
    }

    #[test]
    fn huge_array_length_is_rejected_without_allocating() {
        // Metadata v1: topics array claiming i32::MAX entries in a 4-byte body.
        let f = frame(ApiKey::Metadata, 1, &i32::MAX.to_be_bytes());
        assert!(matches!(decode_request(f), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn huge_compact_array_length_is_rejected_without_allocating() {
        // Metadata v9 (flexible): compact topics array claiming 2^32 - 2 entries.
        let f = frame(ApiKey::Metadata, 9, &[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(decode_request(f), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn unterminated_five_byte_varint_is_capped_like_the_decoder_reads_it() {
        // Found by cargo fuzz: the crate stops after 5 bytes even if the 5th continues.
        let raw = [
            0, 3, 0, 10, 152, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 0, 30,
        ];
        assert!(matches!(
            decode_request(Bytes::copy_from_slice(&raw)),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn well_formed_request_with_large_scalars_decodes() {
        let req = FetchRequest::default()
            .with_max_wait_ms(500)
            .with_max_bytes(i32::MAX)
            .with_min_bytes(1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition_max_bytes(1 << 30)
                    .with_fetch_offset(1 << 40)])]);
        for v in [4, 12] {
            let mut body = BytesMut::new();
            req.encode(&mut body, v).unwrap();
            let decoded = decode_request(frame(ApiKey::Fetch, v, &body)).unwrap();
            match decoded.body {
                RequestKind::Fetch(f) => assert_eq!(f, req, "v{v}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn unknown_api_versions_version_asks_for_fallback() {
        let f = frame(ApiKey::ApiVersions, 3, &[]);
        let mut raw = BytesMut::from(&f[..]);
        raw[2..4].copy_from_slice(&99i16.to_be_bytes());
        assert!(matches!(
            decode_request(raw.freeze()),
            Err(DecodeError::UnsupportedApiVersions { correlation_id: 7 })
        ));
    }
}
