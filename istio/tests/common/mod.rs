//! Helpers shared by stickyctl's integration tests: run the binary, find
//! test data, compare against golden files (STICKY_BLESS=1 rewrites them).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// istio/ (this crate).
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under istio/testdata.
pub fn data(name: &str) -> String {
    crate_dir()
        .join("testdata")
        .join(name)
        .display()
        .to_string()
}

/// Runs stickyctl in istio/testdata with `args`.
pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stickyctl"))
        .args(args)
        .current_dir(crate_dir().join("testdata"))
        .output()
        .expect("run stickyctl")
}

/// stdout of a run that must succeed with `code`.
pub fn ok_with(args: &[&str], code: i32) -> String {
    let out = run(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stickyctl {args:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// stdout of a run that must succeed.
pub fn ok(args: &[&str]) -> String {
    ok_with(args, 0)
}

/// stderr of a run that must fail with `code`.
pub fn fails(args: &[&str], code: i32) -> String {
    let out = run(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stickyctl {args:?} should exit {code}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr).expect("utf-8 stderr")
}

/// Compares `actual` with istio/tests/golden/`name`; STICKY_BLESS=1 rewrites it.
pub fn golden(name: &str, actual: &str) {
    let path = crate_dir().join("tests/golden").join(name);
    if std::env::var_os("STICKY_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing golden file {} (run with STICKY_BLESS=1)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from the output (STICKY_BLESS=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// The Envoy binary, or None (tests then say so and skip).
pub fn envoy_bin() -> Option<PathBuf> {
    let p = std::env::var_os("STICKY_ENVOY")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir().join("../.venv/envoy"));
    p.exists().then_some(p)
}

/// `envoy --mode validate -c path`: Ok(()) or the log.
pub fn envoy_validate(envoy: &Path, config: &Path) -> Result<(), String> {
    envoy_validate_env(envoy, config, &[])
}

/// `envoy --mode validate -c path` with extra environment variables.
pub fn envoy_validate_env(
    envoy: &Path,
    config: &Path,
    env: &[(&str, &Path)],
) -> Result<(), String> {
    let mut cmd = Command::new(envoy);
    cmd.args([
        "--mode",
        "validate",
        "--disable-hot-restart",
        "-l",
        "error",
        "-c",
    ])
    .arg(config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Parses a YAML stream into JSON values (through stickyctl's own reader).
pub fn yaml_docs(text: &str) -> Vec<serde_json::Value> {
    stickyctl::yaml::parse_str("out.yaml", text)
        .expect("output is YAML")
        .into_iter()
        .map(|d| d.value)
        .collect()
}

/// Whether a missing test prerequisite must fail the test instead of
/// skipping it: under `make` (MAKELEVEL) and in CI (CI) a skip would let the
/// suite pass without checking anything.
pub fn must_not_skip() -> bool {
    ["MAKELEVEL", "CI", "STICKY_REQUIRE_ALL"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
}

/// Skips a test outside `make`/CI with a visible line, fails it inside.
pub fn skip(why: &str) {
    assert!(
        !must_not_skip(),
        "required under make/CI, not skipped: {why}"
    );
    eprintln!("SKIPPED: {why}");
}
