"""Make the tasks available to the tests, whether or not the package is pip-installed."""

from __future__ import annotations

from collections.abc import Iterator

import imgzoo
import pytest

import imgzoo_superres


@pytest.fixture(autouse=True)
def plugin_registered() -> Iterator[None]:
    # Installed (pip install -e .), the entry point has registered the plugin already. Straight
    # from a checkout (src/ is on the path, see pyproject.toml), register it for each test.
    if "superres" in imgzoo.list_tasks():
        yield
        return
    name = imgzoo.register_plugin(imgzoo_superres, name="superres")
    yield
    imgzoo.unregister_plugin(name)
