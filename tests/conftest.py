"""Shared fixtures: the test-only tasks as a plugin, and isolation of global zoo state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import imgzoo
from imgzoo import api, plugins, registry

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
    registry.clear_user_registries()
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
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
