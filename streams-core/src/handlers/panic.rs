//! Catching a panic in user code at the node it happened in, with its message, place and stack.
//!
//! A panic hook (installed once, delegating to the previous hook for every panic it does not
//! catch) records where a caught panic happened and its backtrace: by the time `catch_unwind`
//! returns, the stack that panicked is gone.

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

/// A panic caught in user code.
#[derive(Debug)]
pub(crate) struct CaughtPanic {
    pub(crate) message: String,
    /// `file:line:column`, when the hook saw it.
    pub(crate) location: Option<String>,
    /// The panicking thread's stack, when the hook saw it.
    pub(crate) backtrace: Option<String>,
}

thread_local! {
    /// How many `catch_panic` calls this thread is inside: the hook stays quiet only then.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// What the hook saw of the last panic caught on this thread.
    static SEEN: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if DEPTH.with(Cell::get) == 0 {
                return previous(info);
            }
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            let backtrace = Backtrace::force_capture().to_string();
            SEEN.with(|s| *s.borrow_mut() = Some((location, backtrace)));
        }));
    });
}

/// Runs `f`, turning a panic into a [`CaughtPanic`]. The closure is asserted unwind-safe: a
/// processor that panicked may hold half-updated state, exactly as a Kafka Streams processor
/// that threw does, and the processing handler decides whether it goes on.
pub(crate) fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, CaughtPanic> {
    install_hook();
    DEPTH.with(|d| d.set(d.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get() - 1));
    result.map_err(|payload| {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic with a payload that is not a string".to_string()
        };
        let (location, backtrace) = match SEEN.with(|s| s.borrow_mut().take()) {
            Some((l, b)) => (Some(l).filter(|l| !l.is_empty()), Some(b)),
            None => (None, None),
        };
        CaughtPanic {
            message,
            location,
            backtrace,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_has_its_message_place_and_stack() {
        let caught = catch_panic(|| -> u32 { panic!("bad tweet {}", 7) }).unwrap_err();
        assert_eq!(caught.message, "bad tweet 7");
        assert!(caught.location.unwrap().contains("panic.rs"));
        assert!(caught.backtrace.is_some());
        assert_eq!(catch_panic(|| 5).unwrap(), 5);
    }

    #[test]
    fn nested_catches_report_the_inner_panic_to_the_inner_catch() {
        let outer = catch_panic(|| {
            let inner = catch_panic(|| panic!("inner")).unwrap_err();
            assert_eq!(inner.message, "inner");
            panic!("outer")
        })
        .unwrap_err();
        assert_eq!(outer.message, "outer");
    }
}
