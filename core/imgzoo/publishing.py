"""``imgzoo publish``: a finished training run (or a weights file) as a folder ready for the
Hugging Face Hub, and optionally uploaded there.

The folder holds the weights file as it is, a model card ``README.md`` (the YAML metadata the
Hub reads, then the usage, the metrics with the command that measures them, the training data,
the recipe and the sample grid), the sample grid ``samples.png`` when the run drew one, and
``registry-entry.toml`` naming the weights by their ``hf://`` address. Everything in it comes
from the run: the weights' own metadata (task, config, recipe, metrics, dataset) and the run
folder's ``registry-entry.toml`` and ``samples/`` (see :mod:`imgzoo.training`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgzoo import plugins
from imgzoo.errors import ArgumentError, OutputError, OutputExistsError, UnknownTaskError, WeightsError
from imgzoo.files import replaced_atomically, write_atomically
from imgzoo.hub import HubAddress, check_repo_id, is_hub_address, push_folder
from imgzoo.registry_file import read_registry_file
from imgzoo.weights import load_weights, offline_setting, sha256_file, write_failure

__all__ = ["CARD_FILE", "ENTRY_FILE", "GRID_FILE", "PLACEHOLDER_REPO", "Published", "publish"]

PLACEHOLDER_REPO = "OWNER/REPO"
CARD_FILE = "README.md"
ENTRY_FILE = "registry-entry.toml"
GRID_FILE = "samples.png"
# What the Hub shows as the task of every imgzoo model: each maps an image to an image (or a map).
PIPELINE_TAG = "image-to-image"
_UNSET_LICENSE = {"", "TODO"}


@dataclass
class Published:
    """What :func:`publish` wrote: the folder, its files, and the weights' Hub address."""

    folder: Path
    files: list[str]
    address: str
    registry_entry: str
    """The text of ``registry-entry.toml``."""
    pushed: str | None = None
    """The URL of the commit that uploaded the folder, when it was pushed."""


@dataclass
class _Run:
    """What a run folder or a weights file tells about the weights."""

    weights: Path
    task: str
    name: str
    metadata: dict[str, Any]
    license: str | None
    recipe: dict[str, Any]
    metrics: dict[str, Any]
    grid: Path | None


def publish(
    source: str | Path,
    output: str | Path,
    *,
    repo: str | None = None,
    license: str | None = None,
    push: bool = False,
    overwrite: bool = False,
) -> Published:
    """Write ``source`` (a training run's folder, or a weights file) to the folder ``output`` as a
    Hub model repository's content, its weights at ``hf://REPO/FILE`` (``OWNER/REPO`` standing
    in until ``repo`` is given). ``license`` (an SPDX id such as ``mit``, or ``other``) is needed
    unless the run's registry entry names one. ``push`` uploads the folder to ``repo`` (a token
    and the network needed). An ``output`` that holds files is refused unless ``overwrite``, which
    replaces the files of these names and leaves others alone.
    """
    if repo is not None:
        check_repo_id(repo, flag="--push" if push else "--repo")
    elif push:
        raise ArgumentError("pushing needs the Hub repository: give --push OWNER/REPO", argument="--push")
    run = _read_run(Path(source).expanduser())
    licence = license or run.license
    if not licence:
        raise ArgumentError(
            f"say under which licence the weights of {source} are shared: --license ID (an SPDX id such "
            "as mit or apache-2.0, or other); it goes into the model card and the registry entry",
            argument="--license",
        )
    folder = Path(output).expanduser()
    if folder.exists() and not folder.is_dir():
        raise OutputExistsError(f"{folder} is a file: give a folder to publish into", path=folder)
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise OutputExistsError(
            f"{folder} holds files already: choose an empty or new folder, or replace them with --overwrite",
            path=folder,
        )
    address = str(HubAddress(repo or PLACEHOLDER_REPO, run.weights.name))
    from imgzoo.training.report import registry_entry

    entry = registry_entry(
        run.task,
        run.name,
        file=address,
        sha256=sha256_file(run.weights),
        recipe=run.recipe,
        metrics=run.metrics,
        license=licence,
    )
    files = {run.weights.name: run.weights, **({GRID_FILE: run.grid} if run.grid is not None else {})}
    texts = {CARD_FILE: model_card(run, address=address, license=licence), ENTRY_FILE: entry}
    try:
        for name, path in files.items():
            with replaced_atomically(folder / name) as temporary:
                shutil.copyfile(path, temporary)
        for name, text in texts.items():
            write_atomically(folder / name, text.encode("utf-8"))
    except OSError as error:
        target = Path(error.filename) if error.filename else folder
        raise OutputError(
            write_failure(target, error, instead="publish into another folder"), path=folder
        ) from error
    published = Published(folder, sorted([*files, *texts]), address, entry)
    if push:
        assert repo is not None  # checked above
        published.pushed = push_folder(
            folder, repo, message=f"imgzoo publish: {run.task} weights {run.name}", offline=offline_setting()
        )
    return published


def _read_run(source: Path) -> _Run:
    weights, run_dir = _find_weights(source)
    # The weights' own digest is verified before anything of them is shared.
    _, metadata = load_weights(weights)
    task = metadata.get("task")
    if not isinstance(task, str):
        raise WeightsError(
            f"{weights} records no task in its metadata: publish weights written by imgzoo (`imgzoo train`)",
            path=weights,
        )
    recorded = _run_entry(run_dir, task) if run_dir is not None else {}
    name = recorded.get("name") or _default_name(weights, run_dir)
    licence = recorded.get("license")
    samples = sorted((run_dir / "samples").glob("step-*.png")) if run_dir is not None else []
    return _Run(
        weights=weights,
        task=task,
        name=name,
        metadata=metadata,
        license=licence if licence not in _UNSET_LICENSE else None,
        recipe=dict(recorded.get("recipe") or metadata.get("recipe") or {}),
        metrics=dict(recorded.get("metrics") or metadata.get("metrics") or {}),
        grid=samples[-1] if samples else None,
    )


def _find_weights(source: Path) -> tuple[Path, Path | None]:
    """The weights file to publish, and the run folder it comes from (None for a lone file)."""
    if source.is_file():
        return source, None
    if not source.is_dir():
        raise WeightsError(
            f"{source} does not exist: give a training run's folder or a weights file", path=source
        )
    found = sorted(source.glob("*.safetensors"))
    if len(found) == 1:
        return found[0], source
    if not found:
        raise WeightsError(
            f"{source} holds no weights file (*.safetensors): give a finished training run's folder "
            "(the --out of `imgzoo train`) or a weights file",
            path=source,
        )
    names = ", ".join(path.name for path in found)
    raise WeightsError(
        f"{source} holds several weights files ({names}): give the one to publish", path=source
    )


def _run_entry(run_dir: Path, task: str) -> dict[str, Any]:
    """The run's own registry entry (which its owner may have edited: a licence, measured
    metrics), with its name; empty when the run has none for ``task``."""
    path = run_dir / ENTRY_FILE
    if not path.is_file():
        return {}
    entries = read_registry_file(path).get(task, {}).get("weights", {})
    for name, entry in entries.items():
        return {**entry, "name": name}
    return {}


def _default_name(weights: Path, run_dir: Path | None) -> str:
    from imgzoo.training.report import registry_name

    return registry_name(run_dir.resolve().name if run_dir is not None else weights.stem)


# ── the model card ───────────────────────────────────────────────────────────────────────────
def model_card(run: _Run, *, address: str, license: str) -> str:
    """The ``README.md`` of the published folder: YAML metadata for the Hub, then the card."""
    task, metadata = run.task, run.metadata
    description, inputs = _task_facts(task)
    front = {
        "license": license,
        "library_name": "imgzoo",
        "pipeline_tag": PIPELINE_TAG,
        "tags": ["imgzoo", PIPELINE_TAG, task],
    }
    started = run.recipe.get("started_from")
    if isinstance(started, Mapping) and is_hub_address(str(started.get("weights", ""))):
        # A malformed address is the recipe's to show, not the metadata's.
        with contextlib.suppress(WeightsError):
            front["base_model"] = HubAddress.parse(str(started["weights"])).repo_id
    lines = ["---", *_yaml(front), "---", "", f"# {task}: {run.name}", ""]
    about = f"Weights for [imgzoo](https://pypi.org/project/imgzoo/)'s `{task}` task"
    if description and not description.endswith((".", "!", "?")):
        description += "."
    lines += [f"{about}: {description}" if description else f"{about}.", ""]
    lines += _usage(task, address, run.name, inputs)
    lines += _metrics_section(task, address, run.metrics, metadata.get("dataset"))
    lines += _data_section(metadata.get("dataset"), run.recipe)
    lines += _recipe_section(run.recipe, metadata.get("config"), metadata.get("code_version"))
    if run.grid is not None:
        lines += [
            "## Samples",
            "",
            f"![input, output and target of validation pictures]({GRID_FILE})",
            "",
            f"Validation pictures at the end of training (`{run.grid.name}`): input, output, target.",
            "",
        ]
    lines += [
        "## Deploy",
        "",
        f"`imgzoo export {task} --weights {address} --standalone` is to write these weights as a model "
        "that runs without imgzoo (being built); today, `imgzoo export` writes ONNX or TorchScript "
        f"checked against PyTorch: `imgzoo export {task} --weights {address} --format onnx -o {task}.onnx`.",
        "",
        "## Files",
        "",
        f"- `{run.weights.name}`: the weights (safetensors, sha256 `{sha256_file(run.weights)}`); "
        "their metadata records the task, config, recipe, metrics and data, and a digest imgzoo "
        "checks on every load.",
        f"- `{ENTRY_FILE}`: the entry for an imgzoo registry file.",
    ]
    if run.grid is not None:
        lines.append(f"- `{GRID_FILE}`: the sample grid above.")
    return "\n".join(lines) + "\n"


def _task_facts(task: str) -> tuple[str, list[str]]:
    """The task's description and its required named inputs, when the task is installed here."""
    try:
        declared = plugins.task_declaration(task)
    except UnknownTaskError:
        return "", []
    from imgzoo.catalogue import task_info

    required = [spec.name for spec in declared.extra_inputs if spec.required]
    return task_info(task).description, required


def _usage(task: str, address: str, name: str, inputs: list[str]) -> list[str]:
    keywords = "".join(f', {input}="{input}.png"' for input in inputs)
    flags = "".join(f" --input {input}={input}.png" for input in inputs)
    return [
        "## Usage",
        "",
        '`pip install "imgzoo[hub]"`, then in Python:',
        "",
        "```python",
        "import imgzoo",
        "",
        f'result = imgzoo.run("{task}", "photo.png", weights="{address}"{keywords})',
        "```",
        "",
        "or on the command line:",
        "",
        "```console",
        f"imgzoo run {task} photo.png -o result.png --weights {address}{flags}",
        "```",
        "",
        "The weights are downloaded once into the Hugging Face cache (`HF_HUB_OFFLINE=1` reads them "
        f"from there). To name them `{name}` and have their sha256 checked too, add `{ENTRY_FILE}` to "
        f"a registry: `IMGZOO_REGISTRY={ENTRY_FILE} imgzoo run {task} photo.png --weights {name}`.",
        "",
    ]


def _metrics_section(task: str, address: str, metrics: Mapping[str, Any], dataset: Any) -> list[str]:
    if not metrics:
        return []
    measured = {key: value for key, value in metrics.items() if key != "data"}
    lines = ["## Metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {key} | {_number(value)} |" for key, value in measured.items()]
    lines.append("")
    data = metrics.get("data")
    if data:
        lines.append(
            f"Measured on `{data}` with `imgzoo eval {task} --data {data} --weights {address} --json`."
        )
    else:
        spec = dataset.get("spec") if isinstance(dataset, Mapping) else None
        count = dataset.get("val_size")
        held_out = f"{count} picture{'s' * (count != 1)} of `{spec}`" if spec else "pictures"
        lines.append(
            f"Measured by the training run at its end, on its validation split ({held_out} held out from "
            f"training). `imgzoo eval {task} --data DATA --weights {address} --json` measures them on any "
            "data (a folder, or a data spec such as `minifigs:n=200,seed=1`)."
        )
    return [*lines, ""]


def _data_section(dataset: Any, recipe: Mapping[str, Any]) -> list[str]:
    if not isinstance(dataset, Mapping) or not dataset.get("spec"):
        data = recipe.get("data")
        return ["## Training data", "", f"`{data}`", ""] if data else []
    sizes = ", ".join(
        f"{dataset[key]} {label}"
        for key, label in (("train_size", "for training"), ("val_size", "for validation"))
        if dataset.get(key) is not None
    )
    at = f", at {dataset['image_size']} px" if dataset.get("image_size") else ""
    return ["## Training data", "", f"`{dataset['spec']}`: {sizes or 'pictures'}{at}.", ""]


def _recipe_section(recipe: Mapping[str, Any], config: Any, code_version: Any) -> list[str]:
    lines = ["## Recipe", ""]
    commands = recipe.get("commands")
    if isinstance(commands, list) and commands:
        lines += ["```console", *map(str, commands), "```", ""]
    shown = {key: value for key, value in recipe.items() if key != "commands"}
    if shown:
        lines += [
            "How they were trained (the weights' `recipe`):",
            "",
            "```json",
            json.dumps(shown, indent=2),
            "```",
            "",
        ]
    if isinstance(config, Mapping) and config:
        lines += [
            "The task's settings (the weights' `config`):",
            "",
            "```json",
            json.dumps(config, indent=2),
            "```",
            "",
        ]
    if isinstance(code_version, Mapping) and code_version.get("imgzoo"):
        commit = f" (git commit {code_version['git']})" if code_version.get("git") else ""
        lines += [f"Trained with imgzoo {code_version['imgzoo']}{commit}.", ""]
    return lines


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _yaml(front: Mapping[str, Any]) -> list[str]:
    """YAML for flat metadata of strings and lists of strings: JSON strings are YAML scalars."""
    lines = []
    for key, value in front.items():
        if isinstance(value, list):
            lines += [f"{key}:", *(f"- {json.dumps(item)}" for item in value)]
        else:
            lines.append(f"{key}: {json.dumps(value)}")
    return lines
