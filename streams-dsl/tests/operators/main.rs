//! Semantics of every DSL operator, through the TopologyTestDriver; one module per family of
//! operators, the shared helpers here.

mod aggregate;
mod fixed_key;
mod naming;
mod processor_api;
mod stream;
mod table;
mod time_limit;
mod to_table_print;
mod topics;

use streams_core::serde::{SerdeRef, Serdes};
use streams_core::{StreamsConfig, TopologyTestDriver};
use streams_dsl::StreamsBuilder;

fn config() -> StreamsConfig {
    StreamsConfig::new("app", "unused:9092")
}

fn driver(b: StreamsBuilder) -> TopologyTestDriver {
    TopologyTestDriver::new(b.build().expect("topology builds"), config()).expect("driver starts")
}

fn s() -> SerdeRef<String> {
    Serdes::string()
}

fn opt_i64() -> SerdeRef<Option<i64>> {
    Serdes::nullable(Serdes::i64())
}

fn kv(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}
