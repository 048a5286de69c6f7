"""What the metrics see of Discord: REST requests and 429s by route, and the connected shards.

REST requests are counted with an `aiohttp.TraceConfig`, the hook discord.py offers for
watching its HTTP traffic (`Client(http_trace=…)`): it sees every request that reaches
Discord, including each retry after a 429 that discord.py's rate limiter handles itself.
The route label is the route's template (`POST /channels/{channel_id}/messages`), never a
raw id or token, so the number of label values stays small.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from urllib.parse import urlsplit

import aiohttp
import discord

from bot import metrics
from bot.metrics_server import GatewayProbe

_LITERAL = re.compile(r"^[a-z@][a-z0-9@_-]{0,31}$")
_TOKEN_AFTER = {"webhooks": "{webhook_token}", "interactions": "{interaction_token}"}


def route_template(method: str, path: str) -> str:
    """`POST /channels/123/messages` → `POST /channels/{channel_id}/messages`.

    An id (all digits) is named after the collection before it; the segment after a webhook's
    or an interaction's id is its token; any other segment that is not a plain lower-case word
    (an emoji, a name) becomes `{param}`.
    """
    segments = [part for part in path.split("/") if part]
    out: list[str] = []
    for index, segment in enumerate(segments):
        before = segments[index - 1] if index else ""
        if index >= 2 and before.isdigit() and segments[index - 2] in _TOKEN_AFTER:
            out.append(_TOKEN_AFTER[segments[index - 2]])
        elif segment.isdigit():
            name = before[:-1] if before.endswith("s") else before
            out.append(f"{{{name}_id}}" if _LITERAL.match(before) else "{id}")
        elif before == "reactions":
            out.append("{emoji}")
        elif _LITERAL.match(segment):
            out.append(segment)
        else:
            out.append("{param}")
    return f"{method.upper()} /{'/'.join(out)}"


def request_trace(api_base: str) -> aiohttp.TraceConfig:
    """Counts each REST request to `api_base` (by route and status) and each 429 (by scope)."""
    base = urlsplit(api_base)
    host, prefix = base.hostname, base.path.rstrip("/")

    def route_of(method: str, url: object) -> str | None:
        parts = urlsplit(str(url))
        if parts.hostname != host or not parts.path.startswith(prefix + "/"):
            return None  # the gateway, the CDN: not the REST API
        return route_template(method, parts.path[len(prefix) :])

    async def on_end(
        session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        route = route_of(params.method, params.url)
        if route is not None:
            scope = params.response.headers.get("X-RateLimit-Scope")
            metrics.record_discord_request(route, params.response.status, scope)

    async def on_exception(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        route = route_of(params.method, params.url)
        if route is not None:
            metrics.record_discord_request(route, None)

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_end)
    trace.on_request_exception.append(on_exception)
    return trace


def gateway_probe(client: discord.Client) -> GatewayProbe:
    """(connected, expected) shards of `client`: connected = its websocket is open after READY."""

    def probe() -> tuple[int, int]:
        if isinstance(client, discord.AutoShardedClient):
            expected = len(client.shard_ids) if client.shard_ids else (client.shard_count or 1)
            if client.is_closed() or not client.is_ready():
                return 0, expected
            return sum(1 for shard in client.shards.values() if not shard.is_closed()), expected
        ws = getattr(client, "ws", None)
        connected = not client.is_closed() and client.is_ready() and ws is not None and ws.open
        return int(connected), 1

    return probe
