"""Backends: found by name in one table, added by plugins, and run by every front-end alike."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

import imgzoo
from imgzoo.backends import BUILTIN_BACKENDS, backend_class, backend_names, check_backend
from imgzoo.backends.pytorch import TorchBackend
from imgzoo.cli import main
from imgzoo.images import load_image, save_image
from toy_tasks import write_invert_weights

pytestmark = pytest.mark.usefixtures("toy_tasks")


class DoublingBackend(TorchBackend):
    """A third party's backend: PyTorch's forward pass, doubled, so that its use shows."""

    name = "doubling"
    batches: ClassVar[list[tuple[int, ...]]] = []

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        DoublingBackend.batches.append(tuple(batch.shape))
        return super().forward(batch) * 2


class BackendPlugin:
    @imgzoo.hookimpl
    def register_backends(self, register):  # type: ignore[no-untyped-def]
        register("doubling", f"{__name__}:DoublingBackend")


@pytest.fixture
def doubling() -> Iterator[None]:
    name = imgzoo.register_plugin(BackendPlugin(), name="doubling-backend")
    DoublingBackend.batches.clear()
    yield
    imgzoo.unregister_plugin(name)


def test_the_built_in_backends_are_found_by_name_without_importing_them() -> None:
    assert backend_names()[:2] == list(BUILTIN_BACKENDS) == ["torch", "onnxruntime"]
    assert backend_class("torch") is TorchBackend
    with pytest.raises(imgzoo.BackendError, match="unknown backend 'tensorrt': use torch or onnxruntime"):
        check_backend("tensorrt")


def test_the_table_imports_no_torch() -> None:
    import subprocess

    probe = "import sys, imgzoo.backends as b; b.backend_names(); print('torch' in sys.modules)"
    answer = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert answer.stdout.strip() == "False"


@pytest.mark.usefixtures("doubling")
def test_a_plugins_backend_runs_under_run_load_and_the_cli(tmp_path: Path) -> None:
    assert "doubling" in backend_names()
    weights = tmp_path / "invert.safetensors"
    write_invert_weights(weights)
    picture = np.full((4, 6, 3), 0.25, np.float32)
    plain = imgzoo.run("invert", picture, weights=weights, precision="fp32")
    doubled = imgzoo.run("invert", picture, weights=weights, precision="fp32", backend="doubling")
    np.testing.assert_allclose(doubled, np.clip(plain * 2, 0, 1), atol=1e-6)
    assert "backend='doubling'" in repr(imgzoo.load("invert", weights, backend="doubling"))
    save_image(tmp_path / "in.png", picture)
    command = ["run", "invert", str(tmp_path / "in.png"), "--weights", str(weights), "--backend", "doubling"]
    assert main([*command, "-o", str(tmp_path / "out.png")]) == 0
    assert DoublingBackend.batches == [(1, 3, 4, 6)] * 2
    np.testing.assert_allclose(load_image(tmp_path / "out.png").pixels, doubled, atol=1 / 255)


def test_the_table_names_the_backends_the_hooks_reserve() -> None:
    from imgzoo.hookspecs import BUILTIN_BACKEND_NAMES

    assert tuple(BUILTIN_BACKENDS) == BUILTIN_BACKEND_NAMES
