//! `KStream::process_values`: fixed-key processors keep keys (so no repartition follows), reach
//! their stores and state from punctuations, and read and write headers.

use std::time::Duration;

use streams_core::serde::Serdes;
use streams_core::{KeyValueStore, PunctuationId, PunctuationType, Result, Stores};
use streams_dsl::{FixedKeyContext, FixedKeyProcessor, FixedKeyRecord, StreamsBuilder};

use super::{driver, s};

/// Numbers each key's values in a store (`1:a`, `2:a`...), tags each record with a header, and
/// on each wall-clock punctuation forgets every number (state reached from `punctuate`).
struct Numbered {
    seen: KeyValueStore<String, i64>,
    punctuations: i64,
}

impl Numbered {
    fn init(ctx: &mut FixedKeyContext<'_, '_, String, String>) -> Result<Self> {
        ctx.schedule_punctuation(Duration::from_secs(5), PunctuationType::WallClockTime);
        Ok(Numbered {
            seen: ctx.get_state_store("seen")?,
            punctuations: 0,
        })
    }
}

impl FixedKeyProcessor for Numbered {
    type K = String;
    type VIn = String;
    type VOut = String;

    fn process(
        &mut self,
        ctx: &mut FixedKeyContext<'_, '_, String, String>,
        mut r: FixedKeyRecord<String, String>,
    ) -> Result<()> {
        let n = self.seen.get(r.key())?.unwrap_or(0) + 1;
        self.seen.put(r.key(), &n)?;
        let from = r
            .headers()
            .iter()
            .find(|(k, _)| k == "from")
            .and_then(|(_, v)| v.clone())
            .map(|v| String::from_utf8(v).unwrap())
            .unwrap_or_default();
        r.headers_mut().push((
            "round".to_string(),
            Some(self.punctuations.to_string().into_bytes()),
        ));
        let value = format!("{n}:{}{from}", r.value());
        ctx.forward(r.with_value(value))
    }

    fn punctuate(
        &mut self,
        _: &mut FixedKeyContext<'_, '_, String, String>,
        _: PunctuationId,
        _: i64,
    ) -> Result<()> {
        self.punctuations += 1;
        for (k, _) in self.seen.all()? {
            self.seen.delete(&k)?;
        }
        Ok(())
    }
}

#[test]
fn process_values_keeps_keys_reaches_its_store_and_state_and_carries_headers() {
    let b = StreamsBuilder::new();
    b.add_state_store(Stores::in_memory_key_value("seen", s(), Serdes::i64()));
    b.stream::<String, String>("in")
        .process_values(Numbered::init, &["seen"])
        .to("out");
    let d = driver(b);
    let input = d.create_input_topic("in", s(), s());
    let out = d.create_output_topic("out", s(), s());
    input.pipe_input("a".into(), "x".into());
    input.pipe_input("a".into(), "y".into());
    input.pipe_input("b".into(), "z".into());
    let records = out.read_records_to_list();
    let got: Vec<(String, String)> = records
        .iter()
        .map(|r| (r.key.clone(), r.value.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a".into(), "1:x".into()),
            ("a".into(), "2:y".into()),
            ("b".into(), "1:z".into()),
        ]
    );
    assert_eq!(
        records[0].headers,
        vec![("round".to_string(), Some(b"0".to_vec()))]
    );
    d.advance_wall_clock_time(Duration::from_secs(5)).unwrap();
    input.pipe_input("a".into(), "w".into());
    let r = out.read_record();
    assert_eq!((r.key.as_str(), r.value.as_str()), ("a", "1:w"));
    assert_eq!(r.headers, vec![("round".to_string(), Some(b"1".to_vec()))]);
}

#[test]
fn process_values_needs_no_repartition_but_keeps_one_that_was_needed() {
    let b = StreamsBuilder::new();
    b.add_state_store(Stores::in_memory_key_value("seen", s(), Serdes::i64()));
    b.stream::<String, String>("in")
        .process_values(Numbered::init, &["seen"])
        .group_by_key()
        .count();
    let described = b.build().unwrap().describe().to_string();
    assert!(
        described.contains("KSTREAM-PROCESSVALUES-0000000001")
            && !described.contains("repartition"),
        "{described}"
    );

    let b = StreamsBuilder::new();
    b.add_state_store(Stores::in_memory_key_value("seen", s(), Serdes::i64()));
    b.stream::<String, String>("in")
        .select_key(|_, v| v.clone())
        .process_values(Numbered::init, &["seen"])
        .group_by_key()
        .count();
    let described = b.build().unwrap().describe().to_string();
    assert!(described.contains("repartition"), "{described}");
}
