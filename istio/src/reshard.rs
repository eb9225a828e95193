//! `stickyctl reshard`: what growing (or shrinking) a sharded route from N to
//! M shards does to its keys, measured with the filter's own mapping
//! (`sticky_core::shard`, never a copy) and compared with `key mod N` and
//! with the theory; and the updated plugin config whose `reshard_deadline`
//! lets in-flight sessions finish on their old shard.
//!
//! Theory, for keys hashed uniformly:
//! - jump consistent hash moves only what it must: growing N → M moves the
//!   keys the new shards take, `1 - N/M`; shrinking moves the keys of the
//!   removed shards, `1 - M/N`;
//! - `h mod N` keeps a key only if `h mod N = h mod M`, which holds for
//!   `min(N, M)` residues out of every `lcm(N, M)`: it moves `1 - min/lcm`
//!   (80% for 4 → 5).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sticky_core::shard::{MAX_KEY, fnv1a64, shard_of};

use crate::error::{Error, Result};
use crate::yaml::{self, Document};

/// What resharding does to a set of keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Shards before.
    pub from: u32,
    /// Shards after.
    pub to: u32,
    /// Keys measured.
    pub keys: usize,
    /// Keys jump hash moves.
    pub jump_moved: usize,
    /// Keys `h mod N` moves.
    pub modulo_moved: usize,
    /// Keys jump hash moves, by (old shard, new shard).
    pub flows: BTreeMap<(usize, usize), usize>,
}

impl Report {
    /// Share of keys jump hash moves.
    pub fn jump_share(&self) -> f64 {
        share(self.jump_moved, self.keys)
    }

    /// Share of keys `h mod N` moves.
    pub fn modulo_share(&self) -> f64 {
        share(self.modulo_moved, self.keys)
    }

    /// Whether every moved key went to a new shard (growth) or came from a
    /// removed one (shrink): jump hash moves nothing it need not.
    pub fn minimal(&self) -> bool {
        let (from, to) = (self.from as usize, self.to as usize);
        self.flows
            .keys()
            .all(|&(old, new)| if to >= from { new >= from } else { old >= to })
    }
}

#[allow(clippy::cast_precision_loss, clippy::as_conversions)] // counts far below 2^52
fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Jump hash's expected share of moved keys: `1 - N/M` growing, `1 - M/N` shrinking.
pub fn jump_theory(from: u32, to: u32) -> f64 {
    let (lo, hi) = (from.min(to), from.max(to));
    1.0 - f64::from(lo) / f64::from(hi)
}

/// `h mod N`'s expected share of moved keys: `1 - min(N, M) / lcm(N, M)`.
pub fn modulo_theory(from: u32, to: u32) -> f64 {
    let lcm = lcm(u64::from(from), u64::from(to));
    #[allow(clippy::cast_precision_loss, clippy::as_conversions)] // lcm of two u32 fits
    let lcm = lcm as f64;
    1.0 - f64::from(from.min(to)) / lcm
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn lcm(a: u64, b: u64) -> u64 {
    match gcd(a, b) {
        0 => 0,
        g => a / g * b,
    }
}

/// A key as the filter hashes it: spaces and tabs trimmed, at most
/// `MAX_KEY` bytes; `None` for an empty key (the filter sees no key).
pub fn normalize(key: &[u8]) -> Option<&[u8]> {
    let start = key.iter().position(|b| *b != b' ' && *b != b'\t')?;
    let end = key.iter().rposition(|b| *b != b' ' && *b != b'\t')?;
    let key = key.get(start..=end)?;
    Some(key.get(..MAX_KEY).unwrap_or(key))
}

/// Measures resharding `from` → `to` over `keys` (already normalized).
pub fn measure<'a>(keys: impl IntoIterator<Item = &'a [u8]>, from: u32, to: u32) -> Report {
    let (n, m) = (from as usize, to as usize);
    let mut report = Report {
        from,
        to,
        keys: 0,
        jump_moved: 0,
        modulo_moved: 0,
        flows: BTreeMap::new(),
    };
    for key in keys {
        report.keys = report.keys.saturating_add(1);
        let (old, new) = (shard_of(key, n), shard_of(key, m));
        if old != new {
            report.jump_moved = report.jump_moved.saturating_add(1);
            let slot = report.flows.entry((old, new)).or_insert(0);
            *slot = slot.saturating_add(1);
        }
        let h = fnv1a64(key);
        if h.checked_rem(u64::from(from)) != h.checked_rem(u64::from(to)) {
            report.modulo_moved = report.modulo_moved.saturating_add(1);
        }
    }
    report
}

/// The report as text (a Markdown table and a line on where keys went).
pub fn render(report: &Report, source: &str) -> String {
    let (from, to) = (report.from, report.to);
    let lcm = lcm(u64::from(from), u64::from(to));
    let mut out = format!(
        "resharding {from} -> {to} shards, {} keys ({source})\n\n",
        report.keys
    );
    out.push_str("| mapping | keys moved | theory |\n|---|---|---|\n");
    out.push_str(&format!(
        "| sticky: jump consistent hash of FNV-1a | {:.2}% ({}) | {:.2}% (1 - {}/{}) |\n",
        report.jump_share() * 100.0,
        report.jump_moved,
        jump_theory(from, to) * 100.0,
        from.min(to),
        from.max(to),
    ));
    out.push_str(&format!(
        "| FNV-1a mod N | {:.2}% ({}) | {:.2}% (1 - {}/{lcm}) |\n\n",
        report.modulo_share() * 100.0,
        report.modulo_moved,
        modulo_theory(from, to) * 100.0,
        from.min(to),
    ));
    let mut by_shard: BTreeMap<usize, usize> = BTreeMap::new();
    let growing = to >= from;
    for (&(old, new), &count) in &report.flows {
        let slot = by_shard.entry(if growing { new } else { old }).or_insert(0);
        *slot = slot.saturating_add(count);
    }
    let list: Vec<String> = by_shard
        .iter()
        .map(|(shard, count)| format!("shard {shard}: {count}"))
        .collect();
    if list.is_empty() {
        out.push_str("jump hash moves no key\n");
    } else {
        out.push_str(&format!(
            "jump hash: moved keys {} {} ({})\n",
            if growing { "go to" } else { "come from" },
            list.join(", "),
            if report.minimal() {
                if growing {
                    "the new shards only"
                } else {
                    "the removed shards only"
                }
            } else {
                "NOT only the new or removed shards"
            }
        ));
    }
    out
}

/// The shard cluster names for `count` shards, following the naming pattern
/// of `clusters` (shard `i` is `clusters[i]`): the ordinal is the only
/// number that changes between them, as stickyctl renders them (`shard-3`,
/// `outbound|8080|shard-3|accounts.bank.svc.cluster.local`).
pub fn renamed(clusters: &[String], count: u32) -> Option<Vec<String>> {
    let first = clusters.first()?;
    let bytes = first.as_bytes();
    // Every standalone "0" in the first name is a candidate for the ordinal.
    let candidates = (0..bytes.len()).filter(|&i| {
        bytes.get(i) == Some(&b'0')
            && !i
                .checked_sub(1)
                .and_then(|p| bytes.get(p))
                .is_some_and(u8::is_ascii_digit)
            && !bytes
                .get(i.saturating_add(1))
                .is_some_and(u8::is_ascii_digit)
    });
    let mut fits = candidates.filter_map(|i| {
        let (head, tail) = (first.get(..i)?, first.get(i.saturating_add(1)..)?);
        let name = |n: u32| format!("{head}{n}{tail}");
        clusters
            .iter()
            .zip(0..)
            .all(|(c, n)| *c == name(n))
            .then(|| (0..count).map(name).collect::<Vec<_>>())
    });
    let found = fits.next()?;
    // Two ways to read the pattern (a single name with two zeros): ambiguous.
    fits.next().is_none().then_some(found)
}

/// A plugin config to reshard, with where it sits in its file.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    doc: Document,
    /// Field path of the plugin config ("" for a plugin config file).
    at: &'static str,
    yaml: bool,
}

/// Where a plugin config sits: the file itself, a WasmPlugin, a TrafficExtension.
const CONFIG_PATHS: [&str; 3] = ["", "spec.pluginConfig", "spec.wasm.pluginConfig"];

fn pointer(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("/{}", path.replace('.', "/"))
    }
}

fn field(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_owned()
    } else {
        format!("{at}.{name}")
    }
}

impl ConfigFile {
    /// Reads a plugin config (JSON), or a rendered WasmPlugin / TrafficExtension (YAML).
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let docs = yaml::parse_str(&name, &text)?;
        let [doc] = <[Document; 1]>::try_from(docs).map_err(|docs| {
            Error::file(
                &name,
                format!(
                    "holds {} documents; give the plugin config or its WasmPlugin alone",
                    docs.len()
                ),
            )
        })?;
        let at = CONFIG_PATHS
            .into_iter()
            .rev()
            .find(|p| {
                doc.value
                    .pointer(&pointer(&field(p, "sharding")))
                    .is_some()
            })
            .ok_or_else(|| {
                Error::file(
                    &name,
                    "no `sharding` here (looked at sharding, spec.pluginConfig.sharding, spec.wasm.pluginConfig.sharding): render it from a policy with spec.sharding",
                )
            })?;
        Ok(ConfigFile {
            yaml: !text.trim_start().starts_with('{'),
            doc,
            at,
        })
    }

    /// The shard clusters now (shard 0 first).
    pub fn shard_clusters(&self) -> Result<Vec<String>> {
        let path = field(self.at, "sharding.clusters");
        let v = self
            .doc
            .value
            .pointer(&pointer(&path))
            .cloned()
            .unwrap_or(Value::Null);
        self.doc.parse_at(&v, &path)
    }

    /// Resizes the shard list from `from` to `to` shards and sets (or, with
    /// `None`, removes) `reshard_deadline`; checked by the filter's parser.
    pub fn reshard(&self, from: u32, to: u32, deadline: Option<u64>) -> Result<Value> {
        let path = field(self.at, "sharding.clusters");
        let clusters = self.shard_clusters()?;
        if clusters.len() != from as usize {
            return Err(self.doc.error(
                &path,
                format!(
                    "holds {} shard clusters, but --from says {from}",
                    clusters.len()
                ),
            ));
        }
        let names = renamed(&clusters, to).ok_or_else(|| {
            self.doc.error(
                &path,
                "the shard clusters do not follow one naming pattern with the ordinal as the only changing number; re-render from the policy with the new `shards`",
            )
        })?;
        let mut value = self.doc.value.clone();
        let sharding = value
            .pointer_mut(&pointer(&field(self.at, "sharding")))
            .and_then(Value::as_object_mut)
            .ok_or_else(|| {
                self.doc
                    .error(&field(self.at, "sharding"), "must be an object")
            })?;
        sharding.insert("clusters".into(), json!(names));
        match deadline {
            Some(d) => sharding.insert("reshard_deadline".into(), json!(d)),
            None => sharding.remove("reshard_deadline"),
        };
        let config = value
            .pointer(&pointer(self.at))
            .cloned()
            .unwrap_or(Value::Null);
        crate::plugin::check(&config)?;
        Ok(value)
    }

    /// `value` in the file's own format.
    pub fn render(&self, value: &Value) -> Result<String> {
        if self.yaml {
            yaml::to_yaml(value)
        } else {
            Ok(yaml::to_json(value))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn theory_matches_the_closed_forms() {
        assert!((jump_theory(4, 5) - 0.2).abs() < 1e-12);
        assert!((jump_theory(5, 4) - 0.2).abs() < 1e-12);
        assert!((jump_theory(3, 3)).abs() < 1e-12);
        assert!((modulo_theory(4, 5) - 0.8).abs() < 1e-12);
        // 4 -> 8: h mod 8 in 0..4 keeps h mod 4; lcm 8, min 4.
        assert!((modulo_theory(4, 8) - 0.5).abs() < 1e-12);
        assert!((modulo_theory(6, 6)).abs() < 1e-12);
    }

    #[test]
    fn jump_hash_moves_only_keys_the_new_shard_takes() {
        let keys: Vec<String> = (0..20_000).map(|i| format!("account-{i}")).collect();
        let r = measure(keys.iter().map(|k| k.as_bytes()), 4, 5);
        assert_eq!(r.keys, 20_000);
        assert!((r.jump_share() - 0.2).abs() < 0.01, "{}", r.jump_share());
        assert!(
            (r.modulo_share() - 0.8).abs() < 0.01,
            "{}",
            r.modulo_share()
        );
        assert!(r.minimal());
        assert!(r.flows.keys().all(|&(_, new)| new == 4));
        let shrink = measure(keys.iter().map(|k| k.as_bytes()), 5, 4);
        assert_eq!(shrink.jump_moved, r.jump_moved);
        assert!(shrink.minimal());
    }

    #[test]
    fn keys_are_normalized_as_the_filter_sees_them() {
        assert_eq!(normalize(b"  acct-1\t"), Some(&b"acct-1"[..]));
        assert_eq!(normalize(b" \t "), None);
        assert_eq!(normalize(&[b'x'; 300]).map(<[u8]>::len), Some(MAX_KEY));
    }

    #[test]
    fn shard_names_follow_their_pattern() {
        let istio: Vec<String> = (0..2)
            .map(|i| format!("outbound|8080|shard-{i}|accounts.bank.svc.cluster.local"))
            .collect();
        assert_eq!(
            renamed(&istio, 3).unwrap()[2],
            "outbound|8080|shard-2|accounts.bank.svc.cluster.local"
        );
        let plain = vec!["shard-0".to_owned()];
        assert_eq!(renamed(&plain, 2).unwrap(), ["shard-0", "shard-1"]);
        // Two standalone zeros in a single name: which is the ordinal?
        assert_eq!(renamed(&["a-0-b-0".to_owned()], 2), None);
        assert_eq!(renamed(&["a".to_owned(), "b".to_owned()], 3), None);
    }
}
