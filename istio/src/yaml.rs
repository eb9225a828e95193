//! YAML input with locations: each document becomes a JSON value plus an
//! index from field path (`spec.rules[0].backendRefs[1].weight`) to the line
//! it was written on, so that errors found long after parsing (a weight that
//! does not add up, a targetRef naming another route) still name file, line
//! and field. Also YAML output for the rendered objects.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;

use crate::error::{Error, Place, Result};

/// One YAML document of an input file, with the line of every field.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file as the user named it.
    pub file: String,
    /// The document as JSON.
    pub value: Value,
    lines: BTreeMap<String, u64>,
}

impl Document {
    /// The line a field path was written on, or its nearest written ancestor's.
    pub fn line_of(&self, path: &str) -> Option<u64> {
        let mut p = path;
        loop {
            if let Some(line) = self.lines.get(p) {
                return Some(*line);
            }
            let cut = p.rfind(['.', '['])?;
            p = p.get(..cut)?;
            if p.is_empty() {
                return self.lines.get("").copied();
            }
        }
    }

    /// The place of a field path, for error messages.
    pub fn place(&self, path: &str) -> Place {
        Place {
            file: self.file.clone(),
            line: self.line_of(path),
            field: (!path.is_empty()).then(|| path.to_owned()),
        }
    }

    /// An input error at a field path.
    pub fn error(&self, path: &str, message: impl Into<String>) -> Error {
        Error::Input {
            place: self.place(path),
            message: message.into(),
        }
    }

    /// Deserializes `value`, a part of this document found at `prefix`; a
    /// type error names the full field path and its line.
    pub fn parse_at<T: DeserializeOwned>(&self, value: &Value, prefix: &str) -> Result<T> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let inner = clean_path(&e.path().to_string());
            let path = match (prefix.is_empty(), inner.is_empty()) {
                (true, _) => inner,
                (false, true) => prefix.to_owned(),
                (false, false) if inner.starts_with('[') => format!("{prefix}{inner}"),
                (false, false) => format!("{prefix}.{inner}"),
            };
            self.error(&path, e.into_inner().to_string())
        })
    }

    /// `kind`, or "" when absent.
    pub fn kind(&self) -> &str {
        self.value.get("kind").and_then(Value::as_str).unwrap_or("")
    }

    /// `apiVersion`, or "" when absent.
    pub fn api_version(&self) -> &str {
        self.value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// `metadata.name`, or "" when absent.
    pub fn name(&self) -> &str {
        self.value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Deserializes the whole document; a type error names its field and line.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        serde_path_to_error::deserialize(&self.value).map_err(|e| {
            let path = clean_path(&e.path().to_string());
            self.error(&path, e.into_inner().to_string())
        })
    }
}

/// serde_path_to_error writes the root as "." and unknown segments as "?".
fn clean_path(path: &str) -> String {
    let p = path.trim_start_matches('.');
    p.trim_end_matches(".?").trim_end_matches('?').to_owned()
}

/// Parses every document in `text`; `file` names it in errors.
pub fn parse_str(file: &str, text: &str) -> Result<Vec<Document>> {
    let nodes: Vec<Node> = serde_saphyr::from_multiple(text).map_err(|e| {
        let line = e.location().map(|l| l.line()).filter(|l| *l > 0);
        let message = e.to_string();
        // The first line of saphyr's message is the error; the rest a snippet.
        let first = message.lines().next().unwrap_or("invalid YAML").to_owned();
        let first = first.strip_prefix("error: ").unwrap_or(&first);
        // "line 2 column 3: what" -> "column 3: what" (the line is ours to print).
        let first = first
            .strip_prefix("line ")
            .and_then(|r| r.split_once(' '))
            .map_or(first, |(_, r)| r);
        let first = first
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(first)
            .to_owned();
        Error::Input {
            place: Place {
                file: file.to_owned(),
                line,
                field: None,
            },
            message: format!("invalid YAML: {first}"),
        }
    })?;
    let mut docs = Vec::new();
    for node in nodes {
        if matches!(node.0.value, Kind::Null) {
            continue;
        }
        let mut lines = BTreeMap::new();
        let value = node.into_value(String::new(), &mut lines);
        docs.push(Document {
            file: file.to_owned(),
            value,
            lines,
        });
    }
    Ok(docs)
}

/// Reads and parses a YAML file (`-` reads stdin).
pub fn load(path: &Path) -> Result<Vec<Document>> {
    let name = path.display().to_string();
    let text = if name == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| Error::io(path, e))?
    } else {
        std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?
    };
    parse_str(&name, &text)
}

/// Serializes a JSON value as a YAML document.
pub fn to_yaml(value: &Value) -> Result<String> {
    serde_saphyr::to_string(value).map_err(|e| Error::Usage(format!("cannot write YAML: {e}")))
}

/// Joins documents into one multi-document stream for `kubectl apply -f -`.
pub fn stream(values: &[Value]) -> Result<String> {
    let mut out = String::new();
    for v in values {
        out.push_str("---\n");
        out.push_str(&to_yaml(v)?);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// A YAML node with its location.
struct Node(Spanned<Kind>);

enum Kind {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Seq(Vec<Node>),
    /// Entries with the line of their key.
    Map(Vec<(String, u64, Node)>),
}

impl Node {
    fn into_value(self, path: String, lines: &mut BTreeMap<String, u64>) -> Value {
        let line = self.0.referenced.line();
        if line > 0 {
            // A key's own line (recorded by the parent map) wins over its value's.
            lines.entry(path.clone()).or_insert(line);
        }
        match self.0.value {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(b),
            Kind::Number(n) => Value::Number(n),
            Kind::String(s) => Value::String(s),
            Kind::Seq(items) => Value::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, n)| n.into_value(format!("{path}[{i}]"), lines))
                    .collect(),
            ),
            Kind::Map(entries) => {
                let mut map = Map::new();
                for (k, key_line, n) in entries {
                    let child = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    if key_line > 0 {
                        lines.insert(child.clone(), key_line);
                    }
                    map.insert(k, n.into_value(child, lines));
                }
                Value::Object(map)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Node(Spanned::<Kind>::deserialize(d)?))
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_none<E>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        d.deserialize_any(KindVisitor)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Kind, E> {
        Ok(Kind::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Kind, E> {
        Ok(Kind::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Kind, E> {
        Ok(Kind::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Kind, E> {
        Number::from_f64(v)
            .map(Kind::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Kind, E> {
        Ok(Kind::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Kind, E> {
        Ok(Kind::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = a.next_element::<Node>()? {
            items.push(n);
        }
        Ok(Kind::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Kind, A::Error> {
        let mut entries: Vec<(String, u64, Node)> = Vec::new();
        while let Some(k) = a.next_key::<Spanned<String>>()? {
            let n = a.next_value::<Node>()?;
            if entries.iter().any(|(e, _, _)| *e == k.value) {
                return Err(de::Error::custom(format!("duplicate key `{}`", k.value)));
            }
            entries.push((k.value, k.referenced.line(), n));
        }
        Ok(Kind::Map(entries))
    }
}

/// Writes any serializable value as pretty JSON with a trailing newline.
pub fn to_json<T: Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_knows_its_line() {
        let docs = parse_str(
            "r.yaml",
            "kind: HTTPRoute\nspec:\n  rules:\n  - backendRefs:\n    - name: a\n      weight: 90\n    - name: b\n      weight: 10\n",
        )
        .unwrap();
        let d = &docs[0];
        assert_eq!(d.line_of("spec.rules[0].backendRefs[1].weight"), Some(8));
        assert_eq!(d.line_of("spec.rules[0].backendRefs[0].name"), Some(5));
        // A block value is placed at its key, not at its first child.
        assert_eq!(d.line_of("spec.rules[0].backendRefs"), Some(4));
        assert_eq!(d.line_of("spec"), Some(2));
        // Absent fields fall back to their nearest written ancestor.
        assert_eq!(d.line_of("spec.rules[0].backendRefs[1].port"), Some(7));
        assert_eq!(d.value["spec"]["rules"][0]["backendRefs"][0]["weight"], 90);
    }

    #[test]
    fn quoted_numbers_stay_strings_and_documents_split() {
        let docs = parse_str("x.yaml", "a: \"90\"\n---\n---\nb: true\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].value["a"], "90");
        assert_eq!(docs[1].value["b"], true);
        assert_eq!(docs[1].line_of("b"), Some(4));
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let err = parse_str("bad.yaml", "a: 1\n b: 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("bad.yaml:2: invalid YAML"), "{err}");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let err = parse_str("d.yaml", "a: 1\na: 2\n").unwrap_err().to_string();
        assert!(
            err.starts_with("d.yaml:2: invalid YAML: column 1: duplicate mapping key: a"),
            "{err}"
        );
    }

    #[test]
    fn type_errors_name_field_and_line() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            spec: S,
        }
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct S {
            weight: u32,
        }
        let docs = parse_str("t.yaml", "spec:\n  weight: ninety\n").unwrap();
        let err = docs[0].parse::<T>().unwrap_err().to_string();
        assert!(err.starts_with("t.yaml:2: field `spec.weight`: "), "{err}");
    }

    #[test]
    fn istio_cluster_names_survive_yaml_output() {
        let v = serde_json::json!({"c": "outbound|80|v2|reviews.default.svc.cluster.local", "y": "yes", "n": "10"});
        let text = to_yaml(&v).unwrap();
        let back = parse_str("o.yaml", &text).unwrap();
        assert_eq!(back[0].value, v);
    }
}
