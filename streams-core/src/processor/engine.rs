//! [`TaskCore`], the engine that runs one task's nodes, punctuations and cache flushes.
//!
//! It holds the task's processors, stores and punctuations, runs records through the nodes
//! depth-first and forwards what store caches write out. It and the contexts in `context` are one
//! unit: a processor reaches the task through its context, and the task runs processors through
//! the same context.

use std::any::Any;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use state_store::FlushedEntry;

use super::{ErasedProcessor, NodeContext, PunctuationId, PunctuationType};
use crate::collector::RecordCollector;
use crate::error::{RecordOrigin, Result, StreamsError};
use crate::handlers::{
    catch_panic, dead_letter_record, ErrorHandlerContext, ErrorHandlers, HandlerResponse,
    ProducedRecord, ProductionResponse, SerializationOrigin,
};
use crate::record::{RecordMetadata, SourceBytes};
use crate::state::{GlobalStores, KeyMapper, RawStore, StoreCell};
use crate::task_id::TaskId;
use crate::time::Clock;

/// What the engine reads of the topology it runs. `Topology` implements it: the topology builds
/// the engine's nodes, so the engine sits below it and cannot name it.
pub(crate) trait NodeGraph: Send + Sync {
    /// The name of node `node`.
    fn node_name(&self, node: usize) -> &str;
    /// The stores connected to node `node`.
    fn node_stores(&self, node: usize) -> &[String];
    /// `topic` as named on the cluster (repartition topics carry the application id).
    fn physical_topic(&self, application_id: &str, topic: &str) -> String;
}

/// A store's flush listener, untyped: the typed one wrapped by `ProcessorContext::on_cache_flush`.
pub(crate) type FlushFn =
    Box<dyn for<'a> FnMut(&mut NodeContext<'a>, FlushedEntry) -> Result<()> + Send>;

/// A scheduled punctuation of one node.
pub(crate) struct Punctuation {
    pub(crate) node: usize,
    pub(crate) interval_ms: i64,
    pub(crate) kind: PunctuationType,
    /// `i64::MIN` for a stream-time punctuation that has not fired yet (it fires with the first record).
    pub(crate) next_due: i64,
    pub(crate) cancelled: Arc<std::sync::atomic::AtomicBool>,
    /// Passed to the node's `Processor::punctuate`.
    pub(crate) id: PunctuationId,
}

/// One node of a task: its processor (taken out while it runs) and its children.
pub(crate) struct TaskNode {
    pub(crate) processor: Option<Box<dyn ErasedProcessor>>,
    pub(crate) children: Arc<[usize]>,
    /// Records this node has processed (Kafka Streams' processor-node `process-total`).
    pub(crate) processed: u64,
    /// For a sink: how old the records it wrote since the thread last looked were, wall clock
    /// minus record timestamp (Kafka Streams' `record-e2e-latency`).
    pub(crate) e2e_latency: Option<Box<Latencies>>,
}

/// Latencies gathered between two looks by the stream thread, which records them into its
/// sensors (on its own clock).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Latencies {
    pub(crate) count: u64,
    pub(crate) sum: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

/// One store of a task.
pub(crate) struct TaskStore {
    pub(crate) name: String,
    pub(crate) cell: Arc<StoreCell>,
    /// The typed store handle handed to processors (`KeyValueStore<K, V>`, `WindowStore<K, V>`..).
    pub(crate) handle: Arc<dyn Any + Send + Sync>,
    /// The store as bytes, for interactive queries.
    pub(crate) raw: RawStore,
    /// For segmented stores: the engine key of a restored changelog key.
    pub(crate) restore_key: Option<KeyMapper>,
    /// Changelog topic and partition, when logged.
    pub(crate) changelog: Option<(String, i32)>,
    pub(crate) persistent: bool,
    /// The node whose flush listener forwards the entries the cache writes out.
    pub(crate) listener: Option<(usize, FlushFn)>,
    /// Lowest index of the processors using it: flushing in this order flushes upstream first.
    pub(crate) order: usize,
}

/// The part of a task processors reach through their context: its nodes, stores, punctuations
/// and the record being processed. The stream task (`crate::task`) builds it and feeds it records.
pub(crate) struct TaskCore {
    pub(crate) id: TaskId,
    pub(crate) application_id: Arc<str>,
    pub(crate) topology: Arc<dyn NodeGraph>,
    /// Indexed like the topology's nodes; `None` for the nodes of other sub-topologies.
    pub(crate) nodes: Vec<Option<TaskNode>>,
    pub(crate) stores: Vec<TaskStore>,
    pub(crate) meta: Option<RecordMetadata>,
    /// The timestamp of the record (or punctuation) being processed, shared with the stores.
    pub(crate) current_ts: Arc<AtomicI64>,
    pub(crate) stream_time: i64,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) collector: Arc<dyn RecordCollector>,
    pub(crate) punctuations: Vec<Punctuation>,
    /// The id the next punctuation scheduled for a processor's `punctuate` gets.
    pub(crate) next_punctuation_id: u32,
    pub(crate) globals: Arc<GlobalStores>,
    /// Records processors dropped (late for their window, null join keys...) or handlers
    /// skipped since the task last counted them.
    pub(crate) dropped: u64,
    pub(crate) handlers: ErrorHandlers,
    /// The headers and bytes of the input record being processed, when kept (see
    /// [`ErrorHandlerContext`]).
    pub(crate) source: Option<Box<SourceBytes>>,
    /// The wall clock when the current processing round (or flush, or punctuation round)
    /// began: sinks measure end-to-end latency against it rather than read the clock per
    /// record. A round lasts milliseconds.
    pub(crate) round_started_ms: i64,
}

/// A failed send, for [`TaskCore::production_failed`].
pub(crate) enum ProductionFailure<'a> {
    /// The sink's key or value serde failed.
    Serialization(SerializationOrigin),
    /// The producer refused the record.
    Send(ProducedRecord<'a>),
}

impl TaskCore {
    pub(crate) fn node_name(&self, node: usize) -> &str {
        self.topology.node_name(node)
    }

    pub(crate) fn node_stores(&self, node: usize) -> &[String] {
        self.topology.node_stores(node)
    }

    /// The child of `node` when it has exactly one, the common case that needs no list.
    pub(crate) fn only_child(&self, node: usize) -> Option<usize> {
        match self.nodes[node].as_ref().map(|n| &n.children[..]) {
            Some(&[child]) => Some(child),
            _ => None,
        }
    }

    pub(crate) fn children(&self, node: usize) -> Arc<[usize]> {
        self.nodes[node]
            .as_ref()
            .map(|n| n.children.clone())
            .unwrap_or_else(|| Arc::from([]))
    }

    pub(crate) fn store(&self, name: &str) -> Option<&TaskStore> {
        self.stores.iter().find(|s| s.name == name)
    }

    pub(crate) fn current_timestamp(&self) -> i64 {
        self.current_ts.load(Ordering::Relaxed)
    }

    pub(crate) fn schedule(&mut self, p: Punctuation) {
        self.punctuations.push(p);
    }

    pub(crate) fn set_flush_listener(
        &mut self,
        store: &str,
        node: usize,
        f: FlushFn,
    ) -> Result<()> {
        let s = self
            .stores
            .iter_mut()
            .find(|s| s.name == store)
            .ok_or_else(|| StreamsError::StoreAccess {
                store: store.to_string(),
                message: "no such store in this task".into(),
            })?;
        s.listener = Some((node, f));
        Ok(())
    }

    /// Initializes the processors, in topological order (once the stores are restored).
    pub(crate) fn init_processors(&mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            let Some(mut p) = self.nodes[i].as_mut().and_then(|n| n.processor.take()) else {
                continue;
            };
            let r = p.init(&mut NodeContext {
                task: self,
                node: i,
            });
            if let Some(n) = self.nodes[i].as_mut() {
                n.processor = Some(p);
            }
            r.map_err(|e| self.attribute(i, e))?;
        }
        Ok(())
    }

    /// Closes the processors (the task closes its stores afterwards).
    pub(crate) fn close_processors(&mut self) {
        for n in self.nodes.iter_mut().flatten() {
            if let Some(p) = n.processor.as_mut() {
                p.close();
            }
        }
    }

    /// Runs node `idx` on `record`. The processor is taken out of its slot while it runs, which
    /// is safe because the graph is acyclic: a node is never re-entered by its own forwards.
    pub(crate) fn process_node(&mut self, idx: usize, record: &mut dyn Any) -> Result<()> {
        let mut p = self.nodes[idx]
            .as_mut()
            .and_then(|n| n.processor.take())
            .ok_or_else(|| {
                StreamsError::topology(
                    self.node_name(idx),
                    format!(
                        "node `{}` is not runnable in task {}",
                        self.node_name(idx),
                        self.id
                    ),
                )
            })?;
        // A panic in user code is caught at the node it happened in, so that the handler sees
        // the node and the record, and the nodes before it are not unwound through.
        let r = catch_panic(|| {
            p.process(
                &mut NodeContext {
                    task: self,
                    node: idx,
                },
                record,
            )
        });
        if let Some(n) = self.nodes[idx].as_mut() {
            n.processor = Some(p);
            n.processed += 1;
        }
        match r {
            Ok(r) => r.or_else(|e| self.processing_failed(idx, e, None)),
            Err(panic) => self.processing_failed(
                idx,
                StreamsError::Panic {
                    message: panic.message,
                    location: panic.location,
                },
                panic.backtrace.as_deref(),
            ),
        }
    }

    /// Names the task and processor on errors that user code raised.
    fn attribute(&self, idx: usize, e: StreamsError) -> StreamsError {
        match e {
            StreamsError::User { .. } | StreamsError::Panic { .. } => StreamsError::Processing {
                task: self.id,
                processor: self.node_name(idx).to_string(),
                record: RecordOrigin(self.meta.clone()),
                message: e.to_string(),
            },
            other => other,
        }
    }

    /// What the handlers are told about the record being processed at `node`.
    fn handler_context<'a>(
        &'a self,
        node: usize,
        no_headers: &'a crate::record::Headers,
    ) -> ErrorHandlerContext<'a> {
        let source = self.source.as_deref();
        ErrorHandlerContext {
            topic: self.meta.as_ref().map(|m| &*m.topic),
            partition: self.meta.as_ref().map(|m| m.partition),
            offset: self.meta.as_ref().map(|m| m.offset),
            timestamp: self.current_timestamp(),
            headers: source.map_or(no_headers, |s| &s.headers),
            processor_node_id: self.node_name(node),
            task_id: self.id,
            source_raw_key: source.and_then(|s| s.key.as_deref()),
            source_raw_value: source.and_then(|s| s.value.as_deref()),
        }
    }

    /// Writes the source record to the dead-letter topic, if one is set.
    fn dead_letter(
        &self,
        context: &ErrorHandlerContext<'_>,
        error: &StreamsError,
        backtrace: Option<&str>,
    ) -> Result<()> {
        let Some(topic) = &self.handlers.dead_letter_topic else {
            return Ok(());
        };
        let headers = dead_letter_record(context, error, backtrace);
        self.collector.send(
            topic,
            None,
            context.source_raw_key,
            context.source_raw_value,
            context.timestamp,
            &headers,
        )
    }

    /// An error from node `node`'s processor or punctuation: one that user code raised goes to
    /// the processing exception handler, which skips the record (`Ok`) or fails with the task,
    /// node and record named; any other (a store failing, an error already handled below this
    /// node) passes through.
    fn processing_failed(
        &mut self,
        node: usize,
        error: StreamsError,
        backtrace: Option<&str>,
    ) -> Result<()> {
        if !matches!(
            error,
            StreamsError::User { .. } | StreamsError::Panic { .. }
        ) {
            return Err(error);
        }
        let no_headers = Vec::new();
        let context = self.handler_context(node, &no_headers);
        match self.handlers.processing.handle(&context, &error) {
            HandlerResponse::Continue => {
                self.dead_letter(&context, &error, backtrace)?;
                self.dropped += 1;
                Ok(())
            }
            HandlerResponse::Fail => {
                if let Some(b) = backtrace {
                    tracing::error!(task = %self.id, node = self.node_name(node), backtrace = b, "a processor panicked");
                }
                Err(self.attribute(node, error))
            }
        }
    }

    /// A sink at `node` could not serialize or send a record: the production exception handler
    /// drops it (`Ok(false)`), asks for another try (`Ok(true)`, only for an error that may go
    /// away), or fails.
    pub(crate) fn production_failed(
        &mut self,
        node: usize,
        topic: &str,
        failure: ProductionFailure<'_>,
        error: StreamsError,
    ) -> Result<bool> {
        let no_headers = Vec::new();
        let context = self.handler_context(node, &no_headers);
        let response = match &failure {
            ProductionFailure::Serialization(origin) => self
                .handlers
                .production
                .handle_serialization(&context, topic, &error, *origin),
            ProductionFailure::Send(record) => {
                self.handlers.production.handle(&context, record, &error)
            }
        };
        match response {
            ProductionResponse::Continue => {
                self.dead_letter(&context, &error, None)?;
                self.dropped += 1;
                Ok(false)
            }
            ProductionResponse::Retry if error.is_retriable() => Ok(true),
            ProductionResponse::Retry | ProductionResponse::Fail => Err(match error {
                StreamsError::Production {
                    topic,
                    message,
                    retriable,
                } => StreamsError::Production {
                    topic,
                    message: format!(
                        "{message} (sink `{}` of task {}{})",
                        self.node_name(node),
                        self.id,
                        RecordOrigin(self.meta.clone())
                    ),
                    retriable,
                },
                other => other,
            }),
        }
    }

    /// A sink at `node` wrote a record stamped `timestamp`: records its end-to-end latency.
    pub(crate) fn record_e2e_latency(&mut self, node: usize, timestamp: i64) {
        let latency = (self.round_started_ms - timestamp) as f64;
        if let Some(n) = self.nodes[node].as_mut() {
            let l = n.e2e_latency.get_or_insert_with(Default::default);
            l.count += 1;
            l.sum += latency;
            l.min = l.min.min(latency);
            l.max = l.max.max(latency);
        }
    }

    pub(crate) fn set_timestamp(&mut self, ts: i64) {
        self.current_ts.store(ts, Ordering::Relaxed);
    }

    /// Fires every punctuation of `kind` that is due at `now`.
    pub(crate) fn punctuate(&mut self, kind: PunctuationType, now: i64) -> Result<bool> {
        let mut fired = false;
        self.punctuations
            .retain(|p| !p.cancelled.load(Ordering::Relaxed));
        let mut i = 0;
        while i < self.punctuations.len() {
            let p = &mut self.punctuations[i];
            if p.kind == kind && p.next_due <= now && !p.cancelled.load(Ordering::Relaxed) {
                let (node, id) = (p.node, p.id);
                let next = if p.next_due == i64::MIN {
                    now + p.interval_ms
                } else if now >= p.next_due + p.interval_ms {
                    // Missed several intervals: fire once, then realign, as Kafka Streams does.
                    now + p.interval_ms
                } else {
                    p.next_due + p.interval_ms
                };
                p.next_due = next;
                let saved_meta = self.meta.take();
                let saved_ts = self.current_timestamp();
                self.set_timestamp(now);
                let saved_source = self.source.take();
                let r = catch_panic(|| self.run_punctuation(node, id, now));
                // A punctuation's error goes to the processing handler too (KIP-1033), without
                // source coordinates.
                let r = match r {
                    Ok(r) => r.or_else(|e| self.processing_failed(node, e, None)),
                    Err(panic) => self.processing_failed(
                        node,
                        StreamsError::Panic {
                            message: panic.message,
                            location: panic.location,
                        },
                        panic.backtrace.as_deref(),
                    ),
                };
                self.meta = saved_meta;
                self.source = saved_source;
                self.set_timestamp(saved_ts);
                r?;
                self.forward_evicted()?;
                fired = true;
            }
            i += 1;
        }
        Ok(fired)
    }

    /// Runs punctuation `id` of node `node`: its processor's `punctuate`. The processor is taken
    /// out of its slot as in `process_node`: a punctuation forwards only downstream, so the node
    /// is not re-entered.
    fn run_punctuation(&mut self, node: usize, id: PunctuationId, now: i64) -> Result<()> {
        let Some(mut p) = self.nodes[node].as_mut().and_then(|n| n.processor.take()) else {
            return Ok(());
        };
        let r = p.punctuate(&mut NodeContext { task: self, node }, id, now);
        if let Some(n) = self.nodes[node].as_mut() {
            n.processor = Some(p);
        }
        r
    }

    /// Forwards what store caches evicted during the last record, through their listeners.
    pub(crate) fn forward_evicted(&mut self) -> Result<()> {
        // Forwarding can make downstream caches evict in turn; repeat until quiet.
        loop {
            let mut any = false;
            for i in 0..self.stores.len() {
                let evicted = self.stores[i].cell.take_evicted();
                if evicted.is_empty() {
                    continue;
                }
                any = true;
                self.run_listener(i, evicted)?;
            }
            if !any {
                return Ok(());
            }
        }
    }

    /// Hands `entries`, written out by the cache of store `store`, to its flush listener.
    pub(crate) fn run_listener(&mut self, store: usize, entries: Vec<FlushedEntry>) -> Result<()> {
        let Some((node, mut f)) = self.stores[store].listener.take() else {
            return Ok(());
        };
        let mut result = Ok(());
        for e in entries {
            result = f(&mut NodeContext { task: self, node }, e);
            if result.is_err() {
                break;
            }
        }
        self.stores[store].listener = Some((node, f));
        result.map_err(|e| self.attribute(node, e))
    }
}
