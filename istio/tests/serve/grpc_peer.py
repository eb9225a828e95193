"""Real gRPC peers for stickyctl serve's tests (grpcio from the project venv).

  grpc_peer.py server NAME   a backend on 127.0.0.1:<ephemeral>; prints
                             "listening on 127.0.0.1:PORT"; every RPC answers
                             NAME (body and `x-backend` metadata).
  grpc_peer.py client TARGET a proxyless client (GRPC_XDS_BOOTSTRAP set by the
                             caller) reading one command per stdin line:
                             "call SESSION" -> one unary RPC carrying SESSION's
                             cookie; prints one JSON line {session, backend,
                             cookie, error}. "quit" ends it.

The application's part of gRFC A55: copy `set-cookie` from the response
metadata into the `cookie` of later calls of the same session.
"""
import json
import sys
import time
from concurrent import futures

import grpc

METHOD = "/sticky.demo.Counter/Add"


def server(name):
    class Handler(grpc.GenericRpcHandler):
        def service(self, details):
            def unary(request, context):
                context.send_initial_metadata((("x-backend", name),))
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


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2])
    else:
        client(sys.argv[2])
