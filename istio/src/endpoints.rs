//! `stickyctl endpoints drain|undrain|remove|add`: edits one host of one
//! cluster in an EDS file and writes it back atomically (temp file + rename:
//! Envoy's watched directory only notices a moved-in file). Everything else
//! in the file is left as it was.
//!
//! Drain = `health_status: DRAINING` (Envoy's balancer gives the host no new
//! sessions; `override_host_status` keeps pinned ones reaching it) plus
//! `filter_metadata.<ns>.draining: true` and, with a timeout,
//! `drain_deadline: now + timeout` (unix seconds, a JSON number) after which
//! sticky moves the host's sessions away.

use std::net::SocketAddr;
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::admin::HostState;
use crate::error::{Error, Place, Result};

/// What to do to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// DRAINING, with an optional deadline `timeout` seconds from now.
    Drain {
        /// Seconds until the drain deadline.
        timeout: Option<u64>,
    },
    /// Back to HEALTHY; drain metadata removed.
    Undrain,
    /// Out of the cluster.
    Remove,
    /// Into the cluster, HEALTHY.
    Add,
}

impl Op {
    /// Whether Envoy's view of the host shows this operation applied.
    pub fn applied(self, state: &HostState) -> bool {
        match (self, state) {
            (Op::Drain { .. }, HostState::Present(s)) => s == "DRAINING",
            (Op::Undrain | Op::Add, HostState::Present(s)) => s == "HEALTHY",
            (Op::Remove, HostState::Absent) => true,
            _ => false,
        }
    }
}

/// Parses `ip:port` (`[v6]:port` for IPv6).
pub fn parse_host(text: &str) -> Result<(String, u16)> {
    let sa: SocketAddr = text.parse().map_err(|_| {
        Error::Usage(format!(
            "--host {text:?}: want IP:PORT (IPv6 as [addr]:port)"
        ))
    })?;
    Ok((sa.ip().to_string(), sa.port()))
}

fn find_endpoint(lb: &Value, ip: &str, port: u16) -> bool {
    let sa = &lb["endpoint"]["address"]["socket_address"];
    sa["address"] == ip && sa["port_value"].as_u64() == Some(u64::from(port))
}

/// Applies `op` to `doc` (an EDS discovery response) in place.
pub fn apply(
    doc: &mut Value,
    file: &str,
    cluster: &str,
    (ip, port): (&str, u16),
    op: Op,
    namespace: &str,
    now: u64,
) -> Result<()> {
    let place = |field: &str| Place {
        file: file.to_owned(),
        line: None,
        field: Some(field.to_owned()),
    };
    let input = |field: &str, message: String| Error::Input {
        place: place(field),
        message,
    };
    let resources = doc
        .get_mut("resources")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| input("resources", "no `resources` array: not an EDS file".into()))?;
    let names: Vec<String> = resources
        .iter()
        .filter_map(|r| r["cluster_name"].as_str().map(str::to_owned))
        .collect();
    let Some((ri, cla)) = resources
        .iter_mut()
        .enumerate()
        .find(|(_, r)| r["cluster_name"] == cluster)
    else {
        return Err(input(
            "resources",
            format!(
                "no cluster {cluster:?} here (clusters: {})",
                names.join(", ")
            ),
        ));
    };
    let at = format!("resources[{ri}].endpoints");
    let groups = cla
        .as_object_mut()
        .ok_or_else(|| input(&at, "not an object".into()))?
        .entry("endpoints")
        .or_insert_with(|| json!([]));
    let groups = groups
        .as_array_mut()
        .ok_or_else(|| input(&at, "must be an array".into()))?;
    if groups.is_empty() {
        groups.push(json!({"lb_endpoints": []}));
    }
    let found = groups.iter().enumerate().find_map(|(gi, g)| {
        g["lb_endpoints"]
            .as_array()?
            .iter()
            .position(|lb| find_endpoint(lb, ip, port))
            .map(|ei| (gi, ei))
    });
    let host = if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    match (op, found) {
        (Op::Add, Some(_)) => {
            return Err(input(
                &at,
                format!("{host} is already in cluster {cluster:?}"),
            ));
        }
        (Op::Add, None) => {
            let first = groups
                .first_mut()
                .and_then(|g| g.as_object_mut())
                .ok_or_else(|| input(&at, "locality group is not an object".into()))?;
            let lbs = first.entry("lb_endpoints").or_insert_with(|| json!([]));
            let lbs = lbs
                .as_array_mut()
                .ok_or_else(|| input(&at, "lb_endpoints must be an array".into()))?;
            lbs.push(json!({
                "endpoint": {"address": {"socket_address": {"address": ip, "port_value": port}}},
                "health_status": "HEALTHY",
            }));
        }
        (_, None) => {
            return Err(input(&at, format!("{host} is not in cluster {cluster:?}")));
        }
        (Op::Remove, Some((gi, ei))) => {
            if let Some(lbs) = groups
                .get_mut(gi)
                .and_then(|g| g.get_mut("lb_endpoints"))
                .and_then(Value::as_array_mut)
                && ei < lbs.len()
            {
                lbs.remove(ei);
            }
        }
        (Op::Drain { .. } | Op::Undrain, Some((gi, ei))) => {
            let timeout = match op {
                Op::Drain { timeout } => timeout,
                _ => None,
            };
            let lb = groups
                .get_mut(gi)
                .and_then(|g| g.get_mut("lb_endpoints"))
                .and_then(|l| l.get_mut(ei))
                .and_then(Value::as_object_mut)
                .ok_or_else(|| input(&at, "endpoint is not an object".into()))?;
            let draining = matches!(op, Op::Drain { .. });
            lb.insert(
                "health_status".into(),
                json!(if draining { "DRAINING" } else { "HEALTHY" }),
            );
            set_drain_metadata(
                lb,
                namespace,
                draining,
                timeout.map(|t| now.saturating_add(t)),
            );
        }
    }
    let version = doc
        .get("version_info")
        .and_then(Value::as_str)
        .and_then(|v| v.parse::<u64>().ok())
        .map_or_else(|| now.to_string(), |v| v.saturating_add(1).to_string());
    doc["version_info"] = json!(version);
    Ok(())
}

fn set_drain_metadata(
    lb: &mut Map<String, Value>,
    ns: &str,
    draining: bool,
    deadline: Option<u64>,
) {
    let meta = lb.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    let fm = &mut meta["filter_metadata"];
    if !fm.is_object() {
        *fm = json!({});
    }
    let slot = &mut fm[ns];
    if !slot.is_object() {
        *slot = json!({});
    }
    if let Some(m) = slot.as_object_mut() {
        m.remove("draining");
        m.remove("drain_deadline");
        if draining {
            m.insert("draining".into(), json!(true));
            if let Some(d) = deadline {
                m.insert("drain_deadline".into(), json!(d));
            }
        }
    }
    // Leave no empty maps behind after an undrain.
    if let Some(fm) = meta
        .get_mut("filter_metadata")
        .and_then(Value::as_object_mut)
        && fm
            .get(ns)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        fm.remove(ns);
    }
    if meta["filter_metadata"]
        .as_object()
        .is_some_and(Map::is_empty)
        && let Some(m) = meta.as_object_mut()
    {
        m.remove("filter_metadata");
    }
    if meta.as_object().is_some_and(Map::is_empty) {
        lb.remove("metadata");
    }
}

/// Reads an EDS file as JSON; errors name its line.
pub fn read(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Input {
        place: Place {
            file: path.display().to_string(),
            line: Some(u64::try_from(e.line()).unwrap_or(0)),
            field: None,
        },
        message: format!("not JSON: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eds::{Endpoint, render};

    fn eds() -> Value {
        render(
            "outbound|80|v1|r.default.svc.cluster.local",
            &[
                Endpoint::healthy("10.0.0.1", 80),
                Endpoint::healthy("10.0.0.2", 80),
            ],
            "sticky",
            7,
        )
    }
    const C: &str = "outbound|80|v1|r.default.svc.cluster.local";

    #[test]
    fn drain_sets_status_deadline_and_bumps_version() {
        let mut v = eds();
        apply(
            &mut v,
            "f",
            C,
            ("10.0.0.2", 80),
            Op::Drain { timeout: Some(30) },
            "sticky",
            1000,
        )
        .unwrap();
        let lb = &v["resources"][0]["endpoints"][0]["lb_endpoints"][1];
        assert_eq!(lb["health_status"], "DRAINING");
        assert_eq!(
            lb["metadata"]["filter_metadata"]["sticky"]["draining"],
            true
        );
        assert_eq!(
            lb["metadata"]["filter_metadata"]["sticky"]["drain_deadline"],
            1030
        );
        assert_eq!(v["version_info"], "8");
        assert_eq!(
            v["resources"][0]["endpoints"][0]["lb_endpoints"][0]["health_status"],
            "HEALTHY"
        );
    }

    #[test]
    fn undrain_removes_the_metadata_it_wrote() {
        let mut v = eds();
        apply(
            &mut v,
            "f",
            C,
            ("10.0.0.1", 80),
            Op::Drain { timeout: Some(5) },
            "sticky",
            1,
        )
        .unwrap();
        apply(&mut v, "f", C, ("10.0.0.1", 80), Op::Undrain, "sticky", 2).unwrap();
        let lb = &v["resources"][0]["endpoints"][0]["lb_endpoints"][0];
        assert_eq!(lb["health_status"], "HEALTHY");
        assert!(lb.get("metadata").is_none(), "{lb}");
    }

    #[test]
    fn add_and_remove_round_trip() {
        let mut v = eds();
        apply(&mut v, "f", C, ("10.0.0.3", 80), Op::Add, "sticky", 1).unwrap();
        assert_eq!(
            v["resources"][0]["endpoints"][0]["lb_endpoints"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        let again = apply(&mut v, "f", C, ("10.0.0.3", 80), Op::Add, "sticky", 1);
        assert!(
            again
                .unwrap_err()
                .to_string()
                .contains("already in cluster")
        );
        apply(&mut v, "f", C, ("10.0.0.3", 80), Op::Remove, "sticky", 1).unwrap();
        assert_eq!(
            v["resources"][0]["endpoints"][0]["lb_endpoints"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn unknown_cluster_and_host_are_named() {
        let mut v = eds();
        let e = apply(
            &mut v,
            "f.json",
            "v9",
            ("10.0.0.1", 80),
            Op::Remove,
            "sticky",
            1,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no cluster \"v9\"") && e.contains(C), "{e}");
        let e = apply(
            &mut v,
            "f.json",
            C,
            ("10.9.9.9", 80),
            Op::Undrain,
            "sticky",
            1,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("10.9.9.9:80 is not in cluster"), "{e}");
    }

    #[test]
    fn hosts_parse_with_ipv6() {
        assert_eq!(parse_host("[::1]:8080").unwrap(), ("::1".to_owned(), 8080));
        assert!(parse_host("localhost:80").is_err());
    }
}
