use super::*;

#[test]
fn every_counter_has_its_own_index_and_name() {
    let all: Vec<Metric> = Metric::all().collect();
    assert_eq!(all.len(), COUNT);
    let mut indexes: Vec<usize> = all.iter().map(|m| m.index()).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..COUNT).collect::<Vec<_>>());
    let mut names: Vec<&str> = all.iter().map(|m| m.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), COUNT);
    assert!(names.iter().all(|n| n.starts_with("sticky.")));
}
