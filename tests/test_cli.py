"""The `paperwatch` command line, called as `main(argv)` and once as `python -m bot`."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import discord
import pytest

from bot.cli import main
from bot.db.models import Base
from tests.conftest import (
    ALL_FEED_FILES,
    ARXIV_DIR,
    HF_DIR,
    HF_OVERLAP,
    TOKEN,
    expected_matches,
    flat,
    raw_entries,
    sqlite_url,
)

pytestmark = pytest.mark.usefixtures("isolated_cwd")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private database for every command, and no token unless a test sets one."""
    for name in list(os.environ):
        if name.startswith("PAPERWATCH_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.setenv("PAPERWATCH_DATABASE__URL", sqlite_url(tmp_path))
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def tables(tmp_path: Path, name: str = "pw.db") -> set[str]:
    with sqlite3.connect(tmp_path / name) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


# --- match -----------------------------------------------------------------------------------


@pytest.mark.parametrize("feed", ALL_FEED_FILES, ids=lambda p: p.name)
def test_match_prints_ids_in_feed_order(capsys: pytest.CaptureFixture[str], feed: Path) -> None:
    code, out, _ = run(capsys, "match", "--query", "model", "--feed", str(feed))
    assert code == 0
    assert out.split() == expected_matches("model", feed)


@pytest.mark.parametrize(
    "feed", [HF_DIR / "2025-09-30.json", ARXIV_DIR / "api_search_testing_s0_m10_2026-04-12.xml"]
)
def test_match_json(capsys: pytest.CaptureFixture[str], feed: Path) -> None:
    code, out, _ = run(capsys, "match", "--query", "learning", "--feed", str(feed), "--json")
    assert code == 0
    assert json.loads(out) == expected_matches("learning", feed)


def test_match_json_with_no_match_is_an_empty_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "match", "--query", "zyzzyvaquux", "--feed", str(HF_OVERLAP), "--json")
    assert (code, json.loads(out)) == (0, [])


def test_match_every_paper_with_upvotes_query(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "match", "--query", "upvotes>=0", "--feed", str(HF_OVERLAP))
    assert code == 0
    assert out.split() == [e.arxiv_id for e in raw_entries(HF_OVERLAP)]


def test_match_upvote_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "match", "--query", "upvotes>=10", "--feed", str(HF_OVERLAP))
    assert code == 0
    assert out.split() == [e.arxiv_id for e in raw_entries(HF_OVERLAP) if e.upvotes >= 10]


@pytest.mark.parametrize(("query", "position"), [("distill* AND", 12), ("(diffusion OR", 13), ("a ) b", 2)])
def test_match_bad_query_exits_2_naming_the_position(
    capsys: pytest.CaptureFixture[str], query: str, position: int
) -> None:
    code, out, err = run(capsys, "match", "--query", query, "--feed", str(HF_OVERLAP))
    assert code == 2
    assert out == ""
    assert f"position {position}" in err
    assert "Traceback" not in err


def test_match_missing_feed_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "match", "--query", "x", "--feed", str(tmp_path / "none.json"))
    assert (code, out) == (2, "")
    assert "none.json" in err


def test_match_feed_error_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    feed = ARXIV_DIR / "api_idlist_abc-error400_2026-04-12.xml"
    _, out, err = run(capsys, "match", "--query", "error", "--feed", str(feed))
    assert out == ""  # the API's "Error" entry is not a paper
    assert "incorrect id format for abc" in err


# --- preview ---------------------------------------------------------------------------------


def test_preview_of_a_feed_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "preview", "--query", "video", "--feed", str(HF_OVERLAP))
    assert code == 0
    matched = expected_matches("video", HF_OVERLAP)
    entries = {e.arxiv_id: e for e in raw_entries(HF_OVERLAP)}
    assert f"{len(matched)} of {len(entries)} papers" in out
    joined = flat(out)
    for arxiv_id in matched:
        assert flat(entries[arxiv_id].title)[:60] in joined
        assert f"https://huggingface.co/papers/{arxiv_id}" in out
        assert f"▲ {entries[arxiv_id].upvotes}" in out
    assert "matched video → video" in out
    titles = [flat(entries[i].title)[:60] for i in sorted(matched, key=lambda i: -entries[i].upvotes)]
    positions = [joined.index(t) for t in titles]
    assert positions == sorted(positions)  # most upvoted first


def test_preview_caps_and_announces_the_rest(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "preview", "--query", "upvotes>=0", "--feed", str(HF_OVERLAP), "--max", "3")
    assert code == 0
    assert f"and {len(raw_entries(HF_OVERLAP)) - 3} more" in out
    assert out.count("https://huggingface.co/papers/") == 3


def test_preview_from_the_database(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "fetch", "--file", str(HF_OVERLAP))[0] == 0
    code, out, _ = run(capsys, "preview", "--query", "video", "--days", "3")
    assert code == 0
    for arxiv_id in expected_matches("video", HF_OVERLAP):
        assert f"https://huggingface.co/papers/{arxiv_id}" in out
    assert "last 3 days" in out


def test_preview_bad_query(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "preview", "--query", "title:", "--feed", str(HF_OVERLAP))
    assert code == 2
    assert "position 6" in err


# --- fetch, db upgrade -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "feed", [HF_OVERLAP, HF_DIR / "2025-12-25.json", ARXIV_DIR / "api_search_au-del_maestro_2016-10-09.xml"]
)
def test_fetch_file_then_again(capsys: pytest.CaptureFixture[str], tmp_path: Path, feed: Path) -> None:
    count = len(raw_entries(feed))
    code, out, _ = run(capsys, "fetch", "--file", str(feed))
    assert code == 0
    assert f"{count} new, 0 updated, 0 skipped" in out
    code, out, _ = run(capsys, "fetch", "--file", str(feed))
    assert code == 0
    assert "0 new, 0 updated, 0 skipped" in out
    with sqlite3.connect(tmp_path / "pw.db") as conn:
        assert conn.execute("SELECT count(*) FROM papers").fetchone()[0] == count


def test_fetch_missing_file_is_a_short_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "no-such-day.json"
    code, _, err = run(capsys, "fetch", "--file", str(missing))
    assert code == 2
    assert str(missing) in err


def test_fetch_error_feed_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "fetch", "--file", str(ARXIV_DIR / "rss_astroph-bad-archive-error_2024-11-28.xml")
    )
    assert code == 1
    assert "Feed error for query" in out


def test_db_upgrade_on_a_new_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "db", "upgrade")
    assert code == 0
    assert "revision" in out
    assert tables(tmp_path) >= set(Base.metadata.tables) | {"alembic_version"}
    code, again, _ = run(capsys, "db", "upgrade")
    assert (code, again) == (0, out)


# --- configuration, token --------------------------------------------------------------------


def test_config_before_and_after_the_subcommand(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAPERWATCH_DATABASE__URL")
    config = tmp_path / "custom.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url(tmp_path / "sub")}"\n\n[digest]\nmax_papers = 7\n')
    for argv in (
        ["--config", str(config), "db", "upgrade"],
        ["db", "upgrade", "--config", str(config)],
        ["--config", str(config), "check-config"],
        ["check-config", "--config", str(config)],
    ):
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        if "check-config" in argv:
            data = json.loads(out[out.index("{") :])
            assert data["digest"]["max_papers"] == 7
            assert str(config) in out
    assert "papers" in tables(tmp_path / "sub")
    code, out, _ = run(
        capsys, "match", "--query", "video", "--feed", str(HF_OVERLAP), "--config", str(config)
    )
    assert code == 0
    assert out.split() == expected_matches("video", HF_OVERLAP)


def test_missing_config_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    code, out, err = run(capsys, "check-config", "--config", str(missing))
    assert (code, out) == (2, "")
    assert str(missing) in err


def test_bad_config_value_exits_2_naming_the_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAPERWATCH_DIGEST__TIMEZONE", "Mars/Olympus_Mons")
    code, _, err = run(capsys, "check-config")
    assert code == 2
    assert "digest.timezone" in err


def test_check_config_masks_the_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv("PAPERWATCH_FEEDS__HUGGINGFACE__POLL_INTERVAL", "600")
    code, out, err = run(capsys, "check-config")
    assert code == 0
    assert TOKEN not in out + err
    data = json.loads(out[out.index("{") :])
    assert data["discord"]["token"] == "********"
    assert data["feeds"]["huggingface"]["poll_interval"] == 600


def test_check_config_hides_the_database_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAPERWATCH_DATABASE__URL", "postgresql+asyncpg://paperwatch:s3cret-pw@db.internal/pw")
    code, out, err = run(capsys, "check-config")
    assert code == 0
    assert "db.internal" in out
    assert "s3cret-pw" not in out + err


def test_run_without_token_explains_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "run")
    assert (code, out) == (2, "")
    assert "DISCORD_TOKEN" in err
    assert "make demo" in err


def test_invite_url(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "invite-url", "--application-id", "123456789012345678")
    assert code == 0
    assert out.startswith("https://discord.com/oauth2/authorize?")
    assert "client_id=123456789012345678" in out
    assert "applications.commands" in out.replace("+", " ").replace("%20", " ")
    # exactly the permissions the README names, by their names in discord.py (not the code's number)
    wanted = discord.Permissions(
        view_channel=True,
        send_messages=True,
        send_messages_in_threads=True,
        embed_links=True,
        read_message_history=True,
    )
    [permissions] = parse_qs(urlsplit(out.strip()).query)["permissions"]
    assert int(permissions) == wanted.value
    code, _, err = run(capsys, "invite-url")
    assert code == 2
    assert "application" in err.lower()


def test_python_dash_m_bot_help(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"},
    )
    assert result.returncode == 0, result.stderr
    for command in ("run", "db", "fetch", "match", "preview", "check-config"):
        assert command in result.stdout
    assert "--config" in result.stdout


def test_unknown_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["frobnicate"])
    assert caught.value.code == 2
