//! The task lifecycle against a fake client: assignments applied in two halves, restoration
//! in slices, commits rejected by a rebalance, a lost membership. No broker: the fake records
//! what the thread asked of Kafka and answers from memory.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use state_store::RocksDbConfig;

use super::client::{RestorePoll, ThreadClient};
use super::group::CommitOutcome;
use super::lifecycle::TaskState;
use super::task_manager::TaskManager;
use super::topics::Layout;
use super::Shared;
use crate::collector::NullCollector;
use crate::config::StreamsConfig;
use crate::error::Result;
use crate::processor::{Processor, ProcessorContext};
use crate::record::{Record, RecordBytes};
use crate::serde::Serdes;
use crate::state::Stores;
use crate::task::{TaskEnv, TaskMetrics};
use crate::task_id::TaskId;
use crate::time::ManualClock;
use crate::topology::Topology;

/// A changelog partition's records: key and value (`None`: a tombstone).
type Log = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Kafka as the lifecycle sees it, in memory.
#[derive(Default)]
struct Fake {
    /// Partitions the main consumer reads.
    assigned: BTreeSet<(String, i32)>,
    /// Every commit asked for, in order.
    commits: Vec<Vec<(String, i32, i64)>>,
    /// Answers to the next commits (then Committed).
    outcomes: VecDeque<CommitOutcome>,
    /// Changelog contents per partition.
    changelogs: HashMap<(String, i32), Log>,
    /// How many records of a changelog can be fetched now (all when absent): a slow fetch.
    fetchable: HashMap<(String, i32), usize>,
    /// The restore consumer's partition and position.
    restoring: Option<((String, i32), i64)>,
    unassigned_all: usize,
    /// Transactions aborted (exactly-once).
    aborts: usize,
    /// Partitions not being fetched.
    paused: BTreeSet<(String, i32)>,
}

impl ThreadClient for Fake {
    fn assign(&mut self, partitions: &[(String, i32)]) -> Result<()> {
        self.assigned.extend(partitions.iter().cloned());
        Ok(())
    }
    fn unassign(&mut self, partitions: &[(String, i32)]) -> Result<()> {
        for p in partitions {
            assert!(
                self.assigned.remove(p),
                "unassigned {p:?}, which was not assigned"
            );
        }
        Ok(())
    }
    fn unassign_all(&mut self) {
        self.assigned.clear();
        self.restoring = None;
        self.unassigned_all += 1;
    }
    fn abort_transaction(&mut self) -> Result<()> {
        self.aborts += 1;
        Ok(())
    }
    fn positions(&mut self, _: &[(String, i32)]) -> Vec<(String, i32, i64, i64)> {
        Vec::new()
    }
    fn high_watermark(&self, _: &str, _: i32) -> Option<i64> {
        None
    }
    fn pause(&mut self, partitions: &[(String, i32)], pause: bool) -> Result<()> {
        for p in partitions {
            if pause {
                self.paused.insert(p.clone());
            } else {
                self.paused.remove(p);
            }
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<HashMap<(String, i32), i64>> {
        Ok(HashMap::new())
    }
    fn commit(&mut self, offsets: &[(String, i32, i64)]) -> Result<CommitOutcome> {
        let mut sorted = offsets.to_vec();
        sorted.sort();
        self.commits.push(sorted);
        Ok(self
            .outcomes
            .pop_front()
            .unwrap_or(CommitOutcome::Committed))
    }
    fn changelog_range(&mut self, topic: &str, p: i32) -> std::result::Result<(i64, i64), String> {
        let n = self
            .changelogs
            .get(&(topic.to_string(), p))
            .map_or(0, Vec::len);
        Ok((0, n as i64))
    }
    fn restore_assign(
        &mut self,
        topic: &str,
        p: i32,
        offset: i64,
    ) -> std::result::Result<(), String> {
        self.restoring = Some(((topic.to_string(), p), offset));
        Ok(())
    }
    fn restore_poll(&mut self, _: Duration) -> RestorePoll {
        let Some((tp, pos)) = self.restoring.clone() else {
            return RestorePoll::Nothing;
        };
        let log = &self.changelogs[&tp];
        let fetchable = self.fetchable.get(&tp).copied().unwrap_or(log.len());
        if (pos as usize) < fetchable {
            let (k, v) = log[pos as usize].clone();
            self.restoring = Some((tp, pos + 1));
            RestorePoll::Record {
                offset: pos,
                key: Some(k),
                value: v,
            }
        } else if pos as usize >= log.len() {
            RestorePoll::End
        } else {
            RestorePoll::Nothing
        }
    }
    fn restore_unassign(&mut self) -> std::result::Result<(), String> {
        self.restoring = None;
        Ok(())
    }
}

struct Forward;
impl Processor for Forward {
    type KIn = String;
    type VIn = String;
    type KOut = String;
    type VOut = String;
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: Record<String, String>,
    ) -> Result<()> {
        ctx.forward(r)
    }
}

const APP: &str = "app";
const CHANGELOG: &str = "app-counts-changelog";

/// `input` -> forward -> `output`; with `store`, the processor has a logged in-memory store.
fn manager(partitions: i32, store: bool) -> TaskManager {
    let mut t = Topology::new();
    t.add_source("in", &["input"], Serdes::string(), Serdes::string())
        .unwrap();
    t.add_processor("fwd", |_| Ok(Forward), &["in"]).unwrap();
    t.add_sink(
        "out",
        "output",
        Serdes::string(),
        Serdes::string(),
        &["fwd"],
    )
    .unwrap();
    if store {
        t.add_state_store(
            Stores::in_memory_key_value("counts", Serdes::string(), Serdes::i64()),
            &["fwd"],
        )
        .unwrap();
    }
    let layout = Layout::uniform(&t, APP, partitions);
    let config = StreamsConfig::new(APP, "unused:9092").resolve().unwrap();
    TaskManager {
        config: Arc::new(config),
        topology: Arc::new(t),
        layout: Arc::new(layout),
        env: TaskEnv {
            application_id: APP.into(),
            collector: Arc::new(NullCollector),
            clock: Arc::new(ManualClock::new(0)),
            state_dir: None,
            cache_budget: None,
            rocksdb: Arc::new(RocksDbConfig::default()),
            handlers: crate::handlers::ErrorHandlers::default(),
            lock_timeout: Duration::from_secs(1),
            globals: Arc::default(),
            exactly_once: false,
            max_task_idle_ms: -1,
            time_store_operations: false,
        },
        active: BTreeMap::new(),
        restoring: VecDeque::new(),
        standby: BTreeMap::new(),
        restore_slice: Duration::from_millis(5),
        states: BTreeMap::new(),
        standby_lags: BTreeMap::new(),
        standby_behind: None,
        last_position_lookup: None,
        by_partition: HashMap::new(),
        last_partition: None,
        topics: HashMap::new(),
        closed_totals: TaskMetrics::default(),
        commits: 0,
        sensors: Default::default(),
        task_sensors: BTreeMap::new(),
        shared: Arc::new(Shared::new(1)),
        index: 0,
        admin: None,
        last_purge: Instant::now(),
        last_cleanup: Instant::now(),
        paused: Default::default(),
        node_sensors: Default::default(),
        details: Default::default(),
    }
}

fn task(p: i32) -> TaskId {
    TaskId {
        subtopology: 0,
        partition: p,
    }
}

fn tasks(ps: &[i32]) -> BTreeSet<TaskId> {
    ps.iter().map(|p| task(*p)).collect()
}

/// Applies an assignment as the stream thread does, and restores until every task processes.
fn assign(tm: &mut TaskManager, fake: &mut Fake, active: &[i32]) {
    tm.revoke(&tasks(active), &BTreeSet::new(), fake).unwrap();
    tm.add(&tasks(active), &BTreeSet::new()).unwrap();
    while tm.restore_slice(fake).unwrap() {}
}

fn fetched(tm: &mut TaskManager, p: i32, offsets: std::ops::Range<i64>) {
    for o in offsets {
        let v = format!("v{o}");
        tm.add_record(RecordBytes {
            topic: "input",
            partition: p,
            offset: o,
            timestamp: 1_000 + o,
            key: Some(b"k"),
            value: Some(v.as_bytes()),
            headers: Vec::new(),
        })
        .unwrap();
    }
}

fn processed(tm: &TaskManager, p: i32) -> u64 {
    tm.active[&task(p)].metrics.processed
}

#[test]
fn a_kept_task_keeps_its_queue_and_a_revoked_one_is_committed_before_it_closes() {
    let (mut tm, mut fake) = (manager(2, false), Fake::default());
    assign(&mut tm, &mut fake, &[0, 1]);
    assert_eq!(
        fake.assigned,
        BTreeSet::from([("input".to_string(), 0), ("input".to_string(), 1)])
    );
    fetched(&mut tm, 0, 0..2);
    fetched(&mut tm, 1, 0..2);
    assert_eq!(tm.process().unwrap(), 4);
    // Fetched, not yet processed, when the rebalance comes.
    fetched(&mut tm, 0, 2..5);
    fetched(&mut tm, 1, 2..4);

    assign(&mut tm, &mut fake, &[0]);
    assert_eq!(
        fake.commits,
        [vec![
            ("input".to_string(), 0, 2),
            ("input".to_string(), 1, 2)
        ]],
        "what both tasks processed, committed before task 0_1 closed"
    );
    assert_eq!(fake.assigned, BTreeSet::from([("input".to_string(), 0)]));
    assert_eq!(tm.buffered(), 3, "task 0_0 kept what it had fetched");
    assert_eq!(tm.process().unwrap(), 3);
    assert_eq!(processed(&tm, 0), 5, "each record of partition 0 once");
    // A record of the revoked partition still in flight is not taken.
    fetched(&mut tm, 1, 6..7);
    assert_eq!(tm.buffered(), 0);
}

#[test]
fn a_commit_rejected_by_a_rebalance_keeps_the_tasks_and_the_next_commit_has_everything() {
    let (mut tm, mut fake) = (manager(1, false), Fake::default());
    assign(&mut tm, &mut fake, &[0]);
    fetched(&mut tm, 0, 0..3);
    tm.process().unwrap();
    fake.outcomes.push_back(CommitOutcome::Rejected);
    assert_eq!(tm.commit(&mut fake).unwrap(), CommitOutcome::Rejected);
    assert_eq!(tm.commits, 0, "a rejected commit is not counted");
    fetched(&mut tm, 0, 3..5);
    tm.process().unwrap();
    assert_eq!(tm.commit(&mut fake).unwrap(), CommitOutcome::Committed);
    assert_eq!(
        fake.commits,
        [
            vec![("input".to_string(), 0, 3)],
            vec![("input".to_string(), 0, 5)]
        ]
    );
    assert_eq!(tm.commits, 1);
    assert_eq!(processed(&tm, 0), 5);
}

fn changelog(fake: &mut Fake, p: i32, n: usize, fetchable: usize) {
    let log = (0..n)
        .map(|i| {
            (
                format!("k{i}").into_bytes(),
                Some(1i64.to_be_bytes().to_vec()),
            )
        })
        .collect();
    fake.changelogs.insert((CHANGELOG.to_string(), p), log);
    fake.fetchable.insert((CHANGELOG.to_string(), p), fetchable);
}

#[test]
fn restoration_runs_in_slices_and_the_task_reads_its_partition_once_restored() {
    let (mut tm, mut fake) = (manager(1, true), Fake::default());
    changelog(&mut fake, 0, 1_000, 10);
    tm.revoke(&tasks(&[0]), &BTreeSet::new(), &mut fake)
        .unwrap();
    tm.add(&tasks(&[0]), &BTreeSet::new()).unwrap();
    assert!(
        tm.restore_slice(&mut fake).unwrap(),
        "one slice does not restore it all"
    );
    assert!(tm.is_restoring());
    // 10 of 1,000 fetchable: 990 left (restore-remaining-records-total).
    assert_eq!(tm.collect_details().restore_remaining, vec![(task(0), 990)]);
    assert!(tm.active.is_empty());
    assert!(fake.assigned.is_empty(), "input is read only once restored");
    assert_eq!(
        tm.owned().active,
        tasks(&[0]),
        "restoring tasks are this thread's"
    );
    fake.fetchable.clear();
    while tm.restore_slice(&mut fake).unwrap() {}
    assert_eq!(tm.active[&task(0)].metrics.restored, 1_000);
    assert_eq!(fake.assigned, BTreeSet::from([("input".to_string(), 0)]));
    assert_eq!(fake.restoring, None, "the changelog is released");
    assert_eq!(tm.states, BTreeMap::from([(task(0), TaskState::Running)]));
}

#[test]
fn a_task_revoked_while_restoring_is_closed_and_releases_its_changelog() {
    let (mut tm, mut fake) = (manager(2, true), Fake::default());
    changelog(&mut fake, 0, 1_000, 10);
    changelog(&mut fake, 1, 5, 5);
    tm.revoke(&tasks(&[0, 1]), &BTreeSet::new(), &mut fake)
        .unwrap();
    tm.add(&tasks(&[0, 1]), &BTreeSet::new()).unwrap();
    assert!(tm.restore_slice(&mut fake).unwrap());
    assert!(fake.restoring.is_some());

    // The next assignment takes 0_0 away in the middle of its restoration, and keeps 0_1.
    tm.revoke(&tasks(&[1]), &BTreeSet::new(), &mut fake)
        .unwrap();
    assert_eq!(fake.restoring, None, "its changelog is released");
    assert!(
        fake.commits.is_empty(),
        "nothing was processed: nothing to commit"
    );
    assert_eq!(tm.owned().active, tasks(&[1]));
    while tm.restore_slice(&mut fake).unwrap() {}
    assert_eq!(tm.active.keys().copied().collect::<Vec<_>>(), [task(1)]);
    assert_eq!(fake.assigned, BTreeSet::from([("input".to_string(), 1)]));
}

#[test]
fn a_lost_membership_closes_every_task_without_committing() {
    let (mut tm, mut fake) = (manager(2, true), Fake::default());
    changelog(&mut fake, 0, 3, 3);
    changelog(&mut fake, 1, 1_000, 10);
    assign_partly(&mut tm, &mut fake);
    fetched(&mut tm, 0, 0..4);
    tm.process().unwrap();
    tm.lose_all(&mut fake);
    assert!(
        fake.commits.is_empty(),
        "another member may own the tasks now"
    );
    assert_eq!(fake.unassigned_all, 1);
    assert_eq!(
        fake.aborts, 1,
        "under exactly-once, what they sent never commits"
    );
    assert!(fake.assigned.is_empty() && fake.restoring.is_none());
    assert!(tm.active.is_empty() && !tm.is_restoring());
    assert_eq!(tm.owned().active, BTreeSet::new());
    assert!(tm.states.is_empty(), "every task closed: {:?}", tm.states);
}

/// Exactly-once: a commit whose transaction was aborted leaves the stores with writes the
/// cluster threw away, so the active tasks are closed and created again: they stop reading their
/// input, restore their stores from the changelogs (the committed records only) and read their
/// input again from the committed offsets.
#[test]
fn an_aborted_transaction_rebuilds_the_active_tasks_from_their_changelogs() {
    let (mut tm, mut fake) = (manager(1, true), Fake::default());
    changelog(&mut fake, 0, 5, 5);
    assign(&mut tm, &mut fake, &[0]);
    fetched(&mut tm, 0, 0..3);
    assert_eq!(tm.process().unwrap(), 3);
    fake.outcomes.push_back(CommitOutcome::Aborted);
    assert_eq!(tm.commit(&mut fake).unwrap(), CommitOutcome::Aborted);
    assert!(tm.active.is_empty(), "the task was closed");
    assert!(tm.is_restoring(), "and created again, restoring");
    assert!(fake.assigned.is_empty(), "its input is not read meanwhile");
    while tm.restore_slice(&mut fake).unwrap() {}
    assert_eq!(fake.assigned, BTreeSet::from([("input".to_string(), 0)]));
    assert_eq!(
        processed(&tm, 0),
        0,
        "a new task, which reads from the committed offsets"
    );
    assert_eq!(
        tm.active[&task(0)].metrics.restored,
        5,
        "the whole changelog"
    );
    assert_eq!(tm.states[&task(0)], TaskState::Running);
}

/// 0_0 restored and processing, 0_1 still restoring.
fn assign_partly(tm: &mut TaskManager, fake: &mut Fake) {
    tm.revoke(&tasks(&[0, 1]), &BTreeSet::new(), fake).unwrap();
    tm.add(&tasks(&[0, 1]), &BTreeSet::new()).unwrap();
    while tm.active.is_empty() {
        tm.restore_slice(fake).unwrap();
    }
    assert!(tm.restore_slice(fake).unwrap());
}

#[test]
fn task_states_move_only_along_their_transitions() {
    use TaskState::*;
    let all = [Created, Restoring, Running, Standby, Closed];
    let legal = [
        (Created, Restoring),
        (Created, Standby),
        (Created, Closed),
        (Restoring, Running),
        (Restoring, Closed),
        (Running, Closed),
        (Standby, Restoring),
        (Standby, Closed),
    ];
    for a in all {
        for b in all {
            assert_eq!(a.can_become(b), legal.contains(&(a, b)), "{a:?} -> {b:?}");
        }
    }
    let mut tm = manager(1, false);
    let e = tm.become_(task(0), Running).unwrap_err().to_string();
    assert!(e.contains("task 0_0") && e.contains("Running"), "{e}");
    tm.become_(task(0), Created).unwrap();
    tm.become_(task(0), Standby).unwrap();
    assert!(
        tm.become_(task(0), Running).is_err(),
        "a standby restores before it runs"
    );
}

/// `buffered.records.per.partition`: past the limit the poll loop stops taking records; a
/// partition whose queue still runs to four times the limit is not fetched until processing
/// brings it back to the limit; one whose task leaves is fetched again.
#[test]
fn a_full_partition_is_paused_until_its_queue_drains() {
    let (mut tm, mut fake) = (manager(2, false), Fake::default());
    let mut config = (*tm.config).clone();
    config.buffered_records_per_partition = 1;
    tm.config = Arc::new(config);
    assign(&mut tm, &mut fake, &[0, 1]);
    let input = |p: i32| ("input".to_string(), p);
    let r = |o: i64| RecordBytes {
        topic: "input",
        partition: 0,
        offset: o,
        timestamp: 1_000 + o,
        key: Some(b"k"),
        value: Some(b"v"),
        headers: Vec::new(),
    };
    assert!(
        !tm.add_record(r(0)).unwrap(),
        "at the limit: polling goes on"
    );
    assert!(tm.add_record(r(1)).unwrap(), "over it: polling stops");
    fetched(&mut tm, 0, 2..4);
    tm.apply_backpressure(&mut fake).unwrap();
    assert!(
        fake.paused.is_empty(),
        "4 records: not past four times the limit"
    );
    fetched(&mut tm, 0, 4..5);
    fetched(&mut tm, 1, 0..5);
    tm.apply_backpressure(&mut fake).unwrap();
    assert_eq!(fake.paused, BTreeSet::from([input(0), input(1)]));

    assert_eq!(tm.process().unwrap(), 10);
    tm.apply_backpressure(&mut fake).unwrap();
    assert!(fake.paused.is_empty(), "drained: fetched again");

    fetched(&mut tm, 1, 5..10);
    tm.apply_backpressure(&mut fake).unwrap();
    assert_eq!(fake.paused, BTreeSet::from([input(1)]));
    assign(&mut tm, &mut fake, &[0]);
    tm.apply_backpressure(&mut fake).unwrap();
    assert!(
        fake.paused.is_empty(),
        "a revoked partition is not left paused"
    );
}

/// Where a standby's changelog is read to (its next offset), as a checkpoint would record it.
fn standby_position(tm: &TaskManager, p: i32) -> Option<i64> {
    tm.standby[&task(p)].changelogs()[0].checkpoint
}

#[test]
fn a_standby_far_behind_catches_up_in_slices_taking_turns_with_the_others() {
    let (mut tm, mut fake) = (manager(2, true), Fake::default());
    // Both far behind, and only ten records of each can be fetched for now.
    changelog(&mut fake, 0, 1_000, 10);
    changelog(&mut fake, 1, 1_000, 10);
    tm.add(&BTreeSet::new(), &tasks(&[0, 1])).unwrap();

    tm.update_standbys(&mut fake, true).unwrap();
    assert_eq!(standby_position(&tm, 0), Some(10), "read what could be");
    assert_eq!(standby_position(&tm, 1), None, "not reached in this slice");
    assert_eq!(tm.standby_behind, Some(task(1)), "0_1 goes first next time");
    assert_eq!(
        fake.restoring, None,
        "the changelog is released between slices"
    );
    assert_eq!(tm.standby_lags[&task(0)], 1_000);

    tm.update_standbys(&mut fake, true).unwrap();
    assert_eq!(standby_position(&tm, 1), Some(10));
    assert_eq!(standby_position(&tm, 0), Some(10));
    assert_eq!(tm.standby_behind, Some(task(0)), "then 0_0 again");

    fake.fetchable.clear();
    let mut calls = 0;
    while calls == 0 || tm.standby_behind.is_some() {
        tm.update_standbys(&mut fake, true).unwrap();
        calls += 1;
        assert!(calls < 1_000, "the standbys never caught up");
    }
    assert_eq!(standby_position(&tm, 0), Some(1_000));
    assert_eq!(standby_position(&tm, 1), Some(1_000));
    assert_eq!(fake.restoring, None);
    // Caught up: the next update finds nothing to read.
    tm.update_standbys(&mut fake, true).unwrap();
    assert_eq!(
        tm.standby_lags,
        BTreeMap::from([(task(0), 0), (task(1), 0)])
    );
    assert_eq!(tm.standby_behind, None);
}
