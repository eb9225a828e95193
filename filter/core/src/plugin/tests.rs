#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
use std::cell::RefCell;

use super::{Plugin, Shards, Workers};
use crate::config::wire::{OverrideHost, PluginConfig};
use crate::host::Pinning;
use crate::session::Stream;
use crate::testing::{FakeHost, json, wire};
use crate::worker::Worker;

fn load<W: Workers>(config: &PluginConfig, can_override: bool, workers: W) -> Plugin<u32, W> {
    Plugin::load(
        json(config).as_bytes(),
        can_override,
        |m| u32::try_from(m.index()).ok(),
        workers,
    )
    .unwrap()
}

fn client_sent_internals() -> FakeHost {
    FakeHost {
        request: vec![
            ("x-sticky-cluster".into(), b"v2".to_vec()),
            ("x-sticky-host".into(), b"x".to_vec()),
        ],
        ..FakeHost::default()
    }
}

#[test]
fn busy_caches_still_strip_client_sent_internal_headers() {
    let plugin = load(&wire(), false, RefCell::new(Worker::default()));
    let _held = plugin.workers.borrow_mut();
    let mut host = client_sent_internals();
    assert_eq!(plugin.on_request(0, &mut host, 1000), Stream::Fresh);
    assert!(host.request.is_empty(), "{:?}", host.request);
}

#[test]
fn busy_caches_still_issue_the_cookie() {
    let plugin = load(&wire(), false, RefCell::new(Worker::default()));
    let _held = plugin.workers.borrow_mut();
    let mut host = FakeHost {
        upstream_host: Some(b"10.0.0.1:80".to_vec()),
        upstream_cluster: Some(b"v1".to_vec()),
        ..FakeHost::default()
    };
    plugin.on_response(0, &Stream::Fresh, &mut host, 1000);
    assert_eq!(host.response_values("set-cookie").len(), 1);
}

#[test]
fn a_build_without_upstream_override_refuses_override_host() {
    let config = PluginConfig {
        override_host: Some(OverrideHost { strict: Some(true) }),
        ..wire()
    };
    let bytes = json(&config);
    let refused = Plugin::<u32, _>::load(bytes.as_bytes(), false, |_| None, Shards::new(1));
    assert_eq!(refused.unwrap_err().field, "override_host");
    let native = load(&config, true, Shards::new(1));
    assert_eq!(native.pinning, Pinning::Override { strict: true });
}

#[test]
fn workers_on_other_shards_never_contend() {
    let shards = Shards::new(4);
    let _first = shards.lock(1).unwrap();
    assert!(shards.lock(2).is_some());
    assert!(shards.lock(5).is_none(), "same shard as worker 1: busy");
}

#[test]
fn a_shard_poisoned_by_a_panic_is_reset_and_used() {
    let shards = Shards::new(2);
    shards.lock(0).unwrap().warnings.allow(100);
    let panicked = std::thread::scope(|s| {
        s.spawn(|| {
            let _locked = shards.lock(0);
            panic!("a bug while the caches are locked");
        })
        .join()
    });
    assert!(panicked.is_err());
    let mut reset = shards.lock(0).unwrap();
    assert_eq!(reset.warnings.allow(100), Some(0), "empty caches again");
    drop(reset);
    assert!(shards.lock(0).is_some(), "no longer poisoned");
}
