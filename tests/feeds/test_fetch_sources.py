"""Fetching each source end to end through the fetcher, with the real captured bodies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import date

import httpx
import pytest

from bot.feeds.arxiv_api import fetch_arxiv_api
from bot.feeds.arxiv_rss import fetch_arxiv_rss
from bot.feeds.hf import fetch_hf_day
from bot.feeds.http import FeedError, FeedFetcher, FeedValidators

from .conftest import RSS_ALL, Server, arxiv_bytes, hf_bytes

HF_URL = "https://huggingface.co/api/daily_papers"
DAY = date(2025, 9, 30)


def pages(*bodies: bytes, headers: Callable[[int], dict[str, str]] | None = None) -> Server:
    """A Daily Papers stand-in serving `bodies[p]` for page p and `[]` past the end."""

    def answer(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("p", "0"))
        body = bodies[page] if page < len(bodies) else b"[]"
        return httpx.Response(200, content=body, headers=headers(page) if headers else None)

    return Server(answer)


def ids(day: str) -> list[str]:
    import json

    return [entry["paper"]["id"] for entry in json.loads(hf_bytes(day))]


async def test_a_full_page_leads_to_the_next_page(make_fetcher) -> None:
    server = pages(hf_bytes("2025-09-30"), hf_bytes("2025-10-03"))

    result, validators = await fetch_hf_day(make_fetcher(server), HF_URL, DAY)

    assert result.error is None
    assert [p.arxiv_id for p in result.papers] == ids("2025-09-30") + ids("2025-10-03")
    assert len(result.papers) == 89
    assert [r.url.params["p"] for r in server.requests] == ["0", "1"]
    assert {r.url.params["date"] for r in server.requests} == {"2025-09-30"}
    assert {r.url.params["limit"] for r in server.requests} == {"50"}
    assert validators is None


async def test_an_empty_page_ends_the_day(make_fetcher) -> None:
    server = pages(hf_bytes("2025-09-30"))
    result, _ = await fetch_hf_day(make_fetcher(server), HF_URL, DAY)
    assert len(result.papers) == 50
    assert [r.url.params["p"] for r in server.requests] == ["0", "1"]


async def test_link_next_headers_are_followed_until_an_empty_page(make_fetcher) -> None:
    def link(page: int) -> dict[str, str]:
        if page >= 2:
            return {}
        return {"Link": f'<{HF_URL}?date=2025-09-30&p={page + 1}&limit=50>; rel="next"'}

    server = pages(hf_bytes("2025-09-30"), hf_bytes("2024-06-21"), headers=link)

    result, _ = await fetch_hf_day(make_fetcher(server), HF_URL, DAY)

    assert [p.arxiv_id for p in result.papers] == ids("2025-09-30") + ids("2024-06-21")
    assert [r.url.params["p"] for r in server.requests] == ["0", "1", "2"]


async def test_a_relative_link_next_among_other_links_is_followed(make_fetcher) -> None:
    def link(page: int) -> dict[str, str]:
        if page:
            return {}
        return {
            "Link": '</api/daily_papers?date=2025-09-30&p=7>; rel="prev", '
            "</api/x?p=1&date=2025-09-30>; rel=next"
        }

    server = pages(hf_bytes("2024-06-21"), hf_bytes("2026-07-15"), headers=link)
    result, _ = await fetch_hf_day(make_fetcher(server), HF_URL, DAY)
    assert len(result.papers) == 23
    assert server.requests[1].url.path == "/api/x"


async def test_a_short_day_is_one_request_and_keeps_its_validators(make_fetcher) -> None:
    server = Server(
        lambda request: httpx.Response(200, content=hf_bytes("2024-11-28"), headers={"ETag": 'W/"day-1"'})
    )
    result, validators = await fetch_hf_day(make_fetcher(server), HF_URL, date(2024, 11, 28))
    assert len(result.papers) == 20
    assert len(server.requests) == 1
    assert validators == FeedValidators(etag='W/"day-1"')
    assert {p.hf_date for p in result.papers} == {date(2024, 11, 28)}


async def test_an_unchanged_day_is_a_conditional_get_with_no_papers(make_fetcher) -> None:
    sent = FeedValidators(etag='"day-1"', last_modified="Tue, 30 Sep 2025 07:49:00 GMT")

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers.get("If-None-Match") == '"day-1"':
            return httpx.Response(304)
        return httpx.Response(200, content=hf_bytes("2025-09-30"))

    server = Server(answer)
    result, validators = await fetch_hf_day(make_fetcher(server), HF_URL, DAY, validators=sent)
    assert result.papers == [] and result.error is None
    assert validators == sent
    assert len(server.requests) == 1


async def test_only_the_first_page_is_conditional(make_fetcher) -> None:
    server = pages(hf_bytes("2025-09-30"))
    sent = FeedValidators(etag='"old"')
    await fetch_hf_day(make_fetcher(server), HF_URL, DAY, validators=sent)
    assert server.requests[0].headers["If-None-Match"] == '"old"'
    assert "If-None-Match" not in server.requests[1].headers


async def test_a_server_that_ignores_the_page_number_does_not_loop(make_fetcher) -> None:
    server = Server(lambda request: httpx.Response(200, content=hf_bytes("2025-09-30")))
    result, _ = await fetch_hf_day(make_fetcher(server), HF_URL, DAY)
    assert len(result.papers) == 50
    assert len(server.requests) == 2


async def test_paging_stops_at_max_pages(make_fetcher) -> None:
    import json

    base = json.loads(hf_bytes("2025-09-30"))

    def answer(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["p"])
        for n, entry in enumerate(base):
            entry["paper"]["id"] = f"2509.{page:02d}{n:03d}"
        return httpx.Response(200, content=json.dumps(base).encode())

    server = Server(answer)
    result, _ = await fetch_hf_day(make_fetcher(server), HF_URL, DAY, max_pages=3)
    assert len(server.requests) == 3
    assert len(result.papers) == 150


async def test_an_html_error_page_on_the_first_page_is_a_feed_error(make_fetcher) -> None:
    server = Server(lambda request: httpx.Response(200, html="<!DOCTYPE html><html>Oops</html>"))
    result, validators = await fetch_hf_day(make_fetcher(server), HF_URL, DAY)
    assert result.papers == [] and result.error is not None and "HTML" in result.error
    assert validators is None


async def test_a_broken_later_page_keeps_the_earlier_papers(make_fetcher) -> None:
    server = pages(hf_bytes("2025-09-30"), b"<html>Bad gateway</html>")
    result, validators = await fetch_hf_day(make_fetcher(server), HF_URL, DAY)
    assert len(result.papers) == 50
    assert result.error is not None and result.error.startswith("page 1 of 2025-09-30")
    assert validators is None


async def test_a_failing_page_raises_feed_error(make_fetcher) -> None:
    server = Server(lambda request: httpx.Response(404))
    with pytest.raises(FeedError, match="404"):
        await fetch_hf_day(make_fetcher(server), HF_URL, DAY)


async def test_arxiv_rss_is_fetched_for_the_configured_categories(make_fetcher) -> None:
    server = Server(
        lambda request: httpx.Response(
            200,
            content=arxiv_bytes(RSS_ALL),
            headers={"ETag": '"rss"', "Content-Type": "application/rss+xml"},
        )
    )
    result, validators = await fetch_arxiv_rss(
        make_fetcher(server), "https://rss.arxiv.org/rss/", ["cs.CL", "cs.LG"]
    )
    assert str(server.requests[0].url) == "https://rss.arxiv.org/rss/cs.CL+cs.LG"
    assert len(result.papers) == 1504
    assert validators == FeedValidators(etag='"rss"')


async def test_arxiv_rss_not_modified(make_fetcher) -> None:
    server = Server(lambda request: httpx.Response(304))
    sent = FeedValidators(last_modified="Thu, 28 Nov 2024 14:47:20 GMT")
    result, validators = await fetch_arxiv_rss(
        make_fetcher(server), "https://rss.arxiv.org/rss/", ["cs.CL"], validators=sent
    )
    assert result.papers == [] and result.error is None
    assert validators == sent


async def test_arxiv_rss_error_channel_is_a_feed_error(make_fetcher) -> None:
    body = arxiv_bytes("rss_astroph-bad-archive-error_2024-11-28.xml")
    server = Server(lambda request: httpx.Response(200, content=body, headers={"ETag": '"e"'}))
    result, validators = await fetch_arxiv_rss(
        make_fetcher(server), "https://rss.arxiv.org/rss/", ["astroph"]
    )
    assert result.error is not None and result.error.startswith("Feed error for query")
    assert validators is None


async def test_arxiv_api_http_400_body_becomes_the_error(make_fetcher, sleeps) -> None:
    server = Server(
        lambda request: httpx.Response(400, content=arxiv_bytes("api_idlist_abc-error400_2026-04-12.xml"))
    )
    result = await fetch_arxiv_api(
        make_fetcher(server), "https://export.arxiv.org/api/query", id_list=["abc"]
    )
    assert result.papers == []
    assert result.error == "incorrect id format for abc"
    assert len(server.requests) == 1 and sleeps.delays == []
    assert server.requests[0].url.params["id_list"] == "abc"


async def test_arxiv_api_search(make_fetcher) -> None:
    server = Server(
        lambda request: httpx.Response(200, content=arxiv_bytes("api_search_testing_s0_m10_2026-04-12.xml"))
    )
    result = await fetch_arxiv_api(
        make_fetcher(server), "https://export.arxiv.org/api/query", search_query="all:testing", max_results=10
    )
    assert len(result.papers) == 10
    params = server.requests[0].url.params
    assert (params["search_query"], params["start"], params["max_results"], params["id_list"]) == (
        "all:testing",
        "0",
        "10",
        "",
    )


async def test_arxiv_api_old_style_ids_are_sent_as_is(make_fetcher) -> None:
    server = Server(
        lambda request: httpx.Response(200, content=arxiv_bytes("api_idlist_astro-ph_0601001_2026-05-11.xml"))
    )
    result = await fetch_arxiv_api(
        make_fetcher(server), "https://export.arxiv.org/api/query", id_list=["astro-ph/0601001", "2411.17700"]
    )
    assert [p.arxiv_id for p in result.papers] == ["astro-ph/0601001"]
    assert server.requests[0].url.params["id_list"] == "astro-ph/0601001,2411.17700"


async def test_arxiv_api_400_without_an_error_entry(make_fetcher) -> None:
    server = Server(
        lambda request: httpx.Response(400, content=b"<feed xmlns='http://www.w3.org/2005/Atom'/>")
    )
    result = await fetch_arxiv_api(make_fetcher(server), "https://export.arxiv.org/api/query", id_list=["x"])
    assert result.error is not None and "HTTP 400" in result.error


async def test_arxiv_api_needs_a_query(make_fetcher) -> None:
    with pytest.raises(ValueError, match="id_list or search_query"):
        await fetch_arxiv_api(
            make_fetcher(Server(lambda r: httpx.Response(200))), "https://export.arxiv.org/api/query"
        )


class LocalFeedServer:
    """A tiny HTTP/1.1 server on 127.0.0.1 that serves real fixture bytes, or stalls."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.stall_first = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._release = asyncio.Event()

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/api/daily_papers"

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._release.set()
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            if self.connections <= self.stall_first:
                await self._release.wait()
                return
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(self.body)}\r\n"
            )
            writer.write(head.encode() + b"Connection: close\r\n\r\n" + self.body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def local_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.3)) as client:
        yield client


async def test_a_real_socket_serves_the_real_bytes(local_client: httpx.AsyncClient) -> None:
    async with LocalFeedServer(hf_bytes("2025-10-03")) as url:
        fetcher = FeedFetcher(local_client)
        result, _ = await fetch_hf_day(fetcher, url, date(2025, 10, 3))
    assert len(result.papers) == 39


async def test_a_stalled_server_times_out_and_is_retried(local_client: httpx.AsyncClient) -> None:
    delays: list[float] = []

    async def no_wait(delay: float) -> None:
        delays.append(delay)

    server = LocalFeedServer(hf_bytes("2026-07-15"))
    server.stall_first = 1
    async with server as url:
        fetcher = FeedFetcher(local_client, sleep=no_wait)
        result = await fetcher.get(url)
    assert result.content == hf_bytes("2026-07-15")
    assert server.connections == 2
    assert len(delays) == 1
