use sticky_host_tests::profile::Cost;

use super::{callers, diff, load, save, table};
use crate::paths::Measured;

fn cost(calls: u64, inclusive: u64, own: u64) -> Cost {
    Cost {
        calls,
        inclusive,
        own,
    }
}

fn measured(fuel: u64, functions: &[(&str, Cost)]) -> Measured {
    Measured {
        streams: 10,
        fuel,
        functions: functions
            .iter()
            .map(|(n, c)| ((*n).to_owned(), *c))
            .collect(),
        edges: Default::default(),
    }
}

#[test]
fn a_saved_profile_loads_back_the_same() {
    let m = measured(
        200_000,
        &[
            ("sticky_core::filter::on_request", cost(10, 140_000, 5_000)),
            ("<a as b>::c\twith a tab", cost(25, 3_000, 3_000)),
        ],
    );
    let dir = std::env::temp_dir().join(format!("fuel-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pinned.tsv");
    save(&file, &m).unwrap();
    assert_eq!(load(&file).unwrap(), m);
    std::fs::write(&file, "streams\tten\tfuel\t1\n").unwrap();
    assert!(load(&file).unwrap_err().contains("pinned.tsv:1"));
    std::fs::write(&file, "streams\t1\tfuel\t1\n1\t2\n").unwrap();
    assert!(load(&file).unwrap_err().contains("pinned.tsv:2"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_table_is_per_stream_and_ordered_by_inclusive_cost() {
    let m = measured(
        200_000,
        &[
            ("leaf", cost(25, 3_000, 3_000)),
            ("root", cost(10, 140_000, 5_000)),
        ],
    );
    let text = table("pinned", &m, 10);
    assert!(text.starts_with("pinned: 20000 fuel per stream (10 streams"));
    let root = text.find("     1.0      14000        500  root").unwrap();
    let leaf = text.find("     2.5        300        300  leaf").unwrap();
    assert!(root < leaf, "{text}");
    assert!(!table("pinned", &m, 1).contains("leaf"));
}

#[test]
fn the_difference_lists_what_changed_most_first_and_skips_the_rest() {
    let old = measured(
        200_000,
        &[
            ("same", cost(10, 1_000, 1_000)),
            ("grew", cost(10, 9_000, 2_000)),
            ("gone", cost(10, 500, 500)),
        ],
    );
    let new = measured(
        203_000,
        &[
            ("same", cost(10, 1_000, 1_000)),
            ("grew", cost(10, 12_000, 5_000)),
            ("new", cost(20, 100, 100)),
        ],
    );
    let text = diff("pinned", &old, &new, 10);
    assert!(
        text.starts_with("pinned: 20000 -> 20300 fuel per stream (+300)"),
        "{text}"
    );
    let lines: Vec<&str> = text.lines().skip(2).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("   +300") && lines[0].ends_with("grew"),
        "{text}"
    );
    assert!(lines[0].contains("200->500") && lines[0].contains("900->1200"));
    assert!(
        lines[1].starts_with("    -50") && lines[1].ends_with("gone"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("    +10") && lines[2].contains("0.0->2.0"),
        "{text}"
    );
}

#[test]
fn callers_are_listed_costliest_first() {
    let mut m = measured(100_000, &[("memcmp", cost(30, 9_000, 9_000))]);
    m.edges
        .insert(("cheap".into(), "memcmp".into()), cost(10, 1_000, 0));
    m.edges
        .insert(("dear".into(), "memcmp".into()), cost(20, 8_000, 0));
    m.edges
        .insert(("dear".into(), "other".into()), cost(1, 5, 0));
    let text = callers(&m, "memc");
    assert!(text.starts_with("callers of memcmp:"), "{text}");
    let dear = text.find("     2.0        800  dear").unwrap();
    let cheap = text.find("     1.0        100  cheap").unwrap();
    assert!(dear < cheap && !text.contains("other"), "{text}");
    assert!(callers(&m, "nothing").starts_with("no function named like `nothing`"));
}
