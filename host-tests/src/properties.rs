//! The Envoy properties the filter reads, resolved against the [`FakeHost`]
//! in Envoy's encodings (DESIGN "Property encodings"). A path the fake does
//! not model is an error, not "absent": a filter that starts reading a new
//! property must extend this harness instead of passing on a silent miss.

use sticky_core::host::Host as _;
use sticky_core::testing::FakeHost;

use crate::abi;
use crate::state::Phase;

/// Splits a serialized property path (`part\0part\0...`) into its parts.
pub fn parse_path(raw: &[u8]) -> Vec<&[u8]> {
    let mut parts: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
    if parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    parts
}

/// A path for messages: parts joined with `.`.
pub fn display_path(parts: &[&[u8]]) -> String {
    parts
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join(".")
}

/// Resolves a property. `Ok(None)` is Envoy's NotFound; `Err` names the
/// misuse (wrong phase, unmodelled path).
pub fn get(host: &mut FakeHost, phase: Phase, parts: &[&[u8]]) -> Result<Option<Vec<u8>>, String> {
    let stream = |what: &str| -> Result<(), String> {
        if phase.in_stream() {
            Ok(())
        } else {
            Err(format!(
                "{what} is a property of an HTTP stream; there is none in {phase}"
            ))
        }
    };
    match parts {
        [b"request", b"headers", name] => {
            stream("request.headers")?;
            if phase == Phase::ResponseHeaders {
                // Envoy drops its pointer to the request headers once
                // proxy_on_request_headers returned Continue: here the
                // property reads as absent, never as the value the client sent.
                return Err(
                    "request.headers.* in the response phase: Envoy no longer has the \
                            request headers and answers NotFound"
                        .to_owned(),
                );
            }
            let name = lowercase(name)?;
            Ok(host.request_header(&name))
        }
        [b"upstream", b"address"] => {
            stream("upstream.address")?;
            Ok(host.upstream_host())
        }
        [b"xds", b"cluster_name"] => {
            stream("xds.cluster_name")?;
            Ok(host.upstream_cluster())
        }
        [b"response", b"code_details"] => {
            stream("response.code_details")?;
            Ok(host.response_code_details())
        }
        [
            b"xds",
            b"upstream_host_metadata",
            b"filter_metadata",
            ns,
            key,
        ] => {
            stream("xds.upstream_host_metadata")?;
            let ns = utf8(ns)?;
            let key = utf8(key)?;
            Ok(host.metadata_value(&ns, &key))
        }
        [b"xds", b"upstream_host_metadata", b"filter_metadata", ns] => {
            stream("xds.upstream_host_metadata")?;
            let ns = utf8(ns)?;
            let Some(served) = host.upstream_host.clone() else {
                return Ok(None);
            };
            let served = String::from_utf8_lossy(&served).into_owned();
            let pairs: Vec<(&[u8], &[u8])> = host
                .metadata
                .iter()
                .filter(|((h, n, _), _)| *h == served && *n == ns)
                .map(|((_, _, k), v)| (k.as_bytes(), v.as_slice()))
                .collect();
            if pairs.is_empty() {
                return Ok(None);
            }
            abi::encode_pairs(pairs.iter().copied())
                .map(Some)
                .ok_or_else(|| "metadata too large".to_owned())
        }
        _ => Err(format!(
            "property `{}` is not modelled by this host (known: request.headers.<name>, \
             upstream.address, xds.cluster_name, response.code_details, \
             xds.upstream_host_metadata.filter_metadata.<ns>[.<key>])",
            display_path(parts)
        )),
    }
}

fn utf8(part: &[u8]) -> Result<String, String> {
    String::from_utf8(part.to_vec()).map_err(|_| "a non-UTF-8 path part".to_owned())
}

/// Envoy looks header names up lowercased.
pub fn lowercase(name: &[u8]) -> Result<String, String> {
    utf8(name).map(|n| n.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> FakeHost {
        let mut h = FakeHost {
            request: vec![
                ("cookie".into(), b"a=1".to_vec()),
                ("cookie".into(), b"b=2".to_vec()),
            ],
            upstream_host: Some(b"10.0.0.1:80".to_vec()),
            upstream_cluster: Some(b"v1".to_vec()),
            ..FakeHost::default()
        };
        h.set_metadata("10.0.0.1:80", "sticky", "draining", vec![1]);
        h.set_metadata("10.0.0.2:80", "sticky", "draining", vec![0]);
        h
    }

    fn get_path(h: &mut FakeHost, phase: Phase, path: &[u8]) -> Result<Option<Vec<u8>>, String> {
        get(h, phase, &parse_path(path))
    }

    #[test]
    fn repeated_request_headers_are_joined_with_commas() {
        let got = get_path(
            &mut host(),
            Phase::RequestHeaders,
            b"request\0headers\0Cookie\0",
        );
        assert_eq!(got, Ok(Some(b"a=1,b=2".to_vec())));
    }

    #[test]
    fn upstream_facts_and_metadata_leaves_are_raw_bytes() {
        let mut h = host();
        let phase = Phase::ResponseHeaders;
        assert_eq!(
            get_path(&mut h, phase, b"upstream\0address\0"),
            Ok(Some(b"10.0.0.1:80".to_vec()))
        );
        assert_eq!(
            get_path(&mut h, phase, b"xds\0cluster_name"),
            Ok(Some(b"v1".to_vec()))
        );
        let leaf = b"xds\0upstream_host_metadata\0filter_metadata\0sticky\0draining\0";
        assert_eq!(
            get_path(&mut h, phase, leaf),
            Ok(Some(vec![1])),
            "the served host's value"
        );
        assert_eq!(h.metadata_reads, 1, "counted like the native FakeHost read");
        let absent = b"xds\0upstream_host_metadata\0filter_metadata\0sticky\0drain_deadline\0";
        assert_eq!(get_path(&mut h, phase, absent), Ok(None));
    }

    #[test]
    fn metadata_namespace_comes_in_the_pairs_format() {
        let path = b"xds\0upstream_host_metadata\0filter_metadata\0sticky\0";
        let got = get_path(&mut host(), Phase::ResponseHeaders, path)
            .unwrap()
            .unwrap();
        assert_eq!(
            abi::decode_pairs(&got),
            Some(vec![(b"draining".to_vec(), vec![1])])
        );
    }

    #[test]
    fn stream_properties_outside_a_stream_and_unknown_paths_are_errors() {
        let err = get_path(&mut host(), Phase::Configure, b"upstream\0address\0").unwrap_err();
        assert!(err.contains("there is none in proxy_on_configure"), "{err}");
        let err = get_path(&mut host(), Phase::RequestHeaders, b"xds\0route_name\0").unwrap_err();
        assert!(err.contains("`xds.route_name` is not modelled"), "{err}");
    }
}
