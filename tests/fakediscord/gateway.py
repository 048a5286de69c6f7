"""Gateway sessions and websocket connections of the fake (JSON encoding, API v10)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .model import JSON


class Op:
    DISPATCH = 0
    HEARTBEAT = 1
    IDENTIFY = 2
    PRESENCE_UPDATE = 3
    VOICE_STATE_UPDATE = 4
    RESUME = 6
    RECONNECT = 7
    REQUEST_GUILD_MEMBERS = 8
    INVALID_SESSION = 9
    HELLO = 10
    HEARTBEAT_ACK = 11


class Intent:
    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_MESSAGES = 1 << 9
    DIRECT_MESSAGES = 1 << 12


#: Which intent a dispatch needs (events not listed are always sent).
EVENT_INTENTS: dict[str, int] = {
    "GUILD_CREATE": Intent.GUILDS,
    "GUILD_UPDATE": Intent.GUILDS,
    "GUILD_DELETE": Intent.GUILDS,
    "GUILD_ROLE_CREATE": Intent.GUILDS,
    "GUILD_ROLE_UPDATE": Intent.GUILDS,
    "GUILD_ROLE_DELETE": Intent.GUILDS,
    "CHANNEL_CREATE": Intent.GUILDS,
    "CHANNEL_UPDATE": Intent.GUILDS,
    "CHANNEL_DELETE": Intent.GUILDS,
    "GUILD_MEMBER_ADD": Intent.GUILD_MEMBERS,
    "GUILD_MEMBER_UPDATE": Intent.GUILD_MEMBERS,
    "GUILD_MEMBER_REMOVE": Intent.GUILD_MEMBERS,
}
MESSAGE_EVENTS = frozenset({"MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE"})

#: Close codes after which the fake forgets the session (a RESUME then gets op 9 ``false``).
SESSION_ENDING_CLOSE_CODES = frozenset({4007, 4009})


@dataclass
class GatewaySession:
    """A gateway session: survives its connection, buffers dispatches, replays them on RESUME."""

    session_id: str
    shard_id: int
    shard_count: int
    intents: int
    identify: JSON
    seq: int = 0
    alive: bool = True
    events: list[tuple[int, str, str]] = field(default_factory=list)
    connection: GatewayConnection | None = None

    def handles_guild(self, guild_id: int | None) -> bool:
        if guild_id is None:
            return self.shard_id == 0
        return (guild_id >> 22) % self.shard_count == self.shard_id

    def wants(self, event: str, *, in_guild: bool) -> bool:
        if event in MESSAGE_EVENTS:
            needed = Intent.GUILD_MESSAGES if in_guild else Intent.DIRECT_MESSAGES
        else:
            needed = EVENT_INTENTS.get(event, 0)
        return needed == 0 or bool(self.intents & needed)

    def dispatch(self, event: str, data: Any) -> int:
        self.seq += 1
        frame = json.dumps({"op": Op.DISPATCH, "t": event, "s": self.seq, "d": data})
        self.events.append((self.seq, event, frame))
        if self.connection is not None:
            self.connection.wake()
        return self.seq

    def dispatched(self, event: str | None = None) -> list[JSON]:
        """Decoded dispatches sent (or buffered) in this session, optionally of one event type."""
        return [json.loads(frame) for _, name, frame in self.events if event is None or name == event]


class GatewayConnection:
    """One websocket connection. Dispatches are written by a single writer task, in ``seq`` order."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, *, opened_at: float) -> None:
        self.ws = ws
        self.request = request
        self.path = request.path
        self.query = dict(request.query)
        self.opened_at = opened_at
        self.closed_at: float | None = None
        self.close_code: int | None = None
        self.closed_by_server = False
        self.session: GatewaySession | None = None
        self.resumed = False
        self.heartbeats = 0
        self.received: list[JSON] = []
        self._sent_seq = 0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        session = self.session.session_id if self.session else None
        return f"<GatewayConnection path={self.path} session={session} close_code={self.close_code}>"

    @property
    def open(self) -> bool:
        return self.closed_at is None and not self.ws.closed

    def wake(self) -> None:
        self._wake.set()

    async def send_json(self, payload: JSON) -> None:
        if self.ws.closed:
            return
        async with self._lock:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(json.dumps(payload))

    def attach(self, session: GatewaySession, *, after_seq: int) -> None:
        """Start streaming ``session``'s dispatches with ``seq > after_seq`` to this socket."""
        previous = session.connection
        if previous is not None and previous is not self:
            previous.session = None
            previous.wake()  # its writer sees it has no session any more and stops
        session.connection = self
        self.session = session
        self._sent_seq = after_seq
        self._writer = asyncio.create_task(self._write_loop(), name="fakediscord-gateway-writer")
        self.wake()

    async def _write_loop(self) -> None:
        while True:
            session = self.session
            if session is None or self.ws.closed:
                return
            while self._sent_seq < len(session.events) and not self.ws.closed:
                frame = session.events[self._sent_seq][2]
                async with self._lock:
                    try:
                        await self.ws.send_str(frame)
                    except (ConnectionError, RuntimeError):
                        return
                self._sent_seq += 1
            await self._wake.wait()
            self._wake.clear()

    def detach(self) -> None:
        if self.session is not None and self.session.connection is self:
            self.session.connection = None
        self.session = None
        if self._writer is not None:
            self._writer.cancel()
        self.wake()

    async def close(self, code: int, message: bytes = b"") -> None:
        self.closed_by_server = True
        if self.close_code is None:
            self.close_code = code
        self.detach()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=code, message=message)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self.closed_by_server = True
        self.detach()
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    async def finish(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer
