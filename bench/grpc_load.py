"""The one gRPC load generator of `make bench`'s proxyless-vs-Envoy comparison
(grpcio from the project venv): the same code drives every path, only the
target differs (`xds:///NAME` with GRPC_XDS_BOOTSTRAP set, or Envoy's
listener `127.0.0.1:PORT`).

  grpc_load.py TARGET SECONDS PROCESSES SESSIONS_PER_PROCESS WARMUP_SECONDS

Each process opens one channel and runs SESSIONS_PER_PROCESS sessions
concurrently (grpc.aio), each a loop of unary `sticky.demo.Counter/Add`
calls. A session's first call carries no cookie; the `set-cookie` of a
response (sticky's sealed token through Envoy, gRPC's own cookie
proxyless: gRFC A55) is copied into the `cookie` of its later calls. Calls
in the first WARMUP_SECONDS are not counted. Prints one JSON line: calls,
errors, seconds, rps, p50/p90/p99 latency (µs), sessions that got a cookie,
and sessions that saw more than one backend (`x-backend`).
"""
import asyncio
import json
import multiprocessing
import sys
import time

import grpc

METHOD = "/sticky.demo.Counter/Add"


def add_request(session):
    """AddRequest{session, by: 1}, encoded by hand (no generated code)."""
    s = session.encode()
    return b"\x0a" + bytes([len(s)]) + s + b"\x10\x01"


async def session_loop(call, name, start, stop, out):
    request = add_request(name)
    cookie = None
    backends = set()
    lat = out["lat"]
    while True:
        now = time.monotonic()
        if now >= stop:
            break
        metadata = (("cookie", cookie),) if cookie else ()
        began = time.monotonic()
        try:
            c = call(request, metadata=metadata, timeout=10)
            await c
            md = await c.initial_metadata()
            ended = time.monotonic()
            for k, v in md:
                if k == "set-cookie":
                    cookie = v.split(";", 1)[0]
                elif k == "x-backend":
                    backends.add(v)
            if began >= start:
                lat.append(ended - began)
        except grpc.RpcError as e:
            if began >= start:
                out["errors"] += 1
                if len(out["error_samples"]) < 3:
                    out["error_samples"].append(f"{e.code()}: {e.details()}")
    out["cookies"] += 1 if cookie else 0
    out["moved"] += 1 if len(backends) > 1 else 0


async def process_main(target, seconds, sessions, warmup, pid):
    out = {"lat": [], "errors": 0, "error_samples": [], "cookies": 0, "moved": 0}
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), 20)
        call = channel.unary_unary(METHOD)
        start = time.monotonic() + warmup
        stop = start + seconds
        await asyncio.gather(
            *(session_loop(call, f"p{pid}s{i}", start, stop, out) for i in range(sessions))
        )
    return out


def worker(args):
    target, seconds, sessions, warmup, pid = args
    return asyncio.run(process_main(target, seconds, sessions, warmup, pid))


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[i] * 1e6


def main():
    target = sys.argv[1]
    seconds = float(sys.argv[2])
    procs = int(sys.argv[3])
    sessions = int(sys.argv[4])
    warmup = float(sys.argv[5])
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        parts = pool.map(worker, [(target, seconds, sessions, warmup, p) for p in range(procs)])
    lat = sorted(x for p in parts for x in p["lat"])
    errors = sum(p["errors"] for p in parts)
    print(
        json.dumps(
            {
                "calls": len(lat),
                "errors": errors,
                "error_samples": [s for p in parts for s in p["error_samples"]][:3],
                "seconds": seconds,
                "rps": len(lat) / seconds,
                "p50_us": percentile(lat, 0.50),
                "p90_us": percentile(lat, 0.90),
                "p99_us": percentile(lat, 0.99),
                "sessions": procs * sessions,
                "sessions_with_cookie": sum(p["cookies"] for p in parts),
                "sessions_moved": sum(p["moved"] for p in parts),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
