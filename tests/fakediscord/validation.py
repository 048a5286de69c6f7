"""Discord's validation rules for message bodies and application commands (pure functions).

Errors are collected into :class:`~tests.fakediscord.errors.FormErrors`, which becomes a
400 ``Invalid Form Body`` (50035) with Discord's nested ``errors`` layout.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

from .components import validate_components
from .errors import FormErrors
from .model import JSON, MessageFlags, UploadedFile, embed_length

COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$", re.UNICODE)
_URL_SCHEMES = ("http://", "https://", "attachment://")


def _well_formed_url(url: Any) -> bool:
    if not isinstance(url, str) or not url.startswith(_URL_SCHEMES):
        return False
    parts = urlparse(url)
    return bool(parts.netloc or parts.path)


def validate_message(body: Mapping[str, Any], errors: FormErrors, *, interaction: bool = False) -> None:
    """Discord's limits for a message body (create, edit, interaction response), as 50035 errors."""
    content = body.get("content")
    if content is not None and not isinstance(content, str):
        errors.add(["content"], "BASE_TYPE_STRING", "Must be a string.")
    elif isinstance(content, str) and len(content) > 2000:
        errors.add(["content"], "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
    embeds = body.get("embeds") or []
    if len(embeds) > 10:
        errors.add(["embeds"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    total = 0
    for index, embed in enumerate(embeds):
        total += embed_length(embed)
        limits = (("title", 256), ("description", 4096))
        for key, limit in limits:
            if len(str(embed.get(key) or "")) > limit:
                errors.add(
                    ["embeds", index, key], "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."
                )
        fields = embed.get("fields") or []
        if len(fields) > 25:
            errors.add(["embeds", index, "fields"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        for findex, fld in enumerate(fields):
            for key, limit in (("name", 256), ("value", 1024)):
                text = str(fld.get(key) or "")
                if not text:
                    errors.add(
                        ["embeds", index, "fields", findex, key],
                        "BASE_TYPE_REQUIRED",
                        "This field is required",
                    )
                elif len(text) > limit:
                    errors.add(
                        ["embeds", index, "fields", findex, key],
                        "BASE_TYPE_MAX_LENGTH",
                        f"Must be {limit} or fewer in length.",
                    )
        if len(str((embed.get("footer") or {}).get("text") or "")) > 2048:
            errors.add(
                ["embeds", index, "footer", "text"],
                "BASE_TYPE_MAX_LENGTH",
                "Must be 2048 or fewer in length.",
            )
        if len(str((embed.get("author") or {}).get("name") or "")) > 256:
            errors.add(
                ["embeds", index, "author", "name"],
                "BASE_TYPE_MAX_LENGTH",
                "Must be 256 or fewer in length.",
            )
        urls: list[tuple[list[str | int], Any]] = [(["url"], embed.get("url"))]
        for key in ("image", "thumbnail"):
            urls.append(([key, "url"], (embed.get(key) or {}).get("url")))
        urls.append((["author", "url"], (embed.get("author") or {}).get("url")))
        urls.append((["author", "icon_url"], (embed.get("author") or {}).get("icon_url")))
        urls.append((["footer", "icon_url"], (embed.get("footer") or {}).get("icon_url")))
        for path, url in urls:
            if url is not None and not _well_formed_url(url):
                errors.add(["embeds", index, *path], "URL_TYPE_INVALID_URL", "Not a well formed URL.")
    if total > 6000:
        errors.add(["embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
    flags = int(body.get("flags") or 0)
    if flags & MessageFlags.IS_COMPONENTS_V2 and (content or embeds):
        errors.add(
            ["content" if content else "embeds"],
            "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
            "The 'content' and 'embeds' fields cannot be used with MessageFlags.IS_COMPONENTS_V2",
        )
    if "components" in body:
        validate_components(body["components"], errors, v2=bool(flags & MessageFlags.IS_COMPONENTS_V2))
    if flags & MessageFlags.EPHEMERAL and not interaction:
        errors.add(["flags"], "MESSAGE_FLAGS_INVALID", "Invalid message flags")
    nonce = body.get("nonce")
    if nonce is not None and (
        (isinstance(nonce, str) and len(nonce) > 25)
        or not isinstance(nonce, str | int)
        or isinstance(nonce, bool)
    ):
        errors.add(["nonce"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    mentions = body.get("allowed_mentions")
    if mentions is not None:
        parse = mentions.get("parse") or []
        for kind in ("users", "roles"):
            if kind in parse and mentions.get(kind):
                errors.add(
                    ["allowed_mentions"],
                    "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
                )
        for kind in parse:
            if kind not in ("users", "roles", "everyone"):
                errors.add(
                    ["allowed_mentions", "parse"],
                    "ENUM_TYPE_COERCE",
                    f'Value "{kind}" is not a valid enum value.',
                )


def is_empty_message(body: Mapping[str, Any], files: Sequence[UploadedFile]) -> bool:
    """What Discord refuses with 50006 "Cannot send an empty message"."""
    return not (
        str(body.get("content") or "").strip()
        or body.get("embeds")
        or body.get("components")
        or body.get("sticker_ids")
        or body.get("poll")
        or files
    )


def validate_command(command: JSON, path: list[str | int], errors: FormErrors) -> None:
    ctype = int(command.get("type", 1))
    name = command.get("name")
    description = command.get("description", "")
    if ctype == 1:
        if not isinstance(name, str) or not COMMAND_NAME.match(name) or name != name.lower():
            errors.add([*path, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        if not isinstance(description, str) or not 1 <= len(description) <= 100:
            errors.add([*path, "description"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
    else:
        if not isinstance(name, str) or not 1 <= len(name) <= 32:
            errors.add([*path, "name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
        if description:
            errors.add(
                [*path, "description"],
                "APPLICATION_COMMAND_DESCRIPTION_NOT_EMPTY",
                "Description must be empty",
            )
    validate_options(command.get("options") or [], [*path, "options"], errors, depth=0)


def validate_options(options: list[JSON], path: list[str | int], errors: FormErrors, *, depth: int) -> None:
    if len(options) > 25:
        errors.add(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    kinds = [int(o.get("type", 0)) for o in options]
    subs = [k in (1, 2) for k in kinds]
    if any(subs) and not all(subs):
        errors.add(
            path,
            "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
            "Sub-command and sub-command group option types are mutually exclusive to all other types",
        )
    seen_optional = False
    names: set[str] = set()
    for index, option in enumerate(options):
        opath = [*path, index]
        name = option.get("name")
        kind = int(option.get("type", 0))
        if not isinstance(name, str) or not COMMAND_NAME.match(name) or name != name.lower():
            errors.add([*opath, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        elif name in names:
            errors.add(
                [*opath, "name"],
                "APPLICATION_COMMAND_OPTION_NAME_ALREADY_EXISTS",
                "Option names must be unique",
            )
        names.add(str(name))
        description = option.get("description", "")
        if not isinstance(description, str) or not 1 <= len(description) <= 100:
            errors.add(
                [*opath, "description"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        if not 1 <= kind <= 11:
            errors.add([*opath, "type"], "BASE_TYPE_CHOICES", f"Value must be one of {list(range(1, 12))}.")
        if (kind == 2 and depth > 0) or (kind == 1 and depth > 1):
            errors.add(
                [*opath, "type"],
                "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
                "Sub-commands nested too deeply",
            )
        if kind == 2 and any(int(o.get("type", 0)) != 1 for o in option.get("options") or []):
            errors.add(
                [*opath, "options"],
                "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
                "A group may only contain sub-commands",
            )
        if kind in (1, 2):
            validate_options(option.get("options") or [], [*opath, "options"], errors, depth=depth + 1)
            continue
        if option.get("required"):
            if seen_optional:
                errors.add(
                    [*opath, "required"],
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
        else:
            seen_optional = True
        choices = option.get("choices") or []
        if len(choices) > 25:
            errors.add([*opath, "choices"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        if choices and option.get("autocomplete"):
            errors.add(
                [*opath, "autocomplete"],
                "APPLICATION_COMMAND_AUTOCOMPLETE_INVALID",
                "Autocomplete cannot be set with choices",
            )
