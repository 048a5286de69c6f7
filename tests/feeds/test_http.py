"""The feed fetcher: conditional GETs, retries with backoff, size limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from bot.feeds.http import FeedError, FeedValidators

from .conftest import Server, Sleeps, hf_bytes

URL = "https://huggingface.co/api/daily_papers"


def sequence(*responses: httpx.Response | Exception):
    """Answer with each response in turn (raising the exceptions), then repeat the last one."""
    remaining = list(responses)

    def answer(request: httpx.Request) -> httpx.Response:
        item = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        if isinstance(item, Exception):
            raise item
        return item

    return answer


async def test_a_plain_get_returns_the_body_and_identifies_paperwatch(make_fetcher) -> None:
    server = Server(lambda request: httpx.Response(200, content=hf_bytes("2026-07-15")))
    fetcher = make_fetcher(server)

    result = await fetcher.get(URL, params={"date": "2026-07-15", "p": 0, "limit": 50})

    assert result.status == 200
    assert result.content == hf_bytes("2026-07-15")
    assert result.validators is None
    assert len(server.requests) == 1
    request = server.requests[0]
    assert request.url.params["date"] == "2026-07-15"
    assert request.url.params["p"] == "0"
    assert "paperwatch" in request.headers["User-Agent"]
    assert "If-None-Match" not in request.headers
    assert result.url == str(request.url)


async def test_validators_are_sent_back_and_304_gives_no_content(make_fetcher) -> None:
    etag, modified = '"v1-abc"', "Thu, 28 Nov 2024 14:47:20 GMT"

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers.get("If-None-Match") == etag:
            return httpx.Response(304)
        return httpx.Response(200, content=b"[]", headers={"ETag": etag, "Last-Modified": modified})

    server = Server(answer)
    fetcher = make_fetcher(server)

    first = await fetcher.get(URL)
    assert first.validators == FeedValidators(etag=etag, last_modified=modified)
    second = await fetcher.get(URL, validators=first.validators)

    assert second.status == 304
    assert second.not_modified
    assert second.content is None
    assert second.validators == first.validators
    assert server.requests[1].headers["If-None-Match"] == etag
    assert server.requests[1].headers["If-Modified-Since"] == modified


async def test_only_the_validators_present_are_sent(make_fetcher) -> None:
    server = Server(lambda request: httpx.Response(200, content=b"[]"))
    fetcher = make_fetcher(server)
    await fetcher.get(URL, validators=FeedValidators(last_modified="Thu, 28 Nov 2024 14:47:20 GMT"))
    assert "If-None-Match" not in server.requests[0].headers
    assert "If-Modified-Since" in server.requests[0].headers


async def test_429_with_retry_after_seconds_waits_exactly_that_long(make_fetcher, sleeps: Sleeps) -> None:
    server = Server(
        sequence(httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200, content=b"[]"))
    )
    result = await make_fetcher(server).get(URL)
    assert result.content == b"[]"
    assert sleeps.delays == [7.0]
    assert len(server.requests) == 2


async def test_retry_after_as_an_http_date_is_honoured_and_capped(make_fetcher, sleeps: Sleeps) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(hours=2), usegmt=True)
    server = Server(
        sequence(httpx.Response(503, headers={"Retry-After": later}), httpx.Response(200, content=b"[]"))
    )
    await make_fetcher(server, max_delay=30.0).get(URL)
    assert sleeps.delays == [30.0]


async def test_503_three_times_then_200_backs_off_with_growing_jittered_delays(
    make_fetcher, sleeps: Sleeps
) -> None:
    server = Server(
        sequence(
            httpx.Response(503), httpx.Response(503), httpx.Response(503), httpx.Response(200, content=b"ok")
        )
    )
    draws = iter([0.9, 0.6, 0.7])
    fetcher = make_fetcher(server, base_delay=1.0, rand=lambda: next(draws))

    result = await fetcher.get(URL)

    assert result.content == b"ok"
    assert len(server.requests) == 4
    assert sleeps.delays == pytest.approx([0.9 * 1, 0.6 * 2, 0.7 * 4])
    assert sleeps.delays == sorted(sleeps.delays)


async def test_backoff_is_capped_and_never_zero(make_fetcher, sleeps: Sleeps) -> None:
    server = Server(lambda request: httpx.Response(502))
    fetcher = make_fetcher(server, max_attempts=8, base_delay=2.0, max_delay=10.0, rand=lambda: 1.0)
    with pytest.raises(FeedError):
        await fetcher.get(URL)
    assert sleeps.delays == [2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]

    sleeps.delays.clear()
    unlucky = make_fetcher(server, max_attempts=3, base_delay=2.0, rand=lambda: 0.0)
    with pytest.raises(FeedError):
        await unlucky.get(URL)
    assert sleeps.delays and all(delay > 0 for delay in sleeps.delays)


async def test_500_forever_gives_up_after_max_attempts(make_fetcher, sleeps: Sleeps) -> None:
    server = Server(lambda request: httpx.Response(500))
    fetcher = make_fetcher(server, max_attempts=4)

    with pytest.raises(FeedError) as raised:
        await fetcher.get(URL, params={"date": "2025-09-30"})

    assert len(server.requests) == 4
    assert len(sleeps.delays) == 3
    message = str(raised.value)
    assert message == f"{URL}?date=2025-09-30 answered HTTP 500 after 4 attempts"
    assert "\n" not in message


async def test_a_timeout_is_retried(make_fetcher, sleeps: Sleeps) -> None:
    server = Server(sequence(httpx.ReadTimeout("slow"), httpx.Response(200, content=b"[]")))
    result = await make_fetcher(server).get(URL)
    assert result.content == b"[]"
    assert len(server.requests) == 2
    assert len(sleeps.delays) == 1


async def test_connection_errors_are_retried_then_reported(make_fetcher, sleeps: Sleeps) -> None:
    server = Server(sequence(httpx.ConnectError("refused")))
    with pytest.raises(FeedError, match=r"after 3 attempts") as raised:
        await make_fetcher(server, max_attempts=3).get(URL)
    assert len(server.requests) == 3
    assert URL in str(raised.value)


async def test_timeouts_forever_are_reported(make_fetcher) -> None:
    server = Server(sequence(httpx.ConnectTimeout("slow")))
    with pytest.raises(FeedError, match="timed out after 4 attempts"):
        await make_fetcher(server).get(URL)
    assert len(server.requests) == 4


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
async def test_other_4xx_fail_at_once(make_fetcher, sleeps: Sleeps, status: int) -> None:
    server = Server(lambda request: httpx.Response(status, text="nope"))
    with pytest.raises(FeedError, match=f"answered HTTP {status}$"):
        await make_fetcher(server).get(URL)
    assert len(server.requests) == 1
    assert sleeps.delays == []


async def test_a_400_body_is_returned_when_asked_for(make_fetcher) -> None:
    server = Server(lambda request: httpx.Response(400, content=b"<feed/>"))
    result = await make_fetcher(server).get(URL, accept_statuses={400})
    assert result.status == 400
    assert result.content == b"<feed/>"


async def test_a_body_past_max_bytes_is_refused_by_content_length(make_fetcher) -> None:
    server = Server(lambda request: httpx.Response(200, content=b"x" * 2048))
    with pytest.raises(FeedError, match="more than 1000 bytes"):
        await make_fetcher(server, max_bytes=1000).get(URL)
    assert len(server.requests) == 1


async def test_a_streamed_body_past_max_bytes_is_cut_off(make_fetcher) -> None:
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        while True:
            sent.append(1)
            yield b"y" * 256

    server = Server(lambda request: httpx.Response(200, content=endless()))
    with pytest.raises(FeedError, match="more than 1000 bytes"):
        await make_fetcher(server, max_bytes=1000).get(URL)
    assert len(sent) <= 5


async def test_a_body_of_exactly_max_bytes_is_fine(make_fetcher) -> None:
    server = Server(lambda request: httpx.Response(200, content=b"z" * 1000))
    result = await make_fetcher(server, max_bytes=1000).get(URL)
    assert result.content == b"z" * 1000


async def test_redirects_are_followed_and_the_link_header_kept(make_fetcher) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "old.example":
            return httpx.Response(301, headers={"Location": "https://new.example/feed"})
        return httpx.Response(
            200, content=b"[]", headers={"Link": '<https://new.example/feed?p=1>; rel="next"'}
        )

    server = Server(answer)
    result = await make_fetcher(server).get("https://old.example/feed")
    assert result.content == b"[]"
    assert result.link == '<https://new.example/feed?p=1>; rel="next"'
    assert len(server.requests) == 2


async def test_a_request_that_cannot_be_made_fails_at_once(make_fetcher, sleeps: Sleeps) -> None:
    server = Server(sequence(httpx.UnsupportedProtocol("Request URL is missing an 'http://' protocol.")))
    with pytest.raises(FeedError, match="UnsupportedProtocol"):
        await make_fetcher(server).get("example.org/feed")
    assert len(server.requests) == 1
    assert sleeps.delays == []
