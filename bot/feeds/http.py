"""The HTTP fetcher every feed source goes through: conditional GETs, size limit, retries."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

logger = logging.getLogger(__name__)

USER_AGENT = "paperwatch/0.1 (Discord bot for research-paper alerts; python-httpx)"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024

QueryParams = Mapping[str, str | int]


class FeedError(Exception):
    """A feed could not be fetched; the message names the URL and what went wrong."""


@dataclass(frozen=True, slots=True)
class FeedValidators:
    """What a feed answered last time, sent back so an unchanged feed answers 304."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One feed response. `content` is None when the feed answered 304 Not Modified."""

    url: str
    status: int
    content: bytes | None
    validators: FeedValidators | None
    """Validators to send next time; on 304 the ones that were sent, unless the server gave new ones."""
    link: str | None = None
    """The `Link` header (paging), when present."""
    content_type: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == httpx.codes.NOT_MODIFIED


class _RetryableError(Exception):
    """One attempt failed in a way worth retrying."""

    def __init__(self, what: str, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.retry_after = retry_after


class FeedFetcher:
    """Fetches feed URLs through one shared `httpx.AsyncClient`.

    Transient failures (timeouts, connection errors, HTTP 429 and 5xx) are retried up to
    `max_attempts` times with exponential backoff and full jitter, honouring `Retry-After`;
    any other 4xx fails at once. Bodies larger than `max_bytes` are refused.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_attempts: int = 4,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        user_agent: str = USER_AGENT,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self._client = client
        self._max_bytes = max_bytes
        self._max_attempts = max_attempts
        self._base_delay = max(0.0, base_delay)
        self._max_delay = max(self._base_delay, max_delay)
        self._sleep = sleep
        self._rand = rand
        self._user_agent = user_agent

    async def get(
        self,
        url: str,
        *,
        params: QueryParams | None = None,
        validators: FeedValidators | None = None,
        accept_statuses: Collection[int] = (),
    ) -> FetchResult:
        """GET `url`, retrying transient failures; raise FeedError when giving up.

        `accept_statuses` lists error statuses whose body the caller wants anyway
        (the arXiv API explains a bad query in the body of an HTTP 400).
        """
        try:
            request_url = httpx.URL(url)
            if params:
                request_url = request_url.copy_merge_params(dict(params))
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise FeedError(f"{url} is not a valid URL: {exc}") from exc
        shown_url = str(request_url)
        headers = {"User-Agent": self._user_agent, "Accept": "*/*"}
        if validators is not None:
            if validators.etag:
                headers["If-None-Match"] = validators.etag
            if validators.last_modified:
                headers["If-Modified-Since"] = validators.last_modified

        for attempt in range(1, self._max_attempts + 1):
            try:
                return await self._attempt(request_url, shown_url, headers, validators, accept_statuses)
            except _RetryableError as exc:
                if attempt == self._max_attempts:
                    raise FeedError(f"{shown_url} {exc.what} after {attempt} attempts") from exc
                delay = self._delay(attempt, exc.retry_after)
                logger.info(
                    "%s %s (attempt %d of %d); retrying in %.1f s",
                    shown_url,
                    exc.what,
                    attempt,
                    self._max_attempts,
                    delay,
                )
                await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before the next attempt: the server's wish, else jittered backoff."""
        if retry_after is not None and retry_after > 0:
            return min(retry_after, self._max_delay)
        ceiling = min(self._max_delay, self._base_delay * 2.0 ** min(attempt - 1, 60))
        floor = self._base_delay / 10
        return max(floor, self._rand() * ceiling)

    async def _attempt(
        self,
        request_url: httpx.URL,
        shown_url: str,
        headers: Mapping[str, str],
        sent: FeedValidators | None,
        accept_statuses: Collection[int],
    ) -> FetchResult:
        try:
            async with self._client.stream(
                "GET", request_url, headers=headers, follow_redirects=True
            ) as response:
                status = response.status_code
                if status == httpx.codes.NOT_MODIFIED:
                    return self._result(shown_url, response, None, sent)
                if status == httpx.codes.TOO_MANY_REQUESTS or status >= 500:
                    raise _RetryableError(f"answered HTTP {status}", _retry_after(response))
                if not (200 <= status < 300) and status not in accept_statuses:
                    raise FeedError(f"{shown_url} answered HTTP {status}")
                content = await self._read_body(response, shown_url)
                return self._result(shown_url, response, content, None)
        except httpx.TimeoutException as exc:
            raise _RetryableError("timed out") from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise _RetryableError(f"failed to connect or read ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise FeedError(f"{shown_url} failed: {type(exc).__name__}: {exc}") from exc

    async def _read_body(self, response: httpx.Response, shown_url: str) -> bytes:
        too_big = f"{shown_url} sent more than {self._max_bytes} bytes"
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self._max_bytes:
            raise FeedError(f"{too_big} (Content-Length {int(declared)})")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body.extend(chunk)
            if len(body) > self._max_bytes:
                raise FeedError(too_big)
        return bytes(body)

    @staticmethod
    def _result(
        shown_url: str, response: httpx.Response, content: bytes | None, sent: FeedValidators | None
    ) -> FetchResult:
        etag = response.headers.get("ETag")
        last_modified = response.headers.get("Last-Modified")
        received = FeedValidators(etag, last_modified) if etag or last_modified else None
        return FetchResult(
            url=shown_url,
            status=response.status_code,
            content=content,
            validators=received or sent,
            link=response.headers.get("Link"),
            content_type=response.headers.get("Content-Type"),
        )


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds asked for by a `Retry-After` header (delta-seconds or HTTP-date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
