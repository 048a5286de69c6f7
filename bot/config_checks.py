"""The checks a configuration passes before the bot starts: each refusal names its key."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from bot.config import DiscordSettings, Settings

_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class ConfigError(Exception):
    """A bad config file or value; the message is one line naming the key."""


def _shards(d: DiscordSettings) -> None:
    if d.shard_count is not None and d.shard_count < 1:
        raise ConfigError(f"discord.shard_count: must be 1 or more, got {d.shard_count}")
    if d.shard_ids is None:
        return
    if d.shard_count is None:
        raise ConfigError("discord.shard_ids: needs discord.shard_count, the shards of the whole bot")
    if not d.shard_ids:
        raise ConfigError("discord.shard_ids: must name at least one shard (or be unset for all)")
    wrong = [i for i in d.shard_ids if not 0 <= i < d.shard_count]
    if wrong:
        raise ConfigError(
            f"discord.shard_ids: {wrong[0]} is not a shard of {d.shard_count} (0 to {d.shard_count - 1})"
        )
    if len(set(d.shard_ids)) != len(d.shard_ids):
        raise ConfigError("discord.shard_ids: a shard is named twice")


def validate(s: Settings) -> None:
    def positive(key: str, value: float) -> None:
        if value <= 0:
            raise ConfigError(f"{key}: must be greater than 0, got {value}")

    positive("database.pool_size", s.database.pool_size)
    if s.database.max_overflow < 0:
        raise ConfigError(f"database.max_overflow: must be 0 or more, got {s.database.max_overflow}")
    positive("feeds.huggingface.poll_interval", s.feeds.huggingface.poll_interval)
    positive("feeds.arxiv.poll_interval", s.feeds.arxiv.poll_interval)
    positive("feeds.huggingface.page_size", s.feeds.huggingface.page_size)
    positive("feeds.timeout", s.feeds.timeout)
    positive("feeds.max_bytes", s.feeds.max_bytes)
    positive("feeds.max_attempts", s.feeds.max_attempts)
    positive("digest.max_papers", s.digest.max_papers)
    positive("digest.check_interval", s.digest.check_interval)
    positive("discord.nonce_window", s.discord.nonce_window)
    positive("discord.max_requests_per_second", s.discord.max_requests_per_second)
    _shards(s.discord)
    positive("scaleout.heartbeat_interval", s.scaleout.heartbeat_interval)
    positive("scaleout.leader_retry", s.scaleout.leader_retry)
    positive("scaleout.leader_check", s.scaleout.leader_check)
    positive("scaleout.max_concurrent_targets", s.scaleout.max_concurrent_targets)
    if s.scaleout.lease <= 2 * s.scaleout.heartbeat_interval:
        raise ConfigError("scaleout.lease: must be more than twice scaleout.heartbeat_interval")
    positive("limits.query_length", s.limits.query_length)
    positive("limits.watches_per_channel", s.limits.watches_per_channel)
    positive("limits.alerts_per_user", s.limits.alerts_per_user)
    positive("limits.watches_per_guild", s.limits.watches_per_guild)
    positive("limits.commands_per_minute", s.limits.commands_per_minute)
    positive("limits.lookups_per_minute", s.limits.lookups_per_minute)
    positive("limits.search_candidates", s.limits.search_candidates)
    positive("limits.saved_per_user", s.limits.saved_per_user)
    if s.feeds.huggingface.backfill_days < 0:
        raise ConfigError("feeds.huggingface.backfill_days: must be 0 or more")
    if s.digest.lookback_hours < 0:
        raise ConfigError("digest.lookback_hours: must be 0 or more")
    if s.limits.command_cooldown < 0:
        raise ConfigError("limits.command_cooldown: must be 0 or more")
    if s.limits.lookup_cooldown < 0:
        raise ConfigError("limits.lookup_cooldown: must be 0 or more")
    if not 0 < s.relevance.like_threshold <= 1:
        raise ConfigError("relevance.like_threshold: must be greater than 0 and at most 1")
    positive("relevance.refit_growth", s.relevance.refit_growth)
    if not 0 <= s.relevance.recommend_cutoff < 1:
        raise ConfigError("relevance.recommend_cutoff: must be at least 0 and less than 1")
    if not 0 <= s.feeds.jitter <= 1:
        raise ConfigError("feeds.jitter: must be between 0 and 1")
    if not _TIME.match(s.digest.time):
        raise ConfigError(f"digest.time: expected HH:MM (24-hour), got {s.digest.time!r}")
    try:
        ZoneInfo(s.digest.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"digest.timezone: unknown IANA timezone {s.digest.timezone!r}") from None
    for key, url in (
        ("discord.api_base", s.discord.api_base),
        ("feeds.huggingface.url", s.feeds.huggingface.url),
        ("feeds.arxiv.rss_url", s.feeds.arxiv.rss_url),
    ):
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{key}: expected an http(s) URL, got {url!r}")
    if not s.discord.gateway_url.startswith(("ws://", "wss://")):
        raise ConfigError(f"discord.gateway_url: expected a ws(s) URL, got {s.discord.gateway_url!r}")
    if not s.database.url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ConfigError(
            "database.url: expected sqlite+aiosqlite:///PATH or postgresql+asyncpg://…, "
            f"got {s.database.url.split('://')[0]}://…"
        )
    if s.logging.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"logging.level: expected DEBUG, INFO, WARNING or ERROR, got {s.logging.level!r}")
    if s.logging.format not in ("text", "json"):
        raise ConfigError(f"logging.format: expected text or json, got {s.logging.format!r}")
    if s.metrics.listen is not None:
        listen_address(s.metrics.listen)


def listen_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (an IPv6 host in brackets, `[::1]:9108`) as (host, port); ConfigError otherwise."""
    host, sep, port = text.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"metrics.listen: expected HOST:PORT, e.g. 127.0.0.1:9108, got {text!r}")
    return host, int(port)
