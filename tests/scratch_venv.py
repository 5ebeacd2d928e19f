"""Scratch virtual environments for tests that install packages, made without downloading.

A test that pip-installs a wheel needs a fresh environment, but downloading torch into it is not
an option. `--system-site-packages` looks like the answer and is not: from inside a venv it
inherits the *base* interpreter's packages, not those of the environment running the tests, so
in a fresh `python3 -m venv` the build tools and torch are simply not there. Instead the scratch
venv starts empty and a `.pth` file appends the running interpreter's own site directories to its
path: whatever runs the tests (a venv, a conda environment, a system Python) lends exactly what
it has, and what is installed into the scratch venv comes first. `.pth` files inside the
borrowed directories are not processed, so an editable install of imgzoo there does not leak in.
"""

from __future__ import annotations

import site
import subprocess
import sys
import sysconfig
from pathlib import Path


def make_scratch_venv(root: Path) -> Path:
    """A new venv at `root` that borrows the running interpreter's packages; its python."""
    # No pip of its own: the borrowed pip runs inside the venv and installs into it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=300)
    python = root / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    (Path(purelib) / "_borrowed_site_packages.pth").write_text(
        "".join(f"{directory}\n" for directory in running_site_directories()), encoding="utf-8"
    )
    return python


def running_site_directories() -> list[str]:
    """Where the running interpreter finds installed packages, in its own order."""
    paths = sysconfig.get_paths()
    directories = [*site.getsitepackages(), paths["purelib"], paths["platlib"]]
    if site.ENABLE_USER_SITE:
        directories.append(site.getusersitepackages())
    return list(dict.fromkeys(directory for directory in directories if Path(directory).is_dir()))
