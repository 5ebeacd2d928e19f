"""Configs: layered sources, strictness, field-by-field errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

import imgzoo
from imgzoo.config import build_config, parse_assignments
from toy_tasks import InvertConfig


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    depth: int = Field(2, ge=1, description="Depth.")
    name: str = Field("x", description="Name.")


class Nested(imgzoo.TaskConfig):
    inner: Inner = Field(default_factory=Inner, description="A nested section.")


def test_defaults_then_weights_then_file_then_overrides(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text("gain = 3.0\nimage_size = 64\n")
    config = build_config(
        InvertConfig,
        task="invert",
        weights_config={"gain": 2.0, "learning_rate": 0.5},
        file=file,
        overrides={"image_size": 32},
    )
    assert (config.gain, config.image_size, config.learning_rate) == (3.0, 32, 0.5)


def test_json_file_and_nested_dotted_overrides(tmp_path: Path) -> None:
    file = tmp_path / "c.json"
    file.write_text('{"inner": {"depth": 5}}')
    config = build_config(Nested, task="t", file=file, overrides={"inner.name": "y"})
    assert config.inner.depth == 5 and config.inner.name == "y"


def test_parse_assignments_reads_json_values_or_strings() -> None:
    assert parse_assignments(["a=1", "b=true", "c=mse", "d.e=[1, 2]", 'f="7"'], task="t") == {
        "a": 1,
        "b": True,
        "c": "mse",
        "d": {"e": [1, 2]},
        "f": "7",
    }
    with pytest.raises(imgzoo.ConfigError, match="expected key=value"):
        parse_assignments(["novalue"], task="t")


def test_errors_are_field_by_field_and_name_the_task() -> None:
    with pytest.raises(imgzoo.ConfigError) as caught:
        build_config(Nested, task="mytask", overrides={"image_size": 2, "inner.depth": 0, "typo": 1})
    error = caught.value
    assert error.task == "mytask"
    fields = dict(error.errors)
    assert set(fields) == {"image_size", "inner.depth", "typo"}
    assert "unknown field" in fields["typo"] and "got 2" in fields["image_size"]
    assert str(error).startswith("invalid config for task 'mytask'")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("c.toml", "gain = [", "not valid toml"),
        ("c.json", "{", "not valid json"),
        ("c.json", "[1]", "must hold a table"),
        # Before, these three were tracebacks (UnicodeDecodeError, RecursionError).
        pytest.param(
            "c.toml", b"\x00\xff\xfe binary", "c.toml is not a text file: expected UTF-8 toml", id="binary"
        ),
        pytest.param(
            "c.toml", "a = " + "[" * 5000 + "]" * 5000, "c.toml nests deeper than 32 levels", id="deep toml"
        ),
        pytest.param(
            "c.json",
            '{"a": ' + "[" * 5000 + "]" * 5000 + "}",
            "c.json nests deeper than 32 levels",
            id="deep json",
        ),
    ],
)
def test_bad_config_files(tmp_path: Path, name: str, content: str | bytes, message: str) -> None:
    file = tmp_path / name
    file.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(imgzoo.ConfigError, match=message):
        build_config(InvertConfig, task="invert", file=file)


@pytest.mark.parametrize(
    "assignment",
    ["gain=" + "[" * 5000 + "]" * 5000, "gain=" + "[" * 40 + "]" * 40, "a." * 3000 + "b=1"],
    ids=["deep value", "value past the limit", "deep name"],
)
def test_deeply_nested_settings_are_a_config_error(assignment: str) -> None:
    # Before, a RecursionError from the JSON parser or from the merge of dotted names.
    with pytest.raises(imgzoo.ConfigError, match="nests deeper than 32 levels"):
        parse_assignments([assignment], task="invert")


@pytest.mark.parametrize("layer", ["weights_config", "overrides"])
def test_a_deeply_nested_layer_is_a_config_error(layer: str) -> None:
    deep: object = 0
    for _ in range(5000):
        deep = {"a": deep}
    with pytest.raises(imgzoo.ConfigError, match="gain: nests deeper than 32 levels"):
        build_config(InvertConfig, task="invert", **{layer: {"gain": deep}})


def test_missing_config_file() -> None:
    with pytest.raises(imgzoo.ConfigError, match="cannot read"):
        build_config(InvertConfig, task="invert", file="/nonexistent/config.toml")


def test_every_field_of_the_base_config_is_described() -> None:
    for name, field in imgzoo.TaskConfig.model_fields.items():
        assert field.description, name
    assert imgzoo.TaskConfig.model_config["extra"] == "forbid"


def test_dotted_keys_and_layers_never_change_their_inputs() -> None:
    from imgzoo.config import expand_dotted, merged

    section = {"steps": 3}
    flat = {"train": section, "train.batch_size": 4, "a.b.c": 1}
    assert expand_dotted(flat) == {"train": {"steps": 3, "batch_size": 4}, "a": {"b": {"c": 1}}}
    assert section == {"steps": 3}
    base = {"train": {"steps": 3}, "x": 1}
    assert merged(base, {"train": {"steps": 5, "seed": 1}}) == {"train": {"steps": 5, "seed": 1}, "x": 1}
    assert base == {"train": {"steps": 3}, "x": 1}


def test_load_reads_the_config_file(toy_tasks: None, tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text("gain = 4.0\n")
    assert imgzoo.load("invert", False, config_file=settings).config.gain == 4.0
    assert imgzoo.load("invert", False, config_file=settings, gain=2.0).config.gain == 2.0
