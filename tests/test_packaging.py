"""The package installs like a package: a wheel, installed outside the repository, runs.

The wheel is built from a copy of the sources and installed with its dependencies into a new
virtual environment in a temporary folder; every command then runs from that folder, so
nothing of the checkout (its `migrations/`, its editable install) can stand in for what the
wheel ships.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import HF_OVERLAP, TOKEN, expected_matches

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _declared_packages() -> dict[str, Path]:
    """The packages pyproject.toml lists, with the folder each is built from."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = tool.get("package-dir", {})
    folders = {}
    for name in tool["packages"]:
        base = next(
            (p for p in sorted(mapped, key=len, reverse=True) if name == p or name.startswith(p + ".")), None
        )
        if base is None:
            folders[name] = ROOT / name.replace(".", "/")
        else:
            folders[name] = ROOT / mapped[base] / name[len(base) + 1 :].replace(".", "/")
    return folders


def test_every_python_folder_is_a_declared_package() -> None:
    declared = {folder.resolve() for folder in _declared_packages().values()}
    in_tree = {
        path.parent.resolve()
        for top in (ROOT / "bot", ROOT / "migrations")
        for path in top.rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert in_tree - declared == set()
    assert all((folder / "__init__.py").is_file() for folder in declared)


def _head_revision() -> str:
    """The newest migration: the one no other migration names as its `down_revision`."""
    revisions, parents = set(), set()
    for script in (ROOT / "migrations" / "versions").glob("*.py"):
        text = script.read_text()
        found = re.search(r'^revision(?:: str)? = "([^"]+)"', text, re.MULTILINE)
        if found:
            revisions.add(found.group(1))
            down = re.search(r'^down_revision[^=]*= "([^"]+)"', text, re.MULTILINE)
            if down:
                parents.add(down.group(1))
    (head,) = revisions - parents
    return head


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment outside the repository with the built wheel installed; its bin/."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("bot", "migrations"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    dist = work / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("paperwatch-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    return venv / "bin"


def _run(bin_dir: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PAPERWATCH_", "PYTHON", "DISCORD_"))}
    return subprocess.run(
        [str(bin_dir / args[0]), *args[1:]],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_installed_program_is_the_wheels_own(installed: Path, tmp_path: Path) -> None:
    done = _run(installed, tmp_path, "python", "-c", "import bot, bot.migrations; print(bot.__file__)")
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(installed.parent)
    assert not Path(done.stdout.strip()).is_relative_to(ROOT)


def test_db_upgrade_migrates_a_new_sqlite_file(installed: Path, tmp_path: Path) -> None:
    database = tmp_path / "fresh.db"
    done = _run(
        installed, tmp_path, "paperwatch", "db", "upgrade",
        PAPERWATCH_DATABASE__URL=f"sqlite+aiosqlite:///{database}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(database) as connection:
        (version,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert version == _head_revision()
    assert {"papers", "watches", "deliveries", "targets"} <= tables


def test_check_config_runs_and_masks_the_token(installed: Path, tmp_path: Path) -> None:
    done = _run(installed, tmp_path, "paperwatch", "check-config", DISCORD_TOKEN=TOKEN)
    assert done.returncode == 0, done.stderr
    assert "api_base" in done.stdout
    assert TOKEN not in done.stdout + done.stderr


def test_match_on_a_fixture(installed: Path, tmp_path: Path) -> None:
    feed = tmp_path / HF_OVERLAP.name
    shutil.copy(HF_OVERLAP, feed)
    done = _run(installed, tmp_path, "paperwatch", "match", "--query", "model", "--feed", str(feed))
    assert done.returncode == 0, done.stderr
    expected = expected_matches("model", HF_OVERLAP)
    assert expected
    assert done.stdout.split() == expected
