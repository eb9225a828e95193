//! The endpoint-file source: a watched directory with one JSON file per
//! Service (or shard pod). A file that does not parse is refused with
//! `file:line: field`, and that Service keeps its last good endpoints.
//!
//! ```json
//! {"service": "reviews-v1",
//!  "endpoints": [
//!    {"address": "10.0.0.1", "port": 9080, "state": "serving"},
//!    {"address": "10.0.0.2", "port": 9080, "state": "terminating", "deadline": 1790000000}]}
//! ```
//! Only `*.json` files not starting with `.` are read, so an atomic writer's
//! temp file (`.name.tmp`) is never half-read.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Place, Result};

/// Whether an endpoint takes new sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Ready: new sessions and pinned ones.
    Serving,
    /// Terminating: pinned sessions only (DRAINING), until its deadline.
    Terminating,
}

/// One endpoint of a Service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Pod IP.
    pub address: IpAddr,
    /// Target port.
    pub port: u16,
    /// Serving or terminating.
    pub state: State,
    /// Drain deadline, unix seconds: the endpoint leaves EDS when it passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<u64>,
}

/// The content of one endpoint file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    /// The Service (a backendRef's name) or shard pod these endpoints belong to.
    pub service: String,
    /// Its endpoints.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

impl ServiceFile {
    /// Refuses what serde cannot see: duplicates and empty names.
    fn check(&self, file: &str) -> Result<()> {
        let at = |field: String, message: String| Error::Input {
            place: Place {
                file: file.to_owned(),
                line: None,
                field: Some(field),
            },
            message,
        };
        if self.service.is_empty() {
            return Err(at("service".into(), "must not be empty".into()));
        }
        // One pass with an index: a 10,000-endpoint file must not cost a
        // quadratic scan on every change (measured by make bench).
        let mut seen: std::collections::HashMap<(IpAddr, u16), usize> =
            std::collections::HashMap::with_capacity(self.endpoints.len());
        for (i, e) in self.endpoints.iter().enumerate() {
            if e.port == 0 {
                return Err(at(format!("endpoints[{i}].port"), "must not be 0".into()));
            }
            if let Some(j) = seen.insert((e.address, e.port), i) {
                return Err(at(
                    format!("endpoints[{i}]"),
                    format!("{}:{} is also endpoints[{j}]", e.address, e.port),
                ));
            }
        }
        Ok(())
    }
}

/// Parses an endpoint file's text; errors name file, line and field.
pub fn parse(file: &str, text: &str) -> Result<ServiceFile> {
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed: ServiceFile = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        Error::Input {
            place: Place {
                file: file.to_owned(),
                line: u64::try_from(inner.line()).ok().filter(|l| *l > 0),
                field: (field != ".").then_some(field),
            },
            message: inner.to_string(),
        }
    })?;
    de.end().map_err(|e| Error::Input {
        place: Place {
            file: file.to_owned(),
            line: u64::try_from(e.line()).ok(),
            field: None,
        },
        message: e.to_string(),
    })?;
    parsed.check(file)?;
    Ok(parsed)
}

/// Whether the directory source reads `path`.
pub fn is_endpoint_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !name.starts_with('.') && name.ends_with(".json")
}

/// The endpoint directory as last read: per file, the last good content and
/// the current error, if the newest version was refused.
#[derive(Debug, Default)]
pub struct Directory {
    files: BTreeMap<PathBuf, Slot>,
    /// When each endpoint marked terminating without a deadline was first
    /// seen so (unix seconds): its drain starts then, as a Pod's does at its
    /// `deletionTimestamp`. In memory only: a restart starts it again.
    terminating_since: BTreeMap<(String, IpAddr, u16), u64>,
}

#[derive(Debug, Default)]
struct Slot {
    good: Option<ServiceFile>,
    error: Option<String>,
}

/// What reading one file changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// New content accepted (or the file went away).
    Changed,
    /// Same content as before.
    Unchanged,
    /// Refused; the last good content stays. The message names the place.
    Refused(String),
}

impl Directory {
    /// Reads every endpoint file in `dir` at `now`; the refusals, by message.
    pub fn load(dir: &Path, now: u64) -> Result<(Self, Vec<String>)> {
        let mut this = Self::default();
        let mut refused = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_endpoint_file(p))
            .collect();
        paths.sort();
        for p in paths {
            if let Outcome::Refused(m) = this.reload(&p, now) {
                refused.push(m);
            }
        }
        Ok((this, refused))
    }

    /// Re-reads `path` after the watcher saw it change (at `now`).
    pub fn reload(&mut self, path: &Path, now: u64) -> Outcome {
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return match self.files.remove(path) {
                    Some(slot) => {
                        if let Some(gone) = slot.good {
                            self.track_terminating(&gone.service, &[], now);
                        }
                        Outcome::Changed
                    }
                    None => Outcome::Unchanged,
                };
            }
            Err(e) => return self.refuse(path, Error::io(path, e).to_string()),
        };
        let parsed = match parse(&name, &text) {
            Ok(p) => p,
            Err(e) => return self.refuse(path, e.to_string()),
        };
        if let Some(other) = self.files.iter().find_map(|(p, s)| {
            (p.as_path() != path && s.good.as_ref().is_some_and(|g| g.service == parsed.service))
                .then_some(p)
        }) {
            let message = format!(
                "{name}: field `service`: {:?} is already described by {}",
                parsed.service,
                other.display()
            );
            return self.refuse(path, message);
        }
        self.track_terminating(&parsed.service, &parsed.endpoints, now);
        let slot = self.files.entry(path.to_owned()).or_default();
        slot.error = None;
        if slot.good.as_ref() == Some(&parsed) {
            return Outcome::Unchanged;
        }
        slot.good = Some(parsed);
        Outcome::Changed
    }

    /// Notes when `service`'s endpoints turned terminating without a
    /// deadline; forgets those serving again, given a deadline, or gone.
    fn track_terminating(&mut self, service: &str, endpoints: &[Endpoint], now: u64) {
        let open: Vec<(IpAddr, u16)> = endpoints
            .iter()
            .filter(|e| e.state == State::Terminating && e.deadline.is_none())
            .map(|e| (e.address, e.port))
            .collect();
        self.terminating_since
            .retain(|(s, a, p), _| s != service || open.contains(&(*a, *p)));
        for (a, p) in open {
            self.terminating_since
                .entry((service.to_owned(), a, p))
                .or_insert(now);
        }
    }

    fn refuse(&mut self, path: &Path, message: String) -> Outcome {
        self.files.entry(path.to_owned()).or_default().error = Some(message.clone());
        Outcome::Refused(message)
    }

    /// Endpoints by Service, from every file's last good content. An
    /// endpoint terminating without a deadline gets one: when it turned
    /// terminating + `draining_timeout` (the policy's drainingTimeoutSec),
    /// so proxyless clients, which enforce no deadline, also move. Without
    /// a drainingTimeoutSec it drains until its file removes it.
    pub fn services(&self, draining_timeout: Option<u64>) -> BTreeMap<String, Vec<Endpoint>> {
        self.files
            .values()
            .filter_map(|s| s.good.as_ref())
            .map(|f| {
                let mut endpoints = f.endpoints.clone();
                for e in &mut endpoints {
                    if e.state == State::Terminating && e.deadline.is_none() {
                        let key = (f.service.clone(), e.address, e.port);
                        e.deadline = draining_timeout.and_then(|t| {
                            self.terminating_since
                                .get(&key)
                                .map(|since| since.saturating_add(t))
                        });
                    }
                }
                (f.service.clone(), endpoints)
            })
            .collect()
    }

    /// The file describing `service`, if any.
    pub fn file_of(&self, service: &str) -> Option<(&Path, &ServiceFile)> {
        self.files.iter().find_map(|(p, s)| {
            s.good
                .as_ref()
                .filter(|g| g.service == service)
                .map(|g| (p.as_path(), g))
        })
    }

    /// Files whose newest version was refused, with the reason.
    pub fn errors(&self) -> Vec<String> {
        self.files
            .values()
            .filter_map(|s| s.error.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_file_parses() {
        let f = parse(
            "a.json",
            r#"{"service":"v1","endpoints":[{"address":"10.0.0.1","port":80,"state":"serving"},
               {"address":"::1","port":81,"state":"terminating","deadline":5}]}"#,
        )
        .unwrap();
        assert_eq!(f.endpoints.len(), 2);
        assert_eq!(f.endpoints[1].deadline, Some(5));
    }

    #[test]
    fn a_bad_state_names_file_line_and_field() {
        let e = parse(
            "eps/v1.json",
            "{\"service\": \"v1\",\n \"endpoints\": [\n  {\"address\": \"10.0.0.1\", \"port\": 80, \"state\": \"gone\"}]}",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("eps/v1.json:3: field `endpoints[0].state`"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_address_and_an_unknown_field_are_refused() {
        let e = parse(
            "f",
            r#"{"service":"v1","endpoints":[{"address":"10.0.0.300","port":80,"state":"serving"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("endpoints[0].address"), "{e}");
        let e = parse(
            "f",
            r#"{"service":"v1","endpoints":[{"address":"10.0.0.3","port":80,"state":"serving","weight":3}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `weight`"), "{e}");
    }

    #[test]
    fn duplicates_are_refused() {
        let e = parse(
            "f",
            r#"{"service":"v1","endpoints":[{"address":"10.0.0.1","port":80,"state":"serving"},{"address":"10.0.0.1","port":80,"state":"terminating"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("endpoints[1]") && e.contains("also endpoints[0]"),
            "{e}"
        );
    }

    #[test]
    fn a_refused_file_keeps_its_last_good_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v1.json");
        std::fs::write(
            &p,
            r#"{"service":"v1","endpoints":[{"address":"10.0.0.1","port":80,"state":"serving"}]}"#,
        )
        .unwrap();
        let (mut d, refused) = Directory::load(dir.path(), 0).unwrap();
        assert!(refused.is_empty());
        std::fs::write(&p, "{garbage").unwrap();
        assert!(matches!(d.reload(&p, 0), Outcome::Refused(_)));
        assert_eq!(d.services(None)["v1"].len(), 1);
        assert_eq!(d.errors().len(), 1);
        std::fs::remove_file(&p).unwrap();
        assert_eq!(d.reload(&p, 0), Outcome::Changed);
        assert!(d.services(None).is_empty());
    }

    #[test]
    fn two_files_for_one_service_refuse_the_second() {
        let dir = tempfile::tempdir().unwrap();
        let body = r#"{"service":"v1","endpoints":[]}"#;
        std::fs::write(dir.path().join("a.json"), body).unwrap();
        std::fs::write(dir.path().join("b.json"), body).unwrap();
        std::fs::write(dir.path().join(".b.json.tmp"), "junk").unwrap();
        let (_, refused) = Directory::load(dir.path(), 0).unwrap();
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].contains("b.json") && refused[0].contains("a.json"));
    }

    fn write_v1(path: &Path, state: &str, deadline: Option<u64>) {
        let deadline = deadline
            .map(|d| format!(",\"deadline\":{d}"))
            .unwrap_or_default();
        std::fs::write(
            path,
            format!(
                r#"{{"service":"v1","endpoints":[{{"address":"10.0.0.1","port":80,"state":"serving"}},
                   {{"address":"10.0.0.2","port":80,"state":"{state}"{deadline}}}]}}"#
            ),
        )
        .unwrap();
    }

    fn deadline_of(d: &Directory, cap: Option<u64>) -> Option<u64> {
        d.services(cap)["v1"][1].deadline
    }

    #[test]
    fn terminating_without_a_deadline_drains_for_draining_timeout_from_when_it_turned() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v1.json");
        write_v1(&p, "serving", None);
        let (mut d, _) = Directory::load(dir.path(), 1_000).unwrap();
        assert_eq!(deadline_of(&d, Some(60)), None);
        write_v1(&p, "terminating", None);
        assert_eq!(d.reload(&p, 1_010), Outcome::Changed);
        assert_eq!(deadline_of(&d, Some(60)), Some(1_070));
        // Re-reading later (another endpoint changed, a touch) keeps the start.
        assert_eq!(d.reload(&p, 1_030), Outcome::Unchanged);
        assert_eq!(deadline_of(&d, Some(60)), Some(1_070));
        // The policy's timeout changes: the same start, the new length.
        assert_eq!(deadline_of(&d, Some(30)), Some(1_040));
        // The serving endpoint never gets one.
        assert_eq!(d.services(Some(60))["v1"][0].deadline, None);
        // No drainingTimeoutSec: it drains until its file removes it.
        assert_eq!(deadline_of(&d, None), None);
    }

    #[test]
    fn an_explicit_deadline_wins_and_undrain_restarts_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v1.json");
        write_v1(&p, "terminating", Some(5_000));
        let (mut d, _) = Directory::load(dir.path(), 1_000).unwrap();
        assert_eq!(deadline_of(&d, Some(60)), Some(5_000));
        write_v1(&p, "serving", None);
        d.reload(&p, 1_100);
        write_v1(&p, "terminating", None);
        d.reload(&p, 1_200);
        assert_eq!(deadline_of(&d, Some(60)), Some(1_260));
        write_v1(&p, "serving", None);
        d.reload(&p, 1_300);
        write_v1(&p, "terminating", None);
        d.reload(&p, 1_400);
        assert_eq!(deadline_of(&d, Some(60)), Some(1_460));
        // The file goes away and comes back: a new drain.
        std::fs::remove_file(&p).unwrap();
        d.reload(&p, 1_500);
        write_v1(&p, "terminating", None);
        d.reload(&p, 1_600);
        assert_eq!(deadline_of(&d, Some(60)), Some(1_660));
    }
}
