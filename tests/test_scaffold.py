"""``imgzoo new-plugin``: the package it writes is named right and passes its own tests as written.

Installing a generated package into a virtual environment, and finding its task through the
entry point, is tested in test_third_party.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import imgzoo
from imgzoo.cli import main
from imgzoo.scaffold import new_plugin, plugin_names


def test_names_follow_the_task_name() -> None:
    assert plugin_names("super-res") == {
        "task": "super-res",
        "distribution": "imgzoo-super-res",
        "package": "imgzoo_super_res",
        "class_prefix": "SuperRes",
    }
    assert plugin_names("x2")["class_prefix"] == "X2"


@pytest.mark.parametrize("bad", ["Sharpen", "2x", "my task", "sharpen-", ""])
def test_invalid_names_are_refused_with_an_example(bad: str) -> None:
    with pytest.raises(imgzoo.ZooError, match="for example 'sharpen'"):
        new_plugin(bad)


def test_the_package_has_every_part(tmp_path: Path) -> None:
    folder = new_plugin("sharpen", tmp_path)
    assert folder == tmp_path / "imgzoo-sharpen"
    written = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}
    assert written == {
        "README.md",
        "pyproject.toml",
        "src/imgzoo_sharpen/__init__.py",
        "src/imgzoo_sharpen/config.py",
        "src/imgzoo_sharpen/model.py",
        "src/imgzoo_sharpen/py.typed",
        "src/imgzoo_sharpen/registry.toml",
        "src/imgzoo_sharpen/task.py",
        "tests/conftest.py",
        "tests/test_task.py",
    }
    pyproject = (folder / "pyproject.toml").read_text()
    assert '[project.entry-points.imgzoo]\nsharpen = "imgzoo_sharpen"' in pyproject
    assert "$" not in "".join(path.read_text() for path in folder.rglob("*") if path.is_file())


def test_an_existing_folder_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "imgzoo-sharpen").mkdir()
    (tmp_path / "imgzoo-sharpen" / "mine.txt").write_text("keep me")
    with pytest.raises(imgzoo.ZooError, match="already exists and is not empty"):
        new_plugin("sharpen", tmp_path)
    assert (tmp_path / "imgzoo-sharpen" / "mine.txt").read_text() == "keep me"


def test_the_command_writes_the_package_and_says_what_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new-plugin", "sharpen", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"created {tmp_path / 'imgzoo-sharpen'}" in out and "pip install -e ." in out
    assert main(["new-plugin", "sharpen", "--dir", str(tmp_path)]) == 1
    assert "already exists" in capsys.readouterr().err


def test_the_command_warns_when_an_installed_plugin_has_the_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toy_tasks: None
) -> None:
    assert main(["new-plugin", "invert", "--dir", str(tmp_path)]) == 0
    assert "plugin 'toy-tasks' already provides a task 'invert'" in capsys.readouterr().err


@pytest.mark.slow
def test_the_generated_package_passes_its_own_tests_and_lint(tmp_path: Path) -> None:
    folder = new_plugin("sharpen", tmp_path)
    # The imgzoo under test, and nothing else from this checkout: the package imports it as an
    # installed dependency.
    env = {**os.environ, "PYTHONPATH": str(Path(imgzoo.__file__).resolve().parents[1])}
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=folder,
        env={**env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    # A new package has no weights yet and is not installed: the two checks about those say so.
    skipped = [line for line in tests.stdout.splitlines() if line.startswith("SKIPPED")]
    assert " passed" in tests.stdout and len(skipped) == 2, tests.stdout
    assert "registers no local weights files to verify" in skipped[0] + skipped[1]
    assert "registered in this process only" in skipped[0] + skipped[1]
    for command in (["check", "."], ["format", "--check", "."]):
        lint = subprocess.run(
            [sys.executable, "-m", "ruff", *command],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
