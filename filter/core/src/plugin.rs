//! What every stream of one filter configuration shares, in the same shape
//! in both builds: the validated config, the counter ids and the
//! per-worker caches, with the per-stream entry points. A glue only chooses
//! how its workers' caches are locked ([`Workers`]) and translates its ABI.

use crate::config::{Config, ConfigError};
use crate::filter;
use crate::host::{Host, Pinning};
use crate::metrics::{Metric, MetricIds};
use crate::session::Stream;
use crate::worker::Worker;

pub use workers::{Shards, Workers};

/// One loaded filter configuration.
#[derive(Debug)]
pub struct Plugin<Id, W> {
    /// The validated plugin configuration.
    pub config: Config,
    /// Counter ids, as the proxy defined them.
    pub metrics: MetricIds<Id>,
    /// How the chosen host reaches Envoy (from `config.override_host`).
    pub pinning: Pinning,
    /// The per-worker caches.
    workers: W,
}

impl<Id: Copy, W: Workers> Plugin<Id, W> {
    /// Reads the plugin configuration and defines the counters with
    /// `define`. Refuses a config this build cannot wire: `can_override`
    /// says whether it can pin through Envoy's upstream override.
    pub fn load(
        bytes: &[u8],
        can_override: bool,
        define: impl FnMut(Metric) -> Option<Id>,
        workers: W,
    ) -> Result<Self, ConfigError> {
        let config = Config::from_json(bytes)?;
        if config.override_host.is_some() && !can_override {
            // proxy-wasm has no upstream override: only the header wiring.
            return Err(ConfigError {
                field: "override_host".into(),
                message: "needs the native build (dist/libsticky.so); the wasm pins hosts \
                          through host_header"
                    .into(),
            });
        }
        Ok(Self {
            pinning: Pinning::of(&config),
            metrics: MetricIds::define(define),
            config,
            workers,
        })
    }

    /// Request phase of a stream on worker `worker`.
    #[inline(always)]
    pub fn on_request<H: Host>(&self, worker: u32, host: &mut H, now: u64) -> Stream {
        match self.workers.lock(worker) {
            Some(mut caches) => filter::on_request(&self.config, &mut caches, host, now),
            // Busy caches: decide without them, never skip the request
            // phase, which also strips client-sent internal headers.
            None => filter::on_request(&self.config, &mut Worker::default(), host, now),
        }
    }

    /// Response phase of a stream the request phase left as `stream`.
    #[inline(always)]
    pub fn on_response<H: Host>(&self, worker: u32, stream: &Stream, host: &mut H, now: u64) {
        match self.workers.lock(worker) {
            Some(mut caches) => filter::on_response(&self.config, &mut caches, stream, host, now),
            // Busy caches: scratch ones still strip and issue the cookie.
            None => filter::on_response(&self.config, &mut Worker::default(), stream, host, now),
        }
    }

    /// Fails a request open ([`filter::strip`]).
    pub fn strip<H: Host>(&self, host: &mut H) {
        filter::strip(&self.config, host);
    }
}

mod workers;

#[cfg(test)]
mod tests;
