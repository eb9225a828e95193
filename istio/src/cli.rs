//! The command line: parsing (clap derive) and running each subcommand.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::{Error, Result};
use crate::input::{self, policy, route, workload};
use crate::keys::{self, Key, KeyFile};
use crate::render::envoy::{Affinity, NativeWiring};
use crate::render::{control_plane, istio, standalone};
use crate::resolve::{self, Resolved};
use crate::{admin, check, eds, endpoints, image, reshard, yaml};

const ABOUT: &str = "sticky's control CLI: stateful session affinity for Envoy and Istio.

Takes an affinity policy (a GKE-LBPolicy-like object with sessionAffinity
GENERATED_STATEFUL_COOKIE, or Gateway API sessionPersistence) and the HTTPRoute
it targets, and renders the Envoy or Istio config that wires the sticky filter;
checks that draining can work; rotates token keys; drains endpoints.";

const EXAMPLES: &str = "Examples:
  stickyctl keys new > keys.json
  stickyctl render envoy -p policy.yaml -r route.yaml --keys keys.json \\
      --endpoint reviews-v1=10.0.0.1:9080 --out ./envoy
  stickyctl render istio -p policy.yaml -r route.yaml --keys keys.json \\
      --url oci://ghcr.io/acme/sticky:0.1.0 --selector app=productpage | kubectl apply -f -
  stickyctl check -p policy.yaml -r route.yaml -w deploy.yaml
  stickyctl keys rotate keys.json --in-place
  stickyctl endpoints drain --eds eds/v1.json --cluster v1 --host 10.0.0.1:9080 \\
      --timeout 300 --admin 127.0.0.1:9901
  stickyctl image build --wasm dist/sticky.wasm --out dist/sticky-image
  stickyctl render istio -p policy.yaml -r route.yaml --keys keys.json \\
      --url oci://ghcr.io/acme/sticky:0.1.0 --wasm-image-dir dist/sticky-image
  stickyctl reshard --from 4 --to 5 --keys accounts.txt
  stickyctl reshard --from 4 --to 5 --config envoy/plugin.json --drain 600 > plugin.json

Exit status: 0 ok; 1 error (the message names file, line and field);
2 bad command line; 3 `check` found warnings.";

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "stickyctl", version, about = ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Render Envoy or Istio config from a policy and its HTTPRoute.
    #[command(subcommand)]
    Render(Render),
    /// Warn when a policy cannot work as intended, and say why.
    #[command(
        after_help = "Example:\n  stickyctl check -p policy.yaml -r route.yaml -w deploy.yaml -w service.yaml\n\nExit status 3 when there are warnings."
    )]
    Check(CheckArgs),
    /// Generate and rotate token keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Edit one host in a standalone Envoy's EDS file (atomically).
    #[command(subcommand)]
    Endpoints(EndpointsCmd),
    /// What growing or shrinking a sharded route from N to M shards moves;
    /// the plugin config for M shards with a reshard deadline.
    #[command(
        after_help = "Examples:\n  stickyctl reshard --from 4 --to 5                       # over 100000 sample keys\n  stickyctl image build --wasm dist/sticky.wasm --out dist/sticky-image
  stickyctl render istio -p policy.yaml -r route.yaml --keys keys.json \\
      --url oci://ghcr.io/acme/sticky:0.1.0 --wasm-image-dir dist/sticky-image
  stickyctl reshard --from 4 --to 5 --keys accounts.txt   # over your keys, one per line\n  stickyctl reshard --from 4 --to 5 --config envoy/plugin.json --drain 600 > plugin.json\n\nWith --config the updated config goes to stdout and the report to stderr.\nSessions whose key moves finish on their old shard until reshard_deadline\n(now + --drain), then move; without --drain, while their token stays valid."
    )]
    Reshard(ReshardArgs),
    /// Package sticky.wasm as an OCI image for Istio's WasmPlugin (a reproducible image layout).
    #[command(subcommand)]
    Image(ImageCmd),
    /// Serve sticky's config live over xDS (ADS) to Envoys and proxyless gRPC clients.
    #[command(
        after_help = "Example:\n  stickyctl serve -p policy.yaml -r route.yaml --keys keys.json --endpoints ./endpoints \\\n      --listen 127.0.0.1:18000 --admin 127.0.0.1:18001\n  stickyctl render envoy -p policy.yaml -r route.yaml --xds 127.0.0.1:18000 --out ./envoy\n  envoy -c ./envoy/envoy.json\n  GRPC_XDS_BOOTSTRAP=./envoy/grpc-bootstrap.json my-client xds:///reviews\n\nThe first stdout line is JSON naming the bound addresses: {\"xds\":\"IP:PORT\",\"admin\":\"IP:PORT\"}.\nAn endpoint file (one per Service, in --endpoints):\n  {\"service\": \"reviews-v1\", \"endpoints\": [{\"address\": \"10.0.0.1\", \"port\": 9080, \"state\": \"serving\"},\n    {\"address\": \"10.0.0.2\", \"port\": 9080, \"state\": \"terminating\", \"deadline\": 1790000000}]}"
    )]
    Serve(crate::serve::ServeArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum VariantArg {
    /// One tar+gzip layer holding /plugin.wasm (what every registry and Istio version takes).
    Compat,
    /// Wasm artifact media types (module layer + runtime config layer).
    Wasm,
}

#[derive(Debug, Subcommand)]
enum ImageCmd {
    /// Write DIR (an OCI image layout) and DIR.tar; print the manifest digest and the module's sha256.
    #[command(
        after_help = "Example:\n  stickyctl image build --wasm dist/sticky.wasm --out dist/sticky-image --tag 0.1.0\n  skopeo copy --preserve-digests oci:dist/sticky-image:0.1.0 docker://ghcr.io/acme/sticky:0.1.0\n\nThe same module always gives the same bytes, so the same digests."
    )]
    Build {
        /// The module.
        #[arg(long, value_name = "PATH", default_value = "dist/sticky.wasm")]
        wasm: PathBuf,
        /// The layout directory (replaced if it holds an earlier layout); the tarball is DIR.tar.
        #[arg(long, value_name = "DIR", default_value = "dist/sticky-image")]
        out: PathBuf,
        /// Tag recorded in index.json (the name skopeo, crane and oras copy by).
        #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
        tag: String,
        /// Image shape.
        #[arg(long, value_enum, default_value = "compat")]
        variant: VariantArg,
    },
    /// Verify a layout (every blob's digest and size, media types, the module inside) and print its digests.
    Inspect {
        /// The layout directory.
        dir: PathBuf,
        /// Which tag (default: the only manifest).
        #[arg(long)]
        tag: Option<String>,
    },
}

const SHARDS: std::ops::RangeInclusive<i64> = 1..=crate::input::sharding::MAX_SHARDS as i64;

#[derive(Debug, Args)]
struct ReshardArgs {
    /// Shards now.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(SHARDS))]
    from: u32,
    /// Shards after.
    #[arg(long, value_name = "M", value_parser = clap::value_parser!(u32).range(SHARDS))]
    to: u32,
    /// Shard keys, one per line (`-` = stdin), hashed as the filter sees them:
    /// spaces and tabs trimmed, at most 256 bytes; empty lines skipped.
    #[arg(long, value_name = "FILE", conflicts_with = "sample")]
    keys: Option<PathBuf>,
    /// Measure over COUNT sample keys `<prefix>0` .. `<prefix>COUNT-1` (default 100000).
    #[arg(long, value_name = "COUNT")]
    sample: Option<usize>,
    /// Prefix of the sample keys.
    #[arg(long, value_name = "PREFIX", default_value = "account-")]
    sample_prefix: String,
    /// A plugin config with `sharding` (plugin.json, or a rendered WasmPlugin /
    /// TrafficExtension): print it with M shard clusters.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// With --config: reshard_deadline = now + SECONDS.
    #[arg(long, value_name = "SECONDS", requires = "config")]
    drain: Option<u64>,
    /// The current time, unix seconds (tests).
    #[arg(long, hide = true)]
    now: Option<u64>,
}

#[derive(Debug, Subcommand)]
enum Render {
    /// A standalone Envoy bootstrap, its EDS files and the plugin config.
    #[command(
        after_help = "Example:\n  stickyctl render envoy -p policy.yaml -r route.yaml --keys keys.json \\\n      --wasm /etc/sticky/sticky.wasm --endpoint reviews-v1=10.0.0.1:9080,10.0.0.2:9080 --out ./envoy\n  envoy -c ./envoy/envoy.json\n\nThe native build (dist/libsticky.so, an Envoy 1.40.0 dynamic module), pinning hosts itself:\n  stickyctl render envoy -p policy.yaml -r route.yaml --keys keys.json --native sticky --out ./envoy\n  ENVOY_DYNAMIC_MODULES_SEARCH_PATH=/opt/sticky envoy -c ./envoy/envoy.json\n--wiring drop-in renders the wasm's bootstrap with the module in its place instead.\n\nWithout --out only the bootstrap is printed."
    )]
    Envoy(RenderEnvoy),
    /// WasmPlugin (or TrafficExtension), EnvoyFilter, VirtualService, DestinationRule, Service label.
    #[command(
        after_help = "Example:\n  stickyctl render istio -p policy.yaml -r route.yaml --keys keys.json \\\n      --url oci://ghcr.io/acme/sticky:0.1.0 --sha256 <hex> --selector app=productpage \\\n      --service service.yaml | kubectl apply -f -"
    )]
    Istio(RenderIstio),
    /// Kubernetes manifests that run `stickyctl serve --kubernetes` in a cluster.
    #[command(
        name = "control-plane",
        after_help = "Example:\n  stickyctl render control-plane -p policy.yaml -r route.yaml --keys keys.json \\\n      --namespace sticky-system --watch-namespace shop --image ghcr.io/acme/stickyctl:0.1.0 | kubectl apply -f -\n\nServiceAccount, a list/watch-only Role and RoleBinding in the watched namespace (EndpointSlices, Pods,\nServices), the policy and route in a ConfigMap, the keys in a Secret, a hardened Deployment with\n/readyz and /healthz probes, and a Service exposing grpc-xds and http-admin. Extra serve arguments\ngo after `--`."
    )]
    ControlPlane(RenderControlPlane),
}

#[derive(Debug, Args)]
struct RenderControlPlane {
    #[command(flatten)]
    inputs: Inputs,
    /// Token keys (`stickyctl keys new`): they go into a Secret.
    #[arg(long, value_name = "FILE")]
    keys: PathBuf,
    /// Name of every object.
    #[arg(long, default_value = "sticky-control-plane")]
    name: String,
    /// Namespace the control plane runs in.
    #[arg(long, default_value = "sticky-system")]
    namespace: String,
    /// Namespace whose EndpointSlices, Pods and Services it watches (default: --namespace).
    #[arg(long, value_name = "NS")]
    watch_namespace: Option<String>,
    /// Container image whose entrypoint is stickyctl.
    #[arg(long)]
    image: String,
    /// ADS (gRPC) port.
    #[arg(long, default_value_t = 18000)]
    xds_port: u16,
    /// Admin HTTP port.
    #[arg(long, default_value_t = 18001)]
    admin_port: u16,
    /// Replicas.
    #[arg(long, default_value_t = 2)]
    replicas: u32,
    /// Watch the LBPolicy named NAME in the API (with --route-name) instead
    /// of shipping the policy file in a ConfigMap; the Role gains list/watch
    /// on lbpolicies.sticky.dev. The -p file is still checked.
    #[arg(long, value_name = "NAME", requires = "route_name")]
    policy_name: Option<String>,
    /// Watch the HTTPRoute named NAME in the API (with --policy-name); the
    /// Role gains list/watch on httproutes.gateway.networking.k8s.io. The -r file is still checked.
    #[arg(long, value_name = "NAME", requires = "policy_name")]
    route_name: Option<String>,
    /// More `stickyctl serve` arguments (e.g. `-- --native sticky`).
    #[arg(last = true)]
    extra: Vec<String>,
}

#[derive(Debug, Args)]
struct Inputs {
    /// The policy (kind LBPolicy).
    #[arg(short, long, value_name = "FILE")]
    policy: PathBuf,
    /// The HTTPRoute it targets.
    #[arg(short, long, value_name = "FILE")]
    route: PathBuf,
}

#[derive(Debug, Args)]
struct KeysArg {
    /// Token keys: a keys file (`stickyctl keys new`), a plugin config or a
    /// rendered WasmPlugin. Without it a fresh key is generated (sessions do
    /// not survive re-rendering then).
    #[arg(long, value_name = "FILE")]
    keys: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ClusterNames {
    /// The backend Service's name (reviews-v1).
    Backend,
    /// Istio's subset cluster name (outbound|9080|v1|reviews.default.svc.cluster.local).
    Istio,
}

/// The protocol Envoy speaks to the backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum UpstreamProtocol {
    /// HTTP/1.1 (Envoy's default).
    Http1,
    /// HTTP/2 (cleartext): gRPC backends.
    Http2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WiringArg {
    /// No stateful_session filter: the module pins the host with Envoy's
    /// upstream override (strict when the policy's strict mode is on); the
    /// plugin JSON gains `override_host`.
    Direct,
    /// The wasm's bootstrap with the module in the wasm filter's place: the
    /// internal host header feeds a header-based stateful_session; the plugin
    /// JSON is exactly the wasm's.
    DropIn,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ShardEndpointsArg {
    /// An EDS file per shard (--endpoint <pod>=IP:PORT); drained with `stickyctl endpoints`.
    Eds,
    /// STRICT_DNS on <statefulSet>-<i>.<headlessService>.<namespace>.svc.cluster.local
    /// (Envoy inside the Kubernetes cluster).
    Dns,
}

#[derive(Debug, Args)]
struct RenderEnvoy {
    #[command(flatten)]
    inputs: Inputs,
    #[command(flatten)]
    keys: KeysArg,
    /// Path of sticky.wasm as Envoy sees it.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/etc/sticky/sticky.wasm",
        conflicts_with = "native"
    )]
    wasm: PathBuf,
    /// Use the native Envoy dynamic module `lib<NAME>.so` (`make native`
    /// builds `libsticky.so`; Envoy finds it in ENVOY_DYNAMIC_MODULES_SEARCH_PATH)
    /// instead of the wasm. Standalone Envoy and gateways only: Istio cannot load it.
    #[arg(long, value_name = "NAME")]
    native: Option<String>,
    /// How the native module pins the host (with --native).
    #[arg(long, value_enum, default_value = "direct", requires = "native")]
    wiring: WiringArg,
    /// Listener address.
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:10000")]
    listen: String,
    /// Admin port on 127.0.0.1.
    #[arg(long, value_name = "PORT", default_value_t = 9901)]
    admin_port: u16,
    /// Initial endpoints of a backend (repeatable).
    #[arg(long, value_name = "BACKEND=IP:PORT[,IP:PORT]")]
    endpoint: Vec<String>,
    /// Directory Envoy watches for EDS files (default: OUT/eds, or /etc/sticky/eds).
    #[arg(long, value_name = "DIR")]
    eds_dir: Option<PathBuf>,
    /// How clusters are named.
    #[arg(long, value_enum, default_value = "backend")]
    cluster_names: ClusterNames,
    /// How shard clusters (spec.sharding) find their pod.
    #[arg(long, value_enum, default_value = "eds")]
    shard_endpoints: ShardEndpointsArg,
    /// No retry policy on routes.
    #[arg(long)]
    no_retry: bool,
    /// Runtime key prefix for live weight shifts (`POST /runtime_modify?PREFIX.CLUSTER=N`).
    #[arg(long, value_name = "PREFIX", default_value = "sticky.split")]
    runtime_prefix: String,
    /// Write envoy.json, plugin.json and eds/*.json into DIR.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The protocol Envoy speaks to the backends: http2 for gRPC backends.
    #[arg(long, value_enum, default_value = "http1")]
    upstream_protocol: UpstreamProtocol,
    /// Instead, a bootstrap with only node, admin and ADS at HOST:PORT
    /// (`stickyctl serve`); with --out also grpc-bootstrap.json for proxyless clients.
    #[arg(long, value_name = "HOST:PORT")]
    xds: Option<String>,
    /// Node id of the --xds bootstrap.
    #[arg(
        long,
        value_name = "ID",
        default_value = "sticky-envoy",
        requires = "xds"
    )]
    node_id: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PhaseArg {
    /// After Istio's stats filter (UNSPECIFIED_PHASE).
    Unspecified,
    /// Before Istio's authentication.
    Authn,
    /// Before Istio's authorization.
    Authz,
    /// Before Istio's stats filter.
    Stats,
}

#[derive(Debug, Args)]
struct RenderIstio {
    #[command(flatten)]
    inputs: Inputs,
    #[command(flatten)]
    keys: KeysArg,
    /// Module URL: oci://REGISTRY/IMAGE:TAG or file:///PATH/sticky.wasm (or http[s]://).
    #[arg(long, value_name = "URL")]
    url: String,
    /// sha256 of the module (64 hex characters).
    #[arg(long, value_name = "HEX", conflicts_with = "wasm_file")]
    sha256: Option<String>,
    /// Compute sha256 from this local copy of the module.
    #[arg(long, value_name = "PATH", conflicts_with = "wasm_image_dir")]
    wasm_file: Option<PathBuf>,
    /// The image layout `stickyctl image build` wrote: with an oci:// --url,
    /// the URL is pinned to its manifest digest and sha256 is that digest
    /// (what Istio verifies for images); with file:// or http(s)://, sha256
    /// is the module's.
    #[arg(long, value_name = "DIR", conflicts_with = "sha256")]
    wasm_image_dir: Option<PathBuf>,
    /// Phase in istiod's filter chain (every phase runs before stateful_session).
    #[arg(long, value_enum, default_value = "unspecified")]
    phase: PhaseArg,
    /// Priority within the phase.
    #[arg(long, value_name = "N")]
    priority: Option<i32>,
    #[command(flatten)]
    attach: AttachArgs,
    /// Render a TrafficExtension (Istio 1.30+) instead of a WasmPlugin.
    #[arg(long)]
    traffic_extension: bool,
    /// FAIL_CLOSE (Istio's default) or FAIL_RELOAD; FAIL_OPEN only with
    /// --allow-fail-open (a failed plugin would let client-sent internal
    /// headers choose the pod).
    #[arg(long, value_name = "STRATEGY")]
    fail_strategy: Option<String>,
    /// Accept --fail-strategy FAIL_OPEN despite the risk (a warning is printed).
    #[arg(long)]
    allow_fail_open: bool,
    /// IfNotPresent or Always.
    #[arg(long, value_name = "POLICY")]
    image_pull_policy: Option<String>,
    /// A Service to label istio.io/persistent-session (repeatable): each
    /// backend Service, or the Service whose subsets the backends are. It is
    /// rendered with the label; for a Service not given, a kubectl command is
    /// printed.
    #[arg(long, value_name = "FILE")]
    service: Vec<PathBuf>,
    /// Write one YAML file per object, and plugin.json, into DIR.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Which proxies run sticky (`render istio`, and `check` for the same scope).
#[derive(Debug, Args)]
struct AttachArgs {
    /// Pod label KEY=VALUE selecting the proxies (repeatable).
    #[arg(long, value_name = "KEY=VALUE", conflicts_with = "target_ref")]
    selector: Vec<String>,
    /// KIND/NAME of a Gateway or Service to attach to (repeatable).
    #[arg(long, value_name = "KIND/NAME")]
    target_ref: Vec<String>,
}

#[derive(Debug, Args)]
struct CheckArgs {
    #[command(flatten)]
    inputs: Inputs,
    #[command(flatten)]
    attach: AttachArgs,
    /// Deployments, StatefulSets and Services (YAML, repeatable).
    #[arg(short, long, value_name = "FILE")]
    workloads: Vec<PathBuf>,
    /// How long a typical session lasts (like 30m).
    #[arg(long, value_name = "DURATION", default_value = "30m")]
    typical_session: String,
}

#[derive(Debug, Subcommand)]
enum KeysCmd {
    /// Print a keys file with one fresh key (32 random bytes, base64).
    #[command(after_help = "Example:\n  stickyctl keys new --id k1 > keys.json")]
    New {
        /// Key id.
        #[arg(long, default_value = "k1")]
        id: String,
    },
    /// Put a new key first (it seals; the old ones still open), or retire one.
    #[command(
        after_help = "Example, a rotation that drops no live session:\n  stickyctl keys rotate keys.json --in-place     # new key seals, old keys still open\n  # ... apply everywhere; each session's next request re-seals its token under the new key:\n  # wait until sticky.tokens_resealed stops growing ...\n  stickyctl keys rotate keys.json --retire k1 --in-place"
    )]
    Rotate {
        /// Keys file, plugin config (JSON) or rendered WasmPlugin / TrafficExtension (YAML).
        file: PathBuf,
        /// Id of the new key (default: the next k<N>).
        #[arg(long, conflicts_with = "retire")]
        id: Option<String>,
        /// Remove this key instead of adding one.
        #[arg(long, value_name = "ID")]
        retire: Option<String>,
        /// Rewrite FILE (atomically) instead of printing.
        #[arg(long)]
        in_place: bool,
    },
}

#[derive(Debug, Args)]
struct EndpointArgs {
    /// The EDS file.
    #[arg(long, value_name = "FILE", required_unless_present = "server")]
    eds: Option<PathBuf>,
    /// A running `stickyctl serve`'s admin address: change it there (and in
    /// its endpoint file) instead of in an EDS file.
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["eds", "admin"])]
    server: Option<String>,
    /// Cluster name (Istio names with '|' are used whole); with --server, the Service.
    #[arg(long, value_name = "NAME")]
    cluster: String,
    /// The host.
    #[arg(long, value_name = "IP:PORT")]
    host: String,
    /// filter_metadata namespace of the drain metadata.
    #[arg(long, value_name = "NS", default_value = "sticky")]
    namespace: String,
    /// Envoy's admin address: wait until Envoy shows the change, print how long it took.
    #[arg(long, value_name = "HOST:PORT")]
    admin: Option<String>,
    /// Give up waiting for Envoy after this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    wait_ms: u64,
    /// The current time, unix seconds (tests).
    #[arg(long, hide = true)]
    now: Option<u64>,
}

#[derive(Debug, Subcommand)]
enum EndpointsCmd {
    /// Mark DRAINING: pinned sessions stay, no new ones; with --timeout they move at the deadline.
    #[command(
        after_help = "Example:\n  stickyctl endpoints drain --eds eds/v1.json --cluster v1 --host 10.0.0.1:9080 --timeout 300 --admin 127.0.0.1:9901"
    )]
    Drain {
        #[command(flatten)]
        args: EndpointArgs,
        /// Seconds until the drain deadline (drain_deadline = now + timeout).
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<u64>,
    },
    /// Back to HEALTHY, drain metadata removed.
    Undrain {
        #[command(flatten)]
        args: EndpointArgs,
    },
    /// Remove the host from the cluster.
    Remove {
        #[command(flatten)]
        args: EndpointArgs,
    },
    /// Add the host to the cluster, HEALTHY.
    Add {
        #[command(flatten)]
        args: EndpointArgs,
    },
}

/// Runs stickyctl with the process's arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("stickyctl: error: {e}");
            ExitCode::from(1)
        }
    }
}

fn note(msg: &str) {
    eprintln!("stickyctl: note: {msg}");
}

fn warning(msg: &str) {
    eprintln!("stickyctl: WARNING: {msg}");
}

/// `--selector` / `--target-ref` as the proxies sticky attaches to.
fn parse_attach(a: &AttachArgs) -> Result<istio::Attach> {
    if !a.selector.is_empty() {
        let mut labels = BTreeMap::new();
        for s in &a.selector {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| Error::Usage(format!("--selector {s:?}: want KEY=VALUE")))?;
            labels.insert(k.to_owned(), v.to_owned());
        }
        return Ok(istio::Attach::Selector(labels));
    }
    if a.target_ref.is_empty() {
        return Ok(istio::Attach::Namespace);
    }
    let mut refs = Vec::new();
    for t in &a.target_ref {
        let (k, n) = t
            .split_once('/')
            .filter(|(k, n)| !k.is_empty() && !n.is_empty())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--target-ref {t:?}: want KIND/NAME, like Gateway/ingress"
                ))
            })?;
        if k != "Gateway" && k != "Service" {
            return Err(Error::Usage(format!(
                "--target-ref {t:?}: KIND must be Gateway or Service"
            )));
        }
        refs.push((k.to_owned(), n.to_owned()));
    }
    Ok(istio::Attach::TargetRefs(refs))
}

fn load_resolved(inputs: &Inputs) -> Result<Resolved> {
    let p = policy::parse(input::one_of_kind(&inputs.policy, &[policy::KIND])?)?;
    let r = route::parse(input::one_of_kind(&inputs.route, &["HTTPRoute"])?)?;
    let resolved = resolve::resolve(p, r)?;
    note(&format!(
        "session settings from {}",
        resolved.session.source
    ));
    for n in &resolved.notes {
        note(n);
    }
    Ok(resolved)
}

fn load_keys(arg: &KeysArg) -> Result<Vec<Key>> {
    match &arg.keys {
        Some(path) => Ok(KeyFile::load(path)?.keys),
        None => {
            note(
                "no --keys: generated a fresh key; save one with `stickyctl keys new > keys.json` and pass --keys, or every render invalidates live sessions",
            );
            Ok(vec![keys::generate("k1")?])
        }
    }
}

fn stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("<stdout>", e))
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    eds::write_atomic(path, text.as_bytes()).map_err(|e| Error::io(path, e))
}

/// Runs a parsed command line; the exit status on success.
pub fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Render(Render::Envoy(a)) => render_envoy(a),
        Command::Render(Render::Istio(a)) => render_istio(a),
        Command::Render(Render::ControlPlane(a)) => render_control_plane(a),
        Command::Check(a) => run_check(a),
        Command::Keys(k) => run_keys(k),
        Command::Endpoints(e) => run_endpoints(e),
        Command::Reshard(a) => run_reshard(a),
        Command::Image(i) => run_image(i),
        Command::Serve(a) => crate::serve::run(a),
    }
}

fn parse_endpoints(specs: &[String]) -> Result<BTreeMap<String, Vec<(String, u16)>>> {
    let mut out: BTreeMap<String, Vec<(String, u16)>> = BTreeMap::new();
    for spec in specs {
        let (backend, hosts) = spec.split_once('=').ok_or_else(|| {
            Error::Usage(format!(
                "--endpoint {spec:?}: want BACKEND=IP:PORT[,IP:PORT]"
            ))
        })?;
        for h in hosts.split(',').filter(|h| !h.is_empty()) {
            out.entry(backend.to_owned())
                .or_default()
                .push(endpoints::parse_host(h)?);
        }
    }
    Ok(out)
}

fn render_envoy(a: RenderEnvoy) -> Result<u8> {
    let resolved = load_resolved(&a.inputs)?;
    if let Some(xds) = &a.xds {
        return render_envoy_xds(&a, xds, &resolved);
    }
    let keys = load_keys(&a.keys)?;
    let (address, port) = a
        .listen
        .parse::<std::net::SocketAddr>()
        .map(|s| (s.ip().to_string(), s.port()))
        .map_err(|_| Error::Usage(format!("--listen {:?}: want IP:PORT", a.listen)))?;
    let eds_dir = match (&a.eds_dir, &a.out) {
        (Some(d), _) => d.clone(),
        (None, Some(out)) => std::path::absolute(out.join("eds")).map_err(|e| Error::io(out, e))?,
        (None, None) => PathBuf::from("/etc/sticky/eds"),
    };
    let affinity = match &a.native {
        Some(module) => Affinity::StickyNative {
            module: module.clone(),
            wiring: match a.wiring {
                WiringArg::Direct => NativeWiring::Direct,
                WiringArg::DropIn => NativeWiring::DropIn,
            },
        },
        None => Affinity::StickyWasm {
            wasm_path: a.wasm.clone(),
        },
    };
    let opts = standalone::Options {
        listen_address: address,
        listen_port: port,
        admin_port: a.admin_port,
        affinity,
        eds_dir,
        naming: match a.cluster_names {
            ClusterNames::Backend => standalone::Naming::Backend,
            ClusterNames::Istio => standalone::Naming::Istio,
        },
        endpoints: parse_endpoints(&a.endpoint)?,
        shard_endpoints: match a.shard_endpoints {
            ShardEndpointsArg::Eds => standalone::ShardEndpoints::Eds,
            ShardEndpointsArg::Dns => standalone::ShardEndpoints::Dns,
        },
        retry: !a.no_retry,
        runtime_key_prefix: Some(a.runtime_prefix.clone()),
    };
    let mut rendered = standalone::render(&resolved, &keys, &opts)?;
    if a.upstream_protocol == UpstreamProtocol::Http2 {
        crate::render::envoy::bootstrap_upstream_http2(&mut rendered.bootstrap);
    }
    match &a.out {
        Some(dir) => {
            for path in standalone::write(&rendered, dir)? {
                println!("wrote {}", path.display());
            }
        }
        None => {
            stdout(&yaml::to_json(&rendered.bootstrap))?;
            note("EDS files and plugin.json are written with --out DIR");
        }
    }
    Ok(0)
}

/// `render envoy --xds`: everything but node, admin and ADS comes from `stickyctl serve`.
fn render_envoy_xds(a: &RenderEnvoy, xds: &str, resolved: &Resolved) -> Result<u8> {
    let envoy = crate::serve::bootstrap::envoy(&a.node_id, xds, a.admin_port);
    match &a.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            let grpc = crate::serve::bootstrap::grpc(&format!("grpc-{}", a.node_id), xds);
            for (name, value) in [("envoy.json", envoy), ("grpc-bootstrap.json", grpc)] {
                let path = dir.join(name);
                write_file(&path, &yaml::to_json(&value))?;
                println!("wrote {}", path.display());
            }
            note(&format!(
                "proxyless gRPC clients: GRPC_XDS_BOOTSTRAP={} and target xds:///{}",
                dir.join("grpc-bootstrap.json").display(),
                resolved.route.name
            ));
        }
        None => stdout(&yaml::to_json(&envoy))?,
    }
    Ok(0)
}

fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest as _;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let digest = sha2::Sha256::digest(&bytes);
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

fn render_control_plane(a: RenderControlPlane) -> Result<u8> {
    // The inputs must render before they are shipped into a cluster.
    load_resolved(&a.inputs)?;
    KeyFile::load(&a.keys)?;
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| Error::io(p, e));
    let (policy, route, keys) = (
        read(&a.inputs.policy)?,
        read(&a.inputs.route)?,
        read(&a.keys)?,
    );
    let opts = control_plane::Options {
        name: a.name,
        namespace: a.namespace,
        watch_namespace: a.watch_namespace,
        image: a.image,
        xds_port: a.xds_port,
        admin_port: a.admin_port,
        replicas: a.replicas,
        extra_args: a.extra,
        policy_name: a.policy_name,
        route_name: a.route_name,
    };
    let objects = control_plane::render(
        &opts,
        control_plane::Inputs {
            policy: &policy,
            route: &route,
            keys: &keys,
        },
    )?;
    stdout(&yaml::stream(&objects)?)?;
    Ok(0)
}

fn render_istio(a: RenderIstio) -> Result<u8> {
    let resolved = load_resolved(&a.inputs)?;
    let keys = load_keys(&a.keys)?;
    let mut url = a.url.clone();
    let sha256 = match (&a.sha256, &a.wasm_file, &a.wasm_image_dir) {
        (Some(s), _, _) => Some(s.clone()),
        (None, Some(f), _) => Some(sha256_file(f)?),
        (None, None, Some(dir)) => {
            let seen = image::inspect(dir, None)?;
            match image::pinned_url(&url, &seen.manifest_digest) {
                Some(pinned) => {
                    note(&format!(
                        "{} pinned to the image digest of {} (module sha256 {}); push it with: skopeo copy --preserve-digests oci:{}:{} docker://{}",
                        url,
                        dir.display(),
                        seen.module_sha256,
                        dir.display(),
                        seen.tag.as_deref().unwrap_or("latest"),
                        url.trim_start_matches("oci://")
                    ));
                    url = pinned;
                    Some(seen.manifest_digest)
                }
                None => Some(seen.module_sha256),
            }
        }
        (None, None, None) => None,
    };
    let attach = parse_attach(&a.attach)?;
    if attach == istio::Attach::Namespace {
        note("no --selector or --target-ref: sticky runs in every proxy of the namespace");
    }
    let mut services = Vec::new();
    for path in &a.service {
        let doc = input::one_of_kind(path, &["Service"])?;
        services.extend(workload::service(&doc));
    }
    let opts = istio::Options {
        url,
        sha256,
        phase: match a.phase {
            PhaseArg::Unspecified => istio::Phase::Unspecified,
            PhaseArg::Authn => istio::Phase::Authn,
            PhaseArg::Authz => istio::Phase::Authz,
            PhaseArg::Stats => istio::Phase::Stats,
        },
        priority: a.priority,
        attach,
        traffic_extension: a.traffic_extension,
        fail_strategy: a.fail_strategy.clone(),
        allow_fail_open: a.allow_fail_open,
        image_pull_policy: a.image_pull_policy.clone(),
        services,
    };
    let rendered = istio::render(&resolved, &keys, &opts)?;
    for n in &rendered.notes {
        note(n);
    }
    for w in &rendered.warnings {
        warning(w);
    }
    for cmd in &rendered.label_commands {
        note(&format!(
            "label the Service so istiod sends terminating pods as DRAINING: {cmd} (or pass --service FILE)"
        ));
    }
    match &a.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            for obj in &rendered.objects {
                let kind = obj["kind"]
                    .as_str()
                    .unwrap_or("object")
                    .to_ascii_lowercase();
                let name = obj["metadata"]["name"].as_str().unwrap_or("unnamed");
                let path = dir.join(format!("{kind}-{name}.yaml"));
                write_file(&path, &yaml::stream(std::slice::from_ref(obj))?)?;
                println!("wrote {}", path.display());
            }
            let path = dir.join("plugin.json");
            write_file(&path, &yaml::to_json(&rendered.plugin_config))?;
            println!("wrote {}", path.display());
        }
        None => {
            let mut text = String::new();
            for cmd in &rendered.label_commands {
                text.push_str(&format!("# Also run: {cmd}\n"));
            }
            text.push_str(&yaml::stream(&rendered.objects)?);
            stdout(&text)?;
        }
    }
    Ok(0)
}

fn run_check(a: CheckArgs) -> Result<u8> {
    let typical = input::duration::seconds(&a.typical_session).ok_or_else(|| {
        Error::Usage(format!(
            "--typical-session {:?}: want a duration like 30m or 1h",
            a.typical_session
        ))
    })?;
    let resolved = load_resolved(&a.inputs)?;
    let attach = parse_attach(&a.attach)?;
    match istio::backends(&resolved) {
        Ok(shape) => note(&shape.describe()),
        // `render istio` refuses it; the drain timeline is still worth checking.
        Err(e) => note(&format!("backends: {e}")),
    }
    let mut workloads = Vec::new();
    let mut services = Vec::new();
    for path in &a.workloads {
        let docs = yaml::load(path)?;
        let before = workloads.len() + services.len();
        for d in &docs {
            workloads.extend(workload::workload(d));
            services.extend(workload::service(d));
        }
        if workloads.len() + services.len() == before {
            return Err(Error::file(
                &path.display().to_string(),
                "holds no Deployment, StatefulSet or Service",
            ));
        }
    }
    if workloads.is_empty() {
        note(
            "no Deployment given (-w): the drain timeline (grace period, preStop, probes) was not checked",
        );
    }
    let warnings = check::check(&check::Inputs {
        resolved: &resolved,
        workloads: &workloads,
        services: &services,
        typical_session: typical,
        attach: &attach,
    });
    let mut text = String::new();
    for w in &warnings {
        text.push_str(&format!("{w}\n"));
    }
    stdout(&text)?;
    if warnings.is_empty() {
        eprintln!("stickyctl: check: no warnings");
        Ok(0)
    } else {
        eprintln!("stickyctl: check: {} warning(s)", warnings.len());
        Ok(3)
    }
}

fn run_keys(k: KeysCmd) -> Result<u8> {
    match k {
        KeysCmd::New { id } => {
            let key = keys::generate(&id)?;
            stdout(&yaml::to_json(&serde_json::json!({"keys": [key]})))?;
        }
        KeysCmd::Rotate {
            file,
            id,
            retire,
            in_place,
        } => {
            let mut kf = KeyFile::load(&file)?;
            match &retire {
                Some(old) => {
                    kf.retire(old)?;
                    note(&format!(
                        "retired {old}: sessions sealed with it start over"
                    ));
                }
                None => {
                    let new = kf.rotate(id.as_deref())?.id.clone();
                    note(&format!(
                        "{new} now seals; older keys still open live sessions, and each session's next request re-seals its token under {new}. Retire them (--retire ID) once sticky.tokens_resealed stops growing on every proxy"
                    ));
                }
            }
            let text = kf.render()?;
            if in_place {
                write_file(&file, &text)?;
            } else {
                stdout(&text)?;
            }
        }
    }
    Ok(0)
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn run_endpoints(e: EndpointsCmd) -> Result<u8> {
    let (args, op, verb) = match e {
        EndpointsCmd::Drain { args, timeout } => {
            (args, endpoints::Op::Drain { timeout }, "drained")
        }
        EndpointsCmd::Undrain { args } => (args, endpoints::Op::Undrain, "undrained"),
        EndpointsCmd::Remove { args } => (args, endpoints::Op::Remove, "removed"),
        EndpointsCmd::Add { args } => (args, endpoints::Op::Add, "added"),
    };
    let (ip, port) = endpoints::parse_host(&args.host)?;
    if let Some(server) = &args.server {
        return endpoints_via_server(server, &args, &ip, port, op, verb);
    }
    let Some(eds_path) = &args.eds else {
        return Err(Error::Usage(
            "--eds FILE or --server HOST:PORT is required".into(),
        ));
    };
    let now = args.now.unwrap_or_else(now_unix);
    let mut doc = endpoints::read(eds_path)?;
    endpoints::apply(
        &mut doc,
        &eds_path.display().to_string(),
        &args.cluster,
        (&ip, port),
        op,
        &args.namespace,
        now,
    )?;
    let text = yaml::to_json(&doc);
    let began = Instant::now();
    write_file(eds_path, &text)?;
    let mut line = format!("{verb} {} in cluster {}", args.host, args.cluster);
    if let endpoints::Op::Drain { timeout: Some(t) } = op {
        line.push_str(&format!(" (drain_deadline {})", now.saturating_add(t)));
    }
    if let Some(addr) = &args.admin {
        let took = admin::wait_for(
            addr,
            &args.cluster,
            &ip,
            port,
            began,
            Duration::from_millis(args.wait_ms),
            |s| op.applied(s),
        )?;
        line.push_str(&format!(
            "; envoy applied it in {:.1} ms",
            took.as_secs_f64() * 1000.0
        ));
    }
    println!("{line}");
    Ok(0)
}

/// `endpoints ... --server`: the change goes to a running `stickyctl serve`.
fn endpoints_via_server(
    server: &str,
    args: &EndpointArgs,
    ip: &str,
    port: u16,
    op: endpoints::Op,
    verb: &str,
) -> Result<u8> {
    let (name, timeout) = match op {
        endpoints::Op::Drain { timeout } => ("drain", timeout),
        endpoints::Op::Undrain => ("undrain", None),
        endpoints::Op::Remove => ("remove", None),
        endpoints::Op::Add => ("add", None),
    };
    let change = crate::serve::source::edit::Change {
        service: args.cluster.clone(),
        address: ip
            .parse()
            .map_err(|_| Error::Usage(format!("--host {:?}: not an IP", args.host)))?,
        port,
        op: name.to_owned(),
        timeout,
    };
    let began = Instant::now();
    let answer = crate::serve::client::send(server, &change)?;
    let mut line = format!("{verb} {} in {} via {server}", args.host, args.cluster);
    if let Some(d) = answer["drain_deadline"].as_u64() {
        line.push_str(&format!(" (drain_deadline {d})"));
    }
    line.push_str(&format!(
        "; snapshot {} published in {:.1} ms",
        answer["generation"],
        began.elapsed().as_secs_f64() * 1000.0
    ));
    println!("{line}");
    Ok(0)
}

/// Default number of sample keys for `reshard`.
const DEFAULT_SAMPLE: usize = 100_000;

fn run_reshard(a: ReshardArgs) -> Result<u8> {
    let (keys, source): (Vec<Vec<u8>>, String) = match &a.keys {
        Some(path) => {
            let bytes = if path.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
                    .map_err(|e| Error::io(path, e))?;
                b
            } else {
                std::fs::read(path).map_err(|e| Error::io(path, e))?
            };
            let keys: Vec<Vec<u8>> = bytes
                .split(|b| *b == b'\n')
                .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
                .filter_map(reshard::normalize)
                .map(<[u8]>::to_vec)
                .collect();
            if keys.is_empty() {
                return Err(Error::file(
                    &path.display().to_string(),
                    "holds no key (one key per line)",
                ));
            }
            (keys, format!("keys from {}", path.display()))
        }
        None => {
            let n = a.sample.unwrap_or(DEFAULT_SAMPLE);
            if n == 0 {
                return Err(Error::Usage("--sample 0: want at least one key".into()));
            }
            let keys = (0..n)
                .map(|i| format!("{}{i}", a.sample_prefix).into_bytes())
                .collect();
            (
                keys,
                format!(
                    "sample keys {p}0 .. {p}{}",
                    n.saturating_sub(1),
                    p = a.sample_prefix
                ),
            )
        }
    };
    let report = reshard::measure(keys.iter().map(Vec::as_slice), a.from, a.to);
    let text = reshard::render(&report, &source);
    let Some(path) = &a.config else {
        stdout(&text)?;
        return Ok(0);
    };
    eprint!("{text}");
    let file = reshard::ConfigFile::load(path)?;
    let deadline = a
        .drain
        .map(|d| a.now.unwrap_or_else(now_unix).saturating_add(d));
    let value = file.reshard(a.from, a.to, deadline)?;
    stdout(&file.render(&value)?)?;
    match deadline {
        Some(d) => note(&format!(
            "reshard_deadline {d} (now + {} s): a session whose key moves finishes on its old shard until then, then moves; new sessions go to the new shard at once",
            a.drain.unwrap_or(0)
        )),
        None => note(
            "no --drain: a session whose key moves stays on its old shard while its token stays valid (active sessions refresh it: give --drain to end that); new sessions go to the new shard at once",
        ),
    }
    Ok(0)
}

fn run_image(cmd: ImageCmd) -> Result<u8> {
    match cmd {
        ImageCmd::Build {
            wasm,
            out,
            tag,
            variant,
        } => {
            let module = std::fs::read(&wasm).map_err(|e| Error::io(&wasm, e))?;
            let variant = match variant {
                VariantArg::Compat => image::Variant::Compat,
                VariantArg::Wasm => image::Variant::Wasm,
            };
            let layout = image::build(&module, variant, &tag)?;
            let tar_path = image::write(&layout, &out)?;
            // Read back what was written: the printed digests are the ones on disk.
            let seen = image::inspect(&out, Some(&tag))?;
            let tarball = std::fs::read(&tar_path).map_err(|e| Error::io(&tar_path, e))?;
            stdout(&format!(
                "manifest sha256:{}\nmodule   sha256:{} ({} bytes)\nvariant  {}\nlayout   {} (tag {tag})\ntarball  {} (sha256:{})\n",
                seen.manifest_digest,
                seen.module_sha256,
                seen.module_size,
                seen.variant.name(),
                out.display(),
                tar_path.display(),
                image::sha256_hex(&tarball),
            ))?;
            note(&format!(
                "push: skopeo copy --preserve-digests oci:{}:{tag} docker://REGISTRY/REPOSITORY:{tag}; then render istio --url oci://REGISTRY/REPOSITORY:{tag} --wasm-image-dir {}",
                out.display(),
                out.display()
            ));
        }
        ImageCmd::Inspect { dir, tag } => {
            let seen = image::inspect(&dir, tag.as_deref())?;
            stdout(&format!(
                "manifest sha256:{}\nmodule   sha256:{} ({} bytes)\nvariant  {}\ntag      {}\n",
                seen.manifest_digest,
                seen.module_sha256,
                seen.module_size,
                seen.variant.name(),
                seen.tag.as_deref().unwrap_or("(none)"),
            ))?;
        }
    }
    Ok(0)
}
