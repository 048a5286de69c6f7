"""`paperwatch recommend`: the recommendation model, offline, on saved feed files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.domain.paper import Paper, normalize_arxiv_id
from bot.feeds.detect import parse_feed_file
from bot.relevance.recommend import MIN_POSITIVES, TooFewPositivesError, recommend_papers

EXIT_USAGE = 2
DEFAULT_TOP = 10


def _say(text: str, *, err: bool = False) -> None:
    (sys.stderr if err else sys.stdout).write(text + "\n")


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `recommend` on the subcommands of the `paperwatch` parser."""
    recommend = commands.add_parser(
        "recommend",
        parents=[common],
        help="offline: rank a feed file's papers by a model of liked and disliked papers",
    )
    recommend.add_argument(
        "--like", action="append", default=[], metavar="ID", help="a liked paper (give at least 3)"
    )
    recommend.add_argument(
        "--dislike", action="append", default=[], metavar="ID", help="a disliked paper (any number)"
    )
    recommend.add_argument("--feed", required=True, type=Path, help="the feed file whose papers are ranked")
    recommend.add_argument(
        "--history",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="more feed files where liked and disliked papers are looked up (repeatable)",
    )
    recommend.add_argument(
        "--top", type=int, default=DEFAULT_TOP, help=f"papers printed (default {DEFAULT_TOP})"
    )
    recommend.add_argument(
        "--json", action="store_true", help='print a JSON list of {"id", "score"} instead of lines'
    )


def _papers_of(path: Path) -> list[Paper] | None:
    if not path.is_file():
        _say(f"paperwatch: no such feed file: {path}", err=True)
        return None
    result = parse_feed_file(path)
    if result.error:
        _say(f"paperwatch: {path}: {result.error}", err=True)
        if not result.papers:
            return None
    return list(result.papers)


def _ids(raw: list[str], flag: str) -> list[str] | None:
    ids: list[str] = []
    for text in raw:
        arxiv_id = normalize_arxiv_id(text)
        if arxiv_id is None:
            _say(f"paperwatch: {flag} {text!r} is not an arXiv id", err=True)
            return None
        ids.append(arxiv_id)
    return list(dict.fromkeys(ids))


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.top < 1:
        _say("paperwatch: --top must be at least 1", err=True)
        return EXIT_USAGE
    liked_ids, disliked_ids = _ids(args.like, "--like"), _ids(args.dislike, "--dislike")
    if liked_ids is None or disliked_ids is None:
        return EXIT_USAGE
    feed = _papers_of(args.feed)
    if feed is None:
        return EXIT_USAGE
    store: dict[str, Paper] = {}
    for path in args.history:
        papers = _papers_of(path)
        if papers is None:
            return EXIT_USAGE
        store.update((p.arxiv_id, p) for p in papers)
    store.update((p.arxiv_id, p) for p in feed)
    unknown = [i for i in (*liked_ids, *disliked_ids) if i not in store]
    if unknown:
        _say(
            f"paperwatch: unknown paper{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
            "not in the feed or the --history files",
            err=True,
        )
        return EXIT_USAGE
    both = sorted(set(liked_ids) & set(disliked_ids))
    if both:
        _say(f"paperwatch: {', '.join(both)} both liked and disliked", err=True)
        return EXIT_USAGE
    labelled = set(liked_ids) | set(disliked_ids)
    candidates = [p for p in feed if p.arxiv_id not in labelled]
    try:
        picks = recommend_papers(
            list(store.values()),
            [store[i] for i in liked_ids],
            [store[i] for i in disliked_ids],
            candidates,
            top=args.top,
        )
    except TooFewPositivesError as exc:
        _say(f"paperwatch: give at least {MIN_POSITIVES} --like papers ({exc.positives} given)", err=True)
        return EXIT_USAGE
    if args.json:
        _say(json.dumps([{"id": p.paper.arxiv_id, "score": round(p.score, 4)} for p in picks]))
        return 0
    for pick in picks:
        title = " ".join(pick.paper.title.split())
        _say(f"{pick.paper.arxiv_id}\t{pick.score:.4f}\t{title}")
    return 0
