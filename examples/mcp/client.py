"""The official MCP Python SDK client against sticky in wrap mode: each
session initializes, then calls `whoami`, its HTTP requests alternating
between two Envoy replicas. Checks that every call of a session reached the
instance that minted its id, that the instance received exactly its own id,
and that the client never held that raw id. Usage: client.py PORT_A PORT_B SESSIONS CALLS
Prints one line per session and exits 1 on any mismatch.
"""

import asyncio
import itertools
import json
import sys

import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

PORT_A, PORT_B, SESSIONS, CALLS = (int(a) for a in sys.argv[1:5])


def alternating_client(seen: set) -> httpx2.AsyncClient:
    """An HTTP client that sends each request to the next replica and
    records every Mcp-Session-Id value it sent or received."""
    ports = itertools.cycle([PORT_A, PORT_B])

    async def to_next_replica(request: httpx2.Request) -> None:
        request.url = request.url.copy_with(port=next(ports))
        seen.add(request.headers.get("mcp-session-id", ""))

    async def record(response: httpx2.Response) -> None:
        seen.add(response.headers.get("mcp-session-id", ""))

    return httpx2.AsyncClient(
        event_hooks={"request": [to_next_replica], "response": [record]}, timeout=10
    )


async def one_session(i: int) -> bool:
    seen: set = set()
    async with alternating_client(seen) as http:
        url = f"http://127.0.0.1:{PORT_A}/mcp"
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                answers = []
                for _ in range(CALLS):
                    result = await session.call_tool("whoami", {})
                    answers.append(json.loads(result.content[0].text))
    instances = {a["instance"] for a in answers}
    received = {a["received"] for a in answers}
    counts = [a["calls"] for a in answers]
    raw_seen = received & seen
    ok = (
        len(instances) == 1
        and len(received) == 1
        and counts == list(range(1, CALLS + 1))
        and not raw_seen
    )
    print(
        f"session {i}: {CALLS} calls via two replicas → {sorted(instances)}, "
        f"server saw id {sorted(received)[0][:13]}… every time, calls {counts}, "
        f"client held {len(seen - {''})} token value(s), never the raw id: {'ok' if ok else 'MISMATCH'}"
    )
    return ok


async def main() -> int:
    results = [await one_session(i) for i in range(SESSIONS)]
    return 0 if all(results) else 1


sys.exit(asyncio.run(main()))
