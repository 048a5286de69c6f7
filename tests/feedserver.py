"""A local Hugging Face Daily Papers / arXiv RSS server for end-to-end tests.

Serves real fixture bytes (or entries a test edits) on 127.0.0.1, records every request,
and can answer with faults: a status, a delay, an HTML page, truncated JSON.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"


def load_hf_day(name: str) -> list[dict[str, Any]]:
    """The entries of a real HF fixture day, e.g. `2025-03-17`."""
    return json.loads((FIXTURES / "hf_daily" / f"{name}.json").read_text(encoding="utf-8"))


@dataclass
class Fault:
    status: int = 500
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    times: int = 1


class FeedServer:
    def __init__(self) -> None:
        self.days: dict[str, list[dict[str, Any]]] = {}
        """HF entries per `date=` value; a missing day answers `[]` (a weekend)."""
        self.rss: bytes = b""
        self.requests: list[tuple[float, str, dict[str, str]]] = []
        self.faults: list[Fault] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hf_url(self) -> str:
        return f"{self.base}/api/daily_papers"

    @property
    def rss_url(self) -> str:
        return f"{self.base}/rss/"

    async def start(self) -> FeedServer:
        app = web.Application()
        app.router.add_get("/api/daily_papers", self._daily)
        app.router.add_get("/rss/{cats}", self._rss)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FeedServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def fail(self, fault: Fault) -> None:
        self.faults.append(fault)

    def set_upvotes(self, day: str, arxiv_id: str, upvotes: int) -> None:
        for entry in self.days[day]:
            if entry["paper"]["id"] == arxiv_id:
                entry["paper"]["upvotes"] = upvotes
                return
        raise KeyError(arxiv_id)

    def hf_requests(self) -> list[dict[str, str]]:
        return [q for _, path, q in self.requests if path == "/api/daily_papers"]

    async def _fault(self) -> web.Response | None:
        if not self.faults:
            return None
        fault = self.faults[0]
        fault.times -= 1
        if fault.times <= 0:
            self.faults.pop(0)
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status == 200 and not fault.body:
            return None
        return web.Response(
            status=fault.status,
            body=fault.body,
            headers={"Content-Type": fault.content_type, **fault.headers},
        )

    async def _daily(self, request: web.Request) -> web.Response:
        self.requests.append((time.monotonic(), request.path, dict(request.query)))
        failed = await self._fault()
        if failed is not None:
            return failed
        day = request.query.get("date", "")
        page = int(request.query.get("p", "0"))
        limit = int(request.query.get("limit", "50"))
        entries = self.days.get(day, [])
        chunk = entries[page * limit : (page + 1) * limit]
        return web.Response(body=json.dumps(chunk).encode(), headers={"Content-Type": "application/json"})

    async def _rss(self, request: web.Request) -> web.Response:
        self.requests.append((time.monotonic(), request.path, dict(request.query)))
        failed = await self._fault()
        if failed is not None:
            return failed
        return web.Response(body=self.rss, headers={"Content-Type": "application/rss+xml"})
