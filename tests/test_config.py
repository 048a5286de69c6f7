"""Settings: defaults, the TOML file, `PAPERWATCH_<SECTION>__<KEY>` overrides, and the token."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bot.config import RETIRED_KEYS, load_settings
from bot.config_checks import ConfigError
from tests.conftest import TOKEN

pytestmark = pytest.mark.usefixtures("isolated_cwd")


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(*args: object, **kwargs: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(*args, **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message, f"a config error is one line: {message!r}"
    return message


# --- defaults and the file -------------------------------------------------------------------


def test_defaults_are_the_spec_values() -> None:
    settings = load_settings(environ={})
    assert settings.discord.api_base == "https://discord.com/api/v10"
    assert settings.discord.gateway_url == "wss://gateway.discord.gg/"
    assert settings.discord.dev_guild_id is None
    assert settings.database.url == "sqlite+aiosqlite:///paperwatch.db"
    assert settings.feeds.huggingface.enabled is True
    assert settings.feeds.huggingface.url == "https://huggingface.co/api/daily_papers"
    assert settings.feeds.huggingface.poll_interval == 1800
    assert settings.feeds.arxiv.enabled is False
    assert settings.feeds.arxiv.rss_url == "https://rss.arxiv.org/rss/"
    assert tuple(settings.feeds.arxiv.categories) == ("cs.CL", "cs.LG")
    assert settings.feeds.arxiv.poll_interval == 3600
    assert settings.digest.time == "09:00"
    assert settings.digest.timezone == "UTC"
    assert settings.digest.max_papers == 25
    assert settings.digest.lookback_hours == 24
    assert settings.limits.query_length == 300
    assert settings.limits.watches_per_channel == 50
    assert settings.limits.alerts_per_user == 25
    assert not settings.token
    assert settings.source is None


def test_the_example_config_loads_and_equals_the_defaults() -> None:
    example = Path(__file__).resolve().parents[1] / "config.example.toml"
    from_file = load_settings(example, environ={})
    defaults = load_settings(environ={})
    assert from_file.public_dict() == defaults.public_dict()


def test_file_values_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[discord]
api_base = "http://127.0.0.1:8080/api/v10"
gateway_url = "ws://127.0.0.1:8080/gateway"
dev_guild_id = 1234567890

[database]
url = "sqlite+aiosqlite:///elsewhere.db"

[feeds.huggingface]
poll_interval = 90
enabled = false

[feeds.arxiv]
enabled = true
categories = ["cs.AI", "stat.ML", "math.OC"]

[digest]
time = "07:45"
timezone = "Europe/Paris"
max_papers = 12
lookback_hours = 6

[limits]
watches_per_channel = 3
""",
    )
    settings = load_settings(path, environ={})
    assert settings.source == path
    assert settings.discord.api_base == "http://127.0.0.1:8080/api/v10"
    assert settings.discord.gateway_url == "ws://127.0.0.1:8080/gateway"
    assert settings.discord.dev_guild_id == 1234567890
    assert settings.database.url == "sqlite+aiosqlite:///elsewhere.db"
    assert settings.feeds.huggingface.poll_interval == 90
    assert settings.feeds.huggingface.enabled is False
    assert settings.feeds.arxiv.enabled is True
    assert tuple(settings.feeds.arxiv.categories) == ("cs.AI", "stat.ML", "math.OC")
    assert settings.digest.time == "07:45"
    assert settings.digest.timezone == "Europe/Paris"
    assert settings.digest.max_papers == 12
    assert settings.digest.lookback_hours == 6
    assert settings.limits.watches_per_channel == 3
    # keys the file does not name keep their defaults
    assert settings.limits.alerts_per_user == 25
    assert settings.feeds.arxiv.poll_interval == 3600


def test_config_path_from_environment_variable(tmp_path: Path) -> None:
    path = write(tmp_path, '[digest]\ntime = "06:30"\n', name="other.toml")
    settings = load_settings(environ={"PAPERWATCH_CONFIG": str(path)})
    assert settings.digest.time == "06:30"
    assert settings.source == path


def test_config_toml_in_the_working_directory_is_used(tmp_path: Path) -> None:
    write(tmp_path, "[digest]\nmax_papers = 7\n")  # the autouse fixture made tmp_path the cwd
    assert load_settings(environ={}).digest.max_papers == 7


# --- environment overrides -------------------------------------------------------------------


def test_env_overrides_nested_tables_bools_numbers_and_lists(tmp_path: Path) -> None:
    path = write(tmp_path, "[feeds.huggingface]\npoll_interval = 1200\nenabled = true\n")
    settings = load_settings(
        path,
        environ={
            "PAPERWATCH_FEEDS__HUGGINGFACE__POLL_INTERVAL": "900",
            "PAPERWATCH_FEEDS__HUGGINGFACE__ENABLED": "false",
            "PAPERWATCH_FEEDS__ARXIV__ENABLED": "1",
            "PAPERWATCH_FEEDS__ARXIV__CATEGORIES": "cs.CV, cs.RO",
            "PAPERWATCH_DIGEST__MAX_PAPERS": "40",
            "PAPERWATCH_DIGEST__TIMEZONE": "America/New_York",
            "PAPERWATCH_DISCORD__DEV_GUILD_ID": "42",
        },
    )
    assert settings.feeds.huggingface.poll_interval == 900  # the environment beats the file
    assert settings.feeds.huggingface.enabled is False
    assert settings.feeds.arxiv.enabled is True
    assert tuple(settings.feeds.arxiv.categories) == ("cs.CV", "cs.RO")
    assert settings.digest.max_papers == 40
    assert settings.digest.timezone == "America/New_York"
    assert settings.discord.dev_guild_id == 42


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("on", True),
        ("0", False),
        ("no", False),
        ("off", False),
    ],
)
def test_env_bools(text: str, expected: bool) -> None:
    settings = load_settings(environ={"PAPERWATCH_FEEDS__ARXIV__ENABLED": text})
    assert settings.feeds.arxiv.enabled is expected


def test_env_list_as_json() -> None:
    settings = load_settings(environ={"PAPERWATCH_FEEDS__ARXIV__CATEGORIES": '["cs.CL", "q-bio.NC"]'})
    assert tuple(settings.feeds.arxiv.categories) == ("cs.CL", "q-bio.NC")


def test_env_bad_bool_names_the_key() -> None:
    message = config_error(environ={"PAPERWATCH_FEEDS__ARXIV__ENABLED": "maybe"})
    assert "feeds.arxiv.enabled" in message
    assert "maybe" in message


def test_env_bad_number_names_the_key() -> None:
    message = config_error(environ={"PAPERWATCH_FEEDS__HUGGINGFACE__POLL_INTERVAL": "soon"})
    assert "feeds.huggingface.poll_interval" in message


def test_env_unknown_key_names_it() -> None:
    message = config_error(environ={"PAPERWATCH_FEEDS__HUGGINGFACE__POLL_INTERVALL": "5"})
    assert "feeds.huggingface.poll_intervall" in message
    assert "unknown" in message


def test_non_positive_poll_interval_refused() -> None:
    message = config_error(environ={"PAPERWATCH_FEEDS__HUGGINGFACE__POLL_INTERVAL": "0"})
    assert "feeds.huggingface.poll_interval" in message


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("PAPERWATCH_DATABASE__POOL_SIZE", "0", "database.pool_size"),
        ("PAPERWATCH_DATABASE__MAX_OVERFLOW", "-1", "database.max_overflow"),
    ],
)
def test_a_database_pool_without_connections_is_refused(variable: str, value: str, key: str) -> None:
    assert key in config_error(environ={variable: value})


def test_the_database_pool_settings_are_read() -> None:
    settings = load_settings(
        environ={"PAPERWATCH_DATABASE__POOL_SIZE": "7", "PAPERWATCH_DATABASE__MAX_OVERFLOW": "0"}
    )
    assert (settings.database.pool_size, settings.database.max_overflow) == (7, 0)


def test_unrelated_environment_variables_are_ignored() -> None:
    settings = load_settings(environ={"PATH": "/usr/bin", "PAPERWATCH_CLOCK_OFFSET": "60", "HOME": "/root"})
    assert settings.digest.max_papers == 25


# --- refusals --------------------------------------------------------------------------------


def test_unknown_key_in_file_names_it(tmp_path: Path) -> None:
    path = write(tmp_path, "[digest]\nmax_paper = 3\n")
    message = config_error(path, environ={})
    assert "digest.max_paper" in message


def test_unknown_section_in_file_names_it(tmp_path: Path) -> None:
    path = write(tmp_path, "[digets]\nmax_papers = 3\n")
    assert "digets" in config_error(path, environ={})


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[digest]\nmax_papers = "ten"\n', "digest.max_papers"),
        ("[digest]\nmax_papers = 2.5\n", "digest.max_papers"),
        ('[feeds.huggingface]\nenabled = "yes"\n', "feeds.huggingface.enabled"),
        ("[feeds.huggingface]\npoll_interval = true\n", "feeds.huggingface.poll_interval"),
        ('[feeds.arxiv]\ncategories = "cs.CL"\n', "feeds.arxiv.categories"),
        ("[feeds.arxiv]\ncategories = [1, 2]\n", "feeds.arxiv.categories"),
        ("[database]\nurl = 5\n", "database.url"),
        ('[digest]\ntime = "25:00"\n', "digest.time"),
        ("feeds = 3\n", "feeds"),
    ],
)
def test_bad_type_names_the_key(tmp_path: Path, toml: str, key: str) -> None:
    path = write(tmp_path, toml)
    assert key in config_error(path, environ={})


def test_bad_timezone_names_key_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, '[digest]\ntimezone = "Mars/Olympus_Mons"\n')
    message = config_error(path, environ={})
    assert "digest.timezone" in message
    assert "Mars/Olympus_Mons" in message


def test_bad_toml_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[digest\ntime = 09:00\n")
    message = config_error(path, environ={})
    assert str(path) in message
    assert "TOML" in message


def test_missing_config_path_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "config.toml"
    message = config_error(missing, environ={})
    assert str(missing) in message


def test_missing_config_path_from_environment(tmp_path: Path) -> None:
    missing = tmp_path / "gone.toml"
    assert str(missing) in config_error(environ={"PAPERWATCH_CONFIG": str(missing)})


def test_database_url_error_does_not_echo_credentials(tmp_path: Path) -> None:
    message = config_error(environ={"PAPERWATCH_DATABASE__URL": "mysql://admin:hunter2@db.example/pw"})
    assert "database.url" in message
    assert "hunter2" not in message


# --- the token -------------------------------------------------------------------------------


def test_token_only_from_discord_token_and_never_printed(tmp_path: Path) -> None:
    settings = load_settings(environ={"DISCORD_TOKEN": f"  {TOKEN}\n"})
    assert settings.token.reveal() == TOKEN  # surrounding whitespace from a .env file is dropped
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings)
    assert TOKEN not in repr(settings.token)
    assert TOKEN not in str(settings.token)
    assert TOKEN not in f"{settings.token}"
    public = json.dumps(settings.public_dict())
    assert TOKEN not in public
    assert settings.public_dict()["discord"]["token"] != ""


def test_public_dict_says_when_the_token_is_missing() -> None:
    public = load_settings(environ={}).public_dict()
    assert "DISCORD_TOKEN" in public["discord"]["token"]


def test_token_in_the_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, f'[discord]\ntoken = "{TOKEN}"\n')
    message = config_error(path, environ={})
    assert "discord.token" in message
    assert "DISCORD_TOKEN" in message
    assert TOKEN not in message


def test_token_in_a_paperwatch_variable_is_refused() -> None:
    message = config_error(environ={"PAPERWATCH_DISCORD__TOKEN": TOKEN})
    assert "DISCORD_TOKEN" in message
    assert TOKEN not in message


# --- keys that did nothing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[feeds.arxiv]\napi_url = "https://export.arxiv.org/api/query"\n', "feeds.arxiv.api_url"),
    ],
)
def test_a_retired_key_in_the_file_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, toml: str, key: str
) -> None:
    path = write(tmp_path, toml + '\n[digest]\ntime = "07:15"\n')
    with caplog.at_level(logging.WARNING, logger="bot.config"):
        settings = load_settings(path, environ={})
    assert settings.digest.time == "07:15"  # the rest of the file is read as before
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert key in warnings[0]
    assert "ignored" in warnings[0]
    assert key.rsplit(".", 1)[1] not in json.dumps(settings.public_dict())


def test_a_retired_key_from_the_environment_is_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.config"):
        settings = load_settings(environ={"PAPERWATCH_FEEDS__ARXIV__API_URL": "https://example.org/api"})
    assert not hasattr(settings.feeds.arxiv, "api_url")
    assert any("feeds.arxiv.api_url" in r.getMessage() for r in caplog.records)


# --- shards ------------------------------------------------------------------------------------


def test_without_shard_keys_the_bot_is_one_unsharded_connection() -> None:
    settings = load_settings(environ={})
    assert settings.discord.shard_count is None
    assert settings.discord.shard_ids is None
    assert settings.discord.max_requests_per_second == 45


def test_shard_keys_from_the_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, "[discord]\nshard_count = 4\nshard_ids = [1, 3]\nmax_requests_per_second = 30\n")
    with caplog.at_level(logging.WARNING, logger="bot.config"):
        settings = load_settings(path, environ={})
    assert (settings.discord.shard_count, settings.discord.shard_ids) == (4, (1, 3))
    assert settings.discord.max_requests_per_second == 30.0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # no longer a retired key


@pytest.mark.parametrize("value", ["0,1", "[0,1]", " 0 , 1 ", "[0, 1]"])
def test_shard_ids_from_the_environment(value: str) -> None:
    settings = load_settings(
        environ={"PAPERWATCH_DISCORD__SHARD_COUNT": "3", "PAPERWATCH_DISCORD__SHARD_IDS": value}
    )
    assert settings.discord.shard_ids == (0, 1)
    assert settings.discord.shard_count == 3


def test_an_empty_shard_ids_variable_means_all_shards() -> None:
    settings = load_settings(environ=two_shards(""))
    assert settings.discord.shard_ids is None


def two_shards(ids: str) -> dict[str, str]:
    return {"PAPERWATCH_DISCORD__SHARD_COUNT": "2", "PAPERWATCH_DISCORD__SHARD_IDS": ids}


@pytest.mark.parametrize(
    ("environ", "needle"),
    [
        ({"PAPERWATCH_DISCORD__SHARD_IDS": "0"}, "needs discord.shard_count"),
        (two_shards("2"), "2 is not a shard of 2"),
        (two_shards("-1"), "-1 is not a shard"),
        (two_shards("1,1"), "named twice"),
        (two_shards("[]"), "at least one"),
        (two_shards("a,b"), "whole numbers"),
        ({"PAPERWATCH_DISCORD__SHARD_COUNT": "0"}, "discord.shard_count: must be 1 or more"),
        ({"PAPERWATCH_DISCORD__MAX_REQUESTS_PER_SECOND": "0"}, "discord.max_requests_per_second"),
    ],
)
def test_bad_shard_settings_are_refused(environ: dict[str, str], needle: str) -> None:
    assert needle in config_error(environ=environ)


def test_the_example_config_names_only_keys_that_do_something() -> None:
    text = (Path(__file__).resolve().parents[1] / "config.example.toml").read_text(encoding="utf-8")
    for retired in RETIRED_KEYS:
        assert retired.rsplit(".", 1)[1] not in text


def test_the_test_clock_variables_are_not_settings() -> None:
    """They have no `__`, so they never reach the settings; `paperwatch run` checks them (test_clock)."""
    settings = load_settings(
        environ={"PAPERWATCH_CLOCK_START": "2025-10-03T08:00:00", "PAPERWATCH_CLOCK_SPEED": "60"}
    )
    assert settings.public_dict() == load_settings(environ={}).public_dict()
