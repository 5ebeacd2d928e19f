"""The built wheel works on its own: registry.toml and the built-in plugins travel with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scratch_venv import make_scratch_venv

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",  # offline: hatchling comes with the test extras
            "--quiet",
            "--wheel-dir",
            str(out),
            str(REPO_ROOT),
        ],
        check=True,
        timeout=600,
    )
    (built,) = out.glob("imgzoo-*.whl")
    return built


def test_wheel_contains_the_catalogue_and_plugins(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "imgzoo/registry.toml" in names and "imgzoo/py.typed" in names
    assert any(name.startswith("imgzoo_minifigs/") for name in names)
    # The server's page is package data: it must travel with the code.
    for asset in ("index.html", "app.js", "style.css", "docs.html"):
        assert f"imgzoo/serve/static/{asset}" in names
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[imgzoo]" in text and "minifigs = imgzoo_minifigs" in text
    assert not any(name.endswith((".pkl", ".pt", ".pth", ".ckpt")) for name in names)


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_lists(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    python = make_scratch_venv(venv)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    # Run from an empty directory with a clean PYTHONPATH, so only the wheel's copy can be imported.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    probe = (
        "import imgzoo, imgzoo.catalogue as r, sys; "
        "print(imgzoo.__file__); print(r.builtin_registry_file()); print('torch' in sys.modules)"
    )
    shown = subprocess.run(
        [str(python), "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.splitlines()
    assert shown[0].startswith(str(venv)) and shown[1].startswith(str(venv)) and shown[2] == "False"
    listed = subprocess.run(
        [str(python.parent / "imgzoo"), "list", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert isinstance(json.loads(listed.stdout), list)
    plugins_out = subprocess.run(
        [str(python.parent / "imgzoo"), "plugins", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    statuses = {entry["name"]: entry["status"] for entry in json.loads(plugins_out.stdout)}
    assert statuses.get("minifigs") == "loaded"
