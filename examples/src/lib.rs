//! sticky's examples: two stateful demo services that report which instance
//! answered (an HTTP shopping cart and a gRPC counter), the clients that keep
//! a session through Envoy (a browser-like cookie jar, a gRPC client in
//! header mode), and the scripted story that runs the same churn against no
//! affinity, Envoy's ring hash, Envoy's native stateful cookie and sticky.
//!
//! Every Envoy here runs a bootstrap rendered by `stickyctl`'s renderer, and
//! every demo instance is a real process stopped by its PID.

pub mod cart;
pub mod client;
pub mod compose;
pub mod counter;
pub mod instance;
pub mod report;
pub mod stage;
pub mod story;

/// Generated from `counter/counter.proto` by `build.rs` (tonic + prost).
#[allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
pub mod proto {
    tonic::include_proto!("sticky.demo");
}

/// Header every demo instance sets to its own name, in HTTP responses and gRPC
/// response metadata.
pub const BACKEND_HEADER: &str = "x-backend";

/// Who an instance is: its name (`v1-0`) and version (the cluster, `v1` or `v2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Instance name, unique in a demo.
    pub name: String,
    /// Version, the Envoy cluster it belongs to.
    pub version: String,
}

/// The command line every demo service takes:
/// `--name NAME --version VERSION --listen ADDR`. Prints the bound address on
/// its first stdout line (`listening on 127.0.0.1:PORT`) so a parent process
/// that passed port 0 learns the port.
#[derive(Debug, Clone)]
pub struct ServiceArgs {
    /// Who the instance is.
    pub identity: Identity,
    /// Where to listen.
    pub listen: std::net::SocketAddr,
}

impl ServiceArgs {
    /// Parses `args` (without the program name); unknown flags are an error.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut name = None;
        let mut version = None;
        let mut listen = None;
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--name" => name = Some(value),
                "--version" => version = Some(value),
                "--listen" => {
                    listen = Some(
                        value
                            .parse()
                            .map_err(|e| format!("--listen {value}: {e}"))?,
                    )
                }
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        let name = name.unwrap_or_else(|| "demo-0".into());
        Ok(Self {
            identity: Identity {
                version: version.unwrap_or_else(|| "v1".into()),
                name,
            },
            listen: listen.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        })
    }
}

/// The `main` of every demo service: parses [`ServiceArgs`], binds, prints
/// `listening on ADDR` (first stdout line), says what it serves (`what`, with
/// `{addr}` replaced) and runs `serve` until it fails or the process is killed.
pub async fn run_service<F, Fut, E>(program: &str, what: &str, serve: F) -> std::process::ExitCode
where
    F: FnOnce(tokio::net::TcpListener, Identity) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let args = match ServiceArgs::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "{program}: {e}\nusage: {program} --name NAME --version VERSION --listen ADDR"
            );
            return std::process::ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{program}: cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!("listening on {addr}");
    eprintln!(
        "{program} {} (version {}) serving {}",
        args.identity.name,
        args.identity.version,
        what.replace("{addr}", &addr)
    );
    match serve(listener, args.identity).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Reads the first flag value of `--flag` from `args` (tiny CLI helper for
/// the clients).
pub fn flag(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}
