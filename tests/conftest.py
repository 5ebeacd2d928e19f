"""Shared fixtures: the test-only tasks as a plugin, and isolation of global zoo state."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import imgzoo
from imgzoo import api, catalogue, plugins

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_zoo(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts with the installed plugins only, no user registries, an empty
    pipeline cache and its own weights cache directory."""
    monkeypatch.setenv("IMGZOO_CACHE", str(tmp_path_factory.mktemp("cache")))
    for variable in ("IMGZOO_REGISTRY", "IMGZOO_OFFLINE", "IMGZOO_PLUGINS", "IMGZOO_DISABLE_PLUGINS"):
        monkeypatch.delenv(variable, raising=False)
    yield
    for name in list(plugins._extra_plugins):
        plugins.unregister_plugin(name)
    catalogue.clear_user_registries()
    api.clear_cache()
    plugins.reload_plugins()


@pytest.fixture
def toy_tasks() -> Iterator[None]:
    """Register the test-only tasks ``invert`` and ``toygan``."""
    from toy_tasks import ToyTasksPlugin

    name = imgzoo.register_plugin(ToyTasksPlugin(), name="toy-tasks")
    yield
    imgzoo.unregister_plugin(name)


@pytest.fixture
def contract_tasks() -> Iterator[None]:
    """Register the test-only tasks ``toy-inpaint``, ``toy-depth`` and ``toy-upscale``."""
    from toy_contract_tasks import ContractTasksPlugin

    name = imgzoo.register_plugin(ContractTasksPlugin(), name="contract-tasks")
    yield
    imgzoo.unregister_plugin(name)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One local Ray cluster (2 CPUs) for the session, its workers knowing the test-only tasks
    with seeded weights as their defaults (the ``seeded`` fixtures register the same weights in
    the driver)."""
    import ray

    from ray_workers import SEEDED_TASKS, start_local_ray, toy_tasks_registered
    from serving import write_seeded_weights

    registries = tmp_path_factory.mktemp("ray-registries")
    with toy_tasks_registered():
        write_seeded_weights(registries, SEEDED_TASKS)
    catalogue.clear_user_registries()
    start_local_ray(registries)
    yield
    ray.shutdown()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def deny_reading(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """``deny_reading(folder)``: listing that folder fails with PermissionError, as it would for a
    user without the right to read it (permissions alone cannot show this to root)."""
    denied: set[Path] = set()
    real_scandir = os.scandir

    def scandir(path: Any = ".") -> Any:
        if Path(path) in denied:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    return denied.add


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, offline. huggingface_hub reads its environment once, when it
    is imported: its constants are set as the environment would have set them."""
    import huggingface_hub.constants

    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache
