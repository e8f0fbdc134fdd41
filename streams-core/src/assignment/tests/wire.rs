//! The userData encoding: the exact layout, round trips, truncation and garbage.

use std::collections::{BTreeMap, BTreeSet};

use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;

use super::support::{pid, t};
use crate::assignment::wire::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, peek_versions,
    WireError, LATEST_SUPPORTED_VERSION, MAX_STREAM_THREADS, VERSION,
};
use crate::assignment::{
    AssignmentErrorCode, AssignmentInfo, FollowUp, HostInfo, OffsetSum, OwnedTasks, ProcessId,
    Subscription, ThreadAssignment, TopicPartition,
};
use crate::task_id::TaskId;

fn small_subscription() -> Subscription {
    Subscription {
        process_id: pid(0xab),
        num_threads: 2,
        task_offset_sums: [
            (t(0, 1), OffsetSum::RunningActive),
            (t(1, 0), OffsetSum::Checkpointed(7)),
        ]
        .into_iter()
        .collect(),
        host: Some(HostInfo {
            host: "h".into(),
            port: 80,
        }),
        client_tags: [("z".to_string(), "a".to_string())].into_iter().collect(),
        owned: vec![
            OwnedTasks {
                active: [t(0, 1)].into_iter().collect(),
                standby: BTreeSet::new(),
            },
            OwnedTasks::default(),
        ],
    }
}

fn small_assignment() -> AssignmentInfo {
    let tp = |topic: &str, partition| TopicPartition {
        topic: topic.into(),
        partition,
    };
    AssignmentInfo {
        error: AssignmentErrorCode::None,
        follow_up: Some(FollowUp::At(5)),
        threads: vec![ThreadAssignment {
            active: [t(0, 1)].into_iter().collect(),
            standby: [t(0, 0)].into_iter().collect(),
            warmup: BTreeSet::new(),
        }],
        active_by_host: [(
            HostInfo {
                host: "h".into(),
                port: 80,
            },
            [tp("in", 1), tp("in", 2)].into_iter().collect(),
        )]
        .into_iter()
        .collect(),
        standby_by_host: BTreeMap::new(),
    }
}

#[test]
fn subscription_layout_is_version_first_then_fixed_fields_then_lists() {
    let bytes = encode_subscription(&small_subscription()).unwrap();
    let mut expected = vec![0, 1, 0, 1]; // version 1, reads up to 1
    expected.extend([0xab; 16]); // process id
    expected.extend([0, 0, 0, 2]); // threads
    expected.extend([1, 0, 1, b'h', 0, 80]); // host "h":80
    expected.extend([0, 0, 0, 1, 0, 1, b'z', 0, 1, b'a']); // tags {z: a}
    expected.extend([0, 0, 0, 2]); // two offset sums
    expected.extend([0, 0, 0, 0, 0, 0, 0, 1]); // task 0_1
    expected.extend((-2i64).to_be_bytes()); // running
    expected.extend([0, 0, 0, 1, 0, 0, 0, 0]); // task 1_0
    expected.extend(7i64.to_be_bytes());
    expected.extend([0, 0, 0, 2]); // two threads owned
    expected.extend([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]); // active {0_1}
    expected.extend([0, 0, 0, 0]); // standby {}
    expected.extend([0, 0, 0, 0, 0, 0, 0, 0]); // thread 1: nothing
    assert_eq!(bytes, expected);
    assert_eq!(
        peek_versions(&bytes).unwrap(),
        (VERSION, LATEST_SUPPORTED_VERSION)
    );
}

#[test]
fn assignment_layout_is_version_first_then_fixed_fields_then_lists() {
    let bytes = encode_assignment(&small_assignment()).unwrap();
    let mut expected = vec![0, 1, 0, 1, 0, 0]; // version, reads up to, error code 0
    expected.push(2); // follow-up at ...
    expected.extend(5i64.to_be_bytes());
    expected.extend([0, 0, 0, 1]); // one thread
    expected.extend([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]); // active {0_1}
    expected.extend([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]); // standby {0_0}
    expected.extend([0, 0, 0, 0]); // warmup {}
    expected.extend([0, 0, 0, 1, 0, 1, b'h', 0, 80]); // one host, "h":80
    expected.extend([0, 0, 0, 1, 0, 2, b'i', b'n']); // one topic, "in"
    expected.extend([0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]); // partitions 1, 2
    expected.extend([0, 0, 0, 0]); // no standby hosts
    assert_eq!(bytes, expected);
}

#[test]
fn a_huge_count_fails_before_allocating_and_names_the_field() {
    let mut bytes = encode_subscription(&Subscription {
        client_tags: BTreeMap::new(),
        ..small_subscription()
    })
    .unwrap();
    // The tag count sits right after the host: claim four billion tags.
    let at = 4 + 16 + 4 + 6;
    bytes[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    let err = decode_subscription(&bytes).unwrap_err();
    assert!(
        matches!(err, WireError::Truncated { field: "client_tags", needed, .. } if needed == 4 * u64::from(u32::MAX)),
        "{err}"
    );
    assert!(err.to_string().contains("client_tags"), "{err}");
}

/// Decodes `bytes` after `edit`, expecting an error that mentions `field`.
fn assert_subscription_error(edit: impl Fn(&mut Vec<u8>), field: &str) {
    let mut bytes = encode_subscription(&small_subscription()).unwrap();
    edit(&mut bytes);
    let err = decode_subscription(&bytes).unwrap_err().to_string();
    assert!(err.contains(field), "expected `{field}` in: {err}");
}

#[test]
fn invalid_subscription_fields_are_named() {
    assert_subscription_error(
        |b| b[2..4].copy_from_slice(&[0, 0]),
        "latest_supported_version",
    );
    assert_subscription_error(|b| b[20..24].copy_from_slice(&[0, 0, 0, 0]), "num_threads");
    assert_subscription_error(
        |b| b[20..24].copy_from_slice(&(MAX_STREAM_THREADS + 1).to_be_bytes()),
        "num_threads",
    );
    assert_subscription_error(|b| b[24] = 2, "host present");
    assert_subscription_error(|b| b[27] = 0xff, "host"); // not UTF-8
                                                         // The first offset sum: neither -2 nor >= 0.
    assert_subscription_error(
        |b| b[52..60].copy_from_slice(&(-1i64).to_be_bytes()),
        "offset_sum",
    );
    // A negative partition.
    assert_subscription_error(
        |b| b[48..52].copy_from_slice(&(-1i32).to_be_bytes()),
        "task_offset_sums task",
    );
    // The second offset sum names the first's task again.
    assert_subscription_error(
        |b| b[60..68].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]),
        "task_offset_sums task",
    );
    assert_subscription_error(|b| b.push(0), "1 bytes left after the last field");
}

#[test]
fn invalid_assignment_fields_are_named() {
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = encode_assignment(&small_assignment()).unwrap();
        f(&mut bytes);
        decode_assignment(&bytes).unwrap_err().to_string()
    };
    assert!(edit(&|b| b[4..6].copy_from_slice(&[0, 9])).contains("error_code"));
    assert!(edit(&|b| b[6] = 3).contains("follow_up kind"));
    // The active set of thread 0 lists 0_1 twice.
    let twice = edit(&|b| {
        b[19..23].copy_from_slice(&[0, 0, 0, 2]);
        b.splice(31..31, [0, 0, 0, 0, 0, 0, 0, 1]);
    });
    assert!(
        twice.contains("threads active") && twice.contains("twice"),
        "{twice}"
    );
}

#[test]
fn a_newer_version_is_refused_with_what_the_sender_reads() {
    let mut bytes = encode_subscription(&small_subscription()).unwrap();
    bytes[0..4].copy_from_slice(&[0, 7, 0, 9]);
    assert_eq!(
        decode_subscription(&bytes).unwrap_err(),
        WireError::UnsupportedVersion {
            data: "subscription",
            version: 7,
            sender_latest: Some(9)
        }
    );
    let err = decode_assignment(&[0, 0]).unwrap_err();
    assert!(matches!(
        err,
        WireError::UnsupportedVersion {
            version: 0,
            sender_latest: None,
            ..
        }
    ));
    assert!(err.to_string().contains("version 0"), "{err}");
}

#[test]
fn values_that_cannot_be_written_are_refused_naming_the_field() {
    let mut s = small_subscription();
    s.num_threads = 0;
    assert!(encode_subscription(&s)
        .unwrap_err()
        .to_string()
        .contains("num_threads"));
    let mut s = small_subscription();
    s.task_offset_sums
        .insert(t(2, 0), OffsetSum::Checkpointed(u64::MAX));
    assert!(encode_subscription(&s)
        .unwrap_err()
        .to_string()
        .contains("offset_sum"));
    let mut s = small_subscription();
    s.client_tags.insert("k".into(), "v".repeat(70_000));
    assert!(encode_subscription(&s)
        .unwrap_err()
        .to_string()
        .contains("client_tags value"));
    let mut s = small_subscription();
    s.owned[0].active.insert(t(0, -1));
    assert!(encode_subscription(&s)
        .unwrap_err()
        .to_string()
        .contains("owned active"));
}

#[test]
fn a_members_slice_of_an_assignment_travels_as_is() {
    use super::support::{input, member, stateful, MemberExt};
    use crate::assignment::assign;
    let members = vec![
        member("a", 1, 2).running(&[t(0, 0)]).host("a", 1),
        member("b", 2, 1).host("b", 1),
    ];
    let group = assign(
        &input(members, vec![stateful(0, 4)], 1_000_000),
        &Default::default(),
    );
    for id in ["a", "b"] {
        let info = group.info_for(id).unwrap();
        assert_eq!(info.threads, group.members[id].threads);
        assert_eq!(info.active_by_host, group.active_by_host);
        assert_eq!(info.follow_up, group.follow_up);
        assert_eq!(
            decode_assignment(&encode_assignment(&info).unwrap()).unwrap(),
            info
        );
    }
    assert!(group.info_for("c").is_none());
}

fn task() -> impl Strategy<Value = TaskId> {
    (0u32..5, 0i32..50).prop_map(|(subtopology, partition)| TaskId {
        subtopology,
        partition,
    })
}

fn tasks() -> impl Strategy<Value = BTreeSet<TaskId>> {
    btree_set(task(), 0..6)
}

fn host() -> impl Strategy<Value = HostInfo> {
    ("[a-z0-9.-]{0,12}", any::<u16>()).prop_map(|(host, port)| HostInfo { host, port })
}

fn subscription() -> impl Strategy<Value = Subscription> {
    (
        any::<[u8; 16]>(),
        1..=MAX_STREAM_THREADS,
        btree_map(
            task(),
            prop_oneof![
                Just(OffsetSum::RunningActive),
                (0..=i64::MAX as u64).prop_map(OffsetSum::Checkpointed)
            ],
            0..8,
        ),
        proptest::option::of(host()),
        btree_map("\\PC{0,20}", "\\PC{0,30}", 0..5),
        vec((tasks(), tasks()), 0..4),
    )
        .prop_map(
            |(id, num_threads, task_offset_sums, host, client_tags, owned)| Subscription {
                process_id: ProcessId(id),
                num_threads,
                task_offset_sums,
                host,
                client_tags,
                owned: owned
                    .into_iter()
                    .map(|(active, standby)| OwnedTasks { active, standby })
                    .collect(),
            },
        )
}

fn partitions() -> impl Strategy<Value = BTreeSet<TopicPartition>> {
    btree_set(
        ("[a-z-]{1,10}", 0i32..100)
            .prop_map(|(topic, partition)| TopicPartition { topic, partition }),
        0..6,
    )
}

fn assignment() -> impl Strategy<Value = AssignmentInfo> {
    (
        prop_oneof![
            Just(AssignmentErrorCode::None),
            Just(AssignmentErrorCode::IncompleteSourceTopicMetadata),
            Just(AssignmentErrorCode::VersionProbing),
            Just(AssignmentErrorCode::ShutdownApplication),
        ],
        prop_oneof![
            Just(None),
            Just(Some(FollowUp::Immediately)),
            any::<i64>().prop_map(|ms| Some(FollowUp::At(ms))),
        ],
        vec((tasks(), tasks(), tasks()), 0..4),
        btree_map(host(), partitions(), 0..4),
        btree_map(host(), partitions(), 0..4),
    )
        .prop_map(
            |(error, follow_up, threads, active_by_host, standby_by_host)| AssignmentInfo {
                error,
                follow_up,
                threads: threads
                    .into_iter()
                    .map(|(active, standby, warmup)| ThreadAssignment {
                        active,
                        standby,
                        warmup,
                    })
                    .collect(),
                // The encoding groups a host's partitions by topic, so a host without any
                // partition still round-trips; keep both maps as generated.
                active_by_host,
                standby_by_host,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn subscriptions_round_trip(s in subscription()) {
        let bytes = encode_subscription(&s).unwrap();
        prop_assert_eq!(decode_subscription(&bytes).unwrap(), s);
    }

    #[test]
    fn assignments_round_trip(a in assignment()) {
        let bytes = encode_assignment(&a).unwrap();
        prop_assert_eq!(decode_assignment(&bytes).unwrap(), a);
    }

    #[test]
    fn every_truncation_of_a_subscription_is_an_error(s in subscription()) {
        let bytes = encode_subscription(&s).unwrap();
        for len in 0..bytes.len() {
            let err = decode_subscription(&bytes[..len]);
            prop_assert!(matches!(err, Err(WireError::Truncated { .. })), "{} of {} bytes: {:?}", len, bytes.len(), err);
        }
    }

    #[test]
    fn every_truncation_of_an_assignment_is_an_error(a in assignment()) {
        let bytes = encode_assignment(&a).unwrap();
        for len in 0..bytes.len() {
            let err = decode_assignment(&bytes[..len]);
            prop_assert!(matches!(err, Err(WireError::Truncated { .. })), "{} of {} bytes: {:?}", len, bytes.len(), err);
        }
    }

    /// Random bytes after a valid version: decoding never panics, and whatever decodes
    /// encodes back to the same value.
    #[test]
    fn garbage_never_panics(body in vec(any::<u8>(), 0..300)) {
        let mut bytes = vec![0, 1, 0, 1];
        bytes.extend(body);
        if let Ok(s) = decode_subscription(&bytes) {
            let again = encode_subscription(&s).unwrap();
            prop_assert_eq!(decode_subscription(&again).unwrap(), s);
        }
        if let Ok(a) = decode_assignment(&bytes) {
            let again = encode_assignment(&a).unwrap();
            prop_assert_eq!(decode_assignment(&again).unwrap(), a);
        }
    }

    /// One corrupted byte in a valid message: an error or another valid message, never a panic.
    #[test]
    fn a_flipped_byte_never_panics(s in subscription(), a in assignment(), at in any::<usize>(), x in 1u8..) {
        let mut bytes = encode_subscription(&s).unwrap();
        let i = at % bytes.len();
        bytes[i] ^= x;
        let _ = decode_subscription(&bytes);
        let mut bytes = encode_assignment(&a).unwrap();
        let i = at % bytes.len();
        bytes[i] ^= x;
        let _ = decode_assignment(&bytes);
    }
}
