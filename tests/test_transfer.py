"""Watch export and import on a real, migrated SQLite file: round trip, refusals by line, limits."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Awaitable, Callable
from datetime import time
from pathlib import Path

import pytest

from bot.services.access import Caller, NotFound, UserError
from bot.services.core import Core
from bot.services.transfer import MAX_IMPORT_BYTES, ImportRefused
from tests.conftest import HF_OVERLAP, FakeClock, load_feed, raw_entries
from tests.test_services import paper_ids_for

GUILD_A, GUILD_B = 100, 200
CH_A1, CH_A2, CH_B1, CH_B2 = 1001, 1002, 2001, 2002
ADMIN_A = Caller(user_id=11, guild_id=GUILD_A, channel_id=CH_A1, can_manage=True)
MEMBER_A = Caller(user_id=12, guild_id=GUILD_A, channel_id=CH_A1, can_manage=False)
ADMIN_B = Caller(user_id=21, guild_id=GUILD_B, channel_id=CH_B1, can_manage=True)

MakeCore = Callable[..., Awaitable[Core]]

WATCHES = [
    # (query, mode, min_upvotes, paused): every field, and queries that need escaping in TOML
    ("diffusion", "digest", None, False),
    ('"knowledge distillation" OR distill*', "instant", 10, False),
    ("title:transformer -survey", "digest", 0, True),
    ('"\u00fcber\u2014na\u00efve" OR caf\u00e9 OR "a \\\\ b"', "instant", None, True),
]


async def refused(call: Awaitable[object]) -> ImportRefused:
    with pytest.raises(ImportRefused) as caught:
        await call
    return caught.value


async def fill_channel(core: Core) -> None:
    for query, mode, floor, paused in WATCHES:
        added = await core.watches.add_watch(
            ADMIN_A, channel_id=CH_A1, query=query, mode=mode, min_upvotes=floor
        )
        if paused:
            await core.watches.set_watch_paused(ADMIN_A, added.watch.id, True)
    await core.digests.set_digest(
        ADMIN_A, channel_id=CH_A1, time="07:30", timezone="Europe/Paris", days="mon,wed,fri"
    )


def fields(core_views: list) -> list[tuple[str, str, int | None, bool]]:
    return [(v.query, v.mode, v.min_upvotes, v.paused) for v in core_views]


async def test_export_holds_every_field_and_the_schedule(core: Core) -> None:
    await fill_channel(core)
    exported = await core.transfer.export_channel(GUILD_A, CH_A1, "paper club")
    assert exported.filename == "watches-paper-club.toml" and exported.count == len(WATCHES)
    document = tomllib.loads(exported.text)  # read with the standard library, not our parser
    assert document["version"] == 1
    assert document["digest"] == {"time": "07:30", "timezone": "Europe/Paris", "days": "mon,wed,fri"}
    got = [(w["query"], w["mode"], w.get("min_upvotes"), w["paused"]) for w in document["watch"]]
    assert got == WATCHES


async def test_round_trip_into_a_channel_of_another_guild(core: Core) -> None:
    await fill_channel(core)
    exported = await core.transfer.export_channel(GUILD_A, CH_A1, "papers")
    result = await core.transfer.import_channel(ADMIN_B, CH_B1, exported.text.encode())
    assert fields(result.watches) == WATCHES
    assert fields(await core.watches.list_watches(GUILD_B, CH_B1)) == WATCHES
    info = await core.digests.show_digest(GUILD_B, CH_B1)
    assert (info.schedule.at, info.schedule.timezone, info.schedule.weekdays) == (
        time(7, 30),
        "Europe/Paris",
        0b0010101,
    )
    assert info.next_at is not None and info.next_at.astimezone(info.schedule.zone).hour == 7
    # the source is untouched, and the copy exports to the same watches and schedule
    assert fields(await core.watches.list_watches(GUILD_A, CH_A1)) == WATCHES
    again = await core.transfer.export_channel(GUILD_B, CH_B1, "papers")
    assert tomllib.loads(again.text)["watch"] == tomllib.loads(exported.text)["watch"]


BAD_SECOND = [
    ('mode = "weekly"', "The mode is `digest` or `instant`."),
    ("min_upvotes = -1", "`min_upvotes` is a number from 0 to 1000000."),
    ('min_upvotes = "ten"', "`min_upvotes` is a whole number."),
    ("paused = 1", "`paused` is true or false."),
    ("colour = 3", "unknown key(s) colour"),
]


@pytest.mark.parametrize(("bad", "why"), BAD_SECOND)
async def test_one_bad_watch_imports_nothing_and_names_its_line(core: Core, bad: str, why: str) -> None:
    text = "\n".join(
        [
            "version = 1",  # line 1
            "",
            "[[watch]]",  # line 3
            'query = "diffusion"',
            "",
            "# the broken one",
            "[[watch]]",  # line 7
            'query = "llm agents"',
            bad,
            "",
            "[[watch]]",  # line 11
            'query = "robotics"',
            'mode = "instant"',
        ]
    )
    problems = (await refused(core.transfer.import_channel(ADMIN_A, CH_A1, text.encode()))).problems
    assert [p.line for p in problems] == [7]
    assert why in problems[0].reason and problems[0].query == "llm agents"
    assert await core.watches.list_watches(GUILD_A) == []


async def test_every_bad_watch_is_named(core: Core) -> None:
    text = '[[watch]]\nquery = "a AND ("\n\n[[watch]]\nquery = "ok"\n\n[[watch]]\nmode = "digest"\n'
    problems = (await refused(core.transfer.import_channel(ADMIN_A, CH_A1, text.encode()))).problems
    assert [p.line for p in problems] == [1, 7]
    assert problems[0].reason.startswith("That query does not parse")
    assert problems[1].reason == "`query` is missing or not text."


async def test_a_bad_digest_schedule_imports_nothing(core: Core) -> None:
    text = '[digest]\ntime = "25:00"\ntimezone = "UTC"\n\n[[watch]]\nquery = "diffusion"\n'
    problems = (await refused(core.transfer.import_channel(ADMIN_A, CH_A1, text.encode()))).problems
    assert [p.line for p in problems] == [1] and "25:00" in problems[0].reason
    assert await core.watches.list_watches(GUILD_A) == []


@pytest.mark.parametrize(
    ("data", "line", "why"),
    [
        (b"x" * (MAX_IMPORT_BYTES + 1), None, f"{MAX_IMPORT_BYTES:,}"),
        (b'[[watch]]\nquery = "caf\xe9"\n', None, "not UTF-8"),
        (b'[[watch]]\nquery = "ok"\nmode = digest\n', 3, "not valid TOML"),
        (b"version = 1\n", None, "no `[[watch]]` tables"),
        (b'version = 2\n[[watch]]\nquery = "a"\n', None, "`version = 2`"),
    ],
)
async def test_unreadable_files_are_refused(core: Core, data: bytes, line: int | None, why: str) -> None:
    problems = (await refused(core.transfer.import_channel(ADMIN_A, CH_A1, data))).problems
    assert problems[0].line == line and why in problems[0].reason


async def test_channel_limit_counts_existing_watches(make_core: MakeCore) -> None:
    core = await make_core(PAPERWATCH_LIMITS__WATCHES_PER_CHANNEL="3")
    await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="one")
    await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="two")
    text = '[[watch]]\nquery = "three"\n[[watch]]\nquery = "four"\n'
    problems = (await refused(core.transfer.import_channel(ADMIN_A, CH_A1, text.encode()))).problems
    assert [p.line for p in problems] == [None]
    assert "has 2 watches and the file adds 2" in problems[0].reason and "at most 3" in problems[0].reason
    assert [v.query for v in await core.watches.list_watches(GUILD_A)] == ["one", "two"]
    # one fits
    await core.transfer.import_channel(ADMIN_A, CH_A1, b'[[watch]]\nquery = "three"\n')
    assert len(await core.watches.list_watches(GUILD_A)) == 3


async def test_guild_limit_counts_every_channel(make_core: MakeCore) -> None:
    core = await make_core(PAPERWATCH_LIMITS__WATCHES_PER_GUILD="2")
    await core.watches.add_watch(ADMIN_A, channel_id=CH_A2, query="elsewhere")
    text = '[[watch]]\nquery = "a"\n[[watch]]\nquery = "b"\n'
    problems = (await refused(core.transfer.import_channel(ADMIN_A, CH_A1, text.encode()))).problems
    assert "a server holds at most 2" in problems[0].reason
    assert await core.watches.list_watches(GUILD_A, CH_A1) == []


async def test_import_needs_manage_channels_and_a_channel_of_the_guild(core: Core) -> None:
    data = b'[[watch]]\nquery = "diffusion"\n'
    with pytest.raises(UserError, match="Manage Channels"):
        await core.transfer.import_channel(MEMBER_A, CH_A1, data)
    await core.watches.add_watch(ADMIN_A, channel_id=CH_A2, query="mine")
    with pytest.raises(NotFound):  # guild B's admin names a channel of guild A
        await core.transfer.import_channel(ADMIN_B, CH_A2, data)
    assert [v.query for v in await core.watches.list_watches(GUILD_A)] == ["mine"]
    assert await core.watches.list_watches(GUILD_B) == []


async def test_export_of_another_guilds_channel_or_an_empty_one_is_refused(core: Core) -> None:
    await core.watches.add_watch(ADMIN_A, channel_id=CH_A1, query="diffusion")
    for guild, channel in ((GUILD_B, CH_A1), (GUILD_A, CH_A2)):
        with pytest.raises(UserError, match="no watches to export"):
            await core.transfer.export_channel(guild, channel, "x")


async def test_imported_digest_watches_catch_up_like_watch_add(core: Core, clock: FakeClock) -> None:
    overlap = {e.arxiv_id for e in raw_entries(HF_OVERLAP)}
    await core.ingestor.ingest(load_feed(HF_OVERLAP))
    clock.advance(hours=23)  # within the default 24 h lookback
    text = '[[watch]]\nquery = "upvotes>=0"\n'
    await core.transfer.import_channel(ADMIN_B, CH_B1, text.encode())
    await core.transfer.import_channel(ADMIN_B, CH_B2, (text + 'mode = "instant"\n').encode())
    assert await paper_ids_for(core, "channel", CH_B1) == overlap
    assert await paper_ids_for(core, "channel", CH_B2) == set()


async def test_the_documented_example_imports(core: Core) -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "commands.md").read_text(encoding="utf-8")
    found = re.search(r"```toml\n(.*?)```", page, re.DOTALL)
    assert found is not None, "docs/commands.md shows an example file"
    result = await core.transfer.import_channel(ADMIN_A, CH_A1, found.group(1).encode())
    assert fields(result.watches) == [
        ('"knowledge distillation" OR distill*', "instant", 5, False),
        ("diffusion", "digest", None, False),
    ]
    assert result.schedule is not None and result.schedule.describe() == "07:30 Europe/Paris, Mon–Fri"


async def test_a_like_of_an_unknown_paper_is_named_and_rolls_back_the_others(core: Core) -> None:
    text = '[[watch]]\nquery = "diffusion"\n\n[[watch]]\nquery = "like:2401.99999"\n'
    problems = (await refused(core.transfer.import_channel(ADMIN_A, CH_A1, text.encode()))).problems
    assert [(p.line, p.query) for p in problems] == [(4, "like:2401.99999")]
    assert await core.watches.list_watches(GUILD_A) == []
