"""The `paperwatch` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

from bot import cli_recommend
from bot.config import RelevanceSettings, Settings, load_settings
from bot.config_checks import ConfigError
from bot.domain.digest import DigestEntry, Match, compose_digest
from bot.domain.matcher import explain
from bot.domain.paper import FeedResult, Paper
from bot.domain.parser import parse_query
from bot.domain.query import ParseError, Query, liked_ids
from bot.feeds.detect import parse_feed_file
from bot.logs import configure_logging
from bot.relevance.similar import LikeScores, offline_like_scores
from bot.services.clock import ClockSettingError
from bot.services.core import Core
from bot.services.ingest import IngestSummary
from bot.terminal import progress, show_preview, stderr_console, stdout_console

EXIT_USAGE = 2
INGEST_CHUNK = 200
"""Papers ingested per transaction by `fetch --file`; the progress bar moves once per chunk."""
MISSING_TOKEN_HELP = " ".join(
    [
        "paperwatch run: DISCORD_TOKEN is not set.",
        "Create a bot in the Discord developer portal, then `export DISCORD_TOKEN=…`",
        '(see README, "Add paperwatch to your server").',
        "To see the product without a token, run `make demo`.",
    ]
)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="config file (default: $PAPERWATCH_CONFIG, else ./config.toml if present)",
    )
    parser = argparse.ArgumentParser(
        prog="paperwatch",
        description="Research-paper alerts for Discord, from Hugging Face Daily Papers and arXiv.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    commands.add_parser("run", parents=[common], help="start the bot (applies migrations first)")

    db = commands.add_parser("db", parents=[common], help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_commands.add_parser("upgrade", parents=[common], help="apply every migration")

    fetch = commands.add_parser("fetch", parents=[common], help="ingest once from a source, a day or a file")
    fetch.add_argument("--source", choices=("hf", "arxiv"), default="hf", help="feed to read (default hf)")
    fetch.add_argument("--date", type=_day, help="Hugging Face day to read, YYYY-MM-DD (default today)")
    fetch.add_argument("--file", type=Path, help="ingest a saved feed file instead of fetching")

    match = commands.add_parser(
        "match", parents=[common], help="offline: the papers of a feed file a query matches"
    )
    match.add_argument(
        "--query", required=True, help="a watch query, e.g. '\"knowledge distillation\" OR distill*'"
    )
    match.add_argument(
        "--feed", required=True, type=Path, help="a saved HF JSON, arXiv RSS or arXiv API file"
    )
    match.add_argument("--json", action="store_true", help="print a JSON list instead of one id per line")

    preview = commands.add_parser("preview", parents=[common], help="render the digest a watch would produce")
    preview.add_argument("--query", required=True, help="a watch query")
    preview.add_argument(
        "--feed", type=Path, help="a saved feed file (default: the papers stored in the database)"
    )
    preview.add_argument(
        "--days", type=int, default=7, help="with the database: papers first seen in the last N days"
    )
    preview.add_argument("--max", type=int, default=None, help="papers shown (default digest.max_papers)")

    cli_recommend.add_parser(commands, common)

    commands.add_parser(
        "check-config", parents=[common], help="print the effective configuration, token masked"
    )

    invite = commands.add_parser(
        "invite-url", parents=[common], help="print the link that adds the bot to a server"
    )
    invite.add_argument("--application-id", type=int, help="default: discord.application_id from the config")
    return parser


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(getattr(args, "config", None))
    except ConfigError as exc:
        print(f"paperwatch: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings)
    handler = {
        "run": _run,
        "db": _db,
        "fetch": _fetch,
        "match": _match,
        "preview": _preview,
        "recommend": cli_recommend.run,
        "check-config": _check_config,
        "invite-url": _invite_url,
    }[args.command]
    try:
        return handler(args, settings)
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.token:
        print(MISSING_TOKEN_HELP, file=sys.stderr)
        return EXIT_USAGE
    from bot.db.lock import DatabaseInUseError, hold_sqlite_database
    from bot.discord.runner import run_bot

    try:
        # one running bot per SQLite file; a killed process's lock goes with it
        database_lock = hold_sqlite_database(settings.database.url)
    except DatabaseInUseError as exc:
        print(f"paperwatch run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return run_bot(settings)
    except ClockSettingError as exc:  # the test clock without PAPERWATCH_TESTING=1
        print(f"paperwatch run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if database_lock is not None:
            database_lock.release()


def _db(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db.engine import create_engine
    from bot.db.migrate import current_revision, upgrade

    async def go() -> str | None:
        engine = create_engine(settings.database.url)
        try:
            await upgrade(engine)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    revision = asyncio.run(go())
    print(f"database is at revision {revision}")
    return 0


def _fetch(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services.polling import FeedPoller, build_fetcher, build_http_client

    async def go() -> IngestSummary | None:
        core = await Core.open(settings)
        try:
            if args.file is not None:
                result = _read_feed(args.file)
                if result is None:
                    return None
                if result.error and not result.papers:
                    return IngestSummary(skipped=len(result.skipped), error=result.error)
                return await _ingest_with_progress(core, result)
            async with build_http_client(settings) as client:
                poller = FeedPoller(
                    settings, build_fetcher(settings, client), core.sessions, core.ingestor, core.clock
                )
                with stderr_console().status(f"fetching {args.source} …"):
                    if args.source == "hf":
                        day = args.date or core.clock.now().date()
                        return await poller.poll_huggingface([day])
                    return await poller.poll_arxiv()
        finally:
            await core.close()

    summary = asyncio.run(go())
    if summary is None:
        return EXIT_USAGE
    print(summary.line())
    return 1 if summary.error and not (summary.new or summary.updated) else 0


async def _ingest_with_progress(core: Core, result: FeedResult) -> IngestSummary:
    total = IngestSummary(skipped=len(result.skipped), error=result.error)
    with progress(stderr_console(), len(result.papers), "ingesting") as advance:
        for start in range(0, len(result.papers), INGEST_CHUNK):
            chunk = FeedResult(papers=result.papers[start : start + INGEST_CHUNK])
            total.add(await core.ingestor.ingest(chunk))
            advance(len(chunk.papers))
    return total


def _load_query(text: str, settings: Settings) -> Query | None:
    try:
        return parse_query(text, max_length=settings.limits.query_length)
    except ParseError as exc:
        print(f"paperwatch: bad query: {exc}", file=sys.stderr)
        return None


def _read_feed(path: Path) -> FeedResult | None:
    if not path.is_file():
        print(f"paperwatch: no such feed file: {path}", file=sys.stderr)
        return None
    result = parse_feed_file(path)
    if result.error:
        print(f"paperwatch: {path}: {result.error}", file=sys.stderr)
    return result


def _matching(query: Query, papers: list[Paper], like_threshold: float | None = None) -> list[Paper]:
    return _matching_with_likes(query, papers, like_threshold)[0]


def _matching_with_likes(
    query: Query, papers: list[Paper], like_threshold: float | None = None
) -> tuple[list[Paper], LikeScores | None]:
    """The papers `query` matches, and the `like:` scores they were matched with."""
    from bot.services.matching import WatchMatcher

    threshold = RelevanceSettings().like_threshold if like_threshold is None else like_threshold
    likes = _offline_likes(query, papers, threshold)
    matched = WatchMatcher(lookback_hours=0, query_length=10_000).preview(
        query, papers, likes=likes.bits if likes else None
    )
    return matched, likes


def _offline_likes(query: Query, papers: list[Paper], like_threshold: float) -> LikeScores | None:
    """`like:` with no database: the text vocabulary is fitted on the papers at hand."""
    liked = liked_ids(query)
    if not liked:
        return None
    return offline_like_scores(papers, liked, like_threshold)


def _unknown_likes(query: Query, papers: list[Paper], where: str) -> bool:
    """Refuse `like:` ids that are not among `papers` (printing why); True when refused."""
    present = {paper.arxiv_id for paper in papers}
    missing = [arxiv_id for arxiv_id in liked_ids(query) if arxiv_id not in present]
    if missing:
        print(
            f"paperwatch: unknown paper {missing[0]} in like:{missing[0]}: it is not in {where}",
            file=sys.stderr,
        )
    return bool(missing)


def _match(args: argparse.Namespace, settings: Settings) -> int:
    query = _load_query(args.query, settings)
    if query is None:
        return EXIT_USAGE
    result = _read_feed(args.feed)
    if result is None:
        return EXIT_USAGE
    if _unknown_likes(query, result.papers, str(args.feed)):
        return EXIT_USAGE
    ids = [paper.arxiv_id for paper in _matching(query, result.papers, settings.relevance.like_threshold)]
    if args.json:
        print(json.dumps(ids))
    else:
        for arxiv_id in ids:
            print(arxiv_id)
    return 0


def _preview(args: argparse.Namespace, settings: Settings) -> int:
    query = _load_query(args.query, settings)
    if query is None:
        return EXIT_USAGE
    if args.feed is not None:
        result = _read_feed(args.feed)
        if result is None:
            return EXIT_USAGE
        papers = result.papers
    else:
        papers = asyncio.run(_stored_papers(settings, args.days))
    if _unknown_likes(query, papers, str(args.feed) if args.feed else "the papers of those days"):
        return EXIT_USAGE
    matched, likes = _matching_with_likes(query, papers, settings.relevance.like_threshold)
    entries = [
        DigestEntry(
            paper=p,
            matches=(
                Match(
                    watch_id=1,
                    query=query.source,
                    words=tuple(explain(query, p, like=likes.for_paper(p) if likes else None)),
                ),
            ),
        )
        for p in matched
    ]
    digest = compose_digest(entries, args.max or settings.digest.max_papers)
    source = str(args.feed) if args.feed else f"papers first seen in the last {args.days} days"
    summary = f"{len(matched)} of {len(papers)} papers match `{query.source}` ({source})"
    show_preview(stdout_console(), digest, summary=summary)
    return 0


async def _stored_papers(settings: Settings, days: int) -> list[Paper]:
    from bot.db.repo import PaperRepository

    core = await Core.open(settings)
    try:
        async with core.sessions() as session:
            return await PaperRepository(session).seen_since(core.clock.now() - timedelta(days=days))
    finally:
        await core.close()


def _check_config(args: argparse.Namespace, settings: Settings) -> int:
    where = str(settings.source) if settings.source else "no file (defaults and environment)"
    print(f"# effective configuration, from {where}")
    print(json.dumps(settings.public_dict(), indent=2))
    return 0


def _invite_url(args: argparse.Namespace, settings: Settings) -> int:
    from bot.invite import invite_url

    application_id = args.application_id or settings.discord.application_id
    if not application_id:
        print(
            "paperwatch invite-url: give --application-id or set discord.application_id "
            "(the Application ID on the developer portal's General Information page)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    print(invite_url(application_id))
    return 0
