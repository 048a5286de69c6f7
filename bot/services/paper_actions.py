"""What a person can do with a paper shown in a posted message: save it, rate it, cite it, watch
papers like it, and ask for the next page of a digest.

Every action names the target the message went to. It is checked against the person asking, as
every id is (bot/services/access.py): a channel's messages answer members of its guild, a DM's
its user; anything else gets the answer of a message paperwatch does not know. The panel's
state (saved? which vote?) is read from storage on every click: nothing is kept in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.deliveries import DeliveryRepository
from bot.db.feedback import FeedbackRepository, SavedPaperRepository
from bot.db.models import DELIVERY_PENDING, DELIVERY_SENT, MODE_SAVED, TARGET_CHANNEL, TargetRow
from bot.db.repo import PaperRepository, TargetRepository
from bot.domain.bibtex import bibtex_entry
from bot.domain.paper import Paper, normalize_arxiv_id
from bot.services.access import Caller, NotFound, UserError, schedule_defaults
from bot.services.delivery import Deliverer
from bot.services.feedback import FeedbackService
from bot.services.outbox import NextPage
from bot.services.subscriptions import WatchView
from bot.services.watches import WatchService

UNKNOWN_MESSAGE = "paperwatch cannot act on this message from here."
PAPER_GONE = "That paper is no longer stored by paperwatch, so there is nothing to do with it."


@dataclass(frozen=True, slots=True)
class PanelState:
    """One person's view of one paper: what the panel shows."""

    target_id: int
    paper: Paper
    vote: int
    """1 = 👍, -1 = 👎, 0 = neither."""
    saved: bool
    channel_id: int | None
    """The channel the message went to; None for a DM (where Watch similar papers does not apply)."""

    @property
    def in_channel(self) -> bool:
        return self.channel_id is not None


class SavedDm(Enum):
    """What became of the DM that brings a newly saved paper to the person who saved it."""

    SENT = "sent"
    IN_DMS = "in_dms"
    """The paper is in their DMs already, or on its way there as an alert: no second copy."""
    CLOSED = "closed"
    """Their DMs are closed (or their DM alerts paused for another refusal): nothing sent."""
    LATER = "later"
    """Discord did not take it now (a 5xx, a rate limit): the outbox retries it."""


@dataclass(frozen=True, slots=True)
class Saved:
    state: PanelState
    already: bool
    """It was on the reading list already: nothing changed, nothing sent."""
    dm: SavedDm | None = None


@dataclass(frozen=True, slots=True)
class SimilarWatch:
    watch: WatchView
    already: bool
    """The channel already had this `like:` watch; nothing was added."""


def like_query(arxiv_id: str) -> str:
    return f"like:{arxiv_id}"


def reaches(target: TargetRow, caller: Caller) -> bool:
    """A channel's messages belong to its guild; a DM's to its user."""
    if target.kind == TARGET_CHANNEL:
        return caller.guild_id is not None and target.guild_id == caller.guild_id
    return caller.guild_id is None and target.user_id == caller.user_id


class PaperActions:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        feedback: FeedbackService,
        watches: WatchService,
        deliverer: Deliverer,
    ) -> None:
        self.sessions = sessions
        self.feedback = feedback
        self.watches = watches
        self.deliverer = deliverer

    async def _target(self, session: AsyncSession, caller: Caller, target_id: int) -> TargetRow:
        target = await session.get(TargetRow, target_id)
        if target is None or not reaches(target, caller):
            raise NotFound(UNKNOWN_MESSAGE)
        return target

    async def _state(self, session: AsyncSession, caller: Caller, target_id: int, raw_id: str) -> PanelState:
        target = await self._target(session, caller, target_id)
        arxiv_id = normalize_arxiv_id(raw_id[:100])
        paper = await PaperRepository(session).get(arxiv_id) if arxiv_id else None
        if paper is None:
            raise NotFound(PAPER_GONE)
        vote = await FeedbackRepository(session).value(caller.user_id, paper.arxiv_id)
        saved = await SavedPaperRepository(session).has(caller.user_id, paper.arxiv_id)
        return PanelState(
            target_id=target.id,
            paper=paper,
            vote=vote or 0,
            saved=saved,
            channel_id=target.channel_id if target.kind == TARGET_CHANNEL else None,
        )

    async def panel(self, caller: Caller, target_id: int, raw_id: str) -> PanelState:
        """The paper a person picked in a message, and where they stand with it."""
        async with self.sessions() as session:
            return await self._state(session, caller, target_id, raw_id)

    async def save(self, caller: Caller, target_id: int, raw_id: str) -> Saved:
        """Put the paper on the person's reading list and, the first time, send it to their DMs.

        The DM goes through the outbox like every message: a pending delivery of the paper to
        the person's DM target, posted at once and retried if Discord does not take it now.
        The outbox sends a paper to a target once, so a paper already in their DMs (as an alert)
        is not sent again.
        """
        state = await self.panel(caller, target_id, raw_id)
        _, already = await self.feedback.save(caller.user_id, state.paper.arxiv_id)
        state = await self.panel(caller, target_id, raw_id)
        if already:
            return Saved(state, already=True)
        async with self.sessions.begin() as session:
            dms = await TargetRepository(session).ensure_user(
                caller.user_id, **schedule_defaults(self.watches.settings)
            )
            dms_id = dms.id
            added = await DeliveryRepository(session).add_pending(
                [
                    {
                        "target_id": dms_id,
                        "paper_id": state.paper.arxiv_id,
                        "watch_ids": [],
                        "matched_terms": [],
                        "mode": MODE_SAVED,
                        "status": DELIVERY_PENDING,
                        "attempts": 0,
                    }
                ]
            )
        if not added:
            return Saved(state, already=False, dm=SavedDm.IN_DMS)
        await self.deliverer.flush_instant([dms_id], mode=MODE_SAVED)
        async with self.sessions() as session:
            status = await DeliveryRepository(session).status_of(dms_id, state.paper.arxiv_id)
            target = await session.get(TargetRow, dms_id)
        if status == DELIVERY_SENT:
            return Saved(state, already=False, dm=SavedDm.SENT)
        closed = target is not None and target.paused_reason is not None
        return Saved(state, already=False, dm=SavedDm.CLOSED if closed else SavedDm.LATER)

    async def rate(self, caller: Caller, target_id: int, raw_id: str, value: int) -> PanelState:
        """👍 (1) or 👎 (-1); pressing the vote the person already gave takes it back."""
        if value not in (1, -1):
            raise UserError("A rating is 👍 or 👎.")
        state = await self.panel(caller, target_id, raw_id)
        chosen = 0 if state.vote == value else value
        await self.feedback.rate(caller.user_id, state.paper.arxiv_id, chosen, channel_id=state.channel_id)
        return await self.panel(caller, target_id, raw_id)

    async def bibtex(self, caller: Caller, target_id: int, raw_id: str) -> str:
        state = await self.panel(caller, target_id, raw_id)
        return bibtex_entry(state.paper)

    async def watch_similar(self, caller: Caller, target_id: int, raw_id: str) -> SimilarWatch:
        """Add `like:<paper>` to the message's channel, as `/watch add` would (Manage Channels)."""
        state = await self.panel(caller, target_id, raw_id)
        if state.channel_id is None or caller.guild_id is None:
            raise UserError("Watches are added to server channels; use `/alert add` for your DMs.")
        if not caller.can_manage:
            raise UserError("You need the **Manage Channels** permission in this channel to add a watch.")
        query = like_query(state.paper.arxiv_id)
        for view in await self.watches.list_watches(caller.guild_id, state.channel_id):
            if view.query == query:
                return SimilarWatch(view, already=True)
        added = await self.watches.add_watch(caller, channel_id=state.channel_id, query=query)
        return SimilarWatch(added.watch, already=False)

    async def next_page(self, caller: Caller, target_id: int, after_delivery: int) -> NextPage:
        """Post the next page of a digest (once, whoever clicks and however often)."""
        async with self.sessions() as session:
            await self._target(session, caller, target_id)
        return await self.deliverer.post_next_page(target_id, after_delivery)
