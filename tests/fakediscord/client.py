"""Run a plain ``discord.Client`` against a :class:`FakeDiscord` (login, connect, wait ready, clean close)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

import discord

from bot.discord.endpoints import endpoints

from .server import FakeDiscord

ClientT = TypeVar("ClientT", bound=discord.Client)


@asynccontextmanager
async def running_client(
    client: ClientT, fake: FakeDiscord, *, timeout: float = 5.0
) -> AsyncIterator[ClientT]:
    """Point discord.py at ``fake``, log in, connect and wait for ``on_ready``; close it afterwards.

    Build the client with a short ``guild_ready_timeout`` (e.g. 0.05): READY only fires that
    long after the last GUILD_CREATE. The previous endpoints are restored on exit.
    """
    with endpoints(fake.api_base, fake.gateway_url):
        task: asyncio.Task[None] | None = None
        try:
            await client.login(fake.token)
            task = asyncio.create_task(client.connect(), name="fakediscord-client-connect")
            ready = asyncio.create_task(client.wait_until_ready())
            done, _ = await asyncio.wait({task, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if ready not in done:
                ready.cancel()
                if task in done:
                    task.result()  # raises what made connect() stop
                raise TimeoutError(f"discord.py client not ready after {timeout}s")
            yield client
        finally:
            await client.close()
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout)
