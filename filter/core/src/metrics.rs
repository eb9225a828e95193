//! The filter's counters. Envoy shows them in /stats as `wasmcustom.<name>`
//! (wasm build) or under the dynamic module's prefix (native build).

use crate::session::Event;
use crate::token::Reject;

/// One counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// A response started a new session.
    SessionsCreated,
    /// A request carried a valid token and was pinned to its host.
    RequestsPinned,
    /// A session got a new host (its host was gone, unhealthy, or it had none).
    SessionsRepinned,
    /// An unchanged session's token was refreshed.
    SessionsRefreshed,
    /// A session left a draining host whose deadline had passed.
    SessionsDrained,
    /// A legacy session (Envoy's native cookie, A55 value) got a sealed token.
    SessionsMigrated,
    /// A candidate token was refused, by reason.
    TokensRejected(Reject),
    /// Wrap mode: a request's wrapped session id was opened and restored.
    WrapUnwrapped,
    /// Wrap mode: a response's session id was sealed into a token.
    WrapWrapped,
    /// Wrap mode: a request's session id did not open; passed untouched.
    WrapUnopened,
    /// Wrap mode: a response's session id could not be wrapped (longer than
    /// `wrap.max_id_bytes`, or not UTF-8) and went out as it was.
    WrapNotWrapped,
    /// A token that opened under an old key was re-sealed under the sealing
    /// key (key rotation: retiring the old key drops no session that has
    /// been re-sealed).
    TokensResealed,
}

/// Number of distinct counters.
pub const COUNT: usize = WRAP_FIRST + 5;

/// Index of the first wrap-mode counter (after the rejection reasons).
const WRAP_FIRST: usize = 6 + Reject::ALL.len();

impl Metric {
    /// Every counter, in index order.
    pub fn all() -> impl Iterator<Item = Metric> {
        [
            Metric::SessionsCreated,
            Metric::RequestsPinned,
            Metric::SessionsRepinned,
            Metric::SessionsRefreshed,
            Metric::SessionsDrained,
            Metric::SessionsMigrated,
        ]
        .into_iter()
        .chain(Reject::ALL.into_iter().map(Metric::TokensRejected))
        .chain([
            Metric::WrapUnwrapped,
            Metric::WrapWrapped,
            Metric::WrapUnopened,
            Metric::WrapNotWrapped,
            Metric::TokensResealed,
        ])
    }

    /// Dense index in `0..COUNT`.
    pub fn index(self) -> usize {
        match self {
            Metric::SessionsCreated => 0,
            Metric::RequestsPinned => 1,
            Metric::SessionsRepinned => 2,
            Metric::SessionsRefreshed => 3,
            Metric::SessionsDrained => 4,
            Metric::SessionsMigrated => 5,
            Metric::TokensRejected(r) => {
                6usize.saturating_add(Reject::ALL.iter().position(|x| *x == r).unwrap_or(0))
            }
            Metric::WrapUnwrapped => WRAP_FIRST,
            Metric::WrapWrapped => WRAP_FIRST + 1,
            Metric::WrapUnopened => WRAP_FIRST + 2,
            Metric::WrapNotWrapped => WRAP_FIRST + 3,
            Metric::TokensResealed => WRAP_FIRST + 4,
        }
    }

    /// The counter's name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::SessionsCreated => "sticky.sessions_created",
            Metric::RequestsPinned => "sticky.requests_pinned",
            Metric::SessionsRepinned => "sticky.sessions_repinned",
            Metric::SessionsRefreshed => "sticky.sessions_refreshed",
            Metric::SessionsDrained => "sticky.sessions_drained",
            Metric::SessionsMigrated => "sticky.sessions_migrated",
            Metric::TokensRejected(r) => match r {
                Reject::Malformed => "sticky.tokens_rejected.malformed",
                Reject::Oversized => "sticky.tokens_rejected.oversized",
                Reject::UnknownVersion => "sticky.tokens_rejected.unknown_version",
                Reject::UnknownKey => "sticky.tokens_rejected.unknown_key",
                Reject::Tampered => "sticky.tokens_rejected.tampered",
                Reject::Expired => "sticky.tokens_rejected.expired",
                Reject::UnknownCluster => "sticky.tokens_rejected.unknown_cluster",
                Reject::Conflict => "sticky.tokens_rejected.conflict",
            },
            Metric::WrapUnwrapped => "sticky.wrap.ids_unwrapped",
            Metric::WrapWrapped => "sticky.wrap.ids_wrapped",
            Metric::WrapUnopened => "sticky.wrap.ids_unopened",
            Metric::WrapNotWrapped => "sticky.wrap.ids_not_wrapped",
            Metric::TokensResealed => "sticky.tokens_resealed",
        }
    }
}

/// Each counter's id in the proxy (`u32` for proxy-wasm, `usize` for the
/// dynamic-module ABI), defined once per configuration by the glue.
#[derive(Debug, Clone)]
pub struct MetricIds<Id>([Option<Id>; COUNT]);

impl<Id: Copy> MetricIds<Id> {
    /// Defines every counter of [`Metric::all`] with `define`; a counter
    /// that cannot be defined (`None`) is never counted.
    pub fn define(mut define: impl FnMut(Metric) -> Option<Id>) -> Self {
        let mut ids = [None; COUNT];
        for metric in Metric::all() {
            if let Some(slot) = ids.get_mut(metric.index()) {
                *slot = define(metric);
            }
        }
        Self(ids)
    }

    /// The id of `metric`, if it was defined.
    #[inline]
    pub fn get(&self, metric: Metric) -> Option<Id> {
        self.0.get(metric.index()).copied().flatten()
    }
}

impl From<Event> for Metric {
    fn from(event: Event) -> Self {
        match event {
            Event::Created => Metric::SessionsCreated,
            Event::Repinned => Metric::SessionsRepinned,
            Event::Refreshed => Metric::SessionsRefreshed,
            Event::Drained => Metric::SessionsDrained,
            Event::Migrated => Metric::SessionsMigrated,
            Event::Resealed => Metric::TokensResealed,
        }
    }
}

#[cfg(test)]
mod tests;
