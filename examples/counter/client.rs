//! `sticky-counter-client`: a gRPC client that keeps its session through
//! Envoy over HTTP/2 with sticky's header mode: it reads `x-sticky-session`
//! from the response metadata and sends it back on every call. Prints which
//! instance answered; exits non-zero if the counter was ever lost.
//!
//! `sticky-counter-client --envoy 127.0.0.1:10001 [--calls 5] [--session ID]`

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(envoy) = sticky_examples::flag(&args, "--envoy").and_then(|a| a.parse().ok()) else {
        eprintln!("usage: sticky-counter-client --envoy HOST:PORT [--calls N] [--session ID]");
        return std::process::ExitCode::from(2);
    };
    let calls: i64 = sticky_examples::flag(&args, "--calls")
        .and_then(|n| n.parse().ok())
        .unwrap_or(5)
        .clamp(1, 1000);
    let id = sticky_examples::flag(&args, "--session").unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("client-{nanos:08x}")
    });
    let mut session = match sticky_examples::client::CounterSession::connect(envoy, id).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sticky-counter-client: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut lost = false;
    for i in 1..=calls {
        let sent_token = session.token.is_some();
        match session.add(1).await {
            Ok(r) => {
                lost |= r.value != i;
                println!(
                    "Add(1) → {} ({}) session {} value {}{}",
                    r.instance,
                    r.version,
                    r.session,
                    r.value,
                    if sent_token {
                        " (sent x-sticky-session)"
                    } else {
                        " (first call: got x-sticky-session)"
                    }
                );
            }
            Err(e) => {
                eprintln!("sticky-counter-client: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let token = session.token.clone().unwrap_or_default();
    println!(
        "x-sticky-session: {}… ({} chars, sealed)",
        token.chars().take(24).collect::<String>(),
        token.len()
    );
    if lost {
        println!("the counter was lost on the way");
        std::process::ExitCode::FAILURE
    } else {
        println!("every call reached the instance holding the counter");
        std::process::ExitCode::SUCCESS
    }
}
