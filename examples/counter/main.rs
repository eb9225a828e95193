//! `sticky-counter`: the stateful gRPC demo service (a counter per session,
//! in memory). `sticky-counter --name v1-0 --version v1 --listen 127.0.0.1:0`
//! prints `listening on ADDR` and serves h2c gRPC until killed.

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args = match sticky_examples::ServiceArgs::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "sticky-counter: {e}\nusage: sticky-counter --name NAME --version VERSION --listen ADDR"
            );
            return std::process::ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sticky-counter: cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!("listening on {addr}");
    eprintln!(
        "sticky-counter {} (version {}) serving gRPC sticky.demo.Counter on {addr}",
        args.identity.name, args.identity.version
    );
    match sticky_examples::counter::serve(listener, args.identity).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sticky-counter: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
