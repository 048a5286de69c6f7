"""Message components as Discord checks them, and what a user can do with them.

:func:`validate_components` is called for every message body the bot sends (create, edit,
interaction response, follow-up): what real Discord refuses with 400 ``Invalid Form Body``
(50035), the fake refuses the same way, with the error at the offending path, e.g.
``components.0.components.2.label``:

* at most 5 action rows in a message (legacy layout; with ``IS_COMPONENTS_V2`` at most 40
  components in all), a row holds 1-5 buttons or exactly one select menu;
* a button: style 1-6; label at most 80 characters; a custom id of 1-100 characters
  (link buttons: a url and no custom id); a label or an emoji;
* a select menu: a custom id of 1-100 characters, a placeholder of at most 150 characters,
  ``min_values`` 0-25, ``max_values`` 1-25 and not below ``min_values``; a string select
  has 1-25 options whose labels and values are 1-100 characters, descriptions at most
  100, values distinct, and ``max_values`` at most the number of options;
* custom ids are unique within a message, disabled components included.

:func:`check_pick` is what Discord's client enforces before a select interaction exists
(only offered values, between ``min_values`` and ``max_values`` of them); the fake's
``select_option`` refuses a test's impossible pick with ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import FormErrors


class ComponentType:
    ACTION_ROW = 1
    BUTTON = 2
    STRING_SELECT = 3
    TEXT_INPUT = 4
    USER_SELECT = 5
    ROLE_SELECT = 6
    MENTIONABLE_SELECT = 7
    CHANNEL_SELECT = 8
    SECTION = 9
    TEXT_DISPLAY = 10
    THUMBNAIL = 11
    MEDIA_GALLERY = 12
    FILE = 13
    SEPARATOR = 14
    CONTAINER = 17


class ButtonStyle:
    PRIMARY = 1
    SECONDARY = 2
    SUCCESS = 3
    DANGER = 4
    LINK = 5
    PREMIUM = 6


SELECT_TYPES = frozenset({3, 5, 6, 7, 8})
MAX_ACTION_ROWS = 5
MAX_ROW_WIDTH = 5
MAX_V2_COMPONENTS = 40
MAX_BUTTON_LABEL = 80
MAX_CUSTOM_ID = 100
MAX_SELECT_OPTIONS = 25
MAX_OPTION_TEXT = 100
MAX_PLACEHOLDER = 150
MAX_SELECT_VALUES = 25

Path = list[str | int]


def _too_long(errors: FormErrors, path: Path, limit: int) -> None:
    errors.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _bad_length(errors: FormErrors, path: Path, low: int, high: int) -> None:
    errors.add(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")


def _required(errors: FormErrors, path: Path) -> None:
    errors.add(path, "BASE_TYPE_REQUIRED", "This field is required")


def _text(
    errors: FormErrors, path: Path, value: Any, limit: int, *, required: bool = False, low: int = 0
) -> None:
    """A string field: present when required, a string, within its length."""
    if value is None:
        if required:
            _required(errors, path)
        return
    if not isinstance(value, str):
        errors.add(path, "BASE_TYPE_STRING", "Must be a string.")
    elif low and not low <= len(value) <= limit:
        _bad_length(errors, path, low, limit)
    elif len(value) > limit:
        _too_long(errors, path, limit)


def _number(errors: FormErrors, path: Path, value: Any, low: int, high: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        errors.add(path, "NUMBER_TYPE_COERCE", f'Value "{value}" is not int.')
    elif value < low:
        errors.add(path, "NUMBER_TYPE_MIN", f"int value should be greater than or equal to {low}.")
    elif value > high:
        errors.add(path, "NUMBER_TYPE_MAX", f"int value should be less than or equal to {high}.")


def validate_components(components: Any, errors: FormErrors, *, v2: bool = False) -> None:
    """Discord's limits for a message's ``components``, collected into ``errors`` (50035)."""
    if components is None:
        return
    if not isinstance(components, list):
        errors.add(["components"], "BASE_TYPE_ARRAY", "Must be an array.")
        return
    seen: dict[str, Path] = {}
    if v2:
        if _count(components) > MAX_V2_COMPONENTS:
            errors.add(
                ["components"],
                "COMPONENT_MAX_TOTAL_COMPONENTS_EXCEEDED",
                f"Components must contain at most {MAX_V2_COMPONENTS} components in total.",
            )
    elif len(components) > MAX_ACTION_ROWS:
        _too_long(errors, ["components"], MAX_ACTION_ROWS)
    for index, component in enumerate(components):
        path: Path = ["components", index]
        if not isinstance(component, Mapping):
            errors.add(path, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
            continue
        kind = component.get("type")
        if kind == ComponentType.ACTION_ROW:
            _row(component, path, errors, seen)
        elif not v2:
            errors.add([*path, "type"], "BASE_TYPE_CHOICES", "Value must be one of {1}.")
        else:
            _v2_component(component, path, errors, seen)


def _count(components: Sequence[Any]) -> int:
    total = 0
    for component in components:
        if isinstance(component, Mapping):
            total += 1
            children = component.get("components")
            if isinstance(children, list):
                total += _count(children)
            if isinstance(component.get("accessory"), Mapping):
                total += 1
    return total


def _v2_component(
    component: Mapping[str, Any], path: Path, errors: FormErrors, seen: dict[str, Path]
) -> None:
    """Components-v2 layouts: rows and buttons inside containers and sections are checked alike."""
    kind = component.get("type")
    children = component.get("components")
    if kind == ComponentType.CONTAINER and isinstance(children, list):
        for index, child in enumerate(children):
            if isinstance(child, Mapping):
                _v2_component(child, [*path, "components", index], errors, seen)
    elif kind == ComponentType.ACTION_ROW:
        _row(component, path, errors, seen)
    accessory = component.get("accessory")
    if isinstance(accessory, Mapping) and accessory.get("type") == ComponentType.BUTTON:
        _button(accessory, [*path, "accessory"], errors, seen)


def _row(row: Mapping[str, Any], path: Path, errors: FormErrors, seen: dict[str, Path]) -> None:
    children = row.get("components")
    if not isinstance(children, list) or not 1 <= len(children) <= MAX_ROW_WIDTH:
        _bad_length(errors, [*path, "components"], 1, MAX_ROW_WIDTH)
        if not isinstance(children, list):
            return
    kinds = [c.get("type") if isinstance(c, Mapping) else None for c in children]
    if any(k in SELECT_TYPES for k in kinds) and len(children) > 1:
        errors.add(
            [*path, "components"],
            "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
            "The specified component exceeds the maximum width",
        )
    for index, child in enumerate(children):
        cpath: Path = [*path, "components", index]
        if not isinstance(child, Mapping):
            errors.add(cpath, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
        elif child.get("type") == ComponentType.BUTTON:
            _button(child, cpath, errors, seen)
        elif child.get("type") in SELECT_TYPES:
            _select(child, cpath, errors, seen)
        else:
            errors.add([*cpath, "type"], "BASE_TYPE_CHOICES", "Value must be one of {2, 3, 5, 6, 7, 8}.")


def _custom_id(component: Mapping[str, Any], path: Path, errors: FormErrors, seen: dict[str, Path]) -> None:
    custom_id = component.get("custom_id")
    _text(errors, [*path, "custom_id"], custom_id, MAX_CUSTOM_ID, required=True, low=1)
    if isinstance(custom_id, str) and custom_id:
        if custom_id in seen:
            errors.add(
                [*path, "custom_id"],
                "COMPONENT_CUSTOM_ID_DUPLICATED",
                "Component custom id cannot be duplicated",
            )
        seen.setdefault(custom_id, path)


def _button(button: Mapping[str, Any], path: Path, errors: FormErrors, seen: dict[str, Path]) -> None:
    style = button.get("style")
    if style not in (1, 2, 3, 4, 5, 6):
        errors.add([*path, "style"], "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4, 5, 6}.")
    _text(errors, [*path, "label"], button.get("label"), MAX_BUTTON_LABEL)
    if style == ButtonStyle.LINK:
        if not button.get("url"):
            _required(errors, [*path, "url"])
        if button.get("custom_id") is not None:
            errors.add(
                [*path, "custom_id"],
                "BUTTON_COMPONENT_CUSTOM_ID_FORBIDDEN",
                "A link button cannot have a custom id",
            )
    elif style == ButtonStyle.PREMIUM:
        if not button.get("sku_id"):
            _required(errors, [*path, "sku_id"])
    else:
        _custom_id(button, path, errors, seen)
    if style != ButtonStyle.PREMIUM and not button.get("label") and not button.get("emoji"):
        errors.add(
            [*path, "label"],
            "BUTTON_COMPONENT_LABEL_OR_EMOJI_REQUIRED",
            "A button needs a label or an emoji",
        )


def _select(select: Mapping[str, Any], path: Path, errors: FormErrors, seen: dict[str, Path]) -> None:
    _custom_id(select, path, errors, seen)
    _text(errors, [*path, "placeholder"], select.get("placeholder"), MAX_PLACEHOLDER)
    low, high = select.get("min_values"), select.get("max_values")
    _number(errors, [*path, "min_values"], low, 0, MAX_SELECT_VALUES)
    _number(errors, [*path, "max_values"], high, 1, MAX_SELECT_VALUES)
    low_n = low if isinstance(low, int) else 1
    high_n = high if isinstance(high, int) else 1
    if low_n > high_n:
        errors.add(
            [*path, "min_values"],
            "SELECT_COMPONENT_MIN_VALUES_EXCEEDS_MAX",
            "min_values must be less than or equal to max_values",
        )
    if select.get("type") != ComponentType.STRING_SELECT:
        return
    options = select.get("options")
    if not isinstance(options, list) or not 1 <= len(options) <= MAX_SELECT_OPTIONS:
        _bad_length(errors, [*path, "options"], 1, MAX_SELECT_OPTIONS)
        if not isinstance(options, list):
            return
    if high_n > len(options):
        errors.add(
            [*path, "max_values"],
            "SELECT_COMPONENT_MAX_VALUES_EXCEEDS_OPTIONS",
            "max_values must be less than or equal to the number of options",
        )
    values: set[str] = set()
    for index, option in enumerate(options):
        opath: Path = [*path, "options", index]
        if not isinstance(option, Mapping):
            errors.add(opath, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
            continue
        _text(errors, [*opath, "label"], option.get("label"), MAX_OPTION_TEXT, required=True, low=1)
        _text(errors, [*opath, "value"], option.get("value"), MAX_OPTION_TEXT, required=True, low=1)
        _text(errors, [*opath, "description"], option.get("description"), MAX_OPTION_TEXT)
        value = option.get("value")
        if isinstance(value, str):
            if value in values:
                errors.add(
                    [*opath, "value"],
                    "SELECT_COMPONENT_OPTION_VALUE_DUPLICATED",
                    "Select menu option values must be unique",
                )
            values.add(value)


def check_pick(component: Mapping[str, Any], values: Sequence[str]) -> str | None:
    """Why Discord's client would not let a user pick ``values`` in this select (None: it would)."""
    low = int(component.get("min_values", 1))
    high = int(component.get("max_values", 1))
    if not low <= len(values) <= high:
        return f"{len(values)} value(s) picked; this select takes {low} to {high}"
    if len(set(values)) != len(values):
        return "the same value picked twice"
    if component.get("type") == ComponentType.STRING_SELECT:
        offered = [str(o.get("value")) for o in component.get("options") or []]
        unknown = [v for v in values if v not in offered]
        if unknown:
            return f"{unknown} not among the options {offered}"
    return None
