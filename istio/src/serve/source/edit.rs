//! Endpoint changes through the admin API (`stickyctl endpoints ... --server`):
//! applied to the Service's endpoint file, which is then written back
//! atomically, so the directory stays the source of truth and a restart
//! serves the same state.

use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::endpoints::Op;
use crate::serve::source::files::{Endpoint, ServiceFile, State};

/// An endpoint change, as the admin API receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// The Service (endpoint file `service`).
    pub service: String,
    /// Pod IP.
    pub address: IpAddr,
    /// Port.
    pub port: u16,
    /// `drain`, `undrain`, `add` or `remove`.
    pub op: String,
    /// Drain: seconds until the deadline.
    #[serde(default)]
    pub timeout: Option<u64>,
}

impl Change {
    /// The operation.
    pub fn op(&self) -> Result<Op, String> {
        Ok(match self.op.as_str() {
            "drain" => Op::Drain {
                timeout: self.timeout,
            },
            "undrain" => Op::Undrain,
            "add" => Op::Add,
            "remove" => Op::Remove,
            o => return Err(format!("op {o:?}: want drain, undrain, add or remove")),
        })
    }
}

/// Applies `change` to `file` (None: the Service has no file yet) at `now`.
pub fn apply(file: Option<&ServiceFile>, change: &Change, now: u64) -> Result<ServiceFile, String> {
    let op = change.op()?;
    let mut f = file.cloned().unwrap_or_else(|| ServiceFile {
        service: change.service.clone(),
        endpoints: Vec::new(),
    });
    let host = std::net::SocketAddr::new(change.address, change.port);
    let pos = f
        .endpoints
        .iter()
        .position(|e| e.address == change.address && e.port == change.port);
    match (op, pos) {
        (Op::Add, Some(_)) => return Err(format!("{host} is already in {:?}", change.service)),
        (Op::Add, None) => f.endpoints.push(Endpoint {
            address: change.address,
            port: change.port,
            state: State::Serving,
            deadline: None,
        }),
        (_, None) => return Err(format!("{host} is not in {:?}", change.service)),
        (Op::Remove, Some(i)) => {
            f.endpoints.remove(i);
        }
        (Op::Drain { timeout }, Some(i)) => {
            if let Some(e) = f.endpoints.get_mut(i) {
                e.state = State::Terminating;
                e.deadline = timeout.map(|t| now.saturating_add(t));
            }
        }
        (Op::Undrain, Some(i)) => {
            if let Some(e) = f.endpoints.get_mut(i) {
                e.state = State::Serving;
                e.deadline = None;
            }
        }
    }
    Ok(f)
}

/// Writes `file` to `path` atomically (temp file + rename).
pub fn write(path: &Path, file: &ServiceFile) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(file).map_err(std::io::Error::other)?;
    crate::eds::write_atomic(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(op: &str, timeout: Option<u64>) -> Change {
        Change {
            service: "v1".into(),
            address: "10.0.0.1".parse().unwrap(),
            port: 80,
            op: op.into(),
            timeout,
        }
    }

    #[test]
    fn add_drain_undrain_remove() {
        let f = apply(None, &change("add", None), 0).unwrap();
        assert_eq!(f.endpoints.len(), 1);
        let f = apply(Some(&f), &change("drain", Some(30)), 100).unwrap();
        assert_eq!(f.endpoints[0].state, State::Terminating);
        assert_eq!(f.endpoints[0].deadline, Some(130));
        let f = apply(Some(&f), &change("undrain", None), 100).unwrap();
        assert_eq!(
            (f.endpoints[0].state, f.endpoints[0].deadline),
            (State::Serving, None)
        );
        assert!(apply(Some(&f), &change("add", None), 0).is_err());
        let f = apply(Some(&f), &change("remove", None), 0).unwrap();
        assert!(f.endpoints.is_empty());
        assert!(
            apply(Some(&f), &change("drain", None), 0)
                .unwrap_err()
                .contains("not in")
        );
        assert!(
            apply(Some(&f), &change("evict", None), 0)
                .unwrap_err()
                .contains("evict")
        );
    }
}
