//! The per-stream flow shared by every build, as a straight pipeline against
//! any [`Host`]: read the request's candidates, decide the stream
//! (`decide`), apply the header edits that decision calls for
//! ([`RequestEdits`]); on the response, decide the token and write it.

use crate::config::Config;
use crate::cookie::Candidates;
use crate::edits::RequestEdits;
use crate::host::{Host, Pinning};
use crate::metrics::Metric;
use crate::session::{self, Lookup, Stream};
use crate::source::{CookieSource, HeaderSource, SessionSource};
use crate::worker::Worker;
use crate::wrap;

/// Request phase: finds the session, decides where the request goes, and
/// writes the internal headers (client-sent copies never steer anything).
/// Returns the stream state the response phase needs.
pub fn on_request<H: Host>(cfg: &Config, worker: &mut Worker, host: &mut H, now: u64) -> Stream {
    let cookies = host.request_cookies();
    let mut unwrapped = Unwrapped::Nothing;
    let mut stream = decide(cfg, worker, host, cookies.as_deref(), &mut unwrapped, now);
    if stream == Stream::Refused && !host.send_local_reply(400, MISSING_SHARD_KEY) {
        // A host that cannot answer locally: the request goes on without
        // affinity (fail open), its internal headers stripped.
        stream = Stream::Fresh;
    }
    RequestEdits::of(&stream)
        .restoring(unwrapped.id(&stream))
        .apply(cfg, host);
    stream
}

/// Wrap mode: where the application's own id is, when the request's
/// wrapped token opened (its header gets the id back).
enum Unwrapped {
    /// No wrapped token opened.
    Nothing,
    /// In the stream's claims, which are the opened token's: without
    /// sharding a valid session stays pinned or moving, claims and all, so
    /// the hot path copies no id (about 450 wasm instructions, host-tests).
    InStream,
    /// Kept apart: a shard decision may replace the claims.
    Kept(Vec<u8>),
}

impl Unwrapped {
    /// The id the application's header gets back.
    #[inline]
    fn id<'a>(&'a self, stream: &'a Stream) -> Option<&'a [u8]> {
        match (self, stream) {
            (Unwrapped::Kept(id), _) => Some(id),
            (Unwrapped::InStream, Stream::Pinned(claims) | Stream::Moving(claims)) => {
                Some(&claims.app_id)
            }
            _ => None,
        }
    }
}

/// The body of the 400 a key-sharded route answers to a request without a
/// key (`sharding.missing_key: reject`).
const MISSING_SHARD_KEY: &str = "sticky: this route needs a shard key\n";

/// Fails open: a request the filter could not handle goes on without
/// affinity, and without any internal header a client sent.
pub fn strip<H: Host>(cfg: &Config, host: &mut H) {
    host.remove_request_header(&cfg.host_header);
    host.remove_request_header(&cfg.cluster_header);
    host.clear_route_cache();
}

/// The request's session: the sticky token among the candidates (cookies,
/// session header), the application's own id (wrap mode), the shard key, or
/// a legacy value (migration). In wrap mode `unwrapped` says where the
/// application's id its header gets back is (the edits write it, so deciding
/// writes no header; an out-parameter, as returning a pair copies the
/// stream: about 190 wasm instructions per request, measured in host-tests).
#[inline(always)]
fn decide<H: Host>(
    cfg: &Config,
    worker: &mut Worker,
    host: &mut H,
    cookies: Option<&[u8]>,
    unwrapped: &mut Unwrapped,
    now: u64,
) -> Stream {
    let header_source = cfg.session_header.as_deref().map(HeaderSource);
    let header = header_source.and_then(|s| host.request_header(s.0));
    let mut candidates = Candidates::default();
    if let Some(cookies) = cookies {
        CookieSource(&cfg.cookie).candidates(cookies, &mut candidates);
    }
    if let (Some(source), Some(header)) = (header_source, &header) {
        source.candidates(header, &mut candidates);
    }
    let mut lookup = session::lookup(cfg, candidates.as_slice(), now, &mut worker.tokens);
    if let Lookup::Rejected(reason) = &lookup {
        host.count(Metric::TokensRejected(*reason));
    }
    // The application's own session id, when it opens, decides the backend:
    // its state lives there, whatever a cookie says.
    if let Some(wrap) = &cfg.wrap
        && let Some(claims) = wrap::unwrap_request(cfg, wrap, worker, host, now)
    {
        *unwrapped = match cfg.sharding {
            Some(_) => Unwrapped::Kept(claims.app_id.clone()),
            None => Unwrapped::InStream,
        };
        lookup = Lookup::Valid(claims);
    }
    let drain = &worker.drain;
    match &cfg.sharding {
        Some(sharding) => route::shard_stream(sharding, lookup, cookies, host, drain, now),
        None => match (session::plan(lookup, drain, now), &cfg.migration) {
            (Stream::Fresh, Some(migration)) => {
                route::legacy_stream(cfg, migration, cookies, host, drain, now)
                    .unwrap_or(Stream::Fresh)
            }
            (stream, _) => stream,
        },
    }
}

/// Response phase: removes the internal headers Envoy or an upstream echoes,
/// and issues a token when the session is new, moved, or due for a refresh,
/// or (wrap mode) when the response carries the application's session id.
pub fn on_response<H: Host>(
    cfg: &Config,
    worker: &mut Worker,
    stream: &Stream,
    host: &mut H,
    now: u64,
) {
    let minted = match (&cfg.wrap, stream) {
        (None, _) | (_, Stream::Untouched | Stream::Refused) => None,
        (Some(wrap), _) => wrap::minted_id(wrap, worker, host, now),
    };
    // Internal headers never leave: an upstream that reflects the request's
    // cluster header is stripped here, whatever the route config says.
    host.remove_response_header(&cfg.cluster_header);
    // stateful_session writes the host header into responses: never leak it.
    if let (Stream::Pinned(claims), Pinning::SessionFilter) = (stream, host.pinning()) {
        if host.response_header(&cfg.host_header).is_some() {
            host.remove_response_header(&cfg.host_header);
        } else if minted.is_none()
            && !(cfg.strict && host.response_header(":status").as_deref() == Some(b"503"))
            && respond::pinned_host_needs_nothing(cfg, &worker.drain, claims, now)
        {
            // No echo: the pinned host served it (in strict mode a 503 may
            // instead mean it is gone), its drain state is cached and fresh
            // and nothing is due. Skips reading upstream.address (a
            // data-returning host call) on the hot path.
            return;
        }
    } else {
        // Removing blindly costs less than reading a present header's value.
        host.remove_response_header(&cfg.host_header);
    }
    if matches!(stream, Stream::Untouched | Stream::Refused) {
        return;
    }
    let wrapped = respond::issue(cfg, worker, stream, host, minted.as_deref(), now);
    if minted.is_some() && !wrapped {
        // No pinnable backend (a local reply, a cluster off the allow-list):
        // the id goes out as the application sent it, without affinity.
        host.count(Metric::WrapNotWrapped);
    }
}

mod respond;
mod route;

#[cfg(test)]
mod tests;
