//! The exception handlers and the dead-letter queue, through the TopologyTestDriver: each
//! handler's continue and fail, what it is told, panics caught at the node, fallible operators,
//! and the dead-letter records' bytes and headers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use streams_core::serde::{Serde, SerdeError, SerdeRef, Serdes};
use streams_core::{
    ErrorHandlerContext, HandlerResponse, ProcessingExceptionHandler, ProducedRecord,
    ProductionExceptionHandler, ProductionResponse, PunctuationType, Record, SerializationOrigin,
    StreamsConfig, StreamsError, TopologyTestDriver,
};
use streams_dsl::StreamsBuilder;

const DLQ: &str = "dead-letters";

fn s() -> SerdeRef<String> {
    Serdes::string()
}

fn config() -> StreamsConfig {
    StreamsConfig::new("app", "unused:9092")
}

fn continuing() -> StreamsConfig {
    config()
        .set("deserialization.exception.handler", "log-and-continue")
        .set(
            "processing.exception.handler",
            "org.apache.kafka.streams.errors.LogAndContinueProcessingExceptionHandler",
        )
        .set("production.exception.handler", "log-and-continue")
        .set("errors.dead.letter.queue.topic.name", DLQ)
}

fn header<'a>(r: &'a Record<Vec<u8>, Vec<u8>>, name: &str) -> &'a str {
    let v = r
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no header {name} in {:?}", r.headers))
        .1
        .as_deref()
        .expect("header has a value");
    std::str::from_utf8(v).expect("UTF-8 header")
}

/// `in` (numbers as text) -> parse (fallible) -> `out`; also `in` -> `copy` unchanged.
fn parsing_topology() -> StreamsBuilder {
    let b = StreamsBuilder::new();
    let input = b.stream::<String, String>("in");
    input
        .try_map_values(|v: String| v.parse::<i64>().map(|n| (n * 2).to_string()))
        .to("out");
    input.to("copy");
    b
}

#[test]
fn a_processing_error_is_skipped_at_its_node_and_dead_lettered_with_its_source() {
    let d = TopologyTestDriver::new(parsing_topology().build().unwrap(), continuing()).unwrap();
    let input = d.create_input_topic("in", s(), s());
    d.pipe_raw(
        "in",
        Some(b"k2".to_vec()),
        Some(b"two".to_vec()),
        5,
        vec![("trace".into(), Some(b"abc".to_vec()))],
    )
    .unwrap();
    input.pipe_input_at("k1".into(), "21".into(), 6);
    let out = d.create_output_topic("out", s(), s());
    assert_eq!(
        out.read_key_values_to_list(),
        vec![("k1".to_string(), "42".to_string())]
    );
    // The sibling branch still got the record the parser failed on.
    let copy = d.create_output_topic("copy", s(), s());
    assert_eq!(copy.read_values_to_list(), vec!["two", "21"]);

    let dlq = d.create_output_topic(DLQ, Serdes::bytes(), Serdes::bytes());
    let dead = dlq.read_records_to_list();
    assert_eq!(dead.len(), 1);
    let r = &dead[0];
    assert_eq!(
        (&r.key[..], &r.value[..], r.timestamp),
        (&b"k2"[..], &b"two"[..], 5)
    );
    assert_eq!(r.headers[0], ("trace".to_string(), Some(b"abc".to_vec())));
    assert_eq!(header(r, "__streams.errors.topic"), "in");
    assert_eq!(header(r, "__streams.errors.partition"), "0");
    assert_eq!(header(r, "__streams.errors.offset"), "0");
    assert!(header(r, "__streams.errors.exception").starts_with("User: invalid digit"));
    assert_eq!(
        header(r, "__streams.errors.message"),
        "invalid digit found in string"
    );
    assert_eq!(d.metrics().dropped, 1);
}

#[test]
fn by_default_a_processing_error_fails_naming_task_node_and_record() {
    let d = TopologyTestDriver::new(parsing_topology().build().unwrap(), config()).unwrap();
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input_at("k1".into(), "1".into(), 1);
    let e = input
        .try_pipe_input("k2".into(), "two".into(), 2)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "processor `KSTREAM-MAPVALUES-0000000001` of task 0_0 failed on the record at topic `in` \
         partition 0 offset 1: invalid digit found in string"
    );
}

#[test]
fn a_panic_in_user_code_is_caught_at_its_node() {
    let topology = || {
        let b = StreamsBuilder::new();
        b.stream::<String, String>("in")
            .map_values(|v: String| {
                if v == "poison" {
                    panic!("cannot digest {v}");
                }
                v.to_uppercase()
            })
            .to("out");
        b.build().unwrap()
    };

    // Continue: the record is dead-lettered with the panic's message and a stack.
    let d = TopologyTestDriver::new(topology(), continuing()).unwrap();
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input_at("a".into(), "poison".into(), 1);
    input.pipe_input_at("b".into(), "fine".into(), 2);
    let out = d.create_output_topic("out", s(), s());
    assert_eq!(out.read_values_to_list(), vec!["FINE"]);
    let dead = d
        .create_output_topic(DLQ, Serdes::bytes(), Serdes::bytes())
        .read_records_to_list();
    assert_eq!(dead.len(), 1);
    assert!(header(&dead[0], "__streams.errors.message").contains("cannot digest poison"));
    assert!(header(&dead[0], "__streams.errors.exception").starts_with("Panic: panicked at "));
    assert!(header(&dead[0], "__streams.errors.stacktrace").contains("handlers.rs"));

    // Fail (the default): the error names the task, the node, the record and the panic's place.
    let d = TopologyTestDriver::new(topology(), config()).unwrap();
    let input = d.create_input_topic("in", s(), s());
    let e = input
        .try_pipe_input("a".into(), "poison".into(), 1)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "processor `KSTREAM-MAPVALUES-0000000001` of task 0_0 failed on the record at topic \
             `in` partition 0 offset 0: panicked at "
        ),
        "{e}"
    );
    assert!(
        e.contains("handlers.rs") && e.ends_with("cannot digest poison"),
        "{e}"
    );
}

#[test]
fn a_malformed_record_is_skipped_by_the_deserialization_handler_and_dead_lettered() {
    let topology = || {
        let b = StreamsBuilder::new();
        b.stream_with::<String, i64>(
            &["in"],
            streams_dsl::Consumed::with(Serdes::string(), Serdes::i64()),
        )
        .map_values(|n: i64| n + 1)
        .to_with(
            "out",
            streams_dsl::Produced::with(Serdes::string(), Serdes::i64()),
        );
        b.build().unwrap()
    };
    let d = TopologyTestDriver::new(topology(), continuing()).unwrap();
    d.pipe_raw(
        "in",
        Some(b"k".to_vec()),
        Some(vec![1, 2, 3]),
        7,
        Vec::new(),
    )
    .unwrap();
    d.pipe_raw(
        "in",
        Some(b"k".to_vec()),
        Some(41i64.to_be_bytes().to_vec()),
        8,
        Vec::new(),
    )
    .unwrap();
    let out = d.create_output_topic("out", s(), Serdes::i64());
    assert_eq!(out.read_values_to_list(), vec![42]);
    let dead = d
        .create_output_topic(DLQ, Serdes::bytes(), Serdes::bytes())
        .read_records_to_list();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value, vec![1, 2, 3]);
    assert!(header(&dead[0], "__streams.errors.exception").starts_with("Deserialization: "));
    assert_eq!(header(&dead[0], "__streams.errors.offset"), "0");
    assert_eq!(d.metrics().dropped, 1);

    // log-and-fail (the default) names the record.
    let d = TopologyTestDriver::new(topology(), config()).unwrap();
    let e = d
        .pipe_raw(
            "in",
            Some(b"k".to_vec()),
            Some(vec![1, 2, 3]),
            7,
            Vec::new(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "failed to deserialize the value of the record at topic `in` partition 0 offset 0"
        ),
        "{e}"
    );
}

#[test]
fn a_record_too_large_to_send_goes_to_the_production_handler() {
    let topology = || {
        let b = StreamsBuilder::new();
        b.stream::<String, String>("in")
            .map_values(|v: String| v.repeat(10))
            .to("out");
        b.build().unwrap()
    };
    let small = |c: StreamsConfig| c.set("producer.message.max.bytes", "1000");
    let d = TopologyTestDriver::new(topology(), small(continuing())).unwrap();
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input_at("k".into(), "x".repeat(150), 1); // 1,500 bytes out: too large
    input.pipe_input_at("k".into(), "y".into(), 2);
    let out = d.create_output_topic("out", s(), s());
    assert_eq!(out.read_values_to_list(), vec!["y".repeat(10)]);
    let dead = d
        .create_output_topic(DLQ, Serdes::bytes(), Serdes::bytes())
        .read_records_to_list();
    assert_eq!(dead.len(), 1);
    // The dead letter holds the source record, which is small enough.
    assert_eq!(dead[0].value, "x".repeat(150).into_bytes());
    assert!(header(&dead[0], "__streams.errors.exception").starts_with("Production: "));
    assert_eq!(d.metrics().dropped, 1);

    // The default handler fails on it, naming the sink, the task and the record.
    let d = TopologyTestDriver::new(topology(), small(config())).unwrap();
    let input = d.create_input_topic("in", s(), s());
    let e = input
        .try_pipe_input("k".into(), "x".repeat(150), 1)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("failed to produce to topic `out`: "), "{e}");
    assert!(
        e.ends_with(
            "(sink `KSTREAM-SINK-0000000002` of task 0_0 on the record at topic `in` partition 0 offset 0)"
        ),
        "{e}"
    );
}

/// A serde that cannot write "unwritable".
struct Picky;

impl Serde<String> for Picky {
    fn serialize(&self, _: &str, v: &String) -> Result<Option<Vec<u8>>, SerdeError> {
        if v == "unwritable" {
            return Err(SerdeError("no way".into()));
        }
        Ok(Some(v.clone().into_bytes()))
    }
    fn deserialize(&self, _: &str, b: Option<&[u8]>) -> Result<String, SerdeError> {
        Ok(String::from_utf8_lossy(b.unwrap_or_default()).into_owned())
    }
}

/// Records what it is told, and continues.
#[derive(Default, Clone)]
struct Recording(Arc<Mutex<Vec<String>>>);

impl ProductionExceptionHandler for Recording {
    fn handle(
        &self,
        _: &ErrorHandlerContext<'_>,
        _: &ProducedRecord<'_>,
        _: &StreamsError,
    ) -> ProductionResponse {
        ProductionResponse::Fail
    }
    fn handle_serialization(
        &self,
        c: &ErrorHandlerContext<'_>,
        topic: &str,
        e: &StreamsError,
        origin: SerializationOrigin,
    ) -> ProductionResponse {
        self.0.lock().unwrap().push(format!(
            "{} {} {:?} {:?} {topic} {origin:?} {e}",
            c.task_id, c.processor_node_id, c.topic, c.offset
        ));
        ProductionResponse::Continue
    }
}

impl ProcessingExceptionHandler for Recording {
    fn handle(&self, c: &ErrorHandlerContext<'_>, e: &StreamsError) -> HandlerResponse {
        self.0.lock().unwrap().push(format!(
            "{} {} {:?} {:?} {:?} {} {e}",
            c.task_id, c.processor_node_id, c.topic, c.partition, c.offset, c.timestamp
        ));
        HandlerResponse::Continue
    }
}

#[test]
fn handlers_of_your_own_see_the_node_the_task_and_the_record() {
    let topology = || {
        let b = StreamsBuilder::new();
        b.stream::<String, String>("in").to_with(
            "out",
            streams_dsl::Produced::with(Serdes::string(), Arc::new(Picky)),
        );
        b.build().unwrap()
    };
    let seen = Recording::default();
    let d = TopologyTestDriver::new(
        topology(),
        config().with_production_exception_handler(seen.clone()),
    )
    .unwrap();
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input_at("k".into(), "unwritable".into(), 3);
    input.pipe_input_at("k".into(), "fine".into(), 4);
    let out = d.create_output_topic("out", s(), s());
    assert_eq!(out.read_values_to_list(), vec!["fine"]);
    assert_eq!(
        *seen.0.lock().unwrap(),
        vec![
            "0_0 KSTREAM-SINK-0000000001 Some(\"in\") Some(0) out Value failed to serialize a \
             record for `out`: no way"
                .to_string()
        ]
    );

    // A property and a handler set in code for the same thing are refused.
    let both = config()
        .set("processing.exception.handler", "log-and-fail")
        .with_processing_exception_handler(Recording::default());
    let e = TopologyTestDriver::new(topology(), both)
        .err()
        .expect("refused")
        .to_string();
    assert_eq!(
        e,
        "invalid configuration property `processing.exception.handler`: is set, and a handler is \
         also set in code; keep one"
    );
}

#[test]
fn a_punctuation_error_goes_to_the_processing_handler_without_a_source() {
    use streams_core::{Processor, ProcessorContext};
    struct Ticking;
    impl Processor for Ticking {
        type KIn = String;
        type VIn = String;
        type KOut = String;
        type VOut = String;
        fn punctuate(
            &mut self,
            _: &mut ProcessorContext<'_, String, String>,
            _: streams_core::PunctuationId,
            ts: i64,
        ) -> streams_core::Result<()> {
            Err(StreamsError::user(format!("tick {ts} failed")))
        }
        fn process(
            &mut self,
            ctx: &mut ProcessorContext<'_, String, String>,
            r: Record<String, String>,
        ) -> streams_core::Result<()> {
            ctx.forward(r)
        }
    }
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .process(
            |ctx| {
                ctx.schedule_punctuation(Duration::from_secs(1), PunctuationType::WallClockTime);
                Ok(Ticking)
            },
            &[],
        )
        .to("out");
    let seen = Recording::default();
    let d = TopologyTestDriver::new(
        b.build().unwrap(),
        config().with_processing_exception_handler(seen.clone()),
    )
    .unwrap();
    d.advance_wall_clock_time(Duration::from_secs(1)).unwrap();
    assert_eq!(
        *seen.0.lock().unwrap(),
        vec!["0_0 KSTREAM-PROCESSOR-0000000001 None None None 1000 tick 1000 failed".to_string()]
    );
}
