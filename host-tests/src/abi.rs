//! The numbers of the proxy-wasm ABI 0.2.1 as the Rust SDK 0.2.5 passes them
//! (`proxy_wasm::types`), and the encodings the host hands back.

/// `proxy_wasm::types::Status`: what every host call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// The header, property or shared-data key is absent.
    NotFound = 1,
    /// An argument the host refuses (Envoy: also "map not available now").
    BadArgument = 2,
    /// A compare-and-swap on shared data lost.
    CasMismatch = 8,
}

impl Status {
    /// The value returned across the ABI.
    pub fn code(self) -> i32 {
        match self {
            Status::Ok => 0,
            Status::NotFound => 1,
            Status::BadArgument => 2,
            Status::CasMismatch => 8,
        }
    }
}

/// `proxy_wasm::types::MapType` values the harness knows.
pub mod map {
    /// Request headers.
    pub const HTTP_REQUEST_HEADERS: i32 = 0;
    /// Request trailers.
    pub const HTTP_REQUEST_TRAILERS: i32 = 1;
    /// Response headers.
    pub const HTTP_RESPONSE_HEADERS: i32 = 2;
    /// Response trailers.
    pub const HTTP_RESPONSE_TRAILERS: i32 = 3;
    /// gRPC initial metadata of a callout.
    pub const GRPC_RECEIVE_INITIAL_METADATA: i32 = 4;
    /// gRPC trailing metadata of a callout.
    pub const GRPC_RECEIVE_TRAILING_METADATA: i32 = 5;
    /// Headers of an HTTP callout response.
    pub const HTTP_CALL_RESPONSE_HEADERS: i32 = 6;
    /// Trailers of an HTTP callout response.
    pub const HTTP_CALL_RESPONSE_TRAILERS: i32 = 7;

    /// The SDK's name of a map type, for messages.
    pub fn name(map: i32) -> &'static str {
        match map {
            HTTP_REQUEST_HEADERS => "HttpRequestHeaders",
            HTTP_REQUEST_TRAILERS => "HttpRequestTrailers",
            HTTP_RESPONSE_HEADERS => "HttpResponseHeaders",
            HTTP_RESPONSE_TRAILERS => "HttpResponseTrailers",
            GRPC_RECEIVE_INITIAL_METADATA => "GrpcReceiveInitialMetadata",
            GRPC_RECEIVE_TRAILING_METADATA => "GrpcReceiveTrailingMetadata",
            HTTP_CALL_RESPONSE_HEADERS => "HttpCallResponseHeaders",
            HTTP_CALL_RESPONSE_TRAILERS => "HttpCallResponseTrailers",
            _ => "no such map type",
        }
    }
}

/// `proxy_wasm::types::BufferType` values the harness serves.
pub mod buffer {
    /// The VM configuration (`vm_config.configuration`).
    pub const VM_CONFIGURATION: i32 = 6;
    /// The plugin configuration (`config.configuration`).
    pub const PLUGIN_CONFIGURATION: i32 = 7;
}

/// `proxy_wasm::types::MetricType::Counter`.
pub const METRIC_COUNTER: i32 = 0;
/// `proxy_wasm::types::MetricType::Histogram`: the last metric type.
pub const METRIC_HISTOGRAM: i32 = 2;

/// `proxy_wasm::types::Action::Continue`.
pub const ACTION_CONTINUE: i32 = 0;
/// `proxy_wasm::types::Action::Pause`.
pub const ACTION_PAUSE: i32 = 1;

/// `proxy_wasm::types::LogLevel::Critical`, the highest level.
pub const LOG_CRITICAL: i32 = 5;

/// The name of a log level, for captured log lines.
pub fn log_level_name(level: i32) -> &'static str {
    match level {
        0 => "trace",
        1 => "debug",
        2 => "info",
        3 => "warn",
        4 => "error",
        LOG_CRITICAL => "critical",
        _ => "invalid",
    }
}

/// Encodes pairs in the proxy-wasm map format (header maps, and Envoy's
/// encoding of a map-valued property): u32 count, then u32 key and value
/// lengths per pair, then every key and value followed by a NUL byte.
/// `None` only if a length does not fit in a u32.
pub fn encode_pairs<'a, I>(pairs: I) -> Option<Vec<u8>>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let count = u32::try_from(pairs.clone().into_iter().count()).ok()?;
    let mut out = Vec::new();
    out.extend_from_slice(&count.to_le_bytes());
    for (key, value) in pairs.clone() {
        out.extend_from_slice(&u32::try_from(key.len()).ok()?.to_le_bytes());
        out.extend_from_slice(&u32::try_from(value.len()).ok()?.to_le_bytes());
    }
    for (key, value) in pairs {
        out.extend_from_slice(key);
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    Some(out)
}

/// Decodes the proxy-wasm map format; `None` when the bytes are not in it.
pub fn decode_pairs(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let word = |at: usize| -> Option<usize> {
        let end = at.checked_add(4)?;
        let raw: [u8; 4] = bytes.get(at..end)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(raw)).ok()
    };
    let count = word(0)?;
    let mut sizes = Vec::with_capacity(count.min(1024));
    for i in 0..count {
        let at = i.checked_mul(8)?.checked_add(4)?;
        sizes.push((word(at)?, word(at.checked_add(4)?)?));
    }
    let mut at = count.checked_mul(8)?.checked_add(4)?;
    let mut out = Vec::with_capacity(sizes.len());
    for (key_len, value_len) in sizes {
        let key = bytes.get(at..at.checked_add(key_len)?)?.to_vec();
        at = at.checked_add(key_len)?;
        if bytes.get(at) != Some(&0) {
            return None;
        }
        at = at.checked_add(1)?;
        let value = bytes.get(at..at.checked_add(value_len)?)?.to_vec();
        at = at.checked_add(value_len)?;
        if bytes.get(at) != Some(&0) {
            return None;
        }
        at = at.checked_add(1)?;
        out.push((key, value));
    }
    (at == bytes.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_in_the_sdk_layout() {
        let pairs: Vec<(&[u8], &[u8])> = vec![(b"a", b"xy"), (b"cookie", b"")];
        let bytes = encode_pairs(pairs.iter().copied()).unwrap();
        assert_eq!(
            bytes.get(..12).unwrap(),
            &[2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]
        );
        assert_eq!(bytes.get(20..).unwrap(), b"a\0xy\0cookie\0\0");
        let back = decode_pairs(&bytes).unwrap();
        assert_eq!(
            back,
            vec![
                (b"a".to_vec(), b"xy".to_vec()),
                (b"cookie".to_vec(), vec![])
            ]
        );
    }

    #[test]
    fn pairs_without_terminators_are_refused() {
        let mut bytes = encode_pairs([(&b"k"[..], &b"v"[..])]).unwrap();
        bytes.pop();
        assert_eq!(decode_pairs(&bytes), None);
    }
}
