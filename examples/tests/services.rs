//! The demo services on their own (no Envoy): they keep state per session,
//! name the instance in header and body, and tell a lost session apart.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use sticky_examples::Identity;
use sticky_examples::cart::CartView;
use sticky_examples::client::{CartSession, CounterSession};
use sticky_examples::instance::Instance;

fn identity(name: &str) -> Identity {
    Identity {
        name: name.into(),
        version: "v1".into(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn cart_keeps_items_per_cookie_and_reports_a_cart_it_never_saw_as_lost() {
    let bins = common::binaries();
    let a = Instance::spawn(&bins.cart, identity("a-0")).unwrap();
    let b = Instance::spawn(&bins.cart, identity("b-0")).unwrap();
    runtime().block_on(async {
        let shopper = CartSession::new(a.addr).unwrap();
        let first = shopper.add("apple").await.unwrap();
        assert_eq!(
            (first.instance.as_str(), first.state.as_str()),
            ("a-0", "new")
        );
        let second = shopper.add("pear").await.unwrap();
        assert_eq!(second.items, ["apple", "pear"]);
        assert_eq!(second.state, "kept");
        assert_eq!(second.cart, first.cart);
        assert!(shopper.cookies().contains("cart="), "{}", shopper.cookies());

        // The same cart cookie at another instance: that instance never saw it.
        let client = reqwest::Client::new();
        let r = client
            .post(format!("http://{}/api/cart/items?item=plum", b.addr))
            .header("cookie", format!("cart={}", first.cart))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-backend"], "b-0");
        let v: CartView = r.json().await.unwrap();
        assert_eq!((v.state.as_str(), v.items.len()), ("lost", 1));

        let page = client
            .get(format!("http://{}/", a.addr))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains(r#"id="page-instance">a-0<"#),
            "page names its instance"
        );
    });
}

#[test]
fn counter_keeps_a_count_per_session_over_grpc_and_names_the_instance() {
    let bins = common::binaries();
    let a = Instance::spawn(&bins.counter, identity("a-0")).unwrap();
    let b = Instance::spawn(&bins.counter, identity("b-0")).unwrap();
    runtime().block_on(async {
        let mut s = CounterSession::connect(a.addr, "alice").await.unwrap();
        for want in 1..=3 {
            let r = s.add(1).await.unwrap();
            assert_eq!((r.instance.as_str(), r.value), ("a-0", want));
            assert_eq!(r.known, want > 1);
        }
        // Direct to an instance there is no proxy: no session token.
        assert_eq!(s.token, None);
        let mut elsewhere = CounterSession::connect(b.addr, "alice").await.unwrap();
        let r = elsewhere.add(1).await.unwrap();
        assert_eq!((r.instance.as_str(), r.value, r.known), ("b-0", 1, false));
        let mut bad = CounterSession::connect(a.addr, "").await.unwrap();
        assert!(bad.add(1).await.unwrap_err().contains("InvalidArgument"));
    });
}

#[test]
fn killed_instance_is_gone_and_its_pid_reaped() {
    let bins = common::binaries();
    let mut a = Instance::spawn(&bins.cart, identity("a-0")).unwrap();
    let pid = a.pid();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    a.kill();
    assert!(a.is_killed());
    assert!(std::net::TcpStream::connect(a.addr).is_err());
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}
