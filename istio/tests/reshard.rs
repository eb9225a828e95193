//! `stickyctl reshard`: the shares it reports are the filter's own mapping
//! (checked here against `sticky_core::shard` directly), they match the
//! theory, and the updated plugin config carries the new shard clusters and
//! the reshard deadline.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{fails, golden, ok, run};
use sticky_core::shard::{fnv1a64, shard_of};

/// The percentage in the report's row starting with `row`.
fn percent(report: &str, row: &str) -> f64 {
    let line = report
        .lines()
        .find(|l| l.starts_with(row))
        .unwrap_or_else(|| panic!("no row {row:?} in\n{report}"));
    let cell = line.split('|').nth(2).unwrap().trim();
    cell.split('%').next().unwrap().parse().unwrap()
}

#[test]
fn sample_report_matches_the_filters_mapping_and_the_theory() {
    let out = ok(&["reshard", "--from", "4", "--to", "5", "--sample", "20000"]);
    golden("reshard-4-5.txt", &out);
    let keys: Vec<String> = (0..20_000).map(|i| format!("account-{i}")).collect();
    let jump = keys
        .iter()
        .filter(|k| shard_of(k.as_bytes(), 4) != shard_of(k.as_bytes(), 5))
        .count() as f64
        / keys.len() as f64;
    let modulo = keys
        .iter()
        .filter(|k| fnv1a64(k.as_bytes()) % 4 != fnv1a64(k.as_bytes()) % 5)
        .count() as f64
        / keys.len() as f64;
    let reported_jump = percent(&out, "| sticky: jump");
    let reported_mod = percent(&out, "| FNV-1a mod N");
    assert!((reported_jump - jump * 100.0).abs() < 0.006, "{out}");
    assert!((reported_mod - modulo * 100.0).abs() < 0.006, "{out}");
    assert!((reported_jump - 20.0).abs() < 1.0, "theory 1 - 4/5: {out}");
    assert!((reported_mod - 80.0).abs() < 1.0, "theory 1 - 4/20: {out}");
    assert!(out.contains("moved keys go to shard 4: "), "{out}");
    assert!(out.contains("(the new shards only)"), "{out}");
}

#[test]
fn shrinking_moves_only_the_removed_shards_keys() {
    let out = ok(&["reshard", "--from", "6", "--to", "4", "--sample", "30000"]);
    let jump = percent(&out, "| sticky: jump");
    assert!((jump - 100.0 / 3.0).abs() < 1.0, "theory 1 - 4/6: {out}");
    assert!(out.contains("| 33.33% (1 - 4/6) |"), "{out}");
    assert!(out.contains("| 66.67% (1 - 4/12) |"), "{out}");
    assert!(out.contains("moved keys come from shard 4: "), "{out}");
    assert!(out.contains("shard 5: "), "{out}");
    assert!(out.contains("(the removed shards only)"), "{out}");
}

#[test]
fn a_keys_file_is_read_as_the_filter_sees_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("keys.txt");
    // Blank lines are no key; surrounding spaces and CRLF are trimmed.
    let mut text = String::from("\n  \r\n");
    for i in 0..1000 {
        text.push_str(&format!("  tenant-{i}\t\r\n"));
    }
    std::fs::write(&path, text).unwrap();
    let out = ok(&[
        "reshard",
        "--from",
        "3",
        "--to",
        "4",
        "--keys",
        path.to_str().unwrap(),
    ]);
    assert!(
        out.starts_with("resharding 3 -> 4 shards, 1000 keys (keys from "),
        "{out}"
    );
    let moved = (0..1000)
        .map(|i| format!("tenant-{i}"))
        .filter(|k| shard_of(k.as_bytes(), 3) != shard_of(k.as_bytes(), 4))
        .count();
    assert!(
        out.contains(&format!("% ({moved}) | 25.00% (1 - 3/4) |")),
        "{moved} moved:\n{out}"
    );
    std::fs::write(&path, "\n \n").unwrap();
    let err = fails(
        &[
            "reshard",
            "--from",
            "3",
            "--to",
            "4",
            "--keys",
            path.to_str().unwrap(),
        ],
        1,
    );
    assert!(err.contains("holds no key (one key per line)"), "{err}");
}

#[test]
fn the_updated_plugin_config_has_m_shards_and_the_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("envoy");
    ok(&[
        "render",
        "envoy",
        "-p",
        "policy-sharded.yaml",
        "-r",
        "route-sharded.yaml",
        "--keys",
        "keys.json",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let plugin = dir.join("plugin.json");
    let out = run(&[
        "reshard",
        "--from",
        "4",
        "--to",
        "5",
        "--config",
        plugin.to_str().unwrap(),
        "--drain",
        "600",
        "--now",
        "1800000000",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    golden("reshard-plugin.json", &stdout);
    // The report goes to stderr, so stdout is the config alone.
    assert!(stderr.contains("resharding 4 -> 5 shards"), "{stderr}");
    assert!(
        stderr.contains("reshard_deadline 1800000600 (now + 600 s)"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["sharding"]["clusters"][4], "shard-4");
    assert_eq!(v["sharding"]["reshard_deadline"], 1_800_000_600_u64);
    stickyctl::plugin::check(&v).unwrap();
    // Everything else is as it was.
    let mut before: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plugin).unwrap()).unwrap();
    before["sharding"] = v["sharding"].clone();
    assert_eq!(before, v);
    // Without --drain the deadline is removed again.
    let tmp_cfg = tmp.path().join("next.json");
    std::fs::write(&tmp_cfg, &stdout).unwrap();
    let again = ok(&[
        "reshard",
        "--from",
        "5",
        "--to",
        "5",
        "--config",
        tmp_cfg.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert!(v["sharding"].get("reshard_deadline").is_none(), "{again}");
}

#[test]
fn a_wasm_plugin_is_resharded_in_place_with_istio_cluster_names() {
    let stream = ok(&[
        "render",
        "istio",
        "-p",
        "policy-sharded.yaml",
        "-r",
        "route-sharded.yaml",
        "--keys",
        "keys.json",
        "--url",
        "oci://r/sticky:1",
    ]);
    let wp = common::yaml_docs(&stream)
        .into_iter()
        .find(|d| d["kind"] == "WasmPlugin")
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("wasmplugin.yaml");
    std::fs::write(&path, stickyctl::yaml::to_yaml(&wp).unwrap()).unwrap();
    let out = ok(&[
        "reshard",
        "--from",
        "4",
        "--to",
        "6",
        "--config",
        path.to_str().unwrap(),
        "--drain",
        "30",
        "--now",
        "100",
    ]);
    let v = &common::yaml_docs(&out)[0];
    assert_eq!(v["kind"], "WasmPlugin");
    let sharding = &v["spec"]["pluginConfig"]["sharding"];
    assert_eq!(
        sharding["clusters"][5],
        "outbound|8080|shard-5|accounts.bank.svc.cluster.local"
    );
    assert_eq!(sharding["reshard_deadline"], 130);
}

#[test]
fn reshard_errors_name_the_file_or_the_flag() {
    let err = fails(&["reshard", "--from", "0", "--to", "5"], 2);
    assert!(err.contains("0 is not in 1..=1024"), "{err}");
    let err = fails(&["reshard", "--from", "4", "--to", "5", "--drain", "60"], 2);
    assert!(err.contains("--config"), "{err}");
    let err = fails(
        &[
            "reshard",
            "--from",
            "4",
            "--to",
            "5",
            "--config",
            "keys.json",
        ],
        1,
    );
    assert!(err.contains("keys.json: no `sharding` here"), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("p.json");
    std::fs::write(
        &path,
        "{\n  \"clusters\": [\"v1\"],\n  \"sharding\": {\n    \"clusters\": [\"a\", \"b\"]\n  }\n}\n",
    )
    .unwrap();
    let err = fails(
        &[
            "reshard",
            "--from",
            "3",
            "--to",
            "5",
            "--config",
            path.to_str().unwrap(),
        ],
        1,
    );
    assert!(
        err.contains(
            "p.json:4: field `sharding.clusters`: holds 2 shard clusters, but --from says 3"
        ),
        "{err}"
    );
    let err = fails(
        &[
            "reshard",
            "--from",
            "2",
            "--to",
            "5",
            "--config",
            path.to_str().unwrap(),
        ],
        1,
    );
    assert!(
        err.contains("p.json:4: field `sharding.clusters`: the shard clusters do not follow one naming pattern"),
        "{err}"
    );
}
