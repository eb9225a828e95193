//! The one guard around every event hook: native code has no sandbox, and a
//! panic unwinding into Envoy's C++ frames aborts the whole proxy. The lints
//! forbid the panics we can see; this catches the ones we cannot (a bug in a
//! dependency, an allocation failure that unwinds) and fails open for that
//! one request: the hook returns its "continue" value and the request goes
//! on without affinity.
//!
//! Needs `panic = "unwind"` (the `native` cargo profile, used by `make
//! native`); under `panic = "abort"` a panic still aborts.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::abi::{self, LogLevel};

/// Set by the first caught panic: later ones are not logged again (a bug hit
/// by every request must not flood Envoy's log).
static PANIC_LOGGED: AtomicBool = AtomicBool::new(false);

/// Runs a hook's `body`; if it panics, logs once and returns `fallback`.
///
/// `AssertUnwindSafe` is sound here: the state a panicking hook may leave
/// half-updated is per-stream (dropped with the stream) or a worker cache
/// behind a `Mutex`, whose poisoning the core's `plugin::Shards` handles by
/// resetting the cache.
pub fn guard<R>(hook: &str, fallback: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            if !PANIC_LOGGED.swap(true, Ordering::Relaxed) {
                let what = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("(no message)");
                abi::log(
                    LogLevel::ERROR,
                    &format!(
                        "sticky: a bug panicked in {hook}: {what}; this request continues without \
                         affinity (further panics are not logged)"
                    ),
                );
            }
            fallback
        }
    }
}

/// Like [`guard`], and if `body` panics also runs `recover` (itself
/// guarded) before returning `fallback`: the request hook uses it to strip
/// client-sent internal headers, so a request the filter failed on is never
/// steered by them.
pub fn guard_with<R>(
    hook: &str,
    fallback: R,
    recover: impl FnOnce(),
    body: impl FnOnce() -> R,
) -> R {
    let mut panicked = true;
    let value = guard(hook, None, || {
        let value = body();
        panicked = false;
        Some(value)
    });
    if panicked {
        // A second panic here is caught and dropped: the fallback stands.
        let _ = catch_unwind(AssertUnwindSafe(recover));
    }
    value.unwrap_or(fallback)
}

/// Whether a panic was caught since the module was loaded.
pub fn panicked() -> bool {
    PANIC_LOGGED.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]

    use super::*;

    #[test]
    fn a_panicking_body_returns_the_fallback_and_logs_once() {
        let before = crate::fake_envoy::logs().len();
        let got = guard("on_test_hook", 7u32, || -> u32 { panic!("boom") });
        assert_eq!(got, 7);
        assert!(panicked());
        let again = guard("on_test_hook", 8u32, || -> u32 { panic!("boom again") });
        assert_eq!(again, 8);
        let logs = crate::fake_envoy::logs();
        let new: Vec<_> = logs.iter().skip(before).collect();
        // Logged at most once process-wide (another test thread may have
        // logged first): never twice.
        assert!(new.len() <= 1, "{new:?}");
        assert!(new.iter().all(|l| l.contains("panicked in on_test_hook")));
    }

    #[test]
    fn guard_with_recovers_only_after_a_panic() {
        let mut recovered = false;
        let got = guard_with(
            "on_test_hook",
            1u32,
            || recovered = true,
            || -> u32 { panic!("boom") },
        );
        assert_eq!((got, recovered), (1, true));
        let mut recovered = false;
        let got = guard_with("on_test_hook", 1u32, || recovered = true, || 2u32);
        assert_eq!((got, recovered), (2, false));
        let got = guard_with(
            "on_test_hook",
            3u32,
            || panic!("again"),
            || -> u32 { panic!("boom") },
        );
        assert_eq!(got, 3, "a panicking recovery still returns the fallback");
    }

    #[test]
    fn a_body_that_returns_is_passed_through() {
        assert_eq!(guard("on_test_hook", 0u32, || 42u32), 42);
        let v = guard("on_test_hook", std::ptr::null::<u8>(), || {
            std::ptr::dangling::<u8>()
        });
        assert!(!v.is_null());
    }
}
