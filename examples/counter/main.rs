//! `sticky-counter`: the stateful gRPC demo service (a counter per session,
//! in memory). `sticky-counter --name v1-0 --version v1 --listen 127.0.0.1:0`
//! prints `listening on ADDR` and serves h2c gRPC until killed.

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    sticky_examples::run_service(
        "sticky-counter",
        "gRPC sticky.demo.Counter on {addr}",
        sticky_examples::counter::serve,
    )
    .await
}
