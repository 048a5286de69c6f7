"""Discord-shaped error responses and the fault-injection rules of the fake."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JSON_CONTENT_TYPE = "application/json"  # discord.py only parses JSON when the header is exactly this

#: Discord's JSON error codes the fake uses, with Discord's messages.
ERROR_MESSAGES: dict[int, str] = {
    0: "General error",
    10003: "Unknown Channel",
    10004: "Unknown Guild",
    10008: "Unknown Message",
    10013: "Unknown User",
    10015: "Unknown Webhook",
    10062: "Unknown interaction",
    10063: "Unknown application command",
    40060: "Interaction has already been acknowledged.",
    50001: "Missing Access",
    50005: "Cannot edit a message authored by another user",
    50006: "Cannot send an empty message",
    50007: "Cannot send messages to this user",
    50013: "Missing Permissions",
    50033: "Invalid Recipient(s)",
    50035: "Invalid Form Body",
}

_STATUS_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

#: The code a status gets when a fault rule names none.
_DEFAULT_CODES = {403: 50013, 404: 0}


def json_response(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON response whose Content-Type is exactly ``application/json`` (no charset)."""
    all_headers = {"Content-Type": JSON_CONTENT_TYPE}
    if headers:
        all_headers.update(headers)
    return web.Response(body=json.dumps(data).encode(), status=status, headers=all_headers)


class DiscordHTTPError(Exception):
    """Raised inside route handlers; becomes a Discord-shaped JSON error response."""

    def __init__(
        self,
        status: int,
        code: int = 0,
        message: str | None = None,
        *,
        errors: Mapping[str, Any] | None = None,
    ) -> None:
        if message is None:
            message = ERROR_MESSAGES.get(code) if code else None
        if message is None:
            message = f"{status}: {_STATUS_REASONS.get(status, 'Error')}"
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            data["errors"] = self.errors
        return data

    def response(self) -> web.Response:
        return json_response(self.body(), status=self.status)


class FormErrors:
    """Collects ``Invalid Form Body`` (50035) errors in Discord's nested ``_errors`` layout."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}

    def add(self, path: Sequence[str | int], code: str, message: str) -> None:
        node = self.tree
        for part in path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def __bool__(self) -> bool:
        return bool(self.tree)

    def raise_if_any(self) -> None:
        if self.tree:
            raise DiscordHTTPError(400, 50035, errors=self.tree)


@dataclass
class FaultRule:
    """One fault to inject: a status to answer instead of (or after) the real handler, or a delay.

    ``path_regex`` is matched with :func:`re.fullmatch` against the path below the API
    base, e.g. ``r"/channels/\\d+/messages"``; ``method`` ``"*"`` matches any method.
    ``times=None`` means forever (until :meth:`cancel`).
    """

    method: str
    path_regex: str
    status: int | None = None
    times: int | None = 1
    retry_after: float = 1.0
    global_: bool = False
    scope: str = "user"
    code: int | None = None
    message: str | None = None
    delay: float = 0.0
    after_effect: bool = False
    hits: int = 0
    _pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.method = self.method.upper()
        self._pattern = re.compile(self.path_regex)

    @property
    def active(self) -> bool:
        return self.times is None or self.hits < self.times

    def matches(self, method: str, path: str) -> bool:
        return (
            self.active and self.method in ("*", method.upper()) and self._pattern.fullmatch(path) is not None
        )

    def cancel(self) -> None:
        self.times = self.hits

    def response(self, bucket: str = "fakebucket") -> web.Response:
        assert self.status is not None
        status = self.status
        if status == 429:
            return ratelimited_response(
                self.retry_after, global_=self.global_, scope=self.scope, code=self.code, bucket=bucket
            )
        if status in (502, 504):
            # Cloudflare answers these itself, with HTML
            html = f"<html><head><title>{status} {_STATUS_REASONS[status]}</title></head></html>"
            return web.Response(text=html, status=status, content_type="text/html")
        if status == 503 and self.code is None:
            return web.Response(text="upstream connect error or disconnect/reset before headers", status=503)
        code = self.code if self.code is not None else _DEFAULT_CODES.get(status, 0)
        return DiscordHTTPError(status, code, self.message).response()


def ratelimited_response(
    retry_after: float,
    *,
    global_: bool = False,
    scope: str = "user",
    code: int | None = None,
    bucket: str = "fakebucket",
) -> web.Response:
    """A 429 exactly as Discord sends it (``Via`` header included, which discord.py requires)."""
    body: dict[str, Any] = {
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": global_,
    }
    if code is not None:
        body["code"] = code
    headers = {
        "Via": "1.1 google",
        "Retry-After": str(max(1, math.ceil(retry_after))),
        "X-RateLimit-Scope": "global" if global_ else scope,
    }
    if global_:
        headers["X-RateLimit-Global"] = "true"
    else:
        headers.update(
            {
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
                "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                "X-RateLimit-Bucket": bucket,
            }
        )
    return json_response(body, status=429, headers=headers)


def form_error(path: Sequence[str | int], code: str, message: str) -> DiscordHTTPError:
    """A single ``Invalid Form Body`` error at ``path``."""
    errors = FormErrors()
    errors.add(path, code, message)
    return DiscordHTTPError(400, 50035, errors=errors.tree)
