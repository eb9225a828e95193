//! examples/compose: the committed Envoy files are exactly what the renderer
//! produces, every instance address agrees with docker-compose.yml, and Envoy
//! 1.40 validates both bootstraps (`envoy --mode validate`). Docker itself is
//! not run here. Regenerate the files with
//! `STICKY_BLESS=1 cargo test -p sticky-examples --test compose`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::process::Command;

use sticky_examples::compose::{self, CONTAINER_ROOT, INSTANCES};

#[test]
fn committed_compose_files_are_the_rendered_ones() {
    if std::env::var_os("STICKY_BLESS").is_some() {
        compose::write_all().unwrap();
    }
    let dir = compose::compose_dir();
    for f in compose::render().unwrap() {
        let on_disk = std::fs::read_to_string(dir.join(&f.path)).unwrap_or_default();
        assert!(
            on_disk == f.content,
            "examples/compose/{} is stale: run `STICKY_BLESS=1 cargo test -p sticky-examples --test compose`",
            f.path
        );
    }
}

#[test]
fn compose_file_names_every_instance_at_its_eds_address() {
    let yml = std::fs::read_to_string(compose::compose_dir().join("docker-compose.yml")).unwrap();
    assert!(yml.contains("image: envoyproxy/envoy:v1.40.0"));
    for i in INSTANCES {
        let kind = match i.kind {
            sticky_examples::instance::Kind::Cart => "cart",
            sticky_examples::instance::Kind::Counter => "counter",
        };
        let service = format!("{kind}-{}:", i.name);
        let start = yml
            .find(&service)
            .unwrap_or_else(|| panic!("no service {service}"));
        let block: String = yml[start..].lines().take(8).collect::<Vec<_>>().join("\n");
        assert!(
            block.contains(&format!("ipv4_address: {}", i.ip)),
            "{block}"
        );
        assert!(
            block.contains(&format!(
                "\"--name\", \"{}\", \"--version\", \"{}\"",
                i.name, i.version
            )),
            "{block}"
        );
    }
}

#[test]
fn envoy_validates_both_compose_bootstraps() {
    let a = common::artifacts();
    // `--mode validate` insists that the EDS files and the wasm exist, so the
    // container paths are mapped into a scratch copy; nothing else changes.
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("sticky");
    for f in compose::render().unwrap() {
        let path = root.join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &f.content).unwrap();
    }
    std::fs::copy(&a.wasm, root.join("sticky.wasm")).unwrap();
    for name in ["envoy-cart.json", "envoy-counter.json"] {
        let text = std::fs::read_to_string(compose::compose_dir().join(name)).unwrap();
        assert!(text.contains(CONTAINER_ROOT));
        let mapped = text.replace(CONTAINER_ROOT, &root.display().to_string());
        let file = scratch.path().join(name);
        std::fs::write(&file, mapped).unwrap();
        let out = Command::new(&a.envoy)
            .args(["--mode", "validate", "-c"])
            .arg(&file)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name} rejected by Envoy:\n{log}");
        assert!(stdout.contains("' OK"), "{name}: {stdout}");
        // Validation loads the wasm too: sticky must accept its plugin config.
        assert!(
            log.contains("sticky 0.") && log.contains("configured"),
            "{name}: {log}"
        );
    }
}
