"""SQLAlchemy tables: papers, delivery targets, watches, deliveries, feedback and feed state."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TARGET_CHANNEL = "channel"
TARGET_USER = "user"

MODE_DIGEST = "digest"
MODE_INSTANT = "instant"
MODE_SAVED = "saved"
"""A paper someone saved from a message's panel, sent to their DMs through the outbox."""

DELIVERY_PENDING = "pending"
DELIVERY_CLAIMED = "claimed"
DELIVERY_SENT = "sent"
DELIVERY_FAILED = "failed"

ALL_WEEKDAYS = 0b1111111
"""Bit 0 is Monday, bit 6 is Sunday."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - drivers return datetimes
            raise TypeError(f"unexpected datetime value {value!r}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class PaperRow(Base):
    __tablename__ = "papers"
    # searches read papers newest first along this index alone (bot/db/candidates.py)
    __table_args__ = (Index("ix_papers_seen_order", "first_seen_at", "arxiv_id", "upvotes"),)

    arxiv_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    abstract: Mapped[str] = mapped_column(Text, default="")
    authors: Mapped[list[str]] = mapped_column(JSON, default=list)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sources: Mapped[list[str]] = mapped_column(JSON, default=list)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    upvotes: Mapped[int] = mapped_column(Integer, default=0)
    comments: Mapped[int] = mapped_column(Integer, default=0)
    ai_summary: Mapped[str | None] = mapped_column(Text)
    ai_keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    github_url: Mapped[str | None] = mapped_column(Text)
    project_url: Mapped[str | None] = mapped_column(Text)
    hf_date: Mapped[date | None] = mapped_column(Date)
    announce_type: Mapped[str | None] = mapped_column(String(32))
    version: Mapped[int | None] = mapped_column(Integer)


class TargetRow(Base):
    """Where papers go: a channel of a guild, or a user's DMs; with its digest schedule."""

    __tablename__ = "targets"
    __table_args__ = (
        UniqueConstraint("kind", "channel_id", "user_id", name="uq_targets_kind_channel_user"),
        Index("ix_targets_guild", "guild_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    guild_id: Mapped[int | None] = mapped_column(BigInteger)
    channel_id: Mapped[int] = mapped_column(BigInteger, default=0)
    """The channel for channel targets; 0 for user targets (the DM channel is `dm_channel_id`)."""
    user_id: Mapped[int] = mapped_column(BigInteger, default=0)
    """The user for user targets; 0 for channel targets."""
    dm_channel_id: Mapped[int | None] = mapped_column(BigInteger)
    digest_time: Mapped[str] = mapped_column(String(5), default="09:00")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    weekdays: Mapped[int] = mapped_column(Integer, default=ALL_WEEKDAYS)
    digest_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_reason: Mapped[str | None] = mapped_column(Text)
    """Set when delivery itself failed for good (channel gone, no permission, DMs closed)."""
    paused_notice_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    next_digest_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_digest_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recommend: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """User targets only: send a "recommended for you" DM digest learnt from the user's feedback."""
    recommend_per_day: Mapped[int] = mapped_column(Integer, default=5, server_default="5")
    last_recommended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """Papers first seen after this are new for the next recommendations."""
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    """The process delivering to this target now (several processes: bot/services/leases.py)."""
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """Until when `claimed_by` holds the target; its heartbeat renews it, another may take it after."""

    watches: Mapped[list[WatchRow]] = relationship(back_populates="target", cascade="all, delete-orphan")


class WatchRow(Base):
    __tablename__ = "watches"
    __table_args__ = (Index("ix_watches_target", "target_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("targets.id", ondelete="CASCADE"))
    query: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(16), default=MODE_DIGEST)
    min_upvotes: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    match_count: Mapped[int] = mapped_column(Integer, default=0)

    target: Mapped[TargetRow] = relationship(back_populates="watches")


class DeliveryRow(Base):
    """One paper for one target: the outbox row that makes delivery exactly-once."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("target_id", "paper_id", name="uq_deliveries_target_paper"),
        Index("ix_deliveries_status", "status", "target_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("targets.id", ondelete="CASCADE"))
    paper_id: Mapped[str] = mapped_column(ForeignKey("papers.arxiv_id", ondelete="CASCADE"))
    watch_id: Mapped[int | None] = mapped_column(ForeignKey("watches.id", ondelete="SET NULL"))
    watch_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    matched_terms: Mapped[list[list[str]]] = mapped_column(JSON, default=list)
    mode: Mapped[str] = mapped_column(String(16), default=MODE_DIGEST)
    status: Mapped[str] = mapped_column(String(16), default=DELIVERY_PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    nonce: Mapped[str | None] = mapped_column(String(25))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_content: Mapped[str | None] = mapped_column(Text)
    """The text line (header, "and N more") of the claimed message, on its first delivery."""
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    """Why a recommended paper was chosen (the liked papers it is closest to); NULL for watch matches."""
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    """The process that claimed this delivery (host:pid:random); another one never re-sends it blindly."""


class FeedbackRow(Base):
    """A user's 👍 (+1) or 👎 (-1) on a paper; a new vote replaces the old, removing deletes it."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("user_id", "paper_id", name="uq_feedback_user_paper"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    paper_id: Mapped[str] = mapped_column(ForeignKey("papers.arxiv_id", ondelete="CASCADE"))
    value: Mapped[int] = mapped_column(Integer)
    channel_id: Mapped[int | None] = mapped_column(BigInteger)
    """Where the vote was given (a channel's message), when known."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SavedPaperRow(Base):
    """A paper on a user's reading list."""

    __tablename__ = "saved_papers"
    __table_args__ = (
        UniqueConstraint("user_id", "paper_id", name="uq_saved_papers_user_paper"),
        Index("ix_saved_papers_user_saved_at", "user_id", "saved_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    paper_id: Mapped[str] = mapped_column(ForeignKey("papers.arxiv_id", ondelete="CASCADE"))
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FeedStateRow(Base):
    __tablename__ = "feed_state"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    """The source and what was asked of it, e.g. `hf:2025-03-17` or `arxiv-rss:cs.CL+cs.LG`."""
    source: Mapped[str] = mapped_column(String(32))
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    last_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)


class ProcessRow(Base):
    """A running `paperwatch run` process and its last heartbeat (several processes on PostgreSQL)."""

    __tablename__ = "processes"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    """`host:pid:random`, new at every start."""
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BotStateRow(Base):
    """Small key/value facts the bot keeps, such as the hash of the synced command tree."""

    __tablename__ = "bot_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
