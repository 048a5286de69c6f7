"""Typed settings from `config.toml` merged with `PAPERWATCH_<SECTION>__<KEY>` variables.

Settings are built by `load_settings()`; nothing is read at import time. The bot token
comes only from `DISCORD_TOKEN` and is held in a `Secret` that never prints itself.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bot.config_checks import ConfigError, validate
from bot.db.engine import PG_MAX_OVERFLOW, PG_POOL_SIZE

ENV_PREFIX = "PAPERWATCH_"
CONFIG_ENV = "PAPERWATCH_CONFIG"
TOKEN_ENV = "DISCORD_TOKEN"  # noqa: S105 - the variable name, not a token
RETIRED_KEYS = {
    "feeds.arxiv.api_url": "nothing read it",
}
"""Keys that earlier versions accepted but that had no effect: ignored with a warning, so that
a config file written for those versions still starts the bot, unchanged in behaviour."""

log = logging.getLogger(__name__)


class Secret:
    """A value that is masked wherever it is printed, logged or repr'd."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class DiscordSettings:
    api_base: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg/"
    dev_guild_id: int | None = None
    """Sync commands to this one guild while developing, instead of globally."""
    application_id: int | None = None
    """Used by `paperwatch invite-url`; the running bot reads its own from Discord."""
    guild_ready_timeout: float = 2.0
    identify_delay: float = 5.0
    """Seconds between two identifies of one identify bucket (Discord allows one per 5 s)."""
    shard_count: int | None = None
    """Shards of the whole bot (all processes together); unset = one unsharded connection."""
    shard_ids: tuple[int, ...] | None = None
    """The shards this process connects; unset = all of them."""
    max_requests_per_second: float = 45.0
    """REST budget of the whole bot, all processes together (Discord allows 50)."""
    nonce_window: float = 300.0
    """Seconds an unconfirmed message is re-sent with its own nonce, which Discord deduplicates
    for a few minutes only; an older one is first looked for in the channel's history."""


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str = "sqlite+aiosqlite:///paperwatch.db"
    echo: bool = False
    pool_size: int = PG_POOL_SIZE
    """PostgreSQL: connections a process keeps open."""
    max_overflow: int = PG_MAX_OVERFLOW
    """PostgreSQL: connections a process may open beyond `pool_size` at a peak, closed after."""


@dataclass(frozen=True, slots=True)
class HuggingFaceSettings:
    enabled: bool = True
    url: str = "https://huggingface.co/api/daily_papers"
    poll_interval: float = 1800.0
    page_size: int = 50
    backfill_days: int = 2
    """Days before today that each poll also reads, so a missed day is filled in."""


@dataclass(frozen=True, slots=True)
class ArxivSettings:
    enabled: bool = False
    rss_url: str = "https://rss.arxiv.org/rss/"
    categories: tuple[str, ...] = ("cs.CL", "cs.LG")
    poll_interval: float = 3600.0


@dataclass(frozen=True, slots=True)
class FeedsSettings:
    huggingface: HuggingFaceSettings = field(default_factory=HuggingFaceSettings)
    arxiv: ArxivSettings = field(default_factory=ArxivSettings)
    timeout: float = 30.0
    max_bytes: int = 20 * 1024 * 1024
    max_attempts: int = 4
    jitter: float = 0.1
    """Fraction of a poll interval added at random, so many bots do not poll at once."""


@dataclass(frozen=True, slots=True)
class DigestSettings:
    time: str = "09:00"
    timezone: str = "UTC"
    max_papers: int = 25
    lookback_hours: float = 24.0
    check_interval: float = 20.0
    """Seconds between checks for due digests and unconfirmed posts."""


@dataclass(frozen=True, slots=True)
class LimitsSettings:
    query_length: int = 300
    watches_per_channel: int = 50
    alerts_per_user: int = 25
    watches_per_guild: int = 500
    command_cooldown: float = 2.0
    """Seconds a user waits between two commands that change something."""
    commands_per_minute: int = 20
    lookup_cooldown: float = 1.0
    """Seconds a user waits between two read-only commands (search, test, list, show, status)."""
    lookups_per_minute: int = 30
    search_candidates: int = 1000
    """The most stored papers, newest first, one search or preview runs the matcher on."""
    saved_per_user: int = 1000
    """Papers on one person's reading list (`/paper save`)."""


@dataclass(frozen=True, slots=True)
class RelevanceSettings:
    like_threshold: float = 0.25
    """The cosine of two papers' text vectors at which a `like:` term takes a paper as similar."""
    refit_growth: float = 0.2
    """The vocabulary is fitted again once the store has grown by this fraction since the last fit."""
    recommend_cutoff: float = 0.2
    """A recommendation's score (0 to 1) must reach this to be sent; docs/relevance.md shows the scale."""


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: str = "INFO"
    format: str = "text"
    """`text` (one readable line per event) or `json` (one JSON object per line, for log collectors)."""


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    listen: str | None = None
    """`HOST:PORT` where Prometheus metrics (/metrics) and readiness (/healthz) are served; unset = off."""


@dataclass(frozen=True, slots=True)
class ScaleoutSettings:
    """Several processes on one PostgreSQL database (docs/delivery.md); unused on SQLite."""

    heartbeat_interval: float = 5.0
    """Seconds between two heartbeats of a process, which also renew its claims' leases."""
    lease: float = 30.0
    """Seconds without a heartbeat after which a process counts as dead and its claims are taken over."""
    leader_retry: float = 10.0
    """Seconds between two tries of a process that does not lead to take the lead."""
    leader_check: float = 5.0
    """Seconds between two checks of the leader's database connection."""
    max_concurrent_targets: int = 64
    """Targets whose messages are sent at the same time by one process (each target stays in order)."""


@dataclass(frozen=True, slots=True)
class Settings:
    discord: DiscordSettings = field(default_factory=DiscordSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    feeds: FeedsSettings = field(default_factory=FeedsSettings)
    digest: DigestSettings = field(default_factory=DigestSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    relevance: RelevanceSettings = field(default_factory=RelevanceSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    scaleout: ScaleoutSettings = field(default_factory=ScaleoutSettings)
    token: Secret = field(default_factory=lambda: Secret(""))
    source: Path | None = None
    """The config file these settings were read from, if any."""

    def public_dict(self) -> dict[str, Any]:
        """The effective configuration with the token masked, for `check-config`."""
        out: dict[str, Any] = _as_dict(self)
        out.pop("token", None)
        out.pop("source", None)
        out["discord"]["token"] = "********" if self.token else "(not set: DISCORD_TOKEN)"
        out["database"]["url"] = make_url(self.database.url).render_as_string(hide_password=True)
        return out


def _as_dict(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _as_dict(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return value


def load_settings(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read the config file (if any), apply environment overrides, validate.

    The file is `path`, else `$PAPERWATCH_CONFIG`, else `config.toml` when it exists.
    Raises ConfigError with one line naming the key and the problem.
    """
    env = os.environ if environ is None else environ
    chosen = path or env.get(CONFIG_ENV)
    file: Path | None = None
    raw: dict[str, Any] = {}
    if chosen:
        file = Path(chosen)
        if not file.is_file():
            raise ConfigError(f"config file {file} does not exist")
    elif Path("config.toml").is_file():
        file = Path("config.toml")
    if file is not None:
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: cannot be read: {exc}") from None
    _apply_env(raw, env)
    settings: Settings = _build(Settings, raw, "")
    settings = dataclasses.replace(settings, token=Secret(env.get(TOKEN_ENV, "").strip()), source=file)
    validate(settings)
    return settings


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(parts):
            raise ConfigError(f"{name}: malformed variable name (use PAPERWATCH_<SECTION>__<KEY>)")
        node = raw
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: {'.'.join(parts[:-1])} is not a table")
            node = child
        node[parts[-1]] = _EnvText(value)


class _EnvText(str):
    """A value from the environment: text to be converted to the key's type."""


def _build(cls: type[Any], raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.name not in ("token", "source")}
    for key in list(raw):
        if key not in known:
            where = f"{prefix}{key}"
            if where in RETIRED_KEYS:
                log.warning(
                    "%s is no longer a setting and is ignored (%s); remove it", where, RETIRED_KEYS[where]
                )
                del raw[key]
                continue
            if key == "token" and prefix == "discord.":
                raise ConfigError("discord.token: the bot token is read only from DISCORD_TOKEN")
            raise ConfigError(f"{where}: unknown key (known here: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        hint = hints[f.name]
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hint):
            values[f.name] = _build(typing.cast(type[Any], hint), raw[f.name], key + ".")
        else:
            values[f.name] = _convert(raw[f.name], hint, key)
    return cls(**values)


def _convert(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        if value is None or (isinstance(value, _EnvText) and value.strip() == ""):
            return None
        return _convert(value, inner[0], key)
    if hint is bool:
        if isinstance(value, _EnvText):
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, _EnvText):
            try:
                return int(value.strip())
            except ValueError:
                raise ConfigError(f"{key}: expected a whole number, got {str(value)!r}") from None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected a whole number, got {value!r}")
    if hint is float:
        if isinstance(value, _EnvText):
            try:
                return float(value.strip())
            except ValueError:
                raise ConfigError(f"{key}: expected a number, got {str(value)!r}") from None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return str(value)
        raise ConfigError(f"{key}: expected text, got {value!r}")
    if origin is tuple:
        if isinstance(value, _EnvText):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError:
                    raise ConfigError(f"{key}: expected a JSON list, got {text!r}") from None
            else:
                value = [part.strip() for part in text.split(",") if part.strip()]
        if args and args[0] is int:
            return _whole_numbers(value, key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of text, got {value!r}")
        return tuple(value)
    raise ConfigError(f"{key}: unsupported setting type")  # pragma: no cover


def _whole_numbers(value: Any, key: str) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [value]
    numbers: list[int] = []
    for item in items:
        if isinstance(item, str) and item.strip().lstrip("-").isdigit():
            item = int(item)
        if not isinstance(item, int) or isinstance(item, bool):
            raise ConfigError(f"{key}: expected a list of whole numbers, got {value!r}")
        numbers.append(item)
    return tuple(numbers)
