//! The fast half of the reproducible-build check (`make repro` builds twice
//! and compares; too slow for every test run): dist/sticky.wasm holds no
//! absolute path of the machine that built it. Such a path is the usual
//! reason two builds in different directories differ, and it leaks the
//! build machine's layout into every proxy that loads the module.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::path::PathBuf;

fn wasm() -> PathBuf {
    let p = std::env::var_os("STICKY_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::crate_dir().join("../dist/sticky.wasm"));
    assert!(p.exists(), "{} missing: run `make wasm`", p.display());
    p
}

/// Every occurrence of `needle` in `hay`, with a little context, as text.
fn occurrences(hay: &[u8], needle: &[u8]) -> Vec<String> {
    hay.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| {
            let end = hay[i..]
                .iter()
                .position(|b| !b.is_ascii_graphic())
                .map_or(hay.len(), |n| i + n);
            String::from_utf8_lossy(&hay[i..end.min(i + 160)]).into_owned()
        })
        .collect()
}

/// Path prefixes of this machine that must not be in the module.
fn forbidden() -> Vec<String> {
    let mut out: Vec<String> = [
        "/work/",
        "/root/",
        "/home/",
        "/tmp/",
        "/Users/",
        "/var/folders/",
    ]
    .map(str::to_owned)
    .to_vec();
    let root = common::crate_dir().join("..").canonicalize().unwrap();
    out.push(format!("{}/", root.display()));
    for var in [
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "CARGO_TARGET_DIR",
        "TMPDIR",
    ] {
        if let Some(v) = std::env::var_os(var) {
            let v = PathBuf::from(v);
            if v.is_absolute() && v.components().count() > 1 {
                out.push(format!(
                    "{}/",
                    v.display().to_string().trim_end_matches('/')
                ));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn the_module_holds_no_absolute_path_of_the_build_machine() {
    let module = std::fs::read(wasm()).unwrap();
    let mut found = Vec::new();
    for prefix in forbidden() {
        for hit in occurrences(&module, prefix.as_bytes()) {
            found.push(format!("{prefix:?}: {hit}"));
        }
    }
    assert!(
        found.is_empty(),
        "dist/sticky.wasm names paths of this machine (a --remap-path-prefix is missing from WASM_RUSTFLAGS, or CARGO_HOME/RUSTUP_HOME are not under $HOME):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scan_finds_a_planted_path() {
    let planted = b"\0asm..panicked at /home/ci/.cargo/registry/src/x.rs\0..";
    assert_eq!(
        occurrences(planted, b"/home/"),
        ["/home/ci/.cargo/registry/src/x.rs"]
    );
    assert!(forbidden().contains(&"/home/".to_owned()));
}
