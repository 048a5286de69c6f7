"""Interactions: what a user's slash command / autocomplete / click looks like, and what the bot answered."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .model import JSON, MessageFlags, StoredMessage, UploadedFile


class InteractionType:
    PING = 1
    APPLICATION_COMMAND = 2
    MESSAGE_COMPONENT = 3
    APPLICATION_COMMAND_AUTOCOMPLETE = 4
    MODAL_SUBMIT = 5


class CallbackType:
    PONG = 1
    CHANNEL_MESSAGE_WITH_SOURCE = 4
    DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5
    DEFERRED_UPDATE_MESSAGE = 6
    UPDATE_MESSAGE = 7
    APPLICATION_COMMAND_AUTOCOMPLETE_RESULT = 8
    MODAL = 9
    LAUNCH_ACTIVITY = 12


#: Callback types Discord accepts for each interaction type.
ALLOWED_CALLBACKS: dict[int, frozenset[int]] = {
    InteractionType.APPLICATION_COMMAND: frozenset({4, 5, 9, 12}),
    InteractionType.MESSAGE_COMPONENT: frozenset({4, 5, 6, 7, 9, 12}),
    InteractionType.APPLICATION_COMMAND_AUTOCOMPLETE: frozenset({8}),
    InteractionType.MODAL_SUBMIT: frozenset({4, 5, 6, 7}),
}


class OptionType:
    SUB_COMMAND = 1
    SUB_COMMAND_GROUP = 2
    STRING = 3
    INTEGER = 4
    BOOLEAN = 5
    USER = 6
    CHANNEL = 7
    ROLE = 8
    MENTIONABLE = 9
    NUMBER = 10
    ATTACHMENT = 11


class Notifier:
    """Wake-ups for ``wait_for(predicate)``; call :meth:`notify` after every state change."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for(
        self, predicate: Callable[[], bool], timeout: float, what: str = "condition", *, poll: float = 0.01
    ) -> None:
        """Wait until ``predicate()`` holds: re-checked on every :meth:`notify` and every ``poll``
        seconds (so predicates over state the fake does not own, e.g. a client's cache, work too)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, min(remaining, poll))
            except TimeoutError:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)


@dataclass
class InteractionRecord:
    """One interaction the fake sent to the bot, and everything the bot answered to it.

    ``callback`` is the bot's callback body (``{"type": 4, "data": {...}}``); ``original``
    is the message that callback created (4, 5) or the component's message it updates
    (6, 7), kept current through edits; ``followups`` are the messages posted through the
    interaction webhook. As on Discord, the first follow-up after a deferral (5) fills in
    the "thinking..." original instead of creating a new message, so it is both
    ``original`` and ``followups[0]``.
    """

    id: int
    token: str
    type: int
    payload: JSON
    created_at: float
    notifier: Notifier
    callback: JSON | None = None
    original: StoredMessage | None = None
    followups: list[StoredMessage] = field(default_factory=list)
    original_edits: list[JSON] = field(default_factory=list)
    errors: list[JSON] = field(default_factory=list)
    """Error bodies the fake answered to the bot's calls for this interaction."""
    deferred_ephemeral: bool = False
    focused_option: JSON | None = None
    """For autocomplete: the synced definition of the option being typed."""

    # --- inspection -----------------------------------------------------------------
    @property
    def callback_type(self) -> int | None:
        return None if self.callback is None else int(self.callback["type"])

    @property
    def data(self) -> JSON:
        """The callback's ``data`` (message fields, choices, modal ...), ``{}`` if none."""
        if self.callback is None:
            return {}
        return dict(self.callback.get("data") or {})

    @property
    def ephemeral(self) -> bool:
        """Whether the reply is ephemeral (flags 64 on the message or on the deferral)."""
        if self.original is not None:
            return self.original.ephemeral
        return bool(int(self.data.get("flags") or 0) & MessageFlags.EPHEMERAL)

    @property
    def choices(self) -> list[JSON]:
        """Autocomplete choices answered with callback type 8."""
        return list(self.data.get("choices") or [])

    @property
    def reply(self) -> StoredMessage | None:
        """The visible reply: the original response once it is no longer "thinking"."""
        if self.original is not None and not self.original.loading:
            return self.original
        return None

    @property
    def messages(self) -> list[StoredMessage]:
        """Every message of the answer: the reply, then the follow-ups that are not the reply."""
        shown = [] if self.reply is None else [self.reply]
        return shown + [m for m in self.followups if m is not self.reply]

    @property
    def text(self) -> str:
        """The content of every message of the answer, one per line."""
        return "\n".join(m.content for m in self.messages)

    @property
    def files(self) -> list[UploadedFile]:
        """The files the answer's messages carry (with their bytes)."""
        return [upload for message in self.messages for upload in message.files]

    # --- waiting --------------------------------------------------------------------
    async def wait_response(self, timeout: float = 5.0) -> JSON:
        """The bot's interaction callback body (``{"type": ..., "data": ...}``).

        Raises ``AssertionError`` if the fake rejected the bot's callback (the error is in ``errors``).
        """
        await self.notifier.wait_for(
            lambda: self.callback is not None or bool(self.errors),
            timeout,
            f"a callback to interaction {self.id}",
        )
        if self.callback is None:
            raise AssertionError(f"the bot's callback to interaction {self.id} was rejected: {self.errors}")
        return self.callback

    async def wait_reply(self, timeout: float = 5.0) -> StoredMessage:
        """The reply message once it has content: a type 4/7 callback, or a deferral then filled in."""
        await self.notifier.wait_for(
            lambda: self.reply is not None, timeout, f"a (non-loading) reply to interaction {self.id}"
        )
        assert self.reply is not None
        return self.reply

    async def wait_update(self, timeout: float = 5.0) -> StoredMessage:
        """The component's message once the bot updated it: at once after an UPDATE_MESSAGE (7)
        callback, after a DEFERRED_UPDATE_MESSAGE (6) once the bot edited the message."""
        await self.wait_response(timeout)
        if self.callback_type not in (CallbackType.DEFERRED_UPDATE_MESSAGE, CallbackType.UPDATE_MESSAGE):
            raise AssertionError(f"interaction {self.id} was answered with callback {self.callback_type}")
        await self.notifier.wait_for(
            lambda: self.callback_type == CallbackType.UPDATE_MESSAGE or bool(self.original_edits),
            timeout,
            f"the update of the message of interaction {self.id}",
        )
        assert self.original is not None
        return self.original

    async def wait_followups(self, count: int = 1, timeout: float = 5.0) -> list[StoredMessage]:
        """At least ``count`` follow-up messages."""
        await self.notifier.wait_for(
            lambda: len(self.followups) >= count, timeout, f"{count} follow-up(s) to interaction {self.id}"
        )
        return list(self.followups)

    async def wait_for(self, predicate: Callable[[InteractionRecord], bool], timeout: float = 5.0) -> None:
        await self.notifier.wait_for(lambda: predicate(self), timeout, f"interaction {self.id} condition")


class CommandNotSynced(LookupError):
    """The test invoked a command that the bot never synced (or with a wrong sub-command path)."""


def find_command(commands: Iterable[JSON], name: str, command_type: int = 1) -> JSON | None:
    for command in commands:
        if command["name"] == name and int(command.get("type", 1)) == command_type:
            return command
    return None


def resolve_path(command: JSON, path: list[str]) -> tuple[list[str], list[JSON]]:
    """Walk sub-command group / sub-command names; return (kinds path, leaf option definitions)."""
    options: list[JSON] = list(command.get("options") or [])
    has_subs = any(
        int(opt["type"]) in (OptionType.SUB_COMMAND, OptionType.SUB_COMMAND_GROUP) for opt in options
    )
    walked: list[str] = [command["name"]]
    for part in path:
        match = next(
            (
                opt
                for opt in options
                if opt["name"] == part
                and int(opt["type"]) in (OptionType.SUB_COMMAND, OptionType.SUB_COMMAND_GROUP)
            ),
            None,
        )
        if match is None:
            names = [opt["name"] for opt in options]
            raise CommandNotSynced(f"/{' '.join(walked)} has no sub-command {part!r} (has {names})")
        walked.append(part)
        options = list(match.get("options") or [])
        has_subs = any(
            int(opt["type"]) in (OptionType.SUB_COMMAND, OptionType.SUB_COMMAND_GROUP) for opt in options
        )
    if has_subs:
        names = [opt["name"] for opt in options]
        raise CommandNotSynced(f"/{' '.join(walked)} needs a sub-command (one of {names})")
    return walked, options


def nest_options(command: JSON, path: list[str], leaf: list[JSON]) -> list[JSON]:
    """Wrap leaf option values into the sub-command group / sub-command envelope Discord sends."""
    result = leaf
    options: list[JSON] = list(command.get("options") or [])
    kinds: list[int] = []
    for part in path:
        match = next(opt for opt in options if opt["name"] == part)
        kinds.append(int(match["type"]))
        options = list(match.get("options") or [])
    for part, kind in reversed(list(zip(path, kinds, strict=True))):
        result = [{"type": kind, "name": part, "options": result}]
    return result


def check_choice_answer(option: Mapping[str, Any] | None, choices: Any) -> list[str]:
    """Problems Discord would report for an autocomplete answer (empty list: fine)."""
    problems: list[str] = []
    if not isinstance(choices, list):
        return ["choices must be a list"]
    if len(choices) > 25:
        problems.append(f"{len(choices)} choices (max 25)")
    option_type = None if option is None else int(option["type"])
    for index, choice in enumerate(choices):
        name = choice.get("name") if isinstance(choice, Mapping) else None
        value = choice.get("value") if isinstance(choice, Mapping) else None
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            problems.append(f"choice {index}: name must be 1-100 characters")
        if option_type == OptionType.STRING and (not isinstance(value, str) or len(value) > 100):
            problems.append(f"choice {index}: value must be a string of at most 100 characters")
        if option_type == OptionType.INTEGER and (isinstance(value, bool) or not isinstance(value, int)):
            problems.append(f"choice {index}: value must be an integer for an integer option")
        if option_type == OptionType.NUMBER and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            problems.append(f"choice {index}: value must be a number for a number option")
    return problems
