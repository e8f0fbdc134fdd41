//! Fallible operators on [`KStream`]: `try_filter`, `try_map`, `try_map_values`... whose
//! closures return `Result`; an error goes to the processing exception handler with the record's
//! task, node and source coordinates, instead of ending the application as a panic would.
//!
//! Each is named as its infallible twin (`KSTREAM-MAPVALUES-…`), so that a topology keeps its
//! node names when an operator becomes fallible; the infallible ones are these with an error
//! that cannot happen (`Infallible`), so the two never drift apart.

use std::fmt::Display;
use std::sync::Arc;

use streams_core::{Record, StreamsError};

use crate::kstream::KStream;
use crate::Data;

impl<K: Data, V: Data> KStream<K, V> {
    /// Keeps the records for which `pred` returns `Ok(true)`; an `Err` goes to the processing
    /// exception handler.
    ///
    /// ```
    /// use streams_core::{StreamsConfig, TopologyTestDriver};
    /// use streams_dsl::StreamsBuilder;
    /// use streams_core::serde::Serdes;
    ///
    /// let b = StreamsBuilder::new();
    /// b.stream::<String, String>("in")
    ///     .try_filter(|_, v| v.parse::<i64>().map(|n| n > 0))
    ///     .to("out");
    /// let config = StreamsConfig::new("app", "unused:9092")
    ///     .set("processing.exception.handler", "log-and-continue");
    /// let mut driver = TopologyTestDriver::new(b.build().unwrap(), config).unwrap();
    /// let input = driver.create_input_topic("in", Serdes::string(), Serdes::string());
    /// input.pipe_input("a".into(), "7".into());
    /// input.pipe_input("b".into(), "seven".into()); // not a number: skipped by the handler
    /// input.pipe_input("c".into(), "-1".into());
    /// let out = driver.create_output_topic("out", Serdes::string(), Serdes::string());
    /// assert_eq!(out.read_key_values_to_list(), vec![("a".to_string(), "7".to_string())]);
    /// ```
    pub fn try_filter<E: Display>(
        &self,
        pred: impl Fn(&K, &V) -> Result<bool, E> + Send + Sync + 'static,
    ) -> KStream<K, V> {
        let node = self.add::<K, V>(
            "KSTREAM-FILTER-",
            Arc::new(move |ctx, r| {
                if pred(&r.key, &r.value).map_err(StreamsError::user)? {
                    ctx.forward(r)
                } else {
                    Ok(())
                }
            }),
        );
        self.derive(
            node,
            self.key_serde.clone(),
            self.value_serde.clone(),
            self.repartition_required,
        )
    }

    /// Replaces key and value with `f`'s `Ok`; an `Err` goes to the processing exception handler.
    pub fn try_map<K2: Data, V2: Data, E: Display>(
        &self,
        f: impl Fn(K, V) -> Result<(K2, V2), E> + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let node = self.add::<K2, V2>(
            "KSTREAM-MAP-",
            Arc::new(move |ctx, r| {
                let (k, v) = f(r.key, r.value).map_err(StreamsError::user)?;
                ctx.forward(Record {
                    key: k,
                    value: v,
                    timestamp: r.timestamp,
                    headers: r.headers,
                })
            }),
        );
        self.derive(node, None, None, true)
    }

    /// Replaces the value with `f`'s `Ok`; an `Err` goes to the processing exception handler.
    pub fn try_map_values<V2: Data, E: Display>(
        &self,
        f: impl Fn(V) -> Result<V2, E> + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.try_map_values_with_key(move |_, v| f(v))
    }

    /// Replaces the value with `f`'s `Ok`, seeing the key; an `Err` goes to the processing
    /// exception handler.
    pub fn try_map_values_with_key<V2: Data, E: Display>(
        &self,
        f: impl Fn(&K, V) -> Result<V2, E> + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let node = self.add::<K, V2>(
            "KSTREAM-MAPVALUES-",
            Arc::new(move |ctx, r| {
                let v = f(&r.key, r.value).map_err(StreamsError::user)?;
                ctx.forward(Record {
                    key: r.key,
                    value: v,
                    timestamp: r.timestamp,
                    headers: r.headers,
                })
            }),
        );
        self.derive(
            node,
            self.key_serde.clone(),
            None,
            self.repartition_required,
        )
    }

    /// Turns each record into the records of `f`'s `Ok`; an `Err` goes to the processing
    /// exception handler, and nothing of that record is forwarded.
    pub fn try_flat_map<K2: Data, V2: Data, I, E: Display>(
        &self,
        f: impl Fn(K, V) -> Result<I, E> + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        let node = self.add::<K2, V2>(
            "KSTREAM-FLATMAP-",
            Arc::new(move |ctx, r| {
                for (k, v) in f(r.key, r.value).map_err(StreamsError::user)? {
                    ctx.forward(Record {
                        key: k,
                        value: v,
                        timestamp: r.timestamp,
                        headers: r.headers.clone(),
                    })?;
                }
                Ok(())
            }),
        );
        self.derive(node, None, None, true)
    }

    /// Turns each value into the values of `f`'s `Ok`, with the same key; an `Err` goes to the
    /// processing exception handler, and nothing of that record is forwarded.
    pub fn try_flat_map_values<V2: Data, I, E: Display>(
        &self,
        f: impl Fn(V) -> Result<I, E> + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        let node = self.add::<K, V2>(
            "KSTREAM-FLATMAPVALUES-",
            Arc::new(move |ctx, r| {
                for v in f(r.value).map_err(StreamsError::user)? {
                    ctx.forward(Record {
                        key: r.key.clone(),
                        value: v,
                        timestamp: r.timestamp,
                        headers: r.headers.clone(),
                    })?;
                }
                Ok(())
            }),
        );
        self.derive(
            node,
            self.key_serde.clone(),
            None,
            self.repartition_required,
        )
    }

    /// Calls `f` on each record; an `Err` goes to the processing exception handler. The stream
    /// ends here.
    pub fn try_foreach<E: Display>(
        &self,
        f: impl Fn(&K, &V) -> Result<(), E> + Send + Sync + 'static,
    ) {
        self.add::<(), ()>(
            "KSTREAM-FOREACH-",
            Arc::new(move |_ctx, r| f(&r.key, &r.value).map_err(StreamsError::user)),
        );
    }
}
