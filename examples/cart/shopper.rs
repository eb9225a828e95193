//! `sticky-shopper`: a browser-like client. Keeps a cookie jar (sticky's
//! cookie and the cart's own), adds items through Envoy, and prints which
//! instance answered each time. Exits non-zero if the cart was ever lost.
//!
//! `sticky-shopper --envoy 127.0.0.1:10000 [--items 5]`

const ITEMS: [&str; 5] = ["apple", "pear", "plum", "fig", "kiwi"];

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(envoy) = sticky_examples::flag(&args, "--envoy").and_then(|a| a.parse().ok()) else {
        eprintln!("usage: sticky-shopper --envoy HOST:PORT [--items N]");
        return std::process::ExitCode::from(2);
    };
    let n: usize = sticky_examples::flag(&args, "--items")
        .and_then(|n| n.parse().ok())
        .unwrap_or(5)
        .clamp(1, 1000);
    let session = match sticky_examples::client::CartSession::new(envoy) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sticky-shopper: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut lost = false;
    for i in 0..n {
        let item = ITEMS.get(i % ITEMS.len()).copied().unwrap_or("apple");
        match session.add(item).await {
            Ok(v) => {
                lost |= v.state == "lost" || v.items.len() != i + 1;
                println!(
                    "add {item:<5} → {} ({}) cart {} [{}] {}",
                    v.instance,
                    v.version,
                    v.cart,
                    v.items.join(", "),
                    v.state
                );
            }
            Err(e) => {
                eprintln!("sticky-shopper: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    println!("cookie jar: {}", session.cookies());
    if lost {
        println!("the cart was lost on the way");
        std::process::ExitCode::FAILURE
    } else {
        println!("every request reached the instance holding the cart");
        std::process::ExitCode::SUCCESS
    }
}
