//! The cart's web page in a real browser (headless Chromium, Debian's
//! `chromium`) through Envoy + sticky: the page and every request its script
//! makes reach the instance holding the cart. Skips with a message when
//! Chromium is absent, except under `make` or CI, where it must run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use sticky_examples::instance::Kind;
use sticky_examples::stage::{Mode, Stage, StageSpec};

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STICKY_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    })
}

fn must_run() -> bool {
    ["MAKELEVEL", "CI", "STICKY_REQUIRE_CHROMIUM"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// Loads `url` in a fresh headless Chromium and returns the DOM after the
/// page's script ran (virtual time lets every fetch finish first).
fn dump_dom(chromium: &PathBuf, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Bounded: kill Chromium by its PID if it hangs.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    out
}

fn attr(dom: &str, name: &str) -> String {
    let key = format!("data-{name}=\"");
    dom.find(&key)
        .map(|i| &dom[i + key.len()..])
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn browser_keeps_its_cart_on_the_instance_that_served_the_page() {
    let Some(chromium) = chromium() else {
        assert!(
            !must_run(),
            "chromium not found: `make setup` installs Debian's chromium (or set STICKY_CHROMIUM)"
        );
        eprintln!("SKIPPED: chromium not found (apt-get install chromium, or set STICKY_CHROMIUM)");
        return;
    };
    let spec = StageSpec {
        kind: Kind::Cart,
        mode: Mode::Sticky,
        clusters: vec![("v1".into(), 90, 2), ("v2".into(), 10, 1)],
        listen_port: 0,
    };
    let stage = Stage::start(&spec, &common::artifacts()).unwrap_or_else(|e| panic!("{e}"));
    let mut pages = Vec::new();
    for _ in 0..2 {
        let dom = dump_dom(
            &chromium,
            &format!("http://{}/?add=apple,pear,plum,fig", stage.addr()),
        );
        assert_eq!(
            attr(&dom, "done"),
            "yes",
            "the page's script did not finish:\n{dom}"
        );
        let page = attr(&dom, "page");
        assert!(!page.is_empty() && page != "__INSTANCE__", "{dom}");
        assert_eq!(attr(&dom, "items"), "apple,pear,plum,fig", "{dom}");
        assert_eq!(attr(&dom, "seen"), [page.as_str(); 4].join(","), "{dom}");
        assert_eq!(attr(&dom, "state"), "kept", "{dom}");
        pages.push(page);
    }
    assert!(stage.wasm_failures().is_empty());
}
