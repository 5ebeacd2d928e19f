"""The plugin API version: declared by plugins, shown by ``imgzoo plugins``, enforced on load."""

from __future__ import annotations

import json
import warnings

import pytest

import imgzoo
from imgzoo import hookspecs, plugins
from imgzoo.cli import main
from toy_tasks import ToyTasksPlugin


def _info(name: str) -> plugins.PluginInfo:
    return next(info for info in plugins.plugin_infos() if info.name == name)


def _register(name: str, declared: object) -> None:
    plugin = ToyTasksPlugin()
    plugin.IMGZOO_PLUGIN_API = declared  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a failed plugin warns; its status is checked
        imgzoo.register_plugin(plugin, name=name)
        imgzoo.list_tasks()


def test_the_declared_versions_are_shown_as_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    _register("both", (4, 3))
    assert _info("both").status == "loaded" and _info("both").plugin_api == [3, 4]
    assert main(["plugins"]) == 0
    text = capsys.readouterr().out
    header = f"imgzoo {imgzoo.__version__} provides plugin API {hookspecs.PLUGIN_API_VERSION}\n"
    assert text.startswith(header)
    assert "both (ToyTasksPlugin): loaded\n  plugin API: 3, 4\n" in text
    assert main(["plugins", "--json"]) == 0
    entry = next(e for e in json.loads(capsys.readouterr().out) if e["name"] == "both")
    assert entry["plugin_api"] == [3, 4]


def test_a_plugin_for_another_api_says_which_versions_would_work(capsys: pytest.CaptureFixture[str]) -> None:
    _register("future", 99)
    info = _info("future")
    assert info.status == "failed" and info.plugin_api == [99]
    assert "targets imgzoo plugin API 99" in (info.error or "")
    assert "provides API 3: install a release of the plugin that supports API 3" in (info.error or "")
    assert "invert" not in imgzoo.list_tasks()
    assert main(["plugins"]) == 0
    assert "future (ToyTasksPlugin): failed\n  plugin API: 99\n  error: PluginError: targets" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize("declared", [1, 2, (1, 2)])
def test_a_plugin_for_api_1_or_2_is_refused(declared: object) -> None:
    _register("outdated", declared)
    assert _info("outdated").status == "failed" and "invert" not in imgzoo.list_tasks()
    assert "this imgzoo provides API 3" in (_info("outdated").error or "")


@pytest.mark.parametrize("declared", ["1", (), (1, "2"), True])
def test_a_malformed_declaration_is_reported(declared: object) -> None:
    _register("malformed", declared)
    assert "IMGZOO_PLUGIN_API must be an int or a non-empty tuple of ints" in (_info("malformed").error or "")


def test_a_plugin_that_declares_nothing_loads(toy_tasks: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert _info("toy-tasks").plugin_api is None and _info("toy-tasks").status == "loaded"
    assert main(["plugins"]) == 0
    assert "toy-tasks (ToyTasksPlugin): loaded\n  hooks:" in capsys.readouterr().out
