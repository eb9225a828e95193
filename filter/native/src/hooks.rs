//! The event hooks Envoy calls (`envoy_dynamic_module_on_*`), translated to
//! the core's [`Plugin`](sticky_core::plugin::Plugin): [`config`] loads and
//! releases filter configs, [`stream`] runs each HTTP stream's phases.
//! Envoy refuses the filter config unless the module exports every required
//! hook, so the ones sticky has no use for are exported as no-ops
//! ([`noop`]).
//!
//! Every hook with a body runs it inside [`guard`](crate::guard::guard): a
//! panic fails open for that one request instead of unwinding into Envoy
//! (the hooks without a body have nothing that could panic).

use std::ffi::c_char;

use crate::abi::{self, EnvoyBuffer};
use crate::guard::guard;

mod config;
#[cfg(feature = "fault-injection")]
mod fault;
mod noop;
mod stream;

pub use config::*;
pub use noop::*;
pub use stream::*;

/// Reads the bytes of a buffer Envoy passed to a hook (empty when null).
///
/// # Safety
/// `buffer` must be valid for the running hook.
unsafe fn hook_bytes<'a>(buffer: EnvoyBuffer) -> &'a [u8] {
    if buffer.ptr.is_null() || buffer.length == 0 {
        return &[];
    }
    // SAFETY: non-null; the caller guarantees the range is live.
    unsafe { std::slice::from_raw_parts(buffer.ptr.cast::<u8>(), buffer.length) }
}

/// Called once when Envoy loads the module: returns the ABI version.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    guard("on_program_init", abi::ABI_VERSION.as_ptr(), || {
        abi::ABI_VERSION.as_ptr()
    })
}
