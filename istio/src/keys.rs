//! Token keys: generation (32 random bytes, base64) and rotation without
//! dropping live sessions. The filter seals with the first key and opens with
//! every listed key, so a rotation puts the new key first and keeps the old
//! ones until every token sealed with them has expired; `retire` removes one.
//!
//! Keys live in a plugin config (JSON), a keys file (`{"keys": [...]}`), or a
//! rendered WasmPlugin / TrafficExtension (YAML): rotation edits the keys
//! where they are and leaves everything else as it was.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::yaml::{self, Document};

/// One token key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    /// Key id, 1–32 characters of `[A-Za-z0-9._-]`.
    pub id: String,
    /// base64 of 32 random bytes.
    pub secret: String,
}

/// Whether `id` is a valid key id.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A fresh key with 32 bytes from the OS's random source.
pub fn generate(id: &str) -> Result<Key> {
    if !valid_id(id) {
        return Err(Error::Usage(format!(
            "key id {id:?} must be 1-32 characters of [A-Za-z0-9._-]"
        )));
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|e| Error::Usage(format!("no random bytes from the OS: {e}")))?;
    Ok(Key {
        id: id.to_owned(),
        secret: base64::engine::general_purpose::STANDARD.encode(secret),
    })
}

/// The next free id of the form `k<N>`.
pub fn next_id(keys: &[Key]) -> String {
    let n = keys
        .iter()
        .filter_map(|k| k.id.strip_prefix('k')?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    format!("k{}", n.saturating_add(1))
}

/// Where the keys sit inside a document.
const KEY_PATHS: [&str; 3] = [
    "keys",
    "spec.pluginConfig.keys",
    "spec.wasm.pluginConfig.keys",
];

fn pointer(path: &str) -> String {
    format!("/{}", path.replace('.', "/"))
}

/// A file holding keys, with the document they are in.
#[derive(Debug, Clone)]
pub struct KeyFile {
    /// The document.
    pub doc: Document,
    /// Field path of the keys array.
    pub path: &'static str,
    /// Whether the file was YAML (a Kubernetes object) rather than JSON.
    pub yaml: bool,
    /// The keys, first = sealing.
    pub keys: Vec<Key>,
}

impl KeyFile {
    /// Reads the keys from a plugin config, keys file, WasmPlugin or TrafficExtension.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let docs = yaml::parse_str(&name, &text)?;
        let [doc] = <[Document; 1]>::try_from(docs).map_err(|docs| {
            Error::file(
                &name,
                format!("holds {} documents; keys live in exactly one", docs.len()),
            )
        })?;
        let Some(kpath) = KEY_PATHS
            .into_iter()
            .find(|p| doc.value.pointer(&pointer(p)).is_some())
        else {
            return Err(Error::file(
                &name,
                "no `keys` here (looked at keys, spec.pluginConfig.keys, spec.wasm.pluginConfig.keys)",
            ));
        };
        let keys: Vec<Key> = doc.parse_at(
            doc.value.pointer(&pointer(kpath)).unwrap_or(&Value::Null),
            kpath,
        )?;
        for (i, k) in keys.iter().enumerate() {
            let at = format!("{kpath}[{i}]");
            if !valid_id(&k.id) {
                return Err(doc.error(
                    &format!("{at}.id"),
                    "must be 1-32 characters of [A-Za-z0-9._-]",
                ));
            }
            if keys.iter().take(i).any(|x| x.id == k.id) {
                return Err(doc.error(&format!("{at}.id"), format!("duplicate key id {:?}", k.id)));
            }
            let decoded = base64::engine::general_purpose::STANDARD.decode(k.secret.trim());
            if decoded.map(|d| d.len()) != Ok(32) {
                return Err(doc.error(
                    &format!("{at}.secret"),
                    "must be base64 of exactly 32 bytes (make one with `stickyctl keys new`)",
                ));
            }
        }
        if keys.is_empty() {
            return Err(doc.error(kpath, "holds no key"));
        }
        let yaml = !text.trim_start().starts_with('{');
        Ok(KeyFile {
            doc,
            path: kpath,
            yaml,
            keys,
        })
    }

    /// Puts a new key first; the old keys stay, so live sessions still open.
    pub fn rotate(&mut self, id: Option<&str>) -> Result<&Key> {
        let id = id.map_or_else(|| next_id(&self.keys), str::to_owned);
        if self.keys.iter().any(|k| k.id == id) {
            return Err(Error::Usage(format!("key id {id:?} is already in use")));
        }
        self.keys.insert(0, generate(&id)?);
        self.keys
            .first()
            .ok_or_else(|| Error::Usage("no key".to_owned()))
    }

    /// Removes key `id`; sessions sealed with it start over.
    pub fn retire(&mut self, id: &str) -> Result<()> {
        let Some(i) = self.keys.iter().position(|k| k.id == id) else {
            let known: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
            return Err(Error::Usage(format!(
                "no key {id:?} to retire (keys: {})",
                known.join(", ")
            )));
        };
        if self.keys.len() == 1 {
            return Err(Error::Usage(format!(
                "{id:?} is the only key; rotate first, then retire it"
            )));
        }
        self.keys.remove(i);
        Ok(())
    }

    /// The whole document with the keys as they are now, in its own format.
    pub fn render(&self) -> Result<String> {
        let mut value = self.doc.value.clone();
        if let Some(slot) = value.pointer_mut(&pointer(self.path)) {
            *slot = json!(self.keys);
        }
        if self.yaml {
            yaml::to_yaml(&value)
        } else {
            Ok(yaml::to_json(&value))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_32_random_bytes() {
        let a = generate("k1").unwrap();
        let b = generate("k1").unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&a.secret)
            .unwrap();
        assert_eq!(raw.len(), 32);
        assert_ne!(a.secret, b.secret);
    }

    #[test]
    fn next_id_counts_up() {
        let k = |id: &str| Key {
            id: id.into(),
            secret: String::new(),
        };
        assert_eq!(next_id(&[]), "k1");
        assert_eq!(next_id(&[k("k2"), k("k10"), k("old")]), "k11");
    }
}
