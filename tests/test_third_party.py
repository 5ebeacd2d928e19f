"""Third-party plugins for real: a fresh virtual environment, pip, entry points and the CLI.

imgzoo (as a built wheel) and the example packages ``examples/imgzoo-denoise`` and
``examples/imgzoo-superres`` are pip-installed into a new venv that borrows torch and the other
dependencies from the environment running the tests (see ``scratch_venv``), so nothing is
downloaded. The venv's ``imgzoo`` command must then list, run and report the plugins; a package
written by ``imgzoo new-plugin`` must install and register too; and after ``pip uninstall`` the
task must be gone. The tests share the venv and run in file order.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from scratch_venv import make_scratch_venv

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "imgzoo-denoise"
SUPERRES = REPO_ROOT / "examples" / "imgzoo-superres"

pytestmark = pytest.mark.slow


@dataclass
class Venv:
    root: Path  # a scratch folder, also the working directory of the commands
    python: Path
    imgzoo: Path
    wheel: Path

    def env(self) -> dict[str, str]:
        # No PYTHONPATH: only what is installed may be imported. One thread: the machine is shared.
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        return {**env, "OMP_NUM_THREADS": "1"}

    def call(self, *argv: str) -> str:
        """Run a command with the venv's environment in its scratch folder; its standard output."""
        completed = subprocess.run(
            argv, cwd=self.root, env=self.env(), capture_output=True, text=True, timeout=300, check=False
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr
        return completed.stdout

    def pip(self, *args: str) -> None:
        self.call(str(self.python), "-m", "pip", *args, "--quiet", "--no-deps", "--no-index")

    def run(self, *args: str) -> str:
        return self.call(str(self.imgzoo), *args)

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json"))

    def install_example(self, package: Path) -> None:
        # Built from a copy: setuptools writes build/ and *.egg-info next to the sources it builds.
        source = shutil.copytree(
            package,
            self.root / package.name,
            ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
        )
        self.pip("install", "--no-build-isolation", str(source))


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    root = tmp_path_factory.mktemp("third-party")
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"),
            *("--wheel-dir", str(root / "dist"), str(REPO_ROOT)),
        ],
        check=True,
        timeout=600,
    )
    (wheel,) = (root / "dist").glob("imgzoo-*.whl")
    python = make_scratch_venv(root / "venv")
    venv = Venv(root, python, python.parent / "imgzoo", wheel)
    venv.pip("install", str(wheel))
    venv.install_example(EXAMPLE)
    return venv


def test_the_wheel_carries_the_test_kit_and_the_scaffold_templates(venv: Venv) -> None:
    names = set(zipfile.ZipFile(venv.wheel).namelist())
    assert {"imgzoo/testing.py", "imgzoo/scaffold/__init__.py"} <= names
    assert "imgzoo/scaffold/templates/pyproject.toml.tmpl" in names
    assert "imgzoo/scaffold/templates/src/__package__/task.py.tmpl" in names


def test_the_installed_plugin_is_listed_runs_and_is_reported(venv: Venv, tmp_path: Path) -> None:
    probe = (
        "import numpy, imgzoo, imgzoo_denoise\n"
        "print(imgzoo.__file__, imgzoo_denoise.__file__)\n"
        "print(imgzoo.run('denoise', numpy.full((21, 34, 3), 0.5, 'float32')).shape)\n"
    )
    shown = venv.call(str(venv.python), "-c", probe).splitlines()
    assert all(path.startswith(str(venv.root / "venv")) for path in shown[0].split()), shown
    assert shown[1] == "(21, 34, 3)"  # imgzoo.run, with the shipped weights

    listed = {entry["name"]: entry for entry in venv.json("list")}
    assert listed["denoise"]["plugin"] == "denoise"
    assert listed["denoise"]["default_weights"] == "minifigs-v1"

    # A minifigure with the noise the shipped weights were trained on.
    from imgzoo_minifigs.dataset import MinifigsDataset

    clean = MinifigsDataset(resolution=96, seed=11, n=1)[0].image
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 0.1, clean.shape), 0, 1)
    cv2.imwrite(str(tmp_path / "noisy.png"), cv2.cvtColor(_to_uint8(noisy), cv2.COLOR_RGB2BGR))
    venv.run("run", "denoise", str(tmp_path / "noisy.png"), "-o", str(tmp_path / "clean.png"))
    written = cv2.imread(str(tmp_path / "clean.png"))
    assert written is not None
    result = cv2.cvtColor(written, cv2.COLOR_BGR2RGB)
    assert result.shape == clean.shape
    assert _psnr(result, clean) > _psnr(_to_uint8(noisy), clean) + 3

    reported = {entry["name"]: entry for entry in venv.json("plugins")}["denoise"]
    assert reported["status"] == "loaded" and reported["error"] is None
    assert (reported["distribution"], reported["version"]) == ("imgzoo-denoise", "0.1.0")
    assert reported["plugin_api"] == [3] and reported["tasks"] == ["denoise"]
    assert reported["hooks"] == ["register_registry_files", "register_tasks"]


def test_a_generated_plugin_installs_and_registers_through_its_entry_point(venv: Venv) -> None:
    venv.run("new-plugin", "sharpen", "--dir", str(venv.root))
    venv.pip("install", "--no-build-isolation", str(venv.root / "imgzoo-sharpen"))
    assert "sharpen" in {entry["name"] for entry in venv.json("list")}
    reported = {entry["name"]: entry for entry in venv.json("plugins")}["sharpen"]
    assert reported["distribution"] == "imgzoo-sharpen" and reported["status"] == "loaded"


def test_the_superres_package_installs_and_enlarges_an_image_from_the_command_line(
    venv: Venv, tmp_path: Path
) -> None:
    venv.install_example(SUPERRES)
    listed = {entry["name"]: entry for entry in venv.json("list")}
    assert listed["superres"]["plugin"] == listed["superres-x4"]["plugin"] == "superres"
    small = _to_uint8(np.random.default_rng(0).random((21, 34, 3)))
    cv2.imwrite(str(tmp_path / "small.png"), small)
    venv.run("run", "superres", str(tmp_path / "small.png"), "-o", str(tmp_path / "large.png"))
    large = cv2.imread(str(tmp_path / "large.png"))
    assert large is not None and large.shape == (42, 68, 3)


def test_uninstalling_the_package_removes_its_task(venv: Venv) -> None:
    venv.call(str(venv.python), "-m", "pip", "uninstall", "--yes", "--quiet", "imgzoo-denoise")
    listed = {entry["name"] for entry in venv.json("list")}
    assert "denoise" not in listed and "colorize" in listed
    assert "denoise" not in {entry["name"] for entry in venv.json("plugins")}


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(image) * 255).astype(np.uint8)


def _psnr(image: np.ndarray, reference: np.ndarray) -> float:
    difference = image.astype(np.float64) / 255 - _to_uint8(reference).astype(np.float64) / 255
    return float(10 * np.log10(1 / max(float(np.mean(difference**2)), 1e-10)))
