"""Custom ids of paper components: built and read back, ids only, within Discord's 100 characters;
the dynamic items' templates match exactly the ids the bot builds; the components of a posted
message, kept by the outbox's re-sends; a Next papers page posted once."""

from __future__ import annotations

import asyncio
import re

import pytest

from bot.discord.components.ids import (
    MAX_CUSTOM_ID,
    NEXT_TEMPLATE,
    PANEL_ACTIONS,
    PANEL_TEMPLATE,
    PICK_TEMPLATE,
    PanelId,
    next_id,
    panel_id,
    pick_id,
    read_next,
    read_panel,
    read_pick,
)
from bot.discord.components.items import NextPapers, PaperButton, PickPaper, paper_items
from bot.discord.components.layout import message_components, option_label
from bot.discord.embeds import render
from bot.domain.digest import Digest, DigestEntry, announces_more, overflow_line
from bot.domain.paper import Paper
from bot.services.outbox import NEXT_ALREADY, NEXT_POSTED, SendError
from tests.conftest import FakeClock
from tests.test_delivery import (
    CHANNEL,
    NEXT_DIGEST,
    MakeCore,
    RecordingSender,
    channel_with_matches,
    deliverer,
)

BIGGEST = 2**63 - 1
PAPER_IDS = ["2403.01234", "2501.00001", "hep-th/9901001", "math.AG/0601001", "cond-mat/0102536"]


@pytest.mark.parametrize("arxiv_id", PAPER_IDS)
@pytest.mark.parametrize("action", PANEL_ACTIONS)
def test_panel_ids_round_trip(action: str, arxiv_id: str) -> None:
    for target in (1, 42, BIGGEST):
        custom_id = panel_id(action, target, arxiv_id)
        assert len(custom_id) <= MAX_CUSTOM_ID
        assert read_panel(custom_id) == PanelId(action, target, arxiv_id)
        assert read_pick(custom_id) is None and read_next(custom_id) is None


def test_pick_and_next_ids_round_trip() -> None:
    for target, delivery in ((1, 1), (7, 123456), (BIGGEST, BIGGEST)):
        assert read_pick(pick_id(target)) == target
        assert read_next(next_id(target, delivery)) == (target, delivery)
        assert len(next_id(target, delivery)) <= MAX_CUSTOM_ID
        assert read_panel(pick_id(target)) is None


@pytest.mark.parametrize(
    "custom_id",
    [
        "pa:pick:",
        "pa:pick:12:extra",
        "pa:pick:-3",
        "pa:next:12",
        "pa:save:12",
        "pa:save:x:2403.01234",
        "pa:delete:12:2403.01234",
        "pa:up:12:2403.01234 OR 1",
        "pw:saved:next",  # the reading list's own buttons are not paper components
        "pw:watchlist:prev",
    ],
)
def test_foreign_or_broken_ids_are_not_read(custom_id: str) -> None:
    assert read_pick(custom_id) is None
    assert read_next(custom_id) is None
    assert read_panel(custom_id) is None
    for template in (PICK_TEMPLATE, NEXT_TEMPLATE, PANEL_TEMPLATE):
        assert re.fullmatch(template, custom_id) is None


def test_ids_that_cannot_be_built_are_refused() -> None:
    with pytest.raises(ValueError):
        panel_id("delete", 1, "2403.01234")
    with pytest.raises(ValueError):
        panel_id("save", 1, "not an id!")


def test_dynamic_items_are_registered_with_the_builders_templates() -> None:
    assert paper_items() == (PickPaper, PaperButton, NextPapers)
    assert PickPaper.__discord_ui_compiled_template__.pattern == PICK_TEMPLATE
    assert PaperButton.__discord_ui_compiled_template__.pattern == PANEL_TEMPLATE
    assert NextPapers.__discord_ui_compiled_template__.pattern == NEXT_TEMPLATE


def paper(number: int, title: str | None = None) -> Paper:
    return Paper(arxiv_id=f"2403.{number:05d}", title=title or f"Paper number {number}", upvotes=number)


def test_a_message_lists_its_papers_once_and_cuts_titles() -> None:
    papers = [paper(1, "word " * 60), paper(2), paper(1)]
    (row,) = message_components(9, papers)
    (select,) = row["components"]  # type: ignore[index]
    assert select["custom_id"] == pick_id(9)
    assert [o["value"] for o in select["options"]] == ["2403.00001", "2403.00002"]
    assert len(option_label(papers[0])) <= 100
    assert message_components(None, papers) == []


def test_render_puts_next_papers_on_the_message_that_says_and_n_more() -> None:
    entries = [DigestEntry(paper=paper(n), delivery_id=100 + n) for n in range(1, 13)]
    digest = Digest(entries=entries, overflow=5, watches=[(1, "upvotes>=0")], target_id=3)
    messages = render(digest, "digest")
    assert [len(m.embeds) for m in messages] == [10, 2]
    first, last = messages
    assert [c["components"][0]["type"] for c in first.components] == [3]  # type: ignore[index]
    assert [c["components"][0]["type"] for c in last.components] == [3, 2]  # type: ignore[index]
    button = last.components[1]["components"][0]  # type: ignore[index]
    assert read_next(button["custom_id"]) == (3, min(last.delivery_ids))
    assert announces_more(last.content) and not announces_more(first.content)
    # a re-send of that message keeps the button: the outbox tells it that the message said so
    (again,) = render(Digest(entries=entries[10:], overflow=1, target_id=3), "resend")
    assert again.components == last.components


def test_announces_more_reads_only_the_overflow_line() -> None:
    line = overflow_line(Digest(entries=[], overflow=3))
    assert announces_more(f"📚 header\n{line}")
    assert not announces_more("📚 **3 new papers** about …and more")
    assert not announces_more(None)


# --- the outbox keeps components, and posts a Next papers page once --------------------------


async def test_a_lost_digest_is_resent_with_the_same_components(
    make_core: MakeCore, clock: FakeClock
) -> None:
    core = await make_core(PAPERWATCH_DIGEST__MAX_PAPERS="12")
    target_id = await channel_with_matches(core, clock)
    sender = RecordingSender()
    sender.fail_on[1] = SendError("Discord answered HTTP 503")
    clock.set(NEXT_DIGEST)
    await deliverer(core, sender).run_due_digests()
    await deliverer(core, sender).recover()
    sent = [message for _, message, _, _ in sender.posted]
    assert len(sent) == 2
    first_try = sender.calls[0][1]
    assert sent[0].components == first_try.components
    assert read_pick(sent[0].components[0]["components"][0]["custom_id"]) == target_id  # type: ignore[index]
    kinds = [row["components"][0]["type"] for row in sent[1].components]  # type: ignore[index]
    assert kinds == [3, 2]  # the "and N more" message kept Next papers
    button = sent[1].components[1]["components"][0]  # type: ignore[index]
    assert read_next(button["custom_id"]) == (target_id, min(sent[1].delivery_ids))


async def test_next_page_is_posted_once_however_many_ask_at_once(
    make_core: MakeCore, clock: FakeClock
) -> None:
    core = await make_core(PAPERWATCH_DIGEST__MAX_PAPERS="3")
    target_id = await channel_with_matches(core, clock)
    sender = RecordingSender()
    outbox = deliverer(core, sender)
    await outbox.deliver_digest(target_id, scheduled=False)
    (first,) = [message for _, message, _, _ in sender.posted]
    key = min(first.delivery_ids)
    pages = await asyncio.gather(*(outbox.post_next_page(target_id, key) for _ in range(4)))
    assert sorted(page.outcome for page in pages) == [NEXT_ALREADY] * 3 + [NEXT_POSTED]
    assert len(sender.posted) == 2 and len(sender.posted_paper_ids()) == 6
    assert len(set(sender.posted_paper_ids())) == 6
    page_message = sender.posted[1][3]
    assert {page.message_id for page in pages} == {page_message}
    assert {page.channel_id for page in pages} == {CHANNEL}
    # after a restart the same button still finds its page
    again = await deliverer(core, sender).post_next_page(target_id, key)
    assert again.outcome == NEXT_ALREADY and again.message_id == page_message
