"""Real gRPC peers for stickyctl serve's tests (grpcio from the project venv).

  grpc_peer.py server NAME   a backend on 127.0.0.1:<ephemeral>; prints
                             "listening on 127.0.0.1:PORT"; every RPC answers
                             NAME (body and `x-backend` trailing
                             metadata: headers, message and status leave
                             in one write, so a killed backend never leaves
                             a half-answered, unretriable call).
  grpc_peer.py client TARGET a proxyless client (GRPC_XDS_BOOTSTRAP set by the
                             caller) reading one command per stdin line:
                             "call SESSION" -> one unary RPC carrying SESSION's
                             cookie; prints one JSON line {session, backend,
                             cookie, error}. "quit" ends it.
  grpc_peer.py loop TARGET N EVERY
                             steady traffic until stdin closes: N sessions
                             (g0..), one RPC each in turn, and every EVERY
                             RPCs a new session's first RPC (n0..); one JSON
                             line per RPC {t0, t, session, new, backend,
                             error} (t0/t: unix seconds at start/end).

The application's part of gRFC A55: copy `set-cookie` from the response
metadata into the `cookie` of later calls of the same session.
"""
import json
import sys
import threading
import time
from concurrent import futures

import grpc

METHOD = "/sticky.demo.Counter/Add"


def server(name):
    class Handler(grpc.GenericRpcHandler):
        def service(self, details):
            def unary(request, context):
                context.set_trailing_metadata((("x-backend", name),))
                return name.encode()

            return grpc.unary_unary_rpc_method_handler(unary)

    s = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    s.add_generic_rpc_handlers((Handler(),))
    port = s.add_insecure_port("127.0.0.1:0")
    s.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    s.wait_for_termination()


def client(target):
    channel = grpc.insecure_channel(target)
    call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
    cookies = {}
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        session = words[1] if len(words) > 1 else "-"
        metadata = []
        if session in cookies:
            metadata.append(("cookie", cookies[session]))
        out = {"session": session, "backend": None, "cookie": None, "error": None}
        began = time.monotonic()
        try:
            body, c = call.with_call(b"", metadata=metadata, timeout=10, wait_for_ready=True)
            out["backend"] = body.decode()
            for k, v in c.initial_metadata():
                if k == "set-cookie":
                    cookies[session] = v.split(";", 1)[0]
                    out["cookie"] = cookies[session]
        except grpc.RpcError as e:
            out["error"] = f"{e.code()}: {e.details()}"
        out["ms"] = round((time.monotonic() - began) * 1000, 2)
        print(json.dumps(out), flush=True)


def loop(target, n, every):
    channel = grpc.insecure_channel(target)
    call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
    stop = threading.Event()

    def watch_stdin():
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    cookies = {}
    i = 0
    fresh = 0
    while not stop.is_set():
        if every and i % every == every - 1:
            session, new = f"n{fresh}", True
            fresh += 1
        else:
            session, new = f"g{i % n}", False
        i += 1
        metadata = [("cookie", cookies[session])] if session in cookies else []
        out = {"t0": time.time(), "session": session, "new": new, "backend": None, "error": None}
        try:
            body, c = call.with_call(b"", metadata=metadata, timeout=10, wait_for_ready=True)
            out["backend"] = body.decode()
            for k, v in c.initial_metadata():
                if k == "set-cookie" and not new:
                    cookies[session] = v.split(";", 1)[0]
        except grpc.RpcError as e:
            out["error"] = f"{e.code()}: {e.details()}"
        out["t"] = time.time()
        print(json.dumps(out), flush=True)
        time.sleep(0.002)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2])
    elif sys.argv[1] == "loop":
        loop(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        client(sys.argv[2])
