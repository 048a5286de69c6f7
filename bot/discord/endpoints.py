"""Point discord.py at the Discord endpoints of docs/configuration.md (``api_base``, ``gateway_url``).

discord.py 2.7 has no public option for either URL, so this is the one place that sets the
two class attributes the library itself reads:

* ``discord.http.Route.BASE`` — every REST call (``HTTPClient.request`` and the interaction
  webhook adapter) builds its URL as ``Route.BASE + path`` when the ``Route`` is created.
  discord.py assigns this attribute itself (``http._set_api_version``), and it is the usual
  hook for REST proxies.
* ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` — ``Client.connect`` opens its first
  connection there (it never asks ``GET /gateway/bot``), and goes back there after a
  non-resumable INVALID_SESSION. Resumes use READY's ``resume_gateway_url``; an
  ``AutoShardedClient`` without a fixed ``shard_count`` uses the URL from ``GET /gateway/bot``
  (answered by whatever ``api_base`` points at).

Both are process-wide: call :func:`apply_endpoints` before creating/starting the client.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

DEFAULT_API_BASE = "https://discord.com/api/v10"
DEFAULT_GATEWAY_URL = "wss://gateway.discord.gg/"


def _check_url(value: str, schemes: tuple[str, ...], what: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise ValueError(f"{what} must be a {'/'.join(schemes)} URL, got {value!r}")


def apply_endpoints(api_base: str, gateway_url: str) -> None:
    """Make discord.py use ``api_base`` for REST and ``gateway_url`` for the gateway.

    ``api_base`` includes the version, e.g. ``https://discord.com/api/v10`` (a trailing slash
    is dropped); ``gateway_url`` is a ``ws``/``wss`` URL (discord.py adds ``v``/``encoding``).
    """
    _check_url(api_base, ("http", "https"), "api_base")
    _check_url(gateway_url, ("ws", "wss"), "gateway_url")
    Route.BASE = api_base.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def current_endpoints() -> tuple[str, str]:
    """The ``(api_base, gateway_url)`` discord.py uses now."""
    return Route.BASE, str(DiscordWebSocket.DEFAULT_GATEWAY)


@contextmanager
def endpoints(api_base: str, gateway_url: str) -> Iterator[None]:
    """:func:`apply_endpoints` for the duration of a ``with`` block, then restore the previous ones."""
    previous = current_endpoints()
    apply_endpoints(api_base, gateway_url)
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = previous[0], yarl.URL(previous[1])
