//! Plumbing for `streams-dsl`, which applications do not need: hidden, no stability promise.
//!
//! What the DSL needs to build topologies; it changes with the DSL.
//!
//! - [`builtin_serde`]: the serde of a built-in type, picked by type, for the DSL's defaults.
//! - `Topology::add_repartition_topic` and `Topology::note_generated_name`: methods, so that the
//!   DSL calls them on its topology like the rest; defined here and hidden from `Topology`'s
//!   docs, because an application building a topology by hand has no use for them.

use crate::serde::{DefaultSerde, SerdeRef};
use crate::topology::Topology;

/// `serde` as a serde of `T`, when `S` is `T`.
fn cast<S: 'static, T: 'static>(serde: SerdeRef<S>) -> Option<SerdeRef<T>> {
    (Box::new(serde) as Box<dyn std::any::Any>)
        .downcast::<SerdeRef<T>>()
        .ok()
        .map(|b| *b)
}

/// The built-in serde of `T` if `T` is one of the types with a Kafka serde (String, `Vec<u8>`,
/// i64, i32, i16, f64, f32, bool, `()`, `serde_json::Value`) or an `Option` of one of them.
///
/// The DSL uses it when no serde was given for a type and none was carried from upstream.
/// ```
/// use streams_core::internals::builtin_serde;
/// assert!(builtin_serde::<i64>().is_some());
/// assert!(builtin_serde::<Option<String>>().is_some());
/// struct Mine;
/// assert!(builtin_serde::<Mine>().is_none());
/// ```
pub fn builtin_serde<T: 'static>() -> Option<SerdeRef<T>> {
    use std::any::TypeId;
    macro_rules! try_types {
        ($($t:ty),*) => {
            $(
                if TypeId::of::<T>() == TypeId::of::<$t>() {
                    return cast::<$t, T>(<$t as DefaultSerde>::default_serde());
                }
                if TypeId::of::<T>() == TypeId::of::<Option<$t>>() {
                    return cast::<Option<$t>, T>(<Option<$t> as DefaultSerde>::default_serde());
                }
            )*
        };
    }
    try_types!(
        String,
        Vec<u8>,
        i64,
        i32,
        i16,
        f64,
        f32,
        bool,
        (),
        serde_json::Value
    );
    None
}

/// DSL plumbing on [`Topology`].
impl Topology {
    /// Declares `topic` an internal repartition topic: the runtime creates it as
    /// `<application.id>-<topic>` with `partitions` partitions (or as many as the tasks writing
    /// it when `None`), and sources and sinks naming it read and write that topic.
    #[doc(hidden)]
    pub fn add_repartition_topic(&mut self, topic: &str, partitions: Option<i32>) -> &mut Self {
        self.repartition_topics
            .insert(topic.to_string(), partitions);
        self
    }

    /// Records that the DSL generated `name` (a store or an internal topic) rather than the user
    /// naming it; `ensure.explicit.internal.resource.naming=true` refuses such topologies.
    #[doc(hidden)]
    pub fn note_generated_name(&mut self, kind: &str, name: &str) -> &mut Self {
        self.generated_names
            .push((kind.to_string(), name.to_string()));
        self
    }
}
