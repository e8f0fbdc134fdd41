//! The one librdkafka call rust-rdkafka does not wrap: input offsets into a transaction with
//! the group's generation and member id (KIP-447), so that a zombie's commit is fenced.
//!
//! rust-rdkafka's `ConsumerGroupMetadata` has no public constructor, and our consumers never
//! join the group (our own member does), so their metadata would carry generation -1. librdkafka
//! builds the metadata from its parts with `rd_kafka_consumer_group_metadata_new_with_genid`.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{Producer, ProducerContext, ThreadedProducer};
use rdkafka::TopicPartitionList;
use rdkafka_sys as sys;

/// What librdkafka said when sending the offsets failed.
#[derive(Debug, Clone)]
pub(crate) struct TxnError {
    /// librdkafka's error name, such as `ILLEGAL_GENERATION`.
    pub(crate) name: String,
    /// Its description.
    pub(crate) message: String,
    /// The transaction must be aborted (the producer itself is fine).
    pub(crate) abortable: bool,
}

impl std::fmt::Display for TxnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

/// The member whose generation fences the commit.
pub(crate) struct GroupMember<'a> {
    pub(crate) group: &'a str,
    pub(crate) generation: i32,
    pub(crate) member_id: &'a str,
    pub(crate) instance_id: Option<&'a str>,
}

/// [`send_offsets_to_transaction`] on a thread of its own, waited for at most `deadline`;
/// `None` if it has not returned by then (it is left to finish on its own, holding the
/// producer, which must then be replaced).
///
/// librdkafka 2.12 can block in this call for as long as no broker changes state, past its
/// timeout, when the group coordinator it cached has left the cluster (librdkafka issues 5456
/// and 5511, open): a killed broker leaves the stream thread stuck for minutes otherwise.
pub(crate) fn send_offsets_within<C>(
    producer: &Arc<ThreadedProducer<C>>,
    offsets: &TopicPartitionList,
    member: &GroupMember<'_>,
    deadline: Duration,
) -> Option<Result<(), TxnError>>
where
    C: ProducerContext + 'static,
    ThreadedProducer<C>: Send + Sync,
{
    let producer = producer.clone();
    let offsets = offsets.clone();
    let (group, member_id) = (member.group.to_string(), member.member_id.to_string());
    let (generation, instance) = (member.generation, member.instance_id.map(str::to_string));
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("txn-offsets".into())
        .spawn(move || {
            let member = GroupMember {
                group: &group,
                generation,
                member_id: &member_id,
                instance_id: instance.as_deref(),
            };
            let _ = tx.send(send_offsets_to_transaction(
                &*producer, &offsets, &member, deadline,
            ));
        });
    if let Err(e) = spawned {
        return Some(Err(TxnError {
            name: "THREAD".into(),
            message: format!("starting a thread to send the offsets: {e}"),
            abortable: false,
        }));
    }
    rx.recv_timeout(deadline).ok()
}

/// `rd_kafka_send_offsets_to_transaction` with metadata made from `member`.
pub(crate) fn send_offsets_to_transaction<C, P>(
    producer: &P,
    offsets: &TopicPartitionList,
    member: &GroupMember<'_>,
    timeout: Duration,
) -> Result<(), TxnError>
where
    C: ProducerContext,
    P: Producer<C>,
{
    let c_string = |what: &str, s: &str| {
        CString::new(s).map_err(|_| TxnError {
            name: "INVALID_ARG".into(),
            message: format!("{what} `{s}` contains a NUL byte"),
            abortable: false,
        })
    };
    let group = c_string("group id", member.group)?;
    let member_id = c_string("member id", member.member_id)?;
    let instance = member
        .instance_id
        .map(|i| c_string("group.instance.id", i))
        .transpose()?;
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the strings outlive the call, which copies them; the metadata is destroyed below
    // and used only in between; the client and list pointers come from live rust-rdkafka
    // objects borrowed for the whole call.
    unsafe {
        let metadata = sys::rd_kafka_consumer_group_metadata_new_with_genid(
            group.as_ptr(),
            member.generation,
            member_id.as_ptr(),
            instance.as_ref().map_or(std::ptr::null(), |i| i.as_ptr()),
        );
        if metadata.is_null() {
            return Err(TxnError {
                name: "INVALID_ARG".into(),
                message: "librdkafka refused the group metadata".into(),
                abortable: false,
            });
        }
        let error = sys::rd_kafka_send_offsets_to_transaction(
            producer.client().native_ptr(),
            offsets.ptr(),
            metadata,
            timeout_ms,
        );
        sys::rd_kafka_consumer_group_metadata_destroy(metadata);
        if error.is_null() {
            return Ok(());
        }
        let text = |p: *const std::os::raw::c_char| {
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        let e = TxnError {
            name: text(sys::rd_kafka_error_name(error)),
            message: text(sys::rd_kafka_error_string(error)),
            abortable: sys::rd_kafka_error_txn_requires_abort(error) != 0,
        };
        sys::rd_kafka_error_destroy(error);
        Err(e)
    }
}
