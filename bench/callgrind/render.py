"""Bootstrap for one configuration of the callgrind counts: stickyctl's
native rendering (one cluster of two hosts behind the weighted route), with
the filter chain swapped for the baselines."""
import json
import os
import subprocess
import sys

variant, port, admin, upstream, out, stickyctl, testdata = sys.argv[1:8]
wiring = "drop-in" if variant == "sticky-native-dropin" else "direct"
# sticky-wasm: the wasm build (V8), from the run's module directory.
build = (["--wasm", os.path.join(os.path.dirname(os.path.abspath(out)), "mods", "sticky.wasm")]
         if variant == "sticky-wasm" else ["--native", "sticky", "--wiring", wiring])
route = os.path.join(os.path.dirname(os.path.abspath(__file__)), "route-one-cluster.yaml")
rendered = out + ".d"
subprocess.run(
    [stickyctl, "render", "envoy", "-p", os.path.join(testdata, "policy.yaml"), "-r", route,
     "--keys", os.path.join(testdata, "keys.json")] + build + [
     "--listen", "127.0.0.1:" + port, "--admin-port", admin,
     "--endpoint", "reviews-v1=127.0.0.1:%s,127.0.0.2:%s" % (upstream, upstream),
     "--out", rendered],
    check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
cfg = json.load(open(os.path.join(rendered, "envoy.json")))
hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
sticky, router = hcm["http_filters"][0], hcm["http_filters"][-1]
if variant == "none":
    hcm["http_filters"] = [router]
elif variant == "envoy-cookie":
    hcm["http_filters"] = [{"name": "envoy.filters.http.stateful_session", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.stateful_session.v3.StatefulSession",
        "session_state": {"name": "envoy.http.stateful_session.cookie", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.http.stateful_session.cookie.v3.CookieBasedSessionState",
            "cookie": {"name": "sticky", "ttl": "600s", "path": "/"}}}}}, router]
elif variant == "empty-native":
    sticky["typed_config"]["dynamic_module_config"]["name"] = "sticky_bench_empty_module"
    hcm["http_filters"] = [sticky, router]
json.dump(cfg, open(out, "w"), indent=1)
