//! `sticky-cart`: the stateful HTTP demo service (a shopping cart per session,
//! in memory). `sticky-cart --name v1-0 --version v1 --listen 127.0.0.1:0`
//! prints `listening on ADDR` and serves until killed.

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    sticky_examples::run_service(
        "sticky-cart",
        "http://{addr}/",
        sticky_examples::cart::serve,
    )
    .await
}
