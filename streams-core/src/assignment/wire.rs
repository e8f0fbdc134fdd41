//! The versioned userData: [`encode_subscription`] / [`decode_subscription`] for what a
//! member sends, [`encode_assignment`] / [`decode_assignment`] for what the leader answers.
//!
//! Carried inside the consumer protocol's subscription and assignment, so the bytes come
//! from other processes: the decoder checks every length against the bytes that remain
//! before allocating anything, rejects trailing bytes, and its errors name the field.
//!
//! All integers are big-endian; a string is a `u16` length and UTF-8 bytes; a list is a
//! `u32` count and its entries; a task is `subtopology: u32, partition: i32` (≥ 0).
//! Both messages open with `version: u16, latest_supported_version: u16`, so that a member
//! that cannot read a newer version still learns what the sender reads (version probing).
//!
//! Subscription, version 1:
//! ```text
//! version u16 | latest_supported_version u16 | process_id [16 bytes] | num_threads u32
//! host: present u8 (0 or 1) [host string, port u16]
//! client_tags: list of (key string, value string)
//! task_offset_sums: list of (task, offset_sum i64)    -2 = running active, else >= 0
//! owned: list per thread of (active: list of task, standby: list of task)
//! ```
//! Assignment, version 1:
//! ```text
//! version u16 | latest_supported_version u16 | error_code u16
//! follow_up: kind u8 (0 none, 1 immediately, 2 at) [at_ms i64 if 2]
//! threads: list per thread of (active, standby, warmup: each a list of task)
//! active_by_host, standby_by_host: each a list of
//!     (host string, port u16, list of (topic string, list of partition i32))
//! ```

use std::collections::{BTreeMap, BTreeSet};

use super::types::{
    AssignmentErrorCode, AssignmentInfo, FollowUp, HostInfo, HostMap, OffsetSum, OwnedTasks,
    ProcessId, Subscription, ThreadAssignment, TopicPartition,
};
use crate::task_id::TaskId;

/// The version this code writes.
pub(crate) const VERSION: u16 = 1;
/// The newest version this code reads.
pub(crate) const LATEST_SUPPORTED_VERSION: u16 = 1;

/// The most stream threads a member may announce: the assignor allocates per thread, and
/// nothing else bounds the number, which comes from another process.
pub(crate) const MAX_STREAM_THREADS: u32 = 4096;

/// The offset sum that marks a running active task.
const RUNNING_ACTIVE: i64 = -2;

/// Why userData could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    /// The bytes end inside a field.
    #[error("{data} userData: `{field}` needs {needed} bytes but only {remaining} remain")]
    Truncated {
        /// `subscription` or `assignment`.
        data: &'static str,
        /// The field being read.
        field: &'static str,
        /// Bytes it needs (for a list, at least its count times the smallest entry).
        needed: u64,
        /// Bytes left.
        remaining: usize,
    },
    /// A field has a value no valid sender writes.
    #[error("{data} userData: `{field}` {message}")]
    Invalid {
        /// `subscription` or `assignment`.
        data: &'static str,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A version this code does not read.
    #[error("{data} userData: version {version} is not one this member reads (1 to {LATEST_SUPPORTED_VERSION}){}", match .sender_latest { Some(v) => format!("; the sender reads up to version {v}"), None => String::new() })]
    UnsupportedVersion {
        /// `subscription` or `assignment`.
        data: &'static str,
        /// The version found.
        version: u16,
        /// The newest version the sender reads, if the bytes go that far.
        sender_latest: Option<u16>,
    },
    /// Bytes after the last field.
    #[error("{data} userData: {count} bytes left after the last field")]
    TrailingBytes {
        /// `subscription` or `assignment`.
        data: &'static str,
        /// How many.
        count: usize,
    },
}

const SUBSCRIPTION: &str = "subscription";
const ASSIGNMENT: &str = "assignment";

/// Encodes a member's subscription userData.
pub(crate) fn encode_subscription(s: &Subscription) -> Result<Vec<u8>, WireError> {
    let mut w = Writer::new(SUBSCRIPTION);
    w.u16(VERSION);
    w.u16(LATEST_SUPPORTED_VERSION);
    w.buf.extend_from_slice(&s.process_id.0);
    if s.num_threads == 0 || s.num_threads > MAX_STREAM_THREADS {
        return Err(w.invalid(
            "num_threads",
            format!("is {}, not 1 to {MAX_STREAM_THREADS}", s.num_threads),
        ));
    }
    w.u32(s.num_threads);
    match &s.host {
        None => w.u8(0),
        Some(h) => {
            w.u8(1);
            w.string("host", &h.host)?;
            w.u16(h.port);
        }
    }
    w.count("client_tags", s.client_tags.len())?;
    for (k, v) in &s.client_tags {
        w.string("client_tags key", k)?;
        w.string("client_tags value", v)?;
    }
    w.count("task_offset_sums", s.task_offset_sums.len())?;
    for (&task, &sum) in &s.task_offset_sums {
        w.task("task_offset_sums task", task)?;
        let sum = match sum {
            OffsetSum::RunningActive => RUNNING_ACTIVE,
            OffsetSum::Checkpointed(n) => i64::try_from(n).map_err(|_| {
                w.invalid("task_offset_sums offset_sum", format!("{n} exceeds i64"))
            })?,
        };
        w.i64(sum);
    }
    w.count("owned", s.owned.len())?;
    for owned in &s.owned {
        w.tasks("owned active", &owned.active)?;
        w.tasks("owned standby", &owned.standby)?;
    }
    Ok(w.buf)
}

/// Decodes a member's subscription userData.
pub(crate) fn decode_subscription(bytes: &[u8]) -> Result<Subscription, WireError> {
    let mut r = Reader::new(SUBSCRIPTION, bytes);
    r.version()?;
    let process_id = ProcessId(r.array("process_id")?);
    let num_threads = r.u32("num_threads")?;
    if num_threads == 0 || num_threads > MAX_STREAM_THREADS {
        return Err(r.invalid(
            "num_threads",
            format!("is {num_threads}, not 1 to {MAX_STREAM_THREADS}"),
        ));
    }
    let host = match r.u8("host present")? {
        0 => None,
        1 => Some(HostInfo {
            host: r.string("host")?,
            port: r.u16("host port")?,
        }),
        other => return Err(r.invalid("host present", format!("is {other}, not 0 or 1"))),
    };
    let mut client_tags = BTreeMap::new();
    for _ in 0..r.count("client_tags", 4)? {
        let key = r.string("client_tags key")?;
        let value = r.string("client_tags value")?;
        if client_tags.contains_key(&key) {
            return Err(r.invalid("client_tags key", format!("`{key}` appears twice")));
        }
        client_tags.insert(key, value);
    }
    let mut task_offset_sums = BTreeMap::new();
    for _ in 0..r.count("task_offset_sums", 16)? {
        let task = r.task("task_offset_sums task")?;
        let sum = match r.i64("task_offset_sums offset_sum")? {
            RUNNING_ACTIVE => OffsetSum::RunningActive,
            n if n >= 0 => OffsetSum::Checkpointed(n as u64),
            n => {
                return Err(r.invalid(
                    "task_offset_sums offset_sum",
                    format!("of task {task} is {n}, neither -2 (running) nor >= 0"),
                ))
            }
        };
        if task_offset_sums.insert(task, sum).is_some() {
            return Err(r.invalid("task_offset_sums task", format!("{task} appears twice")));
        }
    }
    let mut owned = Vec::new();
    for _ in 0..r.count("owned", 8)? {
        owned.push(OwnedTasks {
            active: r.tasks("owned active")?,
            standby: r.tasks("owned standby")?,
        });
    }
    r.finish()?;
    Ok(Subscription {
        process_id,
        num_threads,
        task_offset_sums,
        host,
        client_tags,
        owned,
    })
}

/// Encodes the leader's answer to one member.
pub(crate) fn encode_assignment(a: &AssignmentInfo) -> Result<Vec<u8>, WireError> {
    let mut w = Writer::new(ASSIGNMENT);
    w.u16(VERSION);
    w.u16(LATEST_SUPPORTED_VERSION);
    w.u16(a.error.code());
    match a.follow_up {
        None => w.u8(0),
        Some(FollowUp::Immediately) => w.u8(1),
        Some(FollowUp::At(ms)) => {
            w.u8(2);
            w.i64(ms);
        }
    }
    w.count("threads", a.threads.len())?;
    for t in &a.threads {
        w.tasks("threads active", &t.active)?;
        w.tasks("threads standby", &t.standby)?;
        w.tasks("threads warmup", &t.warmup)?;
    }
    w.host_map("active_by_host", &a.active_by_host)?;
    w.host_map("standby_by_host", &a.standby_by_host)?;
    Ok(w.buf)
}

/// Decodes the leader's answer.
pub(crate) fn decode_assignment(bytes: &[u8]) -> Result<AssignmentInfo, WireError> {
    let mut r = Reader::new(ASSIGNMENT, bytes);
    r.version()?;
    let code = r.u16("error_code")?;
    let error = AssignmentErrorCode::from_code(code)
        .ok_or_else(|| r.invalid("error_code", format!("{code} is unknown")))?;
    let follow_up = match r.u8("follow_up kind")? {
        0 => None,
        1 => Some(FollowUp::Immediately),
        2 => Some(FollowUp::At(r.i64("follow_up at_ms")?)),
        other => return Err(r.invalid("follow_up kind", format!("is {other}, not 0, 1 or 2"))),
    };
    let mut threads = Vec::new();
    for _ in 0..r.count("threads", 12)? {
        threads.push(ThreadAssignment {
            active: r.tasks("threads active")?,
            standby: r.tasks("threads standby")?,
            warmup: r.tasks("threads warmup")?,
        });
    }
    let active_by_host = r.host_map("active_by_host")?;
    let standby_by_host = r.host_map("standby_by_host")?;
    r.finish()?;
    Ok(AssignmentInfo {
        error,
        follow_up,
        threads,
        active_by_host,
        standby_by_host,
    })
}

/// The `(version, latest_supported_version)` that open either message: what a leader
/// needs to answer a member in a version both read.
pub(crate) fn peek_versions(bytes: &[u8]) -> Result<(u16, u16), WireError> {
    let mut r = Reader::new(SUBSCRIPTION, bytes);
    Ok((r.u16("version")?, r.u16("latest_supported_version")?))
}

struct Writer {
    data: &'static str,
    buf: Vec<u8>,
}

impl Writer {
    fn new(data: &'static str) -> Self {
        Writer {
            data,
            buf: Vec::new(),
        }
    }
    fn invalid(&self, field: &'static str, message: impl Into<String>) -> WireError {
        WireError::Invalid {
            data: self.data,
            field,
            message: message.into(),
        }
    }
    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn count(&mut self, field: &'static str, n: usize) -> Result<(), WireError> {
        let n = u32::try_from(n).map_err(|_| self.invalid(field, format!("has {n} entries")))?;
        self.u32(n);
        Ok(())
    }
    fn string(&mut self, field: &'static str, s: &str) -> Result<(), WireError> {
        let len = u16::try_from(s.len())
            .map_err(|_| self.invalid(field, format!("is {} bytes, over 65535", s.len())))?;
        self.u16(len);
        self.buf.extend_from_slice(s.as_bytes());
        Ok(())
    }
    fn task(&mut self, field: &'static str, t: TaskId) -> Result<(), WireError> {
        if t.partition < 0 {
            return Err(self.invalid(field, format!("{t} has a negative partition")));
        }
        self.u32(t.subtopology);
        self.buf.extend_from_slice(&t.partition.to_be_bytes());
        Ok(())
    }
    fn tasks(&mut self, field: &'static str, tasks: &BTreeSet<TaskId>) -> Result<(), WireError> {
        self.count(field, tasks.len())?;
        tasks.iter().try_for_each(|&t| self.task(field, t))
    }
    fn host_map(&mut self, field: &'static str, map: &HostMap) -> Result<(), WireError> {
        self.count(field, map.len())?;
        for (host, partitions) in map {
            self.string(field, &host.host)?;
            self.u16(host.port);
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for tp in partitions {
                by_topic.entry(&tp.topic).or_default().push(tp.partition);
            }
            self.count(field, by_topic.len())?;
            for (topic, ps) in by_topic {
                self.string(field, topic)?;
                self.count(field, ps.len())?;
                for p in ps {
                    if p < 0 {
                        return Err(
                            self.invalid(field, format!("has {topic}-{p}, a negative partition"))
                        );
                    }
                    self.buf.extend_from_slice(&p.to_be_bytes());
                }
            }
        }
        Ok(())
    }
}

struct Reader<'a> {
    data: &'static str,
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(data: &'static str, bytes: &'a [u8]) -> Self {
        Reader { data, rest: bytes }
    }
    fn invalid(&self, field: &'static str, message: impl Into<String>) -> WireError {
        WireError::Invalid {
            data: self.data,
            field,
            message: message.into(),
        }
    }
    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.rest.len() {
            return Err(WireError::Truncated {
                data: self.data,
                field,
                needed: n as u64,
                remaining: self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], WireError> {
        Ok(self.take(field, N)?.try_into().expect("took N bytes"))
    }
    fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(field)?[0])
    }
    fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
    fn i32(&mut self, field: &'static str) -> Result<i32, WireError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }
    fn i64(&mut self, field: &'static str) -> Result<i64, WireError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }
    /// Reads and checks the two version fields.
    fn version(&mut self) -> Result<(), WireError> {
        let version = self.u16("version")?;
        if version == 0 || version > LATEST_SUPPORTED_VERSION {
            return Err(WireError::UnsupportedVersion {
                data: self.data,
                version,
                sender_latest: self.u16("latest_supported_version").ok(),
            });
        }
        let latest = self.u16("latest_supported_version")?;
        if latest < version {
            return Err(self.invalid(
                "latest_supported_version",
                format!("is {latest}, below the message's own version {version}"),
            ));
        }
        Ok(())
    }
    /// A list's count, checked against the bytes left: every entry takes at least
    /// `min_entry` bytes, so a count that cannot fit fails here, before any allocation.
    fn count(&mut self, field: &'static str, min_entry: usize) -> Result<usize, WireError> {
        let n = self.u32(field)?;
        let needed = u64::from(n) * min_entry as u64;
        if needed > self.rest.len() as u64 {
            return Err(WireError::Truncated {
                data: self.data,
                field,
                needed,
                remaining: self.rest.len(),
            });
        }
        Ok(n as usize)
    }
    fn string(&mut self, field: &'static str) -> Result<String, WireError> {
        let len = self.u16(field)? as usize;
        let bytes = self.take(field, len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.invalid(field, "is not UTF-8"))
    }
    fn task(&mut self, field: &'static str) -> Result<TaskId, WireError> {
        let subtopology = self.u32(field)?;
        let partition = self.i32(field)?;
        if partition < 0 {
            return Err(self.invalid(
                field,
                format!("has task {subtopology}_{partition} with a negative partition"),
            ));
        }
        Ok(TaskId {
            subtopology,
            partition,
        })
    }
    fn tasks(&mut self, field: &'static str) -> Result<BTreeSet<TaskId>, WireError> {
        let mut tasks = BTreeSet::new();
        for _ in 0..self.count(field, 8)? {
            let t = self.task(field)?;
            if !tasks.insert(t) {
                return Err(self.invalid(field, format!("lists task {t} twice")));
            }
        }
        Ok(tasks)
    }
    fn host_map(&mut self, field: &'static str) -> Result<HostMap, WireError> {
        let mut map = BTreeMap::new();
        for _ in 0..self.count(field, 8)? {
            let host = HostInfo {
                host: self.string(field)?,
                port: self.u16(field)?,
            };
            let mut partitions = BTreeSet::new();
            for _ in 0..self.count(field, 6)? {
                let topic = self.string(field)?;
                for _ in 0..self.count(field, 4)? {
                    let tp = TopicPartition {
                        topic: topic.clone(),
                        partition: self.i32(field)?,
                    };
                    if tp.partition < 0 {
                        return Err(self.invalid(
                            field,
                            format!("has {}-{}, a negative partition", tp.topic, tp.partition),
                        ));
                    }
                    if !partitions.insert(tp.clone()) {
                        return Err(self.invalid(
                            field,
                            format!(
                                "lists {}-{} twice for {}:{}",
                                tp.topic, tp.partition, host.host, host.port
                            ),
                        ));
                    }
                }
            }
            if map.contains_key(&host) {
                return Err(self.invalid(
                    field,
                    format!("lists host {}:{} twice", host.host, host.port),
                ));
            }
            map.insert(host, partitions);
        }
        Ok(map)
    }
    fn finish(self) -> Result<(), WireError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes {
                data: self.data,
                count: self.rest.len(),
            })
        }
    }
}
