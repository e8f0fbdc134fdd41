//! [`ProcessorContext`]: a processor's handle on its task (forward, punctuate, stores, metadata).

use std::any::Any;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::engine::{Punctuation, TaskCore};
use crate::collector::RecordCollector;
use crate::error::{Result, StreamsError};
use crate::record::{Record, RecordMetadata};
use crate::state::{CacheFlush, CachedStore, KeyValueStore};
use crate::task_id::TaskId;

/// The untyped context of one node inside a task.
pub(crate) struct NodeContext<'a> {
    pub(crate) task: &'a mut TaskCore,
    pub(crate) node: usize,
}

impl NodeContext<'_> {
    pub(crate) fn reborrow(&mut self) -> NodeContext<'_> {
        NodeContext {
            task: &mut *self.task,
            node: self.node,
        }
    }

    pub(crate) fn node_name(&self) -> &str {
        self.task.node_name(self.node)
    }

    pub(crate) fn physical_topic(&self, topic: &str) -> String {
        self.task
            .topology
            .physical_topic(&self.task.application_id, topic)
    }

    pub(crate) fn collector(&self) -> &Arc<dyn RecordCollector> {
        &self.task.collector
    }

    /// Hands `record` to node `child`, depth-first.
    pub(crate) fn process_child(&mut self, child: usize, record: &mut dyn Any) -> Result<()> {
        self.task.process_node(child, record)
    }
}

/// When a punctuation fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunctuationType {
    /// On stream time: the largest record timestamp the task has seen. Fires only as records arrive.
    StreamTime,
    /// On the wall clock, whether records arrive or not.
    WallClockTime,
}

/// Cancels a scheduled punctuation.
#[derive(Debug, Clone)]
pub struct Cancellable(pub(crate) Arc<AtomicBool>);

impl Cancellable {
    /// Stops the punctuation from firing again.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Which of a processor's punctuations fired, as returned by
/// [`ProcessorContext::schedule_punctuation`] and passed to
/// [`Processor::punctuate`](super::Processor::punctuate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PunctuationId(pub(crate) u32);

/// A punctuation scheduled with [`ProcessorContext::schedule_punctuation`].
#[derive(Debug, Clone)]
pub struct Scheduled {
    /// Passed to [`Processor::punctuate`](super::Processor::punctuate) when it fires.
    pub id: PunctuationId,
    /// Stops it.
    pub cancellable: Cancellable,
}

/// A processor's handle on its task: forwarding, punctuation, stores and record metadata.
pub struct ProcessorContext<'a, KOut, VOut> {
    inner: NodeContext<'a>,
    _out: PhantomData<fn(KOut, VOut)>,
}

impl<'a, KOut: Clone + Send + 'static, VOut: Clone + Send + 'static>
    ProcessorContext<'a, KOut, VOut>
{
    pub(crate) fn new(inner: NodeContext<'a>) -> Self {
        ProcessorContext {
            inner,
            _out: PhantomData,
        }
    }

    /// Forwards `record` to every child, one after the other, depth-first.
    pub fn forward(&mut self, record: Record<KOut, VOut>) -> Result<()> {
        if let Some(child) = self.inner.task.only_child(self.inner.node) {
            return self.inner.process_child(child, &mut Some(record));
        }
        let children = self.inner.task.children(self.inner.node);
        let Some((&last, rest)) = children.split_last() else {
            return Ok(());
        };
        for &child in rest {
            self.inner.process_child(child, &mut Some(record.clone()))?;
        }
        self.inner.process_child(last, &mut Some(record))
    }

    /// Forwards `record` to the child named `child` only.
    pub fn forward_to(&mut self, child: &str, record: Record<KOut, VOut>) -> Result<()> {
        let children = self.inner.task.children(self.inner.node);
        let target = children
            .iter()
            .copied()
            .find(|&c| self.inner.task.node_name(c) == child)
            .ok_or_else(|| {
                StreamsError::topology(
                    child,
                    format!("`{child}` is not a child of `{}`", self.inner.node_name()),
                )
            })?;
        self.inner.process_child(target, &mut Some(record))
    }

    /// Calls this processor's [`Processor::punctuate`](super::Processor::punctuate) every
    /// `interval` of stream time or wall-clock time, with the returned id and the time it fires.
    /// A stream-time punctuation first fires with the task's next record; a missed interval is
    /// fired once, then the schedule realigns, as in Kafka Streams.
    pub fn schedule_punctuation(&mut self, interval: Duration, kind: PunctuationType) -> Scheduled {
        let cancelled = Arc::new(AtomicBool::new(false));
        let interval_ms = (interval.as_millis() as i64).max(1);
        let id = PunctuationId(self.inner.task.next_punctuation_id);
        self.inner.task.next_punctuation_id += 1;
        self.inner.task.schedule(Punctuation {
            node: self.inner.node,
            interval_ms,
            kind,
            next_due: self.first_due(kind, interval_ms),
            cancelled: cancelled.clone(),
            id,
        });
        Scheduled {
            id,
            cancellable: Cancellable(cancelled),
        }
    }

    fn first_due(&self, kind: PunctuationType, interval_ms: i64) -> i64 {
        match kind {
            // Kafka Streams fires the first stream-time punctuation with the first record.
            PunctuationType::StreamTime => i64::MIN,
            PunctuationType::WallClockTime => self.inner.task.clock.now_ms() + interval_ms,
        }
    }

    /// The key-value store `name`, which must be connected to this processor, with its key and
    /// value types.
    pub fn get_state_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<KeyValueStore<K, V>> {
        self.get_store::<KeyValueStore<K, V>>(name)
    }

    /// The store `name` as handle type `S` (`KeyValueStore<K, V>`, `WindowStore<K, V>` or
    /// `SessionStore<K, V>`); it must be connected to this processor.
    pub fn get_store<S: Clone + 'static>(&self, name: &str) -> Result<S> {
        let node = self.inner.node;
        let handle =
            match self.inner.task.store(name) {
                Some(store) => store.handle.clone(),
                None => self.inner.task.globals.handle(name).ok_or_else(|| {
                    StreamsError::StoreAccess {
                        store: name.to_string(),
                        message: format!("no such store in task {}", self.inner.task.id),
                    }
                })?,
            };
        if !self.inner.task.node_stores(node).iter().any(|s| s == name) {
            return Err(StreamsError::StoreAccess {
                store: name.to_string(),
                message: format!("not connected to processor `{}`", self.inner.node_name()),
            });
        }
        handle
            .downcast_ref::<S>()
            .cloned()
            .ok_or_else(|| StreamsError::StoreAccess {
                store: name.to_string(),
                message: format!(
                    "asked for it as {}, which it is not (check the store kind, key and value types)",
                    std::any::type_name::<S>()
                ),
            })
    }

    /// Calls `listener` with each entry the store's record cache writes to the store (on commit
    /// or when the cache evicts it), so that the processor can forward it: this is how cached
    /// aggregations emit one update per key per commit.
    pub fn on_cache_flush<S, F>(&mut self, store: &S, mut listener: F) -> Result<()>
    where
        S: CachedStore,
        F: FnMut(&mut ProcessorContext<'_, KOut, VOut>, CacheFlush<S::Key, S::Value>) -> Result<()>
            + Send
            + 'static,
    {
        let decoder = store.clone();
        let node = self.inner.node;
        self.inner.task.set_flush_listener(
            store.store_name(),
            node,
            Box::new(move |ctx: &mut NodeContext<'_>, entry| {
                let flush = decoder.decode_flushed(entry)?;
                listener(&mut ProcessorContext::new(ctx.reborrow()), flush)
            }),
        )
    }

    /// Topic, partition and offset of the record being processed (`None` in a punctuation).
    pub fn record_metadata(&self) -> Option<&RecordMetadata> {
        self.inner.task.meta.as_ref()
    }

    /// Topic of the record being processed.
    pub fn topic(&self) -> Option<&str> {
        self.record_metadata().map(|m| &*m.topic)
    }

    /// Partition of the record being processed.
    pub fn partition(&self) -> Option<i32> {
        self.record_metadata().map(|m| m.partition)
    }

    /// Offset of the record being processed.
    pub fn offset(&self) -> Option<i64> {
        self.record_metadata().map(|m| m.offset)
    }

    /// Timestamp of the record being processed (or of the punctuation).
    pub fn timestamp(&self) -> i64 {
        self.inner.task.current_timestamp()
    }

    /// The task this processor runs in.
    pub fn task_id(&self) -> TaskId {
        self.inner.task.id
    }

    /// `application.id`.
    pub fn application_id(&self) -> &str {
        &self.inner.task.application_id
    }

    /// The task's stream time: the largest record timestamp it has processed.
    pub fn current_stream_time_ms(&self) -> i64 {
        self.inner.task.stream_time
    }

    /// Wall-clock time from the task's (injected) clock.
    pub fn current_system_time_ms(&self) -> i64 {
        self.inner.task.clock.now_ms()
    }

    /// Counts a record this processor dropped (late for its window, a join's null key...) in
    /// the task's dropped-records metric, where deserialization skips are counted too.
    pub fn record_dropped(&mut self) {
        self.inner.task.dropped += 1;
    }

    /// Name of this processor node.
    pub fn processor_name(&self) -> &str {
        self.inner.node_name()
    }
}
