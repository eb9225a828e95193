//! `stickyctl image`: the OCI image layout of dist/sticky.wasm is valid (read
//! back by an independent reader — Python's standard library — and by skopeo
//! when installed), reproducible to the byte, and `render istio
//! --wasm-image-dir` pins the WasmPlugin to exactly that image.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fails, ok, run};
use sha2::{Digest as _, Sha256};

fn wasm() -> PathBuf {
    let p = std::env::var_os("STICKY_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::crate_dir().join("../dist/sticky.wasm"));
    assert!(p.exists(), "{} missing: run `make wasm`", p.display());
    p
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `image build` into `dir`; returns (manifest digest, module sha256) as printed.
fn build(dir: &Path, extra: &[&str]) -> (String, String) {
    let w = wasm();
    let mut args = vec![
        "image",
        "build",
        "--wasm",
        w.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = ok(&args);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|l| l.trim().strip_prefix("sha256:"))
            .map(|l| l.split(' ').next().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no {name} line in\n{out}"))
    };
    (field("manifest"), field("module"))
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn two_builds_give_identical_bytes_and_the_printed_digests() {
    let module = std::fs::read(wasm()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for variant in ["compat", "wasm"] {
        let a = tmp.path().join(format!("a-{variant}"));
        let b = tmp.path().join(format!("elsewhere/b-{variant}"));
        let (digest_a, module_a) = build(&a, &["--variant", variant]);
        let (digest_b, _) = build(&b, &["--variant", variant]);
        assert_eq!(digest_a, digest_b, "{variant}");
        assert_eq!(module_a, hex(&module), "the module's own sha256");
        assert_eq!(files(&a), files(&b), "{variant}: every file byte-identical");
        let tar_a = std::fs::read(tmp.path().join(format!("a-{variant}.tar"))).unwrap();
        let tar_b = std::fs::read(tmp.path().join(format!("elsewhere/b-{variant}.tar"))).unwrap();
        assert_eq!(tar_a, tar_b, "{variant}: tarballs byte-identical");
        // The manifest digest is the manifest blob's sha256.
        let manifest = std::fs::read(a.join("blobs/sha256").join(&digest_a)).unwrap();
        assert_eq!(hex(&manifest), digest_a);
        // A rebuild over an existing layout leaves no stale blob behind.
        build(&a, &["--variant", variant]);
        assert_eq!(files(&a), files(&b));
    }
}

const PY_CHECK: &str = r#"
import gzip, hashlib, io, json, os, sys, tarfile
layout, tarball, module_path = sys.argv[1:4]
module = open(module_path, "rb").read()
assert json.load(open(os.path.join(layout, "oci-layout"))) == {"imageLayoutVersion": "1.0.0"}
def blob(d):
    algo, h = d["digest"].split(":")
    assert algo == "sha256"
    data = open(os.path.join(layout, "blobs", "sha256", h), "rb").read()
    assert hashlib.sha256(data).hexdigest() == h, d
    assert len(data) == d["size"], d
    return data
for name in os.listdir(os.path.join(layout, "blobs", "sha256")):
    data = open(os.path.join(layout, "blobs", "sha256", name), "rb").read()
    assert hashlib.sha256(data).hexdigest() == name, name
index = json.load(open(os.path.join(layout, "index.json")))
assert index["schemaVersion"] == 2 and index["mediaType"] == "application/vnd.oci.image.index.v1+json"
[desc] = index["manifests"]
assert desc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
manifest = json.loads(blob(desc))
assert manifest["schemaVersion"] == 2
config = blob(manifest["config"])
layers = manifest["layers"]
if manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json":
    assert manifest["annotations"]["module.wasm.image/variant"] == "compat"
    [layer] = layers
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    raw = gzip.decompress(blob(layer))
    cfg = json.loads(config)
    assert cfg["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(raw).hexdigest()]
    assert cfg["architecture"] == "wasm" and cfg["os"] == "wasip1"
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        [m] = t.getmembers()
        assert m.name == "plugin.wasm" and m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.mode == 0o644
        assert t.extractfile(m).read() == module
else:
    assert manifest["config"]["mediaType"] == "application/vnd.module.wasm.config.v1+json"
    assert len(layers) == 2
    [wasm] = [l for l in layers if l["mediaType"] == "application/vnd.module.wasm.content.layer.v1+wasm"]
    assert blob(wasm) == module
    rc = json.loads(config)
    assert rc["type"] == "envoy_proxy" and rc["abiVersions"], rc
with tarfile.open(tarball) as t:
    names = t.getnames()
    assert names == sorted(names), names
    for m in t.getmembers():
        assert m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.uname == "" and m.gname == "", m.name
    for n in names:
        if not n.endswith("/") and t.getmember(n).isfile():
            assert t.extractfile(n).read() == open(os.path.join(layout, n), "rb").read(), n
print("ok", desc["digest"])
"#;

#[test]
fn the_layout_and_tarball_read_back_with_an_independent_reader() {
    let Ok(py) = Command::new("python3").arg("--version").output() else {
        common::skip("no python3 for the independent check");
        return;
    };
    assert!(py.status.success());
    let tmp = tempfile::tempdir().unwrap();
    for variant in ["compat", "wasm"] {
        let dir = tmp.path().join(variant);
        let (digest, _) = build(&dir, &["--variant", variant]);
        let out = Command::new("python3")
            .args(["-c", PY_CHECK])
            .arg(&dir)
            .arg(tmp.path().join(format!("{variant}.tar")))
            .arg(wasm())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{variant}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("ok sha256:{digest}")
        );
    }
}

#[test]
fn skopeo_copies_the_image_with_its_digest() {
    if Command::new("skopeo").arg("--version").output().is_err() {
        common::skip("skopeo is not installed (make tools installs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for variant in ["compat", "wasm"] {
        let dir = tmp.path().join(variant);
        let (digest, _) = build(&dir, &["--variant", variant, "--tag", "1.2.3"]);
        let tarball = tmp.path().join(format!("{variant}.tar"));
        for (source, dest) in [
            (format!("oci:{}:1.2.3", dir.display()), "from-dir"),
            (
                format!("oci-archive:{}:1.2.3", tarball.display()),
                "from-tar",
            ),
        ] {
            let dest = tmp.path().join(format!("{variant}-{dest}"));
            let out = Command::new("skopeo")
                .args(["copy", "--preserve-digests", &source])
                .arg(format!("dir:{}", dest.display()))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{source}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let manifest = std::fs::read(dest.join("manifest.json")).unwrap();
            assert_eq!(
                hex(&manifest),
                digest,
                "{source}: the digest survives the copy"
            );
        }
    }
}

#[test]
fn render_istio_pins_the_wasm_plugin_to_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("img");
    let (digest, module_sha) = build(&dir, &[]);
    let render = |url: &str| {
        let out = run(&[
            "render",
            "istio",
            "-p",
            "policy.yaml",
            "-r",
            "route.yaml",
            "--keys",
            "keys.json",
            "--url",
            url,
            "--wasm-image-dir",
            dir.to_str().unwrap(),
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let docs = common::yaml_docs(&String::from_utf8(out.stdout).unwrap());
        let wp = docs
            .into_iter()
            .find(|d| d["kind"] == "WasmPlugin")
            .unwrap();
        (wp, String::from_utf8(out.stderr).unwrap())
    };
    // oci://: Istio checks sha256 against the pulled image's manifest digest.
    let (wp, stderr) = render("oci://ghcr.io/acme/sticky:0.1.0");
    assert_eq!(wp["spec"]["sha256"], digest);
    assert_eq!(
        wp["spec"]["url"],
        format!("oci://ghcr.io/acme/sticky@sha256:{digest}")
    );
    assert!(
        stderr.contains(&format!("module sha256 {module_sha}")),
        "{stderr}"
    );
    // file:// and http(s)://: the module's own sha256, which is dist/sticky.wasm's.
    let (wp, _) = render("file:///var/lib/sticky/sticky.wasm");
    assert_eq!(wp["spec"]["sha256"], module_sha);
    assert_eq!(module_sha, hex(&std::fs::read(wasm()).unwrap()));
    assert_eq!(wp["spec"]["url"], "file:///var/lib/sticky/sticky.wasm");
    // The module in the image is the module the sha256 names.
    let inspected = ok(&["image", "inspect", dir.to_str().unwrap()]);
    assert!(
        inspected.contains(&format!("module   sha256:{module_sha}")),
        "{inspected}"
    );
    assert!(
        inspected.contains(&format!("manifest sha256:{digest}")),
        "{inspected}"
    );
}

#[test]
fn inspect_refuses_a_tampered_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("img");
    let (digest, _) = build(&dir, &[]);
    let blob = dir.join("blobs/sha256").join(&digest);
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 2;
    bytes[last] = b' ';
    std::fs::write(&blob, bytes).unwrap();
    let err = fails(&["image", "inspect", dir.to_str().unwrap()], 1);
    assert!(err.contains("does not hash to its name"), "{err}");
    // Not a layout stickyctl wrote: it is never overwritten.
    let other = tmp.path().join("notes");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("todo.txt"), "keep me").unwrap();
    let w = wasm();
    let err = fails(
        &[
            "image",
            "build",
            "--wasm",
            w.to_str().unwrap(),
            "--out",
            other.to_str().unwrap(),
        ],
        1,
    );
    assert!(err.contains("is no OCI image layout"), "{err}");
    assert!(other.join("todo.txt").exists());
    let err = fails(
        &[
            "image",
            "build",
            "--wasm",
            "keys.json",
            "--out",
            dir.to_str().unwrap(),
        ],
        1,
    );
    assert!(err.contains("wasm magic"), "{err}");
}

#[test]
fn the_digests_of_a_given_module_never_drift() {
    // A fixed stand-in module: if these digests change, every published
    // image's digest changes with them; bless only on purpose.
    let module = b"\0asm\x01\0\0\0\x07\x1b\x01\x17proxy_abi_version_0_2_1\0\0";
    let mut text = String::new();
    for variant in [
        stickyctl::image::Variant::Compat,
        stickyctl::image::Variant::Wasm,
    ] {
        let layout = stickyctl::image::build(module, variant, "0.1.0").unwrap();
        text.push_str(&format!(
            "{}: manifest sha256:{} module sha256:{} tarball sha256:{}\n",
            variant.name(),
            layout.manifest_digest,
            layout.module_sha256,
            hex(&layout.tarball().unwrap()),
        ));
    }
    common::golden("image-digests.txt", &text);
}
