//! [`KStream::print`] and [`Printed`]: each record written as a line `[label]: key, value` to
//! standard output or to a file, for debugging, as Kafka Streams' `print`.

use std::fmt::Display;
use std::fs::File;
use std::io::{LineWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use streams_core::{Processor, ProcessorContext, Record, Result, StreamsError};

use crate::kstream::KStream;
use crate::Data;

/// Turns a record into the text after its label.
type Mapper<K, V> = Arc<dyn Fn(&K, &V) -> String + Send + Sync>;

/// Where and how [`KStream::print`] writes (Kafka Streams' `Printed`).
///
/// ```
/// use streams_dsl::{Printed, StreamsBuilder};
/// let b = StreamsBuilder::new();
/// let words = b.stream::<String, i64>("counts");
/// words.print(Printed::to_sys_out().with_label("counts"));
/// words.print(Printed::to_sys_out_with(|k: &String, v: &i64| format!("{k}={v}")));
/// assert!(b.build().is_ok());
/// ```
pub struct Printed<K, V> {
    file: Option<PathBuf>,
    label: Option<String>,
    mapper: Mapper<K, V>,
}

impl<K: Display + 'static, V: Display + 'static> Printed<K, V> {
    /// Prints `key, value` to standard output.
    pub fn to_sys_out() -> Self {
        Printed::to_sys_out_with(|k: &K, v: &V| format!("{k}, {v}"))
    }

    /// Prints `key, value` to the file at `path`, created or truncated when the topology is
    /// built, as Kafka Streams does when `Printed.toFile` is called.
    pub fn to_file(path: impl Into<PathBuf>) -> Self {
        Printed::to_file_with(path, |k: &K, v: &V| format!("{k}, {v}"))
    }
}

impl<K, V> Printed<K, V> {
    /// Prints `mapper(key, value)` to standard output (for keys or values without `Display`).
    pub fn to_sys_out_with(mapper: impl Fn(&K, &V) -> String + Send + Sync + 'static) -> Self {
        Printed {
            file: None,
            label: None,
            mapper: Arc::new(mapper),
        }
    }

    /// Prints `mapper(key, value)` to the file at `path`.
    pub fn to_file_with(
        path: impl Into<PathBuf>,
        mapper: impl Fn(&K, &V) -> String + Send + Sync + 'static,
    ) -> Self {
        Printed {
            file: Some(path.into()),
            ..Printed::to_sys_out_with(mapper)
        }
    }

    /// The label in brackets at the start of each line (by default, the processor's name).
    pub fn with_label(mut self, label: &str) -> Self {
        self.label = Some(label.to_string());
        self
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Writes each record as a line `[label]: key, value` (or what the mapper makes of it) to
    /// standard output or to a file; the stream ends here. Records of every task go to the same
    /// place, each line written whole.
    pub fn print(&self, printed: Printed<K, V>) {
        let name = self.node_name("KSTREAM-PRINTER-");
        if let Some(path) = &printed.file {
            if let Err(e) = File::create(path) {
                self.b.borrow_mut().fail(StreamsError::topology(
                    name.as_str(),
                    format!("print at `{name}` cannot create {}: {e}", path.display()),
                ));
            }
        }
        let parent = self.node.clone();
        let label = printed.label.clone().unwrap_or_else(|| name.clone());
        let (file, mapper) = (printed.file, printed.mapper);
        let n = name.clone();
        self.b.borrow_mut().apply(move |t| {
            t.add_processor(
                &n,
                move |ctx| Print::open(ctx, file.clone(), label.clone(), mapper.clone()),
                &[&parent],
            )
            .map(|_| ())
        });
    }
}

/// The printing processor: one per task.
struct Print<K, V> {
    out: Box<dyn Write + Send>,
    label: String,
    mapper: Mapper<K, V>,
    /// Where `out` goes, for errors.
    target: String,
}

impl<K: Data, V: Data> Print<K, V> {
    fn open(
        ctx: &mut ProcessorContext<'_, K, V>,
        file: Option<PathBuf>,
        label: String,
        mapper: Mapper<K, V>,
    ) -> Result<Self> {
        let (out, target): (Box<dyn Write + Send>, String) = match file {
            None => (Box::new(std::io::stdout()), "standard output".to_string()),
            Some(path) => {
                // Every task appends to the one file that `print` created.
                let f = File::options()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| {
                        StreamsError::user(format!(
                            "print at `{}` cannot open {}: {e}",
                            ctx.processor_name(),
                            path.display()
                        ))
                    })?;
                (Box::new(LineWriter::new(f)), path.display().to_string())
            }
        };
        Ok(Print {
            out,
            label,
            mapper,
            target,
        })
    }
}

impl<K: Data, V: Data> Processor for Print<K, V> {
    type KIn = K;
    type VIn = V;
    type KOut = K;
    type VOut = V;

    fn process(&mut self, _: &mut ProcessorContext<'_, K, V>, r: Record<K, V>) -> Result<()> {
        let line = format!("[{}]: {}\n", self.label, (self.mapper)(&r.key, &r.value));
        self.out
            .write_all(line.as_bytes())
            .map_err(|e| StreamsError::user(format!("print cannot write to {}: {e}", self.target)))
    }

    fn close(&mut self) {
        let _ = self.out.flush();
    }
}
