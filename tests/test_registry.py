"""The catalogue: the built-in registry.toml, user registry files, wildcard listing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import imgzoo
from imgzoo import catalogue
from toy_tasks import write_invert_weights, write_registry

pytestmark = pytest.mark.usefixtures("toy_tasks")
SHA = "ab" * 32


def test_list_tasks_filters_by_wildcard() -> None:
    assert imgzoo.list_tasks("inv*") == ["invert"]
    assert imgzoo.list_tasks("*gan") == ["toygan"]
    assert imgzoo.list_tasks("nothing*") == []
    assert imgzoo.list_tasks() == sorted(imgzoo.list_tasks())


def test_builtin_registry_file_is_found() -> None:
    assert catalogue.builtin_registry_file().name == "registry.toml"
    assert catalogue.registry_files()[0] == catalogue.builtin_registry_file()


def test_task_info_reads_plugin_and_schema() -> None:
    info = imgzoo.task_info("invert")
    assert info.plugin == "toy-tasks" and info.description == "Photographic negative (test task)"
    assert info.weights == {} and info.default_weights is None
    assert info.config_schema["properties"]["gain"]["description"]


def test_user_registry_via_api(tmp_path: Path) -> None:
    file = tmp_path / "mine.toml"
    write_registry(file, "invert", {"v1": ("w.safetensors", SHA)}, default="v1")
    imgzoo.add_registry(file)
    info = imgzoo.task_info("invert")
    assert info.default_weights == "v1"
    assert info.weights["v1"].sha256 == SHA and info.weights["v1"].base_dir == tmp_path
    assert info.weights["v1"].license == "MIT"


def test_user_registry_via_env_overrides_earlier_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    write_registry(first, "invert", {"v1": ("a.safetensors", SHA)}, default="v1")
    second.write_text(
        '[tasks.invert]\ndescription = "overridden"\n\n'
        f'[tasks.invert.weights.v2]\nurl = "https://example.invalid/v2.safetensors"\nsha256 = "{"cd" * 32}"\n'
    )
    monkeypatch.setenv("IMGZOO_REGISTRY", os.pathsep.join([str(first), str(second)]))
    info = imgzoo.task_info("invert")
    assert info.description == "overridden" and set(info.weights) == {"v1", "v2"}
    assert info.weights["v2"].source.startswith("https://")


def test_readme_gives_the_registry_separator_the_code_uses() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `IMGZOO_REGISTRY` |"))
    assert "the platform's path separator" in row and f"`{os.pathsep}`" in row


def test_a_weights_entry_may_give_its_size(tmp_path: Path) -> None:
    file = tmp_path / "sized.toml"
    url = "https://example.invalid/v.safetensors"
    file.write_text(f'[tasks.invert.weights.v]\nurl = "{url}"\nsha256 = "{SHA}"\nsize = 1234\n')
    imgzoo.add_registry(file)
    assert imgzoo.task_info("invert").weights["v"].size == 1234
    file.write_text(file.read_text().replace("1234", "0"))
    with pytest.raises(imgzoo.ConfigError, match="size"):
        imgzoo.task_info("invert")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[tasks.invert\n", "not valid TOML"),
        ("[tasks.invert]\ncolour = 1\n", r"unknown keys \['colour'\]"),
        ("tasks = 3\n", "must be a table"),
        ("[tasks]\ninvert = 3\n", "must be a table"),
        ("[tasks.invert]\nweights = 3\n", "one table per named weights"),
    ],
)
def test_bad_registry_files_are_named(tmp_path: Path, content: str, message: str) -> None:
    file = tmp_path / "bad.toml"
    file.write_text(content)
    with pytest.raises(imgzoo.ZooError, match=message) as caught:
        imgzoo.add_registry(file)
    assert "bad.toml" in str(caught.value)


def test_missing_registry_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(imgzoo.ZooError, match=r"cannot read registry file .*nope\.toml"):
        imgzoo.add_registry(tmp_path / "nope.toml")


def test_bad_weights_entry_is_a_config_error(tmp_path: Path) -> None:
    file = tmp_path / "r.toml"
    file.write_text('[tasks.invert.weights.v1]\nfile = "w.safetensors"\nsha256 = "short"\n')
    imgzoo.add_registry(file)
    with pytest.raises(imgzoo.ConfigError, match="sha256"):
        imgzoo.task_info("invert")


def test_default_weights_must_exist(tmp_path: Path) -> None:
    file = tmp_path / "r.toml"
    file.write_text('[tasks.invert]\ndefault_weights = "ghost"\n')
    imgzoo.add_registry(file)
    with pytest.raises(imgzoo.ZooError, match="ghost"):
        imgzoo.task_info("invert")


# ── weights="default" and "none" ─────────────────────────────────────────────────────────────
def test_weights_default_is_what_none_loads(tmp_path: Path) -> None:
    weights = tmp_path / "exact.safetensors"
    write_registry(
        tmp_path / "r.toml",
        "invert",
        {"exact": (weights.name, write_invert_weights(weights))},
        default="exact",
    )
    imgzoo.add_registry(tmp_path / "r.toml")
    named, implicit = imgzoo.load("invert", "default"), imgzoo.load("invert")
    assert named.weights is not None and implicit.weights is not None
    assert named.weights.name == implicit.weights.name == "exact"
    assert imgzoo.load("invert", "none").weights is None


def test_weights_registered_as_default_are_those_weights(tmp_path: Path) -> None:
    write_registry(
        tmp_path / "r.toml",
        "invert",
        {
            "exact": ("exact.safetensors", write_invert_weights(tmp_path / "exact.safetensors")),
            "default": ("half.safetensors", write_invert_weights(tmp_path / "half.safetensors", gain=0.5)),
        },
        default="exact",
    )
    imgzoo.add_registry(tmp_path / "r.toml")
    loaded = imgzoo.load("invert", "default")
    assert loaded.weights is not None and loaded.weights.name == "default"


def test_weights_default_without_default_weights_warns_like_none() -> None:
    with pytest.warns(UserWarning, match="untrained"):
        assert imgzoo.load("invert", "default").weights is None


# ── metric names ─────────────────────────────────────────────────────────────────────────────
def test_shipped_metric_keys_use_one_spelling() -> None:
    """Keys spell "color" as the tasks write them, in the registry and in the shipped weights' metadata."""
    from imgzoo.weights import local_weights_file, read_metadata

    keys = []
    for name in catalogue.list_tasks():
        for entry in catalogue.task_info(name).weights.values():
            keys += list(entry.metrics)
            path = local_weights_file(entry.source, sha256=entry.sha256, base_dir=entry.base_dir)
            if path is not None:
                keys += list(read_metadata(path).get("metrics", {}))
    assert "colorfulness_ratio" in keys and "psnr_mean_color" in keys
    assert not [key for key in keys if "colour" in key]
