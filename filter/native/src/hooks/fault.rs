//! Test builds only (`--features fault-injection`, never in `make native`):
//! a request carrying `x-sticky-fault: panic` panics in the request hook, so
//! the real-Envoy suite can prove what a request the filter failed on does.

use crate::abi::{HeaderType, Stream};

/// Panics when the request asks for it.
#[allow(clippy::panic)]
pub fn maybe_panic(stream: Stream) {
    if stream
        .header(HeaderType::REQUEST, "x-sticky-fault")
        .as_deref()
        == Some(b"panic")
    {
        panic!("fault injected by x-sticky-fault");
    }
}
