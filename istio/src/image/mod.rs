//! `stickyctl image`: dist/sticky.wasm as an OCI image that Istio's
//! WasmPlugin pulls, written as an OCI image layout directory (`oci-layout`,
//! `index.json`, `blobs/sha256/…`) and a tarball of it, byte-for-byte
//! reproducible: the digests depend on the module alone.
//!
//! Two variants of the Wasm image specification (solo-io/wasm `spec/`),
//! both accepted by Istio's puller (istio/istio `pkg/wasm/imagefetcher.go`):
//!
//! - **compat** (default): one `application/vnd.oci.image.layer.v1.tar+gzip`
//!   layer holding only `plugin.wasm`, a plain OCI image config
//!   (`architecture: wasm, os: wasip1`) and the manifest annotation
//!   `module.wasm.image/variant: compat`. Istio tries this shape first for
//!   OCI manifests, and every registry and tool (skopeo, crane, oras,
//!   docker) handles it.
//! - **wasm**: the artifact media types: config
//!   `application/vnd.module.wasm.config.v1+json` (the runtime config
//!   `{"type": "envoy_proxy", "abiVersions": [...], "config": {"rootIds": [...]}}`)
//!   and two layers, the module (`application/vnd.module.wasm.content.layer.v1+wasm`)
//!   and the runtime config again: Istio's `extractOCIArtifactImage` refuses
//!   this variant unless it has exactly two layers.
//!
//! For an `oci://` URL, Istio compares WasmPlugin `sha256` with the
//! **manifest digest** of the pulled image (`pkg/wasm/cache.go`:
//! `PrepareFetch` returns `img.Digest()`), not with the module's sha256;
//! for `file://` and `http(s)://` URLs, with the module's sha256.

pub mod archive;

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use archive::Entry;

/// OCI image manifest.
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer (the compat variant's only layer).
pub const TAR_GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Wasm runtime config (the wasm variant's config and second layer).
pub const WASM_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";
/// The module itself (the wasm variant).
pub const WASM_LAYER: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
/// The manifest annotation that marks a compat image with an OCI layer.
pub const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";
/// The file name Istio looks for in a compat layer.
pub const PLUGIN_FILE: &str = "plugin.wasm";
/// The tag annotation of index.json.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Which image shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// One tar+gzip layer holding `/plugin.wasm`.
    Compat,
    /// The Wasm artifact media types.
    Wasm,
}

impl Variant {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Compat => "compat",
            Variant::Wasm => "wasm",
        }
    }
}

/// A JSON value written with its keys in the order given: the bytes, and so
/// the digests, cannot change with a serde_json feature or version.
enum J {
    Obj(Vec<(&'static str, J)>),
    Arr(Vec<J>),
    Str(String),
    Num(u64),
}

impl J {
    fn s(text: &str) -> J {
        J::Str(text.to_owned())
    }

    fn write(&self, out: &mut String) {
        match self {
            J::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    J::s(k).write(out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
            J::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            J::Str(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
            J::Num(n) => out.push_str(&n.to_string()),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        self.write(&mut out);
        out.into_bytes()
    }
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn descriptor(media_type: &str, blob: &[u8], annotations: Vec<(&'static str, J)>) -> J {
    let mut d = vec![
        ("mediaType", J::s(media_type)),
        ("digest", J::Str(format!("sha256:{}", sha256_hex(blob)))),
        ("size", J::Num(blob.len() as u64)),
    ];
    if !annotations.is_empty() {
        d.push(("annotations", J::Obj(annotations)));
    }
    J::Obj(d)
}

/// The proxy-wasm ABI versions a module exports (`proxy_abi_version_0_2_1`
/// → `v0.2.1`), read from its export names.
pub fn abi_versions(module: &[u8]) -> Vec<String> {
    const MARK: &[u8] = b"proxy_abi_version_";
    let mut out: Vec<String> = Vec::new();
    let mut rest = module;
    while let Some(at) = rest.windows(MARK.len()).position(|w| w == MARK) {
        let tail = rest
            .get(at.saturating_add(MARK.len())..)
            .unwrap_or_default();
        let len = tail
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b'_')
            .count();
        let digits = String::from_utf8_lossy(tail.get(..len).unwrap_or_default()).replace('_', ".");
        let version = format!("v{digits}");
        if !digits.is_empty() && !out.contains(&version) {
            out.push(version);
        }
        rest = tail;
    }
    out
}

/// An image layout in memory.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Every file of the layout directory, sorted by path (directories end in `/`).
    pub entries: Vec<Entry>,
    /// Hex sha256 of the manifest: the image digest.
    pub manifest_digest: String,
    /// Hex sha256 of the module.
    pub module_sha256: String,
    /// The variant.
    pub variant: Variant,
    /// The tag in index.json.
    pub tag: String,
}

impl Layout {
    /// The layout as one tar archive (an `oci-archive`).
    pub fn tarball(&self) -> Result<Vec<u8>> {
        archive::tar(&self.entries).map_err(Error::Usage)
    }
}

/// Builds the image of `module`, tagged `tag` in index.json.
pub fn build(module: &[u8], variant: Variant, tag: &str) -> Result<Layout> {
    if module.get(..4) != Some(b"\0asm") {
        return Err(Error::Usage(
            "the module does not start with the wasm magic \\0asm (Istio would refuse it)".into(),
        ));
    }
    if tag.is_empty()
        || tag.len() > 128
        || !tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        || tag.starts_with(['.', '-'])
    {
        return Err(Error::Usage(format!(
            "--tag {tag:?}: a tag is 1-128 of [A-Za-z0-9._-], not starting with '.' or '-'"
        )));
    }
    let mut blobs: Vec<Vec<u8>> = Vec::new();
    let manifest = match variant {
        Variant::Compat => {
            let layer_tar = archive::tar(&[Entry {
                path: PLUGIN_FILE.into(),
                data: module.to_vec(),
            }])
            .map_err(Error::Usage)?;
            let layer = archive::gzip(&layer_tar);
            let config = J::Obj(vec![
                ("architecture", J::s("wasm")),
                ("os", J::s("wasip1")),
                (
                    "rootfs",
                    J::Obj(vec![
                        ("type", J::s("layers")),
                        (
                            "diff_ids",
                            J::Arr(vec![J::Str(format!("sha256:{}", sha256_hex(&layer_tar)))]),
                        ),
                    ]),
                ),
            ])
            .bytes();
            let manifest = J::Obj(vec![
                ("schemaVersion", J::Num(2)),
                ("mediaType", J::s(MANIFEST)),
                ("config", descriptor(IMAGE_CONFIG, &config, vec![])),
                (
                    "layers",
                    J::Arr(vec![descriptor(TAR_GZIP_LAYER, &layer, vec![])]),
                ),
                (
                    "annotations",
                    J::Obj(vec![(VARIANT_ANNOTATION, J::s("compat"))]),
                ),
            ])
            .bytes();
            blobs.extend([config, layer]);
            manifest
        }
        Variant::Wasm => {
            let runtime = J::Obj(vec![
                ("type", J::s("envoy_proxy")),
                (
                    "abiVersions",
                    J::Arr(abi_versions(module).iter().map(|v| J::s(v)).collect()),
                ),
                (
                    "config",
                    J::Obj(vec![("rootIds", J::Arr(vec![J::s("sticky")]))]),
                ),
            ])
            .bytes();
            let title = |t: &str| vec![("org.opencontainers.image.title", J::s(t))];
            let manifest = J::Obj(vec![
                ("schemaVersion", J::Num(2)),
                ("mediaType", J::s(MANIFEST)),
                ("config", descriptor(WASM_CONFIG, &runtime, vec![])),
                (
                    "layers",
                    J::Arr(vec![
                        descriptor(WASM_LAYER, module, title(PLUGIN_FILE)),
                        descriptor(WASM_CONFIG, &runtime, title("runtime-config.json")),
                    ]),
                ),
            ])
            .bytes();
            blobs.extend([runtime, module.to_vec()]);
            manifest
        }
    };
    let manifest_digest = sha256_hex(&manifest);
    let index = J::Obj(vec![
        ("schemaVersion", J::Num(2)),
        ("mediaType", J::s(INDEX)),
        (
            "manifests",
            J::Arr(vec![descriptor(
                MANIFEST,
                &manifest,
                vec![(REF_NAME, J::s(tag))],
            )]),
        ),
    ])
    .bytes();
    blobs.push(manifest);
    let mut entries = vec![
        Entry {
            path: "blobs/".into(),
            data: vec![],
        },
        Entry {
            path: "blobs/sha256/".into(),
            data: vec![],
        },
    ];
    let mut files: Vec<Entry> = blobs
        .into_iter()
        .map(|b| Entry {
            path: format!("blobs/sha256/{}", sha256_hex(&b)),
            data: b,
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    entries.extend(files);
    entries.push(Entry {
        path: "index.json".into(),
        data: index,
    });
    entries.push(Entry {
        path: "oci-layout".into(),
        data: J::Obj(vec![("imageLayoutVersion", J::s("1.0.0"))]).bytes(),
    });
    Ok(Layout {
        entries,
        manifest_digest,
        module_sha256: sha256_hex(module),
        variant,
        tag: tag.to_owned(),
    })
}

/// Writes the layout into `dir` (replacing a layout already there) and its
/// tarball into `<dir>.tar`; returns the tarball's path.
pub fn write(layout: &Layout, dir: &Path) -> Result<PathBuf> {
    if dir.exists() && !dir.join("oci-layout").exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .next()
            .is_none();
        if !empty {
            return Err(Error::Usage(format!(
                "{} exists and is no OCI image layout; stickyctl replaces only its own layouts",
                dir.display()
            )));
        }
    }
    let name = dir
        .file_name()
        .ok_or_else(|| Error::Usage(format!("{}: want a directory name", dir.display())))?;
    let parent = dir
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let parent = if parent.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        parent
    };
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    // Build beside it, then swap: a stale blob of an earlier build never
    // lingers in the layout.
    let staging = parent.join(format!(
        ".{}.stickyctl-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    for e in &layout.entries {
        let path = staging.join(&e.path);
        if e.is_dir() {
            std::fs::create_dir_all(&path).map_err(|err| Error::io(&path, err))?;
        } else {
            if let Some(p) = path.parent() {
                std::fs::create_dir_all(p).map_err(|err| Error::io(p, err))?;
            }
            std::fs::write(&path, &e.data).map_err(|err| Error::io(&path, err))?;
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::rename(&staging, dir).map_err(|e| Error::io(dir, e))?;
    let mut tar_name = name.to_os_string();
    tar_name.push(".tar");
    let tar_path = parent.join(tar_name);
    crate::eds::write_atomic(&tar_path, &layout.tarball()?).map_err(|e| Error::io(&tar_path, e))?;
    Ok(tar_path)
}

/// What a layout directory holds, every blob verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// Hex manifest digest (the image digest).
    pub manifest_digest: String,
    /// Hex sha256 of the module inside.
    pub module_sha256: String,
    /// Module size in bytes.
    pub module_size: usize,
    /// The variant.
    pub variant: Variant,
    /// The tag (index.json `org.opencontainers.image.ref.name`), if any.
    pub tag: Option<String>,
}

fn bad(dir: &Path, what: impl Into<String>) -> Error {
    Error::file(&dir.display().to_string(), what)
}

fn json_file(dir: &Path, rel: &str) -> Result<(Vec<u8>, Value)> {
    let path = dir.join(rel);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let value =
        serde_json::from_slice(&bytes).map_err(|e| bad(dir, format!("{rel} is not JSON: {e}")))?;
    Ok((bytes, value))
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Reads the blob a descriptor names, checking its digest and size.
fn blob(dir: &Path, d: &Value, what: &str) -> Result<Vec<u8>> {
    let digest = str_at(d, "digest").unwrap_or("");
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            bad(
                dir,
                format!("{what}: digest {digest:?} is not sha256:<64 hex>"),
            )
        })?;
    let path = dir.join("blobs/sha256").join(hex);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    if sha256_hex(&bytes) != hex {
        return Err(bad(
            dir,
            format!("{what}: blob {hex} does not hash to its name"),
        ));
    }
    if d.get("size").and_then(Value::as_u64) != Some(bytes.len() as u64) {
        return Err(bad(
            dir,
            format!(
                "{what}: size {} in the descriptor, {} on disk",
                d["size"],
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// Reads and verifies a layout directory: `oci-layout`, the index, every
/// blob against its name, every descriptor's digest, size and media type,
/// and the module inside (the manifest tagged `tag`, or the only one).
pub fn inspect(dir: &Path, tag: Option<&str>) -> Result<Inspected> {
    let (_, layout) = json_file(dir, "oci-layout")?;
    if str_at(&layout, "imageLayoutVersion") != Some("1.0.0") {
        return Err(bad(dir, "oci-layout: imageLayoutVersion is not 1.0.0"));
    }
    let blobs_dir = dir.join("blobs/sha256");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&blobs_dir)
        .map_err(|e| Error::io(&blobs_dir, e))?
        .map(|e| {
            e.map(|e| e.path())
                .map_err(|err| Error::io(&blobs_dir, err))
        })
        .collect::<Result<_>>()?;
    names.sort();
    for path in &names {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.as_deref() != Some(sha256_hex(&bytes).as_str()) {
            return Err(bad(
                dir,
                format!("blob {} does not hash to its name", path.display()),
            ));
        }
    }
    let (_, index) = json_file(dir, "index.json")?;
    if index.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
        return Err(bad(dir, "index.json: schemaVersion is not 2"));
    }
    let manifests = index
        .get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let tag_of = |m: &Value| {
        m.pointer("/annotations")
            .and_then(|a| str_at(a, REF_NAME))
            .map(str::to_owned)
    };
    let chosen: Vec<&Value> = manifests
        .iter()
        .filter(|m| tag.is_none_or(|t| tag_of(m).as_deref() == Some(t)))
        .collect();
    let [desc] = chosen.as_slice() else {
        return Err(bad(
            dir,
            match tag {
                Some(t) => format!("index.json: {} manifests tagged {t:?}", chosen.len()),
                None => format!(
                    "index.json lists {} manifests; name one with its tag",
                    chosen.len()
                ),
            },
        ));
    };
    if str_at(desc, "mediaType") != Some(MANIFEST) {
        return Err(bad(
            dir,
            "index.json: the manifest's mediaType is not an OCI image manifest",
        ));
    }
    let manifest_bytes = blob(dir, desc, "manifest")?;
    let manifest: Value = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| bad(dir, format!("manifest is not JSON: {e}")))?;
    if manifest.get("schemaVersion").and_then(Value::as_u64) != Some(2)
        || str_at(&manifest, "mediaType").is_some_and(|m| m != MANIFEST)
    {
        return Err(bad(
            dir,
            "manifest: not an OCI image manifest (schemaVersion 2)",
        ));
    }
    let config_desc = manifest.get("config").cloned().unwrap_or(Value::Null);
    let config = blob(dir, &config_desc, "config")?;
    let layers = manifest
        .get("layers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut layer_blobs = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        layer_blobs.push((
            str_at(l, "mediaType").unwrap_or("").to_owned(),
            blob(dir, l, &format!("layer {i}"))?,
        ));
    }
    let (variant, module) = match (str_at(&config_desc, "mediaType"), layer_blobs.as_slice()) {
        (Some(IMAGE_CONFIG), [(mt, layer)]) if mt == TAR_GZIP_LAYER => {
            if manifest
                .pointer("/annotations")
                .and_then(|a| str_at(a, VARIANT_ANNOTATION))
                != Some("compat")
            {
                return Err(bad(
                    dir,
                    format!(
                        "manifest: a compat image with an OCI layer needs the annotation {VARIANT_ANNOTATION}: compat"
                    ),
                ));
            }
            let tar = archive::gunzip(layer).map_err(|e| bad(dir, format!("layer 0: {e}")))?;
            let config: Value = serde_json::from_slice(&config)
                .map_err(|e| bad(dir, format!("config is not JSON: {e}")))?;
            if config.pointer("/rootfs/diff_ids/0").and_then(Value::as_str)
                != Some(format!("sha256:{}", sha256_hex(&tar)).as_str())
            {
                return Err(bad(
                    dir,
                    "config: rootfs.diff_ids[0] is not the layer's uncompressed digest",
                ));
            }
            let entries = archive::untar(&tar).map_err(|e| bad(dir, format!("layer 0: {e}")))?;
            let module = entries
                .into_iter()
                .find(|e| {
                    Path::new(&e.path)
                        .file_name()
                        .is_some_and(|n| n == PLUGIN_FILE)
                })
                .ok_or_else(|| bad(dir, format!("layer 0 holds no {PLUGIN_FILE}")))?
                .data;
            (Variant::Compat, module)
        }
        (Some(WASM_CONFIG), [_, _]) => {
            let module = layer_blobs
                .iter()
                .find(|(mt, _)| mt == WASM_LAYER)
                .map(|(_, b)| b.clone())
                .ok_or_else(|| bad(dir, format!("no layer of mediaType {WASM_LAYER}")))?;
            if !layer_blobs.iter().any(|(mt, _)| mt == WASM_CONFIG) {
                return Err(bad(dir, format!("no layer of mediaType {WASM_CONFIG}")));
            }
            (Variant::Wasm, module)
        }
        (mt, _) => {
            return Err(bad(
                dir,
                format!(
                    "manifest: config {mt:?} with {} layer(s) is neither the compat variant (image config, one tar+gzip layer) nor the wasm variant (wasm config, two layers)",
                    layer_blobs.len()
                ),
            ));
        }
    };
    if module.get(..4) != Some(b"\0asm") {
        return Err(bad(dir, "the module does not start with the wasm magic"));
    }
    Ok(Inspected {
        manifest_digest: sha256_hex(&manifest_bytes),
        module_sha256: sha256_hex(&module),
        module_size: module.len(),
        variant,
        tag: tag_of(desc),
    })
}

/// `oci://REPOSITORY@sha256:<manifest>`: `url`'s repository (its tag or
/// digest dropped) pinned to the image digest.
pub fn pinned_url(url: &str, manifest_digest: &str) -> Option<String> {
    let rest = url.strip_prefix("oci://")?;
    let repo = rest.split('@').next().unwrap_or(rest);
    // A tag is a ':' after the last '/' (a ':' before it is a registry port).
    let slash = repo.rfind('/').map_or(0, |i| i.saturating_add(1));
    let repo = match repo.get(slash..).and_then(|last| last.find(':')) {
        Some(colon) => repo.get(..slash.saturating_add(colon)).unwrap_or(repo),
        None => repo,
    };
    (!repo.is_empty()).then(|| format!("oci://{repo}@sha256:{manifest_digest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULE: &[u8] = b"\0asm\x01\0\0\0 exports proxy_abi_version_0_2_1 ...";

    #[test]
    fn both_variants_are_deterministic_and_verify() {
        for variant in [Variant::Compat, Variant::Wasm] {
            let a = build(MODULE, variant, "0.1.0").unwrap();
            let b = build(MODULE, variant, "0.1.0").unwrap();
            assert_eq!(a.tarball().unwrap(), b.tarball().unwrap());
            assert_eq!(a.module_sha256, sha256_hex(MODULE));
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("img");
            write(&a, &dir).unwrap();
            let seen = inspect(&dir, Some("0.1.0")).unwrap();
            assert_eq!(seen.manifest_digest, a.manifest_digest);
            assert_eq!(seen.module_sha256, a.module_sha256);
            assert_eq!(seen.variant, variant);
            // A changed byte in any blob is caught.
            let path = dir.join(format!("blobs/sha256/{}", a.manifest_digest));
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[0] ^= 1;
            std::fs::write(&path, bytes).unwrap();
            assert!(inspect(&dir, None).is_err());
        }
    }

    #[test]
    fn the_abi_version_comes_from_the_module() {
        assert_eq!(abi_versions(MODULE), ["v0.2.1"]);
        assert!(abi_versions(b"\0asm").is_empty());
    }

    #[test]
    fn pinned_urls_drop_the_tag_and_keep_a_registry_port() {
        let d = "ab".repeat(32);
        assert_eq!(
            pinned_url("oci://ghcr.io/acme/sticky:0.1.0", &d).unwrap(),
            format!("oci://ghcr.io/acme/sticky@sha256:{d}")
        );
        assert_eq!(
            pinned_url("oci://localhost:5000/sticky", &d).unwrap(),
            format!("oci://localhost:5000/sticky@sha256:{d}")
        );
        assert_eq!(
            pinned_url(&format!("oci://r.io/s@sha256:{}", "0".repeat(64)), &d).unwrap(),
            format!("oci://r.io/s@sha256:{d}")
        );
        assert_eq!(pinned_url("file:///x.wasm", &d), None);
    }

    #[test]
    fn not_a_module_or_a_bad_tag_is_refused() {
        assert!(build(b"hello", Variant::Compat, "1").is_err());
        assert!(build(MODULE, Variant::Compat, "-x").is_err());
        assert!(build(MODULE, Variant::Compat, "a/b").is_err());
    }
}
