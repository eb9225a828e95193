"""An MCP server (official Python SDK, streamable HTTP, stateful) for the
wrap-mode check: one tool, `whoami`, answering with this instance's name, the
Mcp-Session-Id the request carried (what sticky restored) and how many calls
this session made here. Usage: server.py NAME PORT
"""

import collections
import sys

from mcp.server.mcpserver import Context, MCPServer

NAME, PORT = sys.argv[1], int(sys.argv[2])
server = MCPServer(NAME)
calls: collections.Counter = collections.Counter()


@server.tool()
def whoami(ctx: Context) -> dict:
    """Which instance answered, and the session id it received."""
    request = ctx.request_context.request
    received = request.headers.get("mcp-session-id", "") if request is not None else ""
    calls[received] += 1
    return {"instance": NAME, "received": received, "calls": calls[received]}


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=PORT)
