//! Filter config lifecycle. A filter config (one per `DynamicModuleFilter`
//! in the bootstrap) is an `Arc<Shared>` boxed behind the config pointer;
//! each stream holds its own clone of that `Arc`, so the config may be
//! destroyed before its last stream.

use std::ffi::c_void;
use std::sync::Arc;

use sticky_core::plugin::{Plugin, Shards};

use super::hook_bytes;
use crate::abi::{self, EnvoyBuffer, EnvoyPtr, LogLevel, Stream};
use crate::guard::guard;
use crate::host::{Env, NativeHost, SystemEnv};

/// Worker caches per filter config: worker index modulo this picks a shard,
/// so workers never contend; a busy shard is skipped (fail open).
pub const DRAIN_SHARDS: usize = 64;

/// What every stream of one filter config shares, across worker threads.
#[derive(Debug)]
pub struct Shared {
    /// The loaded configuration, counter ids and worker caches.
    pub plugin: Plugin<usize, Shards>,
    /// The clock and the randomness.
    pub env: Box<dyn Env>,
}

impl Shared {
    /// A host for `stream`, on this filter config.
    pub(super) fn host(&self, stream: Stream) -> NativeHost<'_> {
        let plugin = &self.plugin;
        NativeHost::new(stream, &plugin.metrics, plugin.pinning, &*self.env)
    }
}

// Envoy calls hooks of one filter config from every worker thread.
const _: fn() = || {
    fn shared_across_workers<T: Send + Sync>() {}
    shared_across_workers::<Shared>();
};

/// Parses the plugin configuration (the `StringValue`'s raw bytes) and
/// defines the counters. Returns null, which makes Envoy refuse the config,
/// when the configuration is invalid; the log line names the field.
///
/// # Safety
/// Called by Envoy with its config pointer and buffers valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    filter_config_envoy_ptr: EnvoyPtr,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    // SAFETY: Envoy's config pointer and buffer, valid for this call.
    unsafe { new_config(filter_config_envoy_ptr, config, Box::new(SystemEnv)) }
}

/// `on_http_filter_config_new` with the clock and randomness `env` (the
/// system's in Envoy, simulated ones in the unit tests).
///
/// # Safety
/// `filter_config_envoy_ptr` and `config` must be those of the running
/// `on_http_filter_config_new` call.
pub unsafe fn new_config(
    filter_config_envoy_ptr: EnvoyPtr,
    config: EnvoyBuffer,
    env: Box<dyn Env>,
) -> *const c_void {
    // A config that cannot be built is refused (null), never half-loaded.
    guard("on_http_filter_config_new", std::ptr::null(), || {
        // SAFETY: Envoy's buffer, valid for this call; parsing copies what it keeps.
        let bytes = unsafe { hook_bytes(config) };
        let define = |metric: sticky_core::metrics::Metric| {
            // SAFETY: this is the running config_new call's own config pointer.
            let id = unsafe { abi::define_counter(filter_config_envoy_ptr, metric.name()) };
            if id.is_none() {
                let warning = format!("sticky: cannot define counter {}", metric.name());
                abi::log(LogLevel::WARN, &warning);
            }
            id
        };
        match Plugin::load(bytes, true, define, Shards::new(DRAIN_SHARDS)) {
            Ok(plugin) => {
                abi::log(LogLevel::INFO, &plugin.config.summary());
                let shared = Arc::new(Shared { plugin, env });
                Box::into_raw(Box::new(shared)).cast_const().cast()
            }
            Err(e) => {
                abi::log(LogLevel::ERROR, &format!("sticky: {e}"));
                std::ptr::null()
            }
        }
    })
}

/// Releases a filter config (streams keep their own `Arc`).
///
/// # Safety
/// `filter_config_ptr` must come from `on_http_filter_config_new`, once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(
    filter_config_ptr: *const c_void,
) {
    guard("on_http_filter_config_destroy", (), || {
        if filter_config_ptr.is_null() {
            return;
        }
        // SAFETY: created by Box::into_raw in config_new; Envoy destroys it once.
        drop(unsafe { Box::from_raw(filter_config_ptr.cast_mut().cast::<Arc<Shared>>()) });
    });
}

/// Per-route configuration is not supported: refused (null) with a log line.
///
/// # Safety
/// Called by Envoy; the buffers are not read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *const c_void {
    guard(
        "on_http_filter_per_route_config_new",
        std::ptr::null(),
        || {
            abi::log(
                LogLevel::ERROR,
                "sticky: per-route configuration is not supported; configure the listener filter",
            );
            std::ptr::null()
        },
    )
}
