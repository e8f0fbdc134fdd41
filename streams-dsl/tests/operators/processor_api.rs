//! The Processor API: `KStream::process` with a store and punctuations, and a topology built by hand.

use std::collections::HashMap;
use std::time::Duration;

use streams_core::serde::Serdes;
use streams_core::{
    Processor, ProcessorContext, PunctuationId, PunctuationType, Record, Result, Stores, Topology,
    TopologyTestDriver,
};
use streams_dsl::StreamsBuilder;

use super::{config, driver, s};

/// Keeps the latest value per key in a store; on punctuation emits the store's size and how
/// many records it has seen (state the punctuation reaches through `&mut self`).
struct Latest {
    store: streams_core::KeyValueStore<String, String>,
    seen: i64,
    wall: PunctuationId,
    stream: PunctuationId,
}

impl Latest {
    fn init(ctx: &mut ProcessorContext<'_, String, i64>) -> Result<Self> {
        let wall =
            ctx.schedule_punctuation(Duration::from_secs(10), PunctuationType::WallClockTime);
        let stream =
            ctx.schedule_punctuation(Duration::from_millis(100), PunctuationType::StreamTime);
        Ok(Latest {
            store: ctx.get_state_store("latest")?,
            seen: 0,
            wall: wall.id,
            stream: stream.id,
        })
    }
}

impl Processor for Latest {
    type KIn = String;
    type VIn = String;
    type KOut = String;
    type VOut = i64;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        r: Record<String, String>,
    ) -> Result<()> {
        if r.value == "boom" {
            return Err(streams_core::StreamsError::user("refusing boom"));
        }
        self.seen += 1;
        self.store.put(&r.key, &r.value)?;
        assert_eq!(ctx.topic(), Some("in"));
        assert!(ctx.offset().is_some());
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        id: PunctuationId,
        now: i64,
    ) -> Result<()> {
        if id == self.wall {
            let n = self.store.approximate_num_entries()? as i64;
            ctx.forward(Record::new("wall".to_string(), n, now))?;
            ctx.forward(Record::new("seen".to_string(), self.seen, now))
        } else {
            assert_eq!(id, self.stream);
            ctx.forward(Record::new("stream".to_string(), now, now))
        }
    }
}

#[test]
fn process_with_store_and_both_punctuations() {
    let b = StreamsBuilder::new();
    b.add_state_store(Stores::in_memory_key_value("latest", s(), s()));
    b.stream::<String, String>("in")
        .process(Latest::init, &["latest"])
        .to("out");
    let d = driver(b);
    let input = d.create_input_topic("in", s(), s());
    let out = d.create_output_topic("out", s(), Serdes::i64());
    input.pipe_input_at("a".into(), "1".into(), 1000);
    // The first stream-time punctuation fires with the first record.
    assert_eq!(out.read_key_value(), ("stream".to_string(), 1000));
    input.pipe_input_at("b".into(), "2".into(), 1050);
    assert!(out.is_empty(), "not due before 1100");
    input.pipe_input_at("a".into(), "3".into(), 1100);
    assert_eq!(out.read_key_value(), ("stream".to_string(), 1100));
    d.advance_wall_clock_time(Duration::from_secs(9)).unwrap();
    assert!(out.is_empty());
    d.advance_wall_clock_time(Duration::from_secs(1)).unwrap();
    assert_eq!(out.read_key_value(), ("wall".to_string(), 2));
    assert_eq!(out.read_key_value(), ("seen".to_string(), 3));
    let store = d.get_key_value_store::<String, String>("latest").unwrap();
    assert_eq!(store.get(&"a".into()).unwrap().as_deref(), Some("3"));
    // Errors from a processor name the task and the processor.
    let err = input
        .try_pipe_input("c".into(), "boom".into(), 1200)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("KSTREAM-PROCESSOR-") && err.contains("0_0") && err.contains("refusing boom"),
        "{err}"
    );
}

#[test]
fn processor_api_topology_by_hand() {
    let mut t = Topology::new();
    t.add_source("src", &["in"], s(), s()).unwrap();
    let err = t
        .add_sink("bad", "x", s(), Serdes::i64(), &["src"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`src` forwards") && err.contains("`bad` takes"),
        "{err}"
    );
    t.add_sink("sink", "out", s(), s(), &["src"]).unwrap();
    assert!(t.add_sink("sink", "out", s(), s(), &["src"]).is_err());
    let d = TopologyTestDriver::new(t, config()).unwrap();
    d.create_input_topic("in", s(), s())
        .pipe_input("k".into(), "v".into());
    let mut out: HashMap<String, String> = d
        .create_output_topic("out", s(), s())
        .read_key_values_to_map();
    assert_eq!(out.remove("k").as_deref(), Some("v"));
}
